"""``tollway schema``: the config file's JSON Schema on stdout.

The schema is the top-level config model's (``config.schema.Config``), with each plugin
entry made exact: an item of ``plugins`` is one of the built-in plugins' entries, told
apart by ``name``, whose ``defaultConfig`` is that plugin's own config model
(``plugins.registry.PLUGIN_MODELS``) and whose match rules' ``config`` takes the same
fields, none of them required (a rule's fields are laid over ``defaultConfig``, so it
may give any subset). ``defaultConfig`` also takes Higress's in-config rules
(``_rules_``: items with ``_match_route_`` and/or ``_match_domain_`` beside any of the
plugin's fields), which the loader reads as match rules (``config.higress``).

What the loader does around the schema, and the schema cannot say: ``${VAR}``
substitution before parsing; the Higress deployment fields it takes out with a warning
(a plugin entry's ``url``, ``sha256``, ``imagePullPolicy``, ``imagePullSecret``,
``vmConfig``, ``failStrategy`` (read as a ``failure_mode``), and ``redis`` blocks in
plugin configs); checks across
fields and entries (one ``limit_by_*`` per rule item, routes naming providers that
exist, two consumers with one credential, …). ``tollway check`` does all of it.

Deterministic: the same code prints the same bytes (plugins in name order, fields in
the order their models declare them).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping
from typing import Any

from pydantic.json_schema import models_json_schema

from tollway.config.schema import Config, PluginConfig

JsonSchema = dict[str, Any]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
TITLE = "Tollway config file"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``schema`` on the top-level parser."""
    p = subparsers.add_parser("schema", help="print the config file's JSON Schema")
    p.set_defaults(func=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    from tollway.plugins.registry import PLUGIN_MODELS

    sys.stdout.write(render(config_schema(PLUGIN_MODELS)))
    return 0


def render(schema: JsonSchema) -> str:
    """The schema as ``tollway schema`` prints it: indented JSON and a newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _def_name(ref: Mapping[str, Any]) -> str:
    return str(ref["$ref"]).rpartition("/")[2]


def _ref(name: str) -> JsonSchema:
    return {"$ref": f"#/$defs/{name}"}


# Higress's in-config rules: ``defaultConfig._rules_``, each item's match keys beside its
# config (``config.higress.take_inline_rules``).
INLINE_RULES = "_rules_"
_NAMES: JsonSchema = {"items": {"type": "string"}, "type": "array"}


def _inline_rule(name: str, rule_config: JsonSchema) -> JsonSchema:
    """An item of ``defaultConfig._rules_``: the match rule's config fields with its
    match keys (route names, domains) beside them; at least one key."""
    rule = copy.deepcopy(rule_config)
    rule["title"] = f"{name} in-config match rule"
    rule["description"] = (
        f"An item of plugin {name}'s defaultConfig._rules_ (Higress's in-config form of a match rule): "
        "_match_route_ (route names, as ingress) and/or _match_domain_ (as domain), beside any of the "
        "plugin's fields, laid over defaultConfig as a match rule's config is."
    )
    rule["properties"] = {
        "_match_route_": {**_NAMES, "title": "Route names"},
        "_match_domain_": {**_NAMES, "title": "Domains"},
        **rule["properties"],
    }
    rule["anyOf"] = [{"required": ["_match_route_"]}, {"required": ["_match_domain_"]}]
    return rule


def config_schema(plugins: Mapping[str, type[PluginConfig]]) -> JsonSchema:
    """The config file's JSON Schema, each plugin in ``plugins`` (name → config model)
    given its own entry shape (see the module's docstring)."""
    names = sorted(plugins)
    models: list[tuple[type[Any], Any]] = [(Config, "validation")]
    models.extend((plugins[name], "validation") for name in names)
    refs, combined = models_json_schema(models, ref_template="#/$defs/{model}")
    defs: dict[str, JsonSchema] = combined["$defs"]
    top = defs.pop(_def_name(refs[(Config, "validation")]))
    entry = defs.pop("PluginEntry")
    match_rule = defs.pop("MatchRule")

    variants: list[JsonSchema] = []
    mapping: dict[str, str] = {}
    for name in names:
        model_def = _def_name(refs[(plugins[name], "validation")])
        stem = model_def.removesuffix("Config")
        entry_def, rule_def, rule_config_def = f"{stem}Entry", f"{stem}MatchRule", f"{stem}RuleConfig"
        inline_rule_def = f"{stem}InlineRule"
        for new in (entry_def, rule_def, rule_config_def, inline_rule_def):
            if new in defs:
                raise ValueError(f"plugin {name!r}: schema name {new!r} is taken")

        rule_config = copy.deepcopy(defs[model_def])
        rule_config.pop("required", None)
        rule_config["title"] = f"{rule_config.get('title', stem)} (match rule)"
        rule_config["description"] = (
            f"Plugin {name}'s match-rule config: any of the fields of {model_def}, laid over defaultConfig "
            "(its fields win, the rest are inherited)."
        )
        defs[rule_config_def] = rule_config
        defs[inline_rule_def] = _inline_rule(name, rule_config)
        defs[model_def]["properties"][INLINE_RULES] = {
            "default": [],
            "items": _ref(inline_rule_def),
            "title": "Higress in-config match rules",
            "type": "array",
        }

        rule = copy.deepcopy(match_rule)
        rule["title"] = f"{name} match rule"
        rule["properties"]["config"] = {**_ref(rule_config_def), "default": {}}
        defs[rule_def] = rule

        variant = copy.deepcopy(entry)
        variant["title"] = f"{name} plugin entry"
        variant["description"] = (
            f"Plugin {name}'s entry (Higress's WasmPlugin shape): defaultConfig is a {model_def}; "
            "each match rule's config may give any of its fields."
        )
        props = variant["properties"]
        props["name"] = {"const": name, "title": "Name", "type": "string"}
        props["defaultConfig"] = {"anyOf": [_ref(model_def), {"type": "null"}], "default": None}
        props["matchRules"] = {"default": [], "items": _ref(rule_def), "title": "Matchrules", "type": "array"}
        defs[entry_def] = variant
        variants.append(_ref(entry_def))
        mapping[name] = _ref(entry_def)["$ref"]

    plugins_prop = top["properties"]["plugins"]
    plugins_prop["items"] = {"oneOf": variants, "discriminator": {"propertyName": "name", "mapping": mapping}}
    schema: JsonSchema = {"$schema": DIALECT, **top, "title": TITLE, "$defs": dict(sorted(defs.items()))}
    return schema


__all__ = ["INLINE_RULES", "add_parser", "cmd_schema", "config_schema", "render"]
