"""The record of one client call, from the first header to the last byte.

One ``Exchange`` is made per request and handed to every plugin hook; it is the only
thing that travels between plugins. The request's facts (which API, the client's
dialect, the model asked for, whether it streams) are set on it by the gateway before
any plugin that could need them runs, so no plugin reads them from the body again.
Plugin-private state lives under typed keys (``StateKey[T]``), never in a dict of
anything.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import parse_qsl, unquote_plus

import jiter
import orjson

from tollway.errors import BadRequest, GatewayError
from tollway.headers import Headers, param_spelling
from tollway.protocols.apis import Api, Dialect, recorded_api
from tollway.protocols.tracecontext import format_traceparent
from tollway.protocols.usage import Usage

if TYPE_CHECKING:
    from tollway.consumers.consumer import Consumer
    from tollway.protocols.sse import SseEvent
    from tollway.routing.routes import Route

T = TypeVar("T")

# What ai-cache made of a call (see ``Exchange.cache``).
CacheOutcome = Literal["hit", "semantic", "miss", "skip"]

# How deep a JSON body may nest (objects and arrays); one level more is a 400.
MAX_JSON_DEPTH = 64


class StateKey(Generic[T]):
    """A typed slot in ``Exchange.state``; create one per module, at import."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"StateKey({self.name!r})"


class AmbiguousJson(BadRequest):
    """A JSON body the gateway passes to no plugin and no provider, whatever its API:
    one with a duplicate key (which plugins and providers may read differently), or
    nested deeper than ``MAX_JSON_DEPTH``."""


@dataclass(slots=True)
class Request:
    """The client's request as it was sent. Plugins read it; nobody rewrites it.

    Before any plugin runs, the gateway makes the target canonical
    (``tollway.gateway.target``): ``path`` is the path percent-decoded once, without
    empty segments; ``encoded_path`` the same path percent-encoded once, as it goes to
    the provider (``None`` until then); ``host`` the Host, lower-case, without port or
    trailing dot. ``raw_path`` is the target's path as it came on the wire, still
    percent-encoded. ``query`` is the raw query string (no ``?``), ``body`` the whole
    body once the request-body phase starts (``None`` before), decoded already when it
    came with a ``Content-Encoding`` (which the gateway then removes from ``headers``).
    """

    method: str
    path: str
    query: str
    headers: Headers
    client_ip: str
    host: str
    body: bytes | None = None
    raw_path: bytes | None = None
    encoded_path: str | None = None
    # An HTTP/1.0 request (which may have no Host; one of HTTP/1.1 must).
    http10: bool = False
    _json: Any = None
    _json_error: BadRequest | None = None
    _params: list[tuple[str, str]] | None = None

    @property
    def query_params(self) -> list[tuple[str, str]]:
        """Decoded query parameters (``+`` is a space), in order, duplicates kept."""
        if self._params is None:
            self._params = parse_qsl(self.query, keep_blank_values=True)
        return self._params

    def query_param(self, name: str) -> str | None:
        for k, v in self.query_params:
            if k == name:
                return v
        return None

    def json(self) -> Any:
        """The body parsed as JSON (parsed once, whoever asks first); a body that is not
        JSON raises the 400 the client would get, every time it is asked for: a
        ``BadRequest``, or an ``AmbiguousJson`` for a duplicate key or deep nesting."""
        if self._json is None:
            if self._json_error is not None:
                raise self._json_error
            if not self.body:
                self._json_error = BadRequest("request body is empty; expected JSON", reason="gateway.bad_request")
                raise self._json_error
            try:
                self._json = parse_json(self.body)
            except BadRequest as exc:
                self._json_error = exc
                raise
        return self._json

    def json_or_none(self) -> Any:
        """``json()``, or None for a body that is not JSON."""
        try:
            return self.json()
        except BadRequest:
            return None


# The escape of a colon (see parse_json).
_ESCAPED_COLON = re.compile(rb"\\u003[aA]")
# Every byte but the marks parse_json counts (opening brackets, colons, backslashes):
# ``bytes.translate`` deleting these keeps only the marks, in one C pass over the body.
_NOT_MARKS = bytes(c for c in range(256) if c not in b"{[:\\")


