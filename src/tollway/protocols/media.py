"""What a request's inline media weigh, in tokens, for the estimates made before a call.

Token limits, quotas and budgets hold a call's prompt at ``body bytes / 4`` before it
goes upstream (``plugins.limits.reservation``), to settle it to the provider's count
after. Text costs about that; base64 media do not: a 3 MB photo is 4 MB of base64, a
million tokens by that rule, where the provider counts it at a few thousand at most
(Anthropic about 1,600 for the largest image it takes; OpenAI's patch-counted models
1,536 patches times a model's multiplier, about 3,800 for the dearest, gpt-5-nano;
Gemini 258 a tile). A hold that size took a consumer's whole quota or
rate window, or was refused by a budget the call fits in many times over.

So a body's inline payloads are counted apart (``inline_media``): an image at
``IMAGE_TOKENS``, audio at a token per ``AUDIO_CHARS_PER_TOKEN`` base64 characters (a
second of 16 kHz WAV is 43k characters, and OpenAI counts about ten tokens a second:
this is a few times generous), and any other payload (a PDF, a file) as text, four
characters a token (a document's pages cost about as much as their bytes say, or more).
The rest of the body is counted as before. Only bodies of ``MEDIA_FROM_BYTES`` or more are
looked through: a smaller one holds no media worth its walk, and a chat call pays one
length test.

Payloads are found in every protocol's shape: a ``data:`` URL anywhere (OpenAI's
``image_url``, the Responses API's ``input_image`` and ``file_data``); an object with
``"type": "base64"`` and its ``data`` (Anthropic's sources, named by ``media_type``);
OpenAI's ``input_audio``; Gemini's ``inline_data``/``inlineData`` (by its MIME type).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tollway.protocols.usage import estimate_tokens

IMAGE_TOKENS = 4_096
AUDIO_CHARS_PER_TOKEN = 1_024
MEDIA_FROM_BYTES = 16 * 1024
# How far into a string a data URL's ``;base64,`` may sit (its MIME type and parameters).
_DATA_URL_HEAD = 256
_AUDIO_HOLDERS = frozenset({"input_audio"})
_GEMINI_HOLDERS = frozenset({"inline_data", "inlineData"})


@dataclass(frozen=True, slots=True)
class InlineMedia:
    """The base64 characters of a body's inline payloads, and what they are taken to
    cost in tokens."""

    chars: int = 0
    tokens: int = 0


def _weigh(mime: str, chars: int) -> int:
    if mime.startswith("image/"):
        return IMAGE_TOKENS
    if mime.startswith("audio/") or mime in ("wav", "mp3", "pcm16", "flac", "opus", "aac"):
        return chars // AUDIO_CHARS_PER_TOKEN + 1
    return (chars + 3) // 4


def _data_url(text: str) -> tuple[str, int] | None:
    """A ``data:<mime>;base64,<payload>`` URL's MIME type and payload length, else None."""
    if not text.startswith("data:"):
        return None
    comma = text.find(";base64,", 5, _DATA_URL_HEAD)
    if comma < 0:
        return None
    mime = text[5:comma].split(";", 1)[0].strip().lower()
    return mime, len(text) - comma - 8


def _holder(key: Any, obj: dict[str, Any]) -> tuple[str, str] | None:
    """A payload an object holds in its ``data`` (not as a data URL): its MIME type
    (or audio format) and the payload."""
    data = obj.get("data")
    if not isinstance(data, str):
        return None
    if obj.get("type") == "base64":
        mime = obj.get("media_type")
        return (mime.lower() if isinstance(mime, str) else ""), data
    if key in _AUDIO_HOLDERS:
        fmt = obj.get("format")
        return (fmt.lower() if isinstance(fmt, str) else "audio/"), data
    if key in _GEMINI_HOLDERS:
        mime = obj.get("mime_type", obj.get("mimeType"))
        return (mime.lower() if isinstance(mime, str) else ""), data
    return None


def inline_media(body: Any) -> InlineMedia:
    """The inline payloads of a parsed request body, at any depth (an explicit stack:
    no body exhausts the recursion limit)."""
    chars = tokens = 0
    stack: list[tuple[Any, Any]] = [(None, body)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, str):
            found = _data_url(value)
            if found is not None:
                chars += len(value)
                tokens += _weigh(found[0], found[1])
        elif isinstance(value, dict):
            held = _holder(key, value)
            if held is not None:
                chars += len(held[1])
                tokens += _weigh(held[0], len(held[1]))
                stack.extend((k, v) for k, v in value.items() if k != "data")
            else:
                stack.extend(value.items())
        elif isinstance(value, list):
            stack.extend((key, item) for item in value)
    return InlineMedia(chars, tokens)


def prompt_estimate(size: int, parsed: Callable[[], Any]) -> int:
    """A request body's estimated prompt tokens: its ``size`` in bytes, four a token, but
    for its inline media, at what they cost. ``parsed`` gives the parsed body (None when
    it is not JSON); it is asked only of a body of ``MEDIA_FROM_BYTES`` or more."""
    if size < MEDIA_FROM_BYTES:
        return estimate_tokens(size)
    body = parsed()
    if body is None:
        return estimate_tokens(size)
    media = inline_media(body)
    return estimate_tokens(max(size - media.chars, 0)) + media.tokens


__all__ = [
    "AUDIO_CHARS_PER_TOKEN",
    "IMAGE_TOKENS",
    "MEDIA_FROM_BYTES",
    "InlineMedia",
    "inline_media",
    "prompt_estimate",
]
