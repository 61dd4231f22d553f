"""The composition root (runtime/root.py) and telemetry: the span export is built, started
and stopped with the usage parts only when ``telemetry.otlp_endpoint`` is set, a reload
moves it, a gateway without telemetry never loads OpenTelemetry, and a reload stops the replaced
config's own MCP servers."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx

from tollway.runtime.config_source import ConfigSource, load_file
from tollway.runtime.root import Runtime
from tollway.usage.access_log import AccessLog

BASE = """
storage: {database: "sqlite:///./tollway.db"}
providers: [{id: mock, type: mock}]
routes: [{name: v1, path_prefix: /v1/, provider: mock}]
"""


def write(path: Path, telemetry: str) -> None:
    path.write_text(BASE + telemetry)


async def test_a_reload_moves_the_span_export_and_the_sampler(tmp_path: Path) -> None:
    path = tmp_path / "tollway.yaml"
    write(path, "")
    runtime = Runtime(ConfigSource(path), load_file(path), access_log=AccessLog(io.StringIO()))
    await runtime.start()
    try:
        assert runtime.span_export is None and runtime.accountant.traces is None
        assert runtime.snapshot.sampler is None

        write(path, "telemetry: {otlp_endpoint: 'http://127.0.0.1:9/', sample_ratio: 0.5}")
        assert runtime.reload("test").ok
        first = runtime.span_export
        assert first is not None and first.url == "http://127.0.0.1:9/v1/traces"
        assert runtime.accountant.traces == first.add
        assert runtime.snapshot.sampler is not None and runtime.snapshot.sampler.ratio == 0.5

        write(path, "telemetry: {otlp_endpoint: 'http://127.0.0.1:9/', sample_ratio: 0.25}")
        assert runtime.reload("test").ok
        assert runtime.span_export is first  # the ratio comes with the snapshot alone
        assert runtime.snapshot.sampler is not None and runtime.snapshot.sampler.ratio == 0.25

        write(path, "telemetry: {otlp_endpoint: 'http://127.0.0.1:9/', service_name: other}")
        assert runtime.reload("test").ok
        second = runtime.span_export
        assert second is not None and second is not first and runtime.accountant.traces == second.add

        write(path, "")
        assert runtime.reload("test").ok
        assert runtime.span_export is None and runtime.accountant.traces is None
        assert runtime.snapshot.sampler is None
    finally:
        await runtime.stop()


def test_without_telemetry_opentelemetry_is_never_imported(tmp_path: Path) -> None:
    # A process of its own: this one may have imported it for other tests.
    script = textwrap.dedent(
        """
        import asyncio, io, sys
        from pathlib import Path
        import httpx
        from tollway.cli import main
        from tollway.runtime.config_source import ConfigSource, load_file
        from tollway.runtime.root import Runtime
        from tollway.usage.access_log import AccessLog

        async def run():
            path = Path("tollway.yaml")
            runtime = Runtime(ConfigSource(path), load_file(path), access_log=AccessLog(io.StringIO()))
            await runtime.start()
            try:
                transport = httpx.ASGITransport(app=runtime.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
                    r = await client.post("/v1/chat/completions", json=body, headers={"traceparent": "x"})
                    assert r.status_code == 200, r.text
            finally:
                await runtime.stop()

        asyncio.run(run())
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        assert not loaded, loaded
        print("ok")
        """
    )
    write(tmp_path / "tollway.yaml", "")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr


MCP_REST = """
mcp_servers:
  - name: tools
    type: rest
    timeout: 0.2
    tools:
      - {name: ping, inputSchema: {type: object}, request: {url: "http://127.0.0.1:9/ping"}}
"""
# The MCP route beside the base's (a second ``routes:`` key is a config error).
MCP_ROUTE = "  - {name: mcp, path_prefix: /mcp/tools, mcp_server: tools}\n"


def _session_managers() -> list[asyncio.Task[Any]]:
    """The running session managers of the gateway's own (rest) MCP servers."""
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done() and "RestMcpServer._start" in getattr(t.get_coro(), "__qualname__", "")
    ]


async def test_a_reload_stops_the_replaced_rest_mcp_servers_once_their_calls_had_their_time(tmp_path: Path) -> None:
    path = tmp_path / "tollway.yaml"
    routes = "routes:\n  - {name: v1, path_prefix: /v1/, provider: mock}\n" + MCP_ROUTE
    path.write_text(BASE.replace("routes: [{name: v1, path_prefix: /v1/, provider: mock}]\n", routes) + MCP_REST)
    runtime = Runtime(ConfigSource(path), load_file(path), access_log=AccessLog(io.StringIO()))
    await runtime.start()
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"accept": "application/json, text/event-stream"}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.app), base_url="http://gw") as client:
            for _ in range(3):  # each config's server is used, then the config replaced
                r = await client.post("/mcp/tools", json=initialize, headers=headers)
                assert r.status_code == 200, r.text
                assert r.json()["result"]["serverInfo"]["name"] == "tools"
                assert runtime.reload("test").ok
            # Replaced servers keep running for their timeout (calls begun before the
            # swap may still reach them), then stop; the one in effect starts on its
            # first call and keeps running.
            assert len(_session_managers()) == 3
            await asyncio.sleep(1.5)
            assert _session_managers() == []
            r = await client.post("/mcp/tools", json=initialize, headers=headers)
            assert r.status_code == 200, r.text
            assert len(_session_managers()) == 1
    finally:
        await runtime.stop()
    assert _session_managers() == []


async def test_a_reload_says_what_needs_a_restart_against_what_runs_not_the_file_before(tmp_path: Path) -> None:
    # The admin judge: after a reload that changed admin (not applied), one that put it
    # back still said admin needed a restart, and the next said nothing though the
    # running admin listener was never changed.
    path = tmp_path / "tollway.yaml"
    write(path, "admin: {port: 18081}\n")
    runtime = Runtime(ConfigSource(path), load_file(path), access_log=AccessLog(io.StringIO()))
    await runtime.start()
    try:
        write(path, "admin: {port: 18082}\n")
        assert runtime.reload("test").restart_needed == ["admin"]
        write(path, "admin: {port: 18082}\nserver: {shutdown_timeout_s: 3}\n")
        assert runtime.reload("test").restart_needed == ["server", "admin"]  # still not applied
        write(path, "admin: {port: 18081}\n")
        assert runtime.reload("test").restart_needed == []  # as it runs
    finally:
        await runtime.stop()
