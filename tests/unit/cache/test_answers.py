"""Exact cache entries (cache/answers.py): in memory, bounded and least recently used out,
and in Redis, shared; both forget an entry after its TTL."""

from __future__ import annotations

from tollway.cache import MemoryAnswers, RedisAnswers
from tollway.state.redis import RedisStateStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_least_recently_used_entry_goes_first_when_there_are_too_many() -> None:
    store = MemoryAnswers(max_entries=2, max_bytes=1 << 20)
    await store.put("a", b"1", 0)
    await store.put("b", b"2", 0)
    assert await store.get("a") == b"1"  # a is now the most recently used
    await store.put("c", b"3", 0)
    assert (await store.get("a"), await store.get("b"), await store.get("c")) == (b"1", None, b"3")
    assert len(store) == 2


async def test_the_byte_bound_counts_keys_and_answers_and_refuses_what_cannot_fit() -> None:
    store = MemoryAnswers(max_entries=100, max_bytes=20)
    await store.put("k1", b"x" * 8, 0)
    await store.put("k2", b"y" * 8, 0)  # 20 bytes in all: both fit
    assert store.size_bytes == 20
    await store.put("k3", b"z" * 8, 0)  # k1 goes
    assert await store.get("k1") is None and await store.get("k3") == b"z" * 8
    await store.put("big", b"w" * 30, 0)  # larger than the whole bound: not kept, nothing evicted
    assert await store.get("big") is None and await store.get("k2") == b"y" * 8


async def test_an_entry_is_forgotten_after_its_ttl_and_never_without_one() -> None:
    clock = Clock()
    store = MemoryAnswers(max_entries=10, max_bytes=1 << 20, clock=clock)
    await store.put("short", b"1", 60)
    await store.put("forever", b"2", 0)
    clock.now += 59
    assert await store.get("short") == b"1"
    clock.now += 2
    assert await store.get("short") is None and await store.get("forever") == b"2"
    assert len(store) == 1


async def test_resizing_drops_what_the_new_bounds_cannot_hold() -> None:
    store = MemoryAnswers(max_entries=3, max_bytes=1 << 20)
    for key in "abc":
        await store.put(key, b"v", 0)
    store.resize(1, 1 << 20)
    assert [await store.get(k) for k in "abc"] == [None, None, b"v"]


async def test_redis_entries_are_shared_and_expire(redis_url: str) -> None:
    one, two = RedisStateStore.from_url(redis_url), RedisStateStore.from_url(redis_url)
    try:
        await RedisAnswers(one).put("k", b"\x00answer\xff", 60)
        assert await RedisAnswers(two).get("k") == b"\x00answer\xff"
        assert 0 < await two.client.pttl(two.key_prefix + "k") <= 60_000
        await RedisAnswers(one).put("forever", b"x", 0)
        assert await two.client.pttl(two.key_prefix + "forever") == -1
        assert await RedisAnswers(two).get("missing") is None
    finally:
        await one.aclose()
        await two.aclose()
