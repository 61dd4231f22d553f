"""Reading the provider transcripts in ``tests/fixtures/transcripts`` and driving codec
stream readers and writers over them, for the protocol tests (no sockets)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tollway.protocols.codec import StreamReader, StreamWriter
from tollway.protocols.sse import SseEvent, SseParser

TRANSCRIPTS = Path(__file__).parent.parent / "fixtures" / "transcripts"


def load(provider: str, name: str) -> Any:
    """A JSON transcript, parsed afresh (tests may change it)."""
    return json.loads((TRANSCRIPTS / provider / name).read_text(encoding="utf-8"))


def raw(provider: str, name: str) -> bytes:
    return (TRANSCRIPTS / provider / name).read_bytes()


def parse(pieces: Iterable[bytes]) -> list[SseEvent]:
    """The SSE events in ``pieces`` as they would arrive over the network."""
    parser = SseParser()
    events = [e for piece in pieces for e in parser.feed(piece)]
    return events + parser.flush()


def read(reader: StreamReader, events: Iterable[SseEvent]) -> list[dict[str, Any]]:
    """Every pivot chunk a reader makes of ``events``, ``end`` included."""
    chunks = [c for e in events for c in reader.feed(e)]
    return chunks + reader.end()


def write(writer: StreamWriter, chunks: Iterable[dict[str, Any]]) -> list[SseEvent]:
    events = [e for c in chunks for e in writer.feed(c)]
    return events + writer.end()


def without_volatile(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chunks without ``created`` (a clock reading) for comparing two readings."""
    return [{k: v for k, v in c.items() if k != "created"} for c in chunks]


class Assembled:
    """What a client assembles from pivot chunks: text, reasoning, tool calls, finish
    reason and usage (the way the OpenAI SDK's stream helpers do)."""

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.text = ""
        self.reasoning = ""
        self.calls: dict[int, dict[str, str]] = {}
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.errors: list[dict[str, Any]] = []
        self.roles = 0
        for c in chunks:
            if "error" in c and "choices" not in c:
                self.errors.append(c["error"])
                continue
            if c.get("usage"):
                self.usage = c["usage"]
            for choice in c.get("choices") or ():
                delta = choice.get("delta") or {}
                self.roles += "role" in delta
                self.text += delta.get("content") or ""
                self.reasoning += delta.get("reasoning_content") or ""
                for call in delta.get("tool_calls") or ():
                    slot = self.calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                    fn = call.get("function") or {}
                    slot["id"] = call.get("id") or slot["id"]
                    slot["name"] = fn.get("name") or slot["name"]
                    slot["arguments"] += fn.get("arguments") or ""
                if choice.get("finish_reason"):
                    self.finish = choice["finish_reason"]

    def arguments(self) -> list[Any]:
        return [json.loads(self.calls[i]["arguments"]) for i in sorted(self.calls)]

    def names(self) -> list[str]:
        return [self.calls[i]["name"] for i in sorted(self.calls)]
