"""What a REST tool's call to its service came to, carried from the gateway's own MCP
server (``rest_server``, served in process) to the relay, which records it.

The tool result goes back to the agent as a result either way (``isError`` when the
service failed), but the record tells what happened upstream: its attempt is the REST
request (the service's status, or 502/504 when it could not be reached, timed out or
broke off), not the in-process MCP exchange that always answers 200; and its status is
the service's when that is 400 or more, 502 for a redirect (not followed: no answer),
502/504 with reason ``mcp.upstream_failed`` when there was no answer at all.

The rest server puts the call in the result's ``_meta`` under ``META_KEY``; the relay
takes it out before the agent sees the result (``take``). No module here loads the MCP
SDK, so the relay need not.
"""

from __future__ import annotations

from typing import Any

from tollway.errors import GatewayError, UpstreamError, UpstreamTimeout
from tollway.exchange import Attempt, Exchange

META_KEY = "tollway/rest_call"
FAILED = "mcp.upstream_failed"


def meta(status: int, latency_ms: float, failure: str | None = None) -> dict[str, Any]:
    """The ``_meta`` of a tool result whose REST request was sent: the service's status
    (``failure``: None) or, with no answer, 502 or 504 and why (``failure``)."""
    return {META_KEY: {"status": status, "latency_ms": latency_ms, "failure": failure}}


def take(ex: Exchange, server: str, answer: Any) -> bool:
    """Takes the REST call out of ``answer`` (a ``tools/call`` response, parsed) and
    records it on ``ex``: its attempt in place of the in-process one, and the status
    the call stands for (see the module). False when ``answer`` carries none (no
    request was sent: arguments refused, an unknown tool)."""
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, dict) or not isinstance(result.get("_meta"), dict):
        return False
    carried: dict[str, Any] = result["_meta"]
    call = carried.pop(META_KEY, None)
    if not isinstance(call, dict):
        return False
    if not carried:
        del result["_meta"]
    status, latency_ms, failure = int(call["status"]), float(call["latency_ms"]), call["failure"]
    started = ex.attempts[-1].started if ex.attempts else 0.0
    ex.attempts[-1:] = [Attempt(server, status, latency_ms, started, 0, FAILED if failure else None)]
    err: GatewayError | None = None
    if failure is not None:
        cls = UpstreamTimeout if status == 504 else UpstreamError
        err = cls(f"the REST service of MCP server {server!r} {failure}", reason=FAILED)
    elif status >= 300:
        # A tool error (the agent got the service's answer marked isError), recorded
        # with the status it stands for: the service's, or 502 for a redirect not followed.
        err = GatewayError(
            f"the REST service of MCP server {server!r} answered {status}",
            reason="mcp.tool_error",
            status=status if status >= 400 else 502,
        )
    if err is not None:
        ex.fail(err)
        ex.status = err.status
    return True
