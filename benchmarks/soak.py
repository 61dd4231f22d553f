"""Soak: a million calls through the full chain, memory and descriptors watched.

    .venv/bin/python benchmarks/soak.py                 # 1,000,000 calls (about 5 minutes)
    .venv/bin/python benchmarks/soak.py --calls 200000  # a shorter run

The gateway (``tollway serve``, the full chain of run.py: key-auth, request-block,
key-rate-limit, ai-token-ratelimit, usage recording and metrics) runs pinned to CPU 0,
nginx answers on CPU 1. One wrk (c32) sends every tenth request to the streaming route
(a 14-event stream) and the rest as plain calls; beside it, a client abandons 1% of the
calls: it sends a streamed call, reads the first bytes of the answer and closes the
socket. Every ``--sample-s`` seconds the gateway's resident memory (its process tree) and
open file descriptors are sampled. At the end the gateway is stopped (SIGTERM, usage
flushed) and its SQLite database must hold a record for every call (and for the few
wrk had in flight when each of its runs ended, which wrk does not count).

Judged (issue 17): resident memory at the end at most 5% above what it was after the
first 100,000 calls, no descriptor growth, zero failed calls, and every call recorded.
Writes ``benchmarks/results/soak-<time>.json`` and prints a markdown summary.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import payloads  # noqa: E402
from harness import PLAIN_PATH, STREAM_PATH, Cores  # noqa: E402
from run import CONFIG_KEY, LIMIT_HEADER, LIMIT_KEY, RESULTS, VENV_BIN, write_configs  # noqa: E402

# Nine plain calls, then a streamed one, on every connection (wrk.format per request).
_MIXED_LUA = """local plain_body = [==[{plain}]==]
local stream_body = [==[{stream}]==]
local headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {key}", ["{lh}"] = "{lk}"}}
local n = 0
request = function()
  n = n + 1
  if n % 10 == 0 then
    return wrk.format("POST", "{stream_path}", headers, stream_body)
  end
  return wrk.format("POST", "{plain_path}", headers, plain_body)
end
"""


@dataclass
class Sample:
    t_s: float
    calls: int
    rss_mib: float
    fds: int


@dataclass
class Soak:
    calls: int = 0
    wrk_calls: int = 0
    abandoned: int = 0
    abandon_failures: int = 0
    failed: int = 0
    samples: list[Sample] = field(default_factory=list)
    records: int | None = None
    seconds: float = 0.0
    wrk_runs: int = 0


def _script(workdir: Path) -> Path:
    mixed = _MIXED_LUA.format(
        plain=payloads.chat_request().decode(),
        stream=payloads.chat_request(stream=True).decode(),
        key=CONFIG_KEY,
        lh=LIMIT_HEADER,
        lk=LIMIT_KEY,
        stream_path=STREAM_PATH,
        plain_path=PLAIN_PATH,
    )
    return harness.wrk_script(workdir, "soak", b"", extra=mixed)


def _abandon_one(port: int, request: bytes) -> bool:
    """A streamed call the client leaves after the first bytes of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        first = s.recv(64)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        return first.startswith(b"HTTP/1.1 200")


