"""``tollway serve`` with the edge checks of SPEC §14 turned off. Benchmark-only.

    serve_unchecked.py serve -c CONFIG --port P --admin-port A

Everything is the product's own start-up (`tollway.cli.main`), except the checks that the
hardening added in front of the plugins, each replaced by the least the gateway needs to
go on without it, so that "full chain" against "full chain, edge checks off" is what those
checks cost a call:

- the edge's own connection (header size and count limits, head/body/idle clocks, the
  connection bound, the pipelining bound) → uvicorn's httptools protocol as it comes,
  with the product's response writing (``ResponseCycle``: the head and the body's first
  part in one write) and keep-alive deadline (``tollway.deadlines``), which are no
  checks and so stay on both sides;
- the canonical target and Host (``gateway.target.settle``) → the Host with its port cut
  off, the path as the server decoded it, sent upstream as it is;
- the bounded body parse (``exchange.parse_json``: duplicate keys, nesting depth) →
  ``orjson.loads`` alone;
- the X-Mse-Consumer hygiene (every spelling, header by header) → the one spelling removed.

``UNCHECK=json,target`` (any of edge, target, json, hygiene) turns off only those;
``UNCHECK=none`` none of them (the "edge checks on" rows: the same entry point as the
"off" rows, so that a pair of them differs in the checks alone).
Usage recording, its journal and the plugins are untouched: they are not edge checks.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import orjson
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tollway import deadlines, exchange
from tollway.errors import BadRequest
from tollway.exchange import Request
from tollway.gateway import call, target
from tollway.gateway.edge import LOOP
from tollway.routing.hosts import strip_port
from tollway.runtime import serve
from tollway.runtime.connection import ResponseCycle


class _PlainProtocol(HttpToolsProtocol):
    """uvicorn's protocol as it comes but for its keep-alive timer, armed after every
    answer: a deadline of the loop's, as the product's edge arms it (``tollway.deadlines``),
    and the loop handed to the app and the cycle as the product's edge hands it (asking
    asyncio for it is a getpid() system call). Those are no checks, so they are the same
    on both sides."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[LOOP] = self.loop  # type: ignore[literal-required]

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if isinstance(self.cycle, ResponseCycle):
            self.cycle.loop = self.loop

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.timeout_keep_alive_task = deadlines.for_loop(self.loop).after(  # type: ignore[assignment]
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )


def _plain_protocol(limits: Any, name: str = "gateway", record_refusal: Any = None) -> type[HttpToolsProtocol]:
    return _PlainProtocol


def _settle(req: Request) -> None:
    req.host = strip_port(req.headers.get("host") or "")
    req.encoded_path = req.path


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc.args[0]}", reason="gateway.bad_request") from None


def _drop_consumer_header(req: Request) -> None:
    req.headers.remove("x-mse-consumer")


# UNCHECK=edge,target,json,hygiene (the default: all four) turns off only those named,
# to tell what each costs.
_OFF = set(os.environ.get("UNCHECK", "edge,target,json,hygiene").split(",")) - {"none"}
if _OFF - {"edge", "target", "json", "hygiene"}:
    sys.exit(f"serve_unchecked.py: UNCHECK names no check: {sorted(_OFF)}")
if "edge" in _OFF:
    serve.connection_class = _plain_protocol  # type: ignore[attr-defined,assignment]
    httptools_impl.RequestResponseCycle = ResponseCycle  # type: ignore[misc]
if "target" in _OFF:
    target.settle = _settle
if "json" in _OFF:
    exchange.parse_json = _parse_json
if "hygiene" in _OFF:
    call._drop_consumer_headers = _drop_consumer_header

from tollway.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
