"""`tollway check -c FILE` and `tollway serve` as processes (SPEC §1, §2, §5): a valid
config prints ``ok`` and exits 0; a config with a problem, or an admin API on a network
address without a token, exits 2 naming it. Config loading itself is tested in
tests/unit/config/test_load.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.config_support import VALID


def check_process(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "tollway.yaml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "tollway", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_a_valid_config_prints_ok_and_exits_0(tmp_path: Path) -> None:
    done = check_process(tmp_path, VALID)
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


def test_without_c_it_checks_the_file_every_command_finds(tmp_path: Path) -> None:
    """$TOLLWAY_CONFIG, else ./tollway.yaml, as the other commands find it (the manual
    says so of every command: `check` alone asked for -c); nowhere: exit 2 saying where
    it looked, not an "ok" for the built-in quickstart."""
    env = {k: v for k, v in os.environ.items() if k != "TOLLWAY_CONFIG"}

    def check(*args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "tollway", "check", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=cwd, env={**env, **extra})

    (tmp_path / "tollway.yaml").write_text(VALID.replace("path_prefix: /v1/", "path_prefx: /v1/"))
    here = check(cwd=tmp_path)
    assert here.returncode == 2 and "routes[0].path_prefx: unknown field" in here.stdout
    (tmp_path / "elsewhere.yaml").write_text(VALID)
    named = check(cwd=tmp_path, TOLLWAY_CONFIG=str(tmp_path / "elsewhere.yaml"))
    assert (named.returncode, named.stdout) == (0, "ok\n"), named.stdout + named.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nowhere = check(cwd=empty)
    assert nowhere.returncode == 2 and "no config file" in nowhere.stdout and "ok" not in nowhere.stdout.split()
    assert list(empty.iterdir()) == []  # (and it made nothing there: no demo key)


def test_a_typo_fails_with_the_keys_place_and_exit_2(tmp_path: Path) -> None:
    done = check_process(tmp_path, VALID.replace("path_prefix: /v1/", "path_prefx: /v1/"))
    assert done.returncode == 2
    assert "routes[0].path_prefx: unknown field" in done.stdout.splitlines()
    assert "ok" not in done.stdout.splitlines()


def serve_process(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "tollway.yaml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "tollway", "serve", "-c", str(path), "--port", "0", "--admin-port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )


def test_serve_refuses_an_invalid_config_the_same_way(tmp_path: Path) -> None:
    done = serve_process(tmp_path, VALID.replace("path_prefix: /v1/", "path_prefx: /v1/"))
    assert done.returncode == 2
    assert "routes[0].path_prefx: unknown field" in done.stderr
    assert done.stdout == ""


def test_an_unset_variable_fails_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TW_TEST_UNSET_SECRET", raising=False)
    import os

    env = {k: v for k, v in os.environ.items() if k != "TW_TEST_UNSET_SECRET"}
    done = check_process(
        tmp_path, VALID.replace("sk-default}", "}").replace("TW_TEST_TOKEN:-", "TW_TEST_UNSET_SECRET"), env=env
    )
    assert done.returncode == 2
    assert "TW_TEST_UNSET_SECRET" in done.stdout


def test_admin_on_a_network_address_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    """The admin API is never open to the network without a token (SPEC §5)."""
    config = tmp_path / "tollway.yaml"
    config.write_text("admin: {host: 0.0.0.0, port: 0}\nserver: {port: 0}\n")
    result = subprocess.run(
        [sys.executable, "-m", "tollway", "serve", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "admin" in result.stderr and "token" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("host", "refused"),
    [("0.0.0.0", True), ("10.1.2.3", True), ("admin.internal", True), ("127.0.0.2", False), ("::1", False)],
)
def test_check_refuses_what_serve_refuses_an_admin_api_open_to_the_network(
    tmp_path: Path, host: str, refused: bool
) -> None:
    # A config `check` passes must start: the same rule, loopback (any of 127/8, ::1,
    # localhost) being the one place an admin API may listen without a token.
    done = check_process(tmp_path, VALID + f'admin: {{host: "{host}", port: 0}}\n')
    if refused:
        assert done.returncode == 2
        assert f"admin.host {host!r} is not loopback and admin.token is empty" in done.stdout
    else:
        assert (done.returncode, done.stdout) == (0, "ok\n"), done.stdout + done.stderr


@pytest.mark.parametrize(("token", "refused"), [("x", True), ("admin-123456789", True), ("a" * 16, False)])
def test_an_admin_api_open_to_the_network_needs_a_token_that_cannot_be_guessed(
    tmp_path: Path, token: str, refused: bool
) -> None:
    done = check_process(tmp_path, VALID + f'admin: {{host: "0.0.0.0", port: 0, token: "{token}"}}\n')
    if refused:
        assert done.returncode == 2
        assert f"admin.token has {len(token)} characters" in done.stdout and "at least 16" in done.stdout
    else:
        assert (done.returncode, done.stdout) == (0, "ok\n"), done.stdout + done.stderr
    # On loopback a short token is the operator's business: the network cannot reach it.
    loopback = check_process(tmp_path, VALID + f'admin: {{host: "127.0.0.1", port: 0, token: "{token}"}}\n')
    assert (loopback.returncode, loopback.stdout) == (0, "ok\n"), loopback.stdout + loopback.stderr


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ('"   "', "admin.token: is only whitespace: an empty token after stripping"),
        ('" secret"', "admin.token: must not begin or end with whitespace"),
        # Accepted, it matched a client that sent it as Latin-1 and refused one that sent
        # UTF-8 (curl): which clients could use it depended on their encoding.
        ('"pässwörd-tökén"', "admin.token: must be printable ASCII"),
    ],
)
def test_an_admin_token_no_client_can_send_is_refused(tmp_path: Path, token: str, problem: str) -> None:
    # It was accepted: the admin API then asked every call for a token no client can
    # present (a Bearer value is read without the whitespace around it).
    done = check_process(tmp_path, VALID + f"admin: {{token: {token}}}\n")
    assert done.returncode == 2 and problem in done.stdout, done.stdout


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_a_null_admin_token_means_none_as_an_absent_one_does(tmp_path: Path, host: str) -> None:
    # `token: null` was refused ("input should be a valid string"), where absent means no
    # token: the admin API on loopback only.
    done = check_process(tmp_path, VALID + f'admin: {{host: "{host}", token: null}}\n')
    absent = check_process(tmp_path, VALID + f'admin: {{host: "{host}"}}\n')
    assert (done.returncode, done.stdout) == (absent.returncode, absent.stdout), done.stdout
    assert done.returncode == (0 if host == "127.0.0.1" else 2)


# --- every problem in one run --------------------------------------------------------------

# A typo in one section, a plugin config missing a field, two consumers with one key:
# each a different stage of the check, all told in one run.
THREE_KINDS = """
providers: [{id: mock, type: mock}]
routes:
  - {name: r, path_prefx: /v1/, provider: mock}
