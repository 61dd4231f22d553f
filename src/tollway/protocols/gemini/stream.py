"""Gemini ``streamGenerateContent?alt=sse`` streams ↔ OpenAI chunk streams (the pivot).

Each Gemini event is a whole ``GenerateContentResponse`` holding the next piece of each
candidate: text parts, whole ``functionCall`` parts (Gemini never splits arguments), a
``finishReason`` on the candidate's last piece, and ``usageMetadata`` (cumulative; the
last one is final). There is no closing event: the stream just ends.

Reading, each event becomes one chunk per candidate that moved (the first with
``role``); a function call becomes one tool-call delta with its whole arguments; the
usage chunk is sent at ``end``, from the last ``usageMetadata`` seen. Writing, text
deltas go out as they come, tool-call fragments are gathered and sent as whole
``functionCall`` parts with the finish reason, and the usage chunk becomes a last
event with ``usageMetadata``.
"""

from __future__ import annotations

from typing import Any

from tollway.protocols import pivot
from tollway.protocols.codec import Json
from tollway.protocols.gemini.errors import error_event_from_pivot, error_obj_to_pivot
from tollway.protocols.gemini.request import call_to_pivot
from tollway.protocols.gemini.response import (
    FINISH_TO_NATIVE,
    finish_reason,
    id_to_pivot,
    message_parts,
    parts_of,
    usage_from_pivot,
    usage_to_pivot,
)
from tollway.protocols.lists import members
from tollway.protocols.sse import SseEvent


class GeminiStreamReader:
    """Gemini SSE events → pivot chunks."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = pivot.now()
        self._usage: Any = None
        self._started: set[Any] = set()
        self._calls: dict[Any, int] = {}  # candidate index → tool calls so far

    def feed(self, event: SseEvent) -> list[Json]:
        obj = event.json()
        if isinstance(obj, list):  # a JSON-array framed answer sent as one event
            return [c for item in obj if isinstance(item, dict) for c in self._response(item)]
        return self._response(obj) if isinstance(obj, dict) else []

    def _response(self, obj: Json) -> list[Json]:
        if "error" in obj:
            return [error_obj_to_pivot(obj["error"])]
        if not self.id:
            self.id = id_to_pivot(obj.get("responseId"))
        if not self.model and obj.get("modelVersion"):
            self.model = str(obj["modelVersion"])
        if isinstance(obj.get("usageMetadata"), dict):
            self._usage = obj["usageMetadata"]
        out: list[Json] = []
        candidates = obj.get("candidates")
        if not isinstance(candidates, list):  # a provider's answer is not to be trusted
            candidates = []
        for i, candidate in enumerate(candidates):
            if isinstance(candidate, dict):
                index = candidate.get("index", i)
                out.extend(self._candidate(index if type(index) is int else i, candidate))
        if not candidates and pivot.member(obj, "promptFeedback").get("blockReason"):
            out.append(pivot.chunk(self.id, self.model, self.created, {"role": "assistant"}, "content_filter"))
        return out

    def _candidate(self, index: Any, candidate: Json) -> list[Json]:
        delta: Json = {}
        if index not in self._started:
            self._started.add(index)
            delta["role"] = "assistant"
        parts = parts_of(candidate)
        texts = [str(p["text"]) for p in parts if "text" in p and not p.get("thought")]
        thoughts = [str(p["text"]) for p in parts if "text" in p and p.get("thought")]
        if texts:
            delta["content"] = "".join(texts)
        if thoughts:
            delta["reasoning_content"] = "".join(thoughts)
        calls = []
        for p in parts:
            if "functionCall" in p:
                n = self._calls.get(index, 0)
                self._calls[index] = n + 1
                given = pivot.member(p, "functionCall").get("id")
                call = call_to_pivot(p, given if isinstance(given, str) and given else pivot.new_id("call_"))
                calls.append({"index": n, **call})
        if calls:
            delta["tool_calls"] = calls
        finish = finish_reason(candidate.get("finishReason"), index in self._calls)
        if not delta and finish is None:
            return []
        return [pivot.chunk(self.id, self.model, self.created, delta, finish, index if isinstance(index, int) else 0)]

    def end(self) -> list[Json]:
        usage = usage_to_pivot(self._usage)
        self._usage = None
        if usage is None:
            return []
        return [pivot.usage_chunk(self.id or pivot.new_id("chatcmpl-"), self.model, self.created, usage)]


class GeminiStreamWriter:
    """Pivot chunks → Gemini SSE events."""

    def __init__(self) -> None:
        self._calls: dict[tuple[Any, Any], Json] = {}  # (choice, tool index) → gathered call
        self._id = ""
        self._model = ""

    def feed(self, chunk: Json) -> list[SseEvent]:
        if "error" in chunk and "choices" not in chunk:
            return [SseEvent.of_json(error_event_from_pivot(chunk))]
        self._id = self._id or str(chunk.get("id") or "")
        self._model = self._model or str(chunk.get("model") or "")
        candidates = []
        for choice in members(chunk, "choices"):
            if isinstance(choice, dict):
                candidate = self._candidate(choice)
                if candidate is not None:
                    candidates.append(candidate)
        out = [SseEvent.of_json(self._response({"candidates": candidates}))] if candidates else []
        if isinstance(chunk.get("usage"), dict):
            out.append(SseEvent.of_json(self._response({"usageMetadata": usage_from_pivot(chunk["usage"])})))
        return out

    def _candidate(self, choice: Json) -> Json | None:
        index = choice.get("index", 0)
        delta = pivot.member(choice, "delta")
        for call in members(delta, "tool_calls"):
            if not isinstance(call, dict):
                continue
            fn = pivot.member(call, "function")
            gathered = self._calls.setdefault((index, call.get("index", 0)), {"arguments": ""})
            for key in ("id", "extra_content"):
                if call.get(key):
                    gathered[key] = call[key]
            if fn.get("name"):
                gathered["name"] = fn["name"]
            gathered["arguments"] += str(fn.get("arguments") or "")
        message = {k: v for k, v in delta.items() if k != "tool_calls"}
        finish = choice.get("finish_reason")
        if finish:
            message["tool_calls"] = [
                {"id": c.get("id"), "extra_content": c.get("extra_content"), "function": c}
                for (i, _), c in self._calls.items()
                if i == index
            ]
        parts = message_parts(message)
        if not parts and not finish:
            return None
        candidate: Json = {"content": {"role": "model", "parts": parts}, "index": index}
        if finish:
            candidate["finishReason"] = FINISH_TO_NATIVE.get(str(finish), "STOP")
        return candidate

    def _response(self, body: Json) -> Json:
        if self._model:
            body["modelVersion"] = self._model
        if self._id:
            body["responseId"] = self._id.removeprefix("chatcmpl-")
        return body

    def end(self) -> list[SseEvent]:
        return []
