"""key-rate-limit and cluster-key-rate-limit (SPEC §3, §4; Higress reference §4, §5),
one plugin at a time, no sockets, state in memory under a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.plugin_support import Clock, DownStore, build, call, header, refused, services_with
from tollway.config.schema import FailureMode
from tollway.plugins.limits.cluster_key_rate_limit import ClusterKeyRateLimit
from tollway.plugins.limits.key_rate_limit import KeyRateLimit
from tollway.state.memory import MemoryStateStore
from tollway.testing.harness import run_request

PER_CONSUMER: dict[str, Any] = {
    "rule_name": "chat",
    "rule_items": [{"limit_by_per_consumer": "", "limit_keys": [{"key": "*", "query_per_minute": 5}]}],
}
BOTH = pytest.mark.parametrize("plugin", ["key-rate-limit", "cluster-key-rate-limit"])


async def admitted(plugin: Any, n: int, **call_args: Any) -> int:
    count = 0
    for _ in range(n):
        if await run_request(plugin, call(**call_args)) is None:
            count += 1
    return count


@BOTH
async def test_the_sixth_call_in_the_minute_is_429_with_retry_after(plugin: str) -> None:
    clock = Clock(60 * 28_333_333 + 15)  # 15 s into a minute
    limiter = build(plugin, PER_CONSUMER, services_with(clock=clock))
    assert await admitted(limiter, 5, consumer="alice") == 5
    ex = call("alice")
    err = refused(await run_request(limiter, ex), 429, f"{plugin}.exceeded")
    assert err.code == "rate_limit_exceeded"
    assert err.message == "Too many requests"
    assert header(err.headers, "retry-after") == "45"
    assert header(err.headers, "x-ratelimit-reset") == "45"
    assert ex.reason == f"{plugin}.exceeded"


@BOTH
async def test_another_consumer_is_unaffected(plugin: str) -> None:
    limiter = build(plugin, PER_CONSUMER)
    assert await admitted(limiter, 7, consumer="alice") == 5
    assert await admitted(limiter, 5, consumer="bob") == 5


@BOTH
async def test_the_next_window_admits_again(plugin: str) -> None:
    clock = Clock(1_700_000_000.25)
    config = {"limit_by_per_consumer": "", "limit_keys": [{"key": "*", "query_per_second": 2}], "rule_name": "r"}
    limiter = build(plugin, config, services_with(clock=clock))
    assert await admitted(limiter, 3, consumer="alice") == 2
    err = refused(await run_request(limiter, call("alice")), 429, f"{plugin}.exceeded")
    assert header(err.headers, "retry-after") == "1"  # 0.75 s left: whole seconds, at least 1
    clock.now += 0.75
    assert await admitted(limiter, 3, consumer="alice") == 2


async def test_retry_after_is_at_least_one_second_at_the_very_end_of_a_window() -> None:
    clock = Clock(60 * 28_333_334 - 0.001)
    config = {"limit_by_header": "x-app", "limit_keys": [{"key": "a", "query_per_minute": 1}]}
    limiter = build("key-rate-limit", config, services_with(clock=clock))
    await run_request(limiter, call(headers={"x-app": "a"}))
    err = refused(await run_request(limiter, call(headers={"x-app": "a"})), 429, "key-rate-limit.exceeded")
    assert header(err.headers, "retry-after") == "1"


async def test_limit_by_header_limits_only_the_listed_values() -> None:
    config = {"limit_by_header": "x-app", "limit_keys": [{"key": "batch", "query_per_hour": 1}]}
    limiter = build("key-rate-limit", config)
    assert await admitted(limiter, 3, headers={"x-app": "batch"}) == 1
    assert await admitted(limiter, 3, headers={"x-app": "web"}) == 3
    assert await admitted(limiter, 3) == 3  # no header: no limit


async def test_limit_by_star_shares_one_counter_and_limit_by_per_star_gives_each_value_its_own() -> None:
    shared = build("key-rate-limit", {"limit_by_header": "x-app", "limit_keys": [{"key": "*", "query_per_hour": 2}]})
    assert await admitted(shared, 1, headers={"x-app": "a"}) + await admitted(shared, 2, headers={"x-app": "b"}) == 2
    per = build("key-rate-limit", {"limit_by_per_header": "x-app", "limit_keys": [{"key": "*", "query_per_hour": 2}]})
    assert await admitted(per, 3, headers={"x-app": "a"}) == 2
    assert await admitted(per, 3, headers={"x-app": "b"}) == 2


async def test_regexp_keys_search_the_value_and_each_match_counts_apart() -> None:
    config = {"limit_by_per_param": "user", "limit_keys": [{"key": "regexp:^trial-", "query_per_day": 1}]}
    limiter = build("key-rate-limit", config)
    assert await admitted(limiter, 2, query="user=trial-1") == 1
    assert await admitted(limiter, 2, query="user=trial-2") == 1
    assert await admitted(limiter, 2, query="user=paid-1") == 2


async def test_the_first_limit_key_that_matches_wins_whatever_its_kind() -> None:
    config = {
        "limit_by_per_header": "x-app",
        "limit_keys": [
            {"key": "regexp:^vip", "query_per_hour": 3},
            {"key": "vip-1", "query_per_hour": 1},
            {"key": "*", "query_per_hour": 2},
        ],
    }
    limiter = build("key-rate-limit", config)
    assert await admitted(limiter, 5, headers={"x-app": "vip-1"}) == 3
    assert await admitted(limiter, 5, headers={"x-app": "other"}) == 2


async def test_rule_items_first_matching_item_wins_and_items_without_a_value_are_skipped() -> None:
    config = {
        "rule_name": "r",
        "rule_items": [
            {"limit_by_header": "x-team", "limit_keys": [{"key": "ml", "query_per_hour": 1}]},
            {"limit_by_per_consumer": "", "limit_keys": [{"key": "*", "query_per_hour": 2}]},
        ],
    }
    limiter = build("cluster-key-rate-limit", config)
    assert await admitted(limiter, 3, consumer="alice", headers={"x-team": "ml"}) == 1
    assert await admitted(limiter, 3, consumer="alice") == 2
    assert await admitted(limiter, 3) == 3  # neither a team nor a consumer


async def test_global_threshold_counts_every_request_together() -> None:
    limiter = build("cluster-key-rate-limit", {"rule_name": "g", "global_threshold": {"query_per_minute": 3}})
    assert await admitted(limiter, 2, consumer="a") + await admitted(limiter, 2, consumer="b") == 3


async def test_limit_by_cookie() -> None:
    config = {"limit_by_per_cookie": "session", "limit_keys": [{"key": "*", "query_per_hour": 1}]}
    limiter = build("key-rate-limit", config)
    assert await admitted(limiter, 2, headers={"cookie": "theme=dark; session=s1"}) == 1
    assert await admitted(limiter, 2, headers={"cookie": "session=s2"}) == 1
    assert await admitted(limiter, 2, headers={"cookie": "theme=dark"}) == 2


async def test_limit_by_per_ip_takes_addresses_and_networks() -> None:
    config = {
        "limit_by_per_ip": "from-remote-addr",
        "limit_keys": [{"key": "10.0.0.0/8", "query_per_hour": 1}, {"key": "192.168.1.7", "query_per_hour": 2}],
    }
    limiter = build("key-rate-limit", config)
    assert await admitted(limiter, 2, client_ip="10.1.2.3") == 1
    assert await admitted(limiter, 2, client_ip="10.9.9.9") == 1  # each address its own counter
    assert await admitted(limiter, 3, client_ip="192.168.1.7") == 2
    assert await admitted(limiter, 3, client_ip="172.16.0.1") == 3


async def test_limit_by_per_ip_from_a_header_reads_its_first_address() -> None:
    config = {"limit_by_per_ip": "from-header-x-forwarded-for", "limit_keys": [{"key": "::/0", "query_per_hour": 1}]}
    limiter = build("key-rate-limit", config)
    xff = {"x-forwarded-for": "2001:db8::1, 10.0.0.1"}
    assert await admitted(limiter, 2, headers=xff) == 1
    assert await admitted(limiter, 2, headers={"x-forwarded-for": "not-an-ip"}) == 2
    assert await admitted(limiter, 2, headers={"x-forwarded-for": "2001:0db8:0:0:0:0:0:1"}) == 0  # same address


async def test_limit_by_group_keys_on_the_consumers_groups() -> None:
    config = {
        "limit_by_group": "",
        "limit_keys": [{"key": "free", "query_per_hour": 2}, {"key": "pro", "query_per_hour": 4}],
    }
    limiter = build("key-rate-limit", config)
    # "free" comes first among the limit keys, so it decides for a consumer in both.
    assert await admitted(limiter, 3, consumer="a", groups=("pro", "free")) == 2
    assert await admitted(limiter, 3, consumer="b", groups=("free",)) == 0  # one counter for the group
    assert await admitted(limiter, 5, consumer="c", groups=("pro",)) == 4
    assert await admitted(limiter, 5, consumer="d") == 5


async def test_limit_by_per_group_counts_each_group_apart() -> None:
    config = {"limit_by_per_group": "", "limit_keys": [{"key": "regexp:^team-", "query_per_hour": 1}]}
    limiter = build("key-rate-limit", config)
    assert await admitted(limiter, 2, consumer="a", groups=("team-a",)) == 1
    assert await admitted(limiter, 2, consumer="b", groups=("team-b",)) == 1
    assert await admitted(limiter, 2, consumer="c", groups=("team-a",)) == 0


async def test_limit_by_model_is_decided_once_the_body_is_in() -> None:
    config = {"limit_by_per_model": "", "limit_keys": [{"key": "regexp:^gpt-4", "query_per_hour": 1}]}
    limiter = build("key-rate-limit", config)
    assert isinstance(limiter, KeyRateLimit) and limiter.in_body
    gpt4 = b'{"model": "gpt-4o", "messages": []}'
    assert await admitted(limiter, 2, body=gpt4) == 1
    assert await admitted(limiter, 2, body=b'{"model": "gpt-3.5-turbo"}') == 2
    assert await admitted(limiter, 2, body=b"not json") == 2
    ex = call(body=gpt4)
    assert await limiter.request_headers(ex) is None  # the headers phase decides nothing


async def test_rejected_code_and_a_plain_rejected_msg() -> None:
    config = {**PER_CONSUMER, "rejected_code": 503, "rejected_msg": "slow down"}
    limiter = build("cluster-key-rate-limit", config)
    await admitted(limiter, 5, consumer="a")
    err = refused(await run_request(limiter, call("a")), 503, "cluster-key-rate-limit.exceeded")
    assert err.message == "slow down" and err.body is None


async def test_a_rejected_msg_that_is_a_json_object_is_sent_as_it_stands() -> None:
    msg = '{"error": {"message": "quota", "type": "x"}}'
    limiter = build("cluster-key-rate-limit", {**PER_CONSUMER, "rejected_msg": msg})
    await admitted(limiter, 5, consumer="a")
    err = refused(await run_request(limiter, call("a")), 429, "cluster-key-rate-limit.exceeded")
    assert err.body == msg.encode()


@BOTH
async def test_show_limit_quota_header_on_admitted_and_refused_calls(plugin: str) -> None:
    limiter = build(plugin, {**PER_CONSUMER, "show_limit_quota_header": True})
    seen = []
    for _ in range(6):
        ex = call("alice")
        await run_request(limiter, ex)
        pairs = ex.response_headers
        seen.append((header(pairs, "x-ratelimit-limit"), header(pairs, "x-ratelimit-remaining")))
    assert seen == [("5", "4"), ("5", "3"), ("5", "2"), ("5", "1"), ("5", "0"), ("5", "0")]


async def test_without_show_limit_quota_header_admitted_calls_carry_no_headers() -> None:
    ex = call("alice")
    assert await run_request(build("key-rate-limit", PER_CONSUMER), ex) is None
    assert ex.response_headers == []


async def test_key_rate_limit_counts_in_this_process_and_cluster_in_the_shared_store() -> None:
    shared, local = MemoryStateStore(), MemoryStateStore()
    services = services_with(state=shared, local_state=local)
    await run_request(build("key-rate-limit", PER_CONSUMER, services), call("a"))
    await run_request(build("cluster-key-rate-limit", PER_CONSUMER, services), call("a"))
    assert list(local._windows) == ["key-rate-limit:chat:0:limit_by_per_consumer::60:a"]
    assert list(shared._windows) == ["cluster-key-rate-limit:chat:0:limit_by_per_consumer::60:a"]


async def test_scopes_share_counters_through_rule_name_and_count_apart_without_one() -> None:
    services = services_with()
    named = [build("cluster-key-rate-limit", PER_CONSUMER, services, rule=i) for i in (0, 1)]
    assert await admitted(named[0], 3, consumer="a") + await admitted(named[1], 3, consumer="a") == 5
    unnamed_config = {"limit_by_per_consumer": "", "limit_keys": [{"key": "*", "query_per_minute": 5}]}
    unnamed = [build("key-rate-limit", unnamed_config, services, rule=i) for i in (0, 1)]
    assert await admitted(unnamed[0], 6, consumer="a") == 5
    assert await admitted(unnamed[1], 6, consumer="a") == 5


async def test_a_long_value_is_hashed_in_the_counter_name() -> None:
    local = MemoryStateStore()
    limiter = build(
        "key-rate-limit",
        {"limit_by_per_header": "x-k", "limit_keys": [{"key": "*", "query_per_hour": 1}]},
        services_with(local_state=local),
    )
    assert await admitted(limiter, 2, headers={"x-k": "v" * 5000}) == 1
    (key,) = local._windows
    # (A header's value, long or not, is kept as its SHA-256: it may be a credential.)
    assert len(key) < 200 and "sha256:" in key and "vvvv" not in key
    # The hash, sent as a value of its own, is another value with a counter of its own
    # (it shared the long value's, and was refused).
    spelled = key[key.index("sha256:") :]
    assert await admitted(limiter, 1, headers={"x-k": spelled}) == 1


@pytest.mark.parametrize(("failure_mode", "passes"), [(None, True), ("open", True), ("closed", False)])
@BOTH
async def test_an_unreachable_store_follows_failure_mode(
    plugin: str, failure_mode: FailureMode | None, passes: bool
) -> None:
    down = DownStore()
    limiter = build(plugin, PER_CONSUMER, services_with(state=down, local_state=down), failure_mode=failure_mode)
    outcome = await run_request(limiter, call("alice"))
    if passes:
        assert outcome is None
    else:
        err = refused(outcome, 503, f"{plugin}.state_unavailable")
        assert err.code == "service_unavailable"
    assert down.errors == 1


def test_the_plugins_register_under_their_higress_names_and_priorities() -> None:
    from tollway.plugin import Phase
    from tollway.plugins.registry import REGISTRY

    assert REGISTRY["key-rate-limit"] is KeyRateLimit
    assert REGISTRY["cluster-key-rate-limit"] is ClusterKeyRateLimit
    assert (KeyRateLimit.phase, KeyRateLimit.priority) == (Phase.UNSPECIFIED, 10)
    assert (ClusterKeyRateLimit.phase, ClusterKeyRateLimit.priority) == (Phase.UNSPECIFIED, 20)


@pytest.mark.parametrize(
    ("plugin", "config", "message"),
    [
        ("key-rate-limit", {}, "give exactly one of global_threshold, rule_items"),
        ("key-rate-limit", {"limit_by_header": "x"}, "needs limit_keys"),
        ("cluster-key-rate-limit", {"global_threshold": {"query_per_second": 1}}, "rule_name"),
        (
            "cluster-key-rate-limit",
            {
                "rule_name": "r",
                "global_threshold": {"query_per_second": 1},
                "rule_items": [{"limit_by_header": "x", "limit_keys": [{"key": "a", "query_per_second": 1}]}],
            },
            "got global_threshold, rule_items",
        ),
        (
            "key-rate-limit",
            {"limit_by_header": "x", "limit_by_param": "y", "limit_keys": [{"key": "a", "query_per_second": 1}]},
            "exactly one limit_by_* field",
        ),
        ("key-rate-limit", {"limit_by_header": "x", "limit_keys": [{"key": "a"}]}, "give one of query_per"),
        # (0 is unset, as in Higress: a key needs one threshold above it.)
        ("key-rate-limit", {"limit_by_header": "x", "limit_keys": [{"key": "a", "query_per_second": 0}]}, "above 0"),
        ("key-rate-limit", {"limit_by_header": "x", "limit_keys": [{"key": "a", "token_per_second": 1}]}, "extra"),
        (
            "key-rate-limit",
            {"limit_by_header": "x", "limit_keys": [{"key": "regexp:(", "query_per_second": 1}]},
            "not a valid regular expression",
        ),
        (  # Go's POSIX class: a set of '[', ':', 'a', … to Python, which limited no value Go's would
            "key-rate-limit",
            {"limit_by_header": "x", "limit_keys": [{"key": "regexp:^[[:alpha:]]+$", "query_per_second": 1}]},
            "POSIX classes such as '[:alpha:]' (Go's) are not supported",
        ),
        # A threshold of the wrong type is refused, not converted (true was a limit of 1).
        ("key-rate-limit", {"limit_by_header": "x", "limit_keys": [{"key": "a", "query_per_second": True}]}, "integer"),
        ("key-rate-limit", {"limit_by_header": "x", "limit_keys": [{"key": "a", "query_per_second": "5"}]}, "integer"),
        (
            "key-rate-limit",
            {"limit_by_per_ip": "from-remote-addr", "limit_keys": [{"key": "10.0.0.300", "query_per_second": 1}]},
            "not an IP address or CIDR",
        ),
        (
            "key-rate-limit",
            {"limit_by_per_ip": "remote", "limit_keys": [{"key": "10.0.0.1", "query_per_second": 1}]},
            "from-remote-addr",
        ),
        (
            "key-rate-limit",
            {"limit_by_header": "", "limit_keys": [{"key": "a", "query_per_second": 1}]},
            "must name where",
        ),
        ("key-rate-limit", {"limit_by_header": "x", "limit_keys": []}, "at least 1 item"),
        ("key-rate-limit", {**PER_CONSUMER, "rejected_code": 200}, "greater than or equal to 400"),
    ],
)
def test_invalid_configs_are_errors(plugin: str, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        build(plugin, config)
    assert message in str(info.value)


def test_a_config_file_with_the_limits_loads_and_orders_them_after_key_auth() -> None:
    from pathlib import Path

    from tollway.chain import FailureLog
    from tollway.config.load import load_config_text
    from tollway.gateway.snapshot import Snapshot
    from tollway.plugins.registry import PLUGIN_MODELS
    from tollway.services import Services
    from tollway.testing.harness import make_services

    text = """
