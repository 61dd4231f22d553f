"""The pooled transport (upstream/pooled.py): which requests go through the fallback client."""

from __future__ import annotations

import pytest

from tollway.upstream import ConnectFailed, UpstreamRequest
from tollway.upstream.pooled import PooledTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.urls: list[str] = []

    async def send(self, request: UpstreamRequest) -> object:
        self.urls.append(request.url)
        raise ConnectFailed("recorded")

    async def aclose(self) -> None:
        return None


async def test_proxy_from_environment_goes_through_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    fast, fallback = RecordingTransport(), RecordingTransport()
    transport = PooledTransport(fast=fast, fallback=fallback)  # type: ignore[arg-type]
    for url in (
        "https://api.openai.com/v1/models",
        "https://internal.example/v1/models",
        "http://127.0.0.1:9/v1/models",
    ):
        with pytest.raises(ConnectFailed):
            await transport.send(UpstreamRequest("GET", url, [], b"", 1, 1))
    assert fallback.urls == ["https://api.openai.com/v1/models"]
    assert fast.urls == ["https://internal.example/v1/models", "http://127.0.0.1:9/v1/models"]
