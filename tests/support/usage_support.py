"""Helpers shared by the usage, metrics and dashboard tests: a fresh PostgreSQL schema,
usage records (``usage_record``, and ``rec`` for the store and writer tests), Prometheus
text parsing, waiting for a condition."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from tollway.usage.record import UsageRecord

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def fresh_pg_schema() -> Iterator[str]:
    """Yield a URL for a new schema in the ``test`` database and drop it afterwards;
    skip (fail under ``CI=true``) when PostgreSQL does not answer."""
    schema = f"tw_usage_{secrets.token_hex(6)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(PG_URL, timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL not reachable at {PG_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    yield f"{PG_URL}?search_path={schema}"
    asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE'))


Sample = tuple[str, dict[str, str], float]


def usage_record(**fields: Any) -> UsageRecord:
    """A usage record of a plain served call, with ``fields`` changed."""
    base = UsageRecord(
        ts_ms=1_795_700_000_000,
        request_id="r",
        route="chat",
        consumer="alice",
        provider="openai",
        model_requested="gpt-4o",
        model_upstream="gpt-4o",
        status=200,
        reason=None,
        blocked_by=None,
        stream=False,
        input_tokens=10,
        output_tokens=20,
        cached_tokens=0,
        reasoning_tokens=0,
        tokens_estimated=False,
        cost_usd=None,
        latency_ms=120.0,
        ttft_ms=None,
        client_ip="127.0.0.1",
        attempts=[],
        attributes=None,
        api="chat",
    )
    return base._replace(**fields)


DAY1 = datetime(2026, 3, 1, 10, 15, tzinfo=UTC).timestamp()
DAY2 = datetime(2026, 3, 2, 23, 59, tzinfo=UTC).timestamp()


def rec(
    ts: float,
    consumer: str | None,
    model: str | None = "gpt-4o",
    status: int = 200,
    tokens: tuple[int, int] = (10, 20),
    cost: float | None = 0.5,
    *,
    route: str | None = "chat",
    provider: str | None = "openai",
    request_id: str = "r",
) -> UsageRecord:
    return usage_record(
        ts_ms=round(ts * 1000),
        request_id=request_id,
        route=route,
        consumer=consumer,
        provider=provider,
        model_requested=model,
        model_upstream=model,
        status=status,
        reason=None if status < 400 else "key-auth.no_key",
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost_usd=cost,
        latency_ms=12.5,
        client_ip="127.0.0.1",
    )


def parse_metrics(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition: (name, labels, value)."""
    samples: list[Sample] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m is not None, f"not a Prometheus sample: {line!r}"
        labels = dict(_LABEL.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def metric_sum(samples: list[Sample], name: str, **where: str) -> float:
    """The sum of ``name``'s samples whose labels include ``where``."""
    return sum(v for n, labels, v in samples if n == name and all(labels.get(k) == w for k, w in where.items()))


def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s")
        time.sleep(0.05)
