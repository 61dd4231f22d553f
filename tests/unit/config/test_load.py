"""Config loading (config/load.py; SPEC §1, §2) and what `tollway check -c FILE` reports,
run in this process: every problem named by its place, exit 2; variables substituted;
Higress deployment fields accepted with a warning. The same through real processes is in
tests/system/test_config.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.support.config_support import VALID
from tollway.cli.main import main
from tollway.config.load import ConfigError, load_config_text
from tollway.plugins.registry import PLUGIN_MODELS


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Run `tollway check` in this process; return its exit code and stdout lines."""
    path = tmp_path / "tollway.yaml"
    path.write_text(text)
    code = main(["check", "-c", str(path)])
    out = capsys.readouterr().out
    return code, out.splitlines()


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ("apiTokens:", "apiToken:", "providers[0].apiToken: unknown field"),
        ("server: {host", "server: {hots: x, host", "server.hots: unknown field"),
        (
            "keys: [authorization]",
            "keys: [authorization]\n      keyz: [x]",
            "plugins[0].defaultConfig.keyz: unknown field",
        ),
        ("config: {allow: [alice]}", "config: {alow: [alice]}", "plugins[0].matchRules[0].config.alow: unknown field"),
        ("block_urls:", "block_url:", "plugins[1].defaultConfig.block_url: unknown field"),
        (
            "{name: alice, credential: ck-alice}",
            "{name: alice}",
            "plugins[0].defaultConfig.consumers[0].credential: field required",
        ),
        ("keys: [authorization]", "in_query: true", "plugins[0].defaultConfig.keys: field required"),
    ],
    ids=["provider", "server", "plugin-default", "plugin-rule", "second-plugin", "missing-credential", "missing-keys"],
)
def test_unknown_and_missing_fields_are_named_by_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, line: str
) -> None:
    assert old in VALID
    code, lines = check(tmp_path, VALID.replace(old, new, 1), capsys)
    assert code == 2
    assert line in lines


def test_variables_are_substituted_with_defaults_and_comments_are_left_alone(tmp_path: Path) -> None:
    text = VALID + "# an example: ${NOT_SET_ANYWHERE}\n"
    loaded = load_config_text(text, plugins=PLUGIN_MODELS, base_dir=tmp_path, env={})
    assert loaded.config.providers[0].apiTokens == ["sk-default"]
    loaded = load_config_text(text, plugins=PLUGIN_MODELS, base_dir=tmp_path, env={"TW_TEST_TOKEN": "sk-from-env"})
    assert loaded.config.providers[0].apiTokens == ["sk-from-env"]


def test_a_doubled_dollar_keeps_a_reference_as_written(tmp_path: Path) -> None:
    """ai-data-masking's ``${name}`` group reference could not be written: it was taken
    for an unset variable, or silently replaced by one of the same name (``${USER}``)."""
    masking = "\n  - name: ai-data-masking\n    defaultConfig:\n      replace_roles:\n"
    masking += "        - {regex: '%{EMAILADDRESS:user}@x', type: replace, value: '$${user}@masked'}\n"
    loaded = load_config_text(VALID + masking, plugins=PLUGIN_MODELS, base_dir=tmp_path, env={"user": "root"})
    (setup,) = [s for s in loaded.plugins if s.name == "ai-data-masking"]
    assert setup.default is not None
    assert setup.default.replace_roles[0].value == "${user}@masked"  # type: ignore[attr-defined]


def test_an_empty_variable_takes_its_default(tmp_path: Path) -> None:
    loaded = load_config_text(VALID, plugins=PLUGIN_MODELS, base_dir=tmp_path, env={"TW_TEST_TOKEN": ""})
    assert loaded.config.providers[0].apiTokens == ["sk-default"]


