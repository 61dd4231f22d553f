"""What every provider knows: where its API lives, how it authenticates, how it maps
model names. Wire formats live in ``protocols/``; providers do no I/O of their own."""

from __future__ import annotations

import base64
import itertools
import re
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

from tollway.config.schema import CustomSetting, ProviderConfig
from tollway.headers import spellings
from tollway.patterns import PatternMap
from tollway.protocols.apis import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, MODELS
from tollway.protocols.registry import codec_for
from tollway.providers.secrets import ProviderSecrets
from tollway.upstream import Transport


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    headers: tuple[tuple[str, str], ...]


Json = dict[str, Any]


def _basic_auth_of(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its user info, and the Basic Authorization header that user info
    stands for (None when it has none)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    pair = f"{unquote(user)}:{unquote(password)}".encode()
    header = ("authorization", "Basic " + base64.b64encode(pair).decode("ascii"))
    return urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment)), header


def apply_settings(body: Json, settings: Sequence[CustomSetting]) -> Json:
    """``body`` with ``settings`` set at its top level (a new dict; ``body`` itself when
    there are none)."""
    if not settings:
        return body
    out = dict(body)
    for s in settings:
        if s.overwrite or s.name not in out:
            out[s.name] = s.value
    return out


# Client headers that choose which of the organisation's provider accounts pays (SPEC
# §14): withheld from the provider unless its ``pass_headers`` names them.
ACCOUNT_HEADERS = ("openai-organization", "openai-project")


class UnsupportedProvider(Exception):
    """A provider config this version cannot serve (an unknown type, a missing field)."""


# Provider types whose chat API takes ``max_completion_tokens`` (see ``pivot_body``).
_COMPLETION_LIMIT_TYPES = frozenset({"openai", "azure", "mock"})


