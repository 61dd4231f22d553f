"""A traced call's spans, made after the call from its usage record and its trace.

One span per call, named ``{gen_ai.operation.name} {gen_ai.request.model}`` as the
OpenTelemetry GenAI semantic conventions name an inference span (the operation alone
when the call names no model), kind SERVER, child of the client's span when the call
continued its ``traceparent``. One child per provider attempt (retries and failovers
each one), named ``attempt {provider id}``, kind CLIENT, whose span id is the parent id
the provider got in its ``traceparent``. docs/telemetry.md lists every attribute.

Timestamps are the call's wall-clock start plus the monotonic offsets the exchange took.
An attempt lasts until the provider's response headers (its ``latency_ms`` in the usage
record), except the attempt whose stream was relayed: its answer was read to the end of
the call, so its span ends with the call's.
"""

from __future__ import annotations

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from tollway.exchange import Attempt
from tollway.usage.record import CallFacts, UsageRecord

# The call's API as ``gen_ai.operation.name``: the conventions' well-known values where
# one fits, else the API's own name (a custom value, as the conventions allow).
OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
# A provider type as ``gen_ai.provider.name``: the conventions' well-known values where
# the type has one, else the type itself.
PROVIDER_NAMES = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "claude": "anthropic",
    "gemini": "gcp.gemini",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral": "mistral_ai",
}
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)

Attributes = dict[str, AttributeValue]


class _HashedOnce(Resource):
    """A resource that computes its hash once. The OTLP encoder groups spans by resource
    and so hashes it for every span, and ``Resource`` hashes by dumping its attributes
    to JSON each time: a sixth of the encoder's time, for a value that never changes."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def resource_of(service_name: str) -> Resource:
    """The spans' resource: ``service.name`` from the config, over what the SDK adds
    (its name and version, ``OTEL_RESOURCE_ATTRIBUTES``)."""
    return _HashedOnce(Resource.create({"service.name": service_name}))


def scope_of(version: str) -> InstrumentationScope:
    return InstrumentationScope("tollway", version)


def call_spans(
    facts: CallFacts, record: UsageRecord, resource: Resource, scope: InstrumentationScope
) -> list[ReadableSpan]:
    """The call's span and one per attempt (see the module). ``facts.trace`` is set."""
    trace = facts.trace
    assert trace is not None
    trace_id = trace.trace_id
    start = int(facts.start * 1e9)
    end = start + int(facts.duration_s * 1e9)
    operation = OPERATIONS.get(trace.api, trace.api)
    types = trace.provider_types
    call = SpanContext(trace_id, trace.span_id, False, _SAMPLED)
    parent = SpanContext(trace_id, trace.parent_id, True, _SAMPLED) if trace.parent_id else None

    attributes: Attributes = {"gen_ai.operation.name": operation}
    if record.provider is not None:
        attributes["gen_ai.provider.name"] = provider_name(types.get(record.provider))
    if record.model_requested is not None:
        attributes["gen_ai.request.model"] = record.model_requested
    response_model = trace.model_reported or (record.model_upstream if record.attempts else None)
    if response_model is not None:
        attributes["gen_ai.response.model"] = response_model
    if record.attempts or record.input_tokens or record.output_tokens:
        attributes["gen_ai.usage.input_tokens"] = record.input_tokens
        attributes["gen_ai.usage.output_tokens"] = record.output_tokens
    attributes["http.response.status_code"] = record.status
    attributes["tollway.request_id"] = record.request_id
    if record.consumer is not None:
        attributes["tollway.consumer"] = record.consumer
    if record.route is not None:
        attributes["tollway.route"] = record.route
    if record.reason is not None:
        attributes["tollway.reason"] = record.reason
    if record.status >= 400:
        attributes["error.type"] = record.reason or str(record.status)
    for span_name, value in _chosen_attributes(facts).items():
        attributes.setdefault(span_name, value)  # the gateway's own attributes are not replaced
    # A server's span is in error for its own failures (5xx), not for refusals (4xx).
    # (A provider's own 5xx, passed on, has no reason of the gateway's: its status says it,
    # as its attempt span's does.)
    status = Status(StatusCode.ERROR, record.reason or f"HTTP {record.status}") if record.status >= 500 else _UNSET
    name = f"{operation} {record.model_requested}" if record.model_requested else operation
    spans = [
        ReadableSpan(
            name,
            call,
            parent,
            resource,
            attributes,
            kind=SpanKind.SERVER,
            status=status,
            start_time=start,
            end_time=end,
            instrumentation_scope=scope,
        )
    ]
    attempts = record.attempts
    last = len(attempts) - 1
    for i, attempt in enumerate(attempts):
        a_start = start + int((attempt.started - trace.started) * 1e9) if attempt.started else start
        relayed = i == last and record.stream and attempt.status == 200
        a_end = end if relayed else a_start + int(attempt.latency_ms * 1e6)
        span_id = attempt.span_id or trace.new_span_id()
        spans.append(
            ReadableSpan(
                f"attempt {attempt.provider}",
                SpanContext(trace_id, span_id, False, _SAMPLED),
                call,
                resource,
                _attempt_attributes(attempt, operation, types.get(attempt.provider)),
                kind=SpanKind.CLIENT,
                status=_attempt_status(attempt),
                start_time=a_start,
                end_time=max(a_end, a_start),
                instrumentation_scope=scope,
            )
        )
    return spans


def _chosen_attributes(facts: CallFacts) -> dict[str, AttributeValue]:
    """ai-statistics attributes with ``apply_to_span``, under their span names. A span
    attribute holds a string, a number or a boolean: other values (a JSON object or
    list) go as their JSON text; a value never found is left out."""
    found = facts.attributes or {}
    chosen: dict[str, AttributeValue] = {}
    for key, name in (facts.span_attributes or {}).items():
        value = found.get(key)
        if value is None:
            continue
        chosen[name] = value if isinstance(value, str | bool | int | float) else orjson.dumps(value).decode()
    return chosen


def provider_name(provider_type: str | None) -> str:
    if provider_type is None:
        return "unknown"
    return PROVIDER_NAMES.get(provider_type, provider_type)


def _attempt_attributes(attempt: Attempt, operation: str, provider_type: str | None) -> Attributes:
    attributes: Attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider_name(provider_type),
        "tollway.provider": attempt.provider,
        "http.response.status_code": attempt.status,
    }
    if attempt.status >= 400:
        attributes["error.type"] = attempt.error or str(attempt.status)
    return attributes


def _attempt_status(attempt: Attempt) -> Status:
    if attempt.status < 400:
        return _UNSET
    return Status(StatusCode.ERROR, attempt.error or f"HTTP {attempt.status}")
