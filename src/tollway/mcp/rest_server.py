"""The gateway as the MCP server of a ``type: rest`` server, built on the official MCP
SDK's low-level ``Server`` (initialize, ``tools/list``, ``tools/call``): each tool call
is one request to the REST service (``rest_tools``), with the server's ``headers``.

The SDK's Streamable HTTP app (stateless, JSON answers) is served in this process
through an ASGI transport, so the relay reaches it as it reaches a remote server and
everything on the way (plugins, ``allow_tools``, the record, the metric) is the same.
Its session manager starts with the first call, on the gateway's event loop, and runs
until the config that built the server is replaced: ``retire`` stops it once calls begun
under the old config have had their ``timeout`` (each reload builds new servers, and a
manager left running would hold its task and task group for the process's life).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import orjson
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.transport_security import TransportSecuritySettings

from tollway.mcp import rest_calls
from tollway.mcp.rest_tools import RestTool
from tollway.providers.secrets import of_headers
from tollway.upstream import (
    AnswerRefused,
    ConnectFailed,
    Transport,
    TransportError,
    TransportTimeout,
    UpstreamRequest,
    read_decoded,
)

# Where the relay sends a rest server's calls (served in process: no socket).
INTERNAL_URL = "http://tollway.internal/mcp"


def _result(
    text: str, *, error: bool, structured: dict[str, Any] | None = None, call: dict[str, Any] | None = None
) -> types.CallToolResult:
    """``call``: the REST request's outcome (``rest_calls.meta``), for the relay's record."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured, is_error=error, meta=call
    )


def _failure(exc: TransportError) -> str:
    """What became of a REST request that got no answer, as the agent and the record say it."""
    if isinstance(exc, TransportTimeout):
        return "did not answer in time"
    if isinstance(exc, ConnectFailed):
        return "could not be reached"
    if isinstance(exc, AnswerRefused):
        return f"sent an answer the gateway does not take ({exc})"
    return "broke off its answer"


def _since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


class RestMcpServer:
    """One ``type: rest`` MCP server; an ASGI app."""

    def __init__(
        self,
        name: str,
        tools: Sequence[RestTool],
        transport: Transport,
        headers: Sequence[tuple[str, str]],
        timeout_s: float,
    ) -> None:
        self.name = name
        self.tools = {t.name: t for t in tools}
        self._transport = transport
        self._headers = list(headers)
        # What a REST service's error may show of the credentials: not passed to the agent.
        self._secrets = of_headers(self._headers)
        self._timeout_s = timeout_s
        self._listed = types.ListToolsResult(
            tools=[
                types.Tool(name=t.name, description=t.description or None, input_schema=t.input_schema) for t in tools
            ]
        )
        server: Server[Any] = Server(name, on_list_tools=self._list, on_call_tool=self._call)
        self._manager_started: asyncio.Future[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._retired = False
        self._server = server
        # The gateway is its only client: DNS-rebinding checks guard browsers, not it.
        self._app = server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )

    async def _list(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return self._listed

    async def _call(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = self.tools.get(params.name)
        if tool is None:
            return _result(f"no tool {params.name!r} on MCP server {self.name!r}", error=True)
        try:
            method, url, headers, body = tool.request(dict(params.arguments or {}))
        except ValueError as exc:
            return _result(str(exc), error=True)
        names = {k for k, _ in self._headers}
        headers = [h for h in headers if h[0] not in names] + self._headers
        request = UpstreamRequest(method, url, headers, body, self._timeout_s, self._timeout_s)
        t0 = time.perf_counter()
        try:
            # The whole answer within ``timeout``, not only its head and each silence in
            # its body: a service that trickles its answer must end in the tool error too
            # (the relay waits for this app a second past the timeout, and no longer).
            try:
                async with asyncio.timeout(self._timeout_s):
                    resp = await self._transport.send(request)
                    latency_ms = _since(t0)
                    try:
                        answer = await read_decoded(resp)
                    finally:
                        await resp.aclose()
            except TimeoutError:
                raise TransportTimeout(f"the whole answer took longer than {self._timeout_s:g}s") from None
        except TransportError as exc:
            failure = _failure(exc)
            call = rest_calls.meta(504 if isinstance(exc, TransportTimeout) else 502, _since(t0), failure)
            return _result(f"the REST service of tool {tool.name!r} {failure}", error=True, call=call)
        call = rest_calls.meta(resp.status, latency_ms)
        text = answer.decode("utf-8", "replace")
        if resp.status >= 300:
            text = self._secrets.text(text)
        structured = None
        try:
            parsed = orjson.loads(answer) if answer else None
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            structured = parsed
        if 300 <= resp.status < 400:
            # Not followed: the server's credentials would go wherever the service points.
            location = next((v for k, v in resp.headers if k == "location"), "")
            where = self._secrets.text(location)
            return _result(
                f"HTTP {resp.status}: the REST service redirects to {where!r}, not followed", error=True, call=call
            )
        if resp.status >= 400:
            return _result(f"HTTP {resp.status}: {text}", error=True, call=call)
        return _result(text, error=False, structured=structured, call=call)

    async def _start(self) -> None:
        if self._manager_started is None:
            self._manager_started = asyncio.get_running_loop().create_future()
            started = self._manager_started

            async def run() -> None:
                try:
                    async with self._server.session_manager.run():
                        started.set_result(None)
                        await asyncio.Event().wait()
                except Exception as exc:  # calls waiting for the start fail, not hang
                    if not started.done():
                        started.set_exception(exc)
                    raise

            loop = asyncio.get_running_loop()
            self._runner = loop.create_task(run())
            if self._retired:  # a call begun under the old config reached it late
                loop.call_later(self._timeout_s + 1, self._stop)
        await self._manager_started

    def retire(self) -> None:
        """The config that built this server is replaced: stop its session manager once
        the calls that may still reach it (begun before the swap) have had their time."""
        self._retired = True
        if self._runner is not None:
            asyncio.get_running_loop().call_later(self._timeout_s + 1, self._stop)

    def _stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()

    async def aclose(self) -> None:
        """Stop the session manager now (the process is stopping)."""
        self._retired = True
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._start()
        await self._app(scope, receive, send)
