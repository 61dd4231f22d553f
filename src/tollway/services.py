"""The process-lifetime dependencies plugins and the gateway reach through one object.

Built once by the composition root (``runtime.py``) and handed to every snapshot, so a
reload keeps connections, caches and counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tollway.state import StateStore
from tollway.state.memory import MemoryStateStore
from tollway.upstream import Transport

if TYPE_CHECKING:
    from tollway.consumers.store import ConsumerDirectory


@dataclass
class Services:
    transport: Transport
    mock_transport: Transport
    directory: ConsumerDirectory | None = None
    # ``storage.state``: counters and quotas shared by workers and replicas when Redis.
    state: StateStore = field(default_factory=MemoryStateStore)
    # Always this process's own memory: key-rate-limit is a per-process limit by design.
    local_state: StateStore = field(default_factory=MemoryStateStore)
    extras: dict[str, object] = field(default_factory=dict)
