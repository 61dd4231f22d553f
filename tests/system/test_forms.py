"""Multipart requests name their model in a form field (SPEC §9): an audio transcription's
``model`` routes the call (``model_providers``), is held to the consumer's
``allow_models`` (403 ``model_not_allowed``, no provider called) and is recorded. The
OpenAI SDK is the client; the provider is a small fake of OpenAI's transcription API."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import new_request_id, serve_gateway, usage_record
from tests.support.loopback_server import LoopbackServer, read_request

FILE_OBJECT = (
    b'{"id": "file-1", "object": "file", "bytes": 1, "created_at": 0, "filename": "batch.jsonl", "purpose": "batch"}'
)


# A transcription streamed (the form's ``stream`` field true), as OpenAI sends it.
TRANSCRIPT_EVENTS = (
    b'data: {"type": "transcript.text.delta", "delta": "hello"}\n\n'
    b'data: {"type": "transcript.text.delta", "delta": " there"}\n\n'
    b'data: {"type": "transcript.text.done", "text": "hello there", '
    b'"usage": {"type": "tokens", "input_tokens": 14, "output_tokens": 3, "total_tokens": 17}}\n\n'
)


class Transcriber(LoopbackServer):
    """``POST /v1/audio/transcriptions``: ``{"text": …}``, or its events when the form's
    ``stream`` is true; ``POST /v1/files``: a file object. Keeps each request's body."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await read_request(reader)
            self.bodies.append(body)
            out = FILE_OBJECT if b" /v1/files " in head.split(b"\r\n", 1)[0] else b'{"text": "hello there"}'
            kind = b"application/json"
            if b'name="stream"\r\n\r\ntrue' in body:
                out, kind = TRANSCRIPT_EVENTS, b"text/event-stream"
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s" % (kind, len(out), out))
            await writer.drain()


@pytest.fixture(scope="module")
def transcriber() -> Iterator[Transcriber]:
    with Transcriber() as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(transcriber: Transcriber, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: speech, type: openai, baseUrl: "{transcriber.url}/v1", apiTokens: [sk-speech]}}
  - {{id: other, type: openai, baseUrl: "http://127.0.0.1:9/v1", apiTokens: [sk-other]}}
routes:
  - {{name: files, path_prefix: /v1/files, provider: speech}}
  - {{name: v1, path_prefix: /v1/, providers: [other], model_providers: {{"whisper-*": speech}}}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{{name: ann, credential: k-ann, allow_models: ["whisper-*", "gpt-4o-mini"]}}]
"""
    proc = serve_gateway(tmp_path_factory.mktemp("forms"), config)
    yield proc
    assert proc.stop() == 0


def _transcribe(gw: Proc, model: str, rid: str) -> str:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="k-ann", max_retries=0, timeout=10) as sdk:
        audio = io.BytesIO(b"RIFF" + b"\0" * 2048)
        audio.name = "clip.wav"
        return sdk.audio.transcriptions.create(model=model, file=audio, extra_headers={"x-request-id": rid}).text


def test_a_transcription_is_routed_by_its_form_model_and_recorded(gw: Proc, transcriber: Transcriber) -> None:
    rid = new_request_id()
    assert _transcribe(gw, "whisper-1", rid) == "hello there"
    assert b'name="model"' in transcriber.bodies[-1] and b"whisper-1" in transcriber.bodies[-1]  # sent as it came
    record = usage_record(gw, rid)
    assert (record["status"], record["provider"], record["model_requested"], record["api"]) == (
        200,
        "speech",
        "whisper-1",
        "audio",
    )
    assert record["model_upstream"] == "whisper-1"  # the form goes as it came: its model is what was asked


def test_a_transcription_streamed_is_recorded_as_a_stream(gw: Proc, transcriber: Transcriber) -> None:
    # Its form says ``stream``, not a JSON body: the record said stream false beside the
    # time to its first event.
    rid = new_request_id()
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="k-ann", max_retries=0, timeout=10) as sdk:
        audio = io.BytesIO(b"RIFF" + b"\0" * 2048)
        audio.name = "clip.wav"
        events = sdk.audio.transcriptions.create(
            model="whisper-1", file=audio, stream=True, extra_headers={"x-request-id": rid}
        )
        assert [e.type for e in events] == ["transcript.text.delta"] * 2 + ["transcript.text.done"]
    record = usage_record(gw, rid)
    assert (record["status"], record["api"], record["stream"]) == (200, "audio", True)
    assert record["ttft_ms"] is not None
    assert (record["input_tokens"], record["output_tokens"], record["tokens_estimated"]) == (14, 3, False)


def test_an_image_call_is_recorded_with_its_model(gw: Proc, transcriber: Transcriber) -> None:
    rid = new_request_id()
    answer = httpx.post(
        gw.url + "/v1/images/generations",
        json={"model": "whisper-image", "prompt": "a lighthouse"},
        headers={"authorization": "Bearer k-ann", "x-request-id": rid},
        timeout=10,
    )
    assert answer.status_code == 200
    record = usage_record(gw, rid)
    assert (record["api"], record["provider"], record["model_requested"], record["model_upstream"]) == (
        "images",
        "speech",
        "whisper-image",
        "whisper-image",
    )


def test_a_form_model_outside_allow_models_is_refused(gw: Proc, transcriber: Transcriber) -> None:
    before = len(transcriber.bodies)
    rid = new_request_id()
    with pytest.raises(openai.PermissionDeniedError) as caught:
        _transcribe(gw, "gpt-4o-transcribe", rid)
    assert caught.value.code == "model_not_allowed"
    assert len(transcriber.bodies) == before
    record = usage_record(gw, rid)
    assert (record["status"], record["model_requested"]) == (403, "gpt-4o-transcribe")


def _batch_line(n: int, model: str) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": f"question {n}"}]}
    return orjson.dumps({"custom_id": f"q{n}", "method": "POST", "url": "/v1/chat/completions", "body": body})


def test_a_batch_file_with_a_line_for_a_model_not_allowed_is_refused_naming_the_line(
    gw: Proc, transcriber: Transcriber
) -> None:
    before = len(transcriber.bodies)
    allowed = b"\n".join(_batch_line(n, "gpt-4o-mini") for n in range(1, 4))
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="k-ann", max_retries=0, timeout=10) as sdk:
        uploaded = sdk.files.create(file=("batch.jsonl", allowed), purpose="batch")
        assert uploaded.id == "file-1"
        assert len(transcriber.bodies) == before + 1
        mixed = b"\n".join([_batch_line(1, "gpt-4o-mini"), _batch_line(2, "gpt-4o"), _batch_line(3, "gpt-4o-mini")])
        with pytest.raises(openai.PermissionDeniedError) as caught:
            sdk.files.create(file=("batch.jsonl", mixed), purpose="batch")
    assert (
        caught.value.code == "model_not_allowed"
        and "line 2" in caught.value.message
        and "gpt-4o" in caught.value.message
    )
    assert len(transcriber.bodies) == before + 1  # the refused file reached no provider
