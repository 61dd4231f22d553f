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
from dataclasses import dataclass, replace
from typing import Any, cast

import uvicorn

from tollway.config.load import ConfigError
from tollway.config.schema import ServerConfig
from tollway.gateway.edge import Receive, Scope, Send
from tollway.runtime.connection import (
    ADMIN_MAX_CONNECTIONS,
    EdgeLimits,
    RecordRefusal,
    connection_class,
    derived_max_connections,
)
from tollway.runtime.root import CATCH_UP, FORWARDED_RELOAD, Runtime
from tollway.runtime.summary import startup_lines
from tollway.storage import StorageError

AsgiApp = Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]
# Builds a worker's runtime on the config the gateway started with: (on_reload_ok,
# records_reloads) → the runtime (see ``Runtime``). on_reload_ok runs after a reload
# asked of that worker's admin API took effect (None: there are no other workers to tell).
MakeRuntime = Callable[[Callable[[], None] | None, bool], Runtime]

log = logging.getLogger("tollway")


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    admin_host: str
    admin_port: int
    workers: int


# A worker that could not start (its database unreachable, say) exits with this code:
# the parent then stops the others and exits 1, instead of restarting it in a loop.
STARTUP_FAILED = 3


class StartupFailed(Exception):
    """The gateway cannot start; the message is the one line the operator reads."""


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise StartupFailed(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def bind_each(host: str, port: int, workers: int) -> list[socket.socket]:
    """A listening socket per worker on one port (SO_REUSEPORT), so the kernel spreads
    new connections over the workers: with one shared socket, whichever worker woke
    first took every connection waiting (a pool of kept-alive connections opened at
    once all landed on one worker). The port is first bound alone, briefly: another
    process's SO_REUSEPORT sockets on it (a second gateway started by the same user)
    make that fail, as a port in use must, where joining them would not."""
    alone = bind(host, port)
    port = alone.getsockname()[1]
    alone.close()
    return [bind(host, port, reuse_port=True) for _ in range(workers)]


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
        max_connections_per_client=server.max_connections_per_client or 0,
    )


def _uvicorn(
    name: str,
    app: AsgiApp,
    shutdown_timeout: float,
    keepalive_s: float,
    limits: EdgeLimits,
    record_refusal: RecordRefusal | None = None,
) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        http=connection_class(limits, name, record_refusal),
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
                if runtime.source.digest() != runtime.applied_digest:
                    # (A change a reload already took, by SIGHUP or the admin API after
                    # the edit, is not reloaded and audited a second time.)
                    runtime.reload(source="file change")


def _say(line: str) -> None:
    print(f"tollway: {line}", file=sys.stderr, flush=True)


def _announce(runtime: Runtime, gw_sock: socket.socket, admin_sock: socket.socket | None, workers: int) -> None:
    """Once the gateway serves: what it serves, and where (the "listening" lines last:
    tests and scripts wait for them)."""
    for line in startup_lines(runtime.snapshot):
        _say(line)
    host, port = gw_sock.getsockname()[:2]
    shown = f" ({workers} workers)" if workers > 1 else ""
    _say(f"gateway listening on http://{_host(host)}:{port}{shown}")
    if admin_sock is not None:
        host, port = admin_sock.getsockname()[:2]
        _say(f"admin listening on http://{_host(host)}:{port}")


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


async def run_worker(
    runtime: Runtime,
    gw_sock: socket.socket | Callable[[], socket.socket],
    admin_sock: socket.socket | None,
    announce: int = 0,
    catch_up: bool = False,
) -> None:
    """Serves until SIGTERM/SIGINT. ``announce``: the number of workers, for the one
    that tells the operator what serves and when it stops (0: this worker says nothing).
    ``catch_up``: a worker started again after one died, which reloads the config file
    before it serves (see ``_catch_up``) and says nothing of what serves. ``gw_sock``:
    the gateway's socket, or what binds one once the worker is ready to serve (a worker
    that could not start before: ``_supervise``)."""
    cfg = runtime.loaded.config
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: runtime.reload(source="SIGHUP"))
    if not runtime.records_reloads:
        # A worker but the first: the first's admin API asked for a reload, which the
        # parent forwards as SIGUSR1 (``_supervise``). Nowhere else is SIGUSR1 a reload.
        loop.add_signal_handler(signal.SIGUSR1, lambda: runtime.reload(source=FORWARDED_RELOAD))
    # (A worker is forked with the reloads blocked: one sent meanwhile is taken now.)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
    await runtime.start()
    if catch_up:
        await _catch_up(runtime)
    if callable(gw_sock):
        try:
            gw_sock = gw_sock()
        except StartupFailed:
            await runtime.stop()
            raise
    edge = cfg.server
    # A request the gateway listener's edge refuses is a usage record (SPEC §5); the
    # admin listener's are not calls.
    record = runtime.accountant.refused_at_edge
    gateway = _uvicorn(
        "gateway", runtime.app, edge.shutdown_timeout_s, edge.keepalive_timeout_s, edge_limits(edge), record
    )
    servers = [(gateway, gw_sock)]
    if admin_sock is not None:
        # Its own bound, and none per address: an operator's browser opens several
        # connections to the dashboard, and a bound meant for the gateway's clients
        # must not lock them out of it.
        admin_limits = replace(edge_limits(edge, ADMIN_MAX_CONNECTIONS), max_connections_per_client=0)
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
    if announce and not catch_up:
        _announce(runtime, gw_sock, admin_sock, announce)
    await stop.wait()
    if announce:
        busy = runtime.gateway.in_flight
        # With several workers this one speaks for itself alone: the others finish their
        # own calls as quietly (the operator reads one line, not N).
        whose = " in this worker (the other workers finish theirs)" if announce > 1 else ""
        log.info(
            "stopping: %s, then storing the last usage records",
            f"finishing {busy} call(s) in flight{whose} (at most {cfg.server.shutdown_timeout_s:g}s)"
            if busy
            else f"no call in flight{whose}",
        )
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
    if announce:
        log.info("stopped")


