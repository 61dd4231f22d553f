"""The admin API against web pages elsewhere (admin/origin.py), on real sockets.

Without a token (the quickstart's loopback admin), a page the operator visits could
point a name of its own at 127.0.0.1 (DNS rebinding) and read the usage data or make a
consumer: only loopback names are answered. Token or not, a request that names another
origin is refused; the dashboard's own calls, the CLI and scripts still get through.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Proc, start_process
from tests.support.raw_http import read_answer

TOKEN = "admin-token-2"
CONFIG = """
{admin}
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: m, type: mock}}
routes:
  - {{name: chat, path_prefix: /v1/, provider: m}}
"""


def _serve(folder: Path, admin: str) -> Proc:
    (folder / "tollway.yaml").write_text(CONFIG.format(admin=admin))
    return start_process(["serve", "-c", "tollway.yaml", "--port", "0", "--admin-port", "0"], cwd=folder)


@pytest.fixture(scope="module")
def open_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = _serve(tmp_path_factory.mktemp("admin-open"), "")
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def token_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = _serve(tmp_path_factory.mktemp("admin-token"), f"admin: {{token: {TOKEN}}}")
    yield proc
    assert proc.stop() == 0


def _port(gw: Proc) -> str:
    return gw.admin_url.rsplit(":", 1)[1]


def _consumers(gw: Proc, headers: dict[str, str] | None = None) -> list[str]:
    r = httpx.get(gw.admin_url + "/api/consumers", headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    return [c["name"] for c in r.json()["consumers"]]


@pytest.mark.parametrize("host", ["tollway.attacker.example", "192.168.1.20", "127.0.0.1.nip.io"])
def test_without_a_token_a_rebound_name_gets_nothing(open_admin: Proc, host: str) -> None:
    for method, path in (("GET", "/api/usage"), ("GET", "/api/consumers"), ("POST", "/api/consumers")):
        r = httpx.request(method, open_admin.admin_url + path, headers={"host": f"{host}:{_port(open_admin)}"},
                          json={"name": "planted"}, timeout=10)  # fmt: skip
        assert r.status_code == 403, (method, path, r.text)
        assert "loopback" in r.json()["error"]["message"]
    assert "planted" not in _consumers(open_admin)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.0.0.2", "[::1]", "dash.localhost"])
def test_without_a_token_loopback_names_are_answered(open_admin: Proc, host: str) -> None:
    r = httpx.get(open_admin.admin_url + "/api/usage", headers={"host": f"{host}:{_port(open_admin)}"}, timeout=10)
    assert r.status_code == 200, r.text


def test_a_request_from_another_origin_is_refused(open_admin: Proc, token_admin: Proc) -> None:
    """A page elsewhere posting to 127.0.0.1 (a "simple" request needs no preflight):
    refused before the token is looked at; the dashboard's own origin is fine."""
    for gw, auth in ((open_admin, {}), (token_admin, {"authorization": f"Bearer {TOKEN}"})):
        body = {"name": "csrf"}
        for origin in ("https://attacker.example", "null", f"http://localhost:{_port(gw)}"):
            r = httpx.post(gw.admin_url + "/api/consumers", json=body, headers={**auth, "origin": origin}, timeout=10)
            assert r.status_code == 403 and "origin" in r.json()["error"]["message"], (origin, r.text)
        assert "csrf" not in _consumers(gw, auth)
        own = gw.admin_url  # http://127.0.0.1:PORT: what the dashboard's page sends
        made = httpx.post(gw.admin_url + "/api/consumers", json=body, headers={**auth, "origin": own}, timeout=10)
        assert made.status_code == 201, made.text
        assert "csrf" in _consumers(gw, auth)


def test_with_a_token_any_host_name_may_reach_it(token_admin: Proc) -> None:
    """Behind a proxy that passes its own Host: the token is what guards it."""
    headers = {"host": "admin.example.org", "authorization": f"Bearer {TOKEN}"}
    assert httpx.get(token_admin.admin_url + "/api/usage", headers=headers, timeout=10).status_code == 200
    no_token = httpx.get(token_admin.admin_url + "/api/usage", headers={"host": "admin.example.org"}, timeout=10)
    assert no_token.status_code == 401


def test_an_http_1_1_request_without_host_is_400(open_admin: Proc) -> None:
    host, port = open_admin.admin_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /api/usage HTTP/1.1\r\n\r\n")
        r = read_answer(sock)
    assert r.status_code == 400 and b"Host" in r.content


@pytest.mark.parametrize(
    "host", [b"", b"evil.example#.localhost", b"evil.example%23.localhost", b"127.0.0.1@evil.example", b"a b.localhost"]
)
def test_a_host_that_names_no_listener_is_400(open_admin: Proc, host: bytes) -> None:
    """An empty Host, or one with characters no host name has: no loopback name, and no
    name at all, whatever it ends with."""
    address, port = open_admin.admin_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((address, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /api/usage HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        r = read_answer(sock)
    assert r.status_code == 400 and b"Host" in r.content, (host, r.content)
