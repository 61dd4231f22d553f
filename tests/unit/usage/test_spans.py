"""A traced call's spans (usage/spans.py), made from its usage record and its trace: the
call's span with the GenAI attributes, and one child per provider attempt."""

from __future__ import annotations

import time

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from tollway.errors import Forbidden
from tollway.exchange import Attempt, Exchange
from tollway.protocols.usage import Usage
from tollway.testing.harness import make_exchange
from tollway.usage.record import facts_of, settle
from tollway.usage.spans import call_spans, provider_name, resource_of, scope_of
from tollway.usage.tracing import Sampler

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
CHAT = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
RESOURCE = resource_of("gw-test")
SCOPE = scope_of("1.2.3")


def traced_call(traceparent: str | None = f"00-{TRACE}-{PARENT}-01", body: bytes = CHAT) -> Exchange:
    headers = [("host", "gw")] + ([("traceparent", traceparent)] if traceparent else [])
    ex = make_exchange("POST", "/v1/chat/completions", headers, body=body)
    ex.trace = Sampler(1.0).begin(ex.request.headers)
    assert ex.trace is not None
    return ex


def attempt(ex: Exchange, provider: str, kind: str, status: int, after_s: float, error: str | None = None) -> int:
    assert ex.trace is not None
    span_id, _ = ex.trace.attempt(provider, kind)
    ex.attempts.append(Attempt(provider, status, 20.0, ex.started + after_s, span_id, error))
    return span_id


def spans_of(ex: Exchange) -> list[ReadableSpan]:
    facts = facts_of(ex)
    record, _ = settle(facts, None)
    return call_spans(facts, record, RESOURCE, SCOPE)


def test_the_call_span_continues_the_clients_trace_with_the_genai_attributes() -> None:
    ex = traced_call()
    span_id = attempt(ex, "openai", "openai", 200, 0.001)
    ex.provider, ex.model_upstream, ex.model_reported = "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"
    ex.status, ex.usage = 200, Usage(input_tokens=12, output_tokens=7)
    ex.route = None
    call, child = spans_of(ex)

    assert call.name == "chat gpt-4o-mini" and call.kind is SpanKind.SERVER
    assert call.context is not None and call.parent is not None
    assert call.context.trace_id == int(TRACE, 16) and call.parent.trace_id == int(TRACE, 16)
    assert call.parent.span_id == int(PARENT, 16) and call.parent.is_remote
    assert call.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 7,
        "http.response.status_code": 200,
        "tollway.request_id": "test-request",
    }
    assert call.status.status_code is StatusCode.UNSET
    assert call.resource.attributes["service.name"] == "gw-test"
    assert call.instrumentation_scope is not None and call.instrumentation_scope.name == "tollway"

    assert child.name == "attempt openai" and child.kind is SpanKind.CLIENT
    assert child.context is not None and child.context.span_id == span_id
    assert child.parent == call.context
    assert child.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "tollway.provider": "openai",
        "http.response.status_code": 200,
    }


def test_times_come_from_the_call_and_its_attempts() -> None:
    ex = traced_call()
    attempt(ex, "a", "openai", 200, 0.5)
    ex.status = 200
    time.sleep(0.01)
    facts = facts_of(ex)
    record, _ = settle(facts, None)
    call, child = call_spans(facts, record, RESOURCE, SCOPE)
    assert call.start_time == int(ex.ts * 1e9)
    assert call.end_time is not None and call.end_time - call.start_time == int(facts.duration_s * 1e9)
    assert child.start_time is not None and child.end_time is not None
    assert abs(child.start_time - (call.start_time + 500_000_000)) <= 1
    assert child.end_time - child.start_time == 20_000_000  # its latency_ms


def test_a_relayed_stream_keeps_its_attempt_open_to_the_end_of_the_call() -> None:
    ex = traced_call(body=CHAT[:-1] + b', "stream": true}')
    attempt(ex, "a", "openai", 200, 0.0)
    ex.status = 200
    time.sleep(0.03)  # the stream outlasts the attempt's 20 ms to its headers
    call, child = spans_of(ex)
    assert child.end_time == call.end_time


