"""Putting originals back into a streamed answer, event by event.

The fields that carry generated text are restored through a ``StreamRestorer``, one slot
per field: OpenAI ``choices[i].delta.content`` (also ``reasoning_content`` and
``refusal``), ``choices[i].delta.tool_calls[j].function.arguments`` and completions
``choices[i].text``; Gemini's own ``candidates[i].content.parts[].text`` (one slot a
candidate); Anthropic ``content_block_delta`` ``text`` and ``partial_json``
(``thinking`` keeps its placeholders: it is signed, see ``bodies``); responses
``response.output_text.delta``, ``response.refusal.delta`` and
``response.function_call_arguments.delta`` (reasoning text keeps its placeholders).

A slot's held-back tail is sent before the event that ends it (an OpenAI chunk with a
``finish_reason``, ``data: [DONE]``; in a Gemini chunk with a ``finishReason``, it is
added to that chunk's text), an Anthropic ``content_block_stop``,
``message_delta`` or ``message_stop``, a responses ``….done`` event) as an extra event of
the same shape, and whatever is still held when the stream ends is sent then. The
responses API's other events carry whole texts (``response.output_text.done``,
``response.completed``, the echoed ``instructions``): they are restored as whole answers
are. Events that carry no text pass through byte for byte.

With a ``check`` (ai-data-masking's deny words), every piece of restored text is checked
before it goes out, together with the end of what its slot sent before (``keep``
characters), so a word split between two events is caught; so are the whole texts. The
check raises (``masker.Denied``) and the stream stops there: what went out before stays
out, the event that completes the word does not.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from tollway.masking.bodies import check_answer, map_answer
from tollway.masking.vault import StreamRestorer, Vault
from tollway.protocols.lists import members
from tollway.protocols.sse import SseEvent

_CHAT_FIELDS = ("content", "reasoning_content", "refusal")
_ANTHROPIC_FIELDS = {"text_delta": "text", "input_json_delta": "partial_json"}
_ANTHROPIC_ENDS = frozenset({"message_delta", "message_stop"})
# responses: a delta event's type → (its text field, the type of the event that ends it)
_RESPONSES_DELTAS = {
    "response.output_text.delta": "response.output_text.done",
    "response.refusal.delta": "response.refusal.done",
    "response.function_call_arguments.delta": "response.function_call_arguments.done",
}
_RESPONSES_DONE = {done: delta for delta, done in _RESPONSES_DELTAS.items()}


class AnswerStream:
    """One streamed answer's restoration; ``event`` and ``end`` follow the plugin hooks."""

    def __init__(self, vault: Vault, check: Callable[[str], None] | None = None, keep: int = 0) -> None:
        self.restorer = StreamRestorer(vault)
        self.vault = vault
        self.check = check
        self.keep = keep
        self._sent: dict[Hashable, str] = {}  # each slot's last ``keep`` characters out
        self._chunk: dict[str, Any] = {}  # id/object/created/model of the last OpenAI chunk
        self._deltas: dict[Hashable, dict[str, Any]] = {}  # each responses slot's last delta event

    def event(self, ev: SseEvent) -> list[SseEvent]:
        raw = ev.raw
        if b"[DONE]" in raw and ev.data.strip() == "[DONE]":
            return [*self._flush_openai(None), ev]
        obj = ev.json()
        if not isinstance(obj, dict):
            return [ev]
        if isinstance(obj.get("choices"), list):
            return self._openai(ev, obj)
        if isinstance(obj.get("candidates"), list):
            return self._gemini(ev, obj)
        kind = obj.get("type")
        if isinstance(kind, str) and kind.startswith("response."):
            return self._responses(ev, obj, kind)
        if kind == "content_block_delta":
            return self._anthropic_delta(ev, obj)
        if kind == "content_block_stop":
            return [*self._flush_anthropic(obj.get("index")), ev]
        if kind in _ANTHROPIC_ENDS:
            return [*self._flush_anthropic(None), ev]
        return [ev]

    def end(self) -> list[SseEvent]:
        return [
            *self._flush_openai(None),
            *self._flush_anthropic(None),
            *self._flush_responses(None),
            *self._flush_gemini(),
        ]

    def _feed(self, slot: Hashable, text: str) -> str:
        out = self.restorer.feed(slot, text, json_text=_streams_json(slot))
        if self.check is not None and out:
            self._checked(slot, out)
        return out

    def _flush(self, slot: Hashable) -> str:
        out = self.restorer.flush(slot)
        if self.check is not None and out:
            self._checked(slot, out)
        return out

    def _checked(self, slot: Hashable, out: str) -> None:
        assert self.check is not None
        seen = self._sent.get(slot, "") + out
        self.check(seen)
        self._sent[slot] = seen[-self.keep :] if self.keep else ""

    # --- OpenAI -------------------------------------------------------------------------

    def _openai(self, ev: SseEvent, obj: dict[str, Any]) -> list[SseEvent]:
        self._chunk = {k: obj[k] for k in ("id", "object", "created", "model") if k in obj}
        changed = False
        before: list[SseEvent] = []
        for choice in obj["choices"]:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            if not _usable(index):
                continue  # no slot to keep its text in: it passes as it came
            final = choice.get("finish_reason") is not None
            if isinstance(choice.get("text"), str):
                changed |= self._restore(choice, "text", ("text", index), final)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                for field in _CHAT_FIELDS:
                    if isinstance(delta.get(field), str):
                        changed |= self._restore(delta, field, ("delta", index, field), final)
                for call in members(delta, "tool_calls"):
                    function = call.get("function") if isinstance(call, dict) else None
                    if (
                        isinstance(function, dict)
                        and isinstance(function.get("arguments"), str)
                        and _usable(call.get("index", 0))
                    ):
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
        new = self._feed(slot, old)
        if final:
            new += self._flush(slot)
        holder[field] = new
        return bool(new != old)

    def _flush_openai(self, choice: Any) -> list[SseEvent]:
        """Held text of one choice (``None``: of all) as chunks of the stream's shape."""
        out: list[SseEvent] = []
        for slot in [s for s in self.restorer.pending if _openai_slot(s, choice)]:
            text = self._flush(slot)
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

    # --- Gemini -------------------------------------------------------------------------

    def _gemini(self, ev: SseEvent, obj: dict[str, Any]) -> list[SseEvent]:
        changed = False
        for candidate in obj["candidates"]:
            if not isinstance(candidate, dict) or not _usable(index := candidate.get("index", 0)):
                continue
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            texts = [p for p in parts or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
            final = candidate.get("finishReason") is not None
            for n, part in enumerate(texts):
                changed |= self._restore(part, "text", ("gemini", index), final and n == len(texts) - 1)
            if final and not texts and (held := self._flush(("gemini", index))):
                if isinstance(parts, list):
                    parts.append({"text": held})
                else:
                    candidate["content"] = {**(content if isinstance(content, dict) else {}), "parts": [{"text": held}]}
                changed = True
        return [SseEvent.of_json(obj, ev.event)] if changed else [ev]

    def _flush_gemini(self) -> list[SseEvent]:
        """Held text of a stream that ended without a ``finishReason``."""
        out: list[SseEvent] = []
        for slot in [s for s in self.restorer.pending if isinstance(s, tuple) and s[0] == "gemini"]:
            content = {"role": "model", "parts": [{"text": self._flush(slot)}]}
            out.append(SseEvent.of_json({"candidates": [{"content": content, "index": slot[1]}]}))
        return out

    # --- Anthropic ----------------------------------------------------------------------

    def _anthropic_delta(self, ev: SseEvent, obj: dict[str, Any]) -> list[SseEvent]:
        delta = obj.get("delta")
        field = _ANTHROPIC_FIELDS.get(delta.get("type", "")) if isinstance(delta, dict) else None
        if field is None or not isinstance(delta, dict) or not isinstance(delta.get(field), str):
            return [ev]
        if not _usable(obj.get("index", 0)):
            return [ev]
        new = self._feed(("block", obj.get("index", 0), delta["type"]), delta[field])
        if new == delta[field]:
            return [ev]
        delta[field] = new
        return [SseEvent.of_json(obj, ev.event)]

    def _flush_anthropic(self, block: Any) -> list[SseEvent]:
        out: list[SseEvent] = []
        for slot in [s for s in self.restorer.pending if _anthropic_slot(s, block)]:
            text = self._flush(slot)
            assert isinstance(slot, tuple)
            delta_type = slot[2]
            delta = {"type": delta_type, _ANTHROPIC_FIELDS[delta_type]: text}
            event = {"type": "content_block_delta", "index": slot[1], "delta": delta}
            out.append(SseEvent.of_json(event, "content_block_delta"))
        return out

    # --- responses ----------------------------------------------------------------------

    def _responses(self, ev: SseEvent, obj: dict[str, Any], kind: str) -> list[SseEvent]:
        if kind in _RESPONSES_DELTAS:
            delta = obj.get("delta")
            slot = _responses_slot(kind, obj)
            if not isinstance(delta, str) or not all(_usable(part) for part in slot):
                return [ev]
            self._deltas[slot] = obj
            new = self._feed(slot, delta)
            if new == delta:
                return [ev]
            return [SseEvent.of_json({**obj, "delta": new}, ev.event)]
        if kind.startswith("response.reasoning"):
            return [ev]  # reasoning keeps its placeholders, as thinking does
        before: list[SseEvent] = []
        ended = _RESPONSES_DONE.get(kind)
        if ended is not None:
            before = self._flush_responses(_responses_slot(ended, obj), obj.get("sequence_number"))
        restored = map_answer(obj, self.vault.restore, self.vault.restore_json)
        if self.check is not None:
            check_answer(restored, self.check)
        if restored is obj:
            return [*before, ev]
        return [*before, SseEvent.of_json(restored, ev.event)]

    def _flush_responses(self, only: Hashable | None, sequence: Any = None) -> list[SseEvent]:
        """Held text as delta events of the shape of each slot's last one (so a client
        reads every field it expects); ``only``: of that slot (``None``: of all)."""
        out: list[SseEvent] = []
        for slot in [s for s in self.restorer.pending if isinstance(s, tuple) and s[0] in _RESPONSES_DELTAS]:
            if only is not None and slot != only:
                continue
            text = self._flush(slot)
            last = self._deltas.get(slot, {"type": slot[0]})
            event = {**last, "delta": text}
            if sequence is not None:
                event["sequence_number"] = sequence
            out.append(SseEvent.of_json(event, slot[0]))
        return out


_JSON_SLOTS = frozenset({"tool", "response.function_call_arguments.delta"})


def _streams_json(slot: Hashable) -> bool:
    """Whether a slot's text is JSON: a tool call's arguments (OpenAI's chat, the
    responses API) or input (Anthropic's ``input_json_delta``)."""
    if not isinstance(slot, tuple):
        return False
    return slot[0] in _JSON_SLOTS or slot[-1] == "input_json_delta"


def _usable(index: Any) -> bool:
    """Whether a stream's ``index`` can name a slot: a provider's ``[0]`` or ``{}`` (no
    key for a dict) makes its event one that passes through unrestored."""
    return not isinstance(index, (list, dict))


def _openai_slot(slot: Hashable, choice: Any) -> bool:
    return isinstance(slot, tuple) and slot[0] in ("text", "delta", "tool") and (choice is None or slot[1] == choice)


def _anthropic_slot(slot: Hashable, block: Any) -> bool:
    return isinstance(slot, tuple) and slot[0] == "block" and (block is None or slot[1] == block)


def _responses_slot(delta_kind: str, obj: dict[str, Any]) -> tuple[str, Any, Any]:
    """A responses text's slot: the delta type, the output item and its content part."""
    return (delta_kind, obj.get("output_index", 0), obj.get("content_index", 0))
