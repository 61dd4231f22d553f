"""Pivot chunks → the Responses API's event sequence, for one stream.

The sequence, as OpenAI's API reference lays it out and its SDK assembles it (every event
carries ``sequence_number``, counting from 0):

    response.created, response.in_progress
    per output item, in the order it starts:
      response.output_item.added
      a message: response.content_part.added, response.output_text.delta … (or
        response.refusal.delta …), response.output_text.done (refusal.done),
        response.content_part.done
      a function call: response.function_call_arguments.delta …,
        response.function_call_arguments.done
      a reasoning item (Claude's signed thinking): added with its first whole block;
        the blocks that follow it join it, as in a whole answer's one item
      response.output_item.done
    response.completed (or response.incomplete: the output limit or a content filter)

Deltas go out as their chunks arrive. A reasoning item closes when another item
starts (or at the end). A message item closes when a function call starts (text after
the calls is a new message item); calls close at the end, so the arguments of calls a
provider interleaves still reach the right item. A provider's error in the middle
(the pivot's error chunk) is an ``error`` event at once, and the stream ends with
``response.failed``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tollway.protocols import pivot, thinking_blocks
from tollway.protocols.codec import Json
from tollway.protocols.lists import members
from tollway.protocols.responses.response import (
    call_item,
    message_item,
    minted_id,
    reasoning_item,
    refusal_part,
    response_object,
    status_of,
    text_part,
    usage,
)
from tollway.protocols.sse import SseEvent

# A message part's kind → (its delta field and events, the field that holds its text).
_TEXT_EVENTS = {"output_text": ("response.output_text", "text"), "refusal": ("response.refusal", "refusal")}


@dataclass(slots=True)
class _Message:
    index: int
    ident: str
    parts: list[Json] = field(default_factory=list)  # closed parts
    kind: str | None = None  # the open part's kind
    text: list[str] = field(default_factory=list)  # the open part's text so far


@dataclass(slots=True)
class _Reasoning:
    index: int
    ident: str
    blocks: list[Json]


@dataclass(slots=True)
class _Call:
    index: int
    call_id: str
    name: Any
    arguments: list[str] = field(default_factory=list)
    closed: bool = False

    def item(self, status: str) -> Json:
        return call_item(self.call_id, self.name, "".join(self.arguments), status)


class ResponsesStreamWriter:
    """See the module; ``request`` is the client's body (its settings are echoed)."""

    def __init__(self, request: Mapping[str, Any]) -> None:
        self._request = request
        self._seq = 0
        self._ident: str | None = None
        self._model: Any = request.get("model")
        self._created = int(time.time())
        self._message: _Message | None = None  # the open message item
        self._reasoning_item: _Reasoning | None = None  # the open reasoning item
        self._calls: dict[int, _Call] = {}  # by the pivot's tool-call index
        self._done: dict[int, Json] = {}  # closed items by output index
        self._next_index = 0
        self._usage: Json | None = None
        self._finish: Any = None
        self._error: Json | None = None

    # ---- events ----------------------------------------------------------------------

    def _event(self, kind: str, **data: Any) -> SseEvent:
        event = SseEvent.of_json({"type": kind, "sequence_number": self._seq, **data}, event=kind)
        self._seq += 1
        return event

    def _response(self, status: str, output: list[Json], **extra: Json | None) -> Json:
        assert self._ident is not None
        return response_object(
            self._request, self._ident, self._model, self._created, status, output, self._usage, **extra
        )

    def _open(self, chunk: Json) -> list[SseEvent]:
        given = chunk.get("id")
        self._ident = minted_id(given)
        self._model = chunk.get("model") or self._model
        shell = self._response("in_progress", [])
        return [self._event("response.created", response=shell), self._event("response.in_progress", response=shell)]

    def _take_index(self) -> int:
        index, self._next_index = self._next_index, self._next_index + 1
        return index

    # ---- message items ---------------------------------------------------------------

    def _text(self, kind: str, delta: str) -> list[SseEvent]:
        out: list[SseEvent] = []
        msg = self._message
        if msg is None:
            assert self._ident is not None
            out += self._close_reasoning()
            msg = self._message = _Message(self._take_index(), f"msg_{self._ident.removeprefix('resp_')}_{self._seq}")
            item = message_item(msg.ident, [], "in_progress")
            out.append(self._event("response.output_item.added", output_index=msg.index, item=item))
        if msg.kind != kind:
            out += self._close_part(msg)
            msg.kind = kind
            empty = text_part("") if kind == "output_text" else refusal_part("")
            out.append(self._event("response.content_part.added", **self._where(msg), part=empty))
        msg.text.append(delta)
        name, _ = _TEXT_EVENTS[kind]
        extra: Json = {"logprobs": []} if kind == "output_text" else {}
        out.append(self._event(f"{name}.delta", **self._where(msg), delta=delta, **extra))
        return out

    @staticmethod
    def _where(msg: _Message) -> Json:
        return {"item_id": msg.ident, "output_index": msg.index, "content_index": len(msg.parts)}

    def _close_part(self, msg: _Message) -> list[SseEvent]:
        if msg.kind is None:
            return []
        name, text_field = _TEXT_EVENTS[msg.kind]
        text = "".join(msg.text)
        part = text_part(text) if msg.kind == "output_text" else refusal_part(text)
        extra: Json = {"logprobs": []} if msg.kind == "output_text" else {}
        out = [
            self._event(f"{name}.done", **self._where(msg), **{text_field: text}, **extra),
            self._event("response.content_part.done", **self._where(msg), part=part),
        ]
        msg.parts.append(part)
        msg.kind, msg.text = None, []
        return out

    def _close_message(self, status: str = "completed") -> list[SseEvent]:
        msg = self._message
        if msg is None:
            return []
        self._message = None
        out = self._close_part(msg)
        item = message_item(msg.ident, msg.parts, status)
        self._done[msg.index] = item
        out.append(self._event("response.output_item.done", output_index=msg.index, item=item))
        return out

    # ---- reasoning items -------------------------------------------------------------

    def _reasoning(self, blocks: list[Json]) -> list[SseEvent]:
        """Whole thinking blocks: they join the open reasoning item, or open one (a
        message open before it closes: what follows is a new item). A provider streams
        each block apart; a client must get them as the whole answer has them, in one
        item, to send them back as one turn's thinking."""
        if self._reasoning_item is not None:
            self._reasoning_item.blocks += blocks
            return []
        out = self._close_message()
        assert self._ident is not None
        rs = self._reasoning_item = _Reasoning(
            self._take_index(), f"rs_{self._ident.removeprefix('resp_')}_{self._seq}", list(blocks)
        )
        item = reasoning_item(rs.ident, rs.blocks)
        out.append(self._event("response.output_item.added", output_index=rs.index, item=item))
        return out

    def _close_reasoning(self) -> list[SseEvent]:
        rs = self._reasoning_item
        if rs is None:
            return []
        self._reasoning_item = None
        item = self._done[rs.index] = reasoning_item(rs.ident, rs.blocks)
        return [self._event("response.output_item.done", output_index=rs.index, item=item)]

    # ---- function-call items ---------------------------------------------------------

    def _tool_call(self, delta: Json) -> list[SseEvent]:
        out: list[SseEvent] = []
        position = delta.get("index")
        position = position if isinstance(position, int) else len(self._calls)
        fn = pivot.member(delta, "function")
        call = self._calls.get(position)
        if call is None:
            out += self._close_reasoning()
            out += self._close_message()
            # One item open at a time, as OpenAI streams them: the calls before this one
            # are whole (an Anthropic provider has ended their blocks already).
            for before in self._calls.values():
                if not before.closed:
                    out += self._close_call(before)
            given = delta.get("id")
            call_id = given if isinstance(given, str) and given else pivot.new_id("call_")
            call = self._calls[position] = _Call(self._take_index(), call_id, fn.get("name"))
            item = call.item("in_progress")
            out.append(self._event("response.output_item.added", output_index=call.index, item=item))
        fragment = fn.get("arguments")
        if isinstance(fragment, str) and fragment:
            call.arguments.append(fragment)
            if call.closed:
                # A provider that interleaves its calls' fragments: the item closed
                # already, its final state (response.completed) takes the rest.
                self._done[call.index] = call.item("completed")
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=f"fc_{call.call_id}",
                    output_index=call.index,
                    delta=fragment,
                )
            )
        return out

    def _close_call(self, call: _Call) -> list[SseEvent]:
        call.closed = True
        item = call.item("completed")
        self._done[call.index] = item
        return [
            self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=call.index,
                arguments=item["arguments"],
            ),
            self._event("response.output_item.done", output_index=call.index, item=item),
        ]

    # ---- the stream ------------------------------------------------------------------

    def feed(self, chunk: Json) -> list[SseEvent]:
        if self._error is not None:
            return []  # the stream has failed: nothing after the error
        out: list[SseEvent] = [] if self._ident is not None else self._open(chunk)
        if "error" in chunk and "choices" not in chunk:
            message, etype, code = pivot.read_error(pivot.dumps(chunk).encode())
            self._error = {"code": code or etype or "server_error", "message": message}
            out.append(self._event("error", code=self._error["code"], message=message, param=None))
            return out
        if chunk.get("usage") is not None:
            self._usage = usage(chunk["usage"])
        for choice in members(chunk, "choices"):
            delta = pivot.member(choice, "delta")
            signed = thinking_blocks.of_answer(delta)
            if signed:
                out += self._reasoning(signed)
            if isinstance(delta.get("content"), str) and delta["content"]:
                out += self._text("output_text", delta["content"])
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                out += self._text("refusal", delta["refusal"])
            for call in members(delta, "tool_calls"):
                if isinstance(call, dict):
                    out += self._tool_call(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def end(self) -> list[SseEvent]:
        out: list[SseEvent] = [] if self._ident is not None else self._open({})
        if self._error is not None:
            output = self._output("incomplete")
            return [*out, self._event("response.failed", response=self._response("failed", output, error=self._error))]
        status, incomplete = status_of(self._finish)
        out += self._close_reasoning()
        out += self._close_message(status)  # (the message the output limit cut is incomplete too)
        for call in sorted(self._calls.values(), key=lambda c: c.index):
            if not call.closed:
                out += self._close_call(call)
        final = self._response(status, self._output("completed"), incomplete=incomplete)
        out.append(self._event(f"response.{status}", response=final))
        return out

    def _output(self, unfinished: str) -> list[Json]:
        """Every item in output order; those never closed with ``unfinished`` status."""
        items = dict(self._done)
        rs = self._reasoning_item
        if rs is not None:
            items[rs.index] = reasoning_item(rs.ident, rs.blocks)
        msg = self._message
        if msg is not None:
            parts = [*msg.parts]
            if msg.kind is not None:
                text = "".join(msg.text)
                parts.append(text_part(text) if msg.kind == "output_text" else refusal_part(text))
            items[msg.index] = message_item(msg.ident, parts, unfinished)
        for call in self._calls.values():
            if not call.closed:
                items[call.index] = call.item(unfinished)
        return [items[i] for i in sorted(items)]
