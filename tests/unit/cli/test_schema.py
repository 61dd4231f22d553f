"""``tollway schema``: the config file's JSON Schema, each plugin entry made exact."""

from __future__ import annotations

import json

import pytest

from tollway.cli.main import main
from tollway.cli.schema import config_schema
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
        assert rule_config["properties"] == model["properties"]
        assert "required" not in rule_config
        assert rule_config["additionalProperties"] is False


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
