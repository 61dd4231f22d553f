"""What a plugin does when the state store cannot answer: its entry's ``failure_mode``.

``open`` lets the request through unlimited; ``closed`` refuses it with 503
``service_unavailable`` and reason ``<plugin>.state_unavailable``, never a 500 and never
a wait longer than the store's timeouts. Each plugin has its own default: request and
token rate limits fail open (an outage of the limiter should not become an outage of
the gateway, as in Higress), quotas fail closed (spending must not go unchecked).
"""

from __future__ import annotations

from tollway.errors import GatewayError
from tollway.plugin import Scope


def fails_open(scope: Scope, default_open: bool) -> bool:
    """Whether an unreachable state store lets requests through, for this plugin entry."""
    if scope.failure_mode is None:
        return default_open
    return scope.failure_mode == "open"


def state_unavailable(plugin: str) -> GatewayError:
    """The refusal of a ``closed`` plugin whose state store did not answer."""
    return GatewayError(
        f"{plugin}: the limit store is unavailable; try again shortly",
        reason=f"{plugin}.state_unavailable",
        status=503,
        code="service_unavailable",
        headers=[("retry-after", "1")],
    )


__all__ = ["fails_open", "state_unavailable"]
