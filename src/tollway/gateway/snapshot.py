"""A config snapshot: routes, providers and plugin objects built from one valid config.

A reload builds a complete new snapshot and swaps one reference; a request reads the
reference once at its start and finishes on that snapshot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson

from tollway.budgets.declared import undeclared_groups
from tollway.chain import Chain, FailureLog
from tollway.config.load import ConfigError, LoadedConfig, PluginSetup
from tollway.mcp import servers as mcp_servers
from tollway.plugin import Phase, Plugin, PluginConfig, Scope, UpstreamCall
from tollway.plugins.registry import REGISTRY
from tollway.protocols.codec import TranslationError
from tollway.protocols.registry import codec_for
from tollway.providers import Provider, UnsupportedProvider, build_provider
from tollway.providers.base import apply_settings
from tollway.proxy.provider_choice import RouteProviders
from tollway.routing.hosts import host_matches
from tollway.routing.routes import Route, RouteTable
from tollway.services import Services
from tollway.usage.tracing import Sampler

_PHASES = {
    "AUTHN": Phase.AUTHN,
    "AUTHZ": Phase.AUTHZ,
    "STATS": Phase.STATS,
    "UNSPECIFIED": Phase.UNSPECIFIED,
    "UNSPECIFIED_PHASE": Phase.UNSPECIFIED,
}

AnyPlugin = Plugin[PluginConfig]

# (route, model) pairs whose upstream model a snapshot remembers at most.
_MODEL_MEMO_LIMIT = 10_000


@dataclass(frozen=True)
class _Rule:
    ingress: frozenset[str]
    domains: tuple[str, ...]
    plugin: AnyPlugin | None  # None: the plugin is off where the rule matches


class _SnapshotProviders:
    """The snapshot's providers as plugins see them (``plugin.ProviderLookup``)."""

    def __init__(self, providers: dict[str, Provider], route_providers: dict[str, RouteProviders]) -> None:
        self._providers = providers
        # Filled by the snapshot once every route's providers are known to exist.
        self.routes = route_providers
        # (route, model) → the calls sent upstream, the first provider's first (its
        # failovers' after it): asked on every budgeted, limited or cached call, and fixed
        # for the snapshot's life. Models come from clients: bounded.
        self._upstream: dict[tuple[str, str], tuple[UpstreamCall, ...]] = {}

    def provider(self, provider_id: str) -> Provider | None:
        return self._providers.get(provider_id)

    def upstream_model(self, route: Route, model: str) -> str:
        return self.upstream_calls(route, model)[0].model

    def upstream_calls(self, route: Route, model: str) -> tuple[UpstreamCall, ...]:
        key = (route.name, model)
        found = self._upstream.get(key)
        if found is None:
            choice = self.routes.get(route.name)
            candidates = choice.for_model(model) if choice is not None else ()
            calls: list[UpstreamCall] = []
            for provider in candidates:
                call = UpstreamCall(provider.map_model(model), provider.settings, provider.protocol == "anthropic")
                if call not in calls:  # (settings are pydantic models: compared, not hashed)
                    calls.append(call)
            found = tuple(calls) or (UpstreamCall(model),)
            if len(self._upstream) < _MODEL_MEMO_LIMIT:
                self._upstream[key] = found
        return found


def _rule_key(ingress: Iterable[str], domains: Iterable[str]) -> str:
    """A match rule's name by what it matches: the same across a reload that puts another
    rule before it (its counters keep counting), another when what it matches changes."""
    matched = orjson.dumps([sorted(set(ingress)), sorted(set(domains))])
    return "rule-" + hashlib.sha256(matched).hexdigest()[:12]


