"""An MCP server for the tests, built with the official SDK's ``MCPServer`` (FastMCP in
mcp 1) and served over Streamable HTTP on 127.0.0.1, in a process of its own so a test
can kill it mid-call: ``python -m tests.support.mcp_upstream`` prints ``port N``.

It wants ``Authorization: Bearer server-secret`` (what the gateway's ``headers`` add)
and answers 401 without it; the ``seen_headers`` tool returns the headers of the
request that called it, so a test sees what reached the server.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

SECRET = "Bearer server-secret"
_last_headers: dict[str, str] = {}

server = MCPServer("test-tools")


@server.tool()
def echo(text: str) -> str:
    """Answers the text it is given."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


@server.tool()
def delete_everything() -> str:
    """A tool no careful consumer should be given."""
    return "deleted"


@server.tool()
def seen_headers() -> dict[str, str]:
    """The HTTP headers of the request that called this tool."""
    return dict(_last_headers)


@server.tool()
async def count_up(steps: int, ctx: Context) -> str:
    """Reports progress once per step, then answers."""
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, f"step {i}")
        await asyncio.sleep(0.01)
    return f"counted to {steps}"


@server.tool()
async def announce(ctx: Context) -> str:
    """Tells the client its tool list changed: a notification of no request, which the
    server sends on the session's GET stream."""
    await ctx.session.send_tool_list_changed()
    return "announced"


@server.tool()
async def hang(ctx: Context) -> str:
    """Reports progress once, then never answers (the test kills the server)."""
    await ctx.report_progress(1, 2, "started")
    await asyncio.sleep(3600)
    return "never"


def _guarded(app: Any) -> Any:
    async def guard(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            if headers.get("authorization") != SECRET:
                await send(
                    {"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]}
                )
                await send({"type": "http.response.body", "body": b"no credentials"})
                return
            if scope["method"] == "POST":
                _last_headers.clear()
                _last_headers.update(headers)
        await app(scope, receive, send)

    return guard


def main() -> None:
    json_response = "--json" in sys.argv
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = _guarded(server.streamable_http_app(json_response=json_response))
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    print(f"port {sock.getsockname()[1]}", flush=True)
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
