"""Host patterns, as Higress matches domains: ``*`` any, ``*.example.com`` a suffix,
``foo.*`` a prefix, anything else exact; the port is ignored, case too."""

from __future__ import annotations


def strip_port(host: str) -> str:
    host = host.lower()
    if host.startswith("["):  # [::1]:8080
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    head, sep, tail = host.rpartition(":")
    return head if sep and tail.isdigit() else host


def host_matches(pattern: str, host: str) -> bool:
    pattern = pattern.lower()
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