class _PluginSlot:
    """One plugin entry: which of its objects (rule or default) applies to a request.

    A plugin whose config names what the snapshot lacks (a provider) raises
    ``ValueError`` as it is built: a problem of the config at that place."""

    def __init__(self, setup: PluginSetup, services: Services, providers: _SnapshotProviders | None) -> None:
        cls = REGISTRY[setup.name]
        self.name = setup.name
        self.order = (
            _PHASES[setup.phase] if setup.phase else cls.phase,
            -(setup.priority if setup.priority is not None else cls.priority),
            setup.index,
        )
        has_rules = bool(setup.rules)
        problems: list[str] = []

        def build(config: PluginConfig, rule: int | None, place: str, key: str | None = None) -> AnyPlugin | None:
            scope = Scope(setup.name, rule, has_rules, setup.failure_mode, providers, key)
            try:
                return cls(config, scope, services)
            except ValueError as exc:
                problems.append(f"plugins[{setup.index}].{place}.{exc}")
                return None

        self.default: AnyPlugin | None = None
        if setup.default is not None:
            self.default = build(setup.default, None, "defaultConfig")
        rules = []
        for r in setup.rules:
            if r.config is None:
                rules.append(_Rule(frozenset(r.ingress), r.domains, None))
                continue
            plugin = build(r.config, r.index, r.place, _rule_key(r.ingress, r.domains))
            if plugin is not None:
                rules.append(_Rule(frozenset(r.ingress), r.domains, plugin))
        self.rules = tuple(rules)
        if problems:
            raise ConfigError(problems)

    def pick(self, route: Route, host: str) -> AnyPlugin | None:
        for rule in self.rules:
            if route.name in rule.ingress or any(host_matches(d, host) for d in rule.domains):
                return rule.plugin
        return self.default


@dataclass(frozen=True)
class _Built:
    """What a snapshot is made of, built from a config's sections."""

    providers: dict[str, Provider]
    mcp_servers: dict[str, mcp_servers.McpServer]
    lookup: _SnapshotProviders
    slots: list[_PluginSlot]


def _build(loaded: LoadedConfig, services: Services) -> tuple[_Built, list[str]]:
    """Build the providers, MCP servers and plugin objects, and every problem only
    building finds (a provider type's requirements, a plugin naming a provider, a
    consumer's undeclared group or MCP server). ``loaded`` may be a ``ConfigError``'s ``parsed``: a
    section that failed to load is empty here, and what depends on it is not checked."""
    cfg = loaded.config
    problems: list[str] = []
    providers: dict[str, Provider] = {}
    for i, pc in enumerate(cfg.providers):
        try:
            providers[pc.id] = build_provider(pc, services.transport, services.mock_transport)
        except UnsupportedProvider as exc:
            problems.append(f"providers[{i}].type: {exc}")
        else:
            problems.extend(f"providers[{i}].customSettings: {p}" for p in _untranslatable(providers[pc.id]))
    providers_whole = not problems and "providers" not in loaded.failed
    servers: dict[str, mcp_servers.McpServer] = {}
    try:
        servers = mcp_servers.build(cfg.mcp_servers, services.transport, loaded.base_dir)
    except mcp_servers.McpServerProblem as exc:
        problems.extend(exc.problems)
    # Routes reach their providers once all were built (``Snapshot``); a plugin naming a
    # provider is checked only against a complete set.
    lookup = _SnapshotProviders(providers, {})
    slots = []
    for setup in loaded.plugins:
        try:
            slots.append(_PluginSlot(setup, services, lookup if providers_whole else None))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if "groups" not in loaded.failed:
        problems.extend(undeclared_groups(loaded))
    if "mcp_servers" not in loaded.failed:
        problems.extend(mcp_servers.unknown_tool_servers(loaded))
    return _Built(providers, servers, lookup, slots), problems


def _untranslatable(provider: Provider) -> list[str]:
    """The ``auto`` custom settings a translating provider cannot send: each made every
    chat call a 400 naming a field the client never sent (``check`` said ok)."""
    if provider.protocol == "openai" or not provider.sets_body:
        return []
    codec = codec_for(provider.protocol)
    told = []
    for setting in provider.settings:
        if setting.mode != "auto":
            continue
        chat = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
        try:
            codec.request_from_pivot(apply_settings(chat, (setting,)))
        except TranslationError as exc:
            told.append(f"{exc}: every chat call through this provider would be refused for it")
    return told


