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


# --- Higress's in-config rules: defaultConfig._rules_ ----------------------------------------

KEY_AUTH = """\
  - name: key-auth
    defaultConfig:
      consumers: [{name: a, credential: key-a-0123456789}, {name: b, credential: key-b-0123456789}]
      keys: [apikey]
"""


def test_in_config_rules_are_match_rules_after_the_entrys_own(tmp_path: Path) -> None:
    """They were refused: ``defaultConfig._rules_: unknown field``."""
    [setup] = load(
        tmp_path,
        KEY_AUTH
        + """\
      _rules_:
        - {_match_route_: [chat], allow: [a]}
        - {_match_domain_: ["*.example.com"], allow: [b]}
    matchRules: [{ingress: [second], config: {allow: [b]}}]
""",
    ).plugins
    assert [(r.ingress, r.domains, r.place) for r in setup.rules] == [
        (("second",), (), "matchRules[0].config"),
        (("chat",), (), "defaultConfig._rules_[0]"),
        ((), ("*.example.com",), "defaultConfig._rules_[1]"),
    ]
    configs = [r.config for r in setup.rules]
    assert [getattr(c, "allow", None) for c in configs] == [["b"], ["a"], ["b"]]
    # Each is laid over the default (whose _rules_ are no field of it).
    assert all(getattr(c, "keys", None) == ["apikey"] for c in configs)
    assert setup.default is not None and getattr(setup.default, "keys", None) == ["apikey"]


def test_in_config_rules_only_mean_rules_only(tmp_path: Path) -> None:
    """Higress keeps no global config when ``_rules_`` is the config's only key."""
    [setup] = load(
        tmp_path,
        "  - name: request-block\n    defaultConfig: {_rules_: [{_match_route_: [second], block_urls: [x]}]}\n",
    ).plugins
    assert setup.default is None
    assert [r.ingress for r in setup.rules] == [("second",)]


def test_a_disable_rule_turns_the_plugin_off_where_it_matches(tmp_path: Path) -> None:
    [setup] = load(
        tmp_path,
        """  - name: request-block
    defaultConfig: {block_urls: [x], _rules_: [{_match_route_: [second], _disable_: true}]}
""",
    ).plugins
    [rule] = setup.rules
    assert (rule.ingress, rule.config) == (("second",), None)


def test_in_config_rule_problems_are_placed_as_written(tmp_path: Path) -> None:
    said = problems(
        tmp_path,
        KEY_AUTH
        + """\
      _rules_:
        - {_match_route_: [chta], allow: [a]}
        - {_match_route_: [chat], alow: [a]}
        - {_match_service_: [llm.dns], allow: [a]}
        - {allow: [a]}
        - {_match_domain_: [x.example.com], _disable_: "yes"}
""",
    )
    assert said == [
        "plugins[0].defaultConfig._rules_[2]._match_service_: service rules are not supported; "
        "match with _match_route_ (route names) or _match_domain_",
        "plugins[0].defaultConfig._rules_[3]: a rule needs _match_route_ or _match_domain_",
        "plugins[0].defaultConfig._rules_[0]._match_route_[0]: no route named 'chta'",
        "plugins[0].defaultConfig._rules_[1].alow: unknown field",
        "plugins[0].defaultConfig._rules_[4]._disable_: must be true or false",
    ]