@pytest.mark.parametrize(
    ("old", "new", "place", "words"),
    [
        ("provider: openai}", "provider: opneai}", "routes[0].provider", "opneai"),
        ("ingress: [chat]", "ingress: [chta]", "plugins[0].matchRules[0].ingress[0]", "chta"),
        ("name: request-block", "name: request-blok", "plugins[1].name", "request-blok"),
        (
            "{name: alice, credential: ck-alice}",
            "{name: alice, credential: same}, {name: bob, credential: same}",
            "plugins[0].defaultConfig",
            "credential",
        ),
        (
            "- {name: chat, path_prefix: /v1/, provider: openai}",
            "- {name: chat, path_prefix: /v1/, provider: openai}\n  - {name: chat, path: /x}",
            "routes[1].name",
            "chat",
        ),
        ("- ingress: [chat]", "- service: [svc]", "plugins[0].matchRules[0].service", "service"),
        ("port: 0,", "port: 70000,", "server.port", "65535"),
        ("state: memory", "state: memcached", "storage.state", "redis"),
        # Values of the wrong type are refused, not converted (``port: true`` bound port 1).
        ("port: 0,", "port: true,", "server.port", "integer"),
        ("port: 0,", "port: 8080.0,", "server.port", "integer"),
        ("port: 0,", 'port: "8080",', "server.port", "integer"),
        (
            "max_body_bytes: 1000}",
            "max_body_bytes: 1000, trusted_proxies: [10.0.0.0/8, garbage]}",
            "server.trusted_proxies",
            "'garbage' is no IP address or network",
        ),
        (
            "max_body_bytes: 1000}",
            "max_body_bytes: 1000, trusted_proxies: [10.0.0.0/33]}",
            "server.trusted_proxies",
            "no IP address",
        ),
        # One credential, two consumers, in two key-auth entries (each checks its own
        # list): the last entry won the key, and with it another consumer's budget.
        (
            "- name: request-block",
            "- name: key-auth\n    defaultConfig:\n      keys: [x-api-key]\n"
            "      consumers: [{name: bob, credential: ck-alice}]\n  - name: request-block",
            "plugins[1].defaultConfig.consumers[0]",
            "consumer 'alice' (plugins[0].defaultConfig.consumers[0]) has the same credential",
        ),
        (
            "- name: request-block",
            "- name: key-auth\n    defaultConfig:\n      keys: [x-api-key]\n"
            "      consumers: [{name: alice, credential: ck-other}]\n  - name: request-block",
            "plugins[1].defaultConfig.consumers[0].name",
            "consumer 'alice' is defined otherwise at plugins[0]",
        ),
    ],
    ids=[
        "missing-provider",
        "missing-route",
        "unknown-plugin",
        "shared-credential",
        "duplicate-route",
        "service-rule",
        "port-range",
        "state-url",
        "port-bool",
        "port-float",
        "port-text",
        "trusted-proxy",
        "trusted-proxy-prefix",
        "credential-across-entries",
        "name-across-entries",
    ],
)
def test_cross_references_and_values_fail_at_their_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, place: str, words: str
) -> None:
    assert old in VALID
    code, lines = check(tmp_path, VALID.replace(old, new, 1), capsys)
    assert code == 2
    hits = [line for line in lines if line.startswith(place)]
    assert hits, lines
    assert any(words in line for line in hits), hits


def test_every_problem_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = VALID.replace("provider: openai}", "provider: nope}").replace("ingress: [chat]", "ingress: [nope]")
    text = text.replace("name: request-block", "name: nope-plugin")
    code, lines = check(tmp_path, text, capsys)
    assert code == 2
    assert {line.split(":")[0] for line in lines} >= {
        "routes[0].provider",
        "plugins[0].matchRules[0].ingress[0]",
        "plugins[1].name",
    }


def test_invalid_yaml_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = check(tmp_path, "routes:\n  - {name: [unclosed\n", capsys)
    assert code == 2
    assert any(line.startswith(f"{tmp_path / 'tollway.yaml'}: line ") for line in lines), lines


