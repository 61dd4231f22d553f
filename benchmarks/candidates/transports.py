"""Benchmark-only ``tollway.upstream.Transport`` adapters, so the real gateway can be
measured with another upstream client: httpx's AsyncClient and the raw client.

Errors map to the transport's error classes; no TLS or proxy support in the raw one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from rawclient import RawConnectError, RawError, RawPool
from rawproto import ProtoPool

from tollway.upstream import ConnectFailed, ProtocolFailure, TransportTimeout, UpstreamRequest


class _Idle:
    @staticmethod
    async def guarded(it: AsyncIterator[bytes], idle: float) -> AsyncIterator[bytes]:
        while True:
            try:
                async with asyncio.timeout(idle):
                    chunk = await anext(it)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise TransportTimeout(f"provider sent nothing for {idle:g}s") from None
            yield chunk


class RawTransportResponse:
    __slots__ = ("_idle", "_resp", "headers", "status")

    def __init__(self, resp: Any, idle: float) -> None:
        self._resp = resp
        self._idle = idle
        self.status = resp.status
        self.headers = resp.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in _Idle.guarded(self._resp.chunks(), self._idle):
                yield chunk
        except (RawError, OSError) as exc:
            raise ProtocolFailure(f"provider connection broke: {exc}") from None

    async def read(self) -> bytes:
        parts = [c async for c in self.chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aclose(self) -> None:
        self._resp.release()


class RawTransport:
    pool_class: Any = RawPool

    def __init__(self) -> None:
        self._pools: dict[tuple[str, int], Any] = {}
        self._targets: dict[str, tuple[Any, str]] = {}

    def _target(self, url: str) -> tuple[RawPool, str]:
        hit = self._targets.get(url)
        if hit is None:
            u = urlsplit(url)
            if u.scheme != "http" or not u.hostname:
                raise ConnectFailed("the raw benchmark transport speaks plain http:// only")
            key = (u.hostname, u.port or 80)
            pool = self._pools.get(key) or self._pools.setdefault(key, self.pool_class(*key))
            hit = (pool, (u.path or "/") + (f"?{u.query}" if u.query else ""))
            if len(self._targets) < 1024:
                self._targets[url] = hit
        return hit

    async def send(self, request: UpstreamRequest) -> RawTransportResponse:
        pool, target = self._target(request.url)
        try:
            async with asyncio.timeout(request.headers_timeout):
                resp = await pool.request(request.method, target, request.headers, request.body)
        except TimeoutError:
            raise TransportTimeout(f"no response headers within {request.headers_timeout:g}s") from None
        except RawConnectError as exc:
            raise ConnectFailed(f"cannot connect to provider: {exc}") from None
        except (RawError, OSError) as exc:
            raise ProtocolFailure(f"bad response from provider: {exc}") from None
        return RawTransportResponse(resp, request.idle_timeout)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            pool.close()


class RawProtoTransport(RawTransport):
    pool_class = ProtoPool


class HttpxTransportResponse:
    __slots__ = ("_idle", "_resp", "headers", "status")

    def __init__(self, resp: object, idle: float) -> None:
        import httpx

        assert isinstance(resp, httpx.Response)
        self._resp = resp
        self._idle = idle
        self.status = resp.status_code
        self.headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in resp.headers.raw]

    async def chunks(self) -> AsyncIterator[bytes]:
        import httpx

        try:
            async for chunk in _Idle.guarded(self._resp.aiter_raw(), self._idle):
                yield chunk
        except httpx.HTTPError as exc:
            raise ProtocolFailure(f"provider connection broke: {type(exc).__name__}") from None

    async def read(self) -> bytes:
        parts = [c async for c in self.chunks()]
        return b"".join(parts)

    async def aclose(self) -> None:
        await self._resp.aclose()


class HttpxTransport:
    def __init__(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            timeout=httpx.Timeout(None),
            follow_redirects=False,
            trust_env=True,
        )

    async def send(self, request: UpstreamRequest) -> HttpxTransportResponse:
        import httpx

        req = self._client.build_request(request.method, request.url, headers=request.headers, content=request.body)
        try:
            async with asyncio.timeout(request.headers_timeout):
                resp = await self._client.send(req, stream=True)
        except TimeoutError:
            raise TransportTimeout(f"no response headers within {request.headers_timeout:g}s") from None
        except httpx.ConnectError as exc:
            raise ConnectFailed(f"cannot connect to provider: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise ProtocolFailure(f"bad response from provider: {type(exc).__name__}") from None
        return HttpxTransportResponse(resp, request.idle_timeout)

    async def aclose(self) -> None:
        await self._client.aclose()


TRANSPORTS = {"raw": RawTransport, "rawproto": RawProtoTransport, "httpx": HttpxTransport}
