"""A whole gateway in this process, for tests that need routing, the chain, ai-proxy and
the response phase together but no sockets: drive ``app`` with any ASGI client (httpx's
``ASGITransport``), read every finished call's exchange in ``calls``::

    gw = GatewayUnderTest(CONFIG_YAML)                  # providers answered by the mock model
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw") as c:
        r = await c.post("/v1/chat/completions", json={...})
    assert gw.calls[0].usage.output_tokens > 0

``upstream`` replaces the built-in mock model as every provider's server (any ASGI app:
a recording fake, a scripted failure). Nothing is written: no database, no access log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from tollway.cache import CacheStores
from tollway.chain import FailureLog
from tollway.exchange import Exchange
from tollway.gateway.call import Gateway
from tollway.gateway.edge import ClientIp, GatewayApp
from tollway.gateway.snapshot import Snapshot
from tollway.mcp.relay import McpRelay
from tollway.mockllm import create_app as create_mock_app
from tollway.proxy.ai_proxy import AiProxy
from tollway.runtime.config_source import load_text
from tollway.services import Services
from tollway.state.memory import MemoryStateStore
from tollway.upstream.asgi_transport import AsgiTransport

AsgiApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class GatewayUnderTest:
    def __init__(self, config: str, *, upstream: AsgiApp | None = None, base_dir: Path | None = None) -> None:
        loaded = load_text(config, base_dir or Path.cwd())
        cfg = loaded.config
        transport = AsgiTransport(upstream or create_mock_app())
        state = MemoryStateStore()
        self.services = Services(
            transport=transport,
            mock_transport=transport,
            state=state,
            local_state=MemoryStateStore(),
            caches=CacheStores(state),
        )
        self.snapshot = Snapshot(loaded, self.services, FailureLog())
        self.calls: list[Exchange] = []
        self.gateway = Gateway(
            self.snapshot,
            AiProxy(
                cfg.server.upstream_timeout_s,
                cfg.server.abandoned_stream_drain_s,
                max_answer_bytes=cfg.server.max_upstream_body_bytes,
            ),
            cfg.server.max_body_bytes,
            self.calls.append,
            McpRelay(transport),
        )
        self.app = GatewayApp(self.gateway, ClientIp(cfg.server.trusted_proxies))
