"""The OpenAI Responses API as a client's protocol (SPEC §9): a ``POST /v1/responses``
call to a provider of another protocol (Anthropic, Gemini) crosses the pivot like chat.

Request → pivot: ``input`` (a string, or ``message`` items with ``input_text`` /
``output_text`` parts, ``function_call`` and ``function_call_output`` items) →
``messages``; ``instructions`` → a system message; ``max_output_tokens`` →
``max_completion_tokens``; ``temperature``, ``top_p``, ``stream``; function ``tools`` and
``tool_choice``; ``reasoning.effort`` → ``reasoning_effort``; ``text.format``
``json_schema`` / ``json_object`` → ``response_format``. Refused (400
``unsupported_parameter``, naming the field): server-side state a translated provider
cannot keep (``previous_response_id``, ``conversation``, ``background``), built-in tools,
and input items other than the above. ``store`` is accepted and not kept: nothing can be
fetched back later (a ``GET /v1/responses/{id}`` goes to the provider, which has none).

Pivot → Responses: the ``chat.completion`` becomes a ``response`` object (``message``
with ``output_text``, ``function_call`` items, ``status``, ``usage`` with the cached and
reasoning details); a stream becomes the Responses event sequence
(``response.created`` … ``response.output_text.delta`` … ``response.completed``) with
sequence numbers, as the OpenAI SDK assembles it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from tollway.protocols.apis import RESPONSES
from tollway.protocols.codec import ApiPath, Json, StreamReader, TranslationError
from tollway.protocols.openai.wire import take_sampling
from tollway.protocols.sse import SseEvent

# Fields that ask the provider to keep or fetch state a translated call cannot have.
_STATEFUL = ("previous_response_id", "conversation", "background")


def _text_of(content: Any, where: str) -> str | list[Json]:
    """A message item's content as chat content: a string, or text and image parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError(f"{where}.content must be a string or a list of parts")
    parts: list[Json] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise TranslationError(f"{where}.content[{j}] of type {kind!r} cannot be translated")
    if all(p["type"] == "text" for p in parts):
        return "".join(str(p["text"]) for p in parts)
    return parts


def _messages(body: Json) -> list[Json]:
    messages: list[Json] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    given = body.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
        return messages
    if not isinstance(given, list):
        raise TranslationError("input must be a string or a list of items")
    for i, item in enumerate(given):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise TranslationError(f"{where} must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise TranslationError(f"{where}.role {role!r} cannot be translated")
            messages.append(
                {"role": "system" if role == "developer" else role, "content": _text_of(item.get("content"), where)}
            )
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": output if isinstance(output, str) else orjson.dumps(output).decode(),
                }
            )
        else:
            raise TranslationError(f"{where} of type {kind!r} cannot be translated")
    return messages


def _tools(tools: Any) -> list[Json]:
    out: list[Json] = []
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise TranslationError(f"tools[{i}] of type {kind!r} (a built-in tool) cannot be translated")
        fn = {"name": tool.get("name"), "parameters": tool.get("parameters") or {"type": "object"}}
        if tool.get("description"):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def request_to_pivot(body: Json) -> Json:
    for field in _STATEFUL:
        if body.get(field):
            raise TranslationError(f"{field} needs state this provider cannot keep")
    chat: Json = {"model": body.get("model"), "messages": _messages(body)}
    if isinstance(body.get("max_output_tokens"), int):
        chat["max_completion_tokens"] = body["max_output_tokens"]
    take_sampling(body, chat, ("temperature", "top_p", "user"))
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        chat["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        chat["reasoning_effort"] = reasoning["effort"]
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        chat["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": fmt.get("name") or "output", "schema": fmt.get("schema")},
        }
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    return chat


