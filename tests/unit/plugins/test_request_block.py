"""request-block (plugins/request_block.py; SPEC §3, §8; Higress reference §6): one plugin
at a time, no sockets. What the client receives through a real gateway is in
tests/system/test_request_block.py."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tollway.errors import GatewayError
from tollway.plugins import request_block
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
        # A 1xx is no final answer: the client got "100 Continue" and waited (a judge's).
        {"block_urls": ["x"], "blocked_code": 100},
        {"block_urls": ["x"], "blocked_code": 101},
        # No body after a 204 or 304: the client read the refusal as the next answer.
        {"block_urls": ["x"], "blocked_code": 204},
        {"block_urls": ["x"], "blocked_code": 205},
        {"block_urls": ["x"], "blocked_code": 304},
        {"block_regexp_urls": ["("]},
        {"block_urls": ["x"], "block_url": ["y"]},
    ],
    ids=[
        "empty",
        "empty-list",
        "bad-code",
        "code-100",
        "code-101",
        "code-204",
        "code-205",
        "code-304",
        "bad-regexp",
        "unknown-field",
    ],
)
def test_invalid_configs_are_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_plugin("request-block", config)


# --- unicode tricks, every API, bodies that cannot be read through (SPEC §14) -------------

BLOCK = {"block_bodies": ["password", "secret plan"]}
TRICKS = {
    "fullwidth": "ｐａｓｓｗｏｒｄ",
    "fullwidth-upper-folded": "ＰＡＳＳＷＯＲＤ",
    "zero-width-space": "pass\u200bword",
    "zero-width-joiners": "p\u200ca\u200dss\u2060word",
    "soft-hyphen": "pass\u00adword",
    "byte-order-mark": "\ufeffpass\ufeffword",
    "mixed": "ｐａ\u200bｓs\u00adword",
}


def api_bodies(text: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """One body per API that carries prompt text, ``text`` where the model reads it."""
    tool = {"type": "function", "function": {"name": "f", "description": text, "parameters": {"type": "object"}}}
    return {
        "chat": ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]}),
        "chat-tool-description": (
            "/v1/chat/completions",
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [tool]},
        ),
        "chat-user": ("/v1/chat/completions", {"model": "m", "messages": [], "user": text}),
        "completions": ("/v1/completions", {"model": "m", "prompt": [text]}),
        "embeddings": ("/v1/embeddings", {"model": "m", "input": text}),
        "messages-document": (
            "/v1/messages",
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
                        ],
                    }
                ],
            },
        ),
        "count_tokens": (
            "/v1/messages/count_tokens",
            {"model": "m", "system": text, "messages": [{"role": "user", "content": "hi"}]},
        ),
        "responses-input": (
            "/v1/responses",
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": text}]}]},
        ),
        "responses-instructions": ("/v1/responses", {"model": "m", "input": "hi", "instructions": text}),
        "anthropic-tool": (
            "/v1/messages",
            {"model": "m", "max_tokens": 5, "messages": [], "tools": [{"name": "t", "description": text}]},
        ),
    }


@pytest.mark.parametrize("api", list(api_bodies("")))
@pytest.mark.parametrize("trick", list(TRICKS))
async def test_unicode_tricks_are_no_way_around_a_body_block_in_any_api(api: str, trick: str) -> None:
    path, body = api_bodies(TRICKS[trick])[api]
    config = {**BLOCK, "case_sensitive": "upper" not in trick}
    assert await blocked(config, path=path, body=json.dumps(body, ensure_ascii=False).encode())
    # The same text JSON-escaped (every non-ASCII character as \uXXXX) is blocked too.
    assert await blocked(config, path=path, body=json.dumps(body, ensure_ascii=True).encode())


@pytest.mark.parametrize(
    "body",
    [
        b"q=pass%E2%80%8Bword",  # a zero-width space, percent-encoded
        b"q=pass%C2%ADword",  # a soft hyphen, percent-encoded
        b"q=%EF%BD%90assword",  # a fullwidth p, percent-encoded
        b"q=secret%E2%80%8B+plan",  # and + for the space
        b"q=pass%25E2%2580%258Bword",  # double encoded
        rb'{"q": "pass\u200bword"}',  # JSON-escaped
        rb'{"q": "\uff50ass\u00adword"}',
        rb'{"q": "secret\u3000plan"}',  # the ideographic space is a space
        b'{"q": "pass%E2%80%8Bword"}',  # percent-encoded inside a JSON string
        rb'{"q": "pass\u0025E2\u002580\u00258Bword"}',  # ... with the % JSON-escaped
    ],
)
async def test_tricks_mixed_with_percent_and_json_escapes_are_blocked(body: bytes) -> None:
    assert await blocked(BLOCK, body=body)


async def test_block_words_written_fullwidth_match_plain_text_and_the_other_way_round() -> None:
    assert await blocked({"block_bodies": ["ｓｅｃｒｅｔ"]}, body=b'{"c": "a secret"}')
    assert await blocked({"block_bodies": ["ｓｅｃｒｅｔ"]}, body='{"c": "a ｓｅｃｒｅｔ"}'.encode())
    assert await blocked({"block_bodies": ["secret"]}, body='{"c": "a ｓｅｃｒｅｔ"}'.encode())


async def test_urls_and_headers_match_their_normal_form_too() -> None:
    assert await blocked({"block_urls": ["password"]}, query="q=pass%E2%80%8Bword")
    assert await blocked({"block_urls": ["password"]}, query="q=%EF%BD%90assword")
    assert await blocked({"block_regexp_urls": ["^/v1/admin"]}, path="/v1/ａｄｍｉｎ")
    assert await blocked({"block_headers": ["password"]}, headers={"x-q": "pass%C2%ADword"})
    # A header's bytes arrive as Latin-1: a fullwidth letter sent in UTF-8 is matched as
    # the letter it is; and a name with ``_`` is the one with ``-`` to many servers.
    fullwidth = "ｏn".encode().decode("latin-1")
    assert await blocked({"block_headers": ["x-debug: on"]}, headers={"x-debug": fullwidth})
    assert await blocked({"block_headers": ["x-debug: on"]}, headers={"x_debug": "on"})
    assert not await blocked({"block_headers": ["x-debug: on"]}, headers={"x-debug": "off"})


async def test_ordinary_non_ascii_text_is_not_blocked() -> None:
    body = '{"messages": [{"content": "请帮我，谢谢！Ça va très bien. ﬁle ① 😀"}]}'.encode()
    assert not await blocked(BLOCK, body=body)


def nested(depth: int, leaf: bytes) -> bytes:
    return b"[" * depth + leaf + b"]" * depth


@pytest.mark.parametrize("depth", [65, 5000, 100_000])
async def test_a_body_nested_past_any_parser_is_still_read_through(depth: int) -> None:
    # The gateway refuses such a body (400) before any plugin; the plugin does not rely
    # on that. The exchange is built without the body so that the harness's own parse
    # does not refuse it first.
    ex = make_exchange("POST", "/v1/chat/completions", {})
    ex.request.body = nested(depth, rb'"my pass\u0077ord"')
    err = await run_request(make_plugin("request-block", BLOCK), ex)
    assert isinstance(err, GatewayError) and err.reason == "request-block.blocked"
    ex = make_exchange("POST", "/v1/chat/completions", {})
    ex.request.body = nested(depth, rb'"nothing to see\u0021"')
    assert await run_request(make_plugin("request-block", BLOCK), ex) is None


async def test_a_parsed_body_of_any_depth_is_walked_without_recursion() -> None:
    # Whatever a parser lets through: here a value 20,000 levels deep, far past
    # Python's recursion limit, as if the body had parsed to it.
    deep: Any = ["pass\u200bword"]
    for _ in range(20_000):
        deep = {"k": [deep]}
    ex = make_exchange("POST", "/v1/chat/completions", {}, body=b'{"c": "\\u0021"}')
    ex.request._json = deep  # the parse every plugin shares
    err = await run_request(make_plugin("request-block", BLOCK), ex)
    assert isinstance(err, GatewayError) and err.reason == "request-block.blocked"


async def test_a_body_that_cannot_be_read_through_is_blocked_whatever_the_failure_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(value: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("tollway.plugins.request_block._json_strings", broken)
    err = await outcome(BLOCK, body=b'{"c": "nothing \\u0021"}')
    # A GatewayError passes the chain in every failure_mode; any other exception would
    # be skipped under failure_mode: open.
    assert isinstance(err, GatewayError) and err.reason == "request-block.blocked"


# Escapes, hex digits, plus signs, what quoted-printable gives a meaning (``=``, ``_``,
# line breaks), and characters of one to three UTF-8 bytes around them.
_PERCENT_TEXT = st.sampled_from([*"%25eEf80C3A+x =_\r\n\t", "\u0436", "\u00e9", "\u20ac"])


@settings(max_examples=1000)
@given(st.text(alphabet=_PERCENT_TEXT, max_size=40) | st.text(alphabet=st.sampled_from([*"%e9=\ud800"]), max_size=12))
def test_its_percent_decoding_is_urllibs(text: str) -> None:
    """request-block's own ``unquote`` (quoted-printable decoding in C, for speed) decodes
    exactly as ``urllib.parse.unquote`` does: runs of escapes as UTF-8, invalid bytes
    replaced, other characters (``=`` and line breaks too, and a lone surrogate, which
    takes another way) kept."""
    assert request_block.unquote(text) == urllib.parse.unquote(text)


async def test_a_large_body_is_looked_through_off_the_event_loop_and_still_blocked() -> None:
    """Megabytes of non-ASCII text with escapes take request-block a good part of a
    second: a body of ``OFF_LOOP_BYTES`` or more is looked through on a thread, so the
    loop keeps serving other calls meanwhile, and its verdict is the same."""
    prose = "пароль не скажу+мой%20друг, "
    filler = prose * (request_block.OFF_LOOP_BYTES // len(prose.encode()) * 4)
    config = {"block_bodies": ["password"]}
    turns = 0
    checking = True

    async def other_calls() -> None:
        nonlocal turns
        while checking:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_calls())
    await asyncio.sleep(0)  # the ticker's first turn, before the check
    for text, expected in ((filler + "pass%77ord", True), (filler + "passport", False)):
        turns = 0
        body = json.dumps({"messages": [{"content": text}]}, ensure_ascii=False).encode()
        assert len(body) >= request_block.OFF_LOOP_BYTES
        assert await blocked(config, body=body) is expected
        assert turns > 0, "the event loop was held while the body was looked through"
    # A small body costs too little to hand to a thread: the loop looks through it.
    turns = 0
    assert await blocked(config, body=b'{"messages": [{"content": "pass%77ord"}]}')
    assert turns == 0
    checking = False
    await ticker
