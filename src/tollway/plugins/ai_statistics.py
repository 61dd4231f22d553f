"""ai-statistics (UNSPECIFIED, 200): attributes added to the usage record and the log.

Usage itself (tokens, cost, latency) is recorded for every call whether or not this
plugin is configured; what it adds is Higress's ``attributes``: values taken from the
request or the answer, kept in the record's ``attributes``; with ``apply_to_log`` in
the access-log line too, and with ``apply_to_span`` on the call's span (telemetry on),
named ``trace_span_key`` or else the key.

    attributes:
      - {key: team, value_source: request_header, value: x-team, apply_to_log: true}
      - {key: user, value_source: request_body, value: user, default_value: anonymous}
      - {key: finish, value_source: response_body, value: choices.0.finish_reason}
      - {key: text, value_source: response_streaming_body, value: choices.0.delta.content, rule: append}

``value`` is a literal (``fixed_value``), a header name (``request_header``,
``response_header``) or a JSON path (the bodies; see ``json_path``).
``response_body`` reads a whole (non-streamed) answer, ``response_streaming_body``
each event of a streamed one under ``rule``: ``first`` keeps the first value found,
``replace`` the last, ``append`` joins them all. A value never found takes
``default_value`` when one is given, else the key is left out. Strings are cut to
``value_length_limit`` characters.

Built-in keys need no ``value_source``: ``question`` (the last user message),
``system`` (the system prompt), ``answer`` (the reply text, streamed or not),
``reasoning`` (``reasoning_content``), ``tool_calls`` (the answer's tool calls in
OpenAI's shape, a stream's arguments joined per index), ``reasoning_tokens``,
``cached_tokens``, ``input_token_details`` and ``output_token_details`` (the usage's
details as objects).

"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, model_validator

from tollway.errors import GatewayError
from tollway.exchange import Exchange, Reply, StateKey
from tollway.plugin import Phase, Plugin, PluginConfig, Scope
from tollway.plugins.json_path import MISSING, PathError, get, parse
from tollway.protocols.sse import SseEvent
from tollway.services import Services

Source = Literal[
    "fixed_value", "request_header", "request_body", "response_header", "response_body", "response_streaming_body"
]
BUILTIN_KEYS = (
    "question", "system", "answer", "reasoning", "tool_calls",
    "reasoning_tokens", "cached_tokens", "input_token_details", "output_token_details",
)  # fmt: skip
# The built-ins read from the answer, whole or streamed.
_ANSWER_KEYS = frozenset({"answer", "reasoning", "tool_calls"})
JsonValue = str | int | float | bool | None


class AttributeConfig(PluginConfig):
    key: str = Field(min_length=1)
    value_source: Source | None = None
    value: str = ""
    default_value: JsonValue = None
    rule: Literal["first", "replace", "append"] | None = None
    apply_to_log: bool = False
    apply_to_span: bool = False
    trace_span_key: str | None = None
    # Higress's: its own access-log field for the attribute. Tollway's records keep every
    # attribute apart already (``ignored``).
    as_separate_log_field: bool | None = None

    def ignored(self) -> list[str]:
        if self.as_separate_log_field:
            return ["as_separate_log_field: no effect; every attribute is its own field of the record"]
        return []

    @model_validator(mode="after")
    def _check(self) -> AttributeConfig:
        if self.value_source is None:
            if self.key not in BUILTIN_KEYS:
                raise ValueError(
                    f"value_source is required (key {self.key!r} is not a built-in: {', '.join(BUILTIN_KEYS)})"
                )
            return self
        if self.value_source != "fixed_value" and not self.value:
            raise ValueError(f"value is required for value_source {self.value_source}")
        if self.value_source in ("request_body", "response_body", "response_streaming_body"):
            try:
                parse(self.value)
            except PathError as exc:
                raise ValueError(f"value: {exc}") from None
        if self.value_source == "response_streaming_body" and self.rule is None:
            raise ValueError("rule (first, replace or append) is required for response_streaming_body")
        return self


def _logged(key: str, **source: str) -> AttributeConfig:
    return AttributeConfig.model_validate({"key": key, "apply_to_log": True, **source})


# Higress's canned attribute sets, as far as Tollway has their keys, all logged: the whole
# conversation (``use_default_attributes``) and the light one
# (``use_default_response_attributes``), each with the keys it lacks here.
_FULL_SET = (
    _logged("messages", value_source="request_body", value="messages"),
    *(_logged(key) for key in BUILTIN_KEYS),
)
_LIGHT_SET = tuple(
    _logged(key) for key in ("reasoning_tokens", "cached_tokens", "input_token_details", "output_token_details")
)
# Where Higress applies a canned set when enable_path_suffixes is not given.
_CANNED_SET_SUFFIXES = ("/completions", "/messages")


class AiStatisticsConfig(PluginConfig):
    attributes: list[AttributeConfig] = []
    # Higress's canned sets: replace ``attributes`` (the full one wins when both are set).
    use_default_attributes: bool = False
    use_default_response_attributes: bool = False
    value_length_limit: int = Field(4000, gt=0)
    # Only calls whose path ends with one of these get attributes; unset or "*": all
    # (unset with a canned set: /completions and /messages, as in Higress).
    enable_path_suffixes: list[str] | None = None
    # Higress's fields that Tollway accepts and does not act on (``ignored``): it always
    # reads the usage (limits, budgets and records need it), takes every content type,
    # and has no session attribute.
    disable_openai_usage: bool | None = None
    enable_content_types: list[str] | None = None
    session_id_header: str | None = None

    # A rule giving its own attributes drops the default's canned set, and the reverse.
    replaced_together: ClassVar[tuple[frozenset[str], ...]] = (
        frozenset({"attributes", "use_default_attributes", "use_default_response_attributes"}),
    )

    def canned(self) -> str | None:
        """The canned set in use, by its field's name, or None."""
        if self.use_default_attributes:
            return "use_default_attributes"
        return "use_default_response_attributes" if self.use_default_response_attributes else None

    def effective_attributes(self) -> list[AttributeConfig]:
        """The attributes recorded: the canned set's, or ``attributes``."""
        canned = self.canned()
        if canned is None:
            return list(self.attributes)
        return list(_FULL_SET if canned == "use_default_attributes" else _LIGHT_SET)

    def path_suffixes(self) -> tuple[str, ...] | None:
        """The path suffixes that get attributes; None: every path."""
        suffixes = self.enable_path_suffixes
        if suffixes is None:
            return _CANNED_SET_SUFFIXES if self.canned() else None
        return None if "*" in suffixes else tuple(suffixes)

    def ignored(self) -> list[str]:
        said = [
            f"attributes[{i}].trace_span_key: ignored without apply_to_span: true"
            for i, a in enumerate(self.attributes)
            if a.trace_span_key and not a.apply_to_span
        ]
        canned = self.canned()
        if canned is not None and self.attributes:
            said.append(f"attributes: ignored with {canned}: true, as in Higress")
        said += [f"{name}: {reason}" for name, reason in _HIGRESS_IGNORED.items() if _acts(name, getattr(self, name))]
        for i, attribute in enumerate(self.attributes):
            said.extend(f"attributes[{i}].{line}" for line in attribute.ignored())
        return said


