"""Usage records that survive what a red team did to them (SPEC §14 "Records"), through
real ``tollway serve`` processes and real databases:

- SIGKILL under ~1,000 calls/s: the next start on the same data folder stores all but at
  most 10 answered calls' records, and none twice (SQLite and PostgreSQL); with
  ``--workers 2``, a killed worker's journal is stored by the worker that replaces it,
  and the live worker's is left alone;
- SIGTERM while PostgreSQL is unreachable (a TCP proxy in front of it is stopped, so the
  shared server keeps running): nothing is lost, the outage is logged once and without a
  traceback, and the next start stores every record;
- a poisoned record (NUL and oversize fields) is stored cleaned, and one the database
  refuses goes to the dead-letter file with the metric counted, the records around both
  stored as usual.

Answered means the client read the whole 200 before the kill; a record is counted by its
``x-request-id``, read straight from the database.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg  # type: ignore[import-untyped]
import httpx
import orjson
import pytest

from tests.conftest import GatewayFactory, Proc
from tests.support.tcp_proxy_support import TcpProxy
from tests.support.usage_support import eventually, metric_sum, parse_metrics

CHAT_BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def _config(database: str, *, base_url: str | None = None, extra: str = "") -> str:
    provider = (
        f"{{id: up, type: openai, baseUrl: {base_url}, apiTokens: [sk-up]}}" if base_url else "{id: up, type: mock}"
    )
    return f"""
server: {{shutdown_timeout_s: 2}}
storage: {{database: "{database}"}}
providers: [{provider}]
routes: [{{name: chat, path_prefix: /v1/, provider: up}}]
{extra}
"""


# --- reading the database -------------------------------------------------------------


def _stored_ids(database: str, tmp_path: Path) -> list[str]:
    """Every stored record's request id (duplicates kept, to be counted)."""
    if database.startswith("sqlite:///"):
        conn = sqlite3.connect(tmp_path / database.removeprefix("sqlite:///./"))
        try:
            return [row[0] for row in conn.execute("SELECT request_id FROM usage_records")]
        finally:
            conn.close()

    async def fetch() -> list[str]:
        parts = urlsplit(database)
        schema = parse_qs(parts.query)["search_path"][0]
        conn = await asyncpg.connect(parts._replace(query="").geturl(), server_settings={"search_path": schema})
        try:
            return [row[0] for row in await conn.fetch("SELECT request_id FROM usage_records")]
        finally:
            await conn.close()

    return asyncio.run(fetch())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite:///./usage.db"
    url: str = request.getfixturevalue("pg_url")
    return url


