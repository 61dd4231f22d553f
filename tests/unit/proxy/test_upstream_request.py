"""What reaches the provider (proxy/upstream_request.py, SPEC §14), through a gateway in
this process: the headers that choose the organisation's provider account go only where
the provider's ``pass_headers`` names them; X-Mse-Consumer, in any spelling, comes only
from the gateway; a decoded body goes without its Content-Encoding; a traced call sends
its own ``traceparent``, any other the client's."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest

from tests.support.asgi_support import RecordingUpstream, send_raw
from tollway.testing.gateway import GatewayUnderTest

CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def gateway(
    upstream: RecordingUpstream, plugins: list[dict[str, Any]] | None = None, telemetry: dict[str, Any] | None = None
) -> GatewayUnderTest:
    base = {"type": "openai", "apiTokens": ["sk-org"], "baseUrl": "http://up.test/v1"}
    config = {
        "providers": [
            {"id": "plain", **base},
            {"id": "passing", **base, "pass_headers": ["OpenAI-Organization", "openai_project"]},
            {"id": "claude", "type": "claude", "apiTokens": ["sk-ant"], "baseUrl": "http://up.test"},
        ],
        "routes": [
            {"name": "plain", "path_prefix": "/v1/", "provider": "plain"},
            {"name": "passing", "path_prefix": "/passing/v1/", "provider": "passing"},
            {"name": "claude", "path_prefix": "/claude/v1/", "provider": "claude"},
        ],
        "plugins": plugins or [],
        "telemetry": telemetry or {},
    }
    return GatewayUnderTest(orjson.dumps(config).decode(), upstream=upstream)


CLAUDE_ANSWER = orjson.dumps(
    {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "end_turn",
     "content": [{"type": "text", "text": "ok"}], "usage": {"input_tokens": 3, "output_tokens": 1}}
)  # fmt: skip
ACCOUNT = [
    (b"openai-organization", b"org-attacker"),
    (b"openai-project", b"proj-attacker"),
    (b"openai_organization", b"org-underscored"),
    (b"openai_project", b"proj-underscored"),
]


@pytest.mark.parametrize("route", [b"/v1", b"/claude/v1"])
async def test_the_account_headers_are_withheld_by_default(route: bytes) -> None:
    up = RecordingUpstream()
    if route == b"/claude/v1":  # (Claude answers as Claude does)
        up.body = CLAUDE_ANSWER
    r = await send_raw(gateway(up), "POST", route + b"/chat/completions", [(b"host", b"gw"), *ACCOUNT], CHAT)
    assert r.status == 200, r.body
    names = up.seen[0].names()
    assert not names & {"openai-organization", "openai-project", "openai_organization", "openai_project"}


async def test_pass_headers_lets_them_through() -> None:
    up = RecordingUpstream()
    r = await send_raw(gateway(up), "POST", b"/passing/v1/chat/completions", [(b"host", b"gw"), *ACCOUNT], CHAT)
    assert r.status == 200, r.body
    reached = up.seen[0]
    assert reached.header("openai-organization") == "org-attacker"
    assert reached.header("openai-project") == "proj-attacker"
    assert reached.header("openai_project") == "proj-underscored"


KEY_AUTH = [
    {
        "name": "key-auth",
        "defaultConfig": {"keys": ["x-api-key"], "consumers": [{"name": "alice", "credential": "k-alice"}]},
    }
]
SPELLINGS = ("x-mse-consumer", "x_mse_consumer", "x-mse_consumer", "x_mse-consumer")
SPOOFED = [(name.encode(), b"mallory") for name in SPELLINGS]


async def test_a_client_cannot_name_the_consumer_in_any_spelling() -> None:
    up = RecordingUpstream()
    gw = gateway(up, KEY_AUTH)
    headers = [(b"host", b"gw"), (b"x-api-key", b"k-alice"), *SPOOFED]
    r = await send_raw(gw, "POST", b"/v1/chat/completions", headers, CHAT)
    assert r.status == 200, r.body
    reached = up.seen[0]
    assert [v for k, v in reached.headers if k == "x-mse-consumer"] == ["alice"]  # once: the plugins' copy stays here
    assert not reached.names() & {"x_mse_consumer", "x-mse_consumer", "x_mse-consumer"}
    # The plugins saw only the consumer key-auth named, none of the client's.
    seen = [(name, value) for name, value in gw.calls[-1].request.headers if name.startswith(("x-mse", "x_mse"))]
    assert seen == [("x-mse-consumer", "alice")]


async def test_without_an_auth_plugin_no_consumer_reaches_the_provider() -> None:
    up = RecordingUpstream()
    r = await send_raw(gateway(up), "POST", b"/v1/chat/completions", [(b"host", b"gw"), *SPOOFED], CHAT)
    assert r.status == 200
    assert not {n for n in up.seen[0].names() if "mse" in n}


async def test_a_decoded_body_goes_without_its_coding_and_with_its_length() -> None:
    up = RecordingUpstream()
    headers = [(b"host", b"gw"), (b"content-encoding", b"gzip")]
    r = await send_raw(gateway(up), "POST", b"/v1/chat/completions", headers, gzip.compress(CHAT))
    assert r.status == 200
    reached = up.seen[0]
    assert reached.body == CHAT
    assert reached.header("content-encoding") is None
    assert reached.header("content-length") in (None, str(len(CHAT)))


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TELEMETRY = {"otlp_endpoint": "http://collector.test:4318"}


def trace_headers(traceparent: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"gw"), (b"traceparent", traceparent.encode()), (b"tracestate", b"vendor=opaque")]


@pytest.mark.parametrize("route", [b"/v1", b"/claude/v1"])
async def test_a_traced_call_sends_its_attempts_span_as_the_parent(route: bytes) -> None:
    up = RecordingUpstream()
    if route == b"/claude/v1":
        up.body = CLAUDE_ANSWER
    gw = gateway(up, telemetry=TELEMETRY)
    headers = trace_headers(f"00-{TRACE}-{CLIENT_SPAN}-01")
    r = await send_raw(gw, "POST", route + b"/chat/completions", headers, CHAT)
    assert r.status == 200, r.body
    (attempt,) = gw.calls[-1].attempts
    assert up.seen[0].header("traceparent") == f"00-{TRACE}-{attempt.span_id:016x}-01"
    assert up.seen[0].header("tracestate") == "vendor=opaque"  # it belongs to the trace continued
    trace = gw.calls[-1].trace
    assert trace is not None and trace.parent_id == int(CLIENT_SPAN, 16)
    assert attempt.span_id not in (0, trace.span_id, trace.parent_id)


async def test_an_invalid_traceparent_starts_a_new_trace_without_the_clients_tracestate() -> None:
    up = RecordingUpstream()
    gw = gateway(up, telemetry=TELEMETRY)
    r = await send_raw(gw, "POST", b"/v1/chat/completions", trace_headers(f"00-{TRACE.upper()}-{CLIENT_SPAN}-01"), CHAT)
    assert r.status == 200, r.body
    trace = gw.calls[-1].trace
    assert trace is not None and trace.parent_id == 0
    (attempt,) = gw.calls[-1].attempts
    assert up.seen[0].header("traceparent") == f"00-{trace.trace_id:032x}-{attempt.span_id:016x}-01"
    assert up.seen[0].header("tracestate") is None


@pytest.mark.parametrize(
    ("telemetry", "traceparent"),
    [
        (None, f"00-{TRACE}-{CLIENT_SPAN}-01"),  # telemetry off
        (TELEMETRY, f"00-{TRACE}-{CLIENT_SPAN}-00"),  # the client's trace is not sampled
        ({**TELEMETRY, "sample_ratio": 0}, "not-a-traceparent"),  # a new trace, not sampled
    ],
    ids=["off", "unsampled-client-trace", "unsampled-new-trace"],
)
async def test_an_untraced_call_passes_the_clients_trace_headers_unchanged(
    telemetry: dict[str, Any] | None, traceparent: str
) -> None:
    up = RecordingUpstream()
    gw = gateway(up, telemetry=telemetry)
    r = await send_raw(gw, "POST", b"/v1/chat/completions", trace_headers(traceparent), CHAT)
    assert r.status == 200, r.body
    assert gw.calls[-1].trace is None
    assert up.seen[0].header("traceparent") == traceparent
    assert up.seen[0].header("tracestate") == "vendor=opaque"
    assert gw.calls[-1].attempts[0].span_id == 0


async def test_the_consumers_key_goes_upstream_in_no_spelling_of_a_name_key_auth_reads() -> None:
    """Read from its Authorization header, a key also sent as ``?x_api_key=`` or
    ``?APIKEY=`` (spellings a server may take for the names key-auth reads) must not
    reach the provider either; other parameters pass."""
    key = "key-of-alice-123"
    auth = {"name": "key-auth", "defaultConfig": {"keys": ["authorization", "x-api-key", "apikey"],
            "consumers": [{"name": "alice", "credential": key}]}}  # fmt: skip
    up = RecordingUpstream()
    spellings = f"x_api_key={key}&APIKEY={key}&X-Api-Key={key}&x.api.key={key}&x+api+key={key}&apikey[]={key}"
    query = (spellings + f"&apikey%00x={key}&keep=1").encode()  # (PHP reads ., a space and [] its own ways)
    headers = [(b"host", b"gw"), (b"authorization", f"Bearer {key}".encode()), (b"x_api_key", key.encode()),
               (b"apikey", key.encode())]  # fmt: skip
    r = await send_raw(gateway(up, [auth]), "POST", b"/v1/chat/completions", headers, CHAT, query=query)
    assert r.status == 200, r.body
    reached = up.seen[0]
    assert reached.query == b"keep=1"
    assert key.encode() not in reached.body and all(key not in v for _, v in reached.headers)


async def test_the_consumers_key_goes_upstream_under_no_name_at_all() -> None:
    """A key also sent under names key-auth does not read (``?key=``, ``?api_key=``, a
    custom header, inside a cookie) never reaches the provider; what does not hold the key
    passes, so does the key's owner's name."""
    key = "key-of-alice-456"
    auth = {"name": "key-auth", "defaultConfig": {"keys": ["authorization"],
            "consumers": [{"name": "alice", "credential": key}]}}  # fmt: skip
    up = RecordingUpstream()
    query = f"key={key}&api_key={key}&keep=1".encode()
    headers = [(b"host", b"gw"), (b"authorization", f"Bearer {key}".encode()), (b"x-my-token", key.encode()),
               (b"cookie", f"session=1; k={key}".encode()), (b"x-other", b"kept")]  # fmt: skip
    r = await send_raw(gateway(up, [auth]), "POST", b"/v1/chat/completions", headers, CHAT, query=query)
    assert r.status == 200, r.body
    reached = up.seen[0]
    assert reached.query == b"keep=1"
    assert all(key not in v for _, v in reached.headers)
    assert reached.header("x-other") == "kept" and reached.header("x-mse-consumer") == "alice"


async def test_a_short_key_is_stripped_only_as_a_whole_value() -> None:
    """A two-character key found inside other values would take them with it: only a
    header or parameter that is the key itself is left off."""
    auth = {"name": "key-auth", "defaultConfig": {"keys": ["authorization"],
            "consumers": [{"name": "bob", "credential": "k1"}]}}  # fmt: skip
    up = RecordingUpstream()
    headers = [(b"host", b"gw"), (b"authorization", b"Bearer k1"), (b"x-my-token", b"k1"),
               (b"user-agent", b"sdk-k1-client")]  # fmt: skip
    r = await send_raw(gateway(up, [auth]), "POST", b"/v1/chat/completions", headers, CHAT,
                       query=b"key=k1&page=k12")  # fmt: skip
    assert r.status == 200, r.body
    reached = up.seen[0]
    assert reached.query == b"page=k12"
    assert reached.header("user-agent") == "sdk-k1-client" and reached.header("x-my-token") is None


async def test_another_protocols_answer_from_a_translated_provider_is_a_502_and_estimated() -> None:
    """A claude provider whose baseUrl answered OpenAI's shape: read as Claude's, it was
    an empty 200 that reported no usage and estimated none (a judge's finding)."""
    up = RecordingUpstream()  # (its answer: OpenAI's chat completion)
    gw = gateway(up)
    r = await send_raw(gw, "POST", b"/claude/v1/chat/completions", [(b"host", b"gw")], CHAT)
    assert (r.status, r.headers["x-tollway-reason"]) == (502, "ai-proxy.bad_upstream_response")
    assert b"not one of the anthropic protocol" in r.body
    usage = gw.calls[-1].usage
    assert usage.estimated and usage.input_tokens > 0
