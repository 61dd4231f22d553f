"""Fuzz target: a hostile provider's bytes through the lean HTTP/1.1 client's response
side (upstream/h1.py over llhttp) and through the stream path (SSE parser, pass-through
and every translation between the protocols).

Run by tests/fuzz/test_hostile_provider.py (bounded time, seeded from well-formed
responses and the recorded provider streams); by hand, with a corpus folder of your own:
``.venv/bin/python tests/fuzz/hostile_provider.py h1 CORPUS -max_total_time=60`` (or ``sse``).
A crash is any exception that escapes: the gateway must turn every provider byte
sequence into an answer, a ProtocolFailure or an error event, never a bug.
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Any

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports():
    from tollway.exchange import Exchange, Request
    from tollway.headers import Headers
    from tollway.protocols.registry import codec_for
    from tollway.protocols.sse import SseEvent, SseParser
    from tollway.proxy.translation import Passthrough, StreamTranslation
    from tollway.upstream import ProtocolFailure, h1

from tests.fuzz.seeds import CLIENTS, NATIVES


class _Transport:
    """What a connection sees of its socket."""

    def __init__(self) -> None:
        self.closed = False
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def write(self, data: bytes) -> None:
        return None

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default  # no socket behind it (the connection then asks for no quick ACKs)


# An input is two bytes of choices, then the provider's bytes: byte 0 holds flags, byte 1
# seeds where the bytes are cut into network reads (tests/fuzz/seeds.py writes them).


def _pieces(seed: int, data: bytes) -> list[bytes]:
    """``data`` cut into reads of 1 to 64 bytes, as chosen by ``seed``."""
    rng = random.Random(seed)
    out, at = [], 0
    while at < len(data):
        n = rng.randint(1, 64) if seed else len(data)
        out.append(data[at : at + n])
        at += n
    return out


async def _h1(data: bytes) -> None:
    if len(data) < 2:
        return
    reused, body = bool(data[0] & 1), data[2:]
    conn = h1._Connection(("http", "provider.test", 80), asyncio.get_running_loop())
    conn.reused = reused
    conn.connection_made(_Transport())  # type: ignore[arg-type]
    for piece in _pieces(data[1], body):
        conn.data_received(piece)
        if conn.error is not None:
            break
    conn.connection_lost(None)
    assert conn.complete or conn.error is not None, "a response that ended is complete or failed"
    assert conn.error is None or isinstance(conn.error, (ProtocolFailure, h1._StaleConnection))
    if conn.reusable():
        assert conn.complete and conn.error is None and not conn.until_close
    if conn.headers_done.done() and conn.headers_done.exception() is None:
        assert 200 <= conn.status <= 599, conn.status
        for name, _ in conn.headers:
            assert name == name.lower()


def _exchange() -> Exchange:
    req = Request("POST", "/v1/chat/completions", "", Headers(), "127.0.0.1", "gw", b'{"model": "m"}')
    return Exchange("fuzz", req)


def _stream(data: bytes) -> None:
    if len(data) < 2:
        return
    hide = bool(data[0] & 1)
    native = NATIVES[(data[0] >> 1) % 3]
    client = CLIENTS[(data[0] >> 3) % 2]
    body = data[2:]
    parser = SseParser()
    events: list[SseEvent] = []
    for piece in _pieces(data[1], body):
        events.extend(parser.feed(piece))
    events.extend(parser.flush())
    for e in events:
        assert e.raw.endswith(b"\n\n"), e.raw
        e.json()  # any event's data may be asked for
    ex = _exchange()
    client_request: dict[str, Any] = {"model": "m", "stream": True, "max_tokens": 5,
                                      "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    if native == client:
        translation: Passthrough | StreamTranslation = Passthrough(ex, hide)
    else:
        writer = codec_for(client).stream_from_pivot(client_request)
        translation = StreamTranslation(ex, codec_for(native).stream_to_pivot(), writer)
    out = translation.feed(events)
    out.extend(translation.end())
    for e in out:
        assert isinstance(e, SseEvent) and e.raw.endswith(b"\n\n")
    usage = ex.usage
    assert min(usage.input_tokens, usage.output_tokens, usage.cached_tokens, usage.reasoning_tokens) >= 0


def main() -> None:
    which, args = sys.argv[1], [sys.argv[0], *sys.argv[2:]]
    loop = asyncio.new_event_loop()

    def h1_one(data: bytes) -> None:
        loop.run_until_complete(_h1(data))

    atheris.Setup(args, h1_one if which == "h1" else _stream)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
