"""Google's Gemini API (Higress type ``gemini``): generateContent with an API key."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from tollway.config.schema import ProviderConfig
from tollway.protocols.apis import EMBEDDINGS, MODELS, UPLOAD_ROOT
from tollway.protocols.gemini.request import generation_config
from tollway.providers.base import Endpoint, Json, Provider
from tollway.upstream import Transport

DEFAULT_VERSION = "v1beta"
_VERSIONED = re.compile(r"/v\d+(alpha|beta)?\d*$")


def _without_key(query: str) -> str:
    """A client's query less its ``key`` (Google's API-key parameter, in any spelling
    Google would decode to it): the provider's key goes in its header, and a key of the
    client's own must not go to Google beside it (on a route without key-auth nothing
    else takes it out)."""
    if "=" not in query or ("key" not in query.lower() and "%" not in query):
        return query
    kept = [p for p in query.split("&") if unquote_plus(p.partition("=")[0]).lower() != "key"]
    return "&".join(kept)


# OpenAI's APIs that Gemini serves only under its OpenAI compatibility layer
# (``/v1beta/openai/…``): a client's call passed through (not translated) goes there; a
# Gemini path (``/v1beta/embeddings``) does not exist, and the call was a 404.
_OPENAI_LAYER_PATHS = (EMBEDDINGS, "/images/", "/audio/")


def _layer_of(api_path: str) -> str:
    """``api_path`` under Google's OpenAI layer when it is one of OpenAI's APIs only."""
    if api_path == EMBEDDINGS or api_path.startswith(_OPENAI_LAYER_PATHS[1:]):
        return "/openai" + api_path
    return api_path


class Gemini(Provider):
    """``baseUrl`` (default ``https://generativelanguage.googleapis.com``, the root
    Google's SDK takes) + ``/<apiVersion>`` (default ``v1beta``) + the API path:
    ``/v1beta/models/<model>:generateContent``, ``…:streamGenerateContent?alt=sse``,
    ``/v1beta/models`` to list. Auth is the ``x-goog-api-key`` header (never the ``key``
    query parameter, which would put the key in logged URLs). A root that already ends
    in a version (``…/v1beta``) is used as it stands.

    ``geminiSafetySetting`` (category → threshold, as Higress takes it) becomes the
    ``safetySettings`` of every generateContent call, made from a chat request or sent by
    a client of Gemini's own API."""

    protocol = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"

    def __init__(self, config: ProviderConfig, transport: Transport) -> None:
        super().__init__(config, transport)
        self.version = config.apiVersion or DEFAULT_VERSION
        self._prefix = "" if _VERSIONED.search(self._base) else "/" + self.version
        self._safety = [
            {"category": category, "threshold": threshold}
            for category, threshold in (config.geminiSafetySetting or {}).items()
        ]
        self.sets_body = self.sets_body or bool(self._safety)

    def native_body(self, body: Json, translated: bool) -> Json:
        if translated and self._safety:
            body = {**body, "safetySettings": self._safety}
        return super().native_body(body, translated)

    def own_api_body(self, body: Json) -> Json:
        """A Gemini client's own body: the ``auto`` settings that name a generation
        parameter (``max_tokens``, ``temperature``, …) under their Gemini names in
        ``generationConfig``, ``geminiSafetySetting`` as its ``safetySettings``, then the
        ``raw`` ones, as a translated chat call gets them."""
        out = dict(body)
        if self._auto:
            given = body.get("generationConfig")
            config = dict(given) if isinstance(given, dict) else {}
            for setting in self._auto:
                for name, value in generation_config({setting.name: setting.value}).items():
                    if setting.overwrite or name not in config:
                        config[name] = value
            out["generationConfig"] = config
        if self._safety:
            out["safetySettings"] = self._safety
        return super().own_api_body(out)

    def auth_headers(self, token: str | None) -> tuple[tuple[str, str], ...]:
        return (("x-goog-api-key", token),) if token else ()

    def url_for(self, api_path: str, query: str) -> str:
        if api_path.startswith(UPLOAD_ROOT + "/"):
            # A media upload: Google's upload root before the version (``/upload/v1beta/files``),
            # whether the version is the provider's or ends its base URL.
            root = self._base + self._prefix
            version = _VERSIONED.search(root)
            if version is not None:
                root = root[: version.start()] + UPLOAD_ROOT + root[version.start() :]
            return self._with_query(root + api_path[len(UPLOAD_ROOT) :], _without_key(query))
        return super().url_for(self._prefix + _layer_of(api_path), _without_key(query))

    def endpoint(self, api_path: str, query: str, token: str | None, model: str | None = None) -> Endpoint:
        url = self.url_for(api_path, query)
        if token and _layer_of(api_path) != api_path:
            # Google's OpenAI layer takes the key as OpenAI's clients send it.
            return Endpoint(url, (("authorization", f"Bearer {token}"),))
        return Endpoint(url, self.credentials(token))

    def models_endpoint(self, token: str | None) -> Endpoint | None:
        # One page of up to 1000 (the API's maximum) covers every public model.
        return self.endpoint(MODELS, "pageSize=1000", token)
