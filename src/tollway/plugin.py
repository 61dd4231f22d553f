"""What a plugin is, and what it may do at each point of a call.

A plugin is a config model plus a class with a few optional hooks. The chain
(``chain.py``) calls request hooks in phase/priority order and response hooks in the
reverse order (an onion). A hook refuses the request by raising a ``GatewayError`` and
answers it itself by returning a ``Reply``; returning ``None`` lets the call go on.

What a hook may read: the request as the client sent it (``ex.request``) and, from the
first hook on, the API, the client's dialect (``ex.api``, ``ex.dialect``); from
``request_body`` on, the model asked for and the stream flag (``ex.model_requested``,
``ex.stream``) and the parsed body (``ex.request.json()``, parsed once for everyone).

One plugin object is built per config scope (the default config, and each match rule
with its config laid over the default), when a config snapshot is built. Per-request
state goes on the ``Exchange`` under a ``StateKey``, never on the plugin object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from tollway.config.schema import CustomSetting, FailureMode, PluginConfig
from tollway.exchange import Exchange, Reply

if TYPE_CHECKING:
    from tollway.consumers.consumer import Consumer
    from tollway.protocols.sse import SseEvent
    from tollway.providers.base import Provider
    from tollway.routing.routes import Route
    from tollway.services import Services


class Phase(IntEnum):
    """Higress's plugin phases, in the order they run."""

    AUTHN = 0
    AUTHZ = 1
    STATS = 2
    UNSPECIFIED = 3


class ProviderLookup(Protocol):
    """The providers of the config snapshot a plugin object belongs to, for a plugin that
    calls one on the side (ai-cache's embeddings) or must know what the provider will be
    asked (ai-cache keys on the model after mapping)."""

    def provider(self, provider_id: str) -> Provider | None:
        """The provider with this id, or None."""
        ...

    def upstream_model(self, route: Route, model: str) -> str:
        """The model the route's first provider for ``model`` would be sent (its
        ``modelMapping`` applied); ``model`` itself when no provider serves it."""
        ...

    def upstream_calls(self, route: Route, model: str) -> tuple[UpstreamCall, ...]:
        """What a call for ``model`` may be sent as on the route: by each provider it may
        fail over to, in order (the first is ``upstream_model``'s), once each."""
        ...


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """A call as one provider of its route would send it: the model after its
    ``modelMapping``, and its ``customSettings`` (which may set the output limit or
    ``n``), what a budget or a token reservation must hold it at."""

    model: str
    settings: tuple[CustomSetting, ...] = ()
    # The provider reports writes to a one-hour prompt cache (Anthropic's, at twice the
    # input price): a budget holds a prompt that asks for one at that price (a five-minute
    # one any provider may report, OpenRouter's included).
    one_hour_writes: bool = False


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a plugin object's config came from, and the snapshot around it.

    ``rule`` is the match rule's index, or ``None`` for the default config; ``rule_key``
    names the match rule by what it matches (its routes and domains, hashed), which a
    rule put before it in a reload does not change, as it does the index;
    ``has_rules`` tells whether the plugin entry has any match rules at all (key-auth's
    ``global_auth`` default depends on it); ``failure_mode`` is the entry's
    ``failure_mode`` (``None``: the plugin's own default); ``providers`` the snapshot's
    providers (``None`` where a plugin is built alone, as in the test harness).
    """

    plugin: str
    rule: int | None
    has_rules: bool
    failure_mode: FailureMode | None = None
    providers: ProviderLookup | None = field(default=None, compare=False)
    rule_key: str | None = None


C = TypeVar("C", bound=PluginConfig)


class Plugin(Generic[C]):
    """Base class: override only the hooks you need; the chain skips the rest."""

    name: ClassVar[str]
    phase: ClassVar[Phase] = Phase.UNSPECIFIED
    priority: ClassVar[int] = 0
    config_model: ClassVar[type[PluginConfig]]

    def __init__(self, config: C, scope: Scope, services: Services) -> None:
        self.config = config
        self.scope = scope
        self.services = services

    async def request_headers(self, ex: Exchange) -> Reply | None:
        """Fires once the request line and headers are in; the body is not read yet."""
        return None

    async def request_body(self, ex: Exchange) -> Reply | None:
        """Fires once the whole body is in ``ex.request.body`` (bounded by max_body_bytes)."""
        return None

    async def response_headers(self, ex: Exchange, status: int, headers: list[tuple[str, str]]) -> None:
        """Fires when the provider's status and headers arrive; may edit ``headers``."""
        return

    async def response_body(self, ex: Exchange, body: bytes) -> bytes:
        """Fires with a complete (non-streamed) response body; returns the body to send on."""
        return body

    def stream_event(self, ex: Exchange, event: SseEvent) -> list[SseEvent]:
        """Fires per server-sent event of a streamed answer; returns zero or more events."""
        return [event]

    def stream_end(self, ex: Exchange) -> list[SseEvent]:
        """Fires once a stream ends normally; may flush events it held back (they still
        pass the ``stream_event`` of the plugins after this one)."""
        return []

    def identify(self, ex: Exchange) -> Consumer | None:
        """Who the caller is, deciding nothing: used to attribute a call that a plugin
        running before the auth plugin refused. Only auth plugins implement it."""
        return None

    async def done(self, ex: Exchange) -> None:
        """Always fires once per call, after the last byte or the failure, even when the
        client went away. ``ex.status`` and ``ex.usage`` are final. Must not raise."""
        return


def overrides(plugin: Plugin[PluginConfig], hook: str) -> bool:
    """Whether ``plugin`` implements ``hook`` itself (so the chain need not call it)."""
    return getattr(type(plugin), hook) is not getattr(Plugin, hook)


__all__ = ["Phase", "Plugin", "PluginConfig", "ProviderLookup", "Scope", "overrides"]
