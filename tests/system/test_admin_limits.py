"""The admin listener's limits (SPEC §14) on real sockets: the token is checked before a
byte of the body is read, bodies are capped at 1 MiB, a stalled body is 408, and query
values out of range are 400, never 500.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import Proc, start_process
from tests.support.raw_http import read_answer

TOKEN = "admin-token-1"
BODY_S = 0.5
CONFIG = f"""
server: {{body_timeout_s: {BODY_S}}}
admin: {{token: {TOKEN}}}
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: m, type: mock}}
routes:
  - {{name: chat, path_prefix: /v1/, provider: m}}
"""
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    folder: Path = tmp_path_factory.mktemp("admin-limits")
    (folder / "tollway.yaml").write_text(CONFIG)
    proc = start_process(["serve", "-c", "tollway.yaml", "--port", "0", "--admin-port", "0"], cwd=folder)
    yield proc
    assert proc.stop() == 0


def admin_socket(gw: Proc) -> socket.socket:
    host, port = gw.admin_url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def test_a_200_mb_body_without_the_token_is_401_before_it_is_sent(gw: Proc) -> None:
    with admin_socket(gw) as sock:
        sock.sendall(b"POST /api/consumers HTTP/1.1\r\nHost: admin\r\nContent-Length: 200000000\r\n\r\n")
        sock.sendall(b'{"name": "' + b"x" * 8192)
        # Only 8 KB of the 200 MB were sent, and nothing more will be: the answer cannot
        # be waiting for the body.
        r = read_answer(sock)
        assert r.status_code == 401
        assert orjson.loads(r.content)["error"]["message"] == "admin token required"
    assert httpx.get(gw.admin_url + "/api/consumers", headers=AUTH).status_code == 200


def test_a_body_over_1_mib_with_the_token_is_413(gw: Proc) -> None:
    big = orjson.dumps({"name": "x" * (2 * 1024 * 1024)})
    r = httpx.post(gw.admin_url + "/api/consumers", content=big, headers=AUTH)
    assert r.status_code == 413
    assert "1048576" in r.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap holds as the body arrives
        for _ in range(32):
            yield b"x" * 65536

    r = httpx.post(gw.admin_url + "/api/consumers", content=chunks(), headers=AUTH)
    assert r.status_code == 413
    assert httpx.get(gw.admin_url + "/api/consumers", headers=AUTH).json()["consumers"] == []


def test_a_body_of_1_mib_is_read(gw: Proc) -> None:
    body = b'{"name": "big"' + b" " * (1024 * 1024 - 15) + b"}"
    assert len(body) == 1024 * 1024
    r = httpx.post(gw.admin_url + "/api/consumers", content=body, headers=AUTH)
    assert r.status_code == 201, r.text
    assert httpx.delete(gw.admin_url + "/api/consumers/big", headers=AUTH).status_code == 204


def test_a_stalled_admin_body_is_408(gw: Proc) -> None:
    with admin_socket(gw) as sock:
        sock.sendall(
            f"POST /api/consumers HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Length: 100\r\n\r\n".encode()
            + b'{"name": '
        )
        started = time.monotonic()
        assert read_answer(sock).status_code == 408
        assert time.monotonic() - started >= BODY_S * 0.9


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/api/usage", {"since": "99999999999d"}, "since"),
        ("/api/usage", {"since": "9" * 5000 + "d"}, "since"),
        ("/api/usage", {"until": "0001-01-01T00:00:00+05:00"}, "until"),
        ("/api/usage", {"by": "nothing"}, "by"),
        ("/api/requests", {"since": "999999999999w"}, "since"),
        ("/api/requests", {"limit": "0"}, "limit"),
        ("/api/requests", {"limit": "-5"}, "limit"),
        ("/api/requests", {"limit": "1000000"}, "limit"),
        ("/api/requests", {"limit": "9" * 5000}, "limit"),
        ("/api/requests", {"limit": "ten"}, "limit"),
        ("/api/requests", {"consumer": "bob\x00"}, "consumer"),
        ("/api/usage", {"consumer": "\x1b[31m"}, "consumer"),
    ],
)
def test_query_values_out_of_range_are_400(gw: Proc, path: str, params: dict[str, str], named: str) -> None:
    r = httpx.get(gw.admin_url + path, params=params, headers=AUTH)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith(named)


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/api/consumers/a%00b"), ("GET", "/api/consumers/%1b%5b31m"), ("PATCH", "/api/groups/a%00"),
     ("DELETE", "/api/groups/%7f"), ("GET", "/dashboard/%00"), ("GET", "/api/nowhere%0a")],
)  # fmt: skip
def test_a_name_with_control_characters_is_400_not_a_database_failure(gw: Proc, method: str, path: str) -> None:
    r = httpx.request(method, gw.admin_url + path, headers=AUTH, json={} if method == "PATCH" else None)
    assert r.status_code == 400, r.text
    assert "control characters" in r.json()["error"]["message"]


def test_an_admin_body_is_read_as_strictly_as_the_data_planes(gw: Proc) -> None:
    """An audited action must have one meaning: ``{"name":"x","name":"y"}`` made ``y``."""
    r = httpx.post(gw.admin_url + "/api/consumers", content=b'{"name": "x", "name": "y"}', headers=AUTH)
    assert r.status_code == 400 and 'the key "name" twice' in r.json()["error"]["message"], r.text
    assert httpx.get(gw.admin_url + "/api/consumers/y", headers=AUTH).status_code == 404
    r = httpx.post(gw.admin_url + "/api/consumers", content=b'{"name": ', headers=AUTH)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


def test_the_widest_window_and_largest_limit_are_served(gw: Proc) -> None:
    window = {"since": "0001-01-01", "until": "9999-12-31"}
    assert httpx.get(gw.admin_url + "/api/usage", params=window, headers=AUTH).status_code == 200
    r = httpx.get(gw.admin_url + "/api/requests", params={**window, "limit": "1000"}, headers=AUTH)
    assert r.status_code == 200, r.text
