"""request-block's word lists (``plugins.words``): any word, in any case, anywhere."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway.plugins.words import Words

FEW = ["BEGIN RSA PRIVATE KEY", "sk-live-", "project-nightjar"]
MANY = [f"codename-{i}" for i in range(40)] + FEW  # past the loop: one alternation


@pytest.mark.parametrize("words", [FEW, MANY])
def test_a_word_in_any_case_anywhere_is_found(words: list[str]) -> None:
    found = Words(words, case_sensitive=False).found
    assert found("the key: -----begin rsa private key-----")
    assert found("PROJECT-NIGHTJAR launches")
    assert found("token SK-LIVE-123")
    assert not found("project nightjar, sk live, an rsa key")


@pytest.mark.parametrize("words", [FEW, MANY])
def test_a_case_sensitive_list_holds_to_case(words: list[str]) -> None:
    found = Words(words, case_sensitive=True).found
    assert found("x sk-live-1")
    assert not found("x SK-LIVE-1")


def test_case_folding_goes_past_lower_case() -> None:
    # "ß" folds to "ss" and the Kelvin sign to "k": neither is a way around the list.
    found = Words(["strasse", "kelvin"], case_sensitive=False).found
    assert found("Hauptstraße 5")
    assert found("\u212aELVIN")


def test_no_word_is_no_list() -> None:
    assert not Words(["", ""], case_sensitive=False)


_text = st.text(alphabet=st.sampled_from("aAbBkK\u212aßsS- "), max_size=40)


@given(words=st.lists(st.text(alphabet="abks- ", min_size=1, max_size=4), min_size=1, max_size=30), text=_text)
def test_found_is_any_folded_word_in_the_folded_text(words: list[str], text: str) -> None:
    expected = any(w.casefold() in text.casefold() for w in words)
    assert Words(words, case_sensitive=False).found(text) is expected
