"""``GET /readyz`` on the admin port (SPEC §13): 200 while the database and the state
store answer, 503 naming the one that does not, and back to 200 once it returns;
``/healthz`` stays liveness only. Against a real ``tollway serve`` and a private
redis-server that the test kills."""

from __future__ import annotations

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


@pytest.mark.postgres
def test_503_naming_the_database_while_postgresql_is_away(gateway: GatewayFactory, pg_url: str) -> None:
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.start()
    try:
        gw = gateway(CONFIG.format(state="memory").replace("sqlite:///./tollway.db", _via(pg_url, proxy.port)))
        with httpx.Client(base_url=gw.admin_url, timeout=10) as admin:
            assert admin.get("/readyz").json()["checks"]["database"] == "ok"
            proxy.stop()
            down = admin.get("/readyz")
            assert down.status_code == 503
            reason = down.json()["checks"]["database"]
            assert reason != "ok" and "postgresql" in reason
            proxy.start()
            assert admin.get("/readyz").status_code == 200
    finally:
        proxy.close()


def _via(url: str, port: int) -> str:
    return url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