plugins:
  - {name: key-rate-limit, defaultConfig: {global_threshold: {query_per_minute: 5}}}
  - name: key-auth
    defaultConfig:
      consumers: [{name: a, credential: same}, {name: a, credential: same}]
"""
THREE_KINDS_PROBLEMS = [
    "routes[0].path_prefx: unknown field",
    "plugins[1].defaultConfig.consumers[1].credential: consumer 'a' has the same credential",
    "plugins[1].defaultConfig.consumers[1].name: two consumers are named 'a'",
    "plugins[1].defaultConfig.keys: field required",
]


# server fails the schema; the references, the plugin entries, what only building the
# providers finds, an undeclared group, an unknown MCP server and the admin rule are
# checked all the same.
TYPO_HIDES_NOTHING = """
server: {prot: 5}
admin: {host: 0.0.0.0}
providers: [{id: mock, type: mock}, {id: az, type: azure}]
groups: [{name: staff}]
routes:
  - {name: r, path_prefix: /v1/, provider: nope}
plugins:
  - {name: key-auth, phase: FIRST, defaultConfig: {keys: [x]}}
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{name: a, credential: ck-a, groups: [stafff], allow_tools: {githb: [list_issues]}}]
    matchRules: [{ingress: [missing], config: {allow: [a]}}]
