"""Loading a config: environment substitution, YAML, the schema, then cross-references.

Every problem is reported with its place (``plugins[1].defaultConfig.keys: field
required``), all at once, so one ``tollway check`` run shows everything to fix. Each
plugin's config is validated against that plugin's own model, which the caller hands in
(``PluginModels``: the plugins' registry), so the config layer depends on no plugin.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tollway.config.envsubst import UnsetVariable, substitute
from tollway.config.higress import (
    check_service_rules,
    placed_as_written,
    take_deployment_fields,
    take_inline_rules,
    take_pasted_resources,
)
from tollway.config.schema import HIGRESS_PROVIDER_FIELDS_IGNORED, Config, FailureMode, PluginConfig, PluginEntry

# Each plugin's config model, by the plugin's name (``tollway.plugins.registry``).
PluginModels = Mapping[str, type[PluginConfig]]


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` holds one ``place: message`` line each.

    ``parsed`` is what the loader could still read of it (``LoadedConfig.failed`` names
    the sections left out), so that the checks after loading (building the providers and
    plugins) run too and one pass reports everything; ``None`` when nothing could be read
    (the YAML, an unset variable) or the problem was found after loading."""

    def __init__(self, problems: list[str], parsed: LoadedConfig | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.parsed = parsed


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: the new config took effect (``ok``), or why not (``errors``);
    the sections that changed but take a restart to apply (``restart_needed``)."""

    ok: bool
    errors: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RuleConfig:
    """One match rule, its config laid over the default's. ``config`` is None for a
    Higress ``_disable_: true`` rule: the plugin does not run where it matches.
    ``place`` is where its config is written, within its entry (``matchRules[1].config``,
    or ``defaultConfig._rules_[0]`` for Higress's in-config form)."""

    index: int
    ingress: tuple[str, ...]
    domains: tuple[str, ...]
    config: PluginConfig | None
    place: str


@dataclass(frozen=True)
class PluginSetup:
    """One plugin entry, its configs validated: the default (unless disabled) and each rule's."""

    name: str
    index: int
    default: PluginConfig | None
    rules: tuple[RuleConfig, ...]
    phase: str | None
    priority: int | None
    failure_mode: FailureMode | None


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    plugins: tuple[PluginSetup, ...]
    base_dir: Path
    path: Path | None
    warnings: tuple[str, ...] = field(default=())
    # Provider id → where each of its apiTokens came from: "$NAME" for an environment
    # variable, "the config file" for a key written in it (start-up says so, never the key).
    key_sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Only in a ``ConfigError``'s ``parsed``: the top-level sections with a problem, left at
    # their defaults in ``config``. ``plugins`` is read entry by entry: when it is named
    # here, ``plugins`` (the setups) still holds every entry whose config is valid.
    failed: frozenset[str] = frozenset()


def _place(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _errors(exc: ValidationError, prefix: str = "") -> list[str]:
    problems = []
    for err in exc.errors():
        # Pydantic adds the failing union/validator name to loc for some errors; drop
        # parts that are not field names so the place reads like the file.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        msg = msg[0].lower() + msg[1:] if msg else msg
        msg = msg.removeprefix("value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        problems.append(f"{_place(prefix, loc) or '(top)'}: {msg}")
    return problems


def _validate_plugin(
    model: type[BaseModel], raw: Mapping[str, Any], place: str
) -> tuple[PluginConfig | None, list[str]]:
    """The config, or None; and its problems, each relative to ``place`` (``.keys: …``)."""
    try:
        validated = model.model_validate(dict(raw))
    except ValidationError as exc:
        return None, [p.removeprefix(place) for p in _errors(exc, place)]
    assert isinstance(validated, PluginConfig)
    return validated, []


def _overlay(model: type[PluginConfig], base: Mapping[str, Any], rule: Mapping[str, Any]) -> dict[str, Any]:
    """A rule's config laid over the default's: its fields win, the rest are inherited,
    except that a group of fields the model replaces together (``replaced_together``)
    comes whole from the rule when the rule gives any of it."""
    replaced = {name for group in model.replaced_together if not group.isdisjoint(rule) for name in group}
    return {**{k: v for k, v in base.items() if k not in replaced}, **rule}


def _told_for_default(problem: str, default_problems: set[str], overrides: Mapping[str, Any]) -> bool:
    """Whether a rule's problem is one its config only inherits from ``defaultConfig``
    (a field the rule does not set), told there already."""
    field_name = re.split(r"[.\[:]", problem[1:], maxsplit=1)[0] if problem.startswith(".") else ""
    return problem in default_problems and field_name not in overrides


def _provider_warnings(cfg: Config, warnings: list[str]) -> None:
    """Higress provider fields this version accepts and does not act on, when given."""
    for i, p in enumerate(cfg.providers):
        if "failover" in p.model_fields_set:
            warnings.append(
                f"providers[{i}].failover: Higress's health-checked token failover is not implemented and is "
                "ignored; list several providers on a route (routes[].providers) to fail over between them "
                "(a token answering 401 or 429 rests for 30 s)"
            )
        for name in sorted(HIGRESS_PROVIDER_FIELDS_IGNORED.keys() & p.model_fields_set):
            warnings.append(f"providers[{i}].{name}: Higress's field, accepted and not acted on: "
                            f"{HIGRESS_PROVIDER_FIELDS_IGNORED[name]}")  # fmt: skip
        if p.qwenEnableCompatible is False:
            warnings.append(
                f"providers[{i}].qwenEnableCompatible: false (DashScope's own protocol) is not implemented and is "
                "ignored; Tollway calls Qwen's OpenAI-compatible mode"
            )


def _parse(raw: dict[str, Any], problems: list[str]) -> tuple[Config, list[tuple[int, PluginEntry]], frozenset[str]]:
    """The file against the schema: the config, its plugin entries with their places, and
    the sections that failed. A valid file is validated once, whole; otherwise each
    section counts on its own (one with a problem is left at its default) and the plugin
    entries each on their own, so the checks that follow see everything that parsed."""
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_errors(exc))
        failed = frozenset(str(err["loc"][0]) for err in exc.errors() if err["loc"])
    else:
        return cfg, list(enumerate(cfg.plugins)), frozenset()
    # Sections do not depend on each other in the schema: what is left validates.
    cfg = Config.model_validate({k: v for k, v in raw.items() if k not in failed})
    entries = list(enumerate(cfg.plugins))
    if "plugins" in failed and isinstance(raw.get("plugins"), list):
        for i, item in enumerate(raw["plugins"]):
            entry = _entry_as_far_as_it_goes(item)
            if entry is not None:
                entries.append((i, entry))
    return cfg, entries, failed


def _entry_as_far_as_it_goes(item: Any) -> PluginEntry | None:
    """A plugin entry, less the fields of its own that have a problem (told above, with
    the whole file's), so that its plugin config is still checked: a typo beside it
    (``priorty:``) hides nothing. None when its name or its default config is what failed,
    or its match rules when it has no default config (checking the plugin without them
    would tell problems the file does not have: without rules, an absent default config
    is the plugin's defaults everywhere)."""
    try:
        return PluginEntry.model_validate(item)
    except ValidationError as exc:
        bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
    if not isinstance(item, dict) or not bad or bad & {"name", "defaultConfig"}:
        return None
    if "matchRules" in bad and not item.get("defaultConfig"):
        return None
    try:
        return PluginEntry.model_validate({k: v for k, v in item.items() if k not in bad})
    except ValidationError:
        return None


def _check_references(
    cfg: Config, entries: list[tuple[int, PluginEntry]], failed: frozenset[str], problems: list[str]
) -> None:
    """Names unique, and every name a section uses found in its section. A section that
    failed is empty here: what refers into it is not checked (it would all be reported)."""
    provider_ids = [p.id for p in cfg.providers]
    seen: set[str] = set()
    for i, p in enumerate(cfg.providers):
        if p.id in seen:
            problems.append(f"providers[{i}].id: duplicate provider id {p.id!r}")
        seen.add(p.id)
    server_names: set[str] = set()
    for i, server in enumerate(cfg.mcp_servers):
        if server.name in server_names:
            problems.append(f"mcp_servers[{i}].name: duplicate MCP server name {server.name!r}")
        server_names.add(server.name)
    route_names: set[str] = set()
    providers_known = "providers" not in failed
    for i, r in enumerate(cfg.routes):
        if r.name in route_names:
            problems.append(f"routes[{i}].name: duplicate route name {r.name!r}")
        route_names.add(r.name)
        if providers_known:
            if r.provider is not None and r.provider not in provider_ids:
                problems.append(f"routes[{i}].provider: no provider with id {r.provider!r}")
            for j, pid in enumerate(r.providers or []):
                if pid not in provider_ids:
                    problems.append(f"routes[{i}].providers[{j}]: no provider with id {pid!r}")
            for pattern, pid in r.model_providers.items():
                if pid not in provider_ids:
                    problems.append(f"routes[{i}].model_providers.{pattern}: no provider with id {pid!r}")
        if r.mcp_server is not None and r.mcp_server not in server_names and "mcp_servers" not in failed:
            problems.append(f"routes[{i}].mcp_server: no mcp_servers entry named {r.mcp_server!r}")
    for i, entry in entries:
        for j, rule in enumerate(entry.matchRules):
            if not rule.ingress and not rule.domain:
                problems.append(f"plugins[{i}].matchRules[{j}]: a rule needs ingress or domain")
            if "routes" in failed:
                continue
            for k, name in enumerate(rule.ingress or []):
                if name not in route_names:
                    problems.append(f"plugins[{i}].matchRules[{j}].ingress[{k}]: no route named {name!r}")


def _has_default(entry: PluginEntry) -> bool:
    """Whether the plugin runs where no rule matches. As in Higress: not with
    ``defaultConfigDisable``, nor when the entry has match rules and no default config
    (absent or ``{}``: the plugin runs only where a rule matches); an entry with neither
    runs everywhere with the plugin's defaults."""
    return not entry.defaultConfigDisable and (bool(entry.defaultConfig) or not entry.matchRules)


def _plugin_setups(
    entries: list[tuple[int, PluginEntry]],
    models: PluginModels,
    origins: Mapping[tuple[int, int], int],
    problems: list[str],
    warnings: list[str],
) -> list[PluginSetup]:
    setups: list[PluginSetup] = []
    for i, entry in entries:
        model = models.get(entry.name)
        if model is None:
            known = ", ".join(sorted(models))
            if entry.name == "ai-proxy":
                # Higress's ai-proxy is Tollway's core, not a plugin: say where it went.
                problems.append(
                    f"plugins[{i}].name: ai-proxy is not a plugin here: its providers go in the top-level "
                    "providers: list, and each route names its provider (provider:, providers:, model_providers:)"
                )
                continue
            problems.append(f"plugins[{i}].name: unknown plugin {entry.name!r} (known: {known})")
            continue
        base = dict(entry.defaultConfig or {})
        default = None
        default_problems: set[str] = set()
        if _has_default(entry):
            place = f"plugins[{i}].defaultConfig"
            default, found = _validate_plugin(model, base, place)
            problems.extend(place + p for p in found)
            default_problems.update(found)
        # A rule inherits the default's fields: warn about each ignored field once.
        inherited = set(default.ignored()) if default is not None else set()
        warnings.extend(f"plugins[{i}].defaultConfig.{why}" for why in sorted(inherited))
        rules: list[RuleConfig] = []
        for j, rule in enumerate(entry.matchRules):
            if rule.routeType is not None:
                warnings.append(f"plugins[{i}].matchRules[{j}].routeType: no effect; every Tollway route is HTTP")
            if rule.configDisable:
                continue
            k = origins.get((i, j))
            written = f"matchRules[{j}].config" if k is None else f"defaultConfig._rules_[{k}]"
            ingress, domains = tuple(rule.ingress or ()), tuple(rule.domain or ())
            place = f"plugins[{i}].matchRules[{j}].config"
            overrides = dict(rule.config)
            disable = overrides.pop("_disable_", False)
            if not isinstance(disable, bool):
                problems.append(f"{place}._disable_: must be true or false")
            elif disable:
                # Higress's C++ plugins' way to turn the plugin off where the rule matches.
                rules.append(RuleConfig(j, ingress, domains, None, written))
                continue
            merged = _overlay(model, base, overrides)
            validated, found = _validate_plugin(model, merged, place)
            problems.extend(place + p for p in found if not _told_for_default(p, default_problems, overrides))
            if validated is not None:
                warnings.extend(f"{place}.{why}" for why in sorted(set(validated.ignored()) - inherited))
                rules.append(RuleConfig(j, ingress, domains, validated, written))
        setups.append(
            PluginSetup(entry.name, i, default, tuple(rules), entry.phase, entry.priority, entry.failure_mode)
        )
    return setups


def _check_consumers(setups: list[PluginSetup], problems: list[str]) -> None:
    """A consumer is one consumer across every key-auth entry and rule: a name given
    twice must be the same consumer, and a credential is one consumer's (each entry
    checks its own list; across entries, the last entry that knew a key won it, so a
    consumer held to a group's budget could be served as another)."""
    by_name: dict[str, tuple[Any, str]] = {}
    by_key: dict[str, tuple[str, str]] = {}
    for setup in setups:
        if setup.name != "key-auth":
            continue
        configs = [(f"plugins[{setup.index}].defaultConfig", setup.default)]
        configs += [(f"plugins[{setup.index}].{rule.place}", rule.config) for rule in setup.rules]
        for place, config in configs:
            for k, consumer in enumerate(getattr(config, "consumers", None) or ()):
                at = f"{place}.consumers[{k}]"
                first, first_at = by_name.setdefault(consumer.name, (consumer, at))
                if first != consumer:
                    problems.append(f"{at}.name: consumer {consumer.name!r} is defined otherwise at {first_at}")
                keys = ([consumer.credential] if consumer.credential else []) + list(consumer.credentials)
                for key in keys:
                    holder, holder_at = by_key.setdefault(key, (consumer.name, at))
                    if holder != consumer.name:
                        problems.append(f"{at}: consumer {holder!r} ({holder_at}) has the same credential")


def load_config_text(
    text: str,
    *,
    plugins: PluginModels,
    base_dir: Path,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Validate a config given as text; raise ``ConfigError`` listing every problem."""
    original = text
    try:
        text = substitute(text, os.environ if env is None else env)
    except UnsetVariable as exc:
        raise ConfigError(
            [f"${{{n}}}: environment variable is not set (and has no default)" for n in exc.names]
        ) from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # (a SafeLoader: no arbitrary objects)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        if path is not None:  # (the file named, as a file that cannot be read is)
            where = f"{path}: {where}" if mark else str(path)
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if raw is None:
        # An empty (or comments-only) file is never a config: a reload of a truncated
        # file, caught mid-write or emptied by mistake, would drop every route and plugin.
        raise ConfigError(["(top): the config file is empty"])
    if not isinstance(raw, dict):
        raise ConfigError(["(top): the config must be a mapping"])
    warnings: list[str] = []
    problems: list[str] = []
    take_pasted_resources(raw, problems)
    origins = take_inline_rules(raw, problems)
    take_deployment_fields(raw, warnings, problems)
    check_service_rules(raw, problems)
    cfg, entries, failed = _parse(raw, problems)
    _check_references(cfg, entries, failed, problems)
    _provider_warnings(cfg, warnings)
    setups = _plugin_setups(entries, plugins, origins, problems, warnings)
    _check_consumers(setups, problems)
    if origins:
        problems = [placed_as_written(p, origins) for p in problems]
        warnings = [placed_as_written(w, origins) for w in warnings]
    if problems:
        raise ConfigError(problems, LoadedConfig(cfg, tuple(setups), base_dir, path, tuple(warnings), failed=failed))
    return LoadedConfig(
        cfg,
        tuple(setups),
        base_dir,
        path,
        tuple(warnings),
        _key_sources(original, cfg, os.environ if env is None else env),
    )


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error: PyYAML keeps
    the last silently, so a second ``plugins:`` replaced the first (key-auth with it)
    and the gateway served with no authentication. A key beside a merge (``<<``)
    overrides the merged one, as YAML means it to."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: the constructor below says what is wrong with it
            if repeated:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"the key {key!r} is given twice", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


class _Named(dict[str, str]):
    """Every variable "set" to a marker that names it (``env``: only those set there and
    not empty; the others read as unset, so their defaults stand)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.env = env

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        value = self.env.get(name) if self.env is not None else name
        return f"tollway-env.{name}.end" if value else value


_MARKER = re.compile(r"tollway-env\.([A-Za-z_][A-Za-z0-9_]*)\.end")


def _tokens_named(original: str, named: _Named) -> dict[str, list[list[str]]]:
    """Each provider's ``apiTokens``, as the variables whose markers are in each."""
    try:
        raw = yaml.safe_load(substitute(original, named))
    except (yaml.YAMLError, UnsetVariable):
        return {}
    providers = raw.get("providers") if isinstance(raw, dict) else None
    found: dict[str, list[list[str]]] = {}
    for provider in providers if isinstance(providers, list) else ():
        if isinstance(provider, dict) and isinstance(provider.get("apiTokens"), list):
            found[str(provider.get("id"))] = [_MARKER.findall(str(t)) for t in provider["apiTokens"]]
    return found


def _key_sources(original: str, cfg: Config, env: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Where each provider's ``apiTokens`` came from (see ``LoadedConfig``): the text read
    again with the variables replaced by markers naming them, every one and then only
    those set (a judge saw "1 key from $TOK" for a key that was the default written
    beside an unset $TOK, and for one that was empty)."""
    written = _tokens_named(original, _Named())
    from_env = _tokens_named(original, _Named(env))
    sources: dict[str, tuple[str, ...]] = {}
    for pc in cfg.providers:
        every, set_ = written.get(pc.id), from_env.get(pc.id)
        if every is None or set_ is None or not len(every) == len(set_) == len(pc.apiTokens):
            continue
        named = []
        for names, given in zip(every, set_, strict=True):
            if given:
                named.append(", ".join(f"${n}" for n in given))
            elif names:  # (none of them set: the default written beside them)
                named.append(f"the config file (the default of {', '.join(f'${n}' for n in names)}, unset)")
            else:
                named.append("the config file")
        sources[pc.id] = tuple(named)
    return sources


def load_config(path: str | Path, *, plugins: PluginModels, env: Mapping[str, str] | None = None) -> LoadedConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{p}: not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"]) from None
    return load_config_text(text, plugins=plugins, base_dir=p.resolve().parent, path=p.resolve(), env=env)