def build_problems(parsed: LoadedConfig | None, services: Services) -> list[str]:
    """What building finds wrong in what parsed of a config the loader refused (a
    ``ConfigError``'s ``parsed``), so that one check reports every problem."""
    return _build(parsed, services)[1] if parsed is not None else []


class Snapshot:
    """Everything one valid config builds: providers, routes, plugin objects, and the
    chain for each (route, host), made on first use. ``failures`` is the process's
    memory of logged plugin failures (it outlives the snapshot)."""

    def __init__(self, loaded: LoadedConfig, services: Services, failures: FailureLog) -> None:
        cfg = loaded.config
        self.loaded = loaded
        self.config = cfg
        built, problems = _build(loaded, services)
        if problems:
            raise ConfigError(problems)
        self.providers = built.providers
        self.routes = RouteTable([Route.from_config(rc) for rc in cfg.routes])
        self.route_providers = built.lookup.routes
        self.route_providers.update((r.name, RouteProviders(r, self.providers)) for r in self.routes.routes)
        self.mcp_servers = built.mcp_servers
        self._providers = built.lookup
        # What a call for a model on a route may go upstream as (and be billed as): each
        # of its providers' ``modelMapping`` and ``customSettings``, the first provider's first.
        self.upstream_calls = built.lookup.upstream_calls
        self.slots = sorted(built.slots, key=lambda s: s.order)
        self.failures = failures
        # Which calls are traced; None when telemetry is off (no ``otlp_endpoint``).
        self.sampler = Sampler(cfg.telemetry.sample_ratio) if cfg.telemetry.otlp_endpoint else None
        # What a call has before its route is known (and keeps, when none matches).
        self.no_plugins = Chain([], failures)
        self._chains: dict[tuple[str, str], Chain] = {}

    def chain_for(self, route: Route, host: str) -> Chain:
        key = (route.name, host)
        chain = self._chains.get(key)
        if chain is None:
            picked = (slot.pick(route, host) for slot in self.slots)
            chain = Chain([p for p in picked if p is not None], self.failures)
            if len(self._chains) < 10_000:  # Host comes from clients: bound the memo
                self._chains[key] = chain
        return chain

    def retire(self) -> None:
        """A newer snapshot is in effect: what this one started in the background stops
        once the calls still running under it have had their time."""
        for server in self.mcp_servers.values():
            if server.retire is not None:
                server.retire()

    async def aclose(self) -> None:
        """The process stops: what this snapshot started in the background stops now."""
        for server in self.mcp_servers.values():
            if server.aclose is not None:
                await server.aclose()

    def mcp_tool_names(self) -> frozenset[tuple[str, str]]:
        """The (server, tool) pairs of the gateway's own (rest) MCP servers."""
        return frozenset((s.name, tool) for s in self.mcp_servers.values() for tool in s.tool_names)

    def plugins(self) -> list[AnyPlugin]:
        out: list[AnyPlugin] = []
        for slot in self.slots:
            if slot.default is not None:
                out.append(slot.default)
            out.extend(r.plugin for r in slot.rules if r.plugin is not None)
        return out


def _throwaway_services() -> Services:
    from tollway.upstream.aiohttp_transport import AiohttpTransport

    transport = AiohttpTransport()
    return Services(transport=transport, mock_transport=transport)


def check_buildable(loaded: LoadedConfig) -> None:
    """Raise ``ConfigError`` for what only building the snapshot finds (provider types)."""
    Snapshot(loaded, _throwaway_services(), FailureLog())


def check_config(load: Callable[[], LoadedConfig]) -> tuple[LoadedConfig | None, list[str]]:
    """Load a config and build it as ``serve`` would, without serving: the config (or
    what parsed of it, ``LoadedConfig.failed`` naming what did not; ``None`` when nothing
    could be read) and every problem the loader and the build find, in that order."""
    try:
        loaded = load()
    except ConfigError as exc:
        return exc.parsed, exc.problems + build_problems(exc.parsed, _throwaway_services())
    try:
        check_buildable(loaded)
    except ConfigError as exc:
        return loaded, exc.problems
    return loaded, []
