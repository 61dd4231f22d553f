"""Pure reply builders for the mock model server: parsed request in, response body out.

Nothing here does I/O or reads the clock: ids and timestamps are passed in, so the same
request always yields the same text, the same usage and the same events.

Token counting (the mock's whole notion of a "token") is :func:`count_tokens`: the number
of whitespace-separated words. Usage is truthful under that rule:

* OpenAI chat ``prompt_tokens`` is the sum of ``count_tokens`` over every text of every
  message (a string ``content``, or each ``{"type": "text"}`` part of a list).
* Anthropic ``input_tokens`` is the same sum over ``system`` (string or text blocks) and
  every message (string content, text blocks, and the text inside ``tool_result`` blocks).
* Completion/output tokens are ``count_tokens`` of the reply text; for a tool call they
  are ``count_tokens`` of its arguments JSON text (``TOOL_ARGUMENTS``).
* Legacy completions and embeddings count a token array input as its length.

A request the mock refuses raises :class:`RequestError`; the server turns it into a 400.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, Final

import orjson

MOCK_MODELS: Final = ("mock-gpt", "mock-gpt-mini", "mock-claude", "mock-embed")
EMBEDDING_DIMENSIONS: Final = 8
MAX_EMBEDDING_DIMENSIONS: Final = 4096
DEFAULT_CHUNKS: Final = 4
TOOL_INPUT: Final[dict[str, str]] = {"location": "Paris"}
# With a space after the colon, so the arguments count as 2 tokens rather than 1.
TOOL_ARGUMENTS: Final = '{"location": "Paris"}'
OPENAI_TOOL_CALL_ID: Final = "call_mock_1"
ANTHROPIC_TOOL_USE_ID: Final = "toolu_mock_1"
SSE_DONE: Final = b"data: [DONE]\n\n"

_WORD = re.compile(r"\S+")
_WEATHER = re.compile(r"\bweather\b", re.IGNORECASE)
_SNIPPET_CHARS = 40


class RequestError(ValueError):
    """The request is malformed for the mock; ``str(error)`` is safe to show the client."""


@dataclass(frozen=True, slots=True)
class SseStream:
    """A whole Server-Sent Events response, each item one encoded event.

    ``first_content`` indexes the first event that carries generated content (text or tool
    arguments), or the finishing event when there is none. Events before it are the
    prelude a real API sends at once; the server waits the time-to-first-token before it
    and may drop the connection right after it.
    """

    events: tuple[bytes, ...]
    first_content: int


@dataclass(frozen=True, slots=True)
class _Answer:
    """What the mock "generated": text, or a tool call whose arguments are ``text``."""

    text: str
    tool: str | None
    input_tokens: int
    output_tokens: int
    truncated: bool


# --- tokens and text --------------------------------------------------------------------


def count_tokens(text: str) -> int:
    """Return the mock's token count of ``text``: its number of whitespace-separated words."""
    return len(text.split())


def truncate_tokens(text: str, limit: int) -> str:
    """Return the prefix of ``text`` that ends with its ``limit``-th token (all of it if shorter).

    ``count_tokens`` of the result is ``min(limit, count_tokens(text))``.
    """
    if limit <= 0:
        return ""
    for seen, match in enumerate(_WORD.finditer(text), start=1):
        if seen == limit:
            return text[: match.end()]
    return text


def default_reply(prompt: str) -> str:
    """Return the deterministic reply to ``prompt``.

    ``"This is a mock reply to: <first 40 chars of the prompt, whitespace collapsed>"``,
    or ``"This is a mock reply."`` for an empty prompt.
    """
    snippet = " ".join(prompt.split())[:_SNIPPET_CHARS].rstrip()
    if not snippet:
        return "This is a mock reply."
    return f"This is a mock reply to: {snippet}"


