"""Helpers for the MCP gateway's tests: the test MCP server as a process of its own, and
an official-SDK client session through the gateway."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp.client.session import ClientSession, MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Upstream:
    popen: subprocess.Popen[bytes]
    port: int
    # Answers requests with JSON bodies rather than event streams (then no progress
    # notification can come with the answer).
    json_response: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


def start_upstream(*, json_response: bool = False) -> Upstream:
    """``tests.support.mcp_upstream`` on a free port of 127.0.0.1."""
    args = [sys.executable, "-m", "tests.support.mcp_upstream", *(["--json"] if json_response else [])]
    popen = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert popen.stdout is not None
    line = popen.stdout.readline().decode()
    assert line.startswith("port "), f"the MCP server did not start: {line!r}"
    upstream = Upstream(popen, int(line.split()[1]), json_response)
    for _ in range(100):  # the port is bound before uvicorn serves: wait until it answers
        try:
            httpx.get(upstream.url, timeout=1)
            break
        except httpx.TransportError:
            import time

            time.sleep(0.05)
    return upstream


@asynccontextmanager
async def mcp_session(
    url: str, key: str | None, headers: dict[str, str] | None = None, on_message: MessageHandlerFnT | None = None
) -> AsyncIterator[ClientSession]:
    """An initialized ``ClientSession`` over Streamable HTTP, presenting ``key`` as
    ``x-api-key`` (the way an agent is configured with a gateway key), or ``headers``."""
    headers = dict(headers or {})
    if key is not None:
        headers["x-api-key"] = key
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, message_handler=on_message) as session,
    ):
        await session.initialize()
        yield session


def mcp_calls(admin_url: str, **labels: str) -> float:
    """``tollway_mcp_calls_total`` summed over the series with ``labels``."""
    from tests.support.usage_support import metric_sum, parse_metrics

    samples = parse_metrics(httpx.get(admin_url + "/metrics", timeout=10).text)
    return metric_sum(samples, "tollway_mcp_calls_total", **labels)


def text_of(result: Any) -> str:
    """The text of a tool result's content."""
    return "".join(c.text for c in result.content if getattr(c, "type", None) == "text")


def records(admin_url: str, **params: str) -> list[dict[str, Any]]:
    r = httpx.get(admin_url + "/api/requests", params={"limit": "1000", **params}, timeout=10)
    r.raise_for_status()
    found: list[dict[str, Any]] = r.json()["requests"]
    return found
