"""``tollway schema``: the config file's JSON Schema, each plugin entry made exact."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tollway.cli.main import main
from tollway.cli.schema import config_schema
from tollway.config.load import load_config_text
from tollway.config.schema import Config, PluginConfig
from tollway.plugins.key_auth import KeyAuthConfig
from tollway.plugins.registry import PLUGIN_MODELS


def _def(schema: dict[str, object], ref: str) -> dict[str, object]:
    defs = schema["$defs"]
    assert isinstance(defs, dict)
    found = defs[ref.rpartition("/")[2]]
    assert isinstance(found, dict)
    return found


def test_the_command_prints_the_schema_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert list(schema["properties"]) == list(Config.model_fields)
    assert schema["additionalProperties"] is False


def test_each_plugin_entry_takes_its_own_config_and_rules_take_any_of_its_fields() -> None:
    schema = config_schema(PLUGIN_MODELS)
    items = schema["properties"]["plugins"]["items"]
    assert set(items["discriminator"]["mapping"]) == set(PLUGIN_MODELS)
    for name, ref in items["discriminator"]["mapping"].items():
        entry = _def(schema, ref)
        props = entry["properties"]
        assert isinstance(props, dict)
        assert props["name"]["const"] == name
        model = _def(schema, props["defaultConfig"]["anyOf"][0]["$ref"])
        rule = _def(schema, props["matchRules"]["items"]["$ref"])
        rule_props = rule["properties"]
        assert isinstance(rule_props, dict)
        rule_config = _def(schema, rule_props["config"]["$ref"])
        # (``_rules_`` is the default config's alone: the loader reads it there only.)
        model_props = model["properties"]
        assert isinstance(model_props, dict)
        assert rule_config["properties"] == {k: v for k, v in model_props.items() if k != "_rules_"}
        assert "required" not in rule_config
        assert rule_config["additionalProperties"] is False


HIGRESS_INLINE_RULES = """
providers: [{id: mock, type: mock}]
routes: [{name: chat, path_prefix: /v1/, provider: mock}]
plugins:
  - name: key-auth
    defaultConfig:
      keys: [x-api-key]
      consumers: [{name: a, credential: ck-a}, {name: b, credential: ck-b}]
      _rules_:
        - {_match_route_: [chat], allow: [a]}
        - {_match_domain_: ["*.example.com"], allow: [b]}
"""


def test_higress_in_config_rules_are_in_the_schema_as_the_loader_takes_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The loader reads defaultConfig._rules_ (config/higress.py), but the schema refused
    # it: an editor or CI validating against `tollway schema` flagged a config that
    # `tollway check` passes.
    loaded = load_config_text(HIGRESS_INLINE_RULES, plugins=PLUGIN_MODELS, base_dir=tmp_path, env={})
    assert len(loaded.config.plugins[0].matchRules) == 2
    assert main(["schema"]) == 0
    validator = jsonschema.Draft202012Validator(json.loads(capsys.readouterr().out))
    config = yaml.safe_load(HIGRESS_INLINE_RULES)
    assert list(validator.iter_errors(config)) == []
    # What the loader refuses, the schema refuses: a rule with no match key, a typo.
    rules = config["plugins"][0]["defaultConfig"]["_rules_"]
    for wrong in ({"allow": ["a"]}, {"_match_route_": ["chat"], "alow": ["a"]}):
        rules[:] = [wrong]
        assert list(validator.iter_errors(config)), wrong


def test_the_same_code_gives_the_same_schema() -> None:
    assert json.dumps(config_schema(PLUGIN_MODELS)) == json.dumps(
        config_schema(dict(reversed(list(PLUGIN_MODELS.items()))))
    )


class ConsumerConfig(PluginConfig):
    size: int = 1


def test_a_plugin_whose_schema_names_would_collide_is_refused() -> None:
    # "ConsumerConfig" would make "ConsumerEntry", which key-auth's consumers already are.
    with pytest.raises(ValueError, match="ConsumerEntry"):
        config_schema({"key-auth": KeyAuthConfig, "other": ConsumerConfig})