providers: [{id: p, type: mock}]
routes: [{name: chat, path_prefix: /v1/, provider: p}]
plugins:
  - name: key-rate-limit
    defaultConfig: {limit_by_per_consumer: "", limit_keys: [{key: "*", query_per_minute: 5}]}
  - name: cluster-key-rate-limit
    failure_mode: closed
    defaultConfig: {rule_name: c, global_threshold: {query_per_second: 100}}
  - name: key-auth
    defaultConfig: {keys: [x-api-key], consumers: [{name: a, credential: k}]}
"""
    loaded = load_config_text(text, plugins=PLUGIN_MODELS, base_dir=Path("."))
    services: Services = make_services()
    snapshot = Snapshot(loaded, services, FailureLog())
    assert [s.name for s in snapshot.slots] == ["key-auth", "cluster-key-rate-limit", "key-rate-limit"]
    cluster = snapshot.slots[1].default
    assert isinstance(cluster, ClusterKeyRateLimit) and cluster.fail_open is False


def test_of_several_thresholds_the_first_above_0_is_in_force_as_in_higress() -> None:
    """Higress takes the first of query_per_second, _minute, _hour, _day that is above 0;
    such a config was refused ("give exactly one"). The others are named in a warning."""
    from pydantic import BaseModel

    config = build(
        "key-rate-limit",
        {"limit_by_header": "x", "limit_keys": [{"key": "a", "query_per_second": 0, "query_per_minute": 100,
                                                  "query_per_day": 5}]},
    ).config  # fmt: skip
    assert isinstance(config, BaseModel)
    (key,) = config.limit_keys  # type: ignore[attr-defined]
    assert key.window() == (100, 60)
    assert config.ignored() == [
        "limit_keys[0].query_per_day: ignored; the first threshold above 0 is in force (query_per_minute)"
    ]
