"""Running the gateway: sockets, the uvicorn servers, signals, reload, workers.

SIGTERM/SIGINT stop accepting, let in-flight calls finish (bounded by
``server.shutdown_timeout_s``), flush, and exit 0. SIGHUP, a changed config file or
``POST /api/reload`` reload. With ``--workers N`` the parent binds the sockets, forks N
workers that share them, forwards signals, and restarts a worker that dies.

Both listeners build their connections with ``connection.EdgeConnection`` and the edge
limits of ``server:``; ``server.max_connections`` bounds each worker's gateway listener
(each process has its own descriptors), the admin listener has a bound of its own.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import uvicorn

from tollway.config.schema import ServerConfig
from tollway.gateway.edge import Receive, Scope, Send
from tollway.runtime.connection import ADMIN_MAX_CONNECTIONS, EdgeLimits, connection_class, derived_max_connections
from tollway.runtime.root import Runtime

AsgiApp = Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]
# Builds a worker's runtime; its argument runs after a reload asked of that worker's
# admin API took effect (None: there are no other workers to tell).
MakeRuntime = Callable[[Callable[[], None] | None], Runtime]

log = logging.getLogger("tollway")


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    admin_host: str
    admin_port: int
    workers: int


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def edge_limits(server: ServerConfig, max_connections: int | None = None) -> EdgeLimits:
    """The limits of ``server:``; ``max_connections`` overrides the configured (or derived) bound."""
    if max_connections is None:
        max_connections = server.max_connections or derived_max_connections()
    return EdgeLimits(
        max_header_bytes=server.max_header_bytes,
        max_headers=server.max_headers,
        header_timeout_s=server.header_timeout_s,
        body_timeout_s=server.body_timeout_s,
        max_connections=max_connections,
    )


def _uvicorn(
    name: str, app: AsgiApp, shutdown_timeout: float, keepalive_s: float, limits: EdgeLimits
) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        http=connection_class(limits, name),
        # No WebSocket: an Upgrade request is served as plain HTTP, under the same limits.
        ws="none",
        loop="none",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        # Tollway reads X-Forwarded-For itself, only from server.trusted_proxies;
        # uvicorn's middleware would believe it from loopback and rewrite the peer.
        proxy_headers=False,
        # Gateway.drain enforces the real bound first; uvicorn's is only a backstop.
        # (asyncio.wait_for takes fractions as they are: no int() here.)
        timeout_graceful_shutdown=cast(int, shutdown_timeout + 5),
        timeout_keep_alive=cast(int, keepalive_s),
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    return server


async def _watch_file(runtime: Runtime) -> None:
    """Reload when the config file changes on disk (debounced: wait for it to settle)."""
    path = runtime.source.path
    if path is None:
        return

    def stamp() -> tuple[float, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_mtime, st.st_size

    last = stamp()
    while True:
        await asyncio.sleep(0.5)
        now = stamp()
        if now != last and now is not None:
            await asyncio.sleep(0.5)
            settled = stamp()
            if settled == now:
                last = now
                runtime.reload(source="file change")


async def run_worker(runtime: Runtime, gw_sock: socket.socket, admin_sock: socket.socket | None) -> None:
    cfg = runtime.loaded.config
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: runtime.reload(source="SIGHUP"))
    await runtime.start()
    edge = cfg.server
    gateway = _uvicorn("gateway", runtime.app, edge.shutdown_timeout_s, edge.keepalive_timeout_s, edge_limits(edge))
    servers = [(gateway, gw_sock)]
    if admin_sock is not None:
        admin_limits = edge_limits(edge, ADMIN_MAX_CONNECTIONS)
        servers.append((_uvicorn("admin", runtime.admin, 1.0, edge.keepalive_timeout_s, admin_limits), admin_sock))
    for server, sock in servers:
        await server.startup(sockets=[sock])
    # What start-up built lives as long as the process: keep it out of every
    # collection, and collect the young generation less often (the hot path makes
    # short-lived objects that reference counting frees; cycles are rare).
    gc.collect()
    gc.freeze()
    gc.set_threshold(5_000, 20, 50)
    ticks = [loop.create_task(server.main_loop()) for server, _ in servers]
    watcher = loop.create_task(_watch_file(runtime))
    await stop.wait()
    watcher.cancel()
    for server, _ in servers:
        server.should_exit = True
    await asyncio.gather(*ticks)
    # uvicorn stops accepting and waits for open connections; the gateway bounds the
    # wait itself so that calls cut short are answered and recorded as its own doing.
    closing = asyncio.gather(*(server.shutdown(sockets=[sock]) for server, sock in servers))
    await runtime.gateway.drain(cfg.server.shutdown_timeout_s)
    await closing
    await runtime.stop()


def _run_loop(coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - platforms without uvloop
        runner = asyncio.Runner()
    with runner:
        runner.run(coro_factory())


def serve(make_runtime: MakeRuntime, listen: Listen) -> int:
    gw_sock = bind(listen.host, listen.port)
    admin_sock = bind(listen.admin_host, listen.admin_port)
    gw_port = gw_sock.getsockname()[1]
    admin_port = admin_sock.getsockname()[1]
    print(f"tollway: gateway listening on http://{listen.host}:{gw_port}", file=sys.stderr)
    print(f"tollway: admin listening on http://{listen.admin_host}:{admin_port}", file=sys.stderr, flush=True)
    if listen.workers <= 1:
        _run_loop(lambda: run_worker(make_runtime(None), gw_sock, admin_sock))
        return 0
    return _supervise(make_runtime, listen.workers, gw_sock, admin_sock)


def _reload_every_worker() -> None:
    """A reload through worker 0's admin API reaches the others through the parent, which
    forwards SIGHUP to every worker."""
    os.kill(os.getppid(), signal.SIGHUP)


def _supervise(make_runtime: MakeRuntime, workers: int, gw_sock: socket.socket, admin_sock: socket.socket) -> int:
    children: dict[int, int] = {}
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            code = 0
            try:
                admin = admin_sock if index == 0 else None
                _run_loop(lambda: run_worker(make_runtime(_reload_every_worker), gw_sock, admin))
            except BaseException:
                log.exception("worker %d crashed", index)
                code = 1
            os._exit(code)
        children[pid] = index

    def forward(sig: int, _frame: object) -> None:
        nonlocal stopping
        if sig in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for i in range(workers):
        spawn(i)
    failed = False
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if not stopping:
            log.error("worker %d exited with %d; starting a new one", index, code)
            time.sleep(0.5)
            spawn(index)
        elif code != 0:
            failed = True
    return 1 if failed else 0