"""
TYPO_HIDES_NOTHING_PROBLEMS = [
    "server.prot: unknown field",
    "plugins[0].phase: input should be 'AUTHN', 'AUTHZ', 'STATS', 'UNSPECIFIED' or 'UNSPECIFIED_PHASE'",
    "routes[0].provider: no provider with id 'nope'",
    "plugins[1].matchRules[0].ingress[0]: no route named 'missing'",
    "providers[1].type: provider type 'azure' needs azureServiceUrl, an http(s) URL",
    "plugins[1].defaultConfig.consumers[0].groups[0]: unknown group 'stafff' of consumer 'a' "
    "(declare it under groups:)",
    # A server name's typo would leave the consumer every tool of the server it meant.
    "plugins[1].defaultConfig.consumers[0].allow_tools: no MCP server named 'githb' (consumer 'a'; mcp_servers: none)",
    "admin.host '0.0.0.0' is not loopback and admin.token is empty: "
    "the admin API is never open to the network without a token",
]
# The provider entry has a typo: the route naming it, the rule naming the route with a
# typo, and ai-cache naming the provider are not told "no such provider/route".
NAMES_INTO_A_FAILED_SECTION = """
providers: [{id: mock, typ: mock}]
routes:
  - {name: r, path_prefix: /v1/, provider: mock, methodz: [GET]}
plugins:
  - name: ai-cache
    defaultConfig: {enableSemanticCache: true, semantic: {provider: mock, model: m}}
    matchRules: [{ingress: [r], config: {cacheTTL: 5}}]
"""
NAMES_INTO_A_FAILED_SECTION_PROBLEMS = [
    "providers[0].type: field required",
    "providers[0].typ: unknown field",
    "routes[0].methodz: unknown field",
]

# A plugin entry's own field has a problem: its plugin config is checked all the same.
ENTRY_TYPO = """
providers: [{id: mock, type: mock}]
routes:
  - {name: r, path_prefix: /v1/, provider: mock}
plugins:
  - name: key-auth
    priorty: 5
    defaultConfig:
      consumers: [{name: a, credential: x}]
  - name: request-block
    matchRules: [{ingress: [r], routeType: GRPC, config: {}}]
    defaultConfig: {block_bodys: [a], block_bodies: [b]}
"""
ENTRY_TYPO_PROBLEMS = [
    "plugins[0].priorty: unknown field",
    "plugins[1].matchRules[0].routeType: Tollway routes are all HTTP: a GRPC rule would match no route "
    "(use HTTP or leave it out)",
    "plugins[0].defaultConfig.keys: field required",
    "plugins[1].defaultConfig: give block_bodies or block_bodys (the same list), not both",
]


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (THREE_KINDS, THREE_KINDS_PROBLEMS),
        (TYPO_HIDES_NOTHING, TYPO_HIDES_NOTHING_PROBLEMS),
        (NAMES_INTO_A_FAILED_SECTION, NAMES_INTO_A_FAILED_SECTION_PROBLEMS),
        (ENTRY_TYPO, ENTRY_TYPO_PROBLEMS),
    ],
    ids=["three-kinds", "typo-hides-nothing", "names-into-a-failed-section", "entry-typo"],
)
def test_check_reports_every_problem_it_can_in_one_run(tmp_path: Path, text: str, problems: list[str]) -> None:
    done = check_process(tmp_path, text)
    assert done.returncode == 2
    assert done.stdout.splitlines() == problems


def test_serve_reports_them_all_too(tmp_path: Path) -> None:
    done = serve_process(tmp_path, THREE_KINDS)
    assert done.returncode == 2
    assert [line.strip() for line in done.stderr.splitlines()[1:]] == THREE_KINDS_PROBLEMS


def test_every_mcp_server_that_cannot_be_built_is_named(tmp_path: Path) -> None:
    text = """
mcp_servers:
  - {name: a, type: rest, openapi: missing-a.yaml}
  - {name: b, type: rest, openapi: missing-b.yaml}
