"""What reaches the provider (proxy/upstream_request.py, SPEC §14), through a gateway in
this process: the headers that choose the organisation's provider account go only where
the provider's ``pass_headers`` names them; X-Mse-Consumer, in any spelling, comes only
from the gateway; a decoded body goes without its Content-Encoding."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest

from tests.support.asgi_support import RecordingUpstream, send_raw
from tollway.testing.gateway import GatewayUnderTest

CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def gateway(upstream: RecordingUpstream, plugins: list[dict[str, Any]] | None = None) -> GatewayUnderTest:
    base = {"type": "openai", "apiTokens": ["sk-org"], "baseUrl": "http://up.test/v1"}
    config = {
        "providers": [
            {"id": "plain", **base},
            {"id": "passing", **base, "pass_headers": ["OpenAI-Organization", "openai_project"]},
            {"id": "claude", "type": "claude", "apiTokens": ["sk-ant"], "baseUrl": "http://up.test"},
        ],
        "routes": [
            {"name": "plain", "path_prefix": "/v1/", "provider": "plain"},
            {"name": "passing", "path_prefix": "/passing/v1/", "provider": "passing"},
            {"name": "claude", "path_prefix": "/claude/v1/", "provider": "claude"},
        ],
        "plugins": plugins or [],
    }
    return GatewayUnderTest(orjson.dumps(config).decode(), upstream=upstream)


ACCOUNT = [
    (b"openai-organization", b"org-attacker"),
    (b"openai-project", b"proj-attacker"),
    (b"openai_organization", b"org-underscored"),
    (b"openai_project", b"proj-underscored"),
]


@pytest.mark.parametrize("route", [b"/v1", b"/claude/v1"])
async def test_the_account_headers_are_withheld_by_default(route: bytes) -> None:
    up = RecordingUpstream()
    r = await send_raw(gateway(up), "POST", route + b"/chat/completions", [(b"host", b"gw"), *ACCOUNT], CHAT)
    assert r.status == 200, r.body
    names = up.seen[0].names()
    assert not names & {"openai-organization", "openai-project", "openai_organization", "openai_project"}


async def test_pass_headers_lets_them_through() -> None:
    up = RecordingUpstream()
    r = await send_raw(gateway(up), "POST", b"/passing/v1/chat/completions", [(b"host", b"gw"), *ACCOUNT], CHAT)
    assert r.status == 200, r.body
    reached = up.seen[0]
    assert reached.header("openai-organization") == "org-attacker"
    assert reached.header("openai-project") == "proj-attacker"
    assert reached.header("openai_project") == "proj-underscored"


KEY_AUTH = [
    {
        "name": "key-auth",
        "defaultConfig": {"keys": ["x-api-key"], "consumers": [{"name": "alice", "credential": "k-alice"}]},
    }
]
SPELLINGS = ("x-mse-consumer", "x_mse_consumer", "x-mse_consumer", "x_mse-consumer")
SPOOFED = [(name.encode(), b"mallory") for name in SPELLINGS]


async def test_a_client_cannot_name_the_consumer_in_any_spelling() -> None:
    up = RecordingUpstream()
    gw = gateway(up, KEY_AUTH)
    headers = [(b"host", b"gw"), (b"x-api-key", b"k-alice"), *SPOOFED]
    r = await send_raw(gw, "POST", b"/v1/chat/completions", headers, CHAT)
    assert r.status == 200, r.body
    reached = up.seen[0]
    assert reached.header("x-mse-consumer") == "alice"
    assert not reached.names() & {"x_mse_consumer", "x-mse_consumer", "x_mse-consumer"}
    assert all(not name.startswith(("x-mse", "x_mse")) for name, _ in gw.calls[-1].request.headers)


async def test_without_an_auth_plugin_no_consumer_reaches_the_provider() -> None:
    up = RecordingUpstream()
    r = await send_raw(gateway(up), "POST", b"/v1/chat/completions", [(b"host", b"gw"), *SPOOFED], CHAT)
    assert r.status == 200
    assert not {n for n in up.seen[0].names() if "mse" in n}


async def test_a_decoded_body_goes_without_its_coding_and_with_its_length() -> None:
    up = RecordingUpstream()
    headers = [(b"host", b"gw"), (b"content-encoding", b"gzip")]
    r = await send_raw(gateway(up), "POST", b"/v1/chat/completions", headers, gzip.compress(CHAT))
    assert r.status == 200
    reached = up.seen[0]
    assert reached.body == CHAT
    assert reached.header("content-encoding") is None
    assert reached.header("content-length") in (None, str(len(CHAT)))
