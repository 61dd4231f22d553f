"""OpenAI stream chunks as the data-masking tests write them, and the text a client
assembles from them."""

from __future__ import annotations

from typing import Any

from tollway.protocols.sse import SseEvent


def chunk(text: str | None = None, finish: str | None = None, index: int = 0, **delta: Any) -> SseEvent:
    if text is not None:
        delta["content"] = text
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return SseEvent.of_json({"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]})


def streamed(events: list[SseEvent]) -> str:
    """The text a client assembles from OpenAI chunks."""
    out = []
    for ev in events:
        obj = ev.json()
        if isinstance(obj, dict):
            for choice in obj["choices"]:
                out.append(choice.get("delta", {}).get("content") or choice.get("text") or "")
    return "".join(out)
