"""Host patterns, as Higress matches domains: ``*`` any, ``*.example.com`` a suffix,
``foo.*`` a prefix, anything else exact; matched against the canonical host (lower-case,
no port, no trailing dot), and patterns are read the same way."""

from __future__ import annotations

import re

# A Host value: a bracketed IPv6 address, or dot-separated labels (an IPv4 address is
# one too) with at most one trailing dot; then an optional port. Nothing else: a
# percent-encoded or empty label would not match a domain rule that means that host;
# a port is a number up to 65535 (RFC 9110 §4.2.1: an empty one means the default).
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9_\-]+(?:\.[a-z0-9_\-]+)*\.?)(?::([0-9]{0,5}))?")
_MAX_PORT = 65535


def canonical_host(value: str) -> str | None:
    """The host domain rules match: ``API.Example.com.:8080`` → ``api.example.com``;
    ``""`` for an empty value; ``None`` when ``value`` is no host name or address."""
    if not value:
        return ""
    m = _HOST.fullmatch(value.lower())
    if m is None or (m[2] and int(m[2]) > _MAX_PORT):
        return None
    name = m[1]
    return name[:-1] if name[-1] == "." else name


def strip_port(host: str) -> str:
    """A cheap, lenient ``canonical_host`` for callers that do not check the value (the
    gateway makes the host canonical, or refuses it, before anything matches on it)."""
    host = host.lower()
    if host.startswith("["):  # [::1]:8080
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    head, sep, tail = host.rpartition(":")
    if sep and (tail.isdigit() or not tail):
        host = head
    return host[:-1] if host.endswith(".") else host


def host_matches(pattern: str, host: str) -> bool:
    pattern = pattern.lower().removesuffix(".")
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    if pattern.endswith(".*"):
        return host.startswith(pattern[:-1])
    return host == pattern


def specificity(pattern: str) -> int:
    """Exact names beat wildcards, and wildcards beat ``*``."""
    if pattern == "*":
        return 0
    if pattern.startswith("*.") or pattern.endswith(".*"):
        return 1
    return 2
