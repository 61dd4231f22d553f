"""Tollway's benchmark: the gateway in front of a fast local upstream, against the same
upstream direct, in one run.

    .venv/bin/python benchmarks/run.py                   # main scenarios + candidates (~3 min)
    .venv/bin/python benchmarks/run.py --groups main     # only the five main scenarios (~40 s)
    .venv/bin/python benchmarks/run.py --groups profile  # py-spy the gateway under c32 load
    .venv/bin/python benchmarks/run.py --rounds 3 --groups main,candidates,profile  # README run
    .venv/bin/python benchmarks/run.py --list

The system under test runs on CPU 0; wrk, the nginx upstream and this script on CPU 1.
Results go to benchmarks/results/ as JSON and markdown; the markdown table is printed.
See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import payloads  # noqa: E402
from harness import PLAIN_PATH, STREAM_PATH, Cores  # noqa: E402

ROOT = HERE.parent
CANDIDATES = HERE / "candidates"
RESULTS = HERE / "results"
VENV_BIN = Path(sys.executable).parent
AUTH = "Bearer k-bench"

# --------------------------------------------------------------------------- configs

_CONFIG = """server: {{host: 127.0.0.1, port: 0}}
providers:
  - id: up
    type: openai
    apiTokens: [sk-bench]
    baseUrl: http://127.0.0.1:{port}/v1
  - id: up-stream
    type: openai
    apiTokens: [sk-bench]
    baseUrl: http://127.0.0.1:{port}/stream/v1
routes:
  - name: v1
    path_prefix: /v1/
    provider: up
  - name: stream
    path_prefix: /stream/v1/
    provider: up-stream
