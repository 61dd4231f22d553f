"""Host patterns (routing/hosts.py, SPEC §2): ``*``, ``*.example.com``, ``api.*`` and exact
hosts, without the port and case."""

from __future__ import annotations

import pytest

from tollway.routing.hosts import host_matches, strip_port


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
    ],
)
def test_the_port_and_case_are_ignored(raw: str, host: str) -> None:
    assert strip_port(raw) == host
