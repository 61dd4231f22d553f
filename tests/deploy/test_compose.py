"""deploy/compose.yaml's topology, run without containers (this machine reaches no
container registry) from the compose file's own commands, environment and mounts: two
``tollway serve`` on deploy/tollway.yaml behind Debian's nginx with deploy/nginx.conf,
on the local PostgreSQL (a fresh schema of the ``test`` database) and Redis (a key
prefix of its own). Calls through nginx reach both replicas, a consumer added on one is
known to the other, the per-consumer limit holds across both (its counter is in Redis),
both replicas' records land in the one database, the probes the Kubernetes manifests use
answer without the token, and nginx keeps serving when a replica is killed."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Proc, start_process
from tests.support.deploy_support import DEPLOY, SECRETS, require_tool
from tests.support.redis_support import free_port, redis_prefix, redis_url  # noqa: F401  (fixtures)
from tests.support.usage_support import eventually

ADMIN = {"authorization": f"Bearer {SECRETS['TOLLWAY_ADMIN_TOKEN']}"}
REPLICAS = ("tollway-1", "tollway-2")
# The compose file's per-consumer limit, made small (TOLLWAY_CONSUMER_RPM) to be reached.
LIMIT = 8


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def _local_env(service: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    """The service's environment as compose gives it, with this machine's addresses."""
    env: dict[str, str] = {}
    for name, value in service["environment"].items():
        # "${VAR:?message}" must come from the caller's environment; "${VAR:-default}" may.
        m = re.fullmatch(r"\$\{(\w+)(?::([?-])(.*))?\}", str(value))
        if m is None:
            env[name] = str(value)
        elif m.group(1) in SECRETS:
            env[name] = SECRETS[m.group(1)]
        else:
            assert m.group(2) == "-", f"{name} needs {m.group(1)}, which the test does not set"
            env[name] = m.group(3)
    return env | overrides


def _config_in(service: dict[str, Any]) -> Path:
    """The host file the service mounts at the path its command names."""
    command = service["command"]
    target = command[command.index("-c") + 1]
    (mount,) = [str(v) for v in service["volumes"] if str(v).split(":")[1] == target]
    return (DEPLOY / mount.split(":")[0]).resolve()


def _start_nginx(nginx: str, folder: Path, replicas: list[Proc]) -> tuple[subprocess.Popen[bytes], str]:
    """deploy/nginx.conf with the replicas' and its own addresses made local."""
    conf = (DEPLOY / "nginx.conf").read_text()
    for name, replica in zip(REPLICAS, replicas, strict=True):
        conf, n = re.subn(rf"server {name}:8080", f"server {replica.url.removeprefix('http://')}", conf)
        assert n == 1, f"nginx.conf has no upstream line for {name}"
    port = free_port()
    conf, n = re.subn(r"listen 8080;", f"listen 127.0.0.1:{port};", conf)
    assert n == 1
    (folder / "nginx.conf").write_text(conf)
    popen = subprocess.Popen(
        [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf"),
         "-g", f"daemon off; pid {folder}/nginx.pid; error_log {folder}/error.log;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/", timeout=1)
            return popen, url
        except httpx.TransportError:
            time.sleep(0.05)
    popen.kill()
    popen.wait(10)
    log = folder / "error.log"
    raise RuntimeError("nginx did not start: " + (log.read_text() if log.exists() else "no error log"))


def _served(replica: Proc) -> int:
    """How many calls the replica has logged (stdout: one JSON line per call)."""
    return sum(1 for line in replica.stdout_lines if '"request_id"' in line)


def _chat(base: str, key: str) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    return httpx.post(base + "/v1/chat/completions", json=body, headers={"x-api-key": key}, timeout=10)


def _add_consumer(replica: Proc, name: str) -> str:
    made = httpx.post(replica.admin_url + "/api/consumers", json={"name": name}, headers=ADMIN, timeout=10)
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


def _known_to(replica: Proc, key: str) -> None:
    """Waits until ``replica`` admits the key (a consumer made on another one), with one call."""
    deadline = time.monotonic() + 10
    while (status := _chat(replica.url, key).status_code) == 401:
        assert time.monotonic() < deadline, "the consumer never reached the other replica"
        time.sleep(0.05)
    assert status == 200


def _requests_of(replica: Proc, consumer: str) -> int:
    rows = httpx.get(replica.admin_url + "/api/usage", params={"by": "consumer"}, headers=ADMIN, timeout=10)
    return int(sum(r["requests"] for r in rows.json()["rows"] if r["key"] == consumer))


def test_the_compose_file_names_the_topology() -> None:
    services = _compose()["services"]
    assert set(services) == {*REPLICAS, "nginx", "postgres", "redis"}
    # The database must exist before Tollway starts: the postgres image creates it.
    postgres = services["postgres"]["environment"]
    for name in REPLICAS:
        service = services[name]
        url = service["environment"]["TOLLWAY_DATABASE_URL"]
        assert url.rsplit("/", 1)[1] == postgres["POSTGRES_DB"] and url.startswith("postgresql://")
        assert service["environment"]["TOLLWAY_STATE_URL"].startswith("redis://redis:")
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert any(str(v).endswith(":/var/lib/tollway") for v in service["volumes"])  # a journal each
    assert services["nginx"]["volumes"] == ["./nginx.conf:/etc/nginx/tollway.conf:ro"]


@pytest.mark.postgres
def test_two_replicas_serve_through_nginx_on_postgresql_and_redis(
    tmp_path: Path,
    pg_url: str,
    redis_url: str,  # noqa: F811  (the fixture)
    mock_llm: Proc,
) -> None:
    nginx_binary = require_tool("nginx", "nginx", "/usr/sbin/nginx")
    services = _compose()["services"]
    replicas: list[Proc] = []
    nginx: subprocess.Popen[bytes] | None = None
    try:
        for name in REPLICAS:
            service = services[name]
            folder = tmp_path / name
            folder.mkdir()
            env = _local_env(
                service,
                {
                    "TOLLWAY_DATABASE_URL": pg_url,
                    "TOLLWAY_STATE_URL": redis_url,
                    "OPENAI_BASE_URL": mock_llm.url + "/v1",
                    "TOLLWAY_DATA_FOLDER": str(folder / "data"),
                    "TOLLWAY_TRUSTED_PROXY": "127.0.0.1/32",
                    "TOLLWAY_CONSUMER_RPM": str(LIMIT),
                },
            )
            args = [*service["command"], "--port", "0", "--admin-port", "0"]
            args[args.index("-c") + 1] = str(_config_in(service))
            replicas.append(start_process(args, cwd=folder, env=env))
        nginx, url = _start_nginx(nginx_binary, tmp_path, replicas)

        # The probes of deploy/kubernetes need no token; the rest of the admin API does.
        for replica in replicas:
            for probe in ("/healthz", "/readyz"):
                assert httpx.get(replica.admin_url + probe, timeout=10).status_code == 200, probe
            assert httpx.get(replica.admin_url + "/api/usage", timeout=10).status_code == 401

        # A consumer added on replica 1 reaches replica 2 through PostgreSQL; its limit holds
        # across both through Redis. The window is the clock's minute: a burst that straddles
        # two is tried again with a new consumer rather than waited out.
        for attempt in range(3):
            consumer = f"alice{attempt}"
            key = _add_consumer(replicas[0], consumer)
            window = time.time() // 60
            _known_to(replicas[1], key)  # one call, counted on replica 2
            before = [_served(r) for r in replicas]
            statuses = [_chat(url, key).status_code for _ in range(LIMIT + 1)]
            if time.time() // 60 == window:
                break
        else:
            pytest.fail("every burst straddled two minutes")
        assert statuses == [200] * (LIMIT - 1) + [429, 429]
        # nginx sent the burst to both replicas (each would have admitted 8 on its own).
        assert all(_served(r) > b for r, b in zip(replicas, before, strict=True))

        # Both replicas store into the one database: replica 2 sees replica 1's calls too.
        eventually(lambda: _requests_of(replicas[1], consumer) == LIMIT + 2)

        # Replica 1 dies: nginx passes it over, and replica 2 still knows bob (added on 1).
        bob = _add_consumer(replicas[0], "bob")
        _known_to(replicas[1], bob)
        replicas[0].stop(signal.SIGKILL)
        assert [_chat(url, bob).status_code for _ in range(4)] == [200] * 4
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        for replica in replicas:
            replica.stop()
