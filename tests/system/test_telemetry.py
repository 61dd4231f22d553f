"""OpenTelemetry traces through a real gateway process (``telemetry:``): its spans reach
an OTLP/HTTP receiver started here, which decodes what the gateway's exporter posts to
``/v1/traces`` as ``ExportTraceServiceRequest`` protobufs; recording fake providers show
the ``traceparent`` each attempt carried.

Checked: the call span continues the client's trace (its trace id, the client's span as
parent) and carries the GenAI attributes, with the token counts of the call's usage
record (admin API); each attempt is a child span whose id is the parent id the provider
saw (failover and retry: one per attempt); a streamed call likewise; the provider's
name per the conventions; ``sample_ratio: 0`` exports nothing and sends the client's
headers unchanged, as telemetry off does.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.proto.trace.v1.trace_pb2 import Status as StatusProto

from tests.conftest import Proc
from tests.support.fake_provider import FakeProvider, Seen, new_request_id, serve_gateway, usage_record

CONFIG = """
storage: {{database: "sqlite:///./tollway.db"}}
{telemetry}
providers:
  - {{id: a, type: openai, baseUrl: "{fa}/v1", apiTokens: [sk-a]}}
  - {{id: b, type: openai, baseUrl: "{fb}/v1", apiTokens: [sk-b]}}
  - {{id: a-claude, type: claude, baseUrl: "{fa}", apiTokens: [sk-a-claude]}}
  - id: retrying
    type: openai
    baseUrl: "{fa}/retrying/v1"
    apiTokens: [t1, t2]
    retryOnFailure: {{enabled: true, maxRetries: 1}}
routes:
  - {{name: ab, path_prefix: /ab/v1/, providers: [a, b]}}
  - {{name: claude, path_prefix: /claude/v1/, provider: a-claude}}
  - {{name: retrying, path_prefix: /retrying/v1/, provider: retrying}}
  - {{name: stats, path_prefix: /stats/v1/, provider: a}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{{name: alice, credential: "Bearer k-alice"}}]
  - name: ai-statistics
    defaultConfigDisable: true
    matchRules:
      - ingress: [stats]
        config:
          attributes:
            - {{key: team, value_source: request_header, value: x-team, apply_to_span: true, trace_span_key: app.team}}
            - {{key: asked, value_source: request_body, value: messages, apply_to_span: true}}
            - {{key: finish, value_source: response_body, value: choices.0.finish_reason, apply_to_span: true}}
            - {{key: model, value_source: fixed_value, value: not-the-model, apply_to_span: true,
                trace_span_key: gen_ai.request.model}}
            - {{key: unseen, value_source: request_header, value: x-absent, apply_to_span: true}}
            - {{key: logged, value_source: fixed_value, value: only-logged, apply_to_log: true}}
"""
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
# The model the fakes' transcripts name in their answers (tests/fixtures/transcripts/openai).
ANSWERED_BY = "gpt-4o-mini-2024-07-18"


# --- the OTLP/HTTP receiver --------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """One received span, ids in hex."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    status: int
    status_message: str
    start_ns: int
    end_ns: int
    service_name: str


def _value(v: AnyValue) -> Any:
    field = v.WhichOneof("value")
    return getattr(v, field) if field is not None else None


