"""The pieces run.py drives: CPU pinning, the nginx upstream, wrk, and /proc readings.

Everything listens on 127.0.0.1 and every load is bounded by wrk's ``-d``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import payloads

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Paths the upstream serves. The gateway maps its route's path after /v1 onto the
# provider's baseUrl, so the streaming provider simply has a different baseUrl.
PLAIN_PATH = "/v1/chat/completions"
STREAM_PATH = "/stream/v1/chat/completions"


# --------------------------------------------------------------------------- cores


@dataclass(frozen=True)
class Cores:
    """CPU 0 for the system under test; CPU 1 for wrk and the upstream (and this script)."""

    target: str | None
    load: str | None

    @classmethod
    def pick(cls) -> Cores:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls(str(cpus[0]), str(cpus[1]))

    def wrap(self, core: str | None, argv: Sequence[str]) -> list[str]:
        return ["taskset", "-c", core, *argv] if core is not None else list(argv)

    def pin_self(self) -> None:
        if self.load is not None:
            os.sched_setaffinity(0, {int(self.load)})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group we started (servers fork workers), then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def spawn(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdout: object = None,
    stderr: object = None,
    cwd: str | None = None,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=stderr if stderr is not None else subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so stop() reaches forked workers
    )


# --------------------------------------------------------------------------- upstream


def _nginx_string(data: bytes) -> str:
    # payloads.py guarantees no quote, backslash or '$'; newlines become nginx's \n escape.
    return "'" + data.decode().replace("\n", "\\n") + "'"


def _nginx_conf(d: Path, http_body: str) -> str:
    """A one-worker nginx config in ``d`` (pid, logs and temp files there, no access log)."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"  {k}_temp_path {d}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp}
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_buffer_size 64k;
{http_body}
}}
"""


@contextlib.contextmanager
def _nginx(
    core: str | None, cores: Cores, workdir: Path, http_body: Callable[[Path, int], str]
) -> Iterator[tuple[int, int]]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise FileNotFoundError("nginx is not installed (apt-get install -y nginx)")
    port = free_port()
    d = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir))
    (d / "nginx.conf").write_text(_nginx_conf(d, http_body(d, port)))
    proc = spawn(
        cores.wrap(core, [nginx, "-p", str(d), "-c", str(d / "nginx.conf")]), stderr=open(d / "stderr.log", "wb")
    )
    try:
        wait_port(port, proc)
        yield port, proc.pid
    finally:
        stop(proc)


@contextlib.contextmanager
def nginx_upstream(cores: Cores, workdir: Path) -> Iterator[tuple[int, int]]:
    """nginx, one worker, answering the fixed chat.completion JSON and the fixed SSE body."""

    def body(d: Path, port: int) -> str:
        stream_file = d / "static" / STREAM_PATH.lstrip("/")
        stream_file.parent.mkdir(parents=True)
        stream_file.write_bytes(payloads.chat_stream())
        return f"""  open_file_cache max=16 inactive=600s;
  open_file_cache_valid 600s;
  etag off;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = {PLAIN_PATH} {{
      default_type application/json;
      return 200 {_nginx_string(payloads.chat_response())};
    }}
    # The SSE body is past nginx's 4 KB limit for a config string, so it is a file; the
    # static module answers POST with 405, which error_page turns into the file, 200.
    location = {STREAM_PATH} {{
      root {d}/static;
      default_type text/event-stream;
      error_page 405 =200 $uri;
    }}
    location / {{ return 404; }}
  }}"""

    with _nginx(cores.load, cores, workdir, body) as got:
        yield got


@contextlib.contextmanager
def nginx_proxy(cores: Cores, workdir: Path, upstream_port: int) -> Iterator[tuple[int, int]]:
    """nginx as a plain reverse proxy in front of the upstream, on the target's core: the
    reference a gateway's CPU per request is judged against (issue 17). Upstream
    keep-alive as the gateway's pool has; the stream path unbuffered, as an SSE proxy is
    set up; no access log, as the gateway's goes to /dev/null."""

    def body(d: Path, port: int) -> str:
        return f"""  upstream up {{
    server 127.0.0.1:{upstream_port};
    keepalive 64;
    keepalive_requests 10000000;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location {STREAM_PATH} {{
      proxy_buffering off;
      proxy_pass http://up;
    }}
    location / {{ proxy_pass http://up; }}
  }}"""

    with _nginx(cores.target, cores, workdir, body) as got:
        yield got


