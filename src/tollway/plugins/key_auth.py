"""key-auth (AUTHN, 310): who is calling, from a key in a header or query parameter.

Higress's fields and the seed's semantics: no key, an unknown key or two different
keys → 401; a consumer past its ``expires_at`` → 401 (``key-auth.expired_key``); a
known consumer outside the matched rule's ``allow`` → 403; every 401/403
carries ``WWW-Authenticate``. On success the consumer's name travels on as
``X-Mse-Consumer``, and the key itself is kept from the provider. The consumer's
``allow_models`` is checked against the model the request names, once the body is in.

Config consumers live in key-auth's config; ``config_consumers`` reads them for the
admin API, the CLI and the metrics. Runtime consumers come from the consumer directory.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from tollway import patterns
from tollway.config.load import LoadedConfig
from tollway.config.schema import BudgetConfig
from tollway.consumers.consumer import Budget, Consumer, ConsumerDetail, ConsumerInfo, ConsumerListed, iso_instant
from tollway.consumers.groups import named_twice
from tollway.consumers.keys import hint_of
from tollway.consumers.store import NAME_PATTERN
from tollway.errors import BadRequest, Forbidden, Unauthorized
from tollway.exchange import Exchange, Reply
from tollway.headers import param_spelling, spellings
from tollway.plugin import Phase, Plugin, PluginConfig, Scope
from tollway.protocols.apis import MESSAGE_BATCHES
from tollway.protocols.batches import message_batch_models
from tollway.protocols.form import form_fields
from tollway.services import Services

# Higress's C++ key-auth lets a consumer read its key from places of its own; here the
# places are the config's, for every consumer.
_PER_CONSUMER_PLACES = ("keys", "in_query", "in_header")


def _usable(pattern: str) -> str:
    patterns.check(pattern)  # told at its own place: ...allow_models[1]
    return pattern


_NAME = re.compile(NAME_PATTERN)


class ConsumerEntry(PluginConfig):
    # The same names a runtime consumer may have: the name goes upstream in the
    # X-Mse-Consumer header, into state keys and metric labels (a config name of other
    # letters passed ``check``, then every call that reached a provider was a 500).
    name: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _a_name(cls, name: str) -> str:
        if _NAME.fullmatch(name) is None:
            raise ValueError(
                f"{name[:64]!r} is no consumer name: 1-128 characters of letters, digits and _ . @ + : -, "
                "starting with a letter, digit or _ (as a runtime consumer's; it goes upstream in X-Mse-Consumer)"
            )
        return name

    # One key (``credential``), or several (``credentials``, Higress's newer form), each
    # of which authenticates the consumer; both may be given.
    credential: str | None = Field(None, min_length=1)
    credentials: list[Annotated[str, Field(min_length=1)]] = []
    allow_models: list[Annotated[str, AfterValidator(_usable)]] | None = None
    groups: list[str] = []
    # MCP tools this consumer may list and call, as patterns per MCP server (SPEC §12).
    allow_tools: dict[str, list[str]] | None = None

    @field_validator("allow_tools")
    @classmethod
    def _tool_regexes(cls, v: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        for tools in (v or {}).values():
            for pattern in tools:
                patterns.check(pattern)
        return v

    @field_validator("groups")
    @classmethod
    def _each_group_once(cls, v: list[str]) -> list[str]:
        twice = named_twice(v)
        if twice is not None:
            raise ValueError(f"names {twice!r} twice")
        return v

    @model_validator(mode="before")
    @classmethod
    def _no_places_of_its_own(cls, data: Any) -> Any:
        given = [f for f in _PER_CONSUMER_PLACES if isinstance(data, dict) and f in data]
        if given:
            raise ValueError(
                f"{', '.join(given)} per consumer (Higress's C++ key-auth) is not supported: set keys, in_header "
                "and in_query on the key-auth config, where they apply to every consumer"
            )
        return data

    @model_validator(mode="after")
    def _a_key(self) -> ConsumerEntry:
        if self.credential is None and not self.credentials:
            # Told as SPEC §1 words it (credentials is the alternative).
            missing = InitErrorDetails(type="missing", loc=("credential",), input=None)
            raise ValidationError.from_exception_data("consumer", [missing])
        return self

    def keys(self) -> list[str]:
        """Every credential that authenticates this consumer, each once."""
        own = [self.credential] if self.credential is not None else []
        return list(dict.fromkeys(own + self.credentials))

    # ISO-8601; UTC unless it names an offset. After it the key is refused. (Read from
    # text too: YAML makes a date of it only when it is not quoted.)
    expires_at: datetime | None = Field(None, strict=False)

    def expiry(self) -> float | None:
        """``expires_at`` as seconds since the epoch."""
        if self.expires_at is None:
            return None
        when = self.expires_at if self.expires_at.tzinfo is not None else self.expires_at.replace(tzinfo=UTC)
        return when.timestamp()

    # A spending cap (docs/limits.md), and a cap on this consumer's calls in flight.
    budget: BudgetConfig | None = None
    max_parallel: int | None = Field(None, ge=1)

    def consumer(self) -> Consumer:
        """The consumer this entry configures, as every plugin sees it."""
        return Consumer(
            self.name,
            tuple(self.allow_models) if self.allow_models is not None else None,
            tuple(self.groups),
            "config",
            allow_tools=tuple((server, tuple(tools)) for server, tools in (self.allow_tools or {}).items()),
            expires_at=self.expiry(),
            budget=Budget(self.budget.usd, self.budget.period) if self.budget is not None else None,
            max_parallel=self.max_parallel,
        )


class KeyAuthConfig(PluginConfig):
    consumers: list[ConsumerEntry] = []
    keys: list[str] = Field(min_length=1)
    in_header: bool = True
    in_query: bool = True
    global_auth: bool | None = None
    allow: list[str] | None = None
    # The realm of the WWW-Authenticate challenge every 401/403 carries (Higress's C++
    # key-auth; its default there is "MSE Gateway", SPEC §3's here).
    realm: str = Field("tollway", min_length=1, pattern=r'^[^"\\\x00-\x1f\x7f]+$')

    # A field's own check, not the model's: it runs (and is told) even when another
    # field, such as ``keys``, is missing; each clash is told at its own place.
    @field_validator("consumers")
    @classmethod
    def _unique(cls, v: list[ConsumerEntry]) -> list[ConsumerEntry]:
        clashes: list[InitErrorDetails] = []

        def clash(loc: tuple[int | str, ...], message: str) -> None:
            clashes.append(InitErrorDetails(type=PydanticCustomError("duplicate", message), loc=loc, input=v))

        holders: dict[str, tuple[int, str]] = {}  # credential → (consumer index, name)
        names: set[str] = set()
        for k, c in enumerate(v):
            places: list[tuple[tuple[int | str, ...], str]] = (
                [((k, "credential"), c.credential)] if c.credential else []
            )
            places += [((k, "credentials", m), key) for m, key in enumerate(c.credentials)]
            for loc, key in places:
                index, holder = holders.setdefault(key, (k, c.name))
                if index != k:
                    clash(loc, f"consumer {holder!r} has the same credential")
            if c.name in names:
                clash((k, "name"), f"two consumers are named {c.name!r}")
            names.add(c.name)
        if clashes:
            raise ValidationError.from_exception_data("consumers", clashes)
        return v

    @model_validator(mode="after")
    def _a_place(self) -> KeyAuthConfig:
        if not self.in_header and not self.in_query:
            raise ValueError("at least one of in_header and in_query must be true")
        return self


def _challenge(realm: str) -> list[tuple[str, str]]:
    return [("www-authenticate", f'Key realm="{realm}"')]


class KeyAuth(Plugin[KeyAuthConfig]):
    name = "key-auth"
    phase = Phase.AUTHN
    priority = 310
    config_model = KeyAuthConfig

    def __init__(self, config: KeyAuthConfig, scope: Scope, services: Services) -> None:
        super().__init__(config, scope, services)
        self.by_credential: dict[str, Consumer] = {}
        for entry in config.consumers:
            consumer = entry.consumer()
            self.by_credential.update((key, consumer) for key in entry.keys())
        self.challenge = _challenge(config.realm)
        global_auth = config.global_auth if config.global_auth is not None else not scope.has_rules
        self.allow = frozenset(config.allow) if config.allow is not None else None
        # A rule with ``allow`` always authenticates; elsewhere only under global_auth.
        self.required = self.allow is not None or global_auth
        self.header_names = tuple(k.lower() for k in config.keys) if config.in_header else ()
        self.param_names = tuple(config.keys) if config.in_query else ()
        # What never goes upstream once a key was read: every name key-auth reads, in
        # every spelling a server may take for it (``_`` for ``-``; any case for a
        # parameter), whichever place the key came in.
        self.stripped_headers = frozenset().union(*(spellings(k.lower()) for k in config.keys))
        self.stripped_params = frozenset(param_spelling(k) for k in config.keys)

    def _unauthorized(self, message: str, reason: str) -> Unauthorized:
        return Unauthorized(f"Request denied by Key Auth check. {message}", reason=reason, headers=list(self.challenge))

    def _lookup(self, key: str) -> Consumer | None:
        consumer = self.by_credential.get(key)
        if consumer is None and self.services.directory is not None:
            consumer = self.services.directory.lookup(key)
        return consumer

    def _presented(self, ex: Exchange) -> list[str]:
        """Distinct keys the request carries, in the configured places (the same key
        in two places counts once)."""
        found: list[str] = []
        headers = ex.request.headers
        for name in self.header_names:
            for value in headers.get_all(name):
                if name == "authorization" and value[:7].lower() == "bearer " and value not in self.by_credential:
                    # A credential configured as "Bearer xxx" (Higress users' workaround)
                    # is compared as sent; otherwise the scheme is not part of the key.
                    value = value[7:].strip()
                if value and value not in found:
                    found.append(value)
        for name in self.param_names:
            for k, value in ex.request.query_params:
                if k == name and value and value not in found:
                    found.append(value)
        return found

    def _admit(self, ex: Exchange, consumer: Consumer, key: str) -> None:
        ex.consumer = consumer
        ex.credential = key
        ex.upstream_headers.append(("x-mse-consumer", consumer.name))
        # Later plugins see it too, as in Higress: ``limit_by_header: x-mse-consumer`` is
        # how a Higress config limits per consumer (the client's own was removed at the edge).
        ex.request.headers.add("x-mse-consumer", consumer.name)
        self._withhold(ex)

    def _withhold(self, ex: Exchange) -> None:
        """Keep every place key-auth reads from the provider."""
        ex.strip_headers.update(self.stripped_headers)
        ex.strip_params.update(self.stripped_params)

    def identify(self, ex: Exchange) -> Consumer | None:
        keys = self._presented(ex)
        return self._lookup(keys[0]) if len(keys) == 1 else None

    async def request_headers(self, ex: Exchange) -> Reply | None:
        keys = self._presented(ex)
        if not self.required:
            # Authentication is not asked for here, but a consumer who shows their key is
            # still that consumer: recorded, held to their limits and allow_models, and
            # their key kept from the provider. A key that names nobody changes nothing.
            consumer = self._lookup(keys[0]) if len(keys) == 1 else None
            if consumer is not None and not consumer.expired(time.time()):
                self._admit(ex, consumer, keys[0])
            elif keys:
                self._withhold(ex)  # a key that names nobody (a typo, two keys) is a key all the same
            return None
        if not keys:
            raise self._unauthorized("No Key Authentication information found.", "key-auth.no_key")
        if len(keys) > 1:
            raise self._unauthorized("Multi Key Authentication information found.", "key-auth.multiple_keys")
        consumer = self._lookup(keys[0])
        if consumer is None:
            raise self._unauthorized("Invalid API key.", "key-auth.unknown_key")
        if consumer.expired(time.time()):
            raise self._unauthorized("The API key has expired.", "key-auth.expired_key")
        self._admit(ex, consumer, keys[0])
        if self.allow is not None and consumer.name not in self.allow:
            raise Forbidden(
                "Request denied by Key Auth check. Unauthorized consumer.",
                reason="key-auth.forbidden",
                headers=list(self.challenge),
            )
        return None

    async def request_body(self, ex: Exchange) -> Reply | None:
        consumer = ex.consumer
        if consumer is None or consumer.allow_models is None:
            return None
        try:
            model = ex.model_requested
            if model is not None and not consumer.may_use(model):
                raise _model_not_allowed(f"consumer {consumer.name!r} may not use model {model!r}")
            if ex.request.method == "POST":
                if ex.api_path == "/files":
                    _check_batch_file(ex, consumer)
                elif ex.api_path == "/uploads":
                    _check_upload(ex, consumer)
                elif ex.api_path == MESSAGE_BATCHES:
                    _check_message_batch(ex, consumer)
        except Forbidden as refusal:
            refusal.headers.extend(self.challenge)  # as every key-auth 401 and 403 has
            raise
        return None


def _model_not_allowed(message: str) -> Forbidden:
    return Forbidden(message, reason="key-auth.model_not_allowed", code="model_not_allowed")


_PURPOSE = frozenset({"purpose"})
_FILE = frozenset({"file"})


def _check_batch_file(ex: Exchange, consumer: Consumer) -> None:
    """A batch file (``POST /v1/files`` with ``purpose: batch``) names a model on each
    line (``body.model``): a consumer with ``allow_models`` may upload only lines whose
    model it may use (SPEC §9), or the batch would run what the consumer may not."""
    req = ex.request
    content_type = req.headers.get("content-type") or ""
    body = req.body or b""
    if not content_type.startswith("multipart/"):
        return
    fields = form_fields(content_type, body, _PURPOSE, len(body), files=_FILE)
    if not fields or fields.get("purpose") != b"batch":
        return
    for number, line in enumerate(fields.get("file", b"").splitlines(), start=1):
        try:
            item = orjson.loads(line) if line.strip() else None
        except orjson.JSONDecodeError:
            continue  # the provider refuses a line that is not JSON; nothing runs from it
        request = item.get("body") if isinstance(item, dict) else None
        model = request.get("model") if isinstance(request, dict) else None
        if isinstance(model, str) and not consumer.may_use(model):
            raise _model_not_allowed(
                f"line {number} of the batch file asks for model {model!r}, "
                f"which consumer {consumer.name!r} may not use"
            )


def _check_upload(ex: Exchange, consumer: Consumer) -> None:
    """An upload (``POST /v1/uploads``) arrives in parts the gateway cannot read as lines
    (a line may span two parts, sent in any order): a consumer with ``allow_models``
    uploads batch files through ``POST /v1/files``, where each line is checked."""
    try:
        body = ex.request.json()
    except BadRequest:
        return  # the provider refuses what is not JSON; nothing is made from it
    if isinstance(body, dict) and body.get("purpose") == "batch":
        raise _model_not_allowed(
            f"consumer {consumer.name!r} may use only some models, so its batch files are checked line by line: "
            "upload them with POST /v1/files (up to its size limit), not in parts with /v1/uploads"
        )


def _check_message_batch(ex: Exchange, consumer: Consumer) -> None:
    """Each request of a message batch (``POST /v1/messages/batches``) names its model."""
    try:
        body = ex.request.json()
    except BadRequest:
        return
    for index, model in message_batch_models(body):
        if not consumer.may_use(model):
            raise _model_not_allowed(
                f"requests[{index}] of the message batch asks for model {model!r}, "
                f"which consumer {consumer.name!r} may not use"
            )


def _config_entries(loaded: LoadedConfig) -> Iterator[ConsumerEntry]:
    """The consumers of every key-auth instance in a config (rules inherit the default's
    consumers, so the same one comes many times)."""
    for setup in loaded.plugins:
        if setup.name != KeyAuth.name:
            continue
        for cfg in (setup.default, *(rule.config for rule in setup.rules)):
            if isinstance(cfg, KeyAuthConfig):
                yield from cfg.consumers


def placed_consumer_lists(loaded: LoadedConfig) -> Iterator[tuple[str, KeyAuthConfig]]:
    """Each key-auth config with the place of its ``consumers`` in the file (for the
    checks that tie consumers to other sections: groups, MCP servers)."""
    for setup in loaded.plugins:
        if setup.name != KeyAuth.name:
            continue
        if isinstance(setup.default, KeyAuthConfig):
            yield f"plugins[{setup.index}].defaultConfig", setup.default
        for rule in setup.rules:
            if isinstance(rule.config, KeyAuthConfig):
                yield f"plugins[{setup.index}].{rule.place}", rule.config


def config_consumers(loaded: LoadedConfig) -> list[ConsumerInfo]:
    """The consumers of every key-auth instance in a config, each name once."""
    found: dict[str, ConsumerInfo] = {}
    for c in _config_entries(loaded):
        found.setdefault(
            c.name,
            ConsumerInfo(
                name=c.name,
                allow_models=list(c.allow_models) if c.allow_models is not None else None,
                groups=list(c.groups),
                source="config",
                key_hint=hint_of(c.keys()[0]),
                created_at=None,
                expires_at=iso_instant(expiry) if (expiry := c.expiry()) is not None else None,
            ),
        )
    return list(found.values())


def config_consumer_listing(loaded: LoadedConfig) -> list[ConsumerListed]:
    """The config's consumers as ``GET /api/consumers`` lists them, each name once."""
    entries: dict[str, ConsumerEntry] = {}
    for e in _config_entries(loaded):
        entries.setdefault(e.name, e)
    listed = []
    for info in config_consumers(loaded):
        entry = entries[info["name"]]
        budget = entry.budget
        listed.append(
            ConsumerListed(
                **info,
                budget={"usd": budget.usd, "period": budget.period} if budget is not None else None,
                max_parallel=entry.max_parallel,
                allow_tools=entry.allow_tools,
            )
        )
    return listed


def config_consumer_detail(loaded: LoadedConfig, name: str) -> ConsumerDetail | None:
    """The config consumer ``name`` as ``GET /api/consumers/NAME`` shows it (without
    ``spend``), or None when the config has no such consumer."""
    listed = next((c for c in config_consumer_listing(loaded) if c["name"] == name), None)
    return ConsumerDetail(**listed, metadata=None) if listed is not None else None


def config_tools(loaded: LoadedConfig) -> frozenset[tuple[str, str]]:
    """The (MCP server, tool) pairs the config's consumers name exactly in ``allow_tools``
    (patterns left out): the tool names a metric may use as labels."""
    found: set[tuple[str, str]] = set()
    for c in _config_entries(loaded):
        for server, tools in (c.allow_tools or {}).items():
            found.update((server, t) for t in tools if t and "*" not in t and not t.startswith("~"))
    return frozenset(found)


__all__ = ["ConsumerEntry", "KeyAuth", "KeyAuthConfig", "config_consumers", "config_tools"]
