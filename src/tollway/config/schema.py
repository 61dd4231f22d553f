"""The config file's schema (SPEC §2). Plugin configs are validated by each plugin's
own model (see ``plugins/``), laid into this one by ``load.py``."""

from __future__ import annotations

import datetime
import ipaddress
import re
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tollway import patterns
from tollway.upstream import MAX_ANSWER_BYTES

ProviderType = Literal[
    "openai", "azure", "claude", "gemini", "ollama", "deepseek", "qwen", "groq", "mistral", "moonshot",
    "openrouter", "together", "vllm", "mock",
]  # fmt: skip
PROVIDER_TYPES: tuple[str, ...] = get_args(ProviderType)


# What an unexpected error in a plugin (or an unreachable state store) does to a call.
FailureMode = Literal["open", "closed"]


class Strict(BaseModel):
    """Unknown fields are errors (typos must not pass silently); values are frozen; a
    value of the wrong type is an error, not converted (``port: true`` bound port 1, a
    limit of ``"5"`` or ``true`` passed as a number)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class PluginConfig(Strict):
    """Base for every plugin's config model (plugins import it from ``tollway.plugin``).
    It lives with the file's schema so that loading a config needs no plugin code: the
    plugins' models are handed to the loader (``load.PluginModels``)."""

    # Groups of fields that are one choice among alternatives (a limit given one way or
    # another): a match rule that gives any field of a group replaces the default
    # config's whole group, instead of being laid over it field by field.
    replaced_together: ClassVar[tuple[frozenset[str], ...]] = ()

    def ignored(self) -> list[str]:
        """Fields given that have no effect here (a Higress field this version accepts
        and does not act on), each as ``"place: why"`` relative to this config; the
        loader warns about each, so none passes silently."""
        return []


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)
    upstream_timeout_s: float = Field(600, gt=0)
    # The largest plain (not streamed) answer of a provider, MCP server or REST tool
    # service the gateway reads into memory (a file's content included); larger → 502.
    max_upstream_body_bytes: int = Field(MAX_ANSWER_BYTES, ge=1024)
    shutdown_timeout_s: float = Field(30, ge=0)
    # A client that leaves mid-stream cancels the provider call (0, the default: the
    # generation stops, the record gets the tokens seen so far or an estimate). A value
    # > 0 reads the rest of the stream, up to that many seconds, for the provider's exact
    # usage instead: exact books, but the provider generates (and bills) the whole answer.
    abandoned_stream_drain_s: float = Field(0, ge=0)
    trusted_proxies: list[str] = []

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        # Checked here, not first when ``serve`` builds the edge (a traceback there, after
        # ``check`` and a reload had said ok).
        for k, network in enumerate(v):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"[{k}] {network!r} is no IP address or network (CIDR)") from None
        return v

    # The HTTP edge's limits (SPEC §14): the request line plus all headers (beyond → 431),
    # how many header lines (beyond → 431), how long the whole request head may take to
    # arrive (else the connection is closed), the longest silence while a body arrives
    # (→ 408), how long an idle keep-alive connection is kept, and how many connections
    # are served at once (None: derived from the descriptor limit, keeping headroom;
    # beyond it new connections are refused at once), and from one peer address (None:
    # no bound of its own; behind a load balancer every connection comes from it).
    max_header_bytes: int = Field(65536, ge=1024)
    max_headers: int = Field(100, ge=1)
    header_timeout_s: float = Field(10, gt=0)
    body_timeout_s: float = Field(30, gt=0)
    keepalive_timeout_s: float = Field(75, gt=0)
    max_connections: int | None = Field(None, ge=1)
    max_connections_per_client: int | None = Field(None, ge=1)


def _string_or_null(schema: dict[str, Any]) -> None:
    """A string field whose null the model reads as its default (the file may say null)."""
    del schema["type"]
    schema["anyOf"] = [{"type": "string"}, {"type": "null"}]


class AdminConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8081, ge=0, le=65535)
    # "" (or null, or absent): no token, and the admin API listens on loopback only; off
    # loopback it needs 16 characters or more (``tollway serve`` and ``check`` say so).
    token: str = Field("", json_schema_extra=_string_or_null)

    @field_validator("token", mode="before")
    @classmethod
    def _null_is_no_token(cls, v: object) -> object:
        return "" if v is None else v

    @field_validator("token")
    @classmethod
    def _no_blank_token(cls, v: str) -> str:
        # A token no client can present: a header's value is read without the
        # whitespace around it. Only-whitespace is an empty token after stripping, and
        # admitting it would take the admin API for guarded while no one can use it.
        if v and not v.strip():
            raise ValueError("is only whitespace: an empty token after stripping (leave it empty for no token)")
        if v != v.strip():
            raise ValueError("must not begin or end with whitespace, which no client's Bearer value can carry")
        if not (v.isascii() and v.isprintable()):
            # HTTP header values are bytes: clients send other characters as UTF-8 or
            # Latin-1 as they please, so such a token works for some clients only.
            raise ValueError("must be printable ASCII: clients encode other characters in a header differently")
        return v


class StorageConfig(Strict):
    database: str = "sqlite:///./tollway-data/tollway.db"
    state: str = "memory"
    # Where local files go (the usage journal): by default the SQLite file's folder, or
    # tollway-data/ next to the config file for PostgreSQL. A container whose config is
    # mounted read-only points it at a writable volume.
    data_folder: str | None = None
    # Usage records older than this many days are deleted, a little at a time, once a
    # day; None keeps them all. The audit log is never trimmed.
    retention_days: int | None = Field(default=None, ge=1)

    @field_validator("database")
    @classmethod
    def _database_scheme(cls, v: str) -> str:
        if not re.match(r"^(sqlite:///|postgres(ql)?://)", v):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return v

    @field_validator("state")
    @classmethod
    def _state_scheme(cls, v: str) -> str:
        if v != "memory" and not re.match(r"^rediss?://", v):
            raise ValueError("must be 'memory' or a redis:// URL")
        if v != "memory":
            from tollway.state.redis import check_url

            check_url(v)
        return v


class TelemetryConfig(Strict):
    """OpenTelemetry traces: one span per call, a child per provider attempt, sent over
    OTLP/HTTP. Off while ``otlp_endpoint`` is unset."""

    # The collector's OTLP/HTTP base URL (``/v1/traces`` is added unless it ends so).
    otlp_endpoint: str | None = None
    # The ``service.name`` of the spans' resource.
    service_name: str = Field("tollway", min_length=1)
    # The share of calls that start a trace here that are exported; a call continuing a
    # client's trace follows the client's sampled flag instead.
    sample_ratio: float = Field(1.0, ge=0, le=1)

    @field_validator("otlp_endpoint")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v


class TokenPrices(Strict):
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cached_input_per_mtok: float | None = Field(None, ge=0)
    # Prompt-cache writes (Anthropic's ``cache_creation_input_tokens``); null: the input price.
    cache_write_per_mtok: float | None = Field(None, ge=0)
    # The part of them written to a one-hour cache (Anthropic's
    # ``cache_creation.ephemeral_1h_input_tokens``); null: twice the input price, Anthropic's.
    cache_write_1h_per_mtok: float | None = Field(None, ge=0)


class LongContextPrice(TokenPrices):
    """The prices of a whole call whose prompt (input tokens, cached and written ones
    included) is above ``above_input_tokens`` (Gemini's and Claude's long prompts)."""

    above_input_tokens: int = Field(gt=0)


class Price(TokenPrices):
    long_context: LongContextPrice | None = None


class BudgetConfig(Strict):
    """A spending cap in US dollars over a UTC calendar period: ``day``,
    ``week`` (from Monday), ``month`` or ``total`` (never resets)."""

    # At most a billion dollars, as runtime budgets: spend is counted in nano-dollars,
    # exact in the state store's integers only up to about that.
    usd: float = Field(gt=0, le=1_000_000_000)
    period: Literal["day", "week", "month", "total"] = "month"


class GroupConfig(Strict):
    """A group of consumers (the consumers name it in their ``groups``) with a budget
    and a cap on calls in flight that bind all its members together."""

    name: str = Field(min_length=1, max_length=200)
    budget: BudgetConfig | None = None
    max_parallel: int | None = Field(None, ge=1)


