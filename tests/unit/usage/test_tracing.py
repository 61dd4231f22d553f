"""Which calls are traced (usage/tracing.py): a client's sampled trace is continued, an
unsampled one is left alone, anything else starts a trace of ours at ``sample_ratio``."""

from __future__ import annotations

import pytest

from tollway.headers import Headers
from tollway.usage.tracing import Sampler, traces_url

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def headers(*traceparents: str) -> Headers:
    return Headers([("host", "gw"), *(("traceparent", t) for t in traceparents)])


def test_a_sampled_client_trace_is_continued_whatever_the_ratio() -> None:
    for ratio in (0.0, 1.0):
        trace = Sampler(ratio).begin(headers(f"00-{TRACE}-{PARENT}-01"))
        assert trace is not None
        assert (trace.trace_id, trace.parent_id) == (int(TRACE, 16), int(PARENT, 16))
        assert trace.span_id not in (0, trace.parent_id)


def test_an_unsampled_client_trace_is_not_traced() -> None:
    assert Sampler(1.0).begin(headers(f"00-{TRACE}-{PARENT}-00")) is None


@pytest.mark.parametrize(
    "sent",
    [(), ("not a traceparent",), (f"00-{TRACE}-{PARENT}-01", f"00-{TRACE}-{PARENT}-01")],
    ids=["none", "invalid", "twice"],
)
def test_without_a_valid_traceparent_a_new_trace_starts(sent: tuple[str, ...]) -> None:
    sampler = Sampler(1.0)
    first, second = sampler.begin(headers(*sent)), sampler.begin(headers(*sent))
    assert first is not None and second is not None
    assert first.parent_id == 0 and first.trace_id != int(TRACE, 16)
    assert first.trace_id != second.trace_id and first.span_id != second.span_id


def test_the_ratio_decides_new_traces() -> None:
    assert all(Sampler(0.0).begin(headers()) is None for _ in range(200))
    assert all(Sampler(1.0).begin(headers()) is not None for _ in range(200))
    kept = sum(Sampler(0.25).begin(headers()) is not None for _ in range(4000))
    assert 700 < kept < 1300  # 1000 expected; the bounds are > 8 standard deviations away


def test_each_attempt_gets_a_span_of_its_own_named_in_its_traceparent() -> None:
    trace = Sampler(1.0).begin(headers(f"00-{TRACE}-{PARENT}-01"))
    assert trace is not None
    first, first_header = trace.attempt("a", "openai")
    second, second_header = trace.attempt("b", "claude")
    assert first != second and trace.span_id not in (first, second)
    assert first_header == f"00-{TRACE}-{first:016x}-01"
    assert second_header == f"00-{TRACE}-{second:016x}-01"
    assert trace.provider_types == {"a": "openai", "b": "claude"}


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example/base", "https://otel.example/base/v1/traces"),
        ("http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
    ],
)
def test_the_traces_url(endpoint: str, url: str) -> None:
    assert traces_url(endpoint) == url
