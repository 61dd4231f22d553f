"""Higress's shapes of a plugin entry, read into Tollway's before the schema sees the file.

A Higress user's WasmPlugin config comes over field for field (SPEC §8), and some of its
fields are about deploying a Wasm module or about Higress's own forms:

- deployment fields (``url``, ``sha256``, ``imagePullPolicy``, ``imagePullSecret``,
  ``vmConfig``) and per-plugin ``redis`` blocks: taken off, one warning each;
- ``failStrategy``: ``FAIL_OPEN`` read as ``failure_mode: open``;
- ``service:`` rules: an error naming the field (Tollway routes, not services);
- rules written inside the plugin's config (``defaultConfig._rules_`` with
  ``_match_route_`` / ``_match_domain_``): read as match rules after the entry's own,
  their problems named where they are written (``_placed_as_written``).

Each works on the raw mapping, in place, adding to the caller's problem and warning lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Higress deployment fields that mean nothing here: accepted, warned about once each.
# (``failStrategy`` is read: ``_fail_strategy``.)
_DEPLOYMENT_FIELDS = ("url", "sha256", "imagePullPolicy", "imagePullSecret", "vmConfig")


def _fail_strategy(entry: dict[str, Any], place: str, warnings: list[str], problems: list[str]) -> None:
    """Higress's ``failStrategy``, taken off the entry: ``FAIL_OPEN`` is read as
    ``failure_mode: open`` unless the entry gives one. ``FAIL_CLOSE`` (Higress's default)
    leaves each plugin its own default: in Higress it is about the plugin crashing, and
    a plugin such as ai-cache lets calls through when its store fails either way."""
    value = entry.pop("failStrategy")
    if value not in ("FAIL_OPEN", "FAIL_CLOSE"):
        problems.append(f"{place}: must be FAIL_OPEN or FAIL_CLOSE (or set failure_mode: open or closed)")
    elif "failure_mode" in entry:
        warnings.append(f"{place}: ignored; the entry's failure_mode decides")
    elif value == "FAIL_OPEN":
        entry["failure_mode"] = "open"
        warnings.append(f"{place}: Higress field, read as failure_mode: open")
    else:
        warnings.append(f"{place}: FAIL_CLOSE keeps the plugin's own failure_mode; set failure_mode to choose")


def take_deployment_fields(raw: dict[str, Any], warnings: list[str], problems: list[str]) -> None:
    for i, entry in enumerate(raw.get("plugins") or []):
        if not isinstance(entry, dict):
            continue
        for name in _DEPLOYMENT_FIELDS:
            if name in entry:
                entry.pop(name)
                warnings.append(f"plugins[{i}].{name}: Higress deployment field ignored")
        if "failStrategy" in entry:
            _fail_strategy(entry, f"plugins[{i}].failStrategy", warnings, problems)
        for section in ("defaultConfig",):
            cfg = entry.get(section)
            if isinstance(cfg, dict) and "redis" in cfg:
                cfg.pop("redis")
                warnings.append(f"plugins[{i}].{section}.redis: ignored; state comes from storage.state")
        for j, rule in enumerate(entry.get("matchRules") or []):
            if isinstance(rule, dict) and isinstance(rule.get("config"), dict) and "redis" in rule["config"]:
                rule["config"].pop("redis")
                warnings.append(f"plugins[{i}].matchRules[{j}].config.redis: ignored; state comes from storage.state")


# Higress's in-config rule form (``defaultConfig._rules_``): its match keys, as matchRules'.
_INLINE_MATCH = {"_match_route_": "ingress", "_match_domain_": "domain"}
_INLINE_UNSUPPORTED = {
    "_match_service_": "service rules are not supported; match with _match_route_ (route names) or _match_domain_",
    "_match_route_prefix_": "route-prefix rules are not supported; list the routes in _match_route_",
    "_match_consumer_": "consumer rules are not supported; match with _match_route_ or _match_domain_",
}
# A rule's place as the loader writes it, in either form.
_RULE_PLACE = re.compile(r"^plugins\[(\d+)\]\.matchRules\[(\d+)\](?:\.config(?=[.\[:]|$)|\.(ingress|domain)\b)?")


def take_inline_rules(raw: dict[str, Any], problems: list[str]) -> dict[tuple[int, int], int]:
    """Higress's older form, rules inside the plugin's config (``defaultConfig: {…,
    _rules_: [{_match_route_: [chat], allow: [a]}]}``), read as match rules written
    after the entry's ``matchRules``: ``_match_route_`` is ``ingress``,
    ``_match_domain_`` is ``domain``, the rest of the item is the rule's config.
    Returns where each came from: (entry, matchRules index) → ``_rules_`` index."""
    origins: dict[tuple[int, int], int] = {}
    for i, entry in enumerate(raw.get("plugins") or []):
        cfg = entry.get("defaultConfig") if isinstance(entry, dict) else None
        if not isinstance(cfg, dict) or "_rules_" not in cfg:
            continue
        items = cfg.pop("_rules_")
        place = f"plugins[{i}].defaultConfig._rules_"
        if entry.get("matchRules") is None:
            entry["matchRules"] = []
        rules = entry["matchRules"]
        if not isinstance(items, list) or not isinstance(rules, list):
            if not isinstance(items, list):
                problems.append(f"{place}: must be a list of rules")
            continue
        for k, item in enumerate(items):
            if not isinstance(item, dict):
                problems.append(f"{place}[{k}]: must be a mapping")
                continue
            config = dict(item)
            rule: dict[str, Any] = {}
            for key, field_name in _INLINE_MATCH.items():
                if key in config:
                    rule[field_name] = config.pop(key)
            unsupported = [key for key in _INLINE_UNSUPPORTED if key in config]
            for key in unsupported:
                config.pop(key)
                problems.append(f"{place}[{k}].{key}: {_INLINE_UNSUPPORTED[key]}")
            if not rule:
                if not unsupported:
                    problems.append(f"{place}[{k}]: a rule needs _match_route_ or _match_domain_")
                continue
            origins[(i, len(rules))] = k
            rules.append({**rule, "config": config})
    return origins


def placed_as_written(line: str, origins: Mapping[tuple[int, int], int]) -> str:
    """``line`` with a rule that came from ``_rules_`` placed where it is written."""
    m = _RULE_PLACE.match(line)
    k = origins.get((int(m[1]), int(m[2]))) if m else None
    if m is None or k is None:
        return line
    key = {"ingress": "._match_route_", "domain": "._match_domain_"}.get(m[3] or "", "")
    return f"plugins[{m[1]}].defaultConfig._rules_[{k}]{key}{line[m.end() :]}"


def check_service_rules(raw: dict[str, Any], problems: list[str]) -> None:
    for i, entry in enumerate(raw.get("plugins") or []):
        if not isinstance(entry, dict):
            continue
        for j, rule in enumerate(entry.get("matchRules") or []):
            if isinstance(rule, dict) and "service" in rule:
                problems.append(
                    f"plugins[{i}].matchRules[{j}].service: service rules are not supported; "
                    "match with ingress (route names) or domain"
                )
                rule.pop("service")
                # (Told once: the file is refused, and "a rule needs ingress or domain"
                # would say the same again.)
                rule.setdefault("domain", ["*"])


# The fields of a WasmPlugin's ``spec`` that a plugin entry takes as they are.
_SPEC_FIELDS = ("defaultConfig", "defaultConfigDisable", "matchRules", "phase", "priority", "failStrategy",
                "url", "sha256", "imagePullPolicy", "imagePullSecret", "vmConfig")  # fmt: skip


def take_pasted_resources(raw: dict[str, Any], problems: list[str]) -> None:
    """A Higress ``WasmPlugin`` resource pasted into ``plugins:`` as it is (apiVersion,
    kind, metadata, spec): one problem that says what to write instead, and the entry
    read as that (its spec's fields, named by ``name`` or its metadata's), so its config
    is still checked; five lines of unknown fields said nothing of it."""
    for i, entry in enumerate(raw.get("plugins") or []):
        if not isinstance(entry, dict) or not ("spec" in entry or entry.get("kind") == "WasmPlugin"):
            continue
        given_spec, given_metadata = entry.get("spec"), entry.get("metadata")
        spec: dict[str, Any] = given_spec if isinstance(given_spec, dict) else {}
        metadata: dict[str, Any] = given_metadata if isinstance(given_metadata, dict) else {}
        name = entry.get("name") or metadata.get("name")
        problems.append(
            f"plugins[{i}]: a Higress WasmPlugin resource as it is; write `name: <plugin>` and the fields of its "
            "spec (defaultConfig, matchRules, phase, priority) in its place"
        )
        entry.clear()
        entry.update({k: v for k, v in spec.items() if k in _SPEC_FIELDS})
        if name:
            entry["name"] = name


__all__ = [
    "check_service_rules",
    "placed_as_written",
    "take_deployment_fields",
    "take_inline_rules",
    "take_pasted_resources",
]
