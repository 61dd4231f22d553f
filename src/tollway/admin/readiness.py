"""``GET /readyz``: whether this process can serve calls as configured, for a load
balancer or an orchestrator's readiness probe (``/healthz`` stays liveness only: a
process that answers it is alive, even while its database is away).

Ready means every check passed within ``CHECK_TIMEOUT_S``: the config in effect was
built (always, once serving), the database answers a query, the state store answers a
command. 200 ``{"ready": true, "checks": {...: "ok"}}``, else 503 with each failing
check's reason. Public like ``/healthz`` (probes carry no token); a reason names the
database or store as the logs do, without credentials.

A check past its bound is answered as failed at once and cancelled in the background:
waiting for the cancellation would wait for the dependency it is about (asyncpg
cancels a query by asking the server, and a server that answers nothing holds that for
the query's whole timeout). A probe that finds a check still running within its bound
waits on it rather than start another; one that finds it past its bound (ending in the
background) starts a fresh check, so a dependency that came back is seen at the next
probe, not once the stuck check's driver gives up (~30 s). At most ``MAX_ENDING`` checks
per dependency end in the background; past that, probes wait on the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping

from tollway.admin.app import AdminApp, AdminRequest, Answer, json_reply

# A check that takes longer fails: a probe must be answered before its own timeout.
CHECK_TIMEOUT_S = 2.0
_NO_ANSWER = f"no answer within {CHECK_TIMEOUT_S:g}s"
# Checks past their bound left to end in the background, per dependency.
MAX_ENDING = 8

# Raises when what it checks is not usable; the exception's text is the reason.
Check = Callable[[], Awaitable[object]]


class _Probe:
    """One dependency's check, run at most once at a time."""

    __slots__ = ("_check", "_ending", "_name", "_task")

    def __init__(self, name: str, check: Check) -> None:
        self._name = name
        self._check = check
        self._task: asyncio.Task[str] | None = None
        # Checks cancelled past their bound and still ending.
        self._ending: set[asyncio.Task[str]] = set()

    async def _run(self) -> str:
        try:
            await self._check()
        except Exception as exc:  # any failure is a reason not to route calls here
            return str(exc) or type(exc).__name__
        return "ok"

    async def outcome(self) -> str:
        task = self._task
        if task is not None and task.cancelling() and not task.done() and len(self._ending) < MAX_ENDING:
            self._ending.add(task)  # past its bound: it ends on its own, a fresh check asks again
            task.add_done_callback(self._ending.discard)
            task = None
        if task is None or task.done():
            task = self._task = asyncio.get_running_loop().create_task(self._run(), name=f"readyz-{self._name}")
        done, _ = await asyncio.wait((task,), timeout=CHECK_TIMEOUT_S)
        if not done:
            if not task.cancelling():  # once: a second cancel would cut its cleanup short
                task.cancel()  # it ends in the background; the next probe waits on it, bounded
            return _NO_ANSWER
        return _NO_ANSWER if task.cancelled() else task.result()

    async def stop(self, bound_s: float) -> None:
        task, self._task = self._task, None
        tasks = [t for t in (task, *self._ending) if t is not None and not t.done()]
        self._ending.clear()
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=bound_s)
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, asyncio.InvalidStateError):
                t.result()


class Readiness:
    """The checks behind ``/readyz``; ``stop()`` ends any still running (at shutdown)."""

    def __init__(self, checks: Mapping[str, Check]) -> None:
        self._probes = {name: _Probe(name, check) for name, check in checks.items()}

    async def answer(self, req: AdminRequest) -> Answer:
        names = list(self._probes)
        outcomes = await asyncio.gather(*(self._probes[name].outcome() for name in names))
        results = dict(zip(names, outcomes, strict=True))
        ready = all(outcome == "ok" for outcome in outcomes)
        return json_reply(200 if ready else 503, {"ready": ready, "checks": results})

    async def stop(self, bound_s: float = 2.0) -> None:
        await asyncio.gather(*(probe.stop(bound_s) for probe in self._probes.values()))


def register(admin: AdminApp, checks: Mapping[str, Check]) -> Readiness:
    readiness = Readiness(checks)
    admin.add("GET", "/readyz", readiness.answer, public=True)
    return readiness