class Receiver:
    """An OTLP/HTTP collector for traces: POST /v1/traces, protobuf, in a thread."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.posts: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.take(self.path, self.headers.get("content-type", ""), body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def take(self, path: str, content_type: str, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for rs in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append(
                        Span(
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            s.kind,
                            {kv.key: _value(kv.value) for kv in s.attributes},
                            s.status.code,
                            s.status.message,
                            s.start_time_unix_nano,
                            s.end_time_unix_nano,
                            resource.get("service.name", ""),
                        )
                    )
        with self._lock:
            self.posts.append(f"{path} {content_type}")
            self.spans.extend(spans)

    def of_request(self, request_id: str, within: float = 15.0) -> tuple[Span, list[Span]]:
        """The call span sent with ``x-request-id: request_id`` and its children, in
        the order they started; waits for them (spans are exported in batches)."""
        deadline = time.monotonic() + within
        while True:
            with self._lock:
                calls = [s for s in self.spans if s.attributes.get("tollway.request_id") == request_id]
                if calls:
                    (call,) = calls
                    children = [s for s in self.spans if s.parent_span_id == call.span_id]
                    return call, sorted(children, key=lambda s: s.start_ns)
            if time.monotonic() > deadline:
                raise AssertionError(f"no span for request {request_id} within {within} s")
            time.sleep(0.05)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeProvider, FakeProvider]]:
    with FakeProvider() as fa, FakeProvider() as fb:
        yield fa, fb


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def start(fakes: tuple[FakeProvider, FakeProvider], folder: Any, telemetry: str) -> Proc:
    fa, fb = fakes
    return serve_gateway(folder, CONFIG.format(telemetry=telemetry, fa=fa.url, fb=fb.url))


@pytest.fixture(scope="module")
def gw(
    fakes: tuple[FakeProvider, FakeProvider], receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proc]:
    telemetry = f'telemetry: {{otlp_endpoint: "{receiver.url}", service_name: tollway-test}}'
    proc = start(fakes, tmp_path_factory.mktemp("telemetry"), telemetry)
    yield proc
    assert proc.stop() == 0


@pytest.fixture(autouse=True)
def fresh_fakes(fakes: tuple[FakeProvider, FakeProvider]) -> None:
    for fake in fakes:
        fake.reset()


def call(
    gw: Proc, path: str, traceparent: str | None = None, extra: dict[str, str] | None = None, **body: Any
) -> tuple[str, httpx.Response]:
    request_id = new_request_id()
    headers = {"authorization": "Bearer k-alice", "x-request-id": request_id, "tracestate": "vendor=opaque"}
    headers.update(extra or {})
    if traceparent is not None:
        headers["traceparent"] = traceparent
    r = httpx.post(gw.url + path, json={**CHAT, **body}, headers=headers, timeout=30)
    return request_id, r


def parent_seen(seen: Seen) -> tuple[str, str]:
    """The (trace id, parent id) of the ``traceparent`` a provider got."""
    value = seen.header("traceparent")
    assert value is not None, "the provider got no traceparent"
    version, trace_id, parent_id, flags = value.split("-")
    assert (version, flags) == ("00", "01"), value
    return trace_id, parent_id


# --- the tests ------------------------------------------------------------------------------


def test_a_call_continues_the_clients_trace_with_the_genai_attributes(
    gw: Proc, receiver: Receiver, fakes: tuple[FakeProvider, FakeProvider]
) -> None:
    fa, _ = fakes
    request_id, r = call(gw, "/ab/v1/chat/completions", f"00-{TRACE}-{CLIENT_SPAN}-01")
    assert r.status_code == 200, r.text
    record = usage_record(gw, request_id)
    span, (attempt,) = receiver.of_request(request_id)

    assert span.name == "chat gpt-4o-mini"
    assert (span.trace_id, span.parent_span_id) == (TRACE, CLIENT_SPAN)
    assert span.kind == SpanProto.SPAN_KIND_SERVER and span.service_name == "tollway-test"
    assert span.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": ANSWERED_BY,
        "gen_ai.usage.input_tokens": record["input_tokens"],
        "gen_ai.usage.output_tokens": record["output_tokens"],
        "http.response.status_code": 200,
        "tollway.request_id": request_id,
        "tollway.consumer": "alice",
        "tollway.route": "ab",
    }
    assert record["input_tokens"] > 0 and record["output_tokens"] > 0
    assert span.start_ns < span.end_ns
    said = f"tollway: telemetry: spans to {receiver.url}/v1/traces as service 'tollway-test', 100% of the calls"
    assert any(line.startswith(said) for line in gw.stderr_lines), gw.stderr_lines

    # The provider continued the trace from the attempt's span, with the client's tracestate.
    (seen,) = fa.seen
    assert parent_seen(seen) == (TRACE, attempt.span_id)
    assert seen.header("tracestate") == "vendor=opaque"
    assert attempt.name == "attempt a" and attempt.trace_id == TRACE
    assert attempt.kind == SpanProto.SPAN_KIND_CLIENT
    assert attempt.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "tollway.provider": "a",
        "http.response.status_code": 200,
    }
    assert span.start_ns <= attempt.start_ns <= attempt.end_ns <= span.end_ns


def test_ai_statistics_attributes_with_apply_to_span_are_on_the_call_span(gw: Proc, receiver: Receiver) -> None:
    request_id, r = call(gw, "/stats/v1/chat/completions", extra={"x-team": "search"})
    assert r.status_code == 200, r.text
    span, _ = receiver.of_request(request_id)
    chosen = {k: v for k, v in span.attributes.items() if not k.startswith(("gen_ai.", "tollway.", "http."))}
    # Under trace_span_key, else the key; a JSON value as its text; a value never found,
    # and an attribute only for the log, are not there.
    assert chosen == {
        "app.team": "search",
        "asked": '[{"role":"user","content":"What is the capital of France?"}]',
        "finish": "stop",
    }
    # A span name the gateway sets itself keeps the gateway's value.
    assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    # Acted on, so not warned about as ignored.
    assert not any("apply_to_span" in line for line in gw.stderr_lines), gw.stderr_lines


def test_a_failover_gives_one_attempt_span_per_provider(
    gw: Proc, receiver: Receiver, fakes: tuple[FakeProvider, FakeProvider]
) -> None:
    fa, fb = fakes
    fa.next_answers(503)
    request_id, r = call(gw, "/ab/v1/chat/completions", f"00-{TRACE}-{CLIENT_SPAN}-01")
    assert r.status_code == 200, r.text
    span, (first, second) = receiver.of_request(request_id)
    assert [a["provider"] for a in usage_record(gw, request_id)["attempts"]] == ["a", "b"]
    assert (first.name, second.name) == ("attempt a", "attempt b")
    assert parent_seen(fa.seen[0]) == (TRACE, first.span_id)
    assert parent_seen(fb.seen[0]) == (TRACE, second.span_id)
    assert first.attributes["http.response.status_code"] == 503 and first.attributes["error.type"] == "503"
    assert first.status == StatusProto.STATUS_CODE_ERROR
    assert second.attributes["http.response.status_code"] == 200 and "error.type" not in second.attributes
    assert span.attributes["gen_ai.provider.name"] == "openai" and span.status == StatusProto.STATUS_CODE_UNSET


def test_a_retry_gives_one_attempt_span_per_try(
    gw: Proc, receiver: Receiver, fakes: tuple[FakeProvider, FakeProvider]
) -> None:
    fa, _ = fakes
    fa.next_answers(503)
    request_id, r = call(gw, "/retrying/v1/chat/completions")
    assert r.status_code == 200, r.text
    span, attempts = receiver.of_request(request_id)
    assert span.parent_span_id == ""  # no traceparent: the call began the trace
    assert [a.name for a in attempts] == ["attempt retrying", "attempt retrying"]
    assert [parent_seen(s) for s in fa.seen] == [(span.trace_id, a.span_id) for a in attempts]
    assert [a.attributes["http.response.status_code"] for a in attempts] == [503, 200]
    assert fa.seen[0].header("tracestate") is None  # the client's belongs to no trace continued


def test_a_streamed_call(gw: Proc, receiver: Receiver, fakes: tuple[FakeProvider, FakeProvider]) -> None:
    fa, _ = fakes
    request_id, r = call(gw, "/ab/v1/chat/completions", f"00-{TRACE}-{CLIENT_SPAN}-01", stream=True)
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]"), r.text
    record = usage_record(gw, request_id)
    span, (attempt,) = receiver.of_request(request_id)
    assert (span.trace_id, span.parent_span_id) == (TRACE, CLIENT_SPAN)
    assert span.attributes["gen_ai.usage.input_tokens"] == record["input_tokens"] > 0
    assert span.attributes["gen_ai.usage.output_tokens"] == record["output_tokens"] > 0
    assert span.attributes["gen_ai.response.model"] == ANSWERED_BY
    assert parent_seen(fa.seen[0]) == (TRACE, attempt.span_id)
    assert attempt.end_ns == span.end_ns  # the relayed stream was read to the end of the call


def test_a_stream_broken_off_names_the_model_its_chunks_named(
    gw: Proc, receiver: Receiver, fakes: tuple[FakeProvider, FakeProvider]
) -> None:
    """A judge's Low: a stream that ended before its usage chunk (the client left, the
    provider broke off) named the model sent, not the one its chunks named."""
    fa, _ = fakes
    fa.next_answers("drop")
    request_id, r = call(gw, "/ab/v1/chat/completions", stream=True)
    assert r.status_code == 200 and "data: [DONE]" not in r.text, r.text
    span, _ = receiver.of_request(request_id)
    assert span.attributes["gen_ai.response.model"] == ANSWERED_BY


def test_a_translated_call_names_the_provider_per_the_conventions(
    gw: Proc, receiver: Receiver, fakes: tuple[FakeProvider, FakeProvider]
) -> None:
    fa, _ = fakes
    request_id, r = call(gw, "/claude/v1/chat/completions", f"00-{TRACE}-{CLIENT_SPAN}-01")
    assert r.status_code == 200, r.text
    span, (attempt,) = receiver.of_request(request_id)
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    assert attempt.attributes["gen_ai.provider.name"] == "anthropic"
    assert attempt.attributes["tollway.provider"] == "a-claude"
    assert parent_seen(fa.seen[0]) == (TRACE, attempt.span_id)


def test_a_refused_call_is_one_span_with_its_reason(gw: Proc, receiver: Receiver) -> None:
    request_id = new_request_id()
    r = httpx.post(gw.url + "/ab/v1/chat/completions", json=CHAT, headers={"x-request-id": request_id}, timeout=30)
    assert r.status_code == 401
    span, children = receiver.of_request(request_id)
    assert children == []
    assert span.attributes["tollway.reason"] == usage_record(gw, request_id)["reason"]
    assert span.attributes["http.response.status_code"] == 401
    assert receiver.posts[0].startswith("/v1/traces application/x-protobuf")


@pytest.mark.parametrize(
    "telemetry",
    ["", "telemetry: {{otlp_endpoint: '{url}', sample_ratio: 0}}"],
    ids=["telemetry-off", "sample-ratio-0"],
)
def test_an_untraced_call_exports_nothing_and_passes_the_clients_traceparent(
    telemetry: str,
    fakes: tuple[FakeProvider, FakeProvider],
    tmp_path: Any,
) -> None:
    fa, _ = fakes
    with Receiver() as own:
        proc = start(fakes, tmp_path, telemetry.format(url=own.url))
        try:
            sent = "not-a-traceparent-of-any-kind"
            _, r = call(proc, "/ab/v1/chat/completions", sent)
            assert r.status_code == 200, r.text
            _, r = call(proc, "/ab/v1/chat/completions")
            assert r.status_code == 200, r.text
        finally:
            assert proc.stop() == 0  # a stop sends what waits: nothing may wait
        assert own.spans == []
    assert fa.seen[0].header("traceparent") == sent and fa.seen[0].header("tracestate") == "vendor=opaque"
    assert fa.seen[1].header("traceparent") is None
