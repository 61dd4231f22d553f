"""What listings show of a consumer's key (``consumers.keys.hint_of``)."""

from __future__ import annotations

from tollway.consumers.keys import hint_of


def test_a_listing_shows_the_last_four_of_a_long_key_and_nothing_of_a_short_one() -> None:
    assert hint_of("tw-0123456789abcdefWXYZ") == "WXYZ"
    assert hint_of("xxxxxx") == "" and hint_of("yyy") == "" and hint_of("a" * 15) == ""