def _acts(name: str, value: object) -> bool:
    """Whether a Higress field given asks for what Tollway does not do (its own default,
    or every content type, asks for nothing)."""
    if value is None or value is False:
        return False
    return not (name == "enable_content_types" and value == ["*"])


_HIGRESS_IGNORED = {
    "disable_openai_usage": "no effect; the usage is always read (limits, budgets and records need it)",
    "enable_content_types": "no effect; answers of every content type are read",
    "session_id_header": "no effect; no session attribute is recorded (add a request_header attribute)",
}


class _Attr:
    """One attribute, compiled: its JSON path split once per snapshot."""

    __slots__ = ("default", "key", "name", "path", "rule")

    def __init__(self, cfg: AttributeConfig) -> None:
        self.key = cfg.key
        self.name = cfg.value.lower()
        self.path = (
            parse(cfg.value) if cfg.value_source in ("request_body", "response_body", "response_streaming_body") else ()
        )
        self.rule = cfg.rule or "first"
        self.default = cfg.default_value


# Request headers that carry credentials of some kind: an attribute read from one keeps
# ``REDACTED``, as does one whose value holds the consumer's key (key-auth may read it
# from any header).
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie"}
)
REDACTED = "[redacted]"


def _put(ex: Exchange, key: str, value: Any) -> None:
    if ex.attributes is None:
        ex.attributes = {}
    ex.attributes[key] = value


