"""Providers as the provider tests build them: from a config, on a transport that refuses to
send (endpoints are computed, never sent)."""

from __future__ import annotations

from typing import Any

from tollway.config.schema import ProviderConfig
from tollway.providers import build_provider
from tollway.providers.base import Endpoint, Provider
from tollway.upstream import UpstreamRequest, UpstreamResponse


class NoTransport:
    """Endpoints are computed, never sent."""

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        raise AssertionError("no request may be sent")

    async def aclose(self) -> None:
        pass


def provider(type_: str, **fields: Any) -> Provider:
    fields.setdefault("apiTokens", ["sk-test"])
    config = ProviderConfig.model_validate({"id": "p", "type": type_, **fields})
    return build_provider(config, NoTransport(), NoTransport())


def headers(endpoint: Endpoint) -> dict[str, str]:
    return dict(endpoint.headers)