def split_chunks(text: str, count: int) -> list[str]:
    """Split ``text`` into ``min(count, len(text))`` non-empty pieces of near-equal length.

    The pieces concatenate back to ``text``; an empty text gives no pieces.
    """
    pieces = max(1, min(count, len(text)))
    if not text:
        return []
    size, extra = divmod(len(text), pieces)
    out: list[str] = []
    start = 0
    for index in range(pieces):
        end = start + size + (1 if index < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def _content_texts(content: Any, *, tool_results: bool) -> list[str]:
    """Texts of a message ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "tool_result" and tool_results:
                texts.extend(_content_texts(part.get("content"), tool_results=False))
    return texts


def _sum_tokens(texts: list[str]) -> int:
    return sum(count_tokens(text) for text in texts)


# --- request fields ---------------------------------------------------------------------


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str):
        raise RequestError("'model' is required and must be a string")
    return model


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise RequestError("'messages' is required and must be a list of objects")
    return messages


def _token_limit(body: dict[str, Any], *names: str) -> int | None:
    """The first of ``names`` present in ``body`` as a non-negative integer, else None."""
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RequestError(f"'{name}' must be a non-negative integer")
        return value
    return None


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _last_user_texts(messages: list[dict[str, Any]], *, tool_results: bool) -> list[str]:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _content_texts(message.get("content"), tool_results=tool_results)
    return []


def _asks_weather(messages: list[dict[str, Any]]) -> bool:
    """Whether the conversation ends with a user turn whose own text mentions "weather".

    Tool results do not count, so a tool loop ends after one round trip.
    """
    if not messages or messages[-1].get("role") != "user":
        return False
    texts = _content_texts(messages[-1].get("content"), tool_results=False)
    return any(_WEATHER.search(text) for text in texts)


def _answer(prompt: str, input_tokens: int, limit: int | None, reply: str | None) -> _Answer:
    text = default_reply(prompt) if reply is None else reply
    tokens = count_tokens(text)
    truncated = limit is not None and tokens > limit
    if limit is not None and truncated:
        text = truncate_tokens(text, limit)
        tokens = limit
    return _Answer(text, None, input_tokens, tokens, truncated)


def _tool_answer(name: str, input_tokens: int) -> _Answer:
    # Tool arguments are never truncated by max_tokens: a cut JSON text helps no test.
    return _Answer(TOOL_ARGUMENTS, name, input_tokens, count_tokens(TOOL_ARGUMENTS), False)


# --- OpenAI chat completions ------------------------------------------------------------


def _openai_tool(body: dict[str, Any], asks_weather: bool) -> str | None:
    """The function to call: forced by ``tool_choice``, or the first tool on a weather ask."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return None
    names: list[str] = [
        tool["function"]["name"]
        for tool in tools
        if isinstance(tool, dict)
        and isinstance(tool.get("function"), dict)
        and isinstance(tool["function"].get("name"), str)
    ]
    if not names:
        return None
    choice = body.get("tool_choice", "auto")
    if choice == "none":
        return None
    if isinstance(choice, dict):
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
    if choice == "required" or asks_weather:
        return names[0]
    return None


def _plan_chat(body: dict[str, Any], reply: str | None) -> tuple[str, _Answer]:
    model = _model(body)
    messages = _messages(body)
    input_tokens = sum(_sum_tokens(_content_texts(m.get("content"), tool_results=False)) for m in messages)
    limit = _token_limit(body, "max_completion_tokens", "max_tokens")
    tool = None if reply is not None else _openai_tool(body, _asks_weather(messages))
    if tool is not None:
        return model, _tool_answer(tool, input_tokens)
    prompt = " ".join(_last_user_texts(messages, tool_results=False))
    return model, _answer(prompt, input_tokens, limit, reply)


def _chat_usage(answer: _Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_finish(answer: _Answer) -> str:
    if answer.tool is not None:
        return "tool_calls"
    return "length" if answer.truncated else "stop"


def chat_completion(body: dict[str, Any], *, ident: str, created: int, reply: str | None = None) -> dict[str, Any]:
    """Build a ``chat.completion`` body answering ``body`` (one choice; ``n`` is ignored).

    ``reply`` replaces the default text (and disables tool calls).
    """
    model, answer = _plan_chat(body, reply)
    message: dict[str, Any]
    if answer.tool is not None:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": OPENAI_TOOL_CALL_ID,
                    "type": "function",
                    "function": {"name": answer.tool, "arguments": answer.text},
                }
            ],
            "refusal": None,
            "annotations": [],
        }
    else:
        message = {"role": "assistant", "content": answer.text, "refusal": None, "annotations": []}
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _chat_finish(answer),
            }
        ],
        "usage": _chat_usage(answer),
        "service_tier": "default",
        "system_fingerprint": None,
    }