class AlertsConfig(Strict):
    """Budget threshold alerts: one POST to ``webhook`` when a consumer's or a group's
    spend first crosses each share of its budget in a period."""

    webhook: str
    thresholds: list[float] = [0.8, 1.0]

    @field_validator("webhook")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("thresholds")
    @classmethod
    def _shares(cls, v: list[float]) -> list[float]:
        for t in v:
            if not 0 < t <= 10:
                raise ValueError(f"{t} is not a share of the budget above 0 (1.0 is the whole budget)")
        return sorted(set(v))


class GovernanceConfig(Strict):
    alerts: AlertsConfig | None = None


class RetryOnFailure(Strict):
    enabled: bool = False
    maxRetries: int = Field(1, ge=0)
    # ms from the provider's first attempt after which no retry starts.
    retryTimeout: int = Field(60000, gt=0)
    retryOnStatus: list[str] = ["4.*", "5.*"]

    @field_validator("retryOnStatus")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        for rx in v:
            try:
                re.compile(rx)
            except re.error as exc:
                raise ValueError(f"{rx!r} is not a valid regular expression: {exc}") from None
        return v


class Failover(Strict):
    """Higress's health-checked token failover. Accepted so Higress configs load, and
    warned about: Tollway fails over between a route's providers instead (``load``)."""

    enabled: bool = False
    failureThreshold: int = 3
    successThreshold: int = 1
    healthCheckInterval: int = 5000
    healthCheckTimeout: int = 5000
    healthCheckModel: str | None = None
    failoverOnStatus: list[str] = ["4.*", "5.*"]


class CustomSetting(Strict):
    """Higress's ``customSettings`` entry: a request parameter the provider always gets.
    ``auto`` sets it on the OpenAI-shaped request, before any translation carries it to
    the provider's own name; ``raw`` sets it as it stands on the body the provider gets.
    Without ``overwrite``, a value the request already has is kept."""

    name: str = Field(min_length=1)
    value: Any
    mode: Literal["auto", "raw"] = "auto"
    overwrite: bool = True


# Higress's provider type names that Tollway knows by another.
_TYPE_ALIASES = {"together-ai": "together"}
# Higress provider fields accepted and not acted on, and what to use instead.
HIGRESS_PROVIDER_FIELDS_IGNORED: dict[str, str] = {
    "context": "no context file is fetched; put the text in a system message (ai-prompt-decorator)",
    "reasoningContentMode": "reasoning_content passes as the provider sends it",
    "capabilities": "each provider type serves the APIs its docs list, at their own paths",
    "subPath": "route prefixes are not stripped by the provider; set the provider's baseUrl",
    "basePath": "route prefixes are not stripped by the provider; set the provider's baseUrl",
    "basePathHandling": "route prefixes are not stripped by the provider; set the provider's baseUrl",
    "providerDomain": "set the provider's baseUrl",
    "providerBasePath": "set the provider's baseUrl",
    "authHeaderKey": "a provider without apiTokens gets no key from the client",
    "responseJsonSchema": "send response_format from the client, or set it with customSettings",
    "contextCleanupCommands": "no command clears a conversation",
    "mergeConsecutiveMessages": "messages go as the client sent them",
    "promoteThinkingOnEmpty": "reasoning stays reasoning",
    "hiclawMode": "no HiClaw mode",
    "claudeCodeMode": "Claude is called with its API key (x-api-key)",
    "qwenEnableSearch": "set enable_search with customSettings",
    "qwenFileIds": "no file ids are added",
    "qwenDomain": "set the provider's baseUrl",
    "moonshotFileId": "no file is added",
    "openaiExtraCustomUrls": "one URL per provider; list several providers on a route",
}


