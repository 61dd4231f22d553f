"""The process-lifetime dependencies that plugins reach through one object.

Built once by the composition root (``tollway.runtime``) and handed to every config
snapshot, so a reload keeps connections, caches and counters. Frozen: a plugin reads
its services, it never swaps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tollway.state import StateStore
from tollway.state.memory import MemoryStateStore
from tollway.storage.audit import AuditLog
from tollway.upstream import Transport

if TYPE_CHECKING:
    from tollway.cache import CacheStores
    from tollway.consumers.directory import ConsumerDirectory
    from tollway.quotas.ledger import QuotaLedger


class SideCallSpend(Protocol):
    """Money budgets and max_parallel for a call a plugin makes on a client call's behalf
    (ai-cache's embeddings): held before it is made, settled as soon as it ends, so its
    cost is in its consumer's spend as in its record (``tollway.budgets`` does it)."""

    # (``call`` is the side call's ``tollway.exchange.Exchange``: this layer may not
    # name it.)

    async def admit_side_call(self, call: Any, model: str) -> None:
        """Hold ``call`` (sent upstream as ``model``) against its consumer's budgets, or
        raise the budget's refusal (a ``GatewayError``)."""
        ...

    async def settle_side_call(self, call: Any) -> None:
        """``call`` ended: give its hold back and count what it cost. Never raises."""
        ...

    async def admit_early(self, call: Any, upstream_calls: Any) -> None:
        """Hold the client's ``call`` now, as the gateway would before sending it on (it
        then holds nothing more), or raise the refusal: a plugin about to spend on the
        call's behalf first learns whether the call may run at all. ``upstream_calls``:
        ``ProviderLookup.upstream_calls``."""
        ...


@dataclass(frozen=True, slots=True)
class Services:
    transport: Transport
    # The built-in mock model, in this process (providers of type mock, chatgptUri mock://).
    mock_transport: Transport
    # Runtime consumers (key-auth looks keys up here); none where no database is open.
    directory: ConsumerDirectory | None = None
    # ``storage.state``: counters and quotas shared by workers and replicas when Redis.
    state: StateStore = field(default_factory=MemoryStateStore)
    # Always this process's own memory: key-rate-limit is a per-process limit by design.
    local_state: StateStore = field(default_factory=MemoryStateStore)
    # The database's record of ai-quota balances on ``state``, to rebuild what the state
    # store loses; none where no database is open (quotas then live in the store alone).
    quota_ledger: QuotaLedger | None = None
    # ai-cache's answers and vectors (exact entries on ``state``, vectors in the
    # database); none where the runtime made none (each ai-cache then keeps its own
    # entries on ``state``, without a semantic cache).
    caches: CacheStores | None = None
    # The audit log of admin writes (ai-quota's quota changes record there); none where
    # no database is open.
    audit: AuditLog | None = None
    # Money budgets for side calls; none where the runtime has none (tests, the harness).
    side_call_spend: SideCallSpend | None = None