SERVER = "server: {host: 127.0.0.1, port: 0, max_body_bytes: 1000}"


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        # A second plugins: list replaced the first (key-auth went, and with it every key check).
        (VALID + "plugins:\n  - name: request-block\n    defaultConfig: {block_bodies: [x]}\n", 22, "'plugins'"),
        (VALID.replace(SERVER, "server: {host: 127.0.0.1, port: 0, port: 8080}"), 2, "'port'"),
    ],
    ids=["top-level", "nested"],
)
def test_a_key_given_twice_is_an_error_naming_it_and_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, key: str
) -> None:
    code, lines = check(tmp_path, text, capsys)
    assert code == 2
    [said] = lines
    assert said.startswith(f"{tmp_path / 'tollway.yaml'}: line {line}, column ")
    assert f"the key {key} is given twice" in said


def test_a_key_beside_a_merge_overrides_the_merged_one(tmp_path: Path) -> None:
    text = VALID.replace(SERVER, "server: {<<: {host: 127.0.0.2, port: 5}, port: 0}")
    loaded = load_config_text(text, plugins=PLUGIN_MODELS, base_dir=tmp_path, env={})
    assert (loaded.config.server.host, loaded.config.server.port) == ("127.0.0.2", 0)


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml" in capsys.readouterr().out


