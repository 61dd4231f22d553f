"""``GET /readyz``: whether this process can serve calls as configured, for a load
balancer or an orchestrator's readiness probe (``/healthz`` stays liveness only: a
process that answers it is alive, even while its database is away).

Ready means every check passed within ``CHECK_TIMEOUT_S``: the config in effect was
built (always, once serving), the database answers a query, the state store answers a
command. 200 ``{"ready": true, "checks": {...: "ok"}}``, else 503 with each failing
check's reason. Public like ``/healthz`` (probes carry no token); a reason names the
database or store as the logs do, without credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from tollway.admin.app import AdminApp, AdminRequest, Answer, json_reply

# A check that takes longer fails: a probe must be answered before its own timeout.
CHECK_TIMEOUT_S = 2.0

# Raises when what it checks is not usable; the exception's text is the reason.
Check = Callable[[], Awaitable[object]]


async def _outcome(check: Check) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    except Exception as exc:  # any failure is a reason not to route calls here
        return str(exc) or type(exc).__name__
    return "ok"


def register(admin: AdminApp, checks: Mapping[str, Check]) -> None:
    async def readyz(req: AdminRequest) -> Answer:
        names = list(checks)
        outcomes = await asyncio.gather(*(_outcome(checks[name]) for name in names))
        results = dict(zip(names, outcomes, strict=True))
        ready = all(outcome == "ok" for outcome in outcomes)
        return json_reply(200 if ready else 503, {"ready": ready, "checks": results})

    admin.add("GET", "/readyz", readyz, public=True)