def parse_json(body: bytes) -> Any:
    """``body`` as JSON, refused (400) unless it has one meaning to every reader: valid,
    no object with a key twice (after unescaping: ``"a"`` and ``"\\u0061"`` are one
    key), at most ``MAX_JSON_DEPTH`` levels deep.

    orjson parses; the checks cost a fraction of that, and scale with the body as the
    parse does (benchmarks/README.md). orjson's compact dump of the value is made first.
    The depth is walked only when the body has more opening brackets than the limit
    (level by level: no recursion).

    A body that is that dump byte for byte (what most SDKs send) has each key once: only
    its brackets are counted (``bytes.count``, which allocates nothing). Any other is
    checked by counting colons, without a second parse, in one pass that keeps the
    body's marks (its opening brackets, colons and backslashes). Outside strings a colon
    follows each key and nothing else; inside them it is text, which orjson keeps and
    never escapes. So the body's colons are its keys plus the colons of its strings, and
    the dump's are the same count unless a key came twice (the dump has one key, and one
    value's text, fewer). The one way text can hold a colon the body does not show is
    the escape ``\\u003a``: a body that has one is read a second time by jiter, which
    tells a duplicate key itself (its values are not used: it keeps integers orjson
    reads as floats, and reads 1e999 as infinity where orjson refuses it).
    """
    # (Counted before the parse only for a large body; read again below otherwise.)
    brackets = _refuse_crowded(body) if len(body) >= _CONTAINERS_COUNTED_FROM else -1
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc.args[0]}", reason="gateway.bad_request") from None
    if type(value) is not dict and type(value) is not list:
        return value
    try:
        dumped = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        # Deeper than orjson writes (255 levels; it reads 1024), so past the limit.
        _refuse_deeper(value, MAX_JSON_DEPTH + 1)
        raise BadRequest(f"request body cannot be read: {exc}", reason="gateway.bad_request") from None
    if dumped == body:
        # Each key once; only the depth is left (a 1 KB chat body: 2.7 -> 2.5 us a
        # parse against translate's copy of the marks, orjson's own parse 1.1 us).
        _refuse_deeper(value, brackets if brackets >= 0 else body.count(b"{") + body.count(b"["))
        return value
    marks = body.translate(None, _NOT_MARKS)
    colons = marks.count(b":")
    backslashes = marks.count(b"\\")
    _refuse_deeper(value, len(marks) - colons - backslashes)
    if not backslashes or _ESCAPED_COLON.search(body) is None:
        if dumped.count(b":") == colons:
            return value
        # A key came twice: jiter says which, and where.
    try:
        jiter.from_json(body, allow_inf_nan=False, catch_duplicate_keys=True, cache_mode="keys")
    except ValueError as exc:
        problem = str(exc)
        if problem.startswith("Detected duplicate key "):  # 'Detected duplicate key "k" at line 1 column 9'
            key, _, where = problem.removeprefix("Detected duplicate key ").rpartition(" at ")
            message = f"request body has the key {key} twice ({where})"
        else:
            message = f"request body is not valid JSON: {problem}"
        raise AmbiguousJson(message, reason="gateway.bad_request") from None
    return value


# A large body's arrays and objects are counted before it is parsed: each costs 56-64
# bytes parsed where its text may take 2 (``[],``), so a 10 MB body of empty arrays held
# 300-550 MB for one request (a judge's finding; SPEC §14 bounds a request's memory to
# its body's size plus a constant). From this size on, one per ``_BYTES_PER_CONTAINER``
# bytes at most (brackets in strings count too: a JSON grid in a prompt, ``[1,7],``, is
# one per 6; lists of one token id, ``[123],``, one per 6): empty ones (``[],``, one
# per 3) are refused, and a parse holds at most about 16 times the body. Below the size
# a body holds a few MB at worst.
_CONTAINERS_COUNTED_FROM = 256 * 1024
_BYTES_PER_CONTAINER = 4


def _refuse_crowded(body: bytes) -> int:
    """The body's opening brackets, refused when too many (see above)."""
    containers = body.count(b"[") + body.count(b"{")  # (brackets in strings count too: a bound)
    if containers > len(body) // _BYTES_PER_CONTAINER:
        raise BadRequest(
            f"request body holds {containers} arrays and objects in {len(body)} bytes, more than one per "
            f"{_BYTES_PER_CONTAINER}: too many to read",
            reason="gateway.bad_request",
        )
    return containers


