"""A lean pipelined Redis connection for the state store's hot path.

Every limit decision is one command, and redis-py spends more CPU around a command
(connection pool, retry wrapper, a pipeline object per batch, reply dispatch) than the
gateway spends on the rest of the decision: with the limits' state in Redis the full
chain ran at 0.7 of the same chain with state in memory (benchmarks/README.md, "Redis
state"). This keeps only what the state store needs and leaves parsing and packing to
hiredis's C code (a hardened parser, the one redis-py uses when it is installed):

- one TCP connection per process, opened on first use and again after it is lost;
- the commands of one event-loop turn written in one ``write``; replies matched to
  their commands in order (Redis answers a connection's commands in the order sent),
  so there is no per-command task, pool or lock;
- one deadline timer per turn's batch rather than per command: when it fires with the
  batch unanswered (after a few more loop turns, in case the loop was busy rather than
  the server slow), the connection is dropped and everything in flight fails, so a
  silent server costs a deadline and never a growing backlog;
- a command whose caller stopped waiting before it was written is not sent; one already
  written still runs (its reply is read and dropped).

Errors are Redis's own: a reply error is ``redis.exceptions.ResponseError``
(``NoScriptError`` for NOSCRIPT); a lost, refused or timed-out connection is
``ConnectionError``/``TimeoutError``. TLS and Unix-socket URLs keep redis-py (see
``RespPipe.for_url``).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from functools import partial
from typing import Any, cast

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio.connection import parse_url

from tollway import deadlines

# Loop turns a batch past its deadline still gets: enough to read a reply already in.
GRACE_TURNS = 10

# URL options this connection understands; any other (TLS, a socket path, redis-py's
# socket options) makes ``for_url`` answer None, and the store keeps redis-py.
_UNDERSTOOD = frozenset({"host", "port", "db", "username", "password"})


class _ReplyError(redis_errors.ResponseError):
    """What hiredis builds for an error reply; turned into redis-py's classes below."""


def _error(reply: _ReplyError) -> redis_errors.ResponseError:
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return redis_errors.NoScriptError(message)
    return redis_errors.ResponseError(message)


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: RespPipe, loop: asyncio.AbstractEventLoop) -> None:
        self.pipe = pipe
        # The loop the connection serves: asking asyncio for the running loop is a
        # getpid() system call on Python 3.11, and every command needs it.
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=_ReplyError)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.pipe.waiting
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:  # not Redis speaking: nothing after this is trustworthy
                self.pipe.drop(self, redis_errors.ConnectionError(f"unreadable reply: {exc}"))
                return
            if reply is False:
                return
            if not waiting:
                self.pipe.drop(self, redis_errors.ConnectionError("a reply nobody asked for"))
                return
            future = waiting.popleft()
            if future.done():  # its caller stopped waiting
                continue
            if isinstance(reply, _ReplyError):
                future.set_exception(_error(reply))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe.drop(self, redis_errors.ConnectionError(f"connection lost: {exc or 'closed by the server'}"))


class RespPipe:
    """One pipelined connection to one Redis server (see the module's docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 0.5,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._handshake: list[tuple[Any, ...]] = []
        if password is not None:
            self._handshake.append(("AUTH", username, password) if username else ("AUTH", password))
        if db:
            self._handshake.append(("SELECT", db))
        # Futures of written commands, oldest first: the order Redis answers in.
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._queued: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._flush_soon = False
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def for_url(cls, url: str, timeout_s: float) -> RespPipe | None:
        """A pipe for a plain ``redis://host:port/db`` URL (user and password allowed), or
        None for anything it does not handle (``rediss://``, ``unix://``, socket options)."""
        if not url.startswith("redis://"):
            return None
        options = parse_url(url)
        if not set(options) <= _UNDERSTOOD or not options.get("host"):
            return None
        return cls(
            str(options["host"]),
            int(options.get("port", 6379)),
            db=int(options.get("db", 0)),
            username=options.get("username"),
            password=options.get("password"),
            timeout_s=timeout_s,
        )

    # --- sending ------------------------------------------------------------------------

    def send(self, args: Sequence[Any]) -> asyncio.Future[Any]:
        """Queue one command; it is written at the end of this loop turn with the others."""
        protocol = self._protocol
        loop = protocol.loop if protocol is not None else asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed:
            future.set_exception(redis_errors.ConnectionError("the state store is closed"))
            return future
        self._queued.append((hiredis.pack_command(tuple(args)), future))
        if not self._flush_soon:
            self._flush_soon = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_soon = False
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            if self._connecting is None and self._queued:
                self._connecting = asyncio.get_running_loop().create_task(self._connect())
            return
        batch = [(data, f) for data, f in self._queued if not f.done()]
        self._queued = []
        if batch:
            self._write(protocol, batch)

    def _write(self, protocol: _Protocol, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        assert protocol.transport is not None
        protocol.transport.write(b"".join(data for data, _ in batch))
        self.waiting.extend(f for _, f in batch)
        last = batch[-1][1]
        # A deadline of the loop's (``tollway.deadlines``): one for every batch, and they
        # almost never find one unanswered.
        deadlines.for_loop(protocol.loop).after(self.timeout_s, partial(self._deadline, protocol, last, GRACE_TURNS))

    def _deadline(self, protocol: _Protocol, last: asyncio.Future[Any], turns: int) -> None:
        """The batch's deadline passed. Its last command answered means all of it did
        (replies come in order); else give the loop a few turns, then drop the connection."""
        if last.done() or protocol is not self._protocol:
            return
        if turns:
            asyncio.get_running_loop().call_soon(self._deadline, protocol, last, turns - 1)
            return
        self.drop(protocol, TimeoutError(f"no answer from Redis within {self.timeout_s} s"))

    # --- connecting ---------------------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                transport, protocol = await loop.create_connection(lambda: _Protocol(self, loop), self.host, self.port)
                assert isinstance(protocol, _Protocol)
                # uvloop may call connection_made a turn after create_connection returns.
                protocol.transport = transport
                self._protocol = protocol
                if self._handshake:
                    futures = [loop.create_future() for _ in self._handshake]
                    transport.write(b"".join(hiredis.pack_command(c) for c in self._handshake))
                    self.waiting.extend(futures)
                    await asyncio.gather(*futures)
        except (OSError, TimeoutError, redis_errors.RedisError) as exc:
            reason = (
                exc
                if isinstance(exc, redis_errors.RedisError)
                else redis_errors.ConnectionError(
                    f"cannot reach Redis at {self.host}:{self.port}: {type(exc).__name__}: {exc}"
                )
            )
            if self._protocol is not None:
                self.drop(self._protocol, reason)
            self._fail_queued(reason)
            return
        finally:
            self._connecting = None
        self._flush()

    def _fail_queued(self, reason: BaseException) -> None:
        queued, self._queued = self._queued, []
        for _, future in queued:
            if not future.done():
                future.set_exception(reason)

    def drop(self, protocol: _Protocol, reason: BaseException) -> None:
        """Close ``protocol``'s connection and fail every command written on it."""
        if protocol is not self._protocol:
            return
        self._protocol = None
        if protocol.transport is not None:
            protocol.transport.abort()
        waiting, self.waiting = self.waiting, collections.deque()
        for future in waiting:
            if not future.done():
                future.set_exception(reason)

    async def aclose(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        if self._protocol is not None:
            self.drop(self._protocol, redis_errors.ConnectionError("the state store is closed"))
        self._fail_queued(redis_errors.ConnectionError("the state store is closed"))


__all__ = ["GRACE_TURNS", "RespPipe"]
