"""Host patterns (routing/hosts.py, SPEC §2, §14): ``*``, ``*.example.com``, ``api.*`` and
exact hosts, matched against the canonical host: no port, no case, no trailing dot."""

from __future__ import annotations

import pytest

from tollway.routing.hosts import canonical_host, host_matches, strip_port


@pytest.mark.parametrize(
    ("pattern", "host", "hit"),
    [
        ("*", "anything.at.all", True),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "badexample.com", False),
        ("api.example.com", "api.example.com", True),
        ("api.example.com", "api.example.org", False),
        ("API.Example.com", "api.example.com", True),
        ("api.*", "api.example.org", True),
        ("api.*", "web.example.org", False),
        ("api.example.com.", "api.example.com", True),
        ("*.Example.com.", "a.example.com", True),
    ],
)
def test_host_patterns(pattern: str, host: str, hit: bool) -> None:
    assert host_matches(pattern, host) is hit


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("Api.Example.com:8080", "api.example.com"),
        ("example.com", "example.com"),
        ("[::1]:8080", "[::1]"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("API.Example.com.:8080", "api.example.com"),
    ],
)
def test_the_port_and_case_are_ignored(raw: str, host: str) -> None:
    assert strip_port(raw) == host


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("API.Example.com.:8080", "api.example.com"),
        ("api.example.com.", "api.example.com"),
        ("api.example.com:", "api.example.com"),
        ("[::1]:8080", "[::1]"),
        ("[2001:DB8::1]", "[2001:db8::1]"),
        ("10.0.0.1:443", "10.0.0.1"),
        ("api.example.com:65535", "api.example.com"),
        ("api.example.com:00080", "api.example.com"),
        ("my_host", "my_host"),
        ("", ""),
    ],
)
def test_the_canonical_host(raw: str, host: str) -> None:
    assert canonical_host(raw) == host


@pytest.mark.parametrize(
    "raw",
    ["api.example.com..", ".api.example.com", "api..example.com", "api%2eexample.com", "a b", "a/b", "u@a",
     "a:b", "a:1:2", "[::1", "[zz::1]", ":80", "a:123456", "a:99999", "a:65536", "é.example"],
)  # fmt: skip
def test_a_value_that_is_no_host(raw: str) -> None:
    assert canonical_host(raw) is None