def _refuse_deeper(value: dict[str, Any] | list[Any], brackets: int) -> None:
    """Refuses ``value``, whose body has ``brackets`` opening brackets, if it nests
    deeper than ``MAX_JSON_DEPTH``: walked only when it has the brackets to."""
    if brackets > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise AmbiguousJson(f"request body nests deeper than {MAX_JSON_DEPTH} levels", reason="gateway.bad_request")


def _deeper_than(value: dict[str, Any] | list[Any], limit: int) -> bool:
    """Whether ``value`` (parsed JSON) nests more than ``limit`` objects and arrays deep."""
    level: list[Any] = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            for item in node.values() if type(node) is dict else node:
                if type(item) is dict or type(item) is list:
                    below.append(item)
        level = below
    return False


# A consumer's key shorter than this is looked for only as a whole header or parameter
# value: as a part of one it would take ordinary values with it (a "k1" in a user agent).
KEY_IN_TEXT_MIN = 8


def _holds(value: str, key: str) -> bool:
    """Whether ``value`` carries the consumer's ``key`` (see ``KEY_IN_TEXT_MIN``)."""
    return key in value if len(key) >= KEY_IN_TEXT_MIN else value == key


@dataclass(slots=True)
class Attempt:
    """One call to a provider: retries and failovers each add one.

    ``latency_ms`` runs from the request sent to the response's headers (or the
    failure). For a traced call's spans only (neither shown nor compared): ``started``,
    ``time.perf_counter()`` when the request went out; ``span_id``, the attempt's span
    (the parent id in the ``traceparent`` the provider got; 0 when the call is not
    traced); ``error``, the reason code of a failure that left no status of the
    provider's (a refused connection, a timeout).
    """

    provider: str
    status: int
    latency_ms: float
    started: float = field(default=0.0, repr=False, compare=False)
    span_id: int = field(default=0, repr=False, compare=False)
    error: str | None = field(default=None, repr=False, compare=False)


@dataclass(slots=True)
class CallTrace:
    """A traced call's ids (W3C Trace Context), on ``Exchange.trace`` when telemetry is
    on and the call is sampled; otherwise the exchange has none and nothing here runs.

    Made by the gateway when the call starts (``tollway.usage.tracing.Sampler``): the
    trace id is the client's when its ``traceparent`` is continued (``parent_id`` is then
    the client's span), else a new one (``parent_id`` 0). Each provider attempt takes a
    span id of its own (``attempt``) and sends it on as the parent in its
    ``traceparent``. When the call ends, ``end`` takes what the spans need from the
    exchange; they are built from it and the usage record, off the request path.
    """

    trace_id: int
    span_id: int
    parent_id: int
    # Random 64-bit numbers (span ids): the sampler's generator.
    _bits: Callable[[int], int] = field(repr=False)
    # Type of each provider tried, by provider id (the spans name the provider's kind).
    provider_types: dict[str, str] = field(default_factory=dict)
    # From the exchange, at the end: its API, the model the provider's answer named, and
    # ``time.perf_counter()`` at its start (attempts' ``started`` are counted from there).
    api: Api = "other"
    model_reported: str | None = None
    started: float = 0.0

    def attempt(self, provider_id: str, provider_type: str) -> tuple[int, str]:
        """A new attempt's span id, and the ``traceparent`` its request carries."""
        self.provider_types[provider_id] = provider_type
        span_id = self.new_span_id()
        return span_id, format_traceparent(self.trace_id, span_id)

    def new_span_id(self) -> int:
        return self._bits(64) or 1

    def end(self, ex: Exchange) -> None:
        self.api = recorded_api(ex.api, ex.api_path)  # (as the record names it)
        self.model_reported = ex.model_reported
        self.started = ex.started


