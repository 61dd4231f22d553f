"""The transport the gateway uses: the lean HTTP/1.1 client, with aiohttp behind it for
what the lean client does not do (proxies from the environment, HEAD requests)."""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit

from tollway.upstream import MAX_ANSWER_BYTES, Transport, UpstreamRequest, UpstreamResponse
from tollway.upstream.aiohttp_transport import AiohttpTransport
from tollway.upstream.h1 import H1Transport


class PooledTransport:
    """``max_answer_bytes``: the most of a plain answer either reads whole (``read``)."""

    def __init__(
        self, fast: Transport | None = None, fallback: Transport | None = None, max_answer_bytes: int = MAX_ANSWER_BYTES
    ) -> None:
        self.fast = fast or H1Transport(max_answer_bytes=max_answer_bytes)
        self.fallback = fallback or AiohttpTransport(max_answer_bytes=max_answer_bytes)
        # Read once: HTTP_PROXY / HTTPS_PROXY / NO_PROXY as the process started with them.
        self._proxies = urllib.request.getproxies_environment()
        self._via_proxy: dict[tuple[str, str], bool] = {}

    def _needs_proxy(self, scheme: str, host: str) -> bool:
        key = (scheme, host)
        hit = self._via_proxy.get(key)
        if hit is None:
            bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
            hit = scheme in self._proxies and not bypass(host, self._proxies)
            if len(self._via_proxy) < 1024:
                self._via_proxy[key] = hit
        return hit

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if request.method == "HEAD":
            return await self.fallback.send(request)
        if self._proxies:
            parts = urlsplit(request.url)
            if self._needs_proxy(parts.scheme, parts.hostname or ""):
                return await self.fallback.send(request)
        return await self.fast.send(request)

    async def aclose(self) -> None:
        await self.fast.aclose()
        await self.fallback.aclose()