def _abandoner(port: int, soak: Soak, rate: list[float], stop: threading.Event) -> None:
    body = payloads.chat_request(stream=True)
    request = (
        f"POST {STREAM_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {CONFIG_KEY}\r\n{LIMIT_HEADER}: {LIMIT_KEY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    due = time.monotonic()
    while not stop.is_set():
        try:
            ok = _abandon_one(port, request)
        except OSError:
            ok = False
        soak.abandoned += 1
        soak.abandon_failures += 0 if ok else 1
        # 1% of all calls: one abandoned call per 99 that wrk completes, on a schedule
        # (the time each abandoned call takes counts towards its interval).
        due += 99 / max(rate[0], 1.0)
        stop.wait(max(0.0, due - time.monotonic()))


def _fds(pids: list[int]) -> int:
    n = 0
    for pid in pids:
        try:
            n += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return n


def _records(folder: Path) -> int | None:
    found = sorted(folder.rglob("*.db")) + sorted(folder.rglob("*.sqlite*"))
    for db in found:
        try:
            with sqlite3.connect(db) as conn:
                (n,) = conn.execute("SELECT count(*) FROM usage_records").fetchone()
                return int(n)
        except sqlite3.Error:
            continue
    return None


def soak(calls: int, sample_s: float, segment_s: float) -> Soak:
    cores = Cores.pick()
    cores.pin_self()
    result = Soak()
    with tempfile.TemporaryDirectory(prefix="tollway-soak-") as tmp:
        workdir = Path(tmp)
        with harness.nginx_upstream(cores, workdir) as (upstream_port, _):
            configs = write_configs(workdir, upstream_port, f"soak-{os.getpid()}", "redis://127.0.0.1:6379/15")
            port = harness.free_port()
            argv = [str(VENV_BIN / "tollway"), "serve", "-c", str(configs["full-chain"]), "--port", str(port)]
            argv += ["--admin-port", str(harness.free_port())]
            proc = harness.spawn(cores.wrap(cores.target, argv), cwd=str(workdir))
            try:
                harness.wait_port(port, proc, timeout=30)
                script = _script(workdir)
                url = f"http://127.0.0.1:{port}{PLAIN_PATH}"
                rate = [4000.0]
                stop = threading.Event()
                abandoner = threading.Thread(target=_abandoner, args=(port, result, rate, stop), daemon=True)
                started = time.monotonic()
                abandoner.start()
                next_sample = 0.0
                while result.calls < calls:
                    left = calls - result.calls
                    seconds = max(1.0, min(segment_s, left / rate[0]))
                    r = harness.run_wrk(cores, url, script, 32, seconds)
                    rate[0] = r.rps or rate[0]
                    result.wrk_calls += r.requests
                    result.wrk_runs += 1
                    result.failed += r.errors + r.non_2xx
                    result.calls = result.wrk_calls + result.abandoned
                    now = time.monotonic() - started
                    if now >= next_sample or result.calls >= calls:
                        tree = harness.process_tree(proc.pid)
                        result.samples.append(Sample(round(now, 1), result.calls, round(_rss_mib(tree), 1), _fds(tree)))
                        next_sample = now + sample_s
                        print(
                            f"   {result.calls:,} calls, {result.samples[-1].rss_mib} MiB, "
                            f"{result.samples[-1].fds} fds",
                            file=sys.stderr,
                            flush=True,
                        )
                stop.set()
                abandoner.join(10)
                result.calls = result.wrk_calls + result.abandoned
                result.seconds = round(time.monotonic() - started, 1)
            finally:
                harness.stop(proc, timeout=60)
            result.records = _records(workdir)
    return result


def _rss_mib(pids: list[int]) -> float:
    """Current resident memory of ``pids`` (VmRSS), in MiB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def verdict(s: Soak) -> list[tuple[str, str, bool]]:
    after_100k = next((x for x in s.samples if x.calls >= 100_000), s.samples[0] if s.samples else None)
    last = s.samples[-1] if s.samples else None
    out: list[tuple[str, str, bool]] = []
    if after_100k and last:
        growth = last.rss_mib / after_100k.rss_mib - 1
        out.append(
            (
                "RSS growth after the first 100k calls ≤ 5%",
                f"{after_100k.rss_mib} → {last.rss_mib} MiB ({100 * growth:+.1f}%)",
                growth <= 0.05,
            )
        )
        first = s.samples[0]
        out.append(("no descriptor growth", f"{first.fds} → {last.fds} open fds", last.fds <= first.fds + 2))
    out.append(
        (
            "zero failed calls",
            f"{s.failed} failed, {s.abandon_failures} abandoned calls not answered",
            not s.failed and not s.abandon_failures,
        )
    )
    # wrk does not count the calls it has in flight when a run ends (up to one per
    # connection); the gateway answers or records them as the client left: so at least
    # one record per counted call, and at most 32 more per wrk run.
    extra = (s.records or 0) - s.calls
    out.append(
        (
            "every call recorded",
            f"{s.records} records for {s.calls:,} counted calls (+{extra}; ≤ {32 * s.wrk_runs} in flight at "
            f"the ends of {s.wrk_runs} wrk runs)",
            s.records is not None and 0 <= extra <= 32 * s.wrk_runs,
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=1_000_000)
    p.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples (10)")
    p.add_argument("--segment-s", type=float, default=10.0, help="seconds per wrk run between checks (10)")
    args = p.parse_args(argv)
    s = soak(args.calls, args.sample_s, args.segment_s)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    checks = verdict(s)
    (RESULTS / f"soak-{stamp}.json").write_text(json.dumps(asdict(s) | {"verdict": checks}, indent=1))
    print(f"Soak, {s.calls:,} calls in {s.seconds:,} s ({s.abandoned:,} abandoned, about 10% of the rest streamed):\n")
    print("| check | measured | result |\n| --- | --- | --- |")
    for what, measured, ok in checks:
        print(f"| {what} | {measured} | {'met' if ok else '**NOT met**'} |")
    print("\n| t s | calls | RSS MiB | fds |\n| --- | --- | --- | --- |")
    for x in s.samples:
        print(f"| {x.t_s} | {x.calls:,} | {x.rss_mib} | {x.fds} |")
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
