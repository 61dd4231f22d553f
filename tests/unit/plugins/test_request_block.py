"""request-block (plugins/request_block.py; SPEC §3, §8; Higress reference §6): one plugin
at a time, no sockets. What the client receives through a real gateway is in
tests/system/test_request_block.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from tollway.errors import GatewayError
from tollway.testing.harness import make_exchange, make_plugin, run_request


async def outcome(
    config: dict[str, Any],
    path: str = "/v1/chat/completions",
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> GatewayError | None:
    ex = make_exchange("POST", path, headers or {}, query, body)
    result = await run_request(make_plugin("request-block", config), ex)
    assert result is None or isinstance(result, GatewayError), result
    if result is not None:
        assert ex.blocked_by == "request-block"
        assert ex.reason == "request-block.blocked"
    return result


async def blocked(config: dict[str, Any], **request: Any) -> bool:
    return await outcome(config, **request) is not None


async def test_a_block_is_403_request_blocked_by_default() -> None:
    err = await outcome({"block_urls": ["password"]}, query="q=password")
    assert err is not None
    assert (err.status, err.code, err.reason) == (403, "request_blocked", "request-block.blocked")


async def test_block_urls_match_substrings_of_path_and_query() -> None:
    config = {"block_urls": ["password"]}
    assert await blocked(config, path="/v1/password/reset")
    assert await blocked(config, query="a=1&q=my-password-here")
    assert not await blocked(config, query="q=passwort")


async def test_block_exact_urls_work_on_their_own_and_match_whole() -> None:
    config = {"block_exact_urls": ["/v1/admin"]}
    assert await blocked(config, path="/v1/admin")
    assert not await blocked(config, path="/v1/admin/x")
    assert not await blocked(config, path="/v1/adm")


async def test_block_regexp_urls_work_on_their_own() -> None:
    config = {"block_regexp_urls": [r"\.(env|git)\b"]}
    assert await blocked(config, path="/static/.env")
    assert await blocked(config, path="/x/.git/config")
    assert not await blocked(config, path="/static/environment")


async def test_block_headers_match_within_name_value_lines() -> None:
    config = {"block_headers": ["user-agent: evilbot"]}
    assert await blocked(config, headers={"User-Agent": "evilbot/1.0"})
    assert not await blocked(config, headers={"x-note": "evilbot"})
    value_only = {"block_headers": ["secret-token"]}
    assert await blocked(value_only, headers={"x-forward": "has-secret-token-in-it"})


async def test_block_bodies_match_the_raw_body() -> None:
    config = {"block_bodies": ["password"]}
    assert await blocked(config, body=b'{"messages": [{"content": "my password is x"}]}')
    assert not await blocked(config, body=b'{"messages": [{"content": "hello"}]}')


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("q=pass%77ord", "percent-encoded"),
        ("q=%70%61%73%73%77%6F%72%64", "every byte encoded"),
        ("q=pass%2577ord", "double encoded"),
        ("q=pass%252577ord", "triple encoded"),
    ],
)
async def test_percent_encoding_is_no_way_around_a_url_block(query: str, why: str) -> None:
    assert await blocked({"block_urls": ["password"]}, query=query), why


async def test_plus_for_space_is_no_way_around_a_url_block() -> None:
    config = {"block_urls": ["secret plan"]}
    assert await blocked(config, query="q=secret+plan")
    assert await blocked(config, query="q=secret%20plan")


async def test_percent_encoding_is_no_way_around_a_regexp_or_exact_url_block() -> None:
    assert await blocked({"block_regexp_urls": ["pass.ord"]}, query="q=pass%77ord")
    assert await blocked({"block_exact_urls": ["/v1/x?q=secret plan"]}, path="/v1/x", query="q=secret+plan")


async def test_encoding_is_no_way_around_a_header_block() -> None:
    assert await blocked({"block_headers": ["password"]}, headers={"x-q": "pass%77ord"})


@pytest.mark.parametrize(
    "body",
    [
        rb'{"messages": [{"role": "user", "content": "my pass\u0077ord"}]}',
        rb'{"messages": [{"role": "user", "content": "\u0070\u0061\u0073\u0073\u0077\u006f\u0072\u0064"}]}',
        rb'{"pass\u0077ord": 1}',
        b"q=pass%77ord",
        b"q=secret+password",
    ],
    ids=["one-escape", "all-escaped", "in-a-key", "form-encoded", "form-plus"],
)
async def test_escapes_are_no_way_around_a_body_block(body: bytes) -> None:
    assert await blocked({"block_bodies": ["password"]}, body=body)


async def test_json_escaped_space_in_a_blocked_phrase() -> None:
    assert await blocked({"block_bodies": ["secret plan"]}, body=b'{"content": "the secret\\u0020plan"}')


async def test_case_sensitive_by_default() -> None:
    assert not await blocked({"block_urls": ["password"]}, query="q=PASSWORD")
    assert not await blocked({"block_bodies": ["password"]}, body=b'{"c": "PassWord"}')


async def test_case_sensitive_false_folds_case_everywhere() -> None:
    base: dict[str, Any] = {"case_sensitive": False}
    assert await blocked({**base, "block_urls": ["PassWord"]}, query="q=password")
    assert await blocked({**base, "block_exact_urls": ["/V1/Admin"]}, path="/v1/admin")
    assert await blocked({**base, "block_regexp_urls": ["^/SECRET"]}, path="/secret/x")
    assert await blocked({**base, "block_headers": ["X-Leak: YES"]}, headers={"x-leak": "yes"})
    assert await blocked({**base, "block_bodies": ["PASSWORD"]}, body=rb'{"c": "pass\u0057ord"}')


async def test_blocked_code_changes_the_status_not_the_reason() -> None:
    err = await outcome({"block_urls": ["pw"], "blocked_code": 404}, query="pw=1")
    assert err is not None and (err.status, err.reason) == (404, "request-block.blocked")


async def test_blocked_message_text_becomes_the_message_and_json_is_kept() -> None:
    text = await outcome({"block_urls": ["pw"], "blocked_message": "no secrets here"}, query="pw=1")
    assert text is not None and text.message == "no secrets here" and text.body is None
    as_json = await outcome({"block_urls": ["pw"], "blocked_message": '{"ok": false, "why": "pw"}'}, query="pw=1")
    assert as_json is not None and as_json.body is not None
    assert json.loads(as_json.body) == {"ok": False, "why": "pw"}


async def test_nothing_to_block_passes() -> None:
    config = {"block_urls": ["password"], "block_headers": ["password"], "block_bodies": ["password"]}
    assert not await blocked(config, query="q=hello", headers={"x-a": "b"}, body=b'{"content": "hello"}')


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"block_urls": []},
        {"block_urls": ["x"], "blocked_code": 42},
        {"block_regexp_urls": ["("]},
        {"block_urls": ["x"], "block_url": ["y"]},
    ],
    ids=["empty", "empty-list", "bad-code", "bad-regexp", "unknown-field"],
)
def test_invalid_configs_are_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_plugin("request-block", config)
