"""Auto-pipelining: the commands issued in one event-loop turn go to Redis together.

Each command is still its own atomic step in Redis (one EVALSHA per admission
decision) and each caller still waits for exactly one round trip; what is shared is
the connection and the system calls. In a burst of hundreds of requests a process
needs a handful of connections instead of one per request: no connection storm, no
pool exhaustion, far less event-loop work per decision. (redis-py has no automatic
pipelining of its own.)

A caller that stops waiting cancels its future; a command not yet sent is then dropped,
one already sent still runs in Redis (as any command whose answer got lost would).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis


class _Pending:
    __slots__ = ("args", "future", "script")

    def __init__(self, args: Sequence[Any], future: asyncio.Future[Any], script: str | None) -> None:
        self.args = args
        self.future = future
        self.script = script


class AutoPipeline:
    """Sends queued commands in one pipeline per loop turn; answers each command's future.

    ``script`` names the Lua source of an EVALSHA command, loaded and retried when the
    server does not know it (a restarted Redis forgets every script). A batch gives up
    after ``deadline_s``, so a silent server cannot pile up batches holding connections
    long after their callers stopped waiting.
    """

    def __init__(self, client: Redis, deadline_s: float = 2.0) -> None:
        self.client = client
        self.deadline_s = deadline_s
        self._queue: list[_Pending] = []
        self._running: set[asyncio.Task[None]] = set()

    def send(self, args: Sequence[Any], script: str | None = None) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            # The task's first step runs on the next turn, when this turn's commands
            # have all been queued.
            task = loop.create_task(self._run())
            # Keep a reference until it ends: the loop alone holds tasks weakly.
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        self._queue.append(_Pending(args, future, script))
        return future

    async def _run(self) -> None:
        batch = [p for p in self._queue if not p.future.done()]
        self._queue = []
        if not batch:
            return
        try:
            async with asyncio.timeout(self.deadline_s):
                results = await self._execute([p.args for p in batch])
                forgotten = [i for i, r in enumerate(results) if isinstance(r, redis_errors.NoScriptError)]
                if forgotten:
                    sources = {batch[i].script for i in forgotten}
                    for source in sources:
                        if source is not None:
                            await self.client.script_load(source)
                    again = await self._execute([batch[i].args for i in forgotten])
                    for i, r in zip(forgotten, again, strict=True):
                        results[i] = r
        except BaseException as exc:  # the connection failed: every command in it did
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc if isinstance(exc, Exception) else redis_errors.ConnectionError())
            if not isinstance(exc, Exception):
                raise
            return
        for p, r in zip(batch, results, strict=True):
            if p.future.done():
                continue
            if isinstance(r, Exception):
                p.future.set_exception(r)
            else:
                p.future.set_result(r)

    async def _execute(self, commands: list[Sequence[Any]]) -> list[Any]:
        if len(commands) == 1:  # no burst: a plain command costs less than a pipeline
            try:
                return [await self.client.execute_command(*commands[0])]  # type: ignore[no-untyped-call]
            except redis_errors.ResponseError as exc:
                return [exc]
        async with self.client.pipeline(transaction=False) as pipe:
            for args in commands:
                pipe.execute_command(*args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
            return results

    async def aclose(self) -> None:
        """Cancel batches still in flight; their callers see a connection error."""
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


__all__ = ["AutoPipeline"]
