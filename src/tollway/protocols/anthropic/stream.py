"""Anthropic Messages streams ↔ OpenAI chunk streams (the pivot).

An Anthropic stream is ``message_start`` (id, model, input tokens), then per content
block ``content_block_start`` / ``content_block_delta``… / ``content_block_stop`` (text
as ``text_delta``, tool input as ``input_json_delta`` fragments, thinking as
``thinking_delta``, its signature as ``signature_delta``; a ``redacted_thinking`` block
comes whole in its ``content_block_start``), then ``message_delta`` (stop reason, cumulative output tokens) and
``message_stop``; ``ping`` may come anywhere, ``error`` ends a failed stream.

Reading, each text or tool-argument fragment becomes one chunk at once (never held
back); a thinking block, once whole (at its ``content_block_stop``; a redacted one at
once), is also a delta's ``thinking_blocks``, so its signature reaches the client; the
usage chunk follows ``message_stop``. Writing, chunks open and close blocks
as their kind changes (thinking, text, one block per tool call), ``message_delta``
goes out once both the finish reason and the usage chunk are in (or at the end), and
``message_stop`` closes the stream. ``message_start`` carries the input tokens when the
first chunk already reports usage, else 0; the final counts are in ``message_delta``,
whose usage Anthropic's SDKs merge into the message.
"""

from __future__ import annotations

from typing import Any

from tollway.protocols import pivot, thinking_blocks
from tollway.protocols.anthropic.errors import error_event_from_pivot, error_to_pivot_obj
from tollway.protocols.anthropic.response import (
    finish_reason,
    id_from_pivot,
    id_to_pivot,
    stop_reason,
    usage_from_pivot,
    usage_to_pivot,
)
from tollway.protocols.codec import Json
from tollway.protocols.lists import members
from tollway.protocols.sse import SseEvent


def _index(event: Json) -> int | None:
    """A content block event's ``index``: a number, or None (a provider's list or object
    there would be no key to find the block by)."""
    index = event.get("index")
    return index if type(index) is int else None