def _data_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def chat_completion_stream(
    body: dict[str, Any], *, ident: str, created: int, chunks: int, reply: str | None = None
) -> SseStream:
    """Build the ``chat.completion.chunk`` events answering ``body``, ending with ``[DONE]``.

    Order: a role chunk, the content (or tool-argument) deltas in ``chunks`` pieces, a chunk
    with the finish reason, then a ``choices: []`` usage chunk if
    ``stream_options.include_usage`` is true (every other chunk then has ``usage: null``).
    """
    model, answer = _plan_chat(body, reply)
    include_usage = _include_usage(body)
    head = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = {
            **head,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            payload["usage"] = None
        return _data_event(payload)

    events: list[bytes] = []
    pieces = split_chunks(answer.text, chunks)
    if answer.tool is not None:
        opening = {
            "index": 0,
            "id": OPENAI_TOOL_CALL_ID,
            "type": "function",
            "function": {"name": answer.tool, "arguments": ""},
        }
        events.append(chunk({"role": "assistant", "content": None, "tool_calls": [opening], "refusal": None}))
        events.extend(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}) for piece in pieces)
    else:
        events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        events.extend(chunk({"content": piece}) for piece in pieces)
    events.append(chunk({}, _chat_finish(answer)))
    if include_usage:
        events.append(_data_event({**head, "choices": [], "usage": _chat_usage(answer)}))
    events.append(SSE_DONE)
    return SseStream(tuple(events), first_content=1)


# --- OpenAI legacy completions ----------------------------------------------------------


def _is_token_array(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, int) and not isinstance(item, bool) for item in value)


def _prompt_items(prompt: Any, field: str) -> list[tuple[str, int]]:
    """(text, tokens) per input of a string / strings / token array / token arrays field.

    A token array's text is its numbers joined by spaces; its tokens are its length.
    """
    if isinstance(prompt, str):
        return [(prompt, count_tokens(prompt))]
    if isinstance(prompt, list) and prompt:
        if _is_token_array(prompt):
            return [(" ".join(map(str, prompt)), len(prompt))]
        items: list[tuple[str, int]] = []
        for item in prompt:
            if isinstance(item, str):
                items.append((item, count_tokens(item)))
            elif _is_token_array(item):
                items.append((" ".join(map(str, item)), len(item)))
            else:
                break
        else:
            return items
    raise RequestError(f"'{field}' must be a string, a list of strings or token arrays")


def _plan_completions(body: dict[str, Any], reply: str | None) -> tuple[str, list[_Answer]]:
    model = _model(body)
    limit = _token_limit(body, "max_tokens")
    answers = [_answer(text, tokens, limit, reply) for text, tokens in _prompt_items(body.get("prompt"), "prompt")]
    return model, answers


def _completion_usage(answers: list[_Answer]) -> dict[str, int]:
    prompt_tokens = sum(a.input_tokens for a in answers)
    completion_tokens = sum(a.output_tokens for a in answers)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(body: dict[str, Any], *, ident: str, created: int, reply: str | None = None) -> dict[str, Any]:
    """Build a ``text_completion`` body: one choice per prompt, usage summed over them."""
    model, answers = _plan_completions(body, reply)
    return {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "text": answer.text,
                "index": index,
                "logprobs": None,
                "finish_reason": "length" if answer.truncated else "stop",
            }
            for index, answer in enumerate(answers)
        ],
        "usage": _completion_usage(answers),
    }


