"""The Dockerfile. Under podman, where its base image can be had, the image is built and
run: it answers /healthz, a consumer's chat call through the built-in mock model, and its
own HEALTHCHECK, as a user that is not root. This machine reaches no container registry,
so that test says so and skips; the image's recipe is then followed without containers:
the wheel built from exactly the build context .dockerignore leaves, installed alone,
started as the image starts it (its config, environment, entry point and command), and
its HEALTHCHECK command run against it."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Proc, start_process
from tests.support.deploy_support import (
    ROOT,
    SECRETS,
    Stage,
    build_context,
    dockerfile_stages,
    exec_form,
    read_config,
    require_tool,
)
from tests.support.redis_support import free_port

TOKEN = SECRETS["TOLLWAY_ADMIN_TOKEN"]
ADMIN = {"authorization": f"Bearer {TOKEN}"}


def _stages() -> tuple[Stage, Stage]:
    build, run = dockerfile_stages(ROOT / "Dockerfile")
    return build, run


def _serves_a_consumer(url: str, admin_url: str) -> None:
    """Adds a consumer through the admin API and makes one chat call with its key."""
    made = httpx.post(admin_url + "/api/consumers", json={"name": "alice"}, headers=ADMIN, timeout=10)
    assert made.status_code == 201, made.text
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    refused = httpx.post(url + "/v1/chat/completions", json=body, timeout=10)
    assert refused.status_code == 401  # the image's config asks every call for a key
    answer = httpx.post(url + "/v1/chat/completions", json=body, headers={"x-api-key": made.json()["key"]}, timeout=10)
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]


def test_the_image_is_built_in_two_stages_and_runs_as_non_root() -> None:
    build, run = _stages()
    assert build.name is not None and build.base == run.base and run.base.endswith("/python:3.11-slim")
    assert any(f"--from={build.name}" in args for args in run.all("COPY"))
    uid, _, gid = run.one("USER").partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    config = read_config((ROOT / "deploy" / "container.yaml").read_text())
    assert sorted(int(p) for p in run.one("EXPOSE").split()) == [config["server"]["port"], config["admin"]["port"]]
    env = run.env()
    assert exec_form(run.one("VOLUME")) == [env["TOLLWAY_DATA_FOLDER"]]
    health = urlsplit(env["TOLLWAY_HEALTHCHECK_URL"])
    assert (health.port, health.path) == (config["admin"]["port"], "/healthz")


# --- the recipe, followed without containers ---------------------------------------------


def _copy(stage: Stage, context: list[str], into: Path) -> list[tuple[Path, str]]:
    """Does the stage's ``COPY``s from the build context (none ``--from`` another stage)
    under ``into``, as the image lays them out under ``/``; returns (copied, image path)."""
    done: list[tuple[Path, str]] = []
    workdir = Path(stage.one("WORKDIR")) if stage.all("WORKDIR") else Path("/")
    for args in stage.all("COPY"):
        if args.startswith("--from="):
            continue
        *sources, dest = shlex.split(args)
        where = workdir / dest
        for source in sources:
            source = source.rstrip("/")
            files = [f for f in context if f == source or f.startswith(source + "/")]
            assert files, f"COPY {source}: not in the build context .dockerignore leaves"
            for f in files:
                # A file into a folder keeps its name; a folder's files keep their places in it.
                inside = where / Path(f).name if f == source and dest.endswith("/") else where
                target = inside / Path(f).relative_to(source) if f != source else inside
                (into / target.relative_to("/")).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ROOT / f, into / target.relative_to("/"))
                done.append((into / target.relative_to("/"), str(target)))
    return done


def _healthcheck(run: Stage) -> list[str]:
    args = run.one("HEALTHCHECK")
    return exec_form(args[args.index("CMD") + len("CMD") :].strip())


def _run_healthcheck(command: list[str], url: str) -> int:
    assert command[0] == "python"
    env = dict(os.environ, TOLLWAY_HEALTHCHECK_URL=url)
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30).returncode


def test_the_image_recipe_serves_without_containers(tmp_path: Path) -> None:
    build, run = _stages()
    context = build_context(ROOT)
    # The build stage: the sources it copies, then its wheel. (The dependencies' wheels
    # are this venv's packages: no registry is asked for them here.)
    _copy(build, context, tmp_path / "build")
    assert build.one("RUN").startswith("pip wheel ") and build.one("RUN").endswith(" .")
    workdir = tmp_path / "build" / build.one("WORKDIR").lstrip("/")
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    (wheel,) = wheels.glob("tollway-*.whl")
    # The run stage: the wheel installed on its own, then the config and the environment.
    site = tmp_path / "site"
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-4000:]
    image = tmp_path / "image"
    copied = dict((where, path) for path, where in _copy(run, context, image))
    env = run.env()
    assert env["TOLLWAY_CONFIG"] in copied
    data = image / env["TOLLWAY_DATA_FOLDER"].lstrip("/")
    data.mkdir(parents=True)
    env |= {
        "TOLLWAY_CONFIG": str(copied[env["TOLLWAY_CONFIG"]]),
        "TOLLWAY_DATA_FOLDER": str(data),
        "TOLLWAY_ADMIN_TOKEN": TOKEN,
        "PYTHONPATH": str(site),  # ahead of this venv's editable tollway
    }
    origin = subprocess.run(
        [sys.executable, "-c", "import tollway; print(tollway.__file__)"],
        env=dict(os.environ, **env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert Path(origin.stdout.strip()).is_relative_to(site), origin
    # ENTRYPOINT + CMD, the image's console script, on free local ports.
    entrypoint = exec_form(run.one("ENTRYPOINT")) + exec_form(run.one("CMD"))
    assert entrypoint[0] == "tollway" and (site / "bin" / "tollway").exists()
    args = [*entrypoint[1:], "--host", "127.0.0.1", "--port", "0", "--admin-port", "0"]
    proc: Proc = start_process(args, cwd=data, env=env)
    health = _healthcheck(run)
    health_path = urlsplit(run.env()["TOLLWAY_HEALTHCHECK_URL"]).path
    try:
        assert _run_healthcheck(health, proc.admin_url + health_path) == 0
        _serves_a_consumer(proc.url, proc.admin_url)
        # The dashboard's files are in the wheel; the database is in the volume.
        assert httpx.get(proc.admin_url + "/", timeout=10).status_code == 200
        assert (data / "tollway.db").exists()
    finally:
        assert proc.stop() == 0
    assert _run_healthcheck(health, proc.admin_url + health_path) != 0


# --- the image, under podman ----------------------------------------------------------------


def _podman(podman: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([podman, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"podman {args[0]} did not finish within {timeout:g} s")


def _base_image_or_skip(podman: str, image: str) -> None:
    if _podman(podman, "image", "exists", image, timeout=60).returncode == 0:
        return
    reason = f"the base image {image} cannot be pulled here (this machine reaches no container registry)"
    try:
        pulled = subprocess.run([podman, "pull", "--quiet", image], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip(f"{reason}: no answer within 120 s")
    if pulled.returncode != 0:
        lines = pulled.stderr.strip().splitlines()
        pytest.skip(f"{reason}: {lines[-1] if lines else 'podman pull failed'}")


def test_the_image_builds_and_serves_under_podman() -> None:
    podman = require_tool("podman", "podman")
    build, run = _stages()
    _base_image_or_skip(podman, build.base)
    tag = f"localhost/tollway-test:{uuid.uuid4().hex[:12]}"
    # --format docker: podman's default (OCI) format drops the HEALTHCHECK.
    built = _podman(
        podman, "build", "--format", "docker", "-t", tag, "-f", str(ROOT / "Dockerfile"), str(ROOT), timeout=900
    )
    assert built.returncode == 0, built.stderr[-4000:]
    try:
        port, admin_port = free_port(), free_port()
        started = _podman(
            podman, "run", "-d", "-p", f"127.0.0.1:{port}:8080", "-p", f"127.0.0.1:{admin_port}:8081",
            "-e", f"TOLLWAY_ADMIN_TOKEN={TOKEN}", tag, timeout=120,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        container = started.stdout.strip()
        try:
            user = _podman(podman, "exec", container, "id", "-u", timeout=30)
            assert user.stdout.strip() == run.one("USER").partition(":")[0]  # not root
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{admin_port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    logs = _podman(podman, "logs", container, timeout=30)
                    pytest.fail(f"the container never answered /healthz:\n{logs.stderr}")
                time.sleep(0.5)
            _serves_a_consumer(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}")
            assert _podman(podman, "healthcheck", "run", container, timeout=60).returncode == 0
            stopped = _podman(podman, "stop", "--time", "45", container, timeout=90)
            assert stopped.returncode == 0
            waited = _podman(podman, "wait", container, timeout=60)
            assert waited.stdout.strip() == "0"  # SIGTERM: a graceful stop
        finally:
            _podman(podman, "rm", "-f", container, timeout=60)
    finally:
        _podman(podman, "rmi", "-f", tag, timeout=60)