def _put_found(ex: Exchange, attrs: list[_Attr], document: Any) -> None:
    """Each attribute whose path is found in ``document`` (a parsed JSON body)."""
    for a in attrs:
        value = get(document, a.path)
        if value is not MISSING:
            _put(ex, a.key, value)


def _put_streamed(ex: Exchange, key: str, value: Any, rule: str) -> None:
    attrs = ex.attributes
    if attrs is None:
        attrs = ex.attributes = {}
    if rule == "first":
        attrs.setdefault(key, value)
    elif rule == "append" and key in attrs:
        attrs[key] = f"{attrs[key]}{value}"
    else:
        attrs[key] = value


def _text(content: Any) -> str | None:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(parts) if parts else None
    return None


def _question_and_system(body: Any) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    messages = body.get("messages")
    question = system = None
    if isinstance(messages, list):
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "user":
                question = _text(m.get("content"))
                break
        for m in messages:
            if isinstance(m, dict) and m.get("role") in ("system", "developer"):
                system = _text(m.get("content"))
                break
    if system is None:
        system = _text(body.get("system"))  # Anthropic's top-level system prompt
    if question is None and isinstance(body.get("prompt"), str):
        question = body["prompt"]
    return question, system


def _answer(body: Any) -> tuple[str | None, str | None]:
    """The reply text and reasoning of a whole OpenAI- or Anthropic-shaped answer."""
    if not isinstance(body, dict):
        return None, None
    choice = get(body, ("choices", "0"))
    if isinstance(choice, dict):
        msg = choice.get("message")
        if isinstance(msg, dict):
            reasoning = msg.get("reasoning_content")
            return _text(msg.get("content")), reasoning if isinstance(reasoning, str) else None
        return (choice["text"] if isinstance(choice.get("text"), str) else None), None
    return _text(body.get("content")), None


def _tool_calls(body: Any) -> list[Any] | None:
    """The tool calls of a whole OpenAI- or Anthropic-shaped answer, in OpenAI's shape
    (an Anthropic ``tool_use`` block's ``input`` as its arguments' JSON text)."""
    if not isinstance(body, dict):
        return None
    choice = get(body, ("choices", "0"))
    if isinstance(choice, dict):
        calls = get(choice, ("message", "tool_calls"))
        return calls if isinstance(calls, list) and calls else None
    content = body.get("content")
    if not isinstance(content, list):
        return None
    calls = [
        _call(block.get("id"), block.get("name"), orjson.dumps(block.get("input", {})).decode())
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_use"
    ]
    return calls or None


