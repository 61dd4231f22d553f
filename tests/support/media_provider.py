"""A fake of OpenAI's media and moderation APIs, answering as OpenAI does for each model:

- ``POST /v1/audio/speech``: the audio itself (``audio/mpeg``, no usage), or with
  ``stream_format: "sse"`` (gpt-4o-mini-tts) audio deltas then ``speech.audio.done``
  with the call's token usage;
- ``POST /v1/audio/transcriptions`` (a form): a Whisper model (a name with ``whisper``
  in it, as a deployment's or a provider's alias may be) answers its usage in seconds of
  audio (``{"type": "duration", "seconds": 125}``), billed per minute; any other model
  (gpt-4o-transcribe) in tokens; ``response_format: text`` answers the bare text;
- ``POST /v1/audio/translations`` (a form): the English text, no usage (Whisper only);
- ``POST /v1/images/generations``: a DALL·E model (``dall-e`` in its name) answers no
  usage (billed per image); any other model (gpt-image-1) its token usage;
- ``POST /v1/moderations``: a result, no usage (no one bills it).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson

from tests.support.loopback_server import LoopbackServer, read_request

# The token usage of every answer that reports one.
SPEECH_USAGE: dict[str, Any] = {"input_tokens": 14, "output_tokens": 101, "total_tokens": 115}
TRANSCRIPTION_USAGE: dict[str, Any] = {
    "type": "tokens",
    "input_tokens": 14,
    "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
    "output_tokens": 45,
    "total_tokens": 59,
}
IMAGE_USAGE: dict[str, Any] = {
    "input_tokens": 50,
    "input_tokens_details": {"text_tokens": 10, "image_tokens": 40},
    "output_tokens": 4160,
    "total_tokens": 4210,
}
_FORM_FIELD = rb'name="%s"\r\n\r\n([^\r]*)\r\n'


def _form_field(body: bytes, name: bytes) -> str | None:
    found = re.search(_FORM_FIELD % name, body)
    return found.group(1).decode() if found is not None else None


def _model(body: bytes) -> str:
    form = _form_field(body, b"model")
    if form is not None:
        return form
    model = orjson.loads(body).get("model")
    return model if isinstance(model, str) else ""


def _answer(path: str, body: bytes) -> tuple[str, bytes]:
    """The content type and body OpenAI answers ``POST path`` with."""
    model = _model(body)
    if path == "/v1/audio/speech":
        if orjson.loads(body).get("stream_format") != "sse":
            return "audio/mpeg", b"ID3\x04fake-mp3-frames"
        events = [
            {"type": "speech.audio.delta", "audio": "SUQz"},
            {"type": "speech.audio.done", "usage": SPEECH_USAGE},
        ]
        return "text/event-stream", b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    if path == "/v1/audio/transcriptions":
        if _form_field(body, b"response_format") == "text":
            return "text/plain", b"hello there"
        usage = {"type": "duration", "seconds": 125} if "whisper" in model else TRANSCRIPTION_USAGE
        return "application/json", orjson.dumps({"text": "hello there", "usage": usage})
    if path == "/v1/audio/translations":
        return "application/json", orjson.dumps({"text": "hello there"})
    if path == "/v1/images/generations":
        answer: dict[str, object] = {"created": 1_767_225_600, "data": [{"url": "https://images.example/1.png"}]}
        if "dall-e" not in model:
            answer["usage"] = IMAGE_USAGE
        return "application/json", orjson.dumps(answer)
    if path == "/v1/moderations":
        result = {"flagged": False, "categories": {}, "category_scores": {}}
        return "application/json", orjson.dumps({"id": "modr-1", "model": model, "results": [result]})
    return "application/json", b'{"error": {"message": "no such path", "type": "invalid_request_error"}}'


class MediaProvider(LoopbackServer):
    """See the module docstring. ``paths`` are the paths asked for, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await read_request(reader)
            path = head.split(b" ", 2)[1].decode()
            self.paths.append(path)
            ctype, out = _answer(path, body)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s" % (ctype.encode(), len(out), out)
            )
            await writer.drain()


__all__ = ["IMAGE_USAGE", "SPEECH_USAGE", "TRANSCRIPTION_USAGE", "MediaProvider"]
