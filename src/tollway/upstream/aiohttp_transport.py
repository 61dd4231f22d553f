"""The transport on aiohttp's pooled client: keep-alive, TLS, proxies from the environment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp

from tollway.upstream import (
    MAX_ANSWER_BYTES,
    AnswerRefused,
    ConnectFailed,
    ProtocolFailure,
    TransportTimeout,
    UpstreamRequest,
    read_bounded,
)


class AiohttpResponse:
    __slots__ = ("_idle", "_limit", "_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, idle: float, limit: int) -> None:
        self._resp = resp
        self._idle = idle
        self._limit = limit
        self.status = resp.status
        self.headers = [(k.lower(), v) for k, v in resp.headers.items()]

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self._resp.content
        while True:
            try:
                async with asyncio.timeout(self._idle):
                    chunk = await content.readany()
            except TimeoutError:
                raise TransportTimeout(f"provider sent nothing for {self._idle:g}s") from None
            except aiohttp.ClientError as exc:
                raise ProtocolFailure(f"provider connection broke: {type(exc).__name__}") from None
            if not chunk:
                return
            yield chunk

    async def read(self) -> bytes:
        try:
            return await read_bounded(self, self._limit)
        except AnswerRefused:
            self._resp.close()  # what is left of the answer is not read: never reused
            raise

    async def aclose(self) -> None:
        self._resp.release()


class AiohttpTransport:
    """Pooled connections per host; ``trust_env`` honours HTTP(S)_PROXY and NO_PROXY."""

    def __init__(self, *, pool_size: int = 0, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._pool_size = pool_size
        self._max_answer_bytes = max_answer_bytes

    def _get(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._pool_size, keepalive_timeout=30, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=True,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Content-Type"),
                # The answer as it is, as the lean client asks (see ``h1``).
                headers={"Accept-Encoding": "identity"},
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def send(self, request: UpstreamRequest) -> AiohttpResponse:
        session = self._get()
        try:
            async with asyncio.timeout(request.headers_timeout):
                resp = await session.request(
                    request.method,
                    request.url,
                    headers=[h for h in request.headers if h[0].lower() != "accept-encoding"],
                    data=request.body if request.body else None,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                )
        except TimeoutError:
            raise TransportTimeout(f"no response headers within {request.headers_timeout:g}s") from None
        except (aiohttp.ClientConnectorError, aiohttp.ClientSSLError) as exc:
            raise ConnectFailed(f"cannot connect to provider: {type(exc).__name__}") from None
        except aiohttp.ServerDisconnectedError:
            raise ProtocolFailure("provider closed the connection before answering") from None
        except aiohttp.ClientError as exc:
            raise ProtocolFailure(f"bad response from provider: {type(exc).__name__}") from None
        return AiohttpResponse(resp, request.idle_timeout, self._max_answer_bytes)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
