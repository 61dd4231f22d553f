"""Putting originals back into a streamed answer, event by event.

The fields that carry generated text are restored through a ``StreamRestorer``, one slot
per field: OpenAI ``choices[i].delta.content`` (also ``reasoning_content`` and
``refusal``), ``choices[i].delta.tool_calls[j].function.arguments`` and completions
``choices[i].text``; Anthropic ``content_block_delta`` ``text`` and ``partial_json``
(``thinking`` keeps its placeholders: it is signed, see ``bodies``).

A slot's held-back tail is sent before the event that ends it (an OpenAI chunk with a
``finish_reason``, ``data: [DONE]``, an Anthropic ``content_block_stop``,
``message_delta`` or ``message_stop``) as an extra event of the same shape, and whatever
is still held when the stream ends is sent then. Events that carry no text pass through
byte for byte.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from tollway.masking.vault import StreamRestorer, Vault
from tollway.protocols.sse import SseEvent

_CHAT_FIELDS = ("content", "reasoning_content", "refusal")
_ANTHROPIC_FIELDS = {"text_delta": "text", "input_json_delta": "partial_json"}
_ANTHROPIC_ENDS = frozenset({"message_delta", "message_stop"})


class AnswerStream:
    """One streamed answer's restoration; ``event`` and ``end`` follow the plugin hooks."""

    def __init__(self, vault: Vault) -> None:
        self.restorer = StreamRestorer(vault)
        self._chunk: dict[str, Any] = {}  # id/object/created/model of the last OpenAI chunk

    def event(self, ev: SseEvent) -> list[SseEvent]:
        raw = ev.raw
        if b"[DONE]" in raw and ev.data.strip() == "[DONE]":
            return [*self._flush_openai(None), ev]
        obj = ev.json()
        if not isinstance(obj, dict):
            return [ev]
        if isinstance(obj.get("choices"), list):
            return self._openai(ev, obj)
        kind = obj.get("type")
        if kind == "content_block_delta":
            return self._anthropic_delta(ev, obj)
        if kind == "content_block_stop":
            return [*self._flush_anthropic(obj.get("index")), ev]
        if kind in _ANTHROPIC_ENDS:
            return [*self._flush_anthropic(None), ev]
        return [ev]

    def end(self) -> list[SseEvent]:
        return [*self._flush_openai(None), *self._flush_anthropic(None)]

    # --- OpenAI -------------------------------------------------------------------------

    def _openai(self, ev: SseEvent, obj: dict[str, Any]) -> list[SseEvent]:
        self._chunk = {k: obj[k] for k in ("id", "object", "created", "model") if k in obj}
        changed = False
        before: list[SseEvent] = []
        for choice in obj["choices"]:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            final = choice.get("finish_reason") is not None
            if isinstance(choice.get("text"), str):
                changed |= self._restore(choice, "text", ("text", index), final)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                for field in _CHAT_FIELDS:
                    if isinstance(delta.get(field), str):
                        changed |= self._restore(delta, field, ("delta", index, field), final)
                for call in delta.get("tool_calls") or ():
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                        slot = ("tool", index, call.get("index", 0))
                        changed |= self._restore(function, "arguments", slot, final)
            if final:  # what other fields of this choice still hold came before this event
                before.extend(self._flush_openai(index))
        if not changed:
            return [*before, ev]
        return [*before, SseEvent.of_json(obj, ev.event)]

    def _restore(self, holder: dict[str, Any], field: str, slot: Hashable, final: bool) -> bool:
        """Restores ``holder[field]`` in place (all of it when the slot ends here)."""
        old = holder[field]
        new = self.restorer.feed(slot, old)
        if final:
            new += self.restorer.flush(slot)
        holder[field] = new
        return bool(new != old)

    def _flush_openai(self, choice: Any) -> list[SseEvent]:
        """Held text of one choice (``None``: of all) as chunks of the stream's shape."""
        out: list[SseEvent] = []
        for slot in [s for s in self.restorer.pending if _openai_slot(s, choice)]:
            text = self.restorer.flush(slot)
            assert isinstance(slot, tuple)
            kind, index = slot[0], slot[1]
            if kind == "text":
                part: dict[str, Any] = {"index": index, "text": text, "finish_reason": None}
            elif kind == "delta":
                part = {"index": index, "delta": {slot[2]: text}, "finish_reason": None}
            else:
                call = {"index": slot[2], "function": {"arguments": text}}
                part = {"index": index, "delta": {"tool_calls": [call]}, "finish_reason": None}
            out.append(SseEvent.of_json({**self._chunk, "choices": [part]}))
        return out

    # --- Anthropic ----------------------------------------------------------------------

    def _anthropic_delta(self, ev: SseEvent, obj: dict[str, Any]) -> list[SseEvent]:
        delta = obj.get("delta")
        field = _ANTHROPIC_FIELDS.get(delta.get("type", "")) if isinstance(delta, dict) else None
        if field is None or not isinstance(delta, dict) or not isinstance(delta.get(field), str):
            return [ev]
        new = self.restorer.feed(("block", obj.get("index", 0), delta["type"]), delta[field])
        if new == delta[field]:
            return [ev]
        delta[field] = new
        return [SseEvent.of_json(obj, ev.event)]

    def _flush_anthropic(self, block: Any) -> list[SseEvent]:
        out: list[SseEvent] = []
        for slot in [s for s in self.restorer.pending if _anthropic_slot(s, block)]:
            text = self.restorer.flush(slot)
            assert isinstance(slot, tuple)
            delta_type = slot[2]
            delta = {"type": delta_type, _ANTHROPIC_FIELDS[delta_type]: text}
            event = {"type": "content_block_delta", "index": slot[1], "delta": delta}
            out.append(SseEvent.of_json(event, "content_block_delta"))
        return out


def _openai_slot(slot: Hashable, choice: Any) -> bool:
    return isinstance(slot, tuple) and slot[0] != "block" and (choice is None or slot[1] == choice)


def _anthropic_slot(slot: Hashable, block: Any) -> bool:
    return isinstance(slot, tuple) and slot[0] == "block" and (block is None or slot[1] == block)