"""

_KEY_AUTH = """plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{name: bench, credential: k-bench}]
"""


def write_configs(workdir: Path, upstream_port: int) -> dict[str, Path]:
    plain = workdir / "tollway-plain.yaml"
    auth = workdir / "tollway-key-auth.yaml"
    plain.write_text(_CONFIG.format(port=upstream_port))
    auth.write_text(_CONFIG.format(port=upstream_port) + _KEY_AUTH)
    return {"plain": plain, "key-auth": auth}


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """How to start the system under test. ``kind``: direct, tollway, uvicorn or granian."""

    kind: str
    app: str = ""  # module:attr for uvicorn/granian
    factory: bool = False
    env: tuple[tuple[str, str], ...] = ()
    config: str = "plain"  # which tollway config (plain or key-auth)


@dataclass(frozen=True)
class Scenario:
    name: str
    group: str
    target: Target
    stream: bool = False
    auth: bool = False
    baseline: str = "direct"
    note: str = ""


def _proxy(server: str, client: str) -> Target:
    return Target(server, "proxy_app:app", env=(("BENCH_CLIENT", client),))


def _gateway_app(server: str, transport: str) -> Target:
    return Target(server, "gateway_app:create_app", factory=True, env=(("TOLLWAY_BENCH_TRANSPORT", transport),))


SCENARIOS = [
    Scenario("direct", "main", Target("direct"), note="wrk → nginx"),
    Scenario("gateway", "main", Target("tollway"), note="tollway serve as it is (uvicorn+httptools, its transport)"),
    Scenario("gateway+key-auth", "main", Target("tollway", config="key-auth"), auth=True),
    Scenario("streaming direct", "main", Target("direct"), stream=True, baseline="streaming direct"),
    Scenario("streaming gateway", "main", Target("tollway"), stream=True, baseline="streaming direct"),
    # The gateway itself with another server or upstream client (benchmark-only swaps).
    # "h1" is the product's transport (src/tollway/upstream/h1.py via PooledTransport).
    Scenario("gateway · uvicorn · aiohttp", "candidates", _gateway_app("uvicorn", "aiohttp")),
    Scenario("gateway · uvicorn · httpx", "candidates", _gateway_app("uvicorn", "httpx")),
    Scenario("gateway · uvicorn · raw", "candidates", _gateway_app("uvicorn", "raw")),
    Scenario("gateway · uvicorn · rawproto", "candidates", _gateway_app("uvicorn", "rawproto")),
    Scenario("gateway · granian · h1", "candidates", _gateway_app("granian", "product")),
    Scenario("gateway · granian · aiohttp", "candidates", _gateway_app("granian", "aiohttp")),
    Scenario(
        "streaming gateway · uvicorn · aiohttp",
        "candidates",
        _gateway_app("uvicorn", "aiohttp"),
        stream=True,
        baseline="streaming direct",
    ),
    Scenario(
        "streaming gateway · uvicorn · rawproto",
        "candidates",
        _gateway_app("uvicorn", "rawproto"),
        stream=True,
        baseline="streaming direct",
    ),
    # The minimal pass-through proxy: server × client, nothing of the gateway.
    Scenario("minimal · uvicorn · aiohttp", "candidates", _proxy("uvicorn", "aiohttp")),
    Scenario("minimal · uvicorn · aiohttp trust_env", "candidates", _proxy("uvicorn", "aiohttp_env")),
    Scenario("minimal · uvicorn · httpx", "candidates", _proxy("uvicorn", "httpx")),
    Scenario("minimal · uvicorn · raw", "candidates", _proxy("uvicorn", "raw")),
    Scenario("minimal · uvicorn · rawproto", "candidates", _proxy("uvicorn", "rawproto")),
    Scenario("minimal · uvicorn · h1", "candidates", _proxy("uvicorn", "h1")),
    Scenario("minimal · granian · aiohttp", "candidates", _proxy("granian", "aiohttp")),
    Scenario("minimal · granian · rawproto", "candidates", _proxy("granian", "rawproto")),
]


def target_argv(t: Target, port: int, config: Path) -> list[str]:
    if t.kind == "tollway":
        return [
            str(VENV_BIN / "tollway"),
            "serve",
            "-c",
            str(config),
            "--port",
            str(port),
            "--admin-port",
            str(harness.free_port()),
        ]
    if t.kind == "uvicorn":
        argv = [sys.executable, str(CANDIDATES / "serve_uvicorn.py"), t.app, "--port", str(port)]
        return argv + (["--factory"] if t.factory else [])
    if t.kind == "granian":
        argv = [
            str(VENV_BIN / "granian"),
            "--interface",
            "asgi",
            "--http",
            "1",
            "--no-ws",
            "--workers",
            "1",
            "--runtime-threads",
            "1",
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "--no-access-log",
            "--backlog",
            "2048",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        return argv + (["--factory"] if t.factory else []) + [t.app]
    raise ValueError(t.kind)


@contextlib.contextmanager
def started(
    t: Target, cores: Cores, upstream_port: int, configs: dict[str, Path], workdir: Path, log_name: str
) -> Iterator[tuple[int, int | None]]:
    """Yields (port, pid) of the running target; pid None for direct (nothing in between)."""
    if t.kind == "direct":
        yield upstream_port, None
        return
    if t.kind == "granian" and shutil.which("granian", path=str(VENV_BIN)) is None:
        raise RuntimeError("granian is not installed (.venv/bin/pip install granian)")
    port = harness.free_port()
    env = dict(os.environ)
    env.update(t.env)
    env["PYTHONPATH"] = os.pathsep.join([str(CANDIDATES), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["BENCH_UPSTREAM"] = f"http://127.0.0.1:{upstream_port}"
    env["TOLLWAY_BENCH_CONFIG"] = str(configs[t.config])
    stderr = open(workdir / f"{log_name}.stderr.log", "wb")  # closed below
    # stdout carries the access log (one JSON line per request): kept off the terminal.
    proc = harness.spawn(
        cores.wrap(cores.target, target_argv(t, port, configs[t.config])),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        cwd=str(workdir),
    )
    try:
        try:
            harness.wait_port(port, proc, timeout=30)
        except RuntimeError as exc:
            stderr.flush()
            tail = (workdir / f"{log_name}.stderr.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{t.kind} did not start: {' / '.join(tail) or exc}") from None
        yield port, proc.pid
    finally:
        harness.stop(proc)
        stderr.close()


# --------------------------------------------------------------------------- measuring


@dataclass
class Row:
    name: str
    group: str
    baseline: str
    note: str
    c1: dict[str, Any]
    c32: dict[str, Any]
    cpu_ms_per_req: float | None = None
    cpu_util: float | None = None
    peak_rss_mib: float | None = None
    check: str = ""
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def sanity_check(sc: Scenario, port: int, path: str, body: bytes) -> str:
    """One call before the load: the right answer must come back, or the numbers mean nothing."""
    try:
        status, _, data = harness.one_request(port, path, body, AUTH if sc.auth else None)
    except OSError as exc:
        raise RuntimeError(f"the check call before the load failed: {exc}") from None
    if status != 200:
        raise RuntimeError(f"{sc.name}: status {status}: {data[:300]!r}")
    if sc.stream:
        if not (data.rstrip().endswith(b"data: [DONE]") and b"chat.completion.chunk" in data):
            raise RuntimeError(f"{sc.name}: not the expected event stream: {data[:300]!r}")
        msg = f"stream ok ({data.count(b'data: ')} events, {len(data)} B)"
    else:
        if data != payloads.chat_response():
            raise RuntimeError(f"{sc.name}: body differs from the upstream's: {data[:300]!r}")
        msg = f"body identical ({len(data)} B)"
    if sc.auth:
        denied, _, _ = harness.one_request(port, path, body, None)
        if denied != 401:
            raise RuntimeError(f"{sc.name}: a call without a key got {denied}, not 401")
        msg += "; no key → 401"
    return msg


NOISY = 0.15  # cores of someone else's CPU use during a run that make us run it again


def measure(
    sc: Scenario,
    cores: Cores,
    upstream: tuple[int, int],
    configs: dict[str, Path],
    workdir: Path,
    args: argparse.Namespace,
) -> Row:
    """Warm up, then ``repeat`` × (c1 run, c32 run); keeps the median run of each. A run
    during which other processes took more than NOISY cores is run again (up to
    ``noise_retries`` times; the quietest attempt is kept)."""
    upstream_port, upstream_pid = upstream
    path = STREAM_PATH if sc.stream else PLAIN_PATH
    body = payloads.chat_request(stream=sc.stream)
    script = harness.wrk_script(workdir, re.sub(r"\W+", "_", sc.name), body, AUTH if sc.auth else None)
    log_name = re.sub(r"\W+", "_", sc.name)
    c1s: list[tuple[harness.WrkResult, float]] = []
    c32s: list[tuple[harness.WrkResult, dict[str, float]]] = []

    def quietest(run: Callable[[], tuple[Any, float]]) -> tuple[Any, float]:
        tries = [run()]
        while tries[-1][1] > NOISY and len(tries) <= args.noise_retries:
            waited = harness.wait_quiet(cores, NOISY, args.quiet_wait)
            print(
                f"   other load {tries[-1][1]:.2f} cores during the run: waited {waited:.0f}s, again", file=sys.stderr
            )
            tries.append(run())
        return min(tries, key=lambda t: t[1])

    with started(sc.target, cores, upstream_port, configs, workdir, log_name) as (port, pid):
        check = sanity_check(sc, port, path, body)
        url = f"http://127.0.0.1:{port}{path}"
        if args.warmup > 0:
            harness.run_wrk(cores, url, script, 32, args.warmup)
        tree = harness.process_tree(pid) if pid else []
        ours = harness.process_tree(upstream_pid) + tree

        def run_c1() -> tuple[harness.WrkResult, float]:
            with harness.Noise(cores, ours) as noise:
                r = harness.run_wrk(cores, url, script, 1, args.c1_duration)
            return r, noise.other

        def run_c32() -> tuple[tuple[harness.WrkResult, dict[str, float]], float]:
            cpu0, t0 = harness.cpu_seconds(tree), time.monotonic()
            with harness.Noise(cores, ours) as noise:
                r = harness.run_wrk(cores, url, script, 32, args.duration)
            cpu1, t1 = harness.cpu_seconds(tree), time.monotonic()
            return (r, {"cpu_s": cpu1 - cpu0, "wall_s": t1 - t0, "other": noise.other}), noise.other

        for _ in range(args.repeat):
            c1s.append(quietest(run_c1))
            c32s.append(quietest(run_c32)[0])
        peak = harness.peak_rss_mib(harness.process_tree(pid)) if pid else None
    c1, c1_other = sorted(c1s, key=lambda x: x[0].p50_ms)[len(c1s) // 2]
    c32, use = sorted(c32s, key=lambda x: x[0].rps)[len(c32s) // 2]
    row = Row(
        sc.name,
        sc.group,
        sc.baseline,
        sc.note,
        asdict(c1) | {"rps": c1.rps},
        asdict(c32) | {"rps": c32.rps},
        check=check,
        peak_rss_mib=peak,
    )
    row.extra = {
        "other_load_cores": round(max(c1_other, use["other"]), 3),
        "processes": len(tree),
        "all_c1_p50_ms": [w.p50_ms for w, _ in c1s],
        "all_c32_rps": [round(w.rps) for w, _ in c32s],
    }
    if pid and c32.requests:
        row.cpu_ms_per_req = use["cpu_s"] * 1000 / c32.requests
        row.cpu_util = use["cpu_s"] / use["wall_s"]
    bad = sum(w.errors + w.non_2xx for w, _ in c1s) + sum(w.errors + w.non_2xx for w, _ in c32s)
    if bad:
        row.error = f"{bad} failed requests (socket errors or non-2xx)"
    return row


def merge_rounds(rows: list[Row]) -> Row:
    """One row from several rounds: the c32 numbers (and CPU, RSS) of the median-throughput
    round, the c1 numbers of the median-latency round; every round's values kept in extra."""
    ok = [r for r in rows if r.c32]
    if not ok:
        return rows[0]
    if len(ok) == 1 and len(rows) == 1:
        return ok[0]
    by_rps = sorted(ok, key=lambda r: r.c32["rps"])
    by_p50 = sorted(ok, key=lambda r: r.c1["p50_ms"])
    row = Row(**{**asdict(by_rps[len(ok) // 2])})
    row.c1 = by_p50[len(ok) // 2].c1
    row.extra["rounds_c32_rps"] = [round(r.c32["rps"]) for r in ok]
    row.extra["rounds_c1_p50_ms"] = [r.c1["p50_ms"] for r in ok]
    row.extra["rounds_cpu_ms_per_req"] = [round(r.cpu_ms_per_req, 4) for r in ok if r.cpu_ms_per_req]
    row.extra["other_load_cores"] = max(r.extra.get("other_load_cores", 0) for r in ok)
    if len(ok) < len(rows):
        row.error = f"{len(rows) - len(ok)} of {len(rows)} rounds failed: " + "; ".join(
            r.error or "" for r in rows if not r.c32
        )
    return row


# --------------------------------------------------------------------------- profile


def profile(
    cores: Cores, upstream_port: int, configs: dict[str, Path], workdir: Path, seconds: float, native: bool, stamp: str
) -> dict[str, Any]:
    """py-spy samples the gateway (tollway serve) while wrk holds c32 load on it."""
    pyspy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if pyspy is None:
        raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
    RESULTS.mkdir(exist_ok=True)
    raw = RESULTS / f"profile-{stamp}.txt"
    sc = Scenario("profile", "profile", Target("tollway"))
    body = payloads.chat_request()
    script = harness.wrk_script(workdir, "profile", body, None)
    with started(sc.target, cores, upstream_port, configs, workdir, "profile") as (port, pid):
        assert pid is not None
        sanity_check(sc, port, PLAIN_PATH, body)
        url = f"http://127.0.0.1:{port}{PLAIN_PATH}"
        harness.run_wrk(cores, url, script, 32, 1)
        load = subprocess.Popen(
            cores.wrap(cores.load, ["wrk", "-t1", "-c32", f"-d{round(seconds) + 4}s", "-s", str(script), url]),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            time.sleep(1.0)
            argv = [
                pyspy,
                "record",
                "-p",
                str(pid),
                "-d",
                str(round(seconds)),
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(raw),
            ] + (["--native"] if native else ["--nonblocking"])
            spy = subprocess.run(
                cores.wrap(cores.load, argv), capture_output=True, text=True, timeout=seconds + 60, check=False
            )
        finally:
            out, _ = load.communicate(timeout=seconds + 30)
        if spy.returncode != 0 or not raw.exists():
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {spy.stderr.strip()[-800:]}")
    wrk_line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), "")
    summary = summarise_profile(raw)
    summary["raw_file"] = str(raw.relative_to(ROOT))
    summary["native"] = native
    if wrk_line:
        r = json.loads(wrk_line[8:])
        summary["rps_under_profiler"] = r["requests"] / (r["duration_us"] / 1e6)
    return summary


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    f = m["file"]
    for marker in ("site-packages/", "src/", "lib/python3.11/", "lib/python3.12/"):
        if marker in f:
            f = f.split(marker, 1)[1]
            break
    return f"{m['func']} ({f})"


def summarise_profile(raw: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    self_c: collections.Counter[str] = collections.Counter()
    incl_c: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if any(w in stack for w in _WAITING):
            continue  # a thread blocked on a lock or queue (py-spy --native cannot tell idle apart)
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        self_c[frames[-1]] += n
        for f in set(frames):
            incl_c[f] += n

    def share(c: collections.Counter[str], skip: frozenset[str] = frozenset()) -> list[tuple[str, float]]:
        items = [(k, v) for k, v in c.most_common() if k.split(" (")[0] not in skip]
        return [(k, round(100 * v / total, 1)) for k, v in items[:top]] if total else []

    # Self time of "Runner.run" (Python frames only) is time in the event loop's C code.
    return {"samples": total, "self": share(self_c), "inclusive": share(incl_c, _ROOT_FRAMES)}


# Native frames of a thread that waits rather than runs.
_WAITING = ("PyThread_acquire_lock_timed", "pthread_cond_timedwait", "pthread_cond_wait", "sem_clockwait")

# Frames every sample of the main loop sits under: they say nothing about where time goes.
_ROOT_FRAMES = frozenset(
    {
        "<module>",
        "main",
        "cmd_serve",
        "serve",
        "_run_loop",
        "Runner.run",
        "run_forever",
        "run_until_complete",
        "Loop__run",
        "Loop__Loop__run",
        "uv_run",
    }
)


# --------------------------------------------------------------------------- report


def _f(v: float | None, nd: int = 2, suffix: str = "") -> str:
    if v is None:
        return "–"
    return f"{v:,.{nd}f}{suffix}"


def table(rows: list[Row]) -> str:
    by = {r.name: r for r in rows}
    head = (
        "| scenario | c1 p50 ms | c1 p99 ms | added p50 ms | added p99 ms | c32 req/s | × direct "
        "| c32 p99 ms | CPU ms/req | req/s per core | CPU use | peak RSS MiB | other load | check |"
    )
    out = [head, "|" + "|".join([" --- "] * 14) + "|"]
    for r in rows:
        if r.error and not r.c32:
            out.append(f"| {r.name} | {r.error} |" + " |" * 13)
            continue
        base = by.get(r.baseline)
        is_base = base is None or base is r
        add50 = None if is_base else r.c1["p50_ms"] - base.c1["p50_ms"]
        add99 = None if is_base else r.c1["p99_ms"] - base.c1["p99_ms"]
        ratio = None if is_base else r.c32["rps"] / base.c32["rps"]
        unit = "streams/s" if "stream" in r.name else ""
        out.append(
            f"| {r.name} | {_f(r.c1['p50_ms'], 3)} | {_f(r.c1['p99_ms'], 3)} | {_f(add50, 3)} | {_f(add99, 3)} "
            f"| {_f(r.c32['rps'], 0)}{' ' + unit if unit else ''} | {_f(ratio, 3) if ratio is not None else '1'} "
            f"| {_f(r.c32['p99_ms'], 2)} | {_f(r.cpu_ms_per_req, 3)} "
            f"| {_f(1000 / r.cpu_ms_per_req if r.cpu_ms_per_req else None, 0)} "
            f"| {_f(100 * r.cpu_util if r.cpu_util is not None else None, 0, '%')} "
            f"| {_f(r.peak_rss_mib, 1)} | {_f(r.extra.get('other_load_cores'), 2)} "
            f"| {r.error or r.check} |"
        )
    return "\n".join(out)


def targets_line(rows: list[Row]) -> str:
    by = {r.name: r for r in rows}
    gw, d = by.get("gateway"), by.get("direct")
    if not gw or not d or gw.error:
        return ""
    added = gw.c1["p50_ms"] - d.c1["p50_ms"]
    ok1 = gw.c32["rps"] >= 2000
    ok2 = added < 1.0
    return (
        f"Targets (plain proxying, one worker on one core): c32 ≥ 2,000 req/s → {gw.c32['rps']:,.0f} "
        f"({'met' if ok1 else 'NOT met'}); added c1 median < 1 ms → {added:.3f} ms "
        f"({'met' if ok2 else 'NOT met'})."
    )


def versions() -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    for pkg in ("tollway", "uvicorn", "granian", "uvloop", "httptools", "aiohttp", "httpx", "orjson", "py-spy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    for tool, argv in (("nginx", ["nginx", "-v"]), ("wrk", ["wrk", "-v"])):
        with contextlib.suppress(OSError):
            p = subprocess.run(argv, capture_output=True, text=True, check=False)
            out[tool] = (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr).strip() else "?"
    return out


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release()}


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--groups", default="main,candidates", help="comma list of main, candidates, profile (default: main,candidates)"
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only scenarios whose name contains this (repeatable); the baselines always run",
    )
    p.add_argument("--duration", type=float, default=3, help="seconds of c32 load per scenario (default 3)")
    p.add_argument("--c1-duration", type=float, default=2, help="seconds of c1 load per scenario (default 2)")
    p.add_argument("--warmup", type=float, default=1, help="seconds of c32 warm-up before measuring (default 1)")
    p.add_argument(
        "--repeat", type=int, default=1, help="c1 and c32 runs per scenario; the median run is reported (default 1)"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the whole scenario list this many times, interleaved; medians are reported",
    )
    p.add_argument(
        "--noise-retries",
        type=int,
        default=1,
        help=f"runs again a run during which other processes used > {NOISY} cores (default once)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=5,
        help="before running a noisy run again, wait up to this many seconds for quiet (default 5)",
    )
    p.add_argument("--profile-seconds", type=float, default=10, help="py-spy sampling time (default 10)")
    p.add_argument(
        "--native",
        action="store_true",
        help="py-spy --native: C frames too (pauses the process per sample, so it slows it more)",
    )
    p.add_argument(
        "--upstream",
        choices=("nginx", "mock-llm"),
        default="nginx",
        help="nginx (default) or the slower built-in tollway mock-llm",
    )
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = p.parse_args(argv)

    groups = {g.strip() for g in args.groups.split(",") if g.strip()}
    chosen = [s for s in SCENARIOS if s.group in groups]
    if args.only:
        wanted = [s for s in chosen if any(o in s.name for o in args.only)]
        bases = {s.baseline for s in wanted}
        chosen = [s for s in SCENARIOS if s in wanted or s.name in bases]
    if args.list:
        for s in SCENARIOS:
            print(f"{s.group:11} {s.name}")
        return 0
    if shutil.which("wrk") is None:
        print("run.py: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    if args.upstream == "mock-llm" and any(s.stream for s in chosen):
        print("run.py: the mock-llm upstream has no /stream/v1 path; use --groups main --only gateway", file=sys.stderr)

    cores = Cores.pick()
    if cores.target is None:
        print("run.py: fewer than 2 CPUs or no taskset: running unpinned; numbers are not comparable", file=sys.stderr)
    cores.pin_self()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix="tollway-bench-"))
    rows: list[Row] = []
    prof: dict[str, Any] | None = None
    started_at = time.monotonic()

    upstream: Callable[[], contextlib.AbstractContextManager[tuple[int, int]]]
    if args.upstream == "nginx" and (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        upstream = lambda: harness.nginx_upstream(cores, workdir)  # noqa: E731
        upstream_name = "nginx"
    else:
        if args.upstream == "nginx":
            print("run.py: nginx not found; falling back to `tollway mock-llm` (much slower)", file=sys.stderr)
        upstream = lambda: harness.mock_llm_upstream(cores, VENV_BIN)  # noqa: E731
        upstream_name = "tollway mock-llm"

    try:
        with upstream() as up:
            up_port = up[0]
            configs = write_configs(workdir, up_port)
            per_round: dict[str, list[Row]] = {sc.name: [] for sc in chosen}
            for rnd in range(args.rounds):
                for sc in chosen:
                    label = f" (round {rnd + 1}/{args.rounds})" if args.rounds > 1 else ""
                    print(f"… {sc.name}{label}", file=sys.stderr, flush=True)
                    try:
                        row = measure(sc, cores, up, configs, workdir, args)
                    except Exception as exc:  # one broken candidate must not lose the rest of the run
                        row = Row(sc.name, sc.group, sc.baseline, sc.note, {}, {}, error=f"failed: {exc}")
                        print(f"   {row.error}", file=sys.stderr)
                    else:
                        print(f"   c1 p50 {row.c1['p50_ms']:.3f} ms, c32 {row.c32['rps']:,.0f}/s", file=sys.stderr)
                    per_round[sc.name].append(row)
            rows = [merge_rounds(rs) for rs in per_round.values()]
            if "profile" in groups:
                print("… profile (py-spy)", file=sys.stderr, flush=True)
                try:
                    prof = profile(cores, up_port, configs, workdir, args.profile_seconds, args.native, stamp)
                except Exception as exc:
                    if not args.native:
                        raise
                    print(f"   --native failed ({exc}); retrying without it", file=sys.stderr)
                    prof = profile(cores, up_port, configs, workdir, args.profile_seconds, False, stamp)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ok_rows = [r for r in rows if r.c32]
    failed = [r for r in rows if not r.c32]
    md = [
        f"Tollway benchmark, {time.strftime('%Y-%m-%d %H:%M')}: upstream {upstream_name}; target on CPU "
        f"{cores.target}, wrk + upstream on CPU {cores.load}; c1 {args.c1_duration:g}s, c32 {args.duration:g}s "
        f"per row.",
        "",
    ]
    if ok_rows:
        md += [table(ok_rows + failed), ""]
        line = targets_line(ok_rows)
        if line:
            md += [line, ""]
    if prof:
        md += [
            f"Profile ({prof['samples']} samples, {'native' if prof['native'] else 'Python'} frames, "
            f"{prof.get('rps_under_profiler', 0):,.0f} req/s under the profiler; raw stacks in "
            f"{prof['raw_file']}):",
            "",
            "| self % | function |",
            "| --- | --- |",
        ]
        md += [f"| {pct} | {name} |" for name, pct in prof["self"][:15]]
        md += ["", "| inclusive % | function |", "| --- | --- |"]
        md += [f"| {pct} | {name} |" for name, pct in prof["inclusive"][:25]]
        md.append("")
    report = "\n".join(md)
    print(report)

    RESULTS.mkdir(exist_ok=True)
    doc = {
        "when": stamp,
        "seconds": round(time.monotonic() - started_at, 1),
        "machine": machine(),
        "versions": versions(),
        "upstream": upstream_name,
        "cores": {"target": cores.target, "load_and_upstream": cores.load},
        "settings": {
            "c1_s": args.c1_duration,
            "c32_s": args.duration,
            "warmup_s": args.warmup,
            "request_bytes": len(payloads.chat_request()),
            "response_bytes": len(payloads.chat_response()),
            "stream_bytes": len(payloads.chat_stream()),
        },
        "rows": [asdict(r) for r in rows],
        "profile": prof,
    }
    (RESULTS / f"run-{stamp}.json").write_text(json.dumps(doc, indent=2))
    (RESULTS / f"run-{stamp}.md").write_text(report)
    print(f"results: {(RESULTS / f'run-{stamp}.json').relative_to(ROOT)} ({doc['seconds']:.0f} s)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
