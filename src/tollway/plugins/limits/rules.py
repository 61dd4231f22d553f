"""Limit rules compiled once per config snapshot: which counter a request counts against.

``LimitRules.match(ex)`` walks the global threshold or the rule items in order (first
match wins, as in Higress) and answers the counter's name and its limit and window, or
``None`` when no limit applies. Everything that can be decided at config load is:
exact keys sit in a dict, regular expressions are compiled, networks parsed, counter
names built. The hot path reads one value and does a dict lookup.

Which value a request has:

* ``limit_by_header`` / ``_param`` / ``_cookie``: the named header (first one), query
  parameter (first one) or cookie; ``limit_by_consumer``: the authenticated consumer's
  name; ``limit_by_group``: each of the consumer's groups; ``limit_by_model``: the
  model the request names (known once the body is in, so rules using it are decided in
  the request-body phase);
  ``limit_by_per_ip``: the client address (``from-remote-addr``, which already honours
  ``server.trusted_proxies``) or the first address in a header (``from-header-<name>``).
* A request without the value, or whose value matches no limit key, skips the item.
* ``limit_by_*`` counts every matching value in the limit key's one counter;
  ``limit_by_per_*`` gives each distinct value its own counter.
* A consumer in several groups: the limit keys are tried in order, and the first key
  that one of the groups matches decides (the first such group names the counter).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from tollway.errors import RateLimited
from tollway.exchange import Exchange
from tollway.plugin import Scope
from tollway.plugins.limits.config import REGEXP_PREFIX, LimitRulesConfig

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Values = Callable[[Exchange], str | None]
MultiValues = Callable[[Exchange], Sequence[str]]

# Values longer than this are hashed in counter names: a client must not be able to
# make the state store keep kilobyte keys.
_LONG_VALUE = 128


def _hidden(value: str) -> str:
    """A header's, query parameter's or cookie's value as a counter's name holds it: its
    SHA-256. A shared Redis shows counter names to whoever can list its keys, and any
    such value may be a credential (a consumer's key, limited per key as Higress configs
    often do, in whatever header key-auth reads it from; a session cookie): no name tells
    them all apart (a red team's finding: ``x-client-pass``)."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


class Counter:
    """One configured limit: ``name`` is the counter's full name for a shared counter,
    or the prefix each value is appended to for a per-value counter."""

    __slots__ = ("limit", "name", "per_value", "window_s")

    def __init__(self, name: str, limit: int, window_s: int, per_value: bool) -> None:
        self.name = name
        self.limit = limit
        self.window_s = window_s
        self.per_value = per_value

    def key_for(self, value: str) -> str:
        if not self.per_value:
            return self.name
        if len(value) > _LONG_VALUE or value.startswith("sha1:"):
            # (A value spelled as a hash is hashed too: sent as it is, it shared the
            # counter of the long value it names.)
            value = "sha1:" + hashlib.sha1(value.encode("utf-8", "surrogateescape")).hexdigest()
        return self.name + value


Hit = tuple[str, Counter]


def _first_cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        k, sep, v = part.strip().partition("=")
        if sep and k == name:
            return v.strip()
    return None


def requested_model(ex: Exchange) -> str | None:
    """The model the request names (a fact the gateway reads off the body)."""
    return ex.model_requested


def _source(field: str, name: str) -> Values | None:
    """The single-valued extractor for ``field``, or ``None`` for multi-valued (groups)."""
    kind = field.removeprefix("limit_by_").removeprefix("per_")
    if kind == "header":
        header = name.lower()
        return lambda ex: ex.request.headers.get(header)
    if kind == "param":
        return lambda ex: ex.request.query_param(name)
    if kind == "cookie":

        def cookie(ex: Exchange) -> str | None:
            raw = ex.request.headers.get_all("cookie")
            return _first_cookie("; ".join(raw), name) if raw else None

        return cookie
    if kind == "consumer":
        return lambda ex: ex.consumer.name if ex.consumer is not None else None
    if kind == "model":
        return requested_model
    if kind == "ip":
        if name == "from-remote-addr":
            return lambda ex: ex.request.client_ip or None
        header = name.removeprefix("from-header-").lower()

        def from_header(ex: Exchange) -> str | None:
            value = ex.request.headers.get(header)
            if not value:
                return None
            return value.split(",", 1)[0].strip() or None

        return from_header
    return None


def _groups(ex: Exchange) -> Sequence[str]:
    return ex.consumer.groups if ex.consumer is not None else ()


class _KeyTable:
    """An item's limit keys in order: exact values in a dict, ``*`` and ``regexp:`` in a
    list; the earliest key that matches wins, whatever its kind."""

    __slots__ = ("exact", "patterns")

    def __init__(self, keys: Sequence[tuple[str, Counter]]) -> None:
        self.exact: dict[str, tuple[int, Counter]] = {}
        self.patterns: list[tuple[int, re.Pattern[str] | None, Counter]] = []
        for i, (key, counter) in enumerate(keys):
            if key == "*":
                self.patterns.append((i, None, counter))
            elif key.startswith(REGEXP_PREFIX):
                self.patterns.append((i, re.compile(key[len(REGEXP_PREFIX) :]), counter))
            else:
                self.exact.setdefault(key, (i, counter))

    def find(self, value: str) -> tuple[int, Counter] | None:
        hit = self.exact.get(value)
        for i, rx, counter in self.patterns:
            if hit is not None and i > hit[0]:
                break
            if rx is None or rx.search(value) is not None:
                return i, counter
        return hit


class _NetTable:
    """``limit_by_per_ip`` keys: addresses and networks, first containing one wins."""

    __slots__ = ("nets",)

    def __init__(self, keys: Sequence[tuple[str, Counter]]) -> None:
        self.nets: tuple[tuple[IPNetwork, Counter], ...] = tuple(
            (ipaddress.ip_network(k, strict=False), c) for k, c in keys
        )

    def find(self, value: str) -> tuple[int, Counter] | None:
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            return None
        for i, (net, counter) in enumerate(self.nets):
            if ip.version == net.version and ip in net:
                return i, counter
        return None


class _Item:
    __slots__ = ("groups", "hides_value", "needs_body", "normalise_ip", "table", "values")

    def __init__(self, field: str, name: str, keys: Sequence[tuple[str, Counter]]) -> None:
        self.values = _source(field, name)
        self.groups = field.endswith("group")
        self.needs_body = field.endswith("model")
        self.normalise_ip = field == "limit_by_per_ip"
        self.hides_value = field.endswith(("header", "param", "cookie"))
        self.table: _KeyTable | _NetTable = _NetTable(keys) if self.normalise_ip else _KeyTable(keys)

    def match(self, ex: Exchange) -> Hit | None:
        if self.groups:
            best: tuple[int, Counter, str] | None = None
            for group in _groups(ex):
                found = self.table.find(group)
                if found is not None and (best is None or found[0] < best[0]):
                    best = (found[0], found[1], group)
            return (best[1].key_for(best[2]), best[1]) if best is not None else None
        assert self.values is not None
        value = self.values(ex)
        if value is None:
            return None
        found = self.table.find(value)
        if found is None:
            return None
        counter = found[1]
        if self.normalise_ip and counter.per_value:
            value = str(ipaddress.ip_address(value))  # one counter per address, however written
        elif self.hides_value and counter.per_value:
            value = _hidden(value)
        return counter.key_for(value), counter


class LimitRules:
    """A config's limits, compiled. ``namespace`` starts every counter name (the plugin
    and its rule), so separate plugins and rules never share a counter by accident."""

    __slots__ = ("global_counter", "items", "needs_body")

    def __init__(self, config: LimitRulesConfig[Any, Any], namespace: str) -> None:
        self.global_counter: Counter | None = None
        if config.global_threshold is not None:
            limit, window_s = config.global_threshold.window()
            self.global_counter = Counter(f"{namespace}global_threshold:{window_s}", limit, window_s, False)
        items: list[_Item] = []
        for index, (by, keys) in enumerate(config.items()):
            field, name = by[0]
            per = field.startswith("limit_by_per_")
            counters: list[tuple[str, Counter]] = []
            for k in keys:
                limit, window_s = k.window()
                base = f"{namespace}{index}:{field}:{name}:{window_s}:"
                counters.append((k.key, Counter(base if per else base + k.key, limit, window_s, per)))
            items.append(_Item(field, name, counters))
        self.items = tuple(items)
        # A rule on the model must wait for the body; the whole decision then waits so
        # the first-match order of the items holds.
        self.needs_body = any(i.needs_body for i in self.items)

    def match(self, ex: Exchange) -> Hit | None:
        """The counter this request counts against, or ``None`` when no limit applies."""
        if self.global_counter is not None:
            return self.global_counter.name, self.global_counter
        for item in self.items:
            hit = item.match(ex)
            if hit is not None:
                return hit
        return None


def namespace_for(plugin: str, rule_name: str | None, scope: Scope) -> str:
    """Counters of a named rule are shared by every scope using the name (Higress keys
    cluster limits by ``rule_name``); otherwise each scope counts on its own: a match rule
    under what it matches (``Scope.rule_key``), not its place, which a rule put before it
    in a reload changed (a consumer's count started again)."""
    if rule_name is not None:
        return f"{plugin}:{rule_name}:"
    if scope.rule is None:
        return f"{plugin}:default:"
    return f"{plugin}:{scope.rule_key or f'rule{scope.rule}'}:"


def reset_seconds(reset_ms: int) -> str:
    """Whole seconds, at least 1, until the window ends."""
    return str(max(1, -(-reset_ms // 1000)))


class Refusal:
    """How a limit refuses: the status, message and body, decided at config load.

    A ``rejected_msg`` that parses as a JSON object is sent as it stands; other text
    becomes the error message of the client's protocol.
    """

    __slots__ = ("body", "message", "reason", "reset_headers", "status")

    def __init__(self, rejected_code: int, rejected_msg: str, reason: str, reset_headers: Sequence[str]) -> None:
        self.status = rejected_code
        self.message = rejected_msg
        self.reason = reason
        self.reset_headers = tuple(reset_headers)
        self.body: bytes | None = None
        try:
            parsed = orjson.loads(rejected_msg)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            self.body = rejected_msg.encode()

    def error(self, reset_ms: int) -> RateLimited:
        seconds = reset_seconds(reset_ms)
        headers = [(name, seconds) for name in self.reset_headers]
        return RateLimited(self.message, reason=self.reason, status=self.status, headers=headers, body=self.body)


def add_quota_headers(ex: Exchange, limit: int, used: int) -> None:
    """``X-RateLimit-Limit`` and ``X-RateLimit-Remaining`` on whatever the client gets."""
    ex.response_headers.append(("x-ratelimit-limit", str(limit)))
    ex.response_headers.append(("x-ratelimit-remaining", str(max(0, limit - used))))


__all__ = ["Counter", "LimitRules", "Refusal", "add_quota_headers", "namespace_for", "reset_seconds"]