def completion_stream(
    body: dict[str, Any], *, ident: str, created: int, chunks: int, reply: str | None = None
) -> SseStream:
    """Build the ``text_completion`` stream events answering ``body``, ending with ``[DONE]``.

    Per prompt in order: its text in ``chunks`` pieces, then an empty-text chunk with the
    finish reason; then the usage chunk if ``stream_options.include_usage`` is true.
    """
    model, answers = _plan_completions(body, reply)
    include_usage = _include_usage(body)
    head = {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
    }

    def chunk(index: int, text: str, finish: str | None) -> bytes:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
        payload = {**head, "choices": [choice]}
        if include_usage:
            payload["usage"] = None
        return _data_event(payload)

    events: list[bytes] = []
    for index, answer in enumerate(answers):
        events.extend(chunk(index, piece, None) for piece in split_chunks(answer.text, chunks))
        events.append(chunk(index, "", "length" if answer.truncated else "stop"))
    if include_usage:
        events.append(_data_event({**head, "choices": [], "usage": _completion_usage(answers)}))
    events.append(SSE_DONE)
    return SseStream(tuple(events), first_content=0)


# --- OpenAI embeddings and models -------------------------------------------------------


def embedding_vector(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector for ``text``, derived from its SHAKE-256 hash.

    Every component is exactly representable as a float32, so the float and base64
    encodings of a response carry the same numbers.
    """
    digest = hashlib.shake_256(text.encode()).digest(2 * dimensions)
    raw = [value / 32768.0 - 1.0 for value in struct.unpack(f"<{dimensions}H", digest)]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(value / norm for value in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """Build an embeddings list body for ``input`` (string(s) or token array(s)).

    ``dimensions`` (default 8) sets the vector length; ``encoding_format: "base64"``
    returns each vector as base64 of its little-endian float32 array.
    """
    model = _model(body)
    items = _prompt_items(body.get("input"), "input")
    dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
    if (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS
    ):
        raise RequestError(f"'dimensions' must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise RequestError("'encoding_format' must be 'float' or 'base64'")
    data: list[dict[str, Any]] = []
    for index, (text, _tokens) in enumerate(items):
        vector = embedding_vector(text, dimensions)
        encoded: list[float] | str = vector
        if encoding == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(tokens for _text, tokens in items)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def model_object(model_id: str) -> dict[str, Any] | None:
    """The model object for ``model_id``, or None if the mock does not list it."""
    if model_id not in MOCK_MODELS:
        return None
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "tollway-mock"}


def models_list() -> dict[str, Any]:
    """The ``GET /models`` body listing :data:`MOCK_MODELS`."""
    return {"object": "list", "data": [model_object(model_id) for model_id in MOCK_MODELS]}


# --- Anthropic messages -----------------------------------------------------------------


def _anthropic_tool(body: dict[str, Any], asks_weather: bool) -> str | None:
    """The tool to use: forced by ``tool_choice``, or the first tool on a weather ask."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return None
    names: list[str] = [t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
    if not names:
        return None
    choice = body.get("tool_choice")
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "none":
        return None
    if kind == "tool" and isinstance(choice, dict) and isinstance(choice.get("name"), str):
        return str(choice["name"])
    if kind == "any" or asks_weather:
        return names[0]
    return None


def anthropic_input_tokens(body: dict[str, Any]) -> int:
    """Input tokens of a Messages request: ``system`` plus every message's texts."""
    messages = _messages(body)
    system = body.get("system")
    total = _sum_tokens(_content_texts(system, tool_results=False)) if system is not None else 0
    for message in messages:
        total += _sum_tokens(_content_texts(message.get("content"), tool_results=True))
    return total


def _plan_anthropic(body: dict[str, Any], reply: str | None) -> tuple[str, _Answer]:
    model = _model(body)
    messages = _messages(body)
    input_tokens = anthropic_input_tokens(body)
    limit = _token_limit(body, "max_tokens")
    tool = None if reply is not None else _anthropic_tool(body, _asks_weather(messages))
    if tool is not None:
        return model, _tool_answer(tool, input_tokens)
    prompt = " ".join(_last_user_texts(messages, tool_results=True))
    return model, _answer(prompt, input_tokens, limit, reply)


def _stop_reason(answer: _Answer) -> str:
    if answer.tool is not None:
        return "tool_use"
    return "max_tokens" if answer.truncated else "end_turn"


def _anthropic_usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def anthropic_message(body: dict[str, Any], *, ident: str, reply: str | None = None) -> dict[str, Any]:
    """Build a Messages API ``message`` body answering ``body``.

    One content block: the text, or a ``tool_use`` block (input ``TOOL_INPUT``) when the
    request has tools and the user's last turn mentions "weather" (or ``tool_choice``
    forces a tool). ``reply`` replaces the default text (and disables tool use).
    """
    model, answer = _plan_anthropic(body, reply)
    block: dict[str, Any]
    if answer.tool is not None:
        block = {
            "type": "tool_use",
            "id": ANTHROPIC_TOOL_USE_ID,
            "name": answer.tool,
            "input": dict(TOOL_INPUT),
        }
    else:
        block = {"type": "text", "text": answer.text}
    return {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": _stop_reason(answer),
        "stop_sequence": None,
        "usage": _anthropic_usage(answer.input_tokens, answer.output_tokens),
    }


def _named_event(payload: dict[str, Any]) -> bytes:
    return b"event: " + str(payload["type"]).encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def anthropic_message_stream(body: dict[str, Any], *, ident: str, chunks: int, reply: str | None = None) -> SseStream:
    """Build the Messages streaming events answering ``body``.

    ``message_start`` (usage.input_tokens, output_tokens 0), ``content_block_start``,
    ``ping``, ``content_block_delta`` × pieces (``text_delta`` or ``input_json_delta``),
    ``content_block_stop``, ``message_delta`` (stop_reason, usage.output_tokens),
    ``message_stop``.
    """
    model, answer = _plan_anthropic(body, reply)
    message: dict[str, Any] = {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _anthropic_usage(answer.input_tokens, 0),
    }
    block: dict[str, Any]
    if answer.tool is not None:
        block = {"type": "tool_use", "id": ANTHROPIC_TOOL_USE_ID, "name": answer.tool, "input": {}}
    else:
        block = {"type": "text", "text": ""}
    events = [
        _named_event({"type": "message_start", "message": message}),
        _named_event({"type": "content_block_start", "index": 0, "content_block": block}),
        _named_event({"type": "ping"}),
    ]
    first_content = len(events)
    for piece in split_chunks(answer.text, chunks):
        delta = (
            {"type": "input_json_delta", "partial_json": piece}
            if answer.tool is not None
            else {"type": "text_delta", "text": piece}
        )
        events.append(_named_event({"type": "content_block_delta", "index": 0, "delta": delta}))
    events.append(_named_event({"type": "content_block_stop", "index": 0}))
    events.append(
        _named_event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_reason(answer), "stop_sequence": None},
                "usage": {"output_tokens": answer.output_tokens},
            }
        )
    )
    events.append(_named_event({"type": "message_stop"}))
    return SseStream(tuple(events), first_content=first_content)


# --- errors -----------------------------------------------------------------------------

_OPENAI_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
_ANTHROPIC_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def openai_error(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-shaped error body; the type follows from the HTTP ``status``."""
    default = "server_error" if status >= 500 else "invalid_request_error"
    kind = _OPENAI_ERROR_TYPES.get(status, default)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    """An Anthropic-shaped error body; the type follows from the HTTP ``status``."""
    default = "api_error" if status >= 500 else "invalid_request_error"
    kind = _ANTHROPIC_ERROR_TYPES.get(status, default)
    return {"type": "error", "error": {"type": kind, "message": message}}