class AnthropicStreamReader:
    """Anthropic SSE events → pivot chunks."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = pivot.now()
        self._usage: Json = {}
        self._tools: dict[int | None, int] = {}  # content block index → tool call index
        self._thinking: dict[int | None, Json] = {}  # content block index → the thinking block so far
        # Tool calls (by content block index) whose arguments are still none at all.
        self._no_arguments: set[int | None] = set()
        self._usage_sent = False
        # The usage so far is ``message_start``'s placeholder (1 output token), not yet
        # ``message_delta``'s count: a stream that breaks off now has its output estimated.
        self.usage_is_placeholder = False

    def _chunk(self, delta: Json, finish: str | None = None) -> Json:
        if not self.id:
            self.id = pivot.new_id("chatcmpl-")
        return pivot.chunk(self.id, self.model, self.created, delta, finish)

    def _merge_usage(self, u: Any) -> None:
        if isinstance(u, dict):
            self._usage.update({k: v for k, v in u.items() if v is not None})

    def _usage_chunk(self) -> list[Json]:
        usage = usage_to_pivot(self._usage) if self._usage else None
        if usage is None or self._usage_sent:
            return []
        self._usage_sent = True
        return [pivot.usage_chunk(self.id or pivot.new_id("chatcmpl-"), self.model, self.created, usage)]

    def feed(self, event: SseEvent) -> list[Json]:
        obj = event.json()
        if not isinstance(obj, dict):
            return []
        kind = obj.get("type") or event.event
        if kind == "message_start":
            msg = pivot.member(obj, "message")
            self.id = id_to_pivot(msg.get("id"))
            self.model = str(msg.get("model") or "")
            self._merge_usage(msg.get("usage"))
            self.usage_is_placeholder = isinstance(msg.get("usage"), dict)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(_index(obj), obj.get("content_block"))
        if kind == "content_block_delta":
            return self._block_delta(_index(obj), obj.get("delta"))
        if kind == "message_delta":
            self._merge_usage(obj.get("usage"))
            if isinstance(obj.get("usage"), dict):
                self.usage_is_placeholder = False
            delta = obj.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            return [self._chunk({}, finish_reason(reason))] if reason else []
        if kind == "content_block_stop":
            index = _index(obj)
            if index in self._no_arguments:
                # A tool called with no input streams none: OpenAI's clients parse
                # the arguments as JSON, and "" is none (a whole answer gives "{}").
                self._no_arguments.discard(index)
                call = {"index": self._tools[index], "function": {"arguments": "{}"}}
                return [self._chunk({"tool_calls": [call]})]
            return self._signed(self._thinking.pop(index, None))
        if kind == "message_stop":
            return self._usage_chunk()
        if kind == "error":
            return [error_to_pivot_obj(200, obj.get("error"))]
        return []  # ping, and event types added later

    def _signed(self, block: Any) -> list[Json]:
        """A whole thinking block as a delta's ``thinking_blocks``; none for anything else."""
        whole = thinking_blocks.block(block)
        return [self._chunk({thinking_blocks.FIELD: [whole]})] if whole is not None else []

    def _block_start(self, index: int | None, block: Any) -> list[Json]:
        if not isinstance(block, dict):
            return []
        kind = block.get("type")
        if kind == "tool_use":
            n = len(self._tools)
            self._tools[index] = n
            given = block.get("input")
            if not given:
                self._no_arguments.add(index)
            call = {
                "index": n,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": pivot.dumps(given) if given else ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if kind == "thinking":
            self._thinking[index] = {"type": "thinking", "thinking": "", "signature": "", **block}
            if block.get("thinking"):
                return [self._chunk({"reasoning_content": block["thinking"]})]
        if kind == "redacted_thinking":
            return self._signed(block)
        return []

    def _block_delta(self, index: int | None, delta: Any) -> list[Json]:
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "input_json_delta" and delta.get("partial_json") and index in self._tools:
            self._no_arguments.discard(index)
            call = {"index": self._tools[index], "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        thinking = self._thinking.get(index)
        if kind == "signature_delta" and thinking is not None and isinstance(delta.get("signature"), str):
            thinking["signature"] = str(thinking["signature"]) + delta["signature"]
        if kind == "thinking_delta" and delta.get("thinking"):
            if thinking is not None:
                thinking["thinking"] = str(thinking["thinking"]) + str(delta["thinking"])
            return [self._chunk({"reasoning_content": delta["thinking"]})]
        return []  # signature_delta, citations_delta

    def end(self) -> list[Json]:
        return self._usage_chunk()


def _event(obj: Json) -> SseEvent:
    return SseEvent.of_json(obj, str(obj["type"]))


class AnthropicStreamWriter:
    """Pivot chunks → Anthropic SSE events, the whole documented sequence."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._started = False
        self._open: int | None = None  # index of the open content block
        self._open_kind = ""
        self._next = 0
        self._tool_blocks: dict[Any, int] = {}  # tool call index → content block index
        self._stop: str | None = None
        self._usage: Json | None = None
        self._delta_sent = False
        self._failed = False

    def feed(self, chunk: Json) -> list[SseEvent]:
        if "error" in chunk and "choices" not in chunk:
            self._failed = True
            return [_event(error_event_from_pivot(chunk))]
        out = self._start(chunk)
        for choice in members(chunk, "choices"):
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = pivot.member(choice, "delta")
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out += self._text("thinking", reasoning)
            for block in thinking_blocks.of_answer(delta):
                out += self._thinking_block(block)
            text = pivot.answer_text(delta)  # (a refusal too: Anthropic says one as text)
            if text:
                out += self._text("text", text)
            for call in members(delta, "tool_calls"):
                if isinstance(call, dict):
                    out += self._tool(call)
            if choice.get("finish_reason"):
                out += self._close()
                self._stop = stop_reason(choice["finish_reason"])
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        if self._stop is not None and self._usage is not None and not self._delta_sent:
            out.append(self._message_delta())
        return out

    def end(self) -> list[SseEvent]:
        if self._failed:
            return []
        out = self._start({}) + self._close()
        if not self._delta_sent:
            out.append(self._message_delta())
        out.append(_event({"type": "message_stop"}))
        return out

    def _start(self, chunk: Json) -> list[SseEvent]:
        if self._started:
            return []
        self._started = True
        usage = usage_from_pivot(chunk.get("usage"))
        usage["output_tokens"] = 0
        message: Json = {
            "id": id_from_pivot(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [_event({"type": "message_start", "message": message})]

    def _open_block(self, kind: str, block: Json) -> list[SseEvent]:
        out = self._close()
        self._open, self._open_kind = self._next, kind
        self._next += 1
        return [*out, _event({"type": "content_block_start", "index": self._open, "content_block": block})]

    def _close(self) -> list[SseEvent]:
        if self._open is None:
            return []
        index, self._open, self._open_kind = self._open, None, ""
        return [_event({"type": "content_block_stop", "index": index})]

    def _text(self, kind: str, text: str) -> list[SseEvent]:
        out: list[SseEvent] = []
        if self._open is None or self._open_kind != kind:
            block: Json = {"type": "text", "text": ""}
            if kind == "thinking":
                block = {"type": "thinking", "thinking": "", "signature": ""}
            out = self._open_block(kind, block)
        delta: Json = {"type": "text_delta", "text": text}
        if kind == "thinking":
            delta = {"type": "thinking_delta", "thinking": text}
        out.append(_event({"type": "content_block_delta", "index": self._open, "delta": delta}))
        return out

    def _thinking_block(self, block: Json) -> list[SseEvent]:
        """A whole thinking block: the open thinking block (whose text streamed as
        reasoning) gets its signature and closes; without one, the block is sent whole."""
        if block["type"] == "redacted_thinking":
            return [*self._open_block("redacted_thinking", block), *self._close()]
        out = [] if self._open_kind == "thinking" else self._text("thinking", block["thinking"])
        delta = {"type": "signature_delta", "signature": block["signature"]}
        out.append(_event({"type": "content_block_delta", "index": self._open, "delta": delta}))
        return [*out, *self._close()]

    def _tool(self, call: Json) -> list[SseEvent]:
        out: list[SseEvent] = []
        key = call.get("index", 0)
        fn = pivot.member(call, "function")
        if key not in self._tool_blocks:
            block: Json = {
                "type": "tool_use",
                "id": call.get("id") or pivot.new_id("toolu_"),
                "name": fn.get("name") or "",
                "input": {},
            }
            out = self._open_block("tool_use", block)
            self._tool_blocks[key] = self._next - 1
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            delta = {"type": "input_json_delta", "partial_json": args}
            out.append(_event({"type": "content_block_delta", "index": self._tool_blocks[key], "delta": delta}))
        return out

    def _message_delta(self) -> SseEvent:
        self._delta_sent = True
        usage = usage_from_pivot(self._usage) if self._usage is not None else {"output_tokens": 0}
        return _event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": self._stop or "end_turn", "stop_sequence": None},
                "usage": usage,
            }
        )
