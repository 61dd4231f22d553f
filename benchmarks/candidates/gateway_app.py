"""The real Tollway gateway as a plain ASGI app, so other servers (granian) and other
upstream clients can run it. Benchmark-only.

    TOLLWAY_BENCH_CONFIG     the config file
    TOLLWAY_BENCH_TRANSPORT  product (what the runtime builds), aiohttp (tollway's
                             AiohttpTransport), httpx, raw or rawproto (transports.py)

Another transport goes in the way a config reload does it: a new snapshot built on the
runtime's services, swapped into the gateway.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


class LifespanApp:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.http = runtime.app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
            return
        if scope["type"] != "lifespan":
            return
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await self.runtime.start()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def make_transport(kind: str) -> Any:
    if kind == "aiohttp":
        from tollway.upstream.aiohttp_transport import AiohttpTransport

        return AiohttpTransport()
    from transports import TRANSPORTS

    return TRANSPORTS[kind]()


def create_app() -> LifespanApp:
    from tollway.config.load import load_config
    from tollway.gateway.snapshot import Snapshot
    from tollway.runtime.root import ConfigSource, Runtime

    path = Path(os.environ["TOLLWAY_BENCH_CONFIG"])
    runtime = Runtime(ConfigSource(path), load_config(path))
    kind = os.environ.get("TOLLWAY_BENCH_TRANSPORT", "product")
    if kind != "product":
        runtime.services.transport = make_transport(kind)  # unused product transport: never opened
        runtime.snapshot = Snapshot(runtime.loaded, runtime.services)
        runtime.gateway.swap(runtime.snapshot)
    return LifespanApp(runtime)