@contextlib.contextmanager
def mock_llm_upstream(cores: Cores, venv_bin: Path) -> Iterator[tuple[int, int]]:
    """The fallback upstream when nginx is missing: ``tollway mock-llm`` (much slower, so
    the direct rows then measure the mock, not the harness ceiling)."""
    port = free_port()
    proc = spawn(cores.wrap(cores.load, [str(venv_bin / "tollway"), "mock-llm", "--port", str(port)]))
    try:
        wait_port(port, proc)
        yield port, proc.pid
    finally:
        stop(proc)


# --------------------------------------------------------------------------- wrk

_LUA = """wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,' ..
    '"mean_us":%.1f,"max_us":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
end
"""


Headers = Sequence[tuple[str, str]]


# Every request's body different: a number, counted per request, put into the body at
# one place. It starts from the clock's seconds times 100,000, so the runs that follow
# one another (warm-up, c1, c32, paired turns: each at least a second after the last,
# none sending 100,000 requests) never send a body an earlier run sent.
_LUA_DISTINCT = """local head, tail = [==[{head}]==], [==[{tail}]==]
local n = (os.time() % 1000000) * 100000
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, head .. string.format(" #%d", n) .. tail)
end
"""


def wrk_script(
    workdir: Path, name: str, body: bytes, headers: Headers = (), distinct_at: int | None = None, extra: str = ""
) -> Path:
    """wrk's Lua script: the POST body, and ``headers`` (name, value) on every request.
    With ``distinct_at`` (a byte offset in ``body``), each request's body gets its own
    number there (see ``_LUA_DISTINCT``); ``extra`` is more Lua (a ``request`` function
    of its own, say), before the report."""
    path = workdir / f"{name}.lua"
    lines = []
    for k, v in headers:
        if '"' in k + v or "\\" in k + v or "\n" in k + v:
            raise ValueError(f"header {k!r} cannot go into the Lua script as it stands")
        lines.append(f'wrk.headers["{k}"] = "{v}"')
    if distinct_at is not None:
        lines.append(_LUA_DISTINCT.format(head=body[:distinct_at].decode(), tail=body[distinct_at:].decode()))
    if extra:
        lines.append(extra)
    path.write_text(_LUA.format(body=body.decode(), headers="\n".join(lines)))
    return path


@dataclass
class WrkResult:
    connections: int
    requests: int
    seconds: float
    errors: int
    non_2xx: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _wrk_argv(cores: Cores, url: str, script: Path, connections: int, seconds: float) -> list[str]:
    return cores.wrap(
        cores.load,
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(script), url],
    )