class ProviderConfig(Strict):
    """Higress ai-proxy's provider object: every field is acted on, except the Higress
    fields that ``load`` warns about when given (``failover``, ``qwenEnableCompatible:
    false``)."""

    id: str
    type: ProviderType
    apiTokens: list[str] = []
    baseUrl: str | None = None
    openaiCustomUrl: str | None = None
    modelMapping: dict[str, str] = {}
    # Client headers that select the organisation's provider account (OpenAI-Organization,
    # OpenAI-Project) are removed unless named here (SPEC §14).
    pass_headers: list[str] = []
    timeout: int = Field(120000, gt=0)
    retryOnFailure: RetryOnFailure = RetryOnFailure()
    failover: Failover = Failover()
    # "original": requests go to the provider as the client sent them, never translated.
    protocol: Literal["openai", "original"] = "openai"
    # ms until a streamed answer's response headers arrive (instead of ``timeout``); 0: unset.
    firstByteTimeout: int = Field(0, ge=0)
    customSettings: list[CustomSetting] = []
    # Provider-specific Higress fields.
    azureServiceUrl: str | None = None
    apiVersion: str | None = None
    claudeVersion: str | None = None
    geminiSafetySetting: dict[str, str] | None = None
    ollamaServerHost: str | None = None
    ollamaServerPort: int | None = None
    vllmServerHost: str | None = None
    vllmCustomUrl: str | None = None
    qwenEnableCompatible: bool | None = None
    # Higress provider fields accepted as they are and not acted on: ``load`` warns about
    # each one given (``HIGRESS_PROVIDER_FIELDS_IGNORED``).
    context: Any = None
    reasoningContentMode: Any = None
    capabilities: Any = None
    subPath: Any = None
    basePath: Any = None
    basePathHandling: Any = None
    providerDomain: Any = None
    providerBasePath: Any = None
    authHeaderKey: Any = None
    responseJsonSchema: Any = None
    contextCleanupCommands: Any = None
    mergeConsecutiveMessages: Any = None
    promoteThinkingOnEmpty: Any = None
    hiclawMode: Any = None
    claudeCodeMode: Any = None
    qwenEnableSearch: Any = None
    qwenFileIds: Any = None
    qwenDomain: Any = None
    moonshotFileId: Any = None
    openaiExtraCustomUrls: Any = None

    @field_validator("apiVersion", "claudeVersion", mode="before")
    @classmethod
    def _dated_versions(cls, v: object) -> object:
        # Written unquoted (``claudeVersion: 2023-06-01``, as Higress's examples do), YAML
        # reads a date: the version is its text.
        return v.isoformat() if isinstance(v, datetime.date) else v

    @field_validator("type", mode="before")
    @classmethod
    def _higress_type_names(cls, v: object) -> object:
        return _TYPE_ALIASES.get(v, v) if isinstance(v, str) else v

    @field_validator("openaiCustomUrl", mode="before")
    @classmethod
    def _scheme_optional(cls, v: object) -> object:
        # Higress's README writes it without a scheme (``www.example.com/myai/v1/…``) and
        # its code takes either; without one it is https.
        if isinstance(v, str) and v and "://" not in v:
            return "https://" + v
        return v

    @field_validator("baseUrl", "openaiCustomUrl")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("modelMapping")
    @classmethod
    def _mapping_regexes(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            patterns.check(key)
        return v


class RouteConfig(Strict):
    name: str
    domains: list[str] = ["*"]
    path: str | None = None
    path_prefix: str | None = None
    path_regex: str | None = None
    methods: list[str] | None = None
    provider: str | None = None
    providers: list[str] | None = None
    model_providers: dict[str, str] = {}
    # An MCP route (SPEC §12): its calls go to this ``mcp_servers`` entry, not a provider.
    mcp_server: str | None = None

    @model_validator(mode="after")
    def _one_path_rule(self) -> RouteConfig:
        given = [f for f in ("path", "path_prefix", "path_regex") if getattr(self, f) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of path, path_prefix, path_regex (got {', '.join(given)})")
        if self.provider is not None and self.providers is not None:
            raise ValueError("give either provider or providers, not both")
        if self.mcp_server is not None and (self.provider_ids() or self.model_providers):
            raise ValueError("an mcp_server route takes no provider, providers or model_providers")
        if self.path_regex is not None:
            try:
                re.compile(self.path_regex)
            except re.error as exc:
                raise ValueError(f"path_regex is not a valid regular expression: {exc}") from None
        return self

    @field_validator("methods")
    @classmethod
    def _upper(cls, v: list[str] | None) -> list[str] | None:
        return [m.upper() for m in v] if v is not None else None

    def provider_ids(self) -> list[str]:
        if self.providers is not None:
            return list(self.providers)
        return [self.provider] if self.provider is not None else []


class RestRequest(Strict):
    """The HTTP request a REST tool makes; ``{{args.x}}`` in ``url``, header values and
    ``body`` stands for the call's argument ``x`` (a string that is only a placeholder
    takes the argument's JSON value)."""

    method: str = "GET"
    url: str
    headers: dict[str, str] = {}
    body: Any = None

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z]+", v):
            raise ValueError("must be an HTTP method")
        return v.upper()

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v


class RestTool(Strict):
    """A tool the gateway serves itself, as one HTTP request to a REST service."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    inputSchema: dict[str, Any] = {"type": "object"}
    request: RestRequest


class McpServerConfig(Strict):
    """An MCP server (docs/mcp.md). ``type: remote`` (the default) is a remote server
    speaking the Streamable HTTP transport at ``url``; ``type: rest`` is served by the
    gateway itself, its tools REST calls (``tools``, or one per operation of the
    ``openapi`` document, whose service is at ``base_url``, else the document's first
    ``servers`` entry). ``headers`` are the server's credentials (for ``rest``, the REST
    service's): the gateway adds them to every request it sends and no client ever
    sees them."""

    name: str = Field(min_length=1)
    type: Literal["remote", "rest"] = "remote"
    url: str | None = None
    headers: dict[str, str] = {}
    # Seconds until the server's answer (its headers) arrives, and the longest silence
    # inside a streamed answer to a POST; the GET notification stream has no such bound.
    timeout: float = Field(300, gt=0)
    tools: list[RestTool] = []
    # An OpenAPI 3 document (YAML or JSON), relative to the config file's folder.
    openapi: str | None = None
    base_url: str | None = None

    @field_validator("url", "base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("headers")
    @classmethod
    def _header_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise ValueError(f"{name!r} is not a header name")
            if re.search(r"[\x00-\x1f\x7f]", value):
                raise ValueError(f"the value of {name!r} has control characters")
        return v

    @model_validator(mode="after")
    def _fits_type(self) -> McpServerConfig:
        if self.type == "remote":
            if self.url is None:
                raise ValueError("a remote MCP server needs a url")
            if self.tools or self.openapi is not None or self.base_url is not None:
                raise ValueError("tools, openapi and base_url are for type: rest")
            return self
        if self.url is not None:
            raise ValueError("a rest MCP server is served by the gateway: give tools or openapi, not url")
        if not self.tools and self.openapi is None:
            raise ValueError("a rest MCP server needs tools or openapi")
        names = [t.name for t in self.tools]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two tools are named {twice[0]!r}")
        return self


class MatchRule(Strict):
    ingress: list[str] | None = None
    domain: list[str] | None = None
    config: dict[str, Any] = {}
    configDisable: bool = False
    # Higress's: which kind of route the rule names. Every route here is HTTP, so
    # ``HTTP`` changes nothing (``load`` warns) and ``GRPC`` would match no route.
    routeType: str | None = None

    @field_validator("routeType")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and v != "HTTP":
            raise ValueError(f"Tollway routes are all HTTP: a {v} rule would match no route (use HTTP or leave it out)")
        return v


class PluginEntry(Strict):
    """Higress's WasmPlugin shape. ``defaultConfig`` and rule configs stay raw here and
    are validated against the named plugin's own model by ``load.py``."""

    name: str
    defaultConfig: dict[str, Any] | None = None
    defaultConfigDisable: bool = False
    matchRules: list[MatchRule] = []
    phase: Literal["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED", "UNSPECIFIED_PHASE"] | None = None
    priority: int | None = None
    failure_mode: FailureMode | None = None


class Config(Strict):
    server: ServerConfig = ServerConfig()
    admin: AdminConfig = AdminConfig()
    storage: StorageConfig = StorageConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    pricing: dict[str, Price] = {}
    providers: list[ProviderConfig] = []
    routes: list[RouteConfig] = []
    mcp_servers: list[McpServerConfig] = []
    plugins: list[PluginEntry] = []
    groups: list[GroupConfig] = []
    governance: GovernanceConfig = GovernanceConfig()

    @field_validator("groups")
    @classmethod
    def _unique_groups(cls, v: list[GroupConfig]) -> list[GroupConfig]:
        seen: set[str] = set()
        for g in v:
            if g.name in seen:
                raise ValueError(f"two groups are named {g.name!r}")
            seen.add(g.name)
        return v
