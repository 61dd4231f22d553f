"""Routing (SPEC §2) through a real gateway: each request reaches the most specific route
(host pattern, exact path, regex, prefix, method). The route table itself is tested in
tests/unit/routing/."""

from __future__ import annotations

from typing import Any

import httpx

GATEWAY = """
storage: {database: "sqlite:///./tollway.db"}
providers:
  - {id: mock, type: mock}
routes:
  - {name: any, path_prefix: /v1/, provider: mock}
  - {name: wild, domains: ["*.example.com"], path_prefix: /v1/, provider: mock}
  - {name: exact-host, domains: [api.example.com], path_prefix: /v1/, provider: mock}
  - {name: models, path: /v1/models, methods: [GET], provider: mock}
  - {name: regex, path_regex: "^/v[0-9]+/embeddings$", methods: [POST], provider: mock}
"""

CASES = [
    ("POST", "gw.local", "/v1/chat/completions", "any"),
    ("POST", "api.example.com:443", "/v1/chat/completions", "exact-host"),
    ("POST", "WEB.example.com", "/v1/chat/completions", "wild"),
    ("GET", "gw.local", "/v1/models", "models"),
    ("GET", "api.example.com", "/v1/models", "models"),
    ("POST", "gw.local", "/v1/embeddings", "regex"),
    ("GET", "gw.local", "/v2/models", None),
    ("POST", "gw.local", "/other", None),
]


async def test_requests_reach_the_most_specific_route(gateway: Any) -> None:
    gw = gateway(GATEWAY)
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "input": "hi"}
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        for method, host, path, expected in CASES:
            r = await http.request(method, path, headers={"host": host}, json=body if method == "POST" else None)
            if expected is None:
                assert r.status_code == 404, (method, host, path)
                assert r.json()["error"]["code"] == "route_not_found"
                assert r.headers["x-tollway-reason"] == "gateway.no_route"
            else:
                assert r.status_code == 200, (method, host, path, r.text)
    gw.wait_for_stdout(lambda lines: len(lines) >= len(CASES))
    assert [line["route"] for line in gw.access_log()] == [expected for *_, expected in CASES]
