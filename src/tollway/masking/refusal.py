"""The answer a denied request gets, in the shape the client asked for.

As Higress's ai-data-masking: a chat request gets an ordinary assistant answer whose text
is ``deny_message`` (streamed when the request streams), with status ``deny_code``
(default 200); any other body gets ``deny_raw_message`` as ``deny_content_type``.
Tollway gives the same for completions, Anthropic ``/v1/messages`` and the responses API
in their shapes, and fills in the fields Higress leaves out (``id``, ``object``,
``model``, ``finish_reason``, zero usage) so SDKs parse it as any other answer.
count_tokens and embeddings have no answer to put a message in: they get
``deny_raw_message``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from tollway.exchange import Reply
from tollway.protocols.apis import Api
from tollway.protocols.sse import SseEvent

_JSON = ("content-type", "application/json")
_SSE = ("content-type", "text/event-stream")


def refusal(api: Api, *, stream: bool, model: str, message: str, request_id: str, status: int) -> Reply | None:
    """The refusal for ``api``, or ``None`` when the API has no answer shape to give."""
    if api == "chat":
        return _chat(stream, model, message, request_id, status)
    if api == "completions":
        return _completion(stream, model, message, request_id, status)
    if api == "messages":
        return _anthropic(stream, model, message, request_id, status)
    if api == "responses":
        return _responses(stream, model, message, request_id, status)
    return None


def raw_refusal(body: str, content_type: str, status: int) -> Reply:
    return Reply(status, [("content-type", content_type)], body.encode())


def _sse(events: list[SseEvent], status: int) -> Reply:
    return Reply(status, [_SSE, ("cache-control", "no-cache")], b"".join(e.raw for e in events))


def _chat(stream: bool, model: str, message: str, request_id: str, status: int) -> Reply:
    head: dict[str, Any] = {"id": f"chatcmpl-{request_id}", "created": int(time.time()), "model": model}
    if not stream:
        body = {
            **head,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": message}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
        return Reply(status, [_JSON], orjson.dumps(body))
    head["object"] = "chat.completion.chunk"
    first = {"index": 0, "delta": {"role": "assistant", "content": message}, "finish_reason": None}
    last = {"index": 0, "delta": {}, "finish_reason": "stop"}
    events = [SseEvent.of_json({**head, "choices": [first]}), SseEvent.of_json({**head, "choices": [last]})]
    return _sse([*events, SseEvent.build("[DONE]")], status)


def _completion(stream: bool, model: str, message: str, request_id: str, status: int) -> Reply:
    head: dict[str, Any] = {"id": f"cmpl-{request_id}", "object": "text_completion", "created": int(time.time())}
    head["model"] = model
    if not stream:
        choice = {"index": 0, "text": message, "logprobs": None, "finish_reason": "stop"}
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return Reply(status, [_JSON], orjson.dumps({**head, "choices": [choice], "usage": usage}))
    first = {"index": 0, "text": message, "logprobs": None, "finish_reason": None}
    last = {"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}
    events = [SseEvent.of_json({**head, "choices": [first]}), SseEvent.of_json({**head, "choices": [last]})]
    return _sse([*events, SseEvent.build("[DONE]")], status)


def _anthropic(stream: bool, model: str, message: str, request_id: str, status: int) -> Reply:
    answer: dict[str, Any] = {
        "id": f"msg_{request_id}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": message}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    if not stream:
        return Reply(status, [_JSON], orjson.dumps(answer))
    start = {**answer, "content": [], "stop_reason": None}
    events = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": message}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 0},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return _sse([SseEvent.of_json(data, name) for name, data in events], status)


def _responses(stream: bool, model: str, message: str, request_id: str, status: int) -> Reply:
    text = {"type": "output_text", "text": message, "annotations": [], "logprobs": []}
    item = {"id": f"msg_{request_id}", "type": "message", "status": "completed", "role": "assistant"}
    done: dict[str, Any] = {
        "id": f"resp_{request_id}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": [{**item, "content": [text]}],
        "usage": {
            "input_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 0,
        },
    }
    if not stream:
        return Reply(status, [_JSON], orjson.dumps(done))
    started = {**done, "status": "in_progress", "output": [], "usage": None}
    place = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **place, "part": {**text, "text": ""}},
        {"type": "response.output_text.delta", **place, "delta": message, "logprobs": []},
        {"type": "response.output_text.done", **place, "text": message, "logprobs": []},
        {"type": "response.content_part.done", **place, "part": text},
        {"type": "response.output_item.done", "output_index": 0, "item": {**item, "content": [text]}},
        {"type": "response.completed", "response": done},
    ]
    return _sse([SseEvent.of_json({**e, "sequence_number": n}, e["type"]) for n, e in enumerate(events)], status)
