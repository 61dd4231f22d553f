"""A provider's transport failure as the client sees it: 502 or 504, the provider named
by its id, never by its URL (which may carry a key or an internal host)."""

from __future__ import annotations

from tollway.errors import GatewayError, UpstreamError, UpstreamTimeout
from tollway.upstream import ConnectFailed, TransportError, TransportTimeout


def translate(exc: TransportError, provider_id: str) -> GatewayError:
    """Transport failures as the client sees them; the provider is named, never its URL."""
    if isinstance(exc, TransportTimeout):
        return UpstreamTimeout(f"provider {provider_id!r} timed out: {exc}", reason="ai-proxy.upstream_timeout")
    if isinstance(exc, ConnectFailed):
        return UpstreamError(f"provider {provider_id!r} is unreachable: {exc}", reason="ai-proxy.upstream_unreachable")
    return UpstreamError(f"provider {provider_id!r} failed: {exc}", reason="ai-proxy.bad_upstream_response")