def _usage(usage: Any) -> Json | None:
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def _response(ident: str, model: Any, created: int, status: str, output: list[Json], usage: Json | None) -> Json:
    return {
        "id": ident,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": output,
        "usage": usage,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def _message_item(ident: str, text: str, status: str = "completed") -> Json:
    return {
        "type": "message",
        "id": ident,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _call_item(call: Json, status: str = "completed") -> Json:
    fn = call.get("function") or {}
    return {
        "type": "function_call",
        "id": f"fc_{call.get('id')}",
        "call_id": call.get("id"),
        "name": fn.get("name"),
        "arguments": fn.get("arguments") or "",
        "status": status,
    }


def response_from_pivot(chat: Json) -> Json:
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output: list[Json] = []
    if message.get("content"):
        output.append(_message_item(f"msg_{chat.get('id', 'x')}", str(message["content"])))
    output += [_call_item(call) for call in message.get("tool_calls") or ()]
    status = "incomplete" if choice.get("finish_reason") == "length" else "completed"
    return _response(
        f"resp_{chat.get('id', 'x')}",
        chat.get("model"),
        int(chat.get("created") or time.time()),
        status,
        output,
        _usage(chat.get("usage")),
    )


class ResponsesStreamWriter:
    """Pivot chunks → the Responses event sequence of one stream."""

    def __init__(self, client_request: Mapping[str, Any]) -> None:
        self._seq = 0
        self._started = False
        self._ident = "resp_x"
        self._model: Any = client_request.get("model")
        self._created = int(time.time())
        self._text: list[str] = []
        self._text_open = False
        self._calls: dict[int, Json] = {}
        self._usage: Json | None = None
        self._finish: str | None = None

    def _event(self, kind: str, **data: Any) -> SseEvent:
        event = SseEvent.of_json({"type": kind, "sequence_number": self._seq, **data}, event=kind)
        self._seq += 1
        return event

    def _open(self, chunk: Json) -> list[SseEvent]:
        self._started = True
        self._ident = f"resp_{chunk.get('id', 'x')}"
        self._model = chunk.get("model") or self._model
        shell = _response(self._ident, self._model, self._created, "in_progress", [], None)
        return [self._event("response.created", response=shell), self._event("response.in_progress", response=shell)]

    def feed(self, chunk: Json) -> list[SseEvent]:
        out: list[SseEvent] = [] if self._started else self._open(chunk)
        if chunk.get("usage") is not None:
            self._usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if not self._text_open:
                    self._text_open = True
                    item = {**_message_item(self._msg_id, "", "in_progress"), "content": []}
                    out += [
                        self._event("response.output_item.added", output_index=0, item=item),
                        self._event(
                            "response.content_part.added",
                            item_id=self._msg_id,
                            output_index=0,
                            content_index=0,
                            part={"type": "output_text", "text": "", "annotations": []},
                        ),
                    ]
                self._text.append(delta["content"])
                out.append(
                    self._event(
                        "response.output_text.delta",
                        item_id=self._msg_id,
                        output_index=0,
                        content_index=0,
                        delta=delta["content"],
                    )
                )
            for call in delta.get("tool_calls") or ():
                index = int(call.get("index", 0))
                fn = call.get("function") or {}
                known = self._calls.get(index)
                if known is None:
                    known = self._calls[index] = {
                        "id": call.get("id"),
                        "function": {"name": fn.get("name"), "arguments": ""},
                    }
                known["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    @property
    def _msg_id(self) -> str:
        return f"msg_{self._ident.removeprefix('resp_')}"

    def end(self) -> list[SseEvent]:
        out: list[SseEvent] = [] if self._started else self._open({})
        output: list[Json] = []
        if self._text_open:
            text = "".join(self._text)
            done = _message_item(self._msg_id, text)
            out += [
                self._event(
                    "response.output_text.done", item_id=self._msg_id, output_index=0, content_index=0, text=text
                ),
                self._event(
                    "response.content_part.done",
                    item_id=self._msg_id,
                    output_index=0,
                    content_index=0,
                    part=done["content"][0],
                ),
                self._event("response.output_item.done", output_index=0, item=done),
            ]
            output.append(done)
        for call in self._calls.values():
            item = _call_item(call)
            index = len(output)
            out += [
                self._event("response.output_item.added", output_index=index, item={**item, "status": "in_progress"}),
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                ),
                self._event("response.output_item.done", output_index=index, item=item),
            ]
            output.append(item)
        status = "incomplete" if self._finish == "length" else "completed"
        final = _response(self._ident, self._model, self._created, status, output, self._usage)
        out.append(self._event(f"response.{status}", response=final))
        return out


class ResponsesCodec:
    """The Responses API on the client side of a translation (see the module)."""

    name = "responses"

    def api_path(self, stream: bool, model: str) -> ApiPath:
        return ApiPath(RESPONSES)

    def request_to_pivot(self, body: Json) -> Json:
        return request_to_pivot(body)

    def response_from_pivot(self, chat: Json) -> Json:
        return response_from_pivot(chat)

    def stream_from_pivot(self, client_request: Mapping[str, Any]) -> ResponsesStreamWriter:
        return ResponsesStreamWriter(client_request)

    def error_from_pivot(self, status: int, body: bytes) -> bytes:
        return body  # the Responses API answers errors in OpenAI's shape

    # No provider is spoken to in this protocol through a translation (a Responses call
    # to an OpenAI-style provider passes as it came): the provider side is not written.

    def request_from_pivot(self, chat: Json) -> Json:
        raise TranslationError("the Responses API is not a provider protocol here")

    def response_to_pivot(self, body: Json) -> Json:
        raise TranslationError("the Responses API is not a provider protocol here")

    def stream_to_pivot(self) -> StreamReader:
        raise TranslationError("the Responses API is not a provider protocol here")

    def error_to_pivot(self, status: int, body: bytes) -> bytes:
        return body

    def model_ids(self, body: Any) -> list[str]:
        return []
