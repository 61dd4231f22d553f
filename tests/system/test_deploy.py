"""The deployment files in the repository (SPEC §13), each tested as far as this machine
allows:

- the Kubernetes manifests validate against the Kubernetes schemas (kubernetes-validate,
  strict), probe the admin port's /healthz and /readyz, run as non-root, and take every
  secret from the Secret the example names;
- every config file (the replicas', the container image's, the ConfigMap's) passes
  ``tollway check``, and the ConfigMap carries the replicas' config;
- the systemd unit passes ``systemd-analyze verify``;
- the compose stack's topology runs without containers, from the compose file's own
  command and environment: two ``tollway serve`` behind Debian's nginx (with
  deploy/nginx.conf), on PostgreSQL and Redis: both replicas serve, a consumer added on
  one is known to the other, the per-consumer limit holds across both, and nginx keeps
  serving when a replica dies;
- the image builds and runs under podman, where a base image can be had (these machines
  reach no container registry: the test says so and skips).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from tests.conftest import Proc, start_process
from tests.support.redis_support import redis_prefix, redis_url  # noqa: F401
from tests.support.usage_support import eventually
from tollway.config.envsubst import substitute

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
TOLLWAY = Path(sys.executable).parent / "tollway"
K8S_VERSION = "1.30.0"
# What the config files need from the environment (no defaults for secrets).
SECRETS = {
    "TOLLWAY_ADMIN_TOKEN": "deploy-test-admin-token",
    "OPENAI_API_KEY": "sk-deploy-test",
    "TOLLWAY_DATABASE_URL": "postgresql://tollway@db:5432/tollway",
    "TOLLWAY_STATE_URL": "redis://redis:6379/0",
}


def _config(text: str) -> dict[str, Any]:
    """A config file's content as the gateway reads it (``${VAR}`` substituted first)."""
    loaded: dict[str, Any] = yaml.safe_load(substitute(text, SECRETS))
    return loaded


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}#{i}", doc)
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for i, doc in enumerate(_documents(path))
    ]


def _of_kind(kind: str) -> dict[str, Any]:
    (found,) = [doc for _, doc in _manifests() if doc["kind"] == kind]
    return found


@pytest.mark.parametrize(("where", "manifest"), _manifests(), ids=[w for w, _ in _manifests()])
def test_each_kubernetes_manifest_validates_against_the_schemas(where: str, manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_the_manifests_are_the_ones_a_deployment_needs() -> None:
    kinds = sorted(doc["kind"] for _, doc in _manifests())
    assert kinds == sorted(
        ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret", "Service", "Service"]
    )
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    # Everything but the example Secret, which holds no real values, is applied.
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}