def test_a_failover_gives_one_span_per_attempt_with_the_failures_marked() -> None:
    ex = traced_call(traceparent=None)
    first = attempt(ex, "dead", "claude", 502, 0.001, "ai-proxy.upstream_unreachable")
    second = attempt(ex, "busy", "gemini", 503, 0.002)
    third = attempt(ex, "ok", "azure", 200, 0.003)
    ex.provider, ex.status = "ok", 200
    call, *children = spans_of(ex)

    assert call.parent is None  # no traceparent: the call began the trace
    assert call.context is not None
    assert [c.context.span_id for c in children if c.context is not None] == [first, second, third]
    assert all(c.parent == call.context for c in children)
    assert [c.name for c in children] == ["attempt dead", "attempt busy", "attempt ok"]
    assert [(c.attributes or {})["gen_ai.provider.name"] for c in children] == [
        "anthropic",
        "gcp.gemini",
        "azure.ai.openai",
    ]
    dead, busy, ok = children
    assert (dead.attributes or {})["error.type"] == "ai-proxy.upstream_unreachable"
    assert dead.status.status_code is StatusCode.ERROR
    assert dead.status.description == "ai-proxy.upstream_unreachable"
    assert (busy.attributes or {})["error.type"] == "503" and busy.status.description == "HTTP 503"
    assert "error.type" not in (ok.attributes or {}) and ok.status.status_code is StatusCode.UNSET
    assert (call.attributes or {})["gen_ai.provider.name"] == "azure.ai.openai"


def test_a_refused_call_is_one_span_with_its_reason_and_no_usage() -> None:
    ex = traced_call()
    err = Forbidden("no", reason="key-auth.forbidden")
    ex.fail(err)
    ex.status = err.status
    (call,) = spans_of(ex)
    attributes = call.attributes or {}
    assert attributes["tollway.reason"] == "key-auth.forbidden"
    assert attributes["error.type"] == "key-auth.forbidden"
    assert attributes["http.response.status_code"] == 403
    assert "gen_ai.usage.input_tokens" not in attributes and "gen_ai.provider.name" not in attributes
    assert call.status.status_code is StatusCode.UNSET  # a refusal is not the server's error


def test_a_gateway_failure_marks_the_call_span_as_an_error() -> None:
    ex = traced_call()
    attempt(ex, "a", "openai", 502, 0.001, "ai-proxy.upstream_unreachable")
    ex.provider, ex.status, ex.reason = "a", 502, "ai-proxy.upstream_unreachable"
    call, _ = spans_of(ex)
    assert call.status.status_code is StatusCode.ERROR
    assert call.status.description == "ai-proxy.upstream_unreachable"


def test_a_providers_own_5xx_passed_on_says_its_status_as_the_description() -> None:
    # A judge's Low: the call span said ERROR with no description, where its attempt's
    # said "HTTP 500".
    ex = traced_call()
    attempt(ex, "a", "openai", 500, 0.001, None)
    ex.provider, ex.status, ex.reason = "a", 500, None
    call, tried = spans_of(ex)
    assert call.status.status_code is StatusCode.ERROR
    assert call.status.description == tried.status.description == "HTTP 500"


def test_operation_names_follow_the_conventions_where_they_have_one() -> None:
    cases = {
        "/v1/embeddings": ("embeddings", b'{"model": "text-embedding-3-small", "input": "x"}'),
        "/v1/completions": ("text_completion", b'{"model": "gpt-3.5-turbo-instruct", "prompt": "x"}'),
        "/v1/messages": ("chat", b'{"model": "claude-3-5-haiku", "max_tokens": 5, "messages": []}'),
    }
    for path, (operation, body) in cases.items():
        ex = make_exchange("POST", path, [("host", "gw")], body=body)
        ex.trace = Sampler(1.0).begin(ex.request.headers)
        ex.status = 200
        (call,) = spans_of(ex)
        assert (call.attributes or {})["gen_ai.operation.name"] == operation
        assert call.name == f"{operation} {ex.model_requested}"
    ex = make_exchange("GET", "/v1/models", [("host", "gw")])
    ex.trace = Sampler(1.0).begin(ex.request.headers)
    ex.status = 200
    (call,) = spans_of(ex)
    assert call.name == "models"  # no model: the operation alone


def test_provider_names() -> None:
    assert [provider_name(t) for t in ("openai", "claude", "gemini", "azure", "mistral", "ollama", None)] == [
        "openai",
        "anthropic",
        "gcp.gemini",
        "azure.ai.openai",
        "mistral_ai",
        "ollama",
        "unknown",
    ]


def test_the_spans_encode_as_otlp_with_their_ids() -> None:
    ex = traced_call()
    span_id = attempt(ex, "a", "openai", 200, 0.001)
    ex.status = 200
    request = encode_spans(spans_of(ex))
    (resource_spans,) = request.resource_spans
    (scope_spans,) = resource_spans.scope_spans
    call, child = scope_spans.spans
    assert call.trace_id.hex() == TRACE and call.parent_span_id.hex() == PARENT
    assert child.span_id.hex() == f"{span_id:016x}" and child.parent_span_id == call.span_id
