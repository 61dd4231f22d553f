"""Building and reading the pivot shapes (OpenAI chat completions) that every codec
shares: completion and chunk objects, usage, error bodies, message content, data URLs."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from tollway.protocols.codec import Json, TranslationError
from tollway.protocols.openai.wire import ERROR_TYPES
from tollway.protocols.usage import CACHE_WRITES, CACHE_WRITES_1H, LEGACY_CACHE_WRITES

# OpenAI-compatible error codes by status, as the gateway's own errors use them (SPEC §4).
ERROR_CODES = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "model_not_found",
    413: "request_too_large",
    429: "rate_limit_exceeded",
}


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def now() -> int:
    return int(time.time())


def member(obj: Any, key: str) -> Json:
    """``obj[key]`` when both are JSON objects, else an empty object."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def as_int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


# ---- usage ---------------------------------------------------------------------------


def usage(
    prompt: int, completion: int, cached: int = 0, reasoning: int = 0, cache_writes: int = 0, cache_writes_1h: int = 0
) -> Json:
    """An OpenAI usage object; ``prompt`` includes ``cached`` (and ``cache_writes``, an
    Anthropic provider's, under ``usage.CACHE_WRITES``, of which ``cache_writes_1h`` to
    its one-hour cache, under ``usage.CACHE_WRITES_1H``), ``completion`` includes
    ``reasoning``, as OpenAI counts them."""
    out: Json = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached or cache_writes:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
        if cache_writes:
            out["prompt_tokens_details"][CACHE_WRITES] = cache_writes
            if cache_writes_1h:
                out["prompt_tokens_details"][CACHE_WRITES_1H] = min(cache_writes_1h, cache_writes)
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def read_usage(u: Any) -> tuple[int, int, int, int]:
    """(prompt, completion, cached, reasoning) from an OpenAI usage object (zeros if none)."""
    if not isinstance(u, dict):
        return 0, 0, 0, 0
    details = u.get("prompt_tokens_details")
    out_details = u.get("completion_tokens_details")
    # Counts a call can have: a provider's -3 or 12.5 is none (0), and no more cached
    # tokens than the prompt had, nor reasoning than the output (a translated client was
    # shown output -3, or 200 cached of a 120-token prompt, while the record took them).
    prompt, completion = _count(u.get("prompt_tokens")), _count(u.get("completion_tokens"))
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    reasoning = _count(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
    return prompt, completion, min(cached, prompt), min(reasoning, completion)


def _count(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def cache_writes_1h_of(u: Any) -> int:
    """The part of a pivot usage object's cache writes made to a one-hour cache."""
    details = u.get("prompt_tokens_details") if isinstance(u, dict) else None
    return _count(details.get(CACHE_WRITES_1H)) if isinstance(details, dict) else 0


def cache_writes_of(u: Any) -> int:
    """The prompt-cache writes a pivot usage object carries (0 if none)."""
    details = u.get("prompt_tokens_details") if isinstance(u, dict) else None
    if not isinstance(details, dict):
        return 0
    return _count(details.get(CACHE_WRITES)) or _count(details.get(LEGACY_CACHE_WRITES))


# ---- completion and chunk objects ----------------------------------------------------


def completion(
    id: str, model: str, created: int, message: Json, finish_reason: str | None, usage_obj: Json | None
) -> Json:
    out: Json = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage_obj is not None:
        out["usage"] = usage_obj
    return out


def chunk(id: str, model: str, created: int, delta: Json, finish_reason: str | None = None, index: int = 0) -> Json:
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def usage_chunk(id: str, model: str, created: int, usage_obj: Json) -> Json:
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_obj,
    }


def first_choice(obj: Json) -> Json:
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


# ---- errors --------------------------------------------------------------------------


def error_body(status: int, message: str, etype: str | None = None, code: str | None = None) -> bytes:
    """OpenAI's error shape; type and code default from the status."""
    etype = etype or ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    code = code or ERROR_CODES.get(status, "upstream_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": etype, "code": code, "param": None}})


def error_obj(status: int, message: str, etype: str | None = None, code: str | None = None) -> Json:
    obj: Json = orjson.loads(error_body(status, message, etype, code))
    return obj


def read_error(body: bytes) -> tuple[str, str | None, str | None]:
    """(message, type, code) from an OpenAI error body; other bodies become the message."""
    try:
        obj = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        obj = None
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        message = err.get("message")
        etype, code = err.get("type"), err.get("code")
        return (
            message if isinstance(message, str) else orjson.dumps(err).decode(),
            etype if isinstance(etype, str) else None,
            code if isinstance(code, str) else None,
        )
    if isinstance(err, str):
        return err, None, None
    return body.decode("utf-8", "replace").strip()[:2000] or "upstream error", None, None


def loads(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


# ---- request fields ------------------------------------------------------------------


def refuse_unmapped(
    chat: Json,
    target: str,
    mapped: frozenset[str],
    dropped: frozenset[str],
    no_equivalent: dict[str, tuple[object, ...]],
) -> None:
    """Raises ``TranslationError`` for the first field of ``chat`` that ``target``'s codec
    neither maps nor drops: one with no equivalent there (unless its value asks for
    nothing, one of ``no_equivalent[field]``), or one the codec does not know at all. A
    field nobody mapped must not vanish on the way (SPEC §9)."""
    for field, value in chat.items():
        if value is None or field in mapped or field in dropped:
            continue
        neutral = no_equivalent.get(field)
        if neutral is None:
            raise TranslationError(f"{field} cannot be sent to {target} (the gateway does not translate it)")
        if value not in neutral:
            raise TranslationError(f"{field} cannot be sent to {target} (it has no equivalent)")


# ---- message content -----------------------------------------------------------------


def text_of(content: Any) -> str:
    """The text of an OpenAI message content: a string, or the text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # A refusal part says it in ``refusal`` (OpenAI's shape), a text part in ``text``.
        return "".join(
            p[key]
            for p in content
            if isinstance(p, dict)
            and (key := "refusal" if p.get("type") == "refusal" else "text")
            and p.get("type") in ("text", "refusal")
            and isinstance(p.get(key), str)
        )
    return ""


def answer_text(message: Json) -> str:
    """The text of an assistant message or stream delta: its content's, else its
    ``refusal`` (OpenAI's own field; the other APIs say a refusal as text)."""
    refusal = message.get("refusal")
    return text_of(message.get("content")) or (refusal if isinstance(refusal, str) else "")


def parts_of(content: Any, where: str) -> list[Json]:
    """An OpenAI message content as a list of parts (a string is one text part)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return list(content)
    raise TranslationError(f"{where}.content must be a string or a list of content parts")


def split_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a ``data:<type>;base64,<data>`` URL, else None."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep:
        return None
    params = head.split(";")
    media = params[0] or "text/plain"
    if "base64" in params[1:]:
        return media, data
    # A percent-encoded (non-base64) data URL: carry its bytes as base64.
    return media, base64.b64encode(unquote_to_bytes(data)).decode()


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def tool_arguments(raw: Any, where: str) -> Json:
    """An OpenAI tool call's ``arguments`` (a JSON text) as the object other formats want."""
    if isinstance(raw, dict):
        return raw
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    raise TranslationError(f"{where}.function.arguments must be a JSON object")


def arguments_object(raw: Any) -> Json:
    """A model's tool-call arguments as an object, for an answer. Answers are not refused
    for a model's malformed JSON: the raw text is kept under ``_raw_arguments``."""
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        parsed = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        parsed = None
    return parsed if isinstance(parsed, dict) else {"_raw_arguments": raw}


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
