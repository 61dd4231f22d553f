"""The header list (headers.py): the lookups the gateway's checks rely on."""

from __future__ import annotations

from tollway.headers import Headers


def test_repeated_tells_a_name_given_twice_in_any_case() -> None:
    once = Headers([("Host", "a"), ("Accept", "x"), ("accept", "y")])
    assert not once.repeated("host")  # another name repeats, not this one
    assert once.repeated("accept")
    assert Headers([("host", "a"), ("HOST", "b")]).repeated("host")
    assert not Headers().repeated("host")


def test_has_any_answers_for_the_lower_case_names() -> None:
    headers = Headers([("X-Mse-Consumer", "bob"), ("Content-Type", "application/json")])
    assert headers.has_any(frozenset({"x_mse_consumer", "x-mse-consumer"}))
    assert not headers.has_any(frozenset({"x_mse_consumer"}))
    assert not Headers().has_any(frozenset({"host"}))
