"""Anthropic (Higress type ``claude``): the Messages API with Anthropic's own auth."""

from __future__ import annotations

from tollway.config.schema import ProviderConfig
from tollway.providers.base import Provider
from tollway.upstream import Transport

DEFAULT_VERSION = "2023-06-01"


class Claude(Provider):
    """``baseUrl`` (default ``https://api.anthropic.com``, the root Anthropic's SDK takes)
    + ``/v1`` + the API path: ``/v1/messages``, ``/v1/models``. Auth is ``x-api-key``
    plus ``anthropic-version``: the client's own when it speaks Anthropic's protocol and
    sent one, else ``claudeVersion``, else ``apiVersion``, else 2023-06-01. A root that
    already ends in ``/v1`` (an ``openaiCustomUrl`` such as ``…/v1/messages``) is not
    given a second one."""

    protocol = "anthropic"
    default_base_url = "https://api.anthropic.com"
    # An Anthropic client's own anthropic-version goes on as it sent it (anthropic-beta
    # always does); the configured or default version is for clients that sent none.
    client_settable = frozenset({"anthropic-version"})

    def __init__(self, config: ProviderConfig, transport: Transport) -> None:
        super().__init__(config, transport)
        self.version = config.claudeVersion or config.apiVersion or DEFAULT_VERSION
        self._prefix = "" if self._base.endswith("/v1") else "/v1"

    def auth_headers(self, token: str | None) -> tuple[tuple[str, str], ...]:
        version = ("anthropic-version", self.version)
        return (("x-api-key", token), version) if token else (version,)

    def url_for(self, api_path: str, query: str) -> str:
        return super().url_for(self._prefix + api_path, query)
