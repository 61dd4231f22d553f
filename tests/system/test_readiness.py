"""``GET /readyz`` on the admin port (SPEC §13): 200 while the database and the state
store answer, 503 naming the one that does not, and back to 200 once it returns;
``/healthz`` stays liveness only. Against a real ``tollway serve`` and a private
redis-server that the test kills."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import GatewayFactory
from tests.support.redis_support import RedisServer, redis_server  # noqa: F401
from tests.support.tcp_proxy_support import TcpProxy

CONFIG = """
admin: {{token: admin-secret}}
storage: {{database: "sqlite:///./tollway.db", state: "{state}"}}
providers:
  - {{id: m, type: mock}}
routes:
  - {{name: main, path_prefix: /v1/, provider: m}}
"""


def test_ready_while_database_and_state_answer_and_503_naming_the_state_store_when_it_does_not(
    gateway: GatewayFactory,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    gw = gateway(CONFIG.format(state=redis_server.url))
    with httpx.Client(base_url=gw.admin_url, timeout=10) as admin:
        # Public, like /healthz: a probe carries no token.
        ready = admin.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"ready": True, "checks": {"config": "ok", "database": "ok", "state": "ok"}}

        redis_server.stop()
        down = admin.get("/readyz")
        assert down.status_code == 503
        checks = down.json()["checks"]
        assert checks["database"] == "ok" and checks["config"] == "ok"
        assert checks["state"] != "ok" and f"127.0.0.1:{redis_server.port}" in checks["state"]
        assert admin.get("/healthz").status_code == 200  # alive all the same
        assert "admin-secret" not in down.text

        redis_server.start()
        for _ in range(50):
            if admin.get("/readyz").status_code == 200:
                break
        assert admin.get("/readyz").json()["ready"] is True


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[TcpProxy]:
    """A proxy to the test's PostgreSQL that a test can stop or black-hole."""
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.start()
    yield proxy
    proxy.close()


def _via(gateway: GatewayFactory, pg_url: str, proxy: TcpProxy) -> httpx.Client:
    """An admin client of a gateway whose database is reached through ``proxy``."""
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    gw = gateway(CONFIG.format(state="memory").replace("sqlite:///./tollway.db", url))
    return httpx.Client(base_url=gw.admin_url, timeout=10)


@pytest.mark.postgres
def test_503_naming_the_database_while_postgresql_is_away_or_hangs(
    gateway: GatewayFactory, pg_url: str, pg_proxy: TcpProxy
) -> None:
    with _via(gateway, pg_url, pg_proxy) as admin:
        assert admin.get("/readyz").json()["checks"]["database"] == "ok"
        pg_proxy.stop()
        down = admin.get("/readyz")
        assert down.status_code == 503
        reason = down.json()["checks"]["database"]
        assert reason != "ok" and "postgresql" in reason
        pg_proxy.start()
        assert admin.get("/readyz").status_code == 200

        # Connections accepted, nothing answered: a cancelled query waits for the server
        # to confirm the cancel (its whole 30 s timeout), which a probe must not wait for.
        # The client's 10 s is a bound far above the check's 2 s: no timing is asserted.
        pg_proxy.blackhole()
        for _ in range(3):  # again while the first check is still ending: no pile-up, no wait
            hung = admin.get("/readyz")
            assert hung.status_code == 503
            assert hung.json()["checks"] == {"config": "ok", "database": "no answer within 2s", "state": "ok"}
        assert admin.get("/healthz").status_code == 200
        # The consumer routes give up at the database driver's timeouts (docs/admin-api.md).
        listed = admin.get("/api/consumers", headers={"authorization": "Bearer admin-secret"}, timeout=60)
        assert listed.status_code == 503 and "database unavailable" in listed.json()["error"]["message"]
        pg_proxy.stop()
        pg_proxy.start()
        for _ in range(100):
            if admin.get("/readyz").status_code == 200:
                break
        assert admin.get("/readyz").json()["ready"] is True