def _call(call_id: Any, name: Any, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


class _StreamedCalls:
    """A stream's tool calls as they come: OpenAI's ``delta.tool_calls`` (arguments in
    pieces, by ``index``) or Anthropic's ``tool_use`` blocks and their
    ``input_json_delta``s (by block index)."""

    __slots__ = ("calls", "started")

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, Any]] = {}
        self.started: dict[int, str] = {}

    def feed(self, event: dict[str, Any]) -> None:
        pieces = get(event, ("choices", "0", "delta", "tool_calls"))
        if isinstance(pieces, list):
            for piece in pieces:
                if isinstance(piece, dict) and isinstance(piece.get("index"), int):
                    given = piece.get("function")
                    fn: dict[str, Any] = given if isinstance(given, dict) else {}
                    call = self.calls.setdefault(piece["index"], _call(None, None, ""))
                    call["id"] = piece.get("id") or call["id"]
                    call["function"]["name"] = fn.get("name") or call["function"]["name"]
                    if isinstance(fn.get("arguments"), str):
                        call["function"]["arguments"] += fn["arguments"]
            return
        index = event.get("index")
        if not isinstance(index, int):
            return
        block = event.get("content_block")
        if event.get("type") == "content_block_start" and isinstance(block, dict) and block.get("type") == "tool_use":
            self.calls[index] = _call(block.get("id"), block.get("name"), "")
            # Its input as it starts ({}), kept for a block no input_json_delta follows.
            self.started[index] = orjson.dumps(block.get("input", {})).decode()
            return
        delta = event.get("delta")
        if index in self.calls and isinstance(delta, dict) and isinstance(delta.get("partial_json"), str):
            self.calls[index]["function"]["arguments"] += delta["partial_json"]

    def listed(self) -> list[dict[str, Any]]:
        for i, started in self.started.items():
            function = self.calls[i]["function"]
            if not function["arguments"]:
                function["arguments"] = started
        return [self.calls[i] for i in sorted(self.calls)]


def _delta(event: Any) -> tuple[str | None, str | None]:
    """The text and reasoning one stream event adds."""
    if not isinstance(event, dict):
        return None, None
    delta = get(event, ("choices", "0", "delta"))
    if isinstance(delta, dict):
        text, reasoning = delta.get("content"), delta.get("reasoning_content")
        return (text if isinstance(text, str) else None), (reasoning if isinstance(reasoning, str) else None)
    delta = event.get("delta")  # Anthropic's content_block_delta
    if isinstance(delta, dict):
        text, thinking = delta.get("text"), delta.get("thinking")
        return (text if isinstance(text, str) else None), (thinking if isinstance(thinking, str) else None)
    return None, None


