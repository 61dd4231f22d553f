"""The upstream clients compared by the minimal proxy, each behind one call:
``await client.post(path, headers, body) -> (status, headers, body)``, pooled keep-alive."""

from __future__ import annotations

from typing import Any, Protocol

Headers = list[tuple[str, str]]


class Client(Protocol):
    async def post(self, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]: ...

    async def aclose(self) -> None: ...


class AiohttpClient:
    trust_env = False

    def __init__(self, base: str) -> None:
        import aiohttp

        self._base = base
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            trust_env=self.trust_env,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def post(self, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        async with self._session.post(self._base + path, headers=headers, data=body, allow_redirects=False) as r:
            data = await r.read()
            return r.status, [(k.lower(), v) for k, v in r.headers.items()], data

    async def aclose(self) -> None:
        await self._session.close()


class AiohttpEnvClient(AiohttpClient):
    """As tollway's AiohttpTransport sets it: trust_env=True, so every request also looks up
    proxies in the environment and reads ~/.netrc in an executor thread."""

    trust_env = True


class HttpxClient:
    def __init__(self, base: str) -> None:
        import httpx

        self._base = base
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            timeout=httpx.Timeout(120.0),
            follow_redirects=False,
        )

    async def post(self, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        r = await self._client.post(self._base + path, headers=headers, content=body)
        return r.status_code, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in r.headers.raw], r.content

    async def aclose(self) -> None:
        await self._client.aclose()


class RawClient:
    """rawclient.py: asyncio streams + httptools."""

    def __init__(self, base: str) -> None:
        from urllib.parse import urlsplit

        u = urlsplit(base)
        assert u.scheme == "http" and u.hostname and u.port, "the raw client speaks plain http://host:port only"
        self._prefix = u.path.rstrip("/")
        self._pool = self._make_pool(u.hostname, u.port)

    @staticmethod
    def _make_pool(host: str, port: int) -> Any:
        from rawclient import RawPool

        return RawPool(host, port)

    async def post(self, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        resp = await self._pool.request("POST", self._prefix + path, headers, body)
        try:
            data = await resp.read()
        finally:
            resp.release()
        return resp.status, resp.headers, data

    async def aclose(self) -> None:
        self._pool.close()


class RawProtoClient(RawClient):
    """rawproto.py: an asyncio.Protocol + httptools."""

    @staticmethod
    def _make_pool(host: str, port: int) -> Any:
        from rawproto import ProtoPool

        return ProtoPool(host, port)


class TollwayH1Client:
    """The product's lean client (tollway.upstream.h1.H1Transport), through its Transport interface."""

    def __init__(self, base: str) -> None:
        from tollway.upstream.h1 import H1Transport

        self._base = base
        self._transport = H1Transport()

    async def post(self, path: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        from tollway.upstream import UpstreamRequest

        resp = await self._transport.send(UpstreamRequest("POST", self._base + path, headers, body, 120.0, 120.0))
        try:
            data = await resp.read()
        finally:
            await resp.aclose()
        return resp.status, resp.headers, data

    async def aclose(self) -> None:
        await self._transport.aclose()


CLIENTS = {
    "aiohttp": AiohttpClient,
    "aiohttp_env": AiohttpEnvClient,
    "httpx": HttpxClient,
    "raw": RawClient,
    "rawproto": RawProtoClient,
    "h1": TollwayH1Client,
}
