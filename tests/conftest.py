"""Shared fixtures: real processes on real sockets.

``mock_llm`` runs ``tollway mock-llm`` once per session; ``gateway`` starts
``tollway serve`` with a config written to a temporary folder, on free ports, and
stops it with SIGTERM at the end of the test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.responses_provider import ResponsesProvider

_LISTEN = re.compile(r"(gateway|admin|mock-llm) listening on (http://\S+)")
# The processes started and not yet stopped (a failed test's report shows their logs).
_RUNNING: list[Proc] = []


@dataclass
class Proc:
    """A running tollway process and what it printed."""

    popen: subprocess.Popen[bytes]
    urls: dict[str, str]
    stdout_lines: list[str] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)
    pumps: list[threading.Thread] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.urls.get("gateway") or self.urls["mock-llm"]

    @property
    def admin_url(self) -> str:
        return self.urls["admin"]

    def peak_memory_kib(self) -> int:
        """The process's peak resident memory so far (VmHWM), in KiB."""
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM for the process")

    def logged(self, said: str, count: int = 1, within: float = 5.0) -> list[str]:
        """The stderr lines holding ``said``, once there are ``count`` of them (or
        ``within`` seconds have passed). The gateway writes a line before the answer
        that caused it, but the thread reading its stderr may not have read the line
        yet when that answer is in: asserting on ``stderr_lines`` at once races it."""
        deadline = time.monotonic() + within
        while True:
            found = [line for line in self.stderr_lines if said in line]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        _RUNNING[:] = [p for p in _RUNNING if p is not self]
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait(5)
        for pump in self.pumps:
            pump.join(5)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()
        return code

    def access_log(self) -> list[dict[str, object]]:
        import orjson

        return [orjson.loads(line) for line in self.stdout_lines if line.startswith("{")]

    def wait_for_stdout(self, predicate: Callable[[list[str]], bool], timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.stdout_lines):
                return
            time.sleep(0.05)
        raise AssertionError(f"stdout never matched; got {self.stdout_lines[-5:]!r}")


def _pump(stream: object, sink: list[str], on_line: Callable[[str], None] | None = None) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        line = raw.decode("utf-8", "replace").rstrip("\n")
        sink.append(line)
        if on_line is not None:
            on_line(line)


def start_process(
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    want: tuple[str, ...] = ("gateway", "admin"),
    timeout: float = 20,
) -> Proc:
    full_env = {k: v for k, v in os.environ.items() if k != "TOLLWAY_CONFIG"}
    full_env.update(env or {})
    popen = subprocess.Popen(
        [sys.executable, "-m", "tollway", *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc = Proc(popen, {})
    _RUNNING.append(proc)
    ready = threading.Event()

    def on_err(line: str) -> None:
        m = _LISTEN.search(line)
        if m:
            proc.urls[m.group(1)] = m.group(2)
            if all(w in proc.urls for w in want):
                ready.set()

    proc.pumps = [
        threading.Thread(target=_pump, args=(popen.stdout, proc.stdout_lines), daemon=True),
        threading.Thread(target=_pump, args=(popen.stderr, proc.stderr_lines, on_err), daemon=True),
    ]
    for pump in proc.pumps:
        pump.start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.05):
        if popen.poll() is not None or time.monotonic() > deadline:
            time.sleep(0.2)
            proc.stop(signal.SIGKILL)
            raise RuntimeError("tollway did not start:\n" + "\n".join(proc.stderr_lines))
    if "gateway" in want:
        # Listening is printed before the workers accept; wait until they answer.
        for _ in range(100):
            try:
                httpx.get(proc.admin_url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
    return proc


@pytest.fixture(scope="session")
def mock_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_process(["mock-llm", "--port", "0"], cwd=tmp_path_factory.mktemp("mock"), want=("mock-llm",))
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def mock_client(mock_llm: Proc) -> Iterator[httpx.Client]:
    # One pooled client: a new one per call costs tens of milliseconds (SSL context).
    with httpx.Client(base_url=mock_llm.url, timeout=10) as client:
        yield client


@pytest.fixture
def mock_requests(mock_client: httpx.Client) -> Callable[[], list[dict[str, object]]]:
    """Clears the mock's request record, then returns a reader for what it saw."""
    mock_client.delete("/_mock/requests")

    def read() -> list[dict[str, object]]:
        out: list[dict[str, object]] = mock_client.get("/_mock/requests").json()["requests"]
        return out

    return read


GatewayFactory = Callable[..., Proc]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL for a fresh schema in PostgreSQL's ``test`` database, dropped afterwards
    (skipped with a reason when PostgreSQL does not answer; a failure under CI=true)."""
    from tests.support.usage_support import fresh_pg_schema

    yield from fresh_pg_schema()


@pytest.fixture
def fresh_responses_provider() -> Iterator[ResponsesProvider]:
    """A fake of OpenAI's Responses API of this test's own: what it was asked, and whether
    a background run was started, are this test's alone."""
    with ResponsesProvider() as fake:
        yield fake


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """``gateway(config_yaml, *extra_args, env=...)`` starts ``tollway serve`` on free ports."""
    procs: list[Proc] = []

    def start(config: str | None, *extra: str, env: dict[str, str] | None = None, name: str = "tollway.yaml") -> Proc:
        args = ["serve", "--port", "0", "--admin-port", "0", *extra]
        if config is not None:
            path = tmp_path / name
            path.write_text(config)
            args[1:1] = ["-c", str(path)]
        proc = start_process(args, cwd=tmp_path, env=env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


# How many of a gateway's last stderr lines a failed test's report shows.
_LOG_TAIL = 60


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report ends with the last stderr lines of every gateway still
    running (its own, and a module's shared one): a failure seen once, in CI, is then
    explained by the gateway's own warnings (an embeddings call that failed, a store
    that refused), not guessed at."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    for proc in list(_RUNNING):
        if "gateway" in proc.urls and proc.stderr_lines:
            title = f"tollway stderr (pid {proc.popen.pid}, last {_LOG_TAIL} lines)"
            report.sections.append((title, "\n".join(proc.stderr_lines[-_LOG_TAIL:])))
