"""request-block (SPEC §3, §8, §14; Higress reference §6) through a real gateway: what the
client receives (request-block runs before key-auth), the consumer a blocked call is
recorded with, unicode tricks in every API that carries prompt text, and a deeply nested
body under ``failure_mode: open``. The plugin on its own is tested in
tests/unit/plugins/test_request_block.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

GATEWAY = """
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: mock, type: openai, baseUrl: "{mock}/v1", apiTokens: [sk-provider-1]}}
routes:
  - {{name: chat, path_prefix: /v1/, provider: mock}}
  - {{name: plain, path_prefix: /plain/, provider: mock}}
plugins:
  - name: request-block
    defaultConfig:
      block_urls: [password]
      block_bodies: [password]
      case_sensitive: false
      blocked_code: 404
      blocked_message: '{{"blocked": true, "hint": "no passwords"}}'
    matchRules:
      - ingress: [plain]
        config: {{blocked_message: "plain text refusal", blocked_code: 403}}
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{{name: alice, credential: ck-alice}}]
"""


async def test_through_the_gateway_a_json_message_is_sent_as_it_stands_before_key_auth(
    gateway: Any, mock_llm: Any, mock_requests: Any
) -> None:
    gw = gateway(GATEWAY.format(mock=mock_llm.url))
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        # No key at all: request-block (320) runs before key-auth (310).
        r = await http.get("/v1/models", params={"q": "my PASS%77ORD"})
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"blocked": True, "hint": "no passwords"}
        assert r.headers["x-tollway-reason"] == "request-block.blocked"
        assert r.headers["x-request-id"]
        body = {"model": "m", "messages": [{"role": "user", "content": "pass\u0077ord"}]}
        r = await http.post(
            "/v1/chat/completions", content=json.dumps(body), headers={"authorization": "Bearer ck-alice"}
        )
        assert r.status_code == 404 and r.json() == {"blocked": True, "hint": "no passwords"}
        r = await http.get("/plain/v1/models", params={"q": "password"})
        assert r.status_code == 403
        assert r.json()["error"]["message"] == "plain text refusal"
        assert r.json()["error"]["code"] == "request_blocked"
        r = await http.get("/v1/models", headers={"authorization": "Bearer ck-alice"})
        assert r.status_code == 200
    assert all(req["path"] == "/v1/models" for req in mock_requests())
    gw.wait_for_stdout(lambda lines: len(lines) >= 4)
    log = gw.access_log()
    assert [line["status"] for line in log] == [404, 404, 403, 200]
    assert [line["reason"] for line in log[:3]] == ["request-block.blocked"] * 3


async def test_a_blocked_request_with_a_valid_key_is_recorded_with_its_consumer(gateway: Any, mock_llm: Any) -> None:
    gw = gateway(GATEWAY.format(mock=mock_llm.url))
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        r = await http.get("/v1/models", params={"q": "password"}, headers={"authorization": "Bearer ck-alice"})
        assert r.status_code == 404
    gw.wait_for_stdout(lambda lines: len(lines) >= 1)
    assert gw.access_log()[0]["consumer"] == "alice"


OPEN = """
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: mock, type: openai, baseUrl: "{mock}/v1", apiTokens: [sk-provider-1]}}
routes:
  - {{name: chat, path_prefix: /v1/, provider: mock}}
plugins:
  - name: request-block
    failure_mode: open
    defaultConfig:
      block_bodies: [password, project falcon]
"""


async def test_unicode_tricks_in_every_api_are_blocked_and_nothing_reaches_the_provider(
    gateway: Any, mock_llm: Any, mock_requests: Any
) -> None:
    gw = gateway(OPEN.format(mock=mock_llm.url))
    tricks = [
        "ｐａｓｓｗｏｒｄ",
        "pass\u200bword",
        "pass\u00adword",
        "project\u2060 falcon",
        "ｐｒｏｊｅｃｔ\u3000falcon",
        # A phrase broken by a line break, a tab or a doubled space is the phrase.
        "project\nfalcon",
        "project\tfalcon",
        "project  falcon",
        "project \r\n falcon",
    ]
    bodies: list[tuple[str, Callable[[str], dict[str, Any]]]] = [
        ("/v1/responses", lambda t: {"model": "m", "input": [{"role": "user", "content": t}]}),
        ("/v1/responses", lambda t: {"model": "m", "input": "hi", "instructions": t}),
        ("/v1/messages/count_tokens", lambda t: {"model": "m", "messages": [{"role": "user", "content": t}]}),
        ("/v1/chat/completions", lambda t: {"model": "m", "messages": [], "tools": [
            {"type": "function", "function": {"name": "f", "description": t}}]}),
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        for trick in tricks:
            for path, body in bodies:
                for ensure_ascii in (False, True):  # as UTF-8, and JSON-escaped
                    content = json.dumps(body(trick), ensure_ascii=ensure_ascii).encode()
                    r = await http.post(path, content=content, headers={"content-type": "application/json"})
                    assert r.status_code == 403, (trick, path, r.text)
                    assert r.headers["x-tollway-reason"] == "request-block.blocked"
        clean = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        r = await http.post("/v1/chat/completions", json=clean)
        assert r.status_code == 200
    # The clean call reached the provider, and only it.
    assert [req["path"] for req in mock_requests()] == ["/v1/chat/completions"]


LOOKALIKES = """
providers:
  - {{id: mock, type: openai, baseUrl: "{mock}/v1", apiTokens: [sk-provider]}}
