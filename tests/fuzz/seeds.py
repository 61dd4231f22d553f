"""Where the hostile-provider fuzzing starts: well-formed responses and the recorded
provider streams, in the fuzz target's input format (two bytes of choices, then the
provider's bytes; see hostile_provider.py)."""

from __future__ import annotations

from pathlib import Path

NATIVES = ("openai", "anthropic", "gemini")
CLIENTS = ("openai", "anthropic")


def seed_inputs(which: str, transcripts: Path) -> list[bytes]:
    """Inputs to start from, so the fuzzer mutates what providers really send."""
    if which == "h1":
        responses = [
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {}\n\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        ]
        return [bytes([flags, seed]) + r for r in responses for flags in (0, 1) for seed in (0, 7)]
    seeds = []
    for i, native in enumerate(NATIVES):
        for path in sorted((transcripts / native).glob("*.sse")):
            for client in range(len(CLIENTS)):
                seeds.append(bytes([(i << 1) | (client << 3) | 1, 5]) + path.read_bytes())
    return seeds
