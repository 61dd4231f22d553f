"""Plugin entries in Higress's shapes (config/load.py; SPEC §2, §8): how a match rule's
config is laid over ``defaultConfig``. The same through a running gateway is in
tests/system/test_match_rules.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tollway.config.load import ConfigError, LoadedConfig, load_config_text
from tollway.plugins.limits.config import LimitRulesConfig
from tollway.plugins.registry import PLUGIN_MODELS

HEAD = """
providers: [{id: mock, type: mock}]
routes:
  - {name: chat, path_prefix: /v1/, provider: mock}
  - {name: second, path_prefix: /second/, provider: mock}
plugins:
"""


def load(tmp_path: Path, plugins: str) -> LoadedConfig:
    return load_config_text(HEAD + plugins, plugins=PLUGIN_MODELS, base_dir=tmp_path, env={})


def only_limit_rule(tmp_path: Path, plugins: str) -> LimitRulesConfig[Any, Any]:
    """The config of the one match rule of the one (rate limit) plugin in ``plugins``."""
    [rule] = load(tmp_path, plugins).plugins[0].rules
    assert isinstance(rule.config, LimitRulesConfig)
    return rule.config


def problems(tmp_path: Path, plugins: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, plugins)
    return raised.value.problems


# --- a rule's limit form replaces the default's ----------------------------------------------

GLOBAL_THRESHOLD_AND_A_RULE = """\
  - name: cluster-key-rate-limit
    defaultConfig: {rule_name: r, global_threshold: {query_per_second: 100}}
    matchRules:
      - ingress: [second]
        config:
"""


@pytest.mark.parametrize("plugin", ["key-rate-limit", "cluster-key-rate-limit", "ai-token-ratelimit"])
def test_a_rule_limiting_another_way_replaces_the_defaults_limit_form(tmp_path: Path, plugin: str) -> None:
    """It was merged field by field: limit_by_header beside limit_by_per_ip, refused as two."""
    unit = "token" if plugin == "ai-token-ratelimit" else "query"
    loaded = load(
        tmp_path,
        f"""  - name: {plugin}
    defaultConfig:
      rule_name: chat
      rejected_code: 503
      limit_by_header: x-user
      limit_keys: [{{key: "*", {unit}_per_minute: 5}}]
    matchRules:
      - ingress: [second]
        config:
          limit_by_per_ip: from-header-x-real-ip
          limit_keys: [{{key: 10.0.0.0/8, {unit}_per_minute: 1}}]
      - domain: [api.example.com]
        config:
          global_threshold: {{{unit}_per_second: 100}}
""",
    )
    [setup] = loaded.plugins
    by_ip, global_ = (r.config for r in setup.rules)
    assert isinstance(by_ip, LimitRulesConfig) and isinstance(global_, LimitRulesConfig)
    assert by_ip.limit_by() == [("limit_by_per_ip", "from-header-x-real-ip")]
    assert [k.key for k in by_ip.limit_keys or []] == ["10.0.0.0/8"]
    assert (global_.limit_by(), global_.limit_keys, global_.rule_items) == ([], None, None)
    # What is not part of the form is still inherited.
    assert (by_ip.rule_name, by_ip.rejected_code, global_.rejected_code) == ("chat", 503, 503)


def test_a_rule_giving_rule_items_replaces_a_global_threshold(tmp_path: Path) -> None:
    config = only_limit_rule(
        tmp_path,
        GLOBAL_THRESHOLD_AND_A_RULE
        + """\
          rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", query_per_minute: 2}]}]
""",
    )
    assert config.global_threshold is None
    assert config.items()[0][0] == [("limit_by_per_consumer", "")]


def test_a_rule_that_only_changes_the_code_keeps_the_defaults_form(tmp_path: Path) -> None:
    config = only_limit_rule(
        tmp_path,
        """  - name: key-rate-limit
    defaultConfig: {limit_by_header: x-user, limit_keys: [{key: "*", query_per_minute: 5}]}
    matchRules: [{ingress: [second], config: {rejected_code: 503}}]
""",
    )
    assert (config.limit_by(), config.rejected_code) == ([("limit_by_header", "x-user")], 503)


def test_a_rule_giving_two_forms_itself_is_still_refused(tmp_path: Path) -> None:
    said = problems(
        tmp_path,
        GLOBAL_THRESHOLD_AND_A_RULE
        + """\
          global_threshold: {query_per_second: 1}
          limit_by_header: x-user
          limit_keys: [{key: "*", query_per_minute: 2}]
""",
    )
    assert said == [
        "plugins[0].matchRules[0].config: give exactly one of global_threshold, rule_items, or a limit_by_* "
        "field with limit_keys (got global_threshold, limit_keys)"
    ]


# --- an entry without a default config -------------------------------------------------------


@pytest.mark.parametrize(
    ("plugin", "rule"),
    [
        ("request-block", "{block_urls: [secret]}"),
        ("cluster-key-rate-limit", "{rule_name: r, global_threshold: {query_per_minute: 1}}"),
        ("key-auth", "{keys: [x-key], consumers: [{name: a, credential: key-a-0123456789}]}"),
    ],
)
@pytest.mark.parametrize("default", ["", "    defaultConfig: {}\n"], ids=["absent", "empty"])
def test_rules_without_a_default_config_run_only_where_they_match(
    tmp_path: Path, plugin: str, rule: str, default: str
) -> None:
    """Refused, the absent default validated as {} (``defaultConfig.rule_name: field
    required``). In Higress a plugin config of only rules has no global config."""
    loaded = load(tmp_path, f"  - name: {plugin}\n{default}    matchRules: [{{ingress: [second], config: {rule}}}]\n")
    [setup] = loaded.plugins
    assert setup.default is None
    assert [r.ingress for r in setup.rules] == [("second",)]


def test_without_rules_an_absent_default_config_is_the_plugins_defaults_everywhere(tmp_path: Path) -> None:
    [setup] = load(tmp_path, "  - name: ai-statistics\n").plugins
    assert setup.default is not None


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        (
            "{name: request-block}",
            "plugins[0].defaultConfig: at least one of block_urls, block_exact_urls, block_regexp_urls, "
            "block_headers, block_bodies is required",
        ),
        ("{name: cluster-key-rate-limit}", "plugins[0].defaultConfig.rule_name: field required"),
    ],
)
def test_without_rules_a_plugin_that_needs_fields_says_which(tmp_path: Path, entry: str, said: str) -> None:
    assert problems(tmp_path, f"  - {entry}\n") == [said]


def test_a_rule_with_a_problem_hides_no_default_config_problem_that_is_not_there(tmp_path: Path) -> None:
    said = problems(
        tmp_path,
        "  - {name: request-block, matchRules: [{ingress: [second], routeType: GRPC, config: {block_urls: [x]}}]}\n",
    )
    assert [p.split(":")[0] for p in said] == ["plugins[0].matchRules[0].routeType"]
