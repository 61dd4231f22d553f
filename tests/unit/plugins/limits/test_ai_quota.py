"""ai-quota (SPEC §3, §4; Higress reference §11), one plugin at a time, no sockets."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from tests.support.plugin_support import DownStore, build, call, header, refused, services_with
from tests.support.quota_support import SwitchedDatabase, forget_quotas
from tollway.exchange import Attempt, Exchange, Reply
from tollway.plugins.limits.ai_quota import AiQuota
from tollway.plugins.limits.reservation import estimate
from tollway.quotas.balances import Balance
from tollway.quotas.ledger import QuotaLedger
from tollway.state.memory import MemoryStateStore
from tollway.storage import open_database
from tollway.testing.harness import run_request

CONFIG: dict[str, Any] = {"admin_consumer": "admin"}
BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20})


def quota(config: dict[str, Any] | None = None, **kwargs: Any) -> tuple[AiQuota, MemoryStateStore]:
    store = MemoryStateStore()
    plugin = build("ai-quota", config or CONFIG, services_with(state=store), **kwargs)
    assert isinstance(plugin, AiQuota)
    return plugin, store


def served(ex: Exchange, input_tokens: int, output_tokens: int) -> Exchange:
    ex.provider = "p"
    ex.attempts.append(Attempt("p", 200, 1.0))
    ex.status = 200
    ex.usage.input_tokens, ex.usage.output_tokens, ex.usage.reported = input_tokens, output_tokens, True
    return ex


def admin(method: str, path: str, query: str = "", form: str = "", consumer: str = "admin") -> Exchange:
    return call(consumer, method=method, path=path, query=query, body=form.encode() if form else b"")


async def test_a_call_without_a_consumer_is_401() -> None:
    plugin, _ = quota()
    err = refused(await run_request(plugin, call(body=BODY)), 401, "ai-quota.no_consumer")
    assert err.code == "invalid_api_key"


@pytest.mark.parametrize("balance", [None, 0, -10])
async def test_no_zero_or_negative_quota_is_403_insufficient_quota(balance: int | None) -> None:
    plugin, store = quota()
    if balance is not None:
        await store.quota_set("chat_quota:alice", balance)
    err = refused(await run_request(plugin, call("alice", body=BODY)), 403, "ai-quota.exhausted")
    assert err.code == "insufficient_quota"


async def test_a_call_reserves_then_is_charged_its_real_usage() -> None:
    plugin, store = quota()
    await store.quota_set("chat_quota:alice", 1000)
    ex = call("alice", body=BODY)
    assert await run_request(plugin, ex) is None
    assert await store.quota_get("chat_quota:alice") == 1000 - estimate(ex, 256)
    await plugin.done(served(ex, 3, 11))
    assert await store.quota_get("chat_quota:alice") == 986


async def test_the_last_tokens_are_reserved_by_one_call_only() -> None:
    plugin, store = quota()
    await store.quota_set("chat_quota:alice", 5)
    first = call("alice", body=BODY)
    assert await run_request(plugin, first) is None
    refused(await run_request(plugin, call("alice", body=BODY)), 403, "ai-quota.exhausted")
    await plugin.done(served(first, 3, 20))  # spent beyond what remained
    assert await store.quota_get("chat_quota:alice") == -18


async def test_a_refresh_during_a_call_is_charged_only_what_the_call_spent() -> None:
    plugin, store = quota()
    await store.quota_set("chat_quota:alice", 1000)
    ex = call("alice", body=BODY)
    await run_request(plugin, ex)
    await store.quota_set("chat_quota:alice", 50)
    await plugin.done(served(ex, 2, 3))
    assert await store.quota_get("chat_quota:alice") == 45


async def test_get_requests_are_not_charged() -> None:
    plugin, _ = quota()
    assert await run_request(plugin, call("alice", method="GET", path="/v1/models", body=None)) is None


async def test_redis_key_prefix_names_the_quota() -> None:
    plugin, store = quota({**CONFIG, "redis_key_prefix": "q/"})
    await store.quota_set("q/alice", 100)
    assert await run_request(plugin, call("alice", body=BODY)) is None


# --- the management endpoints --------------------------------------------------------------


async def test_the_admin_reads_refreshes_and_moves_a_quota() -> None:
    plugin, store = quota()
    reply = await run_request(plugin, admin("POST", "/quota/refresh", form="consumer=alice&quota=500"))
    assert isinstance(reply, Reply) and reply.status == 200 and reply.body == b"refresh quota successful"
    reply = await run_request(plugin, admin("POST", "/quota/delta", form="consumer=alice&value=-120"))
    assert isinstance(reply, Reply) and reply.body == b"delta quota successful"
    reply = await run_request(plugin, admin("GET", "/quota", query="consumer=alice"))
    assert isinstance(reply, Reply) and reply.status == 200
    assert orjson.loads(reply.body) == {"quota": 380, "consumer": "alice"}
    assert ("content-type", "application/json") in reply.headers
    assert await store.quota_get("chat_quota:alice") == 380


async def test_a_delta_on_a_consumer_without_quota_starts_from_zero() -> None:
    plugin, store = quota()
    await run_request(plugin, admin("POST", "/quota/delta", form="consumer=bob&value=70"))
    assert await store.quota_get("chat_quota:bob") == 70
    reply = await run_request(plugin, admin("GET", "/quota", query="consumer=nobody"))
    assert isinstance(reply, Reply) and orjson.loads(reply.body) == {"quota": 0, "consumer": "nobody"}


async def test_higress_paths_and_a_custom_admin_path_work() -> None:
    plugin, _ = quota({**CONFIG, "admin_path": "/manage/quota"})
    ex = admin("POST", "/v1/chat/completions/manage/quota/refresh", form="consumer=alice&quota=9")
    assert isinstance(await run_request(plugin, ex), Reply)
    reply = await run_request(plugin, admin("GET", "/manage/quota", query="consumer=alice"))
    assert isinstance(reply, Reply) and orjson.loads(reply.body)["quota"] == 9


async def test_only_the_admin_consumer_may_manage_quotas() -> None:
    plugin, _ = quota()
    err = refused(
        await run_request(plugin, admin("GET", "/quota", "consumer=alice", consumer="alice")), 403, "ai-quota.forbidden"
    )
    assert err.code == "permission_denied"
    anonymous = call(method="GET", path="/quota", query="consumer=alice", body=b"")
    refused(await run_request(plugin, anonymous), 401, "ai-quota.no_consumer")


@pytest.mark.parametrize(
    ("method", "path", "query", "form"),
    [
        ("GET", "/quota", "", ""),
        ("POST", "/quota/refresh", "", "consumer=alice"),
        ("POST", "/quota/refresh", "", "consumer=alice&quota=lots"),
        ("POST", "/quota/delta", "", "value=3"),
        ("GET", "/quota/refresh", "consumer=alice&quota=3", ""),
        ("POST", "/quota", "consumer=alice", ""),
        ("POST", "/quota/refresh", "", "consumer=alice&quota=9007199254740992"),
        ("POST", "/quota/delta", "", "consumer=alice&value=-99999999999999999999999"),
        ("POST", "/quota/refresh", "", "consumer=al%00ice&quota=3"),
        ("GET", "/quota", "consumer=" + "a" * 257, ""),
        # Integers as the docs say them: "+3", " 3" and another script's digits were 3.
        ("POST", "/quota/delta", "", "consumer=alice&value=%2B3"),
        ("POST", "/quota/delta", "", "consumer=alice&value=%203"),
        ("POST", "/quota/delta", "", "consumer=alice&value=%D9%A3"),
        ("POST", "/quota/refresh", "", "consumer=alice&quota=3_000"),
    ],
)
async def test_bad_admin_calls_are_400(method: str, path: str, query: str, form: str) -> None:
    plugin, _ = quota()
    refused(await run_request(plugin, admin(method, path, query, form)), 400, "ai-quota.bad_request")


# --- the store unreachable -----------------------------------------------------------------


async def test_an_unreachable_store_refuses_calls_by_default() -> None:
    plugin = build("ai-quota", CONFIG, services_with(state=DownStore()))
    err = refused(await run_request(plugin, call("alice", body=BODY)), 503, "ai-quota.state_unavailable")
    assert err.code == "service_unavailable"


async def test_with_failure_mode_open_calls_pass_while_the_store_is_down() -> None:
    plugin = build("ai-quota", CONFIG, services_with(state=DownStore()), failure_mode="open")
    ex = call("alice", body=BODY)
    assert await run_request(plugin, ex) is None
    await plugin.done(served(ex, 1, 1))


async def test_the_admin_endpoints_answer_503_while_the_store_is_down() -> None:
    plugin = build("ai-quota", CONFIG, services_with(state=DownStore()), failure_mode="open")
    err = refused(
        await run_request(plugin, admin("GET", "/quota", query="consumer=alice")), 503, "ai-quota.state_unavailable"
    )
    assert ("retry-after", "1") in err.headers  # as the calls refused in the same outage
    # The store's own words (DownStore says "down"; Redis names its address) are not the client's.
    assert "down" not in err.message


# --- the database keeps the truth (services.quota_ledger) ----------------------------------


@dataclasses.dataclass
class Ledgered:
    plugin: AiQuota
    ledger: QuotaLedger
    database: SwitchedDatabase


@pytest.fixture
async def ledgered(tmp_path: Path) -> AsyncIterator[Ledgered]:
    db = SwitchedDatabase(open_database(f"sqlite:///{tmp_path / 'tollway.db'}", tmp_path))
    await db.connect()
    store = MemoryStateStore()
    ledger = QuotaLedger(db, store, interval_s=3600, timeout_s=1.0)
    await ledger.start()
    plugin = build("ai-quota", CONFIG, dataclasses.replace(services_with(state=store), quota_ledger=ledger))
    assert isinstance(plugin, AiQuota)
    yield Ledgered(plugin, ledger, db)
    await ledger.stop()
    await db.close()


async def admin_ok(plugin: AiQuota, path: str, form: str) -> None:
    reply = await run_request(plugin, admin("POST", path, form=form))
    assert isinstance(reply, Reply) and reply.status == 200, reply


async def quota_of(plugin: AiQuota, who: str = "alice") -> int:
    reply = await run_request(plugin, admin("GET", "/quota", query=f"consumer={who}"))
    assert isinstance(reply, Reply) and reply.status == 200, reply
    value: int = orjson.loads(reply.body)["quota"]
    return value


async def spend_through(plugin: AiQuota, input_tokens: int, output_tokens: int) -> None:
    ex = call("alice", body=BODY)
    assert await run_request(plugin, ex) is None
    await plugin.done(served(ex, input_tokens, output_tokens))


async def test_a_balance_the_store_lost_is_rebuilt_before_the_next_call(ledgered: Ledgered) -> None:
    plugin = ledgered.plugin
    await admin_ok(plugin, "/quota/refresh", "consumer=alice&quota=1000")
    await admin_ok(plugin, "/quota/delta", "consumer=alice&value=50")
    await spend_through(plugin, 10, 20)
    await ledgered.ledger.write()
    await spend_through(plugin, 5, 5)  # not written to the database yet
    await forget_quotas(ledgered.ledger.state)  # a Redis flushed or restarted empty
    ex = call("alice", body=BODY)
    assert await run_request(plugin, ex) is None  # not 403
    await plugin.done(served(ex, 1, 2))
    assert await quota_of(plugin) == 1050 - 30 - 10 - 3  # not the full quota either
    await ledgered.ledger.write()
    assert await ledgered.ledger.table.read("chat_quota:alice") == Balance(1007, 2, 1)


async def test_every_settled_call_reaches_the_database_in_a_batch(ledgered: Ledgered) -> None:
    plugin = ledgered.plugin
    await admin_ok(plugin, "/quota/refresh", "consumer=alice&quota=1000")
    before = sum(ledgered.database.calls.values())
    never_sent = call("alice", body=BODY)
    assert await run_request(plugin, never_sent) is None
    await plugin.done(never_sent)  # no provider reached: costs nothing
    unreported = call("alice", body=BODY)
    assert await run_request(plugin, unreported) is None
    unreported.provider, unreported.status = "p", 200
    unreported.attempts.append(Attempt("p", 200, 1.0))
    await plugin.done(unreported)  # answered without usage: its reservation stands as spent
    for _ in range(5):
        await spend_through(plugin, 10, 10)
    assert sum(ledgered.database.calls.values()) == before  # nothing on the calls' path
    await ledgered.ledger.write()
    expected = 1000 - estimate(unreported, 256) - 100
    assert await quota_of(plugin) == expected
    assert await ledgered.ledger.table.read("chat_quota:alice") == Balance(expected, 1, 1)


async def test_refresh_and_delta_while_the_database_is_down_are_503_and_change_nothing(ledgered: Ledgered) -> None:
    plugin = ledgered.plugin
    await admin_ok(plugin, "/quota/refresh", "consumer=alice&quota=1000")
    ledgered.database.down = True
    for path, form in (("/quota/refresh", "consumer=alice&quota=5"), ("/quota/delta", "consumer=alice&value=5")):
        err = refused(await run_request(plugin, admin("POST", path, form=form)), 503, "ai-quota.database_unavailable")
        assert err.code == "service_unavailable"
        assert header(err.headers, "retry-after") == "1"
    assert await quota_of(plugin) == 1000  # the store answers reads on its own
    assert await run_request(plugin, call("alice", body=BODY)) is None  # and decides calls
    ledgered.database.down = False
    assert await ledgered.ledger.table.read("chat_quota:alice") == Balance(1000, 1, 1)


async def test_concurrent_calls_after_a_loss_rebuild_once(ledgered: Ledgered) -> None:
    plugin = ledgered.plugin
    await admin_ok(plugin, "/quota/refresh", "consumer=alice&quota=100000")
    await forget_quotas(ledgered.ledger.state)
    reads = ledgered.database.calls["fetch"]
    outcomes = await asyncio.gather(*(run_request(plugin, call("alice", body=BODY)) for _ in range(20)))
    assert outcomes == [None] * 20
    assert ledgered.database.calls["fetch"] == reads + 1
    assert ledgered.ledger.rebuilt == 1
    assert await quota_of(plugin) == 100000 - 20 * estimate(call("alice", body=BODY), 256)


async def test_a_consumer_that_never_had_a_quota_is_still_refused(ledgered: Ledgered) -> None:
    for _ in range(3):
        refused(await run_request(ledgered.plugin, call("alice", body=BODY)), 403, "ai-quota.exhausted")
    assert ledgered.ledger.rebuilt == 0
    assert await quota_of(ledgered.plugin) == 0


async def test_a_call_that_needs_a_rebuild_while_the_database_is_down_follows_failure_mode(
    ledgered: Ledgered,
) -> None:
    await admin_ok(ledgered.plugin, "/quota/refresh", "consumer=alice&quota=1000")
    await forget_quotas(ledgered.ledger.state)
    ledgered.database.down = True
    err = refused(await run_request(ledgered.plugin, call("alice", body=BODY)), 503, "ai-quota.database_unavailable")
    assert err.code == "service_unavailable"
    services = dataclasses.replace(services_with(state=ledgered.ledger.state), quota_ledger=ledgered.ledger)
    fails_open = build("ai-quota", CONFIG, services, failure_mode="open")
    assert await run_request(fails_open, call("alice", body=BODY)) is None
    ledgered.database.down = False
    assert await run_request(ledgered.plugin, call("alice", body=BODY)) is None


def test_the_plugin_registers_with_higress_name_and_priority() -> None:
    from tollway.plugin import Phase
    from tollway.plugins.registry import REGISTRY

    assert REGISTRY["ai-quota"] is AiQuota
    assert (AiQuota.phase, AiQuota.priority) == (Phase.UNSPECIFIED, 750)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "admin_consumer"),
        ({**CONFIG, "admin_path": "quota"}, "must start with '/'"),
        ({**CONFIG, "admin_path": "/quota/"}, "must start with '/'"),
        ({**CONFIG, "redis": {"service_name": "x"}}, "extra"),
    ],
)
def test_invalid_configs_are_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        build("ai-quota", config)
    assert message in str(info.value)