def _wrk_result(stdout: str, stderr: str, returncode: int, connections: int) -> WrkResult:
    line = next((ln for ln in stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result (exit {returncode}):\n{stdout}\n{stderr}")
    r = json.loads(line[len("WRKJSON ") :])
    return WrkResult(
        connections=connections,
        requests=r["requests"],
        seconds=r["duration_us"] / 1e6,
        errors=r["connect"] + r["read"] + r["write"] + r["timeout"],
        non_2xx=r["status"],
        p50_ms=r["p50_us"] / 1000,
        p90_ms=r["p90_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        p999_ms=r["p999_us"] / 1000,
        mean_ms=r["mean_us"] / 1000,
        max_ms=r["max_us"] / 1000,
    )


def run_wrk(cores: Cores, url: str, script: Path, connections: int, seconds: float) -> WrkResult:
    argv = _wrk_argv(cores, url, script, connections, seconds)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    return _wrk_result(out.stdout, out.stderr, out.returncode, connections)


def run_wrk_together(
    cores: Cores, loads: Sequence[tuple[str, Path]], connections: int, seconds: float
) -> list[WrkResult]:
    """One wrk per (url, script), all started at once and run for the same time."""
    procs = [
        subprocess.Popen(
            _wrk_argv(cores, url, script, connections, seconds),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for url, script in loads
    ]
    outs = [p.communicate(timeout=seconds + 60) for p in procs]
    return [_wrk_result(o, e, p.returncode, connections) for p, (o, e) in zip(procs, outs, strict=True)]


# --------------------------------------------------------------------------- /proc


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (granian and uvicorn-style servers fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / CLK_TCK


def peak_rss_mib(pids: Sequence[int]) -> float:
    """The sum of VmHWM (peak resident set) over the processes, MiB."""
    total_kb = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def cores_busy_seconds(cores: Sequence[str | None]) -> float:
    """Seconds the given CPUs spent not idle since boot (from /proc/stat), all processes."""
    names = {f"cpu{c}" if c is not None else "cpu" for c in cores}
    total = 0.0
    for line in Path("/proc/stat").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in names:
            vals = [int(v) for v in parts[1:]] + [0] * 8
            # user + nice + system + steal; irq and softirq time is left out: most of it is
            # the loopback traffic of the benchmark itself, charged to no process.
            total += (vals[0] + vals[1] + vals[2] + vals[7]) / CLK_TCK
    return total


class Noise:
    """CPU time on the benchmark's cores that none of its processes used (someone else's
    tests, a compiler...): ``other`` is in cores (0.25 = a quarter of one core)."""

    def __init__(self, cores: Cores, our_pids: Sequence[int]) -> None:
        self.cores = [cores.target, cores.load] if cores.target is not None else [None]
        self.pids = list(our_pids)

    def _ours(self) -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk runs, once waited for
        me = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime + me.ru_utime + me.ru_stime + cpu_seconds(self.pids)

    def __enter__(self) -> Noise:
        self._t0, self._busy0, self._ours0 = time.monotonic(), cores_busy_seconds(self.cores), self._ours()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._t0
        other = (cores_busy_seconds(self.cores) - self._busy0) - (self._ours() - self._ours0)
        self.other = max(0.0, other) / wall if wall > 0 else 0.0


def wait_quiet(cores: Cores, limit: float, max_wait_s: float) -> float:
    """Waits (while nothing of ours runs) until the benchmark's cores have carried at most
    ``limit`` cores of load for 2 s in a row, or ``max_wait_s`` passed; returns the wait."""
    names = [cores.target, cores.load] if cores.target is not None else [None]
    t0 = time.monotonic()
    quiet = 0
    while time.monotonic() - t0 < max_wait_s and quiet < 4:
        b0 = cores_busy_seconds(names)
        time.sleep(0.5)
        quiet = quiet + 1 if cores_busy_seconds(names) - b0 < limit * 0.5 else 0
    return time.monotonic() - t0


# --------------------------------------------------------------------------- Redis


@dataclass
class RedisReading:
    """What Redis had counted at one moment. ``counted`` holds the benchmark's own
    rate-limit counters (one key per window; the script adds 1 per admitted request), so
    their change is exactly the number of decisions the gateway asked of Redis, whatever
    else uses the server. The other numbers are server-wide. ``probe_commands`` is how
    many commands this reading sent after its ``INFO stats``."""

    counted: dict[bytes, int]
    evalsha: int
    commands: int
    reads: int
    clients: int
    probe_commands: int


class RedisProbe:
    """Reads Redis's counters around a run, on one connection of its own.

    ``pattern`` matches the counter keys of the run's rule (``SCAN MATCH``). ``delta``
    takes the probe's own commands off the server-wide counts: those a reading sent
    after its ``INFO stats``, and that ``INFO stats`` itself (each is one read too).
    """

    def __init__(self, url: str, pattern: str) -> None:
        import redis  # a dependency of tollway's Redis state store

        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.pattern = pattern
        self.db = int(self.client.connection_pool.connection_kwargs.get("db", 0))
        self.client.ping()
        self.my_id = int(self.client.client_id())
        # The server's own process, when it runs on this machine: its CPU time is part of
        # what the Redis path costs, and not someone else's load.
        pid = int(self.client.info("server").get("process_id", 0))
        self.server_pid = pid if pid and Path(f"/proc/{pid}/stat").exists() else None

    def read(self) -> RedisReading:
        stats = self.client.info("stats")
        cmds = self.client.info("commandstats")
        sent = 1
        keys: list[Any] = []
        cursor = 0
        while True:
            cursor, page = self.client.scan(cursor, match=self.pattern, count=1000)
            sent += 1
            keys.extend(page)
            if not cursor:
                break
        counted: dict[bytes, int] = {}
        if keys:
            sent += 1
            values = self.client.mget(keys)
            counted = {k: int(v) for k, v in zip(keys, values, strict=True) if v is not None}
        listed = self.client.client_list()
        sent += 1
        mine = str(self.db)
        return RedisReading(
            counted=counted,
            evalsha=int(cmds.get("cmdstat_evalsha", {}).get("calls", 0)),
            commands=int(stats["total_commands_processed"]),
            reads=int(stats["total_reads_processed"]),
            clients=sum(1 for c in listed if int(c["id"]) != self.my_id and c.get("db") == mine),
            probe_commands=sent,
        )

    def delta(self, before: RedisReading, after: RedisReading) -> dict[str, int]:
        own = before.probe_commands + 1
        return {
            # Per key: a window's counter that expired in between must not count.
            "decisions": sum(v - before.counted.get(k, 0) for k, v in after.counted.items()),
            "evalsha": after.evalsha - before.evalsha,
            "commands": after.commands - before.commands - own,
            "reads": after.reads - before.reads - own,
            "clients": after.clients,
        }

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------- checks


def one_request(port: int, path: str, body: bytes, headers: Headers = ()) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    sent = {"Content-Type": "application/json"}
    sent.update(headers)
    try:
        conn.request("POST", path, body=body, headers=sent)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()
