"""What the MCP gateway adds to one tool call at concurrency 1 (issue 15: at most 1 ms).

    .venv/bin/python benchmarks/mcp_bench.py [--calls N] [--rounds R] [--json-answers]

Starts the tests' MCP server (the official SDK's ``MCPServer``, FastMCP in mcp 1: the
``echo`` tool) and ``tollway serve`` with an MCP route to it behind key-auth, then makes
``tools/call`` requests one at a time, alternating between the server itself and the
gateway (so drift on a shared machine hits both alike), each inside an initialized
session of its own. The client is a minimal keep-alive HTTP/1.1 client posting the same
JSON-RPC body (SDK-side work would be the same on both paths and only blur the
difference; see ``Session`` for its quick ACKs). Per path: the median latency of each
round; the report gives the median of rounds, the added latency (gateway − direct) and
the ratio.

The server answers tool calls as event streams by default (FastMCP's default);
``--json-answers`` has it answer with JSON bodies. Short by design: the machine is shared,
and no figure here is a test.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"
ACCEPT = "application/json, text/event-stream"
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def _start_upstream(json_answers: bool) -> tuple[subprocess.Popen[bytes], str]:
    args = [sys.executable, "-m", "tests.support.mcp_upstream", *(["--json"] if json_answers else [])]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().decode().split()[1])
    return proc, f"http://127.0.0.1:{port}/mcp"


def _start_gateway(folder: Path, upstream: str) -> tuple[subprocess.Popen[bytes], str]:
    (folder / "tollway.yaml").write_text(f"""
storage: {{database: "sqlite:///./bench.db"}}
mcp_servers: [{{name: tools, url: "{upstream}", headers: {{Authorization: "Bearer server-secret"}}}}]
routes: [{{name: mcp, path_prefix: /mcp, mcp_server: tools}}]
plugins:
  - name: key-auth
    defaultConfig: {{keys: [x-api-key], consumers: [{{name: bench, credential: {KEY}}}]}}
""")
    args = [sys.executable, "-m", "tollway", "serve", "-c", "tollway.yaml", "--port", "0", "--admin-port", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(args, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline().decode()
        if not line:
            raise RuntimeError("tollway did not start")
        if "gateway listening on " in line:
            return proc, line.split("gateway listening on ")[1].strip() + "/mcp"


class _Answer:
    """httptools callbacks: one HTTP answer, whole."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body = b""
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


class Session:
    """One initialized MCP session over one keep-alive connection, with a minimal
    HTTP/1.1 client: the same bytes and the same socket handling on both paths. It asks
    the kernel for quick ACKs before each read: uvicorn writes an answer's head and body
    separately with Nagle's algorithm on, so a client in delayed-ACK mode waits 40 ms
    for the body, on either path, by luck of timing (the gateway's own upstream client
    asks for quick ACKs; see ``tollway.upstream.h1``)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.path = parts.path
        self.sock = socket.create_connection((parts.hostname, parts.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.headers = {"host": parts.netloc, "accept": ACCEPT, "content-type": "application/json", **headers}
        client = {"name": "bench", "version": "1"}
        params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client}
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
        answer = self.post(init)
        self.headers["mcp-session-id"] = answer.headers["mcp-session-id"]
        self.headers["mcp-protocol-version"] = "2025-06-18"
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.next_id = 1

    def post(self, message: dict[str, Any]) -> _Answer:
        body = orjson.dumps(message)
        lines = [f"POST {self.path} HTTP/1.1", *(f"{k}: {v}" for k, v in self.headers.items())]
        head = "\r\n".join([*lines, f"content-length: {len(body)}", "", ""]).encode()
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        self.sock.sendall(head + body)
        while not answer.done:
            if _QUICKACK is not None:
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            parser.feed_data(data)
        return answer

    def call(self) -> float:
        """Seconds for one ``tools/call`` of echo, to the answer's last byte."""
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "benchmark"}}}  # fmt: skip
        self.next_id += 1
        t0 = time.perf_counter()
        answer = self.post(body)
        elapsed = time.perf_counter() - t0
        assert b"benchmark" in answer.body, answer.body
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="tool calls per path and round (300)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument("--json-answers", action="store_true", help="the server answers with JSON bodies")
    args = parser.parse_args()
    upstream, upstream_url = _start_upstream(args.json_answers)
    with tempfile.TemporaryDirectory() as tmp:
        gateway, gateway_url = _start_gateway(Path(tmp), upstream_url)
        try:
            direct = Session(upstream_url, {"authorization": "Bearer server-secret"})
            through = Session(gateway_url, {"x-api-key": KEY})
            for _ in range(50):  # warm-up: connections, caches, the first records
                direct.call()
                through.call()
            rounds: list[tuple[float, float]] = []
            for _ in range(args.rounds):
                d: list[float] = []
                g: list[float] = []
                for _ in range(args.calls):
                    d.append(direct.call())
                    g.append(through.call())
                rounds.append((statistics.median(d), statistics.median(g)))
        finally:
            gateway.terminate()
            upstream.terminate()
            gateway.wait(15)
            upstream.wait(15)
    d_ms = statistics.median(r[0] for r in rounds) * 1000
    g_ms = statistics.median(r[1] for r in rounds) * 1000
    answers = "JSON" if args.json_answers else "event-stream"
    print(f"tools/call at c1, {answers} answers, median of {args.rounds} rounds x {args.calls} calls")
    print("| path | median latency |")
    print("| --- | --- |")
    print(f"| MCP server directly | {d_ms:.3f} ms |")
    print(f"| through tollway (key-auth, record, metric) | {g_ms:.3f} ms |")
    print(f"added per tool call: {g_ms - d_ms:.3f} ms; gateway/direct latency ratio {g_ms / d_ms:.2f}")
    for i, (d, g) in enumerate(rounds, 1):
        print(f"  round {i}: direct {d * 1000:.3f} ms, gateway {g * 1000:.3f} ms, added {(g - d) * 1000:.3f} ms")


if __name__ == "__main__":
    main()