routes:
  - {{name: main, path_prefix: /v1/, provider: mock}}
plugins:
  - name: request-block
    defaultConfig:
      block_bodies: [password, sk-live-]
"""


async def test_lookalike_letters_and_other_dashes_are_blocked_and_other_scripts_pass(
    gateway: Any, mock_llm: Any, mock_requests: Any
) -> None:
    gw = gateway(LOOKALIKES.format(mock=mock_llm.url))
    tricks = [
        "p\u0430ssword",  # a Cyrillic а
        "\u0440\u0430\u0455\u0455word",  # р, а, ѕ, ѕ: Cyrillic
        "passw\u03bfrd",  # a Greek ο
        "sk\u2011live-0123",  # a non-breaking hyphen
        "sk\u2013live\u2014abc",  # en and em dash
        "sk\u2212live\uff0dxyz",  # minus sign, fullwidth hyphen-minus
        "sk\u2043live-x",  # a hyphen bullet
        "p\u03b1ssword",  # a Greek α
        "\u0440\u0430\u0455\u0455\u051d\u043e\u0433\u0501",  # раѕѕԝогԁ: all Cyrillic
        "\u0440\u0430\u0455\u0455\u051d\u043e\u0433\u0501 \u0436",  # … beside a Cyrillic letter
        "passw\u0585rd",  # an Armenian օ
    ]
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        for trick in tricks:
            for ensure_ascii in (False, True):
                body = {"model": "m", "messages": [{"role": "user", "content": f"my {trick} is here"}]}
                content = json.dumps(body, ensure_ascii=ensure_ascii).encode()
                headers = {"content-type": "application/json"}
                r = await http.post("/v1/chat/completions", content=content, headers=headers)
                assert r.status_code == 403, (trick, ensure_ascii, r.text)
                assert r.headers["x-tollway-reason"] == "request-block.blocked"
        # Russian and Greek words are not Latin ones: "пароль" (password), a word of
        # lookalikes and others ("Москва"), Greek prose.
        others = ["\u043f\u0430\u0440\u043e\u043b\u044c", "\u041c\u043e\u0441\u043a\u0432\u0430"]
        others.append("\u03ba\u03b1\u03bb\u03b7")
        for text in others:
            body = {"model": "m", "messages": [{"role": "user", "content": text}]}
            r = await http.post("/v1/chat/completions", json=body)
            assert r.status_code == 200, (text, r.text)
    assert len(mock_requests()) == 3


async def test_a_deeply_nested_body_is_refused_under_failure_mode_open(
    gateway: Any, mock_llm: Any, mock_requests: Any
) -> None:
    gw = gateway(OPEN.format(mock=mock_llm.url))
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        for depth in (65, 1000, 30_000):
            nested = b'{"model": "m", "messages": ' + b"[" * depth + b'"pass\\u0077ord"' + b"]" * depth + b"}"
            r = await http.post("/v1/chat/completions", content=nested, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (depth, r.status_code, r.text)
    assert mock_requests() == []


async def test_block_bodys_higress_cpp_spelling_blocks_bodies(gateway: Any, mock_llm: Any) -> None:
    gw = gateway(GATEWAY.format(mock=mock_llm.url).replace("block_bodies: [password]", "block_bodys: [secret]"))
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        body = {"model": "m", "messages": [{"role": "user", "content": "my secret"}]}
        r = await http.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer ck-alice"})
        assert r.status_code == 404 and r.headers["x-tollway-reason"] == "request-block.blocked"


async def test_a_megabyte_of_escaped_non_latin_text_is_looked_through_and_blocked(
    gateway: Any, mock_llm: Any, mock_requests: Any
) -> None:
    """A body this large is looked through on a thread of its own (plugins/request_block's
    ``OFF_LOOP_BYTES``): a phrase hidden at its end behind escapes and lookalikes is still
    found, a clean one still passes, and calls made meanwhile are answered."""
    gw = gateway(OPEN.format(mock=mock_llm.url))
    prose = "Проект сокол+это%20секрет, "
    filler = prose * (1024 * 1024 // len(prose.encode()))
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
        for ending, status in (("prоject+f%61lcon", 403), ("project eagle", 200)):
            body = {"model": "m", "messages": [{"role": "user", "content": filler + ending}]}
            big = asyncio.create_task(http.post("/v1/chat/completions", json=body))
            small = await http.post(
                "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            )
            assert small.status_code == 200
            r = await big
            assert r.status_code == status, (ending, r.text[:200])
    assert len(mock_requests()) == 3
