"""A hostile provider, fuzzed for a bounded time (atheris, coverage-guided): whatever
bytes a provider sends, the HTTP/1.1 client and the stream path (SSE parser, pass-through,
every translation) answer with a result, a ProtocolFailure or an error event, never an
escaped exception (the fuzz target is tests/fuzz/hostile_provider.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.seeds import seed_inputs

HERE = Path(__file__).parent
TARGET = HERE / "hostile_provider.py"
TRANSCRIPTS = HERE.parent / "fixtures" / "transcripts"
SECONDS = 25  # per target: a minute of the suite for both


@pytest.mark.parametrize("which", ["h1", "sse"])
def test_no_provider_bytes_escape_as_a_crash(which: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(seed_inputs(which, TRANSCRIPTS)):
        (corpus / f"seed-{i}").write_bytes(seed)
    run = subprocess.run(
        [sys.executable, str(TARGET), which, str(corpus), f"-max_total_time={SECONDS}", "-rss_limit_mb=2048",
         "-timeout=10", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=SECONDS + 60, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(HERE.parent.parent)},
    )  # fmt: skip
    crashes = sorted(p for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    assert run.returncode == 0 and not crashes, _report(run.stderr, crashes)


def _report(stderr: str, crashes: list[Path]) -> str:
    """What a failed run found: the exception that escaped (the fuzzer's statistics come
    after it, so the end of stderr alone does not show it) and the input, to replay."""
    start = stderr.find("=== Uncaught Python exception")
    found = stderr[start : start + 4000] if start >= 0 else stderr[-3000:]
    inputs = "\n".join(f"{p.name}: {p.read_bytes()[:2000]!r}" for p in crashes)
    return f"{found}\n{inputs}"
