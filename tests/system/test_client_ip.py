"""client_ip in the usage record: the peer, unless the peer is a trusted proxy (SPEC §5)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import GatewayFactory, Proc


def _config(trusted: str) -> str:
    return f"""
server: {{trusted_proxies: {trusted}}}
providers: [{{id: mock, type: mock}}]
routes: [{{name: v1, path_prefix: /v1/, provider: mock}}]
"""


def _client_ip(gw: Proc, forwarded: str, request_id: str) -> str:
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"x-forwarded-for": forwarded, "x-request-id": request_id},
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200
    records = httpx.get(gw.admin_url + "/api/requests", params={"limit": 10}).json()["requests"]
    [record] = [rec for rec in records if rec["request_id"] == request_id]
    ip: str = record["client_ip"]
    return ip


def test_forwarded_for_from_an_untrusted_peer_is_ignored(gateway: GatewayFactory) -> None:
    gw = gateway(_config("[]"))
    assert _client_ip(gw, "203.0.113.7", "untrusted") == "127.0.0.1"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        # The nearest hop not in trusted_proxies: a client cannot pick its address by
        # writing one at the start of the header.
        ("198.51.100.1, 203.0.113.7, 10.0.0.5", "203.0.113.7"),
    ],
)
def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    gateway: GatewayFactory, forwarded: str, expected: str
) -> None:
    gw = gateway(_config('["127.0.0.1/32", "10.0.0.0/8"]'))
    assert _client_ip(gw, forwarded, "trusted") == expected