def test_higress_deployment_fields_are_accepted_with_one_warning_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = VALID.replace(
        "  - name: request-block\n",
        "  - name: request-block\n    url: oci://x/request-block:1.0\n    imagePullPolicy: Always\n"
        "    failStrategy: FAIL_OPEN\n",
    )
    path = tmp_path / "tollway.yaml"
    path.write_text(text)
    assert main(["check", "-c", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "ok\n"
    warnings = [line for line in captured.err.splitlines() if "plugins[1]" in line]
    assert len(warnings) == 3, captured.err
    loaded = load_config_text(text, plugins=PLUGIN_MODELS, base_dir=tmp_path)
    assert loaded.plugins[1].failure_mode == "open"


def test_a_plugin_redis_block_is_ignored_with_a_warning(tmp_path: Path) -> None:
    text = VALID.replace(
        "defaultConfig: {block_urls: [password]}", "defaultConfig: {block_urls: [password], redis: {service_name: r}}"
    )
    loaded = load_config_text(text, plugins=PLUGIN_MODELS, base_dir=tmp_path)
    assert any("plugins[1].defaultConfig.redis" in w for w in loaded.warnings)


def test_a_loaded_config_is_frozen(tmp_path: Path) -> None:
    loaded = load_config_text(VALID, plugins=PLUGIN_MODELS, base_dir=tmp_path)
    with pytest.raises(ValidationError):
        loaded.config.server.port = 1  # type: ignore[misc]


def test_config_error_carries_one_problem_per_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config_text(
            VALID.replace("provider: openai}", "provider: nope}"), plugins=PLUGIN_MODELS, base_dir=tmp_path
        )
    assert raised.value.problems == ["routes[0].provider: no provider with id 'nope'"]


@pytest.mark.parametrize("text", ["", "\n", "# nothing but a comment\n---\n"], ids=["empty", "blank", "comments"])
def test_an_empty_file_is_no_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    """It was read as ``{}``: every route and plugin gone, and `check` said ok."""
    assert check(tmp_path, text, capsys) == (2, ["(top): the config file is empty"])


def test_a_file_that_is_not_utf8_is_one_line_naming_the_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tollway.yaml"
    path.write_bytes(VALID.encode()[:20] + b"\xe9t\xe9\n")
    assert main(["check", "-c", str(path)]) == 2
    assert capsys.readouterr().out.splitlines() == [f"{path}: not UTF-8 text: byte 0xe9 at offset 20"]


def test_higress_fields_without_an_effect_here_are_accepted_with_a_warning_each(tmp_path: Path) -> None:
    """Higress's own configs were refused field by field (``unknown field``): provider
    fields such as ``context`` or ``providerDomain``, ai-statistics' ``session_id_header``;
    an ``openaiCustomUrl`` written without a scheme (as Higress's README writes it), and
    the type name ``together-ai``."""
    text = VALID.replace(
        "baseUrl: http://127.0.0.1:9/v1",
        "baseUrl: http://127.0.0.1:9/v1\n    context: {fileUrl: http://x/f.txt, serviceName: s, servicePort: 80}\n"
        "    providerDomain: example.com\n    reasoningContentMode: ignore",
    )
    text = text.replace(
        "routes:",
        "  - {id: custom, type: openai, apiTokens: [k], openaiCustomUrl: 127.0.0.1:9/v1}\n"
        "  - {id: t, type: together-ai, apiTokens: [k]}\nroutes:",
    )
    text += "  - name: ai-statistics\n    defaultConfig: {session_id_header: x-sess, disable_openai_usage: true,\n"
    text += "      attributes: [{key: a, value_source: fixed_value, value: b, as_separate_log_field: true}]}\n"
    loaded = load_config_text(text, plugins=PLUGIN_MODELS, base_dir=tmp_path, env={})
    warned = "\n".join(loaded.warnings)
    for place in ("providers[0].context", "providers[0].providerDomain", "providers[0].reasoningContentMode",
                  "plugins[2].defaultConfig.session_id_header", "plugins[2].defaultConfig.disable_openai_usage",
                  "plugins[2].defaultConfig.attributes[0].as_separate_log_field"):  # fmt: skip
        assert place in warned, (place, warned)
    custom, together = loaded.config.providers[1:]
    assert custom.openaiCustomUrl == "https://127.0.0.1:9/v1" and together.type == "together"
    # Versions written unquoted, as Higress's examples do (YAML reads them as dates).
    dated = VALID.replace("routes:", "  - {id: c, type: claude, apiTokens: [k], claudeVersion: 2023-06-01}\nroutes:")
    claude = load_config_text(dated, plugins=PLUGIN_MODELS, base_dir=tmp_path, env={}).config.providers[1]
    assert claude.claudeVersion == "2023-06-01"
    # A Higress field at its own default asks for nothing: no warning.
    quiet = (
        VALID
        + "  - name: ai-statistics\n    defaultConfig: {disable_openai_usage: false, enable_content_types: ['*']}\n"
    )
    assert not load_config_text(quiet, plugins=PLUGIN_MODELS, base_dir=tmp_path, env={}).warnings


def test_a_pasted_wasmplugin_and_an_ai_proxy_entry_say_what_to_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pasted as it is, a WasmPlugin gave five lines of unknown fields, and an ai-proxy
    entry "unknown plugin" with no word of where its providers go."""
    text = VALID + (
        "  - apiVersion: extensions.higress.io/v1alpha1\n    kind: WasmPlugin\n"
        "    metadata: {name: request-block, namespace: higress-system}\n"
        "    spec: {defaultConfig: {block_urls: [x]}, phase: AUTHN, priority: 320}\n"
        "  - {name: ai-proxy, defaultConfig: {provider: {type: openai, apiTokens: [k]}}}\n"
    )
    code, lines = check(tmp_path, text, capsys)
    assert code == 2
    assert [line for line in lines if line.startswith("plugins[2]")] == [
        "plugins[2]: a Higress WasmPlugin resource as it is; write `name: <plugin>` and the fields of its spec "
        "(defaultConfig, matchRules, phase, priority) in its place"
    ]
    (proxy,) = [line for line in lines if line.startswith("plugins[3]")]
    assert "providers go in the top-level providers: list" in proxy
    # A service rule is told once (not also "a rule needs ingress or domain").
    code, lines = check(tmp_path, VALID.replace("- ingress: [chat]", "- service: [svc]"), capsys)
    assert [line for line in lines if line.startswith("plugins[0].matchRules[0]")] == [
        "plugins[0].matchRules[0].service: service rules are not supported; match with ingress (route names) or domain"
    ]
