"""Redis for tests: the shared server on 127.0.0.1:6379, and private servers to kill.

``redis_url`` gives each test its own key prefix on the shared server (a
``storage.state`` URL with ``?key_prefix=``) and deletes only those keys afterwards.
The shared server missing skips the test, except under ``CI=true``, where it fails: CI
must run these. ``redis_server`` starts a private ``redis-server`` (no persistence) on
a free port that a test may stop and start again on the same port.

Test modules import the fixtures they use from here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
import redis
import redis.asyncio

SHARED_HOST, SHARED_PORT = "127.0.0.1", 6379
REDIS_SERVER = "/usr/bin/redis-server"


def _unreachable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: Redis tests must run)")
    pytest.skip(reason)


def _ping(port: int, host: str = SHARED_HOST) -> bool:
    try:
        return bool(redis.Redis(host=host, port=port, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


@pytest.fixture
def redis_prefix() -> str:
    return f"tollway-test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_url(redis_prefix: str) -> Iterator[str]:
    """A ``storage.state`` URL on the shared server with this test's own key prefix."""
    if not _ping(SHARED_PORT):
        _unreachable(f"Redis is not reachable on {SHARED_HOST}:{SHARED_PORT}")
    yield f"redis://{SHARED_HOST}:{SHARED_PORT}/0?key_prefix={redis_prefix}"
    client = redis.Redis(host=SHARED_HOST, port=SHARED_PORT)
    try:
        keys = list(client.scan_iter(match=redis_prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client of the shared server, to look at what the store wrote."""
    client = redis.asyncio.Redis(host=SHARED_HOST, port=SHARED_PORT)
    yield client
    await client.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RedisServer:
    """A private redis-server; ``stop()`` kills it, ``start()`` brings it back (empty)."""

    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.starts += 1
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # (a paused one must die too)
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        """The server hangs: connections stay open, commands wait in their sockets."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """The hung server runs again, and the commands that waited with it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not shutil.which(REDIS_SERVER):
        _unreachable(f"{REDIS_SERVER} is not installed")
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


__all__ = ["RedisServer", "free_port", "redis_client", "redis_prefix", "redis_server", "redis_url"]