def _records_folder(tmp_path: Path) -> Path:
    found = [p for p in (*tmp_path.glob("records-*"), *tmp_path.glob("tollway-data/records-*")) if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


# --- load ------------------------------------------------------------------------------


class Load:
    """Keep-alive HTTP/1.1 clients at about ``rate`` calls a second in all, in a thread of
    their own, until the gateway goes away. ``answered``: the ids of the 200s read whole."""

    def __init__(self, url: str, *, rate: float = 1000, connections: int = 8) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rate, self.connections = rate, connections
        self.answered: list[str] = []
        self.other: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    async def _main(self) -> None:
        await asyncio.gather(*(self._connection(i) for i in range(self.connections)))

    async def _connection(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        interval = self.connections / self.rate
        # Staggered, so the calls arrive evenly rather than in bursts of ``connections``.
        due = loop.time() + index * interval / self.connections
        n = 0
        try:
            while not self._stop.is_set():
                rid = f"load-{index}-{n}"
                n += 1
                writer.write(
                    b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                    b"x-request-id: %s\r\ncontent-length: %d\r\n\r\n%s" % (rid.encode(), len(CHAT_BODY), CHAT_BODY)
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                status = int(head[9:12])
                if status == 200:
                    self.answered.append(rid)
                else:
                    self.other.append(status)
                due += interval
                await asyncio.sleep(max(0.0, due - loop.time()))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the gateway was killed
        finally:
            writer.close()


def test_sigkill_under_load_loses_at_most_ten_answered_records(
    gateway: GatewayFactory, database: str, tmp_path: Path
) -> None:
    config = _config(database)
    gw = gateway(config)
    with Load(gw.url) as load:
        time.sleep(1.0)
        gw.popen.send_signal(signal.SIGKILL)
        gw.popen.wait(10)
    assert gw.stop() == -signal.SIGKILL
    answered = set(load.answered)
    assert len(answered) > 300, f"only {len(answered)} calls in 1 s: the load did not run"
    assert load.other == []

    gateway(config)
    journal = _records_folder(tmp_path) / "journal"
    # The next start reads the killed process's journal into the database, then deletes it.
    eventually(lambda: not list(journal.glob(f"{gw.popen.pid}-*")), within=30)
    stored = _stored_ids(database, tmp_path)
    missing = answered - set(stored)
    assert len(missing) <= 10, f"{len(missing)} of {len(answered)} answered calls have no record"
    assert len(stored) == len(set(stored)), "a record was stored twice"


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.mark.redis
def test_a_killed_worker_journal_is_stored_by_its_successor_never_a_live_one(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    if not _redis_up():
        if os.environ.get("CI") == "true":
            pytest.fail("Redis is not reachable on 127.0.0.1:6379 and CI must run this test")
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    database = "sqlite:///./usage.db"
    config = _config(database).replace("storage: {", 'storage: {state: "redis://127.0.0.1:6379/0", ')
    gw = gateway(config, "--workers", "2")
    workers = [int(p) for p in Path(f"/proc/{gw.popen.pid}/task/{gw.popen.pid}/children").read_text().split()]
    assert len(workers) == 2
    journal = _records_folder(tmp_path) / "journal"
    eventually(lambda: all(list(journal.glob(f"{pid}-*.lock")) for pid in workers))
    killed, alive = workers
    with Load(gw.url, rate=500) as load:
        time.sleep(0.5)
        os.kill(killed, signal.SIGKILL)
        # The supervisor starts a new worker, which stores the dead one's journal and
        # deletes it; the live worker's is never touched.
        eventually(lambda: not list(journal.glob(f"{killed}-*")), within=30)
        assert list(journal.glob(f"{alive}-*.lock"))
        time.sleep(0.3)
    assert gw.stop() == 0
    answered = set(load.answered)
    stored = _stored_ids(database, tmp_path)
    missing = answered - set(stored)
    assert len(missing) <= 10, f"{len(missing)} of {len(answered)} answered calls have no record"
    assert len(stored) == len(set(stored)), "a record was stored twice"
    assert list(journal.iterdir()) == []


# --- a PostgreSQL outage ------------------------------------------------------------------


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.start()
    yield proxy
    proxy.close()


def _chat(gw: Proc, rid: str) -> int:
    headers = {"x-request-id": rid, "content-type": "application/json"}
    return httpx.post(gw.url + "/v1/chat/completions", content=CHAT_BODY, headers=headers, timeout=10).status_code


@pytest.mark.postgres
def test_sigterm_during_a_postgresql_outage_loses_nothing_and_the_next_start_stores_it(
    gateway: GatewayFactory, pg_url: str, pg_proxy: TcpProxy, tmp_path: Path
) -> None:
    through_proxy = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{pg_proxy.port}")
    config = _config(through_proxy)
    gw = gateway(config)
    before = [f"before-{i}" for i in range(20)]
    assert all(_chat(gw, rid) == 200 for rid in before)
    eventually(lambda: set(before) <= set(_stored_ids(pg_url, tmp_path)))

    pg_proxy.stop()
    with Load(gw.url, rate=300, connections=3) as load:  # served and recorded while the database is away
        time.sleep(1)
    during = [f"during-{i}" for i in range(20)]
    assert all(_chat(gw, rid) == 200 for rid in during)
    assert gw.stop() == 0
    answered = {*before, *during, *load.answered}

    errors = "\n".join(gw.stderr_lines)
    assert "Traceback" not in errors
    outage = [line for line in gw.stderr_lines if "writing records failed, will retry" in line]
    assert len(outage) == 1, outage  # once per 10 s
    assert any("not written at the stop, kept in" in line for line in gw.stderr_lines)
    assert list((_records_folder(tmp_path) / "journal").glob("*.jsonl"))

    pg_proxy.start()
    gateway(config)
    eventually(lambda: answered <= set(_stored_ids(pg_url, tmp_path)), within=30)
    stored = _stored_ids(pg_url, tmp_path)
    assert len(stored) == len(set(stored)) == len(answered), "every answered call stored exactly once"


@pytest.mark.postgres
def test_sigterm_with_a_silent_database_stops_in_bounded_time_and_keeps_every_record(
    gateway: GatewayFactory, pg_url: str, pg_proxy: TcpProxy, tmp_path: Path
) -> None:
    """A database that answers nothing (packets dropped, no reset) must not hold a stop
    for its command and connect timeouts: the stop is bounded by shutdown_timeout_s and
    the writer's own bound, and what was not stored waits in the journal."""
    through_proxy = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{pg_proxy.port}")
    config = _config(through_proxy)
    gw = gateway(config)
    before = [f"quiet-before-{i}" for i in range(5)]
    assert all(_chat(gw, rid) == 200 for rid in before)
    eventually(lambda: set(before) <= set(_stored_ids(pg_url, tmp_path)))

    pg_proxy.blackhole()
    during = [f"quiet-during-{i}" for i in range(20)]
    assert all(_chat(gw, rid) == 200 for rid in during)
    time.sleep(0.5)  # the writer is now inside a statement the database never answers
    # shutdown_timeout_s is 2 and the writer's stop bound 5: far below the 30 s command
    # timeout a silent server would otherwise cost.
    assert gw.stop(timeout=15) == 0
    assert "Traceback" not in "\n".join(gw.stderr_lines)
    assert list((_records_folder(tmp_path) / "journal").glob("*.jsonl"))

    pg_proxy.stop()  # the silent connections end; the database answers again
    pg_proxy.start()
    gateway(config)
    answered = {*before, *during}
    eventually(lambda: answered <= set(_stored_ids(pg_url, tmp_path)), within=30)


@pytest.fixture
def own_pg_database() -> Iterator[tuple[str, Any]]:
    """A PostgreSQL database of this test's own (its connections can be refused without
    touching anyone else's), and a way to run statements as the server's admin."""
    from tests.support.usage_support import PG_URL

    name = f"tw_outage_{os.getpid()}_{int(time.time())}"

    def admin(*statements: str) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(PG_URL, timeout=5)
            try:
                for sql in statements:
                    await conn.execute(sql.format(name=name))
            finally:
                await conn.close()

        asyncio.run(run())

    admin('CREATE DATABASE "{name}"')
    yield PG_URL.rsplit("/", 1)[0] + f"/{name}", admin
    admin(
        'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true',
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        'DROP DATABASE IF EXISTS "{name}"',
    )


@pytest.mark.postgres
def test_a_database_refusing_connections_under_load_loses_no_record_to_the_dead_letter_file(
    gateway: GatewayFactory, own_pg_database: tuple[str, Any], tmp_path: Path
) -> None:
    """An operator's ``ALLOW_CONNECTIONS false`` while the gateway writes: the records wait
    in the journal and are all stored once connections are allowed again. Read as the
    data's refusal, records failing while others were stored went to the dead-letter
    file (a judge lost 413 of 3,000)."""
    url, admin = own_pg_database
    gw = gateway(_config(url))
    with Load(gw.url, rate=400, connections=8) as load:
        time.sleep(0.5)
        admin(
            'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        )
        time.sleep(1.5)
        admin('ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        time.sleep(0.5)
    assert load.answered and not load.other

    async def stored() -> list[str]:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return [row[0] for row in await conn.fetch("SELECT request_id FROM usage_records")]
        finally:
            await conn.close()

    eventually(lambda: set(load.answered) <= set(asyncio.run(stored())), within=30)
    assert not (_records_folder(tmp_path) / "dead-letter.jsonl").exists()
    assert "Traceback" not in "\n".join(gw.stderr_lines)


# --- poisoned records -------------------------------------------------------------------

ABSURD = 2**63  # one more than PostgreSQL's and SQLite's 64-bit integers hold
REFUSED = "refused-by-the-database"


def _refuse_in_database(database: str, tmp_path: Path, request_id: str) -> None:
    """A trigger that makes the database refuse the row of ``request_id`` (as it would a
    row it cannot take for a reason no check of ours foresaw)."""
    if database.startswith("sqlite:///"):
        conn = sqlite3.connect(tmp_path / database.removeprefix("sqlite:///./"))
        try:
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON usage_records "
                f"WHEN NEW.request_id = '{request_id}' BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
            )
            conn.commit()
        finally:
            conn.close()
        return

    async def create() -> None:
        parts = urlsplit(database)
        schema = parse_qs(parts.query)["search_path"][0]
        conn = await asyncpg.connect(parts._replace(query="").geturl(), server_settings={"search_path": schema})
        try:
            await conn.execute(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.request_id = '{request_id}' THEN RAISE EXCEPTION 'refused by a trigger'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            await conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON usage_records FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        finally:
            await conn.close()

    asyncio.run(create())


class Upstream(http.server.ThreadingHTTPServer):
    """An OpenAI-style provider that reports 2^63 prompt tokens for ``absurd-usage`` (a
    count no call has: not believed, the call's tokens estimated)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
        model = body.get("model", "")
        tokens = ABSURD if model == "absurd-usage" else 5
        answer = orjson.dumps(
            {"id": "c", "object": "chat.completion", "created": 1, "model": model,
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": tokens, "completion_tokens": 1, "total_tokens": tokens + 1}}
        )  # fmt: skip
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


STATS = """
plugins:
  - name: ai-statistics
    defaultConfig:
      attributes:
        - {key: user, value_source: request_body, value: user}
"""


def test_a_poisoned_record_blocks_nothing_and_one_the_database_refuses_is_dead_lettered(
    gateway: GatewayFactory, database: str, upstream: Upstream, tmp_path: Path
) -> None:
    gw = gateway(_config(database, base_url=upstream.url, extra=STATS))
    _refuse_in_database(database, tmp_path, REFUSED)

    def call(rid: str, **body: Any) -> int:
        payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **body}
        reply = httpx.post(gw.url + "/v1/chat/completions", json=payload, headers={"x-request-id": rid}, timeout=10)
        return reply.status_code

    long_id = "long-" + "x" * 2000
    assert [call(f"plain-{i}") for i in range(3)] == [200] * 3
    assert call("nul-model", model="gpt\x00-4o") == 400  # refused, and recorded
    assert call(long_id, model="m" * 5000) == 200
    assert call("nul-attribute", user="u\x00ser") == 200
    assert call("absurd", model="absurd-usage") == 200
    assert call(REFUSED) == 200
    assert [call(f"after-{i}") for i in range(3)] == [200] * 3

    records = httpx.get(gw.admin_url + "/api/requests", params={"limit": "100"}, timeout=10).json()["requests"]
    by_id = {r["request_id"]: r for r in records}
    assert set(by_id) == {
        *(f"plain-{i}" for i in range(3)),
        *(f"after-{i}" for i in range(3)),
        "nul-model",
        long_id[:512],
        "nul-attribute",
        "absurd",
    }
    absurd = by_id["absurd"]
    assert absurd["tokens_estimated"] and 0 < absurd["input_tokens"] < 1000 and absurd["output_tokens"] == 1
    assert by_id["nul-model"]["model_requested"] == "gpt-4o" and by_id["nul-model"]["status"] == 400
    assert by_id[long_id[:512]]["model_requested"] == "m" * 512
    assert by_id["nul-attribute"]["attributes"] == {"user": "user"}

    dead = [orjson.loads(line) for line in (_records_folder(tmp_path) / "dead-letter.jsonl").read_bytes().splitlines()]
    assert [d["record"]["request_id"] for d in dead] == [REFUSED]
    samples = parse_metrics(httpx.get(gw.admin_url + "/metrics", timeout=10).text)
    assert metric_sum(samples, "tollway_records_failed_total") == 1
    # The provider echoes every model it is asked for; the label takes none of them.
    assert {labels["model"] for name, labels, _ in samples if name == "tollway_requests_total"} == {
        "gpt-4o-mini",  # in the built-in price table
        "other",
    }
    assert len(gw.logged(f"refused the record of request {REFUSED}")) == 1