async def _catch_up(runtime: Runtime) -> None:
    """A worker started again takes the config file as the others run it: a reload, so
    it applies what a reload would (``server``, ``admin`` and ``storage`` as the gateway
    started; no config consumer named like a runtime one), where the config the gateway
    started with could hold a key taken out since. One that the others would refuse too
    (the file broken meanwhile) leaves it not serving: ``ConfigError``."""
    # (Even when the file reads as it did at start: the others may have reloaded a
    # change and refused its undoing.)
    result = runtime.reload(source=CATCH_UP)
    if not result.ok:
        await runtime.stop()
        raise ConfigError(result.errors)


def _run_loop(coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - platforms without uvloop
        runner = asyncio.Runner()
    with runner:
        runner.run(coro_factory())


def serve(make_runtime: MakeRuntime, listen: Listen) -> int:
    """Runs the gateway until it is stopped; raises ``StartupFailed`` (one line for the
    operator) when it cannot start."""
    if listen.workers <= 1:
        gw_sock = bind(listen.host, listen.port)
        admin_sock = bind(listen.admin_host, listen.admin_port)
        try:
            _run_loop(lambda: run_worker(make_runtime(None, True), gw_sock, admin_sock, announce=1))
        except StorageError as exc:
            raise StartupFailed(f"cannot use storage.database: {exc}") from None
        return 0
    gw_socks = bind_each(listen.host, listen.port, listen.workers)
    admin_sock = bind(listen.admin_host, listen.admin_port)
    return _supervise(make_runtime, gw_socks, admin_sock)


def _reload_the_other_workers() -> None:
    """A reload through worker 0's admin API reaches the others through the parent, which
    forwards SIGUSR1 to every worker but worker 0 (which reloaded, and recorded it)."""
    os.kill(os.getppid(), signal.SIGUSR1)


def _supervise(make_runtime: MakeRuntime, gw_socks: list[socket.socket], admin_sock: socket.socket) -> int:
    """Forks a worker per socket of ``gw_socks``. A worker started again after it died
    takes the same one: connections the kernel queued on it while none served it are
    answered then. One that could not start again (its config file refused, its database
    gone) gives it up: connections the kernel gave it would wait there unanswered, maybe
    for minutes, where the live workers share them out without it. From then on that
    worker binds a socket of its own (beside the others) once it is ready to serve, so a
    try that fails again takes no connections with it."""
    workers = len(gw_socks)
    host, port = gw_socks[0].getsockname()[:2]
    given_up: set[int] = set()

    def bind_own() -> socket.socket:
        return bind(host, port, reuse_port=True)

    parent = os.getpid()
    children: dict[int, int] = {}
    # How often each worker was started again (0: still its first start).
    restarts = [0] * workers
    stopping = False
    # Workers that cannot start fail alike (the same database): the one that takes the
    # single byte in this pipe says why, so the operator reads the reason once.
    say_r, say_w = os.pipe()
    os.set_blocking(say_r, False)
    os.write(say_w, b".")

    def spawn(index: int) -> None:
        # The signals wait, blocked, across the fork: one let through at once ran the
        # parent's handler in the parent before it knew the new worker (not forwarded to
        # it), or in the new worker before it put back the defaults (taken as the
        # parent's, and the worker served on): either way the gateway never stopped.
        signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
            raise
        if pid == 0:
            for sig in (*_FORWARDED, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            # A stop ends it at once, still starting; a reload waits for its handler
            # (``run_worker``), rather than end it as SIGHUP's default would.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
            _stop_with(parent)
            # Not the other workers' sockets: held here too, one given up (``given_up``)
            # would still listen, its connections never taken.
            for other, held in enumerate(gw_socks):
                if other != index:
                    held.close()
            if index != 0:
                admin_sock.close()
            code = 0
            try:
                admin = admin_sock if index == 0 else None
                again = restarts[index] > 0
                # Worker 0 serves the admin API and records the reloads it did not ask for
                # (SIGHUP, a changed file); every worker takes them.
                first = index == 0
                announce = workers if first else 0
                others = _reload_the_other_workers if first else None
                sock = bind_own if index in given_up else gw_socks[index]
                _run_loop(lambda: run_worker(make_runtime(others, first), sock, admin, announce, again))
            except ConfigError as exc:
                # Started again while the file holds a config the others refused: not on
                # the config the gateway started with (a key taken out since would work
                # again here); tried again, less and less often, until the file is fixed.
                problems = "; ".join(exc.problems)
                print(
                    f"tollway: worker {index}: not started again until the config file can be reloaded: {problems}",
                    file=sys.stderr,
                    flush=True,
                )
                code = STARTUP_FAILED
            except StartupFailed as exc:  # its own socket could not join the others'
                print(f"tollway: worker {index}: {exc}", file=sys.stderr, flush=True)
                code = STARTUP_FAILED
            except StorageError as exc:
                # The database it needs is not there: one line, not a traceback per try.
                if restarts[index]:
                    print(f"tollway: worker {index}: cannot use storage.database: {exc}", file=sys.stderr, flush=True)
                elif _take(say_r):
                    print(f"tollway: cannot use storage.database: {exc}", file=sys.stderr, flush=True)
                code = STARTUP_FAILED
            except BaseException:
                log.exception("worker %d crashed", index)
                code = 1
            os._exit(code)
        children[pid] = index
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)

    def forward(sig: int, _frame: object) -> None:
        nonlocal stopping
        if sig in (signal.SIGTERM, signal.SIGINT):
            stopping = True
            # No worker is started again now: the parent's copies of the listening
            # sockets go, so that each worker's own close stops the port listening.
            # Held open here, the kernel went on taking connections that no worker would
            # accept, unanswered until the gateway exited (a judge saw clients hang).
            for sock in (*gw_socks, admin_sock):
                sock.close()
        for pid in list(children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def forward_reload(_sig: int, _frame: object) -> None:
        for pid, index in list(children.items()):
            if index != 0:
                try:
                    os.kill(pid, signal.SIGUSR1)
                except ProcessLookupError:
                    pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    signal.signal(signal.SIGUSR1, forward_reload)
    for i in range(workers):
        spawn(i)
    failed = False
    # The workers to start again, and when: one waiting out its pause holds up no other's
    # (a worker refused, tried every 30 s, kept the parent from replacing any other).
    due: dict[int, float] = {}

    def start_due() -> None:
        now = time.monotonic()
        for index in [i for i, at in due.items() if at <= now]:
            del due[index]
            spawn(index)

    while children or (due and not stopping):
        waiting = bool(due) and not stopping
        try:
            # (Without a worker due, a wait for the next to end; else a look every 0.1 s.)
            pid, status = os.waitpid(-1, os.WNOHANG if waiting else 0)
        except ChildProcessError:
            if not waiting:
                break
            pid = 0
        except InterruptedError:
            continue
        if pid == 0:
            start_due()
            time.sleep(0.1)
            continue
        index = children.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            # (-SIGTERM: a worker still starting, its handlers not yet set, when the
            # forwarded SIGTERM came: a stop like any other.)
            failed = failed or code not in (0, STARTUP_FAILED, -signal.SIGTERM)
        elif code == STARTUP_FAILED and not restarts[index]:
            # A first start failed: the others would fail alike. Stop them; exit 1.
            failed = stopping = True
            forward(signal.SIGTERM, None)
        else:
            if code == STARTUP_FAILED and index not in given_up:
                # (Closed, what it had queued is reset: a client retries, on a live worker.)
                gw_socks[index].close()
                given_up.add(index)
            restarts[index] += 1
            pause = _pause(restarts[index], code)
            log.error("worker %d exited with %d; starting a new one in %gs", index, code, pause)
            due[index] = time.monotonic() + pause
    os.close(say_r)
    os.close(say_w)
    return 1 if failed else 0


def _pause(restarts: int, code: int) -> float:
    """How long a worker that ended with ``code`` waits to start again: half a second, and
    for one that could not start, twice as long each time, 30 s at most."""
    return min(30.0, 0.5 * 2 ** min(restarts - 1, 6)) if code == STARTUP_FAILED else 0.5


def _stop_with(parent: int) -> None:
    """A worker is sent SIGTERM (a graceful stop) when its parent dies, killed with
    SIGKILL or by the OOM killer, rather than go on serving, orphaned, on ports the next
    start cannot bind (Linux's parent-death signal; elsewhere nothing is done)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the signal was asked for
        os.kill(os.getpid(), signal.SIGTERM)


_PR_SET_PDEATHSIG = 1
# The signals the parent forwards to its workers, and those of them that stop.
_STOPS = {signal.SIGTERM, signal.SIGINT}
_FORWARDED = {*_STOPS, signal.SIGHUP, signal.SIGUSR1}


def _take(fd: int) -> bool:
    """Whether this process took the byte waiting in the pipe ``fd`` (only one can)."""
    try:
        return os.read(fd, 1) == b"."
    except BlockingIOError:
        return False
