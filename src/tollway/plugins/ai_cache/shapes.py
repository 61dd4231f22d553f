"""An answer from one shape into the other, through the chat pivot (``protocols.codec``):
a whole answer into the chunks of a stream, a stream's chunks into one whole answer.

The cache stores an answer as the client got it, whole or streamed; a later request may
ask for the other. Only the text, the tool calls, the finish reason and the usage carry
over, which is all either shape has in common.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tollway.protocols import pivot
from tollway.protocols.codec import Json
from tollway.protocols.lists import members
from tollway.protocols.sse import SseEvent

# Fields of an OpenAI chat answer, whole or each chunk of a stream, that belong to the
# answer as a whole.
_ANSWER_FIELDS = ("service_tier", "system_fingerprint")


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def chunks_of(completion: Json) -> list[Json]:
    """A ``chat.completion`` as the chunks of a stream: the role, the text, each tool
    call, the finish, and the usage chunk when it has usage; each chunk repeats what the
    answer says of itself as a whole (``_ANSWER_FIELDS``), as OpenAI's chunks do."""
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
    extras = {name: completion[name] for name in _ANSWER_FIELDS if completion.get(name) is not None}
    if extras:
        for chunk in out:
            chunk.update(extras)
    return out


def completion_of(chunks: list[Json]) -> Json:
    """The ``chat.completion`` a stream's chunks add up to (the first choice's)."""
    ident, model, created = "", "", pivot.now()
    text: list[str] = []
    calls: dict[int, Json] = {}
    finish: str | None = None
    usage: Json | None = None
    extras: Json = {}  # what every chunk repeats about the answer as a whole
    for chunk in chunks:
        for name in _ANSWER_FIELDS:
            if chunk.get(name) is not None:
                extras[name] = chunk[name]
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
            for call in members(delta, "tool_calls"):
                if isinstance(call, dict):
                    _add_call(calls, call)
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
    message: Json = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    whole = pivot.completion(ident or pivot.new_id("chatcmpl-"), model, created, message, finish or "stop", usage)
    whole.update(extras)
    return whole


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
    for item in members(body, "output"):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            text.extend(str(p.get("text", "")) for p in members(item, "content") if isinstance(p, dict) and "text" in p)
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


Event = Callable[..., SseEvent]


def responses_events(response: Json) -> list[SseEvent]:
    """A whole Responses API answer as the stream the API sends for it: the response
    created and in progress, each output item added, its text or arguments in one delta,
    done, and the response completed (or incomplete) as it was stored, ids and all."""
    seq = 0

    def event(kind: str, **data: Any) -> SseEvent:
        nonlocal seq
        out = SseEvent.of_json({"type": kind, "sequence_number": seq, **data}, event=kind)
        seq += 1
        return out

    started = {**response, "status": "in_progress", "output": [], "usage": None}
    out = [event("response.created", response=started), event("response.in_progress", response=started)]
    output = response.get("output")
    for index, item in enumerate(output if isinstance(output, list) else ()):
        if isinstance(item, dict):
            out.extend(_item_events(event, index, item))
    status = "incomplete" if response.get("status") == "incomplete" else "completed"
    out.append(event(f"response.{status}", response=response))
    return out


def _item_events(event: Event, index: int, item: Json) -> list[SseEvent]:
    """One output item: added, its parts or arguments, done as stored."""
    where = {"item_id": item.get("id"), "output_index": index}
    out: list[SseEvent] = []
    if item.get("type") == "message":
        parts = item.get("content")
        out.append(event("response.output_item.added", output_index=index,
                         item={**item, "status": "in_progress", "content": []}))  # fmt: skip
        for j, part in enumerate(parts if isinstance(parts, list) else ()):
            if isinstance(part, dict):
                out.extend(_part_events(event, {**where, "content_index": j}, part))
    elif item.get("type") == "function_call":
        arguments = str(item.get("arguments") or "")
        out.append(event("response.output_item.added", output_index=index,
                         item={**item, "arguments": "", "status": "in_progress"}))  # fmt: skip
        out.append(event("response.function_call_arguments.delta", **where, delta=arguments))
        out.append(event("response.function_call_arguments.done", **where, arguments=arguments))
    else:
        out.append(event("response.output_item.added", output_index=index, item=item))
    out.append(event("response.output_item.done", output_index=index, item=item))
    return out


def _part_events(event: Event, at: Json, part: Json) -> list[SseEvent]:
    """One content part of a message: added empty, its text (or refusal) in one delta,
    done; output text carries its logprobs, as the API's text events do."""
    if part.get("type") == "refusal":
        refusal = str(part.get("refusal") or "")
        return [
            event("response.content_part.added", **at, part={**part, "refusal": ""}),
            event("response.refusal.delta", **at, delta=refusal),
            event("response.refusal.done", **at, refusal=refusal),
            event("response.content_part.done", **at, part=part),
        ]
    text = str(part.get("text") or "")
    logprobs = part.get("logprobs") if isinstance(part.get("logprobs"), list) else []
    return [
        event("response.content_part.added", **at, part={**part, "text": ""}),
        event("response.output_text.delta", **at, delta=text, logprobs=logprobs),
        event("response.output_text.done", **at, text=text, logprobs=logprobs),
        event("response.content_part.done", **at, part=part),
    ]


__all__ = ["chunks_of", "completion_of", "responses_events", "responses_to_pivot"]