def test_the_deployment_probes_the_admin_port_and_runs_as_no_one_in_particular() -> None:
    deployment = _of_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = _config(_of_kind("ConfigMap")["data"]["tollway.yaml"])
    assert ports == {"http": config["server"]["port"], "admin": config["admin"]["port"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The journal's folder is a writable volume; the config is mounted read-only.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/tollway"]["readOnly"] is True and "/var/lib/tollway" in mounts
    assert pod["terminationGracePeriodSeconds"] > 30  # server.shutdown_timeout_s, then the last records
    # Every secret comes from the Secret, and the example has every key.
    secret_keys = set(_of_kind("Secret")["stringData"])
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert {ref["name"] for ref in refs.values()} == {_of_kind("Secret")["metadata"]["name"]}
    assert {ref["key"] for ref in refs.values()} == secret_keys
    # The config needs no variable without a default that the pod does not set.
    needed = set(re.findall(r"\$\{([A-Z_]+)\}", _of_kind("ConfigMap")["data"]["tollway.yaml"]))
    assert needed <= set(refs)
    selector = deployment["spec"]["selector"]["matchLabels"]
    for kind in ("PodDisruptionBudget",):
        assert _of_kind(kind)["spec"]["selector"]["matchLabels"] == selector
    assert _of_kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


def _check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "TOLLWAY_CONFIG" and k not in SECRETS} | env
    return subprocess.run(
        [str(TOLLWAY), "check", "-c", str(config)], capture_output=True, text=True, env=full, timeout=60
    )


def test_every_config_file_passes_tollway_check(tmp_path: Path) -> None:
    from_configmap = tmp_path / "configmap-tollway.yaml"
    from_configmap.write_text(_of_kind("ConfigMap")["data"]["tollway.yaml"])
    for config in (DEPLOY / "tollway.yaml", DEPLOY / "container.yaml", from_configmap):
        done = _check(config, SECRETS)
        assert (done.returncode, done.stdout.strip()) == (0, "ok"), (config, done.stderr)
    # The admin token has no default: the replicas' config refuses to start without one.
    without = {k: v for k, v in SECRETS.items() if k != "TOLLWAY_ADMIN_TOKEN"}
    refused = _check(DEPLOY / "tollway.yaml", without)
    assert refused.returncode == 2 and "TOLLWAY_ADMIN_TOKEN" in refused.stdout + refused.stderr


def test_the_configmap_carries_the_replicas_config() -> None:
    assert _config(_of_kind("ConfigMap")["data"]["tollway.yaml"]) == _config((DEPLOY / "tollway.yaml").read_text())


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package has it)")
    unit = (DEPLOY / "systemd" / "tollway.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+) (.*)$", unit, re.M)
    assert exec_start is not None and exec_start.group(2) == "serve -c /etc/tollway/tollway.yaml"
    # verify wants the binary to exist: this venv's tollway stands in for /opt/tollway's.
    (tmp_path / "tollway.service").write_text(unit.replace(exec_start.group(1), str(TOLLWAY)))
    done = subprocess.run([analyze, "verify", str(tmp_path / "tollway.service")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- the compose topology, without containers ----------------------------------------------


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def _local_env(service: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    """The service's environment as compose gives it, with the addresses of this machine."""
    env: dict[str, str] = {}
    for name, value in service["environment"].items():
        # "${VAR:?message}" / "${VAR:-default}": compose's own substitution.
        m = re.fullmatch(r"\$\{(\w+)(?::[?-](.*))?\}", str(value))
        env[name] = SECRETS.get(m.group(1), m.group(2) or "") if m else str(value)
    return env | overrides


def _config_in(service: dict[str, Any]) -> Path:
    """The host file the service mounts at the path its command names."""
    command = service["command"]
    target = command[command.index("-c") + 1]
    (mount,) = [str(v) for v in service["volumes"] if str(v).split(":")[1] == target]
    return (DEPLOY / mount.split(":")[0]).resolve()


@pytest.fixture
def mock_provider(tmp_path: Path) -> Iterator[Proc]:
    proc = start_process(["mock-llm", "--port", "0"], cwd=tmp_path, want=("mock-llm",))
    yield proc
    proc.stop()


@pytest.fixture
def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        message = "nginx is not installed (apt-get install nginx)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _start_nginx(nginx: str, folder: Path, replicas: list[Proc]) -> tuple[subprocess.Popen[bytes], str]:
    conf = (DEPLOY / "nginx.conf").read_text()
    for i, replica in enumerate(replicas, 1):
        conf, n = re.subn(rf"server tollway-{i}:8080", f"server {replica.url.removeprefix('http://')}", conf)
        assert n == 1
    port = _free_port()
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _served_by(replica: Proc) -> int:
    return sum(1 for line in replica.stdout_lines if '"request_id"' in line)


@pytest.mark.postgres
def test_the_compose_topology_serves_through_nginx_from_two_replicas_on_postgresql_and_redis(
    tmp_path: Path,
    pg_url: str,
    redis_url: str,  # noqa: F811
    mock_provider: Proc,
    nginx_binary: str,
) -> None:
    compose = _compose()
    services = compose["services"]
    assert {"tollway-1", "tollway-2", "nginx", "postgres", "redis"} <= set(services)
    assert services["postgres"]["environment"]["POSTGRES_DB"]  # the database exists before Tollway starts
    replicas: list[Proc] = []
    nginx: subprocess.Popen[bytes] | None = None
    try:
        for name in ("tollway-1", "tollway-2"):
            service = services[name]
            assert service["command"][0] == "serve"
            folder = tmp_path / name
            folder.mkdir()
            env = _local_env(
                service,
                {
                    "TOLLWAY_DATABASE_URL": pg_url,
                    "TOLLWAY_STATE_URL": redis_url,
                    "OPENAI_BASE_URL": mock_provider.url + "/v1",
                    "TOLLWAY_DATA_FOLDER": str(folder / "data"),
                    "TOLLWAY_TRUSTED_PROXY": "127.0.0.1/32",
                    "TOLLWAY_CONSUMER_RPM": "8",
                },
            )
            args = [*service["command"], "--port", "0", "--admin-port", "0"]
            args[args.index("-c") + 1] = str(_config_in(service))
            replicas.append(start_process(args, cwd=folder, env=env))
        nginx, url = _start_nginx(nginx_binary, tmp_path, replicas)
        admin = {"authorization": f"Bearer {SECRETS['TOLLWAY_ADMIN_TOKEN']}"}
        keys: dict[str, str] = {}
        for name, replica in (("alice", replicas[0]), ("bob", replicas[0])):
            made = httpx.post(replica.admin_url + "/api/consumers", json={"name": name}, headers=admin, timeout=10)
            assert made.status_code == 201, made.text
            keys[name] = made.json()["key"]

        def chat(name: str, base: str = url) -> httpx.Response:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
            return httpx.post(base + "/v1/chat/completions", json=body, headers={"x-api-key": keys[name]}, timeout=10)

        # alice's 8 a minute hold across both replicas: the counter is in Redis. (The
        # window is the clock's minute: the burst must not straddle two of them.)
        if time.time() % 60 > 50:
            time.sleep(61 - time.time() % 60)
        deadline = time.monotonic() + 5
        while chat("alice", replicas[1].url).status_code == 401:  # replica 2 learns of alice within a second
            assert time.monotonic() < deadline
        statuses = [chat("alice").status_code for _ in range(9)]
        assert statuses == [200] * 7 + [429, 429]
        assert _served_by(replicas[0]) > 0 and _served_by(replicas[1]) > 0

        # Both replicas store into the one database: either one's admin API sees all.
        def alice_requests() -> int:
            rows = httpx.get(replicas[1].admin_url + "/api/usage", params={"by": "consumer"}, headers=admin, timeout=10)
            return int(sum(r["requests"] for r in rows.json()["rows"] if r["key"] == "alice"))

        # (Replica 1's records arrive within its writer's interval.)
        eventually(lambda: alice_requests() == 10)

        # Replica 1 dies: nginx passes it over, and bob (added on replica 1) is known to 2.
        replicas[0].stop(signal.SIGKILL)
        assert [chat("bob").status_code for _ in range(4)] == [200] * 4
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        for replica in replicas:
            if replica.popen.poll() is None:
                replica.stop()


# --- the image ----------------------------------------------------------------------------


def test_the_image_builds_and_serves_under_podman(tmp_path: Path) -> None:
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    base = re.search(r"^FROM (\S+) AS build$", (ROOT / "Dockerfile").read_text(), re.M)
    assert base is not None
    image = base.group(1)
    have = subprocess.run([podman, "image", "exists", image], capture_output=True, timeout=60)
    if have.returncode != 0:
        pulled = subprocess.run([podman, "pull", "--quiet", image], capture_output=True, text=True, timeout=120)
        if pulled.returncode != 0:
            pytest.skip(
                f"the base image {image} cannot be pulled here (this machine reaches no container "
                f"registry): {pulled.stderr.strip().splitlines()[-1] if pulled.stderr.strip() else 'no answer'}"
            )
    tag = "localhost/tollway-test:latest"
    built = subprocess.run(
        [podman, "build", "-t", tag, "-f", str(ROOT / "Dockerfile"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    port, admin_port = _free_port(), _free_port()
    run = subprocess.run(
        [podman, "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:8080", "-p", f"127.0.0.1:{admin_port}:8081",
         "-e", "TOLLWAY_ADMIN_TOKEN=image-test", tag],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    container = run.stdout.strip()
    try:
        user = subprocess.run([podman, "exec", container, "id", "-u"], capture_output=True, text=True, timeout=30)
        assert user.stdout.strip() == "10001"  # not root
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{admin_port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the container never answered /healthz"
            time.sleep(0.5)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=10)
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
        health = subprocess.run([podman, "healthcheck", "run", container], capture_output=True, timeout=60)
        assert health.returncode == 0
    finally:
        subprocess.run([podman, "rm", "-f", container], capture_output=True, timeout=60)