class AiStatistics(Plugin[AiStatisticsConfig]):
    name = "ai-statistics"
    phase = Phase.UNSPECIFIED
    priority = 200
    config_model = AiStatisticsConfig

    def __init__(self, config: AiStatisticsConfig, scope: Scope, services: Services) -> None:
        super().__init__(config, scope, services)
        by_source: dict[str | None, list[_Attr]] = {}
        attributes = config.effective_attributes()
        for a in attributes:
            by_source.setdefault(a.value_source, []).append(_Attr(a))
        self.fixed = [(a.key, a.value) for a in attributes if a.value_source == "fixed_value"]
        self.req_headers = by_source.get("request_header", [])
        self.req_body = by_source.get("request_body", [])
        self.resp_headers = by_source.get("response_header", [])
        self.resp_body = by_source.get("response_body", [])
        self.streamed = by_source.get("response_streaming_body", [])
        self.builtins = frozenset(a.key for a in attributes if a.value_source is None)
        self.defaults = [(a.key, a.default_value) for a in attributes if a.default_value is not None]
        self.logged = frozenset(a.key for a in attributes if a.apply_to_log)
        self.on_span = {a.key: a.trace_span_key or a.key for a in attributes if a.apply_to_span}
        self.suffixes = config.path_suffixes()
        self.reads_answer = bool(self.builtins & _ANSWER_KEYS)
        self._streamed_calls: StateKey[_StreamedCalls] = StateKey(f"{self.name}.tool_calls.{id(self):x}")

    def _off(self, ex: Exchange) -> bool:
        return self.suffixes is not None and not ex.request.path.endswith(self.suffixes)

    async def request_headers(self, ex: Exchange) -> Reply | None:
        if self._off(ex):
            return None
        for key, value in self.fixed:
            _put(ex, key, value)
        for a in self.req_headers:
            found = ex.request.headers.get(a.name)
            if found is not None:
                # A key is never a statistic: it would reach the log, the records, the
                # admin API and the spans.
                secret = a.name in CREDENTIAL_HEADERS or ex.shows_credential(found)
                _put(ex, a.key, REDACTED if secret else found)
        return None

    async def request_body(self, ex: Exchange) -> Reply | None:
        if self._off(ex) or not (self.req_body or "question" in self.builtins or "system" in self.builtins):
            return None
        # The body as the provider gets it: after ai-data-masking (the record must not
        # keep what masking removed) and any other rewrite, as the answer is read too.
        try:
            body = ex.body_json()
        except GatewayError:
            body = None  # not JSON: no values; ai-proxy answers the 400
        _put_found(ex, self.req_body, body)
        question, system = _question_and_system(body)
        if question is not None and "question" in self.builtins:
            _put(ex, "question", question)
        if system is not None and "system" in self.builtins:
            _put(ex, "system", system)
        return None

    async def response_headers(self, ex: Exchange, status: int, headers: list[tuple[str, str]]) -> None:
        if self._off(ex):
            return
        for a in self.resp_headers:
            for name, value in headers:
                if name.lower() == a.name:
                    _put(ex, a.key, value)
                    break

    async def response_body(self, ex: Exchange, body: bytes) -> bytes:
        if self._off(ex) or not (self.resp_body or self.reads_answer):
            return body
        answer = _json(body)
        _put_found(ex, self.resp_body, answer)
        text, reasoning = _answer(answer)
        if text is not None and "answer" in self.builtins:
            _put(ex, "answer", text)
        if reasoning is not None and "reasoning" in self.builtins:
            _put(ex, "reasoning", reasoning)
        if "tool_calls" in self.builtins:
            calls = _tool_calls(answer)
            if calls is not None:
                _put(ex, "tool_calls", calls)
        return body

    def stream_event(self, ex: Exchange, event: SseEvent) -> list[SseEvent]:
        if not (self.streamed or self.reads_answer) or self._off(ex):
            return [event]
        obj = event.json()
        if obj is None:
            return [event]
        if "tool_calls" in self.builtins and isinstance(obj, dict):
            calls = ex.get(self._streamed_calls)
            if calls is None:
                calls = _StreamedCalls()
                ex.put(self._streamed_calls, calls)
            calls.feed(obj)
        for a in self.streamed:
            value = get(obj, a.path)
            if value is not MISSING and value is not None and value != "":
                _put_streamed(ex, a.key, value, a.rule)
        text, reasoning = _delta(obj)
        if text and "answer" in self.builtins:
            _put_streamed(ex, "answer", text, "append")
        if reasoning and "reasoning" in self.builtins:
            _put_streamed(ex, "reasoning", reasoning, "append")
        return [event]

    async def done(self, ex: Exchange) -> None:
        if self._off(ex):
            return
        if "reasoning_tokens" in self.builtins:
            _put(ex, "reasoning_tokens", ex.usage.reasoning_tokens)
        if "cached_tokens" in self.builtins:
            _put(ex, "cached_tokens", ex.usage.cached_tokens)
        if "input_token_details" in self.builtins:
            details = {"cached_tokens": ex.usage.cached_tokens}
            if ex.usage.cache_write_tokens:
                details["cache_write_tokens"] = ex.usage.cache_write_tokens
            _put(ex, "input_token_details", details)
        if "output_token_details" in self.builtins:
            _put(ex, "output_token_details", {"reasoning_tokens": ex.usage.reasoning_tokens})
        streamed = ex.get(self._streamed_calls)
        if streamed is not None and streamed.calls:
            _put(ex, "tool_calls", streamed.listed())
        for key, default in self.defaults:
            if ex.attributes is None or key not in ex.attributes:
                _put(ex, key, default)
        attrs = ex.attributes
        if not attrs:
            return
        limit = self.config.value_length_limit
        for key, value in attrs.items():
            if isinstance(value, str) and len(value) > limit:
                attrs[key] = value[:limit]
        if self.logged:
            ex.log_attributes = self.logged if ex.log_attributes is None else ex.log_attributes | self.logged
        if self.on_span:
            ex.span_attributes = {**(ex.span_attributes or {}), **self.on_span}


def _json(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


__all__ = ["AiStatistics", "AiStatisticsConfig"]
