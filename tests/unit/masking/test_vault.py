"""The vault of ai-data-masking (masking/vault.py): stable placeholders, restoring them, and
restoring placeholders split across stream events. No sockets."""

from __future__ import annotations

import pytest

from tollway.masking.vault import StreamRestorer, Vault


def test_placeholders_are_stable_and_never_one_the_client_wrote() -> None:
    vault = Vault(b'{"content": "literal [EMAIL_1] here"}')
    assert vault.placeholder("EMAIL", "a@b.cd") == "[EMAIL_2]"
    assert vault.placeholder("EMAIL", "a@b.cd") == "[EMAIL_2]"
    assert vault.placeholder("EMAIL", "x@y.io") == "[EMAIL_3]"
    assert vault.placeholder("CARD", "4111111111111111") == "[CARD_1]"
    assert vault.restore("[EMAIL_1] [EMAIL_2] [CARD_1] [EMAIL_9]") == "[EMAIL_1] a@b.cd 4111111111111111 [EMAIL_9]"


def test_a_value_standing_for_two_originals_is_not_restored() -> None:
    vault = Vault(b"")
    vault.remember("****@gmail.com", "a@gmail.com")
    vault.remember("****@gmail.com", "b@gmail.com")
    vault.remember("9cb4", "sk-1")
    assert vault.restore("****@gmail.com 9cb4") == "****@gmail.com sk-1"


def restorer() -> StreamRestorer:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    vault.placeholder("CARD", "4111 1111 1111 1111")
    return StreamRestorer(vault)


@pytest.mark.parametrize(
    "pieces",
    [
        ["Hi [EMAIL_1] and [CARD_1]."],
        ["Hi [EMA", "IL_1] and [CARD_1]."],  # split across two events
        ["Hi [", "EMAIL", "_1] and [CARD_", "1]."],  # across three
        ["Hi [EMAIL_1", "] and [CARD_1]", "."],
        ["Hi ", "[", "E", "M", "A", "I", "L", "_", "1", "]", " and [CARD_1]."],
    ],
)
def test_split_placeholders_are_restored(pieces: list[str]) -> None:
    r = restorer()
    out = "".join(r.feed("slot", p) for p in pieces) + r.flush("slot")
    assert out == "Hi bob@example.com and 4111 1111 1111 1111."


def test_a_held_tail_that_is_no_placeholder_goes_out_unchanged() -> None:
    r = restorer()
    assert r.feed("s", "array[EM") == "array"
    assert r.feed("s", "PTY] [i]") == "[EMPTY] [i]"
    assert r.feed("s", "end [CAR") == "end "
    assert r.flush("s") == "[CAR"
