"""tollway.state.resp: the lean pipelined connection under the state store's hot path.

Against the shared Redis (each test's own key prefix), a private redis-server killed on
purpose, a socket that never answers, and one that answers garbage.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio
from redis import exceptions as redis_errors

from tests.support.redis_support import (  # noqa: F401
    REDIS_SERVER,
    RedisServer,
    free_port,
    redis_client,
    redis_prefix,
    redis_server,
    redis_url,
)
from tollway.state.resp import RespPipe


def _pipe(url: str, timeout_s: float = 0.5) -> RespPipe:
    pipe = RespPipe.for_url(url.split("?")[0], timeout_s)
    assert pipe is not None
    return pipe


async def test_a_burst_of_commands_gets_each_its_own_answer_in_order(redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    pipe = _pipe(redis_url)
    try:
        keys = [f"{redis_prefix}n{i % 7}" for i in range(500)]
        answers = await asyncio.gather(*(pipe.send(("INCR", k)) for k in keys))
        # Each key's answers count up 1, 2, 3… in the order the commands were sent.
        seen: dict[str, int] = {}
        for k, got in zip(keys, answers, strict=True):
            seen[k] = seen.get(k, 0) + 1
            assert got == seen[k]
        assert await pipe.send(("SET", f"{redis_prefix}b", b"\x00\xffbytes")) == b"OK"
        assert await pipe.send(("GET", f"{redis_prefix}b")) == b"\x00\xffbytes"
        assert await pipe.send(("GET", f"{redis_prefix}missing")) is None
    finally:
        await pipe.aclose()


async def test_an_error_reply_fails_only_its_own_command(redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    pipe = _pipe(redis_url)
    try:
        got: tuple[Any, ...] = await asyncio.gather(
            pipe.send(("SET", f"{redis_prefix}s", "text")),
            pipe.send(("INCR", f"{redis_prefix}s")),
            pipe.send(("EVALSHA", "0" * 40, 0)),
            pipe.send(("PING",)),
            return_exceptions=True,
        )
        before, wrong, unknown, after = got
        assert before == b"OK" and after == b"PONG"
        assert type(wrong) is redis_errors.ResponseError and "not an integer" in str(wrong)
        assert isinstance(unknown, redis_errors.NoScriptError)
    finally:
        await pipe.aclose()


async def test_a_command_its_caller_gave_up_on_before_it_was_written_is_not_sent(
    redis_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
    redis_client: redis.asyncio.Redis,  # noqa: F811
) -> None:
    pipe = _pipe(redis_url)
    try:
        await pipe.send(("PING",))  # connected
        dropped = pipe.send(("INCR", f"{redis_prefix}c"))
        dropped.cancel()
        assert await pipe.send(("INCRBY", f"{redis_prefix}c", 10)) == 10
        assert await redis_client.get(f"{redis_prefix}c") == b"10"
    finally:
        await pipe.aclose()


async def test_the_url_selects_the_database(redis_prefix: str, redis_url: str) -> None:  # noqa: F811
    pipe = _pipe(redis_url.replace("/0?", "/13?"))
    other = redis.asyncio.Redis(host="127.0.0.1", port=6379, db=13)
    try:
        await pipe.send(("SET", f"{redis_prefix}db", "13"))
        assert await other.get(f"{redis_prefix}db") == b"13"
    finally:
        await other.delete(f"{redis_prefix}db")
        await other.aclose()
        await pipe.aclose()


@pytest.fixture
def password_server(redis_server: RedisServer) -> Iterator[int]:  # noqa: F811
    """A private redis-server that wants the password "s3cret"; its port. (redis_server
    stands for the check that redis-server is installed.)"""
    port = free_port()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--requirepass", "s3cret"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait(10)


async def test_a_password_is_sent_before_any_command(password_server: int) -> None:
    good = _pipe(f"redis://:s3cret@127.0.0.1:{password_server}/0")
    bad = _pipe(f"redis://:wrong@127.0.0.1:{password_server}/0")
    try:
        assert await good.send(("PING",)) == b"PONG"
        with pytest.raises(redis_errors.ResponseError):
            await bad.send(("PING",))
    finally:
        await good.aclose()
        await bad.aclose()


async def test_a_lost_server_fails_what_is_in_flight_and_the_next_command_reconnects(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    pipe = _pipe(redis_server.url)
    try:
        assert await pipe.send(("SET", "k", "1")) == b"OK"
        redis_server.stop()
        with pytest.raises(redis_errors.ConnectionError):
            await pipe.send(("GET", "k"))
        redis_server.start()  # empty
        assert await pipe.send(("GET", "k")) is None
        assert await pipe.send(("INCR", "k")) == 1
    finally:
        await pipe.aclose()


async def test_a_server_that_never_answers_costs_one_deadline() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    pipe = _pipe(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout_s=0.2)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(*(pipe.send(("PING",)) for _ in range(50)), return_exceptions=True)
        assert all(isinstance(r, TimeoutError) for r in results), results
        assert loop.time() - started < 5  # a deadline (and a few loop turns), never a hang
    finally:
        await pipe.aclose()
        silent.close()


async def test_a_server_that_answers_garbage_is_dropped_not_believed() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"?what\r\n")  # no RESP reply starts with "?"
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipe = _pipe(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(redis_errors.ConnectionError, match="unreadable reply"):
            await pipe.send(("PING",))
    finally:
        await pipe.aclose()
        server.close()
        await server.wait_closed()


async def test_a_closed_pipe_refuses_at_once(redis_url: str) -> None:  # noqa: F811
    pipe = _pipe(redis_url)
    await pipe.send(("PING",))
    await pipe.aclose()
    with pytest.raises(redis_errors.ConnectionError, match="closed"):
        await pipe.send(("PING",))


@pytest.mark.parametrize(
    "url",
    [
        "rediss://127.0.0.1:6379/0",  # TLS
        "unix:///run/redis.sock",
        "redis://127.0.0.1:6379/0?socket_keepalive=true",  # a redis-py socket option
    ],
)
def test_urls_it_does_not_handle_stay_with_redis_py(url: str) -> None:
    assert RespPipe.for_url(url, 0.5) is None
