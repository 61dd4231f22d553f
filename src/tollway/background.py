"""Work that runs beside the calls for a part's whole life: the accountant's drain, the
access log's writes, the usage writer, the consumer refresh.

Every such part owns one ``BackgroundTask``: it keeps the reference (a task nobody holds
may be collected mid-run, and its failure goes unseen), starts it inside the running
loop, and stops it either by cancelling it or, for work that must not be cut short
(a database write), by waiting for it to end after the part has told it to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

Run = Callable[[], Coroutine[Any, Any, None]]


class BackgroundTask:
    __slots__ = ("_run", "_task", "name")

    def __init__(self, name: str, run: Run) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self, bound_s: float = 2.0) -> None:
        """Cancel the task and wait until it has ended, or ``bound_s`` at most: a task
        cancelled in a database query waits for the server to confirm the cancel, and a
        server that answers nothing would hold a stop for the query's whole timeout (30
        s). The database's close, later in the stop, drops the connection under it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait((task,), timeout=bound_s)
            if task.done() and not task.cancelled():
                with contextlib.suppress(asyncio.CancelledError):
                    task.result()

    async def join(self) -> None:
        """Wait for a task that was told to end (not cancelled: its last round completes)."""
        task, self._task = self._task, None
        if task is not None:
            await task


def every(interval_s: float, tick: Callable[[], Awaitable[None] | None]) -> Run:
    """A ``Run`` that calls ``tick`` every ``interval_s`` until cancelled (awaiting what it
    returns, if anything)."""

    async def run() -> None:
        while True:
            await asyncio.sleep(interval_s)
            done = tick()
            if done is not None:
                await done

    return run
