"""One canonical request target (gateway/target.py, SPEC §14), through a gateway in this
process: a path is decoded once for routes, rules and API detection, and encoded once
for the provider; trailing and doubled slashes name the canonical API (masking, the
record's model and tokens); dot segments, encoded separators and undecodable bytes are
a 400 that reaches no provider; the Host is canonical before domain rules match it."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.asgi_support import RecordingUpstream, send_raw
from tollway.errors import BadRequest
from tollway.gateway import target
from tollway.testing.gateway import GatewayUnderTest

EMAIL = "bob.smith@example.com"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Write to {EMAIL} please"}]}


def gateway(upstream: RecordingUpstream, plugins: list[dict[str, Any]] | None = None, **route: Any) -> GatewayUnderTest:
    config = {
        "providers": [{"id": "p", "type": "openai", "apiTokens": ["sk-org"], "baseUrl": "http://up.test/v1"}],
        "routes": [{"name": "v1", "path_prefix": "/v1/", "provider": "p", **route}],
        "plugins": plugins or [],
    }
    return GatewayUnderTest(orjson.dumps(config).decode(), upstream=upstream)


MASKING = [{"name": "ai-data-masking", "defaultConfig": {}}]


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/chat/completions/", "/v1//chat/completions", "//v1/chat//completions//"]
)
async def test_a_trailing_or_doubled_slash_names_the_same_api(path: str) -> None:
    up = RecordingUpstream()
    gw = gateway(up, MASKING)
    r = await send_raw(gw, "POST", path.encode(), body=orjson.dumps(CHAT))
    assert r.status == 200, r.body
    (reached,) = up.seen
    assert reached.raw_path == b"/v1/chat/completions"  # the canonical path, upstream too
    assert EMAIL not in reached.body.decode()  # masking saw a chat call
    ex = gw.calls[-1]
    assert (ex.api, ex.model_requested) == ("chat", "gpt-4o-mini")
    assert (ex.usage.input_tokens, ex.usage.output_tokens) == (11, 2)


@pytest.mark.parametrize(
    "target",
    [
        b"/v1/%2e%2e/admin",
        b"/v1/%2E%2e/admin",
        b"/v1/chat/%2e/completions",
        b"/v1/../v1/chat/completions",
        b"/v1/./chat/completions",
        b"/v1/chat/completions/..",
        b"/v1/chat%2fcompletions",
        b"/v1/chat%2Fcompletions",
        b"/v1/chat%5ccompletions",
        b"/v1/chat\\completions",
        b"/v1/chat/completions%3f",
        b"/v1/chat/completions%23x",
        b"/v1/files/a?b",
        b"/v1/files/a#b",
        b"/v1/files/%ff",
        b"/v1/files/%c3",
        b"/v1/files/\xff",
        b"/v1/files/%ed%a0%80",
        b"/v1/files/%zz",
        b"/v1/files/%4",
        b"/v1/files/a%",
        b"/v1/files/%00",
        b"/v1/files/%0a",
        b"/v1/files/%7f",
        b"*",
        b"v1/chat/completions",
    ],
)
async def test_an_ambiguous_or_undecodable_path_is_a_400_that_reaches_no_provider(target: bytes) -> None:
    up = RecordingUpstream()
    gw = gateway(up)
    r = await send_raw(gw, "POST", target, body=orjson.dumps(CHAT))
    assert r.status == 400, r.body
    assert r.headers["x-tollway-reason"] == "gateway.bad_request"
    assert r.json()["error"]["code"] == "invalid_request_error"
    assert up.seen == []
    assert (gw.calls[-1].status, gw.calls[-1].reason) == (400, "gateway.bad_request")


@pytest.mark.parametrize(
    ("target", "upstream"),
    [
        # Encoded once on the way in, once on the way out: the provider decodes what we did.
        (b"/v1/files/%252e%252e%252fkeys", b"/v1/files/%252e%252e%252fkeys"),
        (b"/v1/files/%25", b"/v1/files/%25"),
        (b"/v1/files/a%20b", b"/v1/files/a%20b"),
        # What may be written either way goes in one way: unreserved bare, the rest encoded.
        (b"/v1/files/%41%7e", b"/v1/files/A~"),
        (b"/v1/files/a;b=c", b"/v1/files/a%3Bb%3Dc"),
        (b"/v1/files/caf\xc3\xa9", b"/v1/files/caf%C3%A9"),
        (b"/v1/files/caf%C3%A9", b"/v1/files/caf%C3%A9"),
        (b"/v1/models/m:generateContent@x", b"/v1/models/m:generateContent@x"),
        (b"/v1/files/.well-known/x", b"/v1/files/.well-known/x"),
        (b"/v1/files/...", b"/v1/files/..."),
    ],
)
async def test_the_provider_gets_the_path_encoded_once(target: bytes, upstream: bytes) -> None:
    up = RecordingUpstream()
    r = await send_raw(gateway(up), "GET", target)
    assert r.status == 200, r.body
    assert [s.raw_path for s in up.seen] == [upstream]


async def test_the_query_string_goes_on_as_the_client_sent_it() -> None:
    up = RecordingUpstream()
    r = await send_raw(gateway(up), "GET", b"/v1/files/x", query=b"a=%2F%2e&b=c+d&b=e")
    assert r.status == 200
    assert up.seen[0].query == b"a=%2F%2e&b=c+d&b=e"


# --- Host --------------------------------------------------------------------------------

KEY_AUTH_ON_ONE_DOMAIN = [
    {
        "name": "key-auth",
        "defaultConfig": {"keys": ["x-api-key"], "consumers": [{"name": "alice", "credential": "k-alice"}]},
        "matchRules": [{"domain": ["api.example.com"], "config": {"allow": ["alice"]}}],
    }
]


@pytest.mark.parametrize(
    "host", ["api.example.com", "API.Example.com", "api.example.com.", "API.Example.com.:8080", "api.example.com:"]
)
async def test_a_domain_rule_matches_the_host_however_it_is_written(host: str) -> None:
    up = RecordingUpstream()
    gw = gateway(up, KEY_AUTH_ON_ONE_DOMAIN)
    r = await send_raw(gw, "POST", b"/v1/chat/completions", [(b"host", host.encode())], orjson.dumps(CHAT))
    assert (r.status, r.headers["x-tollway-reason"]) == (401, "key-auth.no_key")
    assert up.seen == []
    headers = [(b"host", host.encode()), (b"x-api-key", b"k-alice")]
    r = await send_raw(gw, "POST", b"/v1/chat/completions", headers, orjson.dumps(CHAT))
    assert r.status == 200
    assert gw.calls[-1].consumer_name == "alice"


async def test_another_host_is_not_held_to_the_rule() -> None:
    gw = gateway(RecordingUpstream(), KEY_AUTH_ON_ONE_DOMAIN)
    r = await send_raw(gw, "POST", b"/v1/chat/completions", [(b"host", b"web.example.com")], orjson.dumps(CHAT))
    assert r.status == 200


async def test_a_route_for_a_domain_matches_its_canonical_host() -> None:
    up = RecordingUpstream()
    gw = gateway(up, domains=["*.example.com"])
    r = await send_raw(gw, "GET", b"/v1/files/x", [(b"host", b"Api.EXAMPLE.com.:443")])
    assert r.status == 200
    r = await send_raw(gw, "GET", b"/v1/files/x", [(b"host", b"example.org")])
    assert (r.status, r.headers["x-tollway-reason"]) == (404, "gateway.no_route")


@pytest.mark.parametrize(
    "headers",
    [
        [(b"host", b"api.example.com"), (b"host", b"web.example.com")],
        [(b"host", b"api.example.com"), (b"host", b"api.example.com")],
        [(b"host", b"api.example.com..")],
        [(b"host", b".api.example.com")],
        [(b"host", b"api..example.com")],
        [(b"host", b"api%2eexample.com")],
        [(b"host", b"api.example.com/x")],
        [(b"host", b"user@api.example.com")],
        [(b"host", b"api example.com")],
        [(b"host", b"api.example.com:80:80")],
        [(b"host", b"api.example.com:x")],
    ],
)
async def test_two_hosts_or_one_that_is_no_host_is_a_400(headers: list[tuple[bytes, bytes]]) -> None:
    up = RecordingUpstream()
    gw = gateway(up, KEY_AUTH_ON_ONE_DOMAIN)
    r = await send_raw(gw, "POST", b"/v1/chat/completions", headers, orjson.dumps(CHAT))
    assert (r.status, r.headers["x-tollway-reason"]) == (400, "gateway.bad_request")
    assert up.seen == []


async def test_an_absolute_form_target_must_name_the_host() -> None:
    up = RecordingUpstream()
    gw = gateway(up, KEY_AUTH_ON_ONE_DOMAIN)
    body = orjson.dumps(CHAT)
    r = await send_raw(gw, "POST", b"http://web.example.com/v1/chat/completions", [(b"host", b"api.example.com")], body)
    assert (r.status, r.headers["x-tollway-reason"]) == (400, "gateway.bad_request")
    # Its host is the one that counts (RFC 9112 §3.2.2): the rule for it applies.
    target = b"HTTP://API.example.com.:80/v1/chat/completions"
    r = await send_raw(gw, "POST", target, [(b"host", b"api.example.com")], body)
    assert (r.status, r.headers["x-tollway-reason"]) == (401, "key-auth.no_key")
    r = await send_raw(gw, "POST", b"http://api.example.com/v1/chat/completions", [], body)
    assert (r.status, r.headers["x-tollway-reason"]) == (401, "key-auth.no_key")
    assert up.seen == []
    r = await send_raw(gw, "POST", b"http://web.example.com/v1/%2e%2e/x", [], body)
    assert r.status == 400
    r = await send_raw(gw, "GET", b"http://web.example.com", [(b"host", b"web.example.com")])
    assert (r.status, r.headers["x-tollway-reason"]) == (404, "gateway.no_route")  # the path is "/"
    assert up.seen == []


# --- the path, for any bytes -------------------------------------------------------------

PATH_BYTES = st.lists(
    st.sampled_from([b"/", b"//", b".", b"..", b"%", b"%2e", b"%2E", b"%25", b"%2f", b"%5c", b"%ff", b"%c3%a9", b"a",
                     b"v1", b";", b":", b"@", b"+", b"~", b" ", b"\xc3\xa9", b"%41", b"%3a", b"%7e"]),
    max_size=12,
).map(lambda parts: b"/" + b"".join(parts))  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(PATH_BYTES)
def test_a_path_is_refused_or_decoded_to_a_fixed_point(raw: bytes) -> None:
    """Whatever the bytes: a 400, or a canonical path that the provider, decoding the
    encoded path once, reads as the same path; the path names no dot or empty segment."""
    try:
        path, encoded = target._path(raw)
    except BadRequest:
        return
    assert unquote(encoded, errors="strict") == path
    assert target._path(encoded.encode("ascii")) == (path, encoded)
    segments = path.split("/")[1:]
    assert path == "/" or all(s not in ("", ".", "..") for s in segments)


@pytest.mark.parametrize(
    ("path", "shape"),
    [(b"/g/v1beta/files/../files/x", "gemini"), (b"/g/v1beta/files/x%3Fy", "gemini"), (b"/v1/files/../x", "openai")],
)
async def test_a_path_refused_as_it_stands_is_answered_in_its_apis_shape(path: bytes, shape: str) -> None:
    """Under Google's /v1beta/ root every refusal is in Google's error shape: a path the
    gateway refuses before reading it further (a '..' segment, an encoded '?') was
    answered in OpenAI's (a red team's Low)."""
    r = await send_raw(gateway(RecordingUpstream()), "GET", path)
    assert r.status == 400
    error = r.json()["error"]
    if shape == "gemini":
        assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT"), error
    else:
        assert error["type"] == "invalid_request_error", error
