"""Plugin entries in Higress's shapes, through a running gateway (SPEC §2, §8): a match
rule applies on the routes it names and nowhere else. How the loader reads them is in
tests/unit/config/test_plugin_entries.py."""

from __future__ import annotations

import httpx

from tests.conftest import GatewayFactory, Proc
from tests.support.plugin_support import wait_for_window_room

CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}


def config(mock: Proc, plugins: str) -> str:
    return f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers: [{{id: mock, type: openai, baseUrl: "{mock.url}/v1", apiTokens: [sk-test]}}]
routes:
  - {{name: chat, path_prefix: /v1/, provider: mock}}
  - {{name: second, path_prefix: /second/v1/, provider: mock}}
plugins:
{plugins}"""


def statuses(http: httpx.Client, path: str, *headers: dict[str, str]) -> list[int]:
    return [http.post(f"{path}/chat/completions", json=CHAT, headers=h).status_code for h in headers]


def test_a_rule_limiting_by_ip_replaces_the_defaults_limit_by_header(gateway: GatewayFactory, mock_llm: Proc) -> None:
    """The rule's limit_by_per_ip and the default's limit_by_per_header were merged into one
    config and refused as two limit_by_* fields."""
    gw = gateway(
        config(
            mock_llm,
            """  - name: key-rate-limit
    defaultConfig:
      limit_by_per_header: x-user
      limit_keys: [{key: "*", query_per_minute: 2}]
    matchRules:
      - ingress: [second]
        config:
          limit_by_per_ip: from-remote-addr
          limit_keys: [{key: 127.0.0.1, query_per_minute: 1}]
""",
        )
    )
    wait_for_window_room(60, 15)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        # The rule's route: one call per IP, whoever the x-user.
        assert statuses(http, "/second/v1", {"x-user": "b"}, {"x-user": "c"}) == [200, 429]
        # Elsewhere the default: two calls per x-user value, the IP limit not applying.
        assert statuses(http, "/v1", {"x-user": "a"}, {"x-user": "a"}, {"x-user": "a"}, {"x-user": "d"}) == [
            200,
            200,
            429,
            200,
        ]


def test_an_entry_of_rules_only_runs_where_a_rule_matches(gateway: GatewayFactory, mock_llm: Proc) -> None:
    """No defaultConfig was refused as an empty default (``at least one of block_urls, …
    is required``); in Higress the plugin then runs only where a rule matches."""
    rules = "[{ingress: [second], config: {block_urls: [secret]}}]"
    gw = gateway(config(mock_llm, f"  - name: request-block\n    matchRules: {rules}\n"))
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        assert http.post("/second/v1/chat/completions?q=secret", json=CHAT).status_code == 403
        assert http.post("/v1/chat/completions?q=secret", json=CHAT).status_code == 200


def test_higress_in_config_rules_apply_on_their_route(gateway: GatewayFactory, mock_llm: Proc) -> None:
    """Higress's older form, ``_rules_`` inside the config, was refused as an unknown
    field. Unset global_auth with rules: only a rule's route asks for a key (SPEC §3)."""
    gw = gateway(
        config(
            mock_llm,
            """  - name: key-auth
    defaultConfig:
      consumers: [{name: a, credential: key-a-0123456789}, {name: b, credential: key-b-0123456789}]
      keys: [apikey]
      _rules_: [{_match_route_: [second], allow: [a]}]
""",
        )
    )
    a, b = {"apikey": "key-a-0123456789"}, {"apikey": "key-b-0123456789"}
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        assert statuses(http, "/second/v1", a, b, {}) == [200, 403, 401]
        assert statuses(http, "/v1", b, {}) == [200, 200]


def test_a_higress_disable_rule_turns_the_plugin_off_on_its_route(gateway: GatewayFactory, mock_llm: Proc) -> None:
    rules = "[{_match_route_: [second], _disable_: true}]"
    gw = gateway(
        config(mock_llm, f"  - name: request-block\n    defaultConfig: {{block_urls: [secret], _rules_: {rules}}}\n")
    )
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        assert http.post("/v1/chat/completions?q=secret", json=CHAT).status_code == 403
        assert http.post("/second/v1/chat/completions?q=secret", json=CHAT).status_code == 200
