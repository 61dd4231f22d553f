"""key-auth (SPEC §3, §8; Higress reference §0.4, §1), one plugin at a time, no sockets."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tollway.errors import GatewayError
from tollway.exchange import Exchange
from tollway.plugin import PluginConfig
from tollway.plugins.key_auth import KeyAuth
from tollway.testing.harness import make_exchange, make_plugin, run_request

CHALLENGE = ("www-authenticate", 'Key realm="tollway"')
CONSUMERS = [
    {"name": "alice", "credential": "ck-alice"},
    {"name": "bob", "credential": "ck-bob"},
    {"name": "carol", "credential": "Bearer ck-carol"},
    {"name": "dave", "credential": "ck-dave", "allow_models": ["gpt-4o-mini", "claude-*"]},
]
BASE: dict[str, Any] = {"consumers": CONSUMERS, "keys": ["authorization", "x-api-key", "apikey"]}


def key_auth(has_rules: bool = False, **overrides: Any) -> KeyAuth:
    plugin = make_plugin("key-auth", {**BASE, **overrides}, has_rules)
    assert isinstance(plugin, KeyAuth)
    return plugin


def request(headers: dict[str, str] | None = None, query: str = "", body: bytes | None = None) -> Exchange:
    return make_exchange("POST", "/v1/chat/completions", headers or {}, query, body)


def refused(outcome: object, status: int, reason: str) -> GatewayError:
    assert isinstance(outcome, GatewayError), f"expected a refusal, got {outcome!r}"
    assert (outcome.status, outcome.reason) == (status, reason)
    return outcome


async def test_no_key_is_401_with_a_challenge() -> None:
    ex = request()
    err = refused(await run_request(key_auth(), ex), 401, "key-auth.no_key")
    assert CHALLENGE in err.headers
    assert err.code == "invalid_api_key"
    assert ex.consumer is None and ex.reason == "key-auth.no_key"


async def test_unknown_key_is_401_not_403() -> None:
    err = refused(await run_request(key_auth(), request({"x-api-key": "ck-nobody"})), 401, "key-auth.unknown_key")
    assert CHALLENGE in err.headers


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"x-api-key": "ck-alice", "authorization": "Bearer ck-bob"}, ""),
        ({"x-api-key": "ck-alice"}, "apikey=ck-bob"),
        ({}, "apikey=ck-alice&apikey=ck-bob"),
    ],
    ids=["two-headers", "header-and-query", "two-params"],
)
async def test_two_different_keys_are_401(headers: dict[str, str], query: str) -> None:
    err = refused(await run_request(key_auth(), request(headers, query)), 401, "key-auth.multiple_keys")
    assert CHALLENGE in err.headers


async def test_the_same_key_in_two_places_counts_once() -> None:
    ex = request({"x-api-key": "ck-alice", "authorization": "Bearer ck-alice"}, "apikey=ck-alice")
    assert await run_request(key_auth(), ex) is None
    assert ex.consumer is not None and ex.consumer.name == "alice"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"authorization": "Bearer ck-alice"}, ""),
        ({"Authorization": "bearer ck-alice"}, ""),
        ({"x-api-key": "ck-alice"}, ""),
        ({}, "apikey=ck-alice"),
        ({}, "other=1&apikey=ck%2Dalice"),
    ],
    ids=["bearer", "bearer-lowercase", "x-api-key", "query", "query-encoded"],
)
async def test_a_known_key_names_the_consumer_for_later_plugins_and_the_upstream(
    headers: dict[str, str], query: str
) -> None:
    ex = request(headers, query)
    assert await run_request(key_auth(), ex) is None
    assert ex.consumer is not None and ex.consumer.name == "alice"
    assert ("x-mse-consumer", "alice") in ex.upstream_headers
    # The credential is kept from the provider, not from the plugins after key-auth.
    assert {"authorization", "x-api-key", "apikey"} <= ex.strip_headers
    assert "apikey" in ex.strip_params
    # The plugins after key-auth see the request as sent, and the consumer it named.
    assert list(ex.request.headers) == [*((k.lower(), v) for k, v in headers.items()), ("x-mse-consumer", "alice")]
    assert ex.request.query == query


async def test_bearer_is_only_stripped_for_an_authorization_key_source() -> None:
    # x-api-key is a plain header: "Bearer ck-alice" is not alice's key there.
    refused(await run_request(key_auth(), request({"x-api-key": "Bearer ck-alice"})), 401, "key-auth.unknown_key")


async def test_a_credential_configured_with_bearer_is_compared_as_sent() -> None:
    ex = request({"authorization": "Bearer ck-carol"})
    assert await run_request(key_auth(), ex) is None
    assert ex.consumer is not None and ex.consumer.name == "carol"
    # Without the scheme it is not carol's credential.
    refused(await run_request(key_auth(), request({"authorization": "ck-carol"})), 401, "key-auth.unknown_key")


async def test_key_sources_follow_in_header_and_in_query() -> None:
    headers_only = key_auth(in_query=False)
    refused(await run_request(headers_only, request({}, "apikey=ck-alice")), 401, "key-auth.no_key")
    query_only = key_auth(in_header=False)
    refused(await run_request(query_only, request({"x-api-key": "ck-alice"})), 401, "key-auth.no_key")
    assert await run_request(query_only, request({}, "apikey=ck-alice")) is None


async def test_a_consumer_outside_the_rules_allow_is_403_with_a_challenge() -> None:
    rule = make_plugin("key-auth", {**BASE, "allow": ["alice"]}, has_rules=True, rule=0)
    err = refused(await run_request(rule, request({"x-api-key": "ck-bob"})), 403, "key-auth.forbidden")
    assert CHALLENGE in err.headers
    assert err.code == "permission_denied"
    assert await run_request(rule, request({"x-api-key": "ck-alice"})) is None


async def test_an_empty_allow_admits_nobody() -> None:
    rule = make_plugin("key-auth", {**BASE, "allow": []}, has_rules=True, rule=0)
    refused(await run_request(rule, request({"x-api-key": "ck-alice"})), 403, "key-auth.forbidden")


# global_auth (SPEC §3, Higress reference §0.4). "default" is the object serving
# requests that match no rule; "rule" serves a rule with `allow`.


@pytest.mark.parametrize(
    ("global_auth", "has_rules", "must_authenticate"),
    [
        (None, False, True),  # unset, no rules: like true
        (None, True, False),  # unset, with rules: like false outside them
        (True, True, True),
        (True, False, True),
        (False, False, False),
        (False, True, False),
    ],
)
async def test_global_auth_decides_whether_requests_outside_rules_authenticate(
    global_auth: bool | None, has_rules: bool, must_authenticate: bool
) -> None:
    config = dict(BASE) if global_auth is None else {**BASE, "global_auth": global_auth}
    default = make_plugin("key-auth", config, has_rules)
    outcome = await run_request(default, request())
    if must_authenticate:
        refused(outcome, 401, "key-auth.no_key")
    else:
        assert outcome is None
    # A valid key is always accepted and names its consumer, whether or not auth was
    # asked for: the call is theirs to record and limit, and their key stays here.
    ex = request({"x-api-key": "ck-bob"})
    assert await run_request(default, ex) is None
    assert ex.consumer is not None and ex.consumer.name == "bob"
    assert "x-api-key" in ex.strip_headers
    assert ("x-mse-consumer", "bob") in ex.upstream_headers
    # A key that names nobody is refused only where auth is asked for.
    ex = request({"x-api-key": "ck-nobody"})
    outcome = await run_request(default, ex)
    if must_authenticate:
        refused(outcome, 401, "key-auth.unknown_key")
    else:
        assert outcome is None and ex.consumer is None


async def test_a_consumer_known_where_auth_is_not_asked_for_is_held_to_allow_models() -> None:
    default = make_plugin("key-auth", {**BASE, "global_auth": False}, has_rules=True)
    body = b'{"model": "gpt-4o", "messages": []}'
    err = refused(
        await run_request(default, request({"x-api-key": "ck-dave"}, body=body)), 403, "key-auth.model_not_allowed"
    )
    assert err.code == "model_not_allowed"


@pytest.mark.parametrize("global_auth", [None, True, False])
async def test_a_rule_with_allow_always_authenticates_and_checks_the_list(global_auth: bool | None) -> None:
    config = {**BASE, "allow": ["alice"]}
    if global_auth is not None:
        config["global_auth"] = global_auth
    rule = make_plugin("key-auth", config, has_rules=True, rule=0)
    refused(await run_request(rule, request()), 401, "key-auth.no_key")
    refused(await run_request(rule, request({"x-api-key": "ck-nobody"})), 401, "key-auth.unknown_key")
    refused(await run_request(rule, request({"x-api-key": "ck-bob"})), 403, "key-auth.forbidden")
    assert await run_request(rule, request({"x-api-key": "ck-alice"})) is None


@pytest.mark.parametrize(
    ("model", "allowed"),
    [("gpt-4o-mini", True), ("claude-3-haiku", True), ("gpt-4o", False), ("gpt-4o-mini-2024", False)],
)
async def test_allow_models_refuses_other_models_with_403(model: str, allowed: bool) -> None:
    body = b'{"model": "%s", "messages": []}' % model.encode()
    outcome = await run_request(key_auth(), request({"x-api-key": "ck-dave"}, body=body))
    if allowed:
        assert outcome is None
    else:
        err = refused(outcome, 403, "key-auth.model_not_allowed")
        assert err.code == "model_not_allowed"


async def test_a_consumer_without_allow_models_may_use_any_model() -> None:
    body = b'{"model": "anything-at-all", "messages": []}'
    assert await run_request(key_auth(), request({"x-api-key": "ck-alice"}, body=body)) is None


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"consumers": CONSUMERS}, "keys"),
        ({**BASE, "keys": []}, "keys"),
        ({**BASE, "in_header": False, "in_query": False}, "in_header"),
        (
            {**BASE, "consumers": [{"name": "a", "credential": "same"}, {"name": "b", "credential": "same"}]},
            "same credential",
        ),
        ({**BASE, "consumers": [{"name": "a"}]}, "credential"),
        ({**BASE, "realms": "x"}, "realms"),
    ],
    ids=["no-keys", "empty-keys", "no-source", "shared-credential", "no-credential", "unknown-field"],
)
def test_invalid_configs_are_refused(config: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        make_plugin("key-auth", config)


def test_the_config_is_frozen() -> None:
    plugin = key_auth()
    assert isinstance(plugin.config, PluginConfig)
    with pytest.raises(ValidationError):
        plugin.config.keys = ["other"]  # type: ignore[misc]