class Provider:
    """An OpenAI-style provider: ``baseUrl`` + the API path, ``Authorization: Bearer``.

    Subclasses set ``protocol`` (the codec their native chat API speaks) and override
    ``auth_headers``/``url_for``/``endpoint`` for their URLs and auth. A token that
    answered 401/429 rests for ``rest_s`` before reuse.

    ``protocol: original`` in the config: requests reach the provider as the client sent
    them, never translated (``translates``). ``customSettings`` are laid over every JSON
    body it is sent (``pivot_body``, ``native_body``). ``firstByteTimeout`` bounds the
    wait for a streamed answer's headers instead of ``timeout``; ``retryTimeout`` ends
    ``retryOnFailure``'s retries once that long has passed since the first attempt.
    """

    rest_s = 30.0
    default_base_url = "https://api.openai.com/v1"
    # The wire format of the provider's native chat API: a codec name in
    # ``tollway.protocols.registry`` ("openai", "anthropic", "gemini").
    protocol: ClassVar[str] = "openai"
    # Headers of ``auth_headers`` that a client speaking the provider's own protocol
    # may set itself: its value goes on, the provider's is only the default.
    client_settable: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: ProviderConfig, transport: Transport, base_url: str | None = None) -> None:
        self.config = config
        self.id = config.id
        self.type = config.type
        self.transport = transport
        self.mapping = PatternMap(config.modelMapping)
        self.timeout_s = config.timeout / 1000.0
        self.first_byte_timeout_s = config.firstByteTimeout / 1000.0 if config.firstByteTimeout else None
        self.retry_timeout_s = config.retryOnFailure.retryTimeout / 1000.0
        self.translates = config.protocol == "openai"
        # A translated request's output limit (the pivot says max_completion_tokens):
        # OpenAI's own API, Azure's and the mock take that name (OpenAI's reasoning models
        # refuse max_tokens); the other OpenAI-compatible APIs know max_tokens, and some
        # refuse the other name (Mistral: 422) or ignore it (DeepSeek). (The Anthropic
        # and Gemini codecs read either.)
        self._limit_as_max_tokens = self.protocol == "openai" and config.type not in _COMPLETION_LIMIT_TYPES
        self._auto = tuple(s for s in config.customSettings if s.mode == "auto")
        self._raw = tuple(s for s in config.customSettings if s.mode == "raw")
        # Whether bodies passed through need ``pivot_body``/``native_body`` at all.
        self.sets_body = bool(config.customSettings)
        # Every setting, both modes (what a hold reads the output limit and ``n`` from).
        self.settings = tuple(config.customSettings)
        self._tokens = list(config.apiTokens)
        self._turn = itertools.cycle(range(len(self._tokens))) if self._tokens else None
        # Whether a call's key is a choice (``pick_token``'s affinity matters).
        self.several_keys = len(self._tokens) > 1
        self._resting: dict[int, float] = {}
        self._retry_statuses = tuple(re.compile(p) for p in config.retryOnFailure.retryOnStatus)
        passed = {h.lower().replace("_", "-") for h in config.pass_headers}
        # Client headers never sent to this provider, in every spelling.
        self.withheld_headers = frozenset().union(*(spellings(h) for h in ACCOUNT_HEADERS if h not in passed))
        self._custom_api, self._base = self._split_base(config)
        if base_url is not None:
            self._base = base_url
        # A query in the base URL (a key some services take as ``?key=``) goes after the
        # API path, with the call's own: not before the path, where it would end it.
        self._base, _, self._base_query = self._base.partition("?")
        # The base URL's user info (``http://user:pass@host/v1``, a model server behind
        # a proxy asking for Basic auth) is sent as curl sends it, in an Authorization
        # header, never in the URL or the Host; a provider key that itself goes in
        # Authorization wins.
        self._base, self._basic = _basic_auth_of(self._base)
        # Whether Google's files (``files/{id}``) mean anything to this provider: Gemini's,
        # and an OpenAI-style provider at Google's own OpenAI layer (``ownership``).
        self.google = self.protocol == "gemini" or "googleapis.com" in self._base
        # What of them a provider's answer may show, taken out before a client sees it.
        secrets = [*self._tokens]
        if self._basic is not None:
            credentials = self._basic[1].split(" ", 1)[1]
            secrets += [credentials, base64.b64decode(credentials).decode().partition(":")[2]]
        self.secrets = ProviderSecrets(secrets)

    def _split_base(self, config: ProviderConfig) -> tuple[str | None, str]:
        """An ``openaiCustomUrl`` ending in an API path serves that API as it stands;
        other APIs go to the same root."""
        url = config.baseUrl or config.openaiCustomUrl or self.default_base_url
        url = url.rstrip("/")
        if config.baseUrl is None and config.openaiCustomUrl is not None:
            for api in (CHAT, EMBEDDINGS, MESSAGES, COMPLETIONS):
                if url.endswith(api):
                    return api, url[: -len(api)]
        return None, url

    @property
    def base_url(self) -> str:
        """Where this provider's calls go: the root its API paths are appended to."""
        return self._base

    @property
    def basic_auth(self) -> bool:
        """Whether the base URL's user info goes as Basic auth (``credentials``): it has
        some, and the provider's key does not go in Authorization itself."""
        token = self._tokens[0] if self._tokens else None
        return self._basic is not None and self._basic in self.credentials(token)

    @property
    def retries(self) -> int:
        """Extra attempts on this provider (``retryOnFailure``), each with the next token."""
        rof = self.config.retryOnFailure
        return rof.maxRetries if rof.enabled else 0

    def may_retry(self, attempt: int, first_started: float) -> bool:
        """Whether a failed ``attempt`` (counted from 0) may be followed by another: a
        retry is left, and ``retryTimeout`` has not passed since the first attempt
        started (``time.monotonic()``)."""
        return attempt < self.retries and time.monotonic() - first_started < self.retry_timeout_s

    def retries_on(self, status: int) -> bool:
        """Whether ``retryOnFailure.retryOnStatus`` (regexes on the status) covers it."""
        return status >= 400 and any(rx.fullmatch(str(status)) for rx in self._retry_statuses)

    def headers_timeout(self, stream: bool) -> float:
        """Seconds to wait for the response headers of a call (streamed or not)."""
        if stream and self.first_byte_timeout_s is not None:
            return self.first_byte_timeout_s
        return self.timeout_s

    def pivot_body(self, chat: Json) -> Json:
        """An OpenAI-shaped request with the ``auto`` custom settings (before any
        translation, which carries them to the provider's own names), its output limit
        under the name the provider takes (``_limit_as_max_tokens``)."""
        body = apply_settings(chat, self._auto)
        if self._limit_as_max_tokens and "max_completion_tokens" in body and "max_tokens" not in body:
            limit = body["max_completion_tokens"]
            body = {k: v for k, v in body.items() if k != "max_completion_tokens"}
            body["max_tokens"] = limit
        return body

    def native_body(self, body: Json, translated: bool) -> Json:
        """The body the provider gets, with the ``raw`` custom settings as they stand.
        ``translated``: the body was made by translating a client's chat request."""
        return apply_settings(body, self._raw)

    def own_api_body(self, body: Json) -> Json:
        """A body in the provider's own API that names its model in the path (Gemini's
        generateContent), as the provider gets it: the ``raw`` custom settings laid over."""
        return apply_settings(body, self._raw)

    def map_model(self, requested: str) -> str:
        mapped = self.mapping.lookup(requested)
        return requested if not mapped else mapped

    def pick_token(self, affinity: str | None = None) -> tuple[int, str] | None:
        """Tokens in turn, skipping any that are resting; if all rest, use one anyway.
        With ``affinity`` (the consumer of a call on an object the provider keeps per
        account: ``apis.keeps_state``), always the same token for the same value, resting
        or not, in every process and replica: a file or stored response made with one key
        is not found under another (Higress hashes the consumer alike)."""
        if self._turn is None:
            return None
        if affinity is not None:
            i = zlib.crc32(affinity.encode()) % len(self._tokens)
            return i, self._tokens[i]
        now = time.monotonic()
        for _ in range(len(self._tokens)):
            i = next(self._turn)
            until = self._resting.get(i)
            if until is None or until <= now:
                return i, self._tokens[i]
        i = next(self._turn)
        return i, self._tokens[i]

    def rest_token(self, index: int) -> None:
        self._resting[index] = time.monotonic() + self.rest_s

    def auth_headers(self, token: str | None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"),) if token else ()

    def url_for(self, api_path: str, query: str) -> str:
        return self._with_query(self._base + api_path, query)

    def _with_query(self, url: str, query: str) -> str:
        """``url`` with the base URL's query, then the call's."""
        if self._base_query:
            query = f"{self._base_query}&{query}" if query else self._base_query
        return f"{url}?{query}" if query else url

    def endpoint(self, api_path: str, query: str, token: str | None, model: str | None = None) -> Endpoint:
        """URL and auth headers for ``api_path`` (relative to the API root, ``/v1``-less,
        percent-encoded once: it goes into the URL as it stands, as ``query`` does).
        ``model`` is the upstream model, for providers whose URL names it (Azure)."""
        return Endpoint(self.url_for(api_path, query), self.credentials(token))

    def credentials(self, token: str | None) -> tuple[tuple[str, str], ...]:
        """``auth_headers``, with the base URL's Basic auth where they have no
        Authorization of their own."""
        headers = self.auth_headers(token)
        basic = self._basic
        if basic is None or any(name == "authorization" for name, _ in headers):
            return headers
        return (*headers, basic)

    def chat_endpoint(self, model: str, stream: bool, token: str | None) -> Endpoint:
        """Where a chat call goes in the provider's own protocol (``protocol``): the
        body sent there is ``codec_for(protocol).request_from_pivot(chat)``."""
        native = codec_for(self.protocol).api_path(stream, model)
        return self.endpoint(native.path, native.query, token, model)

    def models_endpoint(self, token: str | None) -> Endpoint | None:
        """Where the provider lists its models (read with the codec's ``model_ids``), or
        None when it cannot list them."""
        return self.endpoint(MODELS, "", token)

    def model_names(self) -> list[str]:
        return self.mapping.names()
