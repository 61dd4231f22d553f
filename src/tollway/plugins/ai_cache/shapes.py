"""An answer from one shape into the other, through the chat pivot (``protocols.codec``):
a whole answer into the chunks of a stream, a stream's chunks into one whole answer.

The cache stores an answer as the client got it, whole or streamed; a later request may
ask for the other. Only the text, the tool calls, the finish reason and the usage carry
over, which is all either shape has in common.
"""

from __future__ import annotations

from typing import Any

from tollway.protocols import pivot
from tollway.protocols.codec import Json


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def chunks_of(completion: Json) -> list[Json]:
    """A ``chat.completion`` as the chunks of a stream: the role, the text, each tool
    call, the finish, and the usage chunk when it has usage."""
    ident = str(completion.get("id") or pivot.new_id("chatcmpl-"))
    model = str(completion.get("model") or "")
    created = _int_or(completion.get("created"), pivot.now())
    choice = pivot.first_choice(completion)
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    assert isinstance(message, dict)
    out = [pivot.chunk(ident, model, created, {"role": "assistant", "content": ""})]
    text = pivot.text_of(message.get("content"))
    if text:
        out.append(pivot.chunk(ident, model, created, {"content": text}))
    calls = message.get("tool_calls")
    for i, call in enumerate(calls if isinstance(calls, list) else ()):
        if isinstance(call, dict):
            out.append(pivot.chunk(ident, model, created, {"tool_calls": [{**call, "index": i}]}))
    out.append(pivot.chunk(ident, model, created, {}, choice.get("finish_reason") or "stop"))
    usage = completion.get("usage")
    if isinstance(usage, dict):
        out.append(pivot.usage_chunk(ident, model, created, usage))
    return out


def completion_of(chunks: list[Json]) -> Json:
    """The ``chat.completion`` a stream's chunks add up to (the first choice's)."""
    ident, model, created = "", "", pivot.now()
    text: list[str] = []
    calls: dict[int, Json] = {}
    finish: str | None = None
    usage: Json | None = None
    for chunk in chunks:
        ident = ident or str(chunk.get("id") or "")
        model = model or str(chunk.get("model") or "")
        if isinstance(chunk.get("created"), int):
            created = chunk["created"]
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        choice = pivot.first_choice(chunk)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    _add_call(calls, call)
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
    message: Json = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return pivot.completion(ident or pivot.new_id("chatcmpl-"), model, created, message, finish or "stop", usage)


def _add_call(calls: dict[int, Json], part: Json) -> None:
    index = _int_or(part.get("index"), len(calls))
    call = calls.setdefault(index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
    if part.get("id"):
        call["id"] = part["id"]
    fn = part.get("function")
    if isinstance(fn, dict):
        if fn.get("name"):
            call["function"]["name"] += str(fn["name"])
        if isinstance(fn.get("arguments"), str):
            call["function"]["arguments"] += fn["arguments"]


def responses_to_pivot(body: Json) -> Json:
    """A Responses API ``response`` object as a ``chat.completion``."""
    text: list[str] = []
    calls: list[Json] = []
    for item in body.get("output") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            text.extend(
                str(p.get("text", "")) for p in item.get("content") or () if isinstance(p, dict) and "text" in p
            )
        elif item.get("type") == "function_call":
            call_id = item.get("call_id") or item.get("id") or ""
            function = {"name": item.get("name") or "", "arguments": item.get("arguments") or ""}
            calls.append({"id": call_id, "type": "function", "function": function})
    message: Json = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    finish = "tool_calls" if calls else ("length" if body.get("status") == "incomplete" else "stop")
    created = _int_or(body.get("created_at"), pivot.now())
    return pivot.completion(
        str(body.get("id") or ""), str(body.get("model") or ""), created, message, finish, _usage(body.get("usage"))
    )


def _usage(u: Any) -> Json | None:
    """A Responses usage object in OpenAI chat's words."""
    if not isinstance(u, dict):
        return None
    details = u.get("input_tokens_details")
    out_details = u.get("output_tokens_details")
    return pivot.usage(
        pivot.as_int(u.get("input_tokens")),
        pivot.as_int(u.get("output_tokens")),
        pivot.as_int(details.get("cached_tokens")) if isinstance(details, dict) else 0,
        pivot.as_int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0,
    )


__all__ = ["chunks_of", "completion_of", "responses_to_pivot"]