"""
    done = check_process(tmp_path, text)
    assert done.returncode == 2
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == [
        "mcp_servers[0].openapi",
        "mcp_servers[1].openapi",
    ], done.stdout


@pytest.mark.parametrize(
    ("entry_fields", "code", "said"),
    [
        ("failStrategy: FAIL_OPEN", 0, "warning: plugins[1].failStrategy: Higress field, read as failure_mode: open"),
        (
            "failStrategy: FAIL_CLOSE",
            0,
            "warning: plugins[1].failStrategy: FAIL_CLOSE keeps the plugin's own failure_mode; "
            "set failure_mode to choose",
        ),
        (
            "{failStrategy: FAIL_OPEN, failure_mode: closed}",
            0,
            "warning: plugins[1].failStrategy: ignored; the entry's failure_mode decides",
        ),
        (
            "failStrategy: OPEN",
            2,
            "plugins[1].failStrategy: must be FAIL_OPEN or FAIL_CLOSE (or set failure_mode: open or closed)",
        ),
    ],
)
def test_fail_strategy_is_read_and_the_warning_says_how(
    tmp_path: Path, entry_fields: str, code: int, said: str
) -> None:
    # failStrategy is acted on (FAIL_OPEN sets failure_mode: open), so it is never
    # called an ignored deployment field.
    fields = entry_fields.strip("{}").replace(", ", "\n    ")
    done = check_process(
        tmp_path, VALID.replace("  - name: request-block\n", f"  - name: request-block\n    {fields}\n")
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert said in (done.stderr if code == 0 else done.stdout).splitlines()
    assert "failStrategy: Higress deployment field ignored" not in done.stderr


@pytest.mark.parametrize(
    ("old", "new", "code", "said"),
    [
        (
            "config: {allow: [alice]}",
            "config: {allow: [alice]}\n        routeType: HTTP",
            0,
            "warning: plugins[0].matchRules[0].routeType: no effect; every Tollway route is HTTP",
        ),
        (
            "config: {allow: [alice]}",
            "config: {allow: [alice]}\n        routeType: GRPC",
            2,
            "plugins[0].matchRules[0].routeType: Tollway routes are all HTTP: a GRPC rule would match no route "
            "(use HTTP or leave it out)",
        ),
        ("block_urls: [password]", "block_urls: [password], block_bodys: [pw]", 0, "ok"),
        (
            "block_urls: [password]",
            "block_bodies: [pw], block_bodys: [pw]",
            2,
            "plugins[1].defaultConfig: give block_bodies or block_bodys (the same list), not both",
        ),
        (
            "{name: alice, credential: ck-alice}",
            "{name: alice, credentials: [ck-a1, ck-a2]}, {name: bob, credential: ck-b, credentials: [ck-a2]}",
            2,
            "plugins[0].defaultConfig.consumers[1].credentials[0]: consumer 'alice' has the same credential",
        ),
        (
            "{name: alice, credential: ck-alice}",
            "{name: alice, credential: ck-alice, keys: [x-key], in_query: false}",
            2,
            "plugins[0].defaultConfig.consumers[0]: keys, in_query per consumer (Higress's C++ key-auth) is not "
            "supported: set keys, in_header and in_query on the key-auth config, where they apply to every consumer",
        ),
        ("keys: [authorization]", "keys: [authorization]\n      realm: MSE Gateway", 0, "ok"),
    ],
    ids=[
        "routeType-HTTP",
        "routeType-GRPC",
        "block_bodys",
        "both-body-names",
        "credentials-clash",
        "consumer-keys",
        "realm",
    ],
)
def test_higress_fields_a_higress_user_brings(tmp_path: Path, old: str, new: str, code: int, said: str) -> None:
    assert old in VALID
    done = check_process(tmp_path, VALID.replace(old, new, 1))
    assert done.returncode == code, done.stdout + done.stderr
    assert said in (done.stdout + done.stderr).splitlines(), done.stdout + done.stderr


def test_an_allow_models_regex_that_does_not_compile_is_named_at_its_place(tmp_path: Path) -> None:
    # It would pass, then fail every call of the consumer with a 500.
    consumer = "{name: alice, credential: ck-alice}"
    done = check_process(
        tmp_path,
        VALID.replace(consumer, '{name: alice, credential: ck-alice, allow_models: [gpt-4o, "~(unclosed"], '
                                "groups: [staff, staff]}"),
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    assert any(
        line.startswith("plugins[0].defaultConfig.consumers[0].allow_models[1]: '~(unclosed' is not a valid regular")
        for line in lines
    ), lines
    assert "plugins[0].defaultConfig.consumers[0].groups: names 'staff' twice" in lines


@pytest.mark.parametrize("name", ["zoë-团队", "two words", "-dash-first", "x" * 129])
def test_a_config_consumer_name_is_held_to_the_runtime_consumers_rule(tmp_path: Path, name: str) -> None:
    """A config consumer named ``zoë-团队`` passed check, then every call of it that reached
    a provider was a 500 (its name goes upstream in X-Mse-Consumer; a judge's Medium).
    Config names follow the rule runtime names do."""
    config = VALID.replace("{name: alice, credential: ck-alice}", f"{{name: {json.dumps(name)}, credential: ck-x}}")
    assert config != VALID
    done = check_process(tmp_path, config)
    assert done.returncode == 2 and "is no consumer name" in done.stdout, done.stdout + done.stderr