class EventSource(Protocol):
    """A streamed answer's events, in the client's dialect, as they come."""

    async def next(self) -> list[SseEvent] | None:
        """The events that arrived next (possibly none), or ``None`` once the stream has
        ended. A source that fails midway raises the ``GatewayError`` the stream ends with."""
        ...

    async def abandoned(self) -> None:
        """The client went away mid-stream: settle what the call cost."""
        ...

    def cut(self) -> None:
        """The gateway ended the stream (a plugin refused the answer mid-way): settle what
        the call cost without reading on (the client waits for the refusal)."""
        ...

    async def aclose(self) -> None:
        """Release what the source holds (the provider's connection); always called."""
        ...


@dataclass(slots=True)
class Reply:
    """An answer: a plugin's (instead of upstream's), or the provider's as ai-proxy got it.

    ``body`` is the whole body; a streamed answer has ``events`` instead, which the
    gateway relays event by event through the plugins' stream hooks. ``json_array``:
    the client reads those events as one JSON array (Gemini's stream without ``alt=sse``).
    """

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    events: EventSource | None = None
    json_array: bool = False


@dataclass(slots=True)
class Exchange:
    """Everything known about one call; the usage record is read off it at the end."""

    request_id: str
    request: Request
    started: float = field(default_factory=time.perf_counter)
    ts: float = field(default_factory=time.time)
    route: Route | None = None
    consumer: Consumer | None = None
    # The request's facts (see ``tollway.gateway.facts``). From the path, when the call
    # starts: the API path after /v1, the API it names, the client's dialect (errors
    # answer in kind). From the body, once it is in: the model asked for and whether
    # the answer should stream.
    api_path: str = ""
    # ``api_path`` as it goes into the provider's URL: percent-encoded once.
    upstream_api_path: str = ""
    api: Api = "other"
    dialect: Dialect = "openai"
    model_requested: str | None = None
    # The model was named in the path (Gemini's ``/models/<model>:generateContent``), not
    # the body: the provider's mapping is applied there (``upstream_request.path``).
    model_in_path: bool = False
    stream: bool = False
    model_upstream: str | None = None
    # The model the provider's answer names (metrics label it when nothing configured does).
    model_reported: str | None = None
    # The id a Responses answer gives itself (``resp_…``), which a later call may continue.
    answer_id: str | None = None
    provider: str | None = None
    status: int = 0
    reason: str | None = None
    blocked_by: str | None = None
    error: GatewayError | None = None
    usage: Usage = field(default_factory=Usage)
    attempts: list[Attempt] = field(default_factory=list)
    ttft_ms: float | None = None
    # The stream's terminal event (``data: [DONE]``, ``message_stop``,
    # ``response.completed``) has gone to the client: the answer is whole, whatever the
    # client does after it.
    stream_ended: bool = False
    # The provider's answer gave no finish reason, where the client's protocol, which must
    # say one, was told ``end_turn`` or ``completed`` by the translation: whole to the
    # client, but no finished answer to keep for the next (ai-cache).
    unfinished: bool = False
    # A whole (not streamed) answer's body as the response hooks got it, before any of
    # them: the provider's, or a plugin's reply. A ``done`` hook reads it there rather
    # than keeping a copy in a response-body hook of its own (a hook costs every call a
    # coroutine): ai-cache, which runs last, so sees it first on the way back.
    reply_body: bytes | None = None
    # Set when telemetry is on and the call is sampled (see ``CallTrace``).
    trace: CallTrace | None = None
    # ai-statistics attributes for the usage record; the keys in ``log_attributes`` also
    # go to the access-log line, those in ``span_attributes`` to the call's span, under
    # the name it maps them to. ``None`` until a plugin sets one (most calls have none).
    attributes: dict[str, Any] | None = None
    log_attributes: frozenset[str] | None = None
    span_attributes: dict[str, str] | None = None
    # Headers the gateway adds to the upstream request (X-Mse-Consumer, …) and the
    # credential names to strip from it; plugins write here instead of the request.
    upstream_headers: list[tuple[str, str]] = field(default_factory=list)
    strip_headers: set[str] = field(default_factory=set)
    # (``headers.param_spelling`` forms: every spelling of a name is stripped.)
    strip_params: set[str] = field(default_factory=set)
    # The key the consumer authenticated with: no header or query parameter whose value
    # holds it goes upstream, under whatever name the client also sent it.
    credential: str | None = None
    # The JSON body to send upstream when a plugin rewrote it (masking, prompt edits);
    # ``None`` sends the client's body. The client's own ``request`` is never edited.
    upstream_json: dict[str, Any] | None = None
    # The same for a form (``multipart/form-data``) a plugin rewrote: its bytes, under
    # the client's own content type and boundary.
    upstream_form: bytes | None = None
    # A provider call a plugin makes itself, in place of ai-proxy's (chatgpt-proxy's, to
    # its ``chatgptUri``, always a POST of ``upstream_json``): the gateway makes it where
    # it would send the call to the route's providers, after every request plugin and
    # the budget hold. None: ai-proxy sends the call.
    upstream_call: Callable[[Exchange], Awaitable[Reply]] | None = None
    # Extra response headers plugins want the client to see (rate-limit quotas, …).
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    # What ai-cache made of the call: "hit" or "semantic" (answered from the cache: the
    # record keeps the stored answer's tokens, costs nothing and says what it saved),
    # "miss", or "skip" (the client's Cache-Control kept it from looking); None where no
    # ai-cache applies.
    cache: CacheOutcome | None = None
    # The call's ``cost_usd`` and ``cost_saved_usd`` (``usage.record.call_cost``) when it
    # was priced before its record: a budget's settlement prices it, and the record then
    # says the same amount the budget counted, without pricing it again. None: the record
    # prices it.
    priced: tuple[float | None, float | None] | None = None
    # An MCP call's JSON-RPC method (``tools/call``) and, for a tool call, the tool the
    # client named (SPEC §12); None for every other call.
    mcp_method: str | None = None
    mcp_tool: str | None = None
    # Calls a plugin made to a provider on this call's behalf (ai-cache's embeddings):
    # each is recorded as a call of its own when this one ends, its latency running to
    # its own ``ended`` (``time.perf_counter()``; a client's call ends when recorded).
    side_calls: list[Exchange] | None = None
    ended: float | None = None
    state: dict[StateKey[Any], Any] = field(default_factory=dict)

    def get(self, key: StateKey[T]) -> T | None:
        # (No ``typing.cast``: a call on every plugin's every read, for the type checker.)
        return self.state.get(key)

    def put(self, key: StateKey[T], value: T) -> None:
        self.state[key] = value

    @property
    def consumer_name(self) -> str | None:
        return self.consumer.name if self.consumer is not None else None

    def body_json(self) -> Any:
        """The JSON body as the provider is to get it: a plugin's rewrite (``upstream_json``),
        else the client's, parsed once (raising the client's 400 when it is not JSON)."""
        return self.upstream_json if self.upstream_json is not None else self.request.json()

    def upstream_query(self) -> str:
        """The client's query string, less the parameters a credential rode in, in every
        spelling a server may read as theirs, and any other holding the consumer's key
        (what goes to a provider or MCP server)."""
        query = self.request.query
        strip, key = self.strip_params, self.credential
        if not query or (not strip and key is None):
            return query
        # Each kept parameter goes on as the client wrote it: decoded only to be judged
        # (re-encoding would change what the provider reads: ``%ff`` is no UTF-8).
        kept = []
        for raw in query.split("&"):
            name, _, value = raw.partition("=")
            if param_spelling(unquote_plus(name)) in strip or (key is not None and _holds(unquote_plus(value), key)):
                continue
            kept.append(raw)
        return "&".join(kept)

    def without_credential(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """``headers`` less any whose value holds the consumer's key (a client that sent
        it under a name key-auth does not read as well)."""
        key = self.credential
        if key is None:
            return headers
        if len(key) < KEY_IN_TEXT_MIN:
            return [h for h in headers if h[1] != key]
        return [h for h in headers if key not in h[1]]

    def shows_credential(self, value: str) -> bool:
        """Whether ``value`` holds the consumer's key (see ``KEY_IN_TEXT_MIN``)."""
        key = self.credential
        return key is not None and _holds(value, key)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def fail(self, error: GatewayError) -> None:
        """Remember why the call ended badly (first failure wins). Without how it was
        raised: a traceback's frames hold what the call had read (a refused answer's
        bytes, up to ``server.max_upstream_body_bytes``) and this exchange, a cycle only
        the collector's rare full pass would free."""
        if self.error is None:
            error.__traceback__ = error.__context__ = error.__cause__ = None
            self.error = error
            self.reason = error.reason
