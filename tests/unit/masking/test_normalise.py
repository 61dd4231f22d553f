"""The normal form request-block and ai-data-masking match on (masking/normalise.py), and
the way from a span of it back to the client's text. No sockets."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.masking.normalise import BACKWARD, IGNORABLE, PLAIN, Mapping, normalise


def reference(text: str) -> str:
    """The definition, the slow way: ignorable characters out, then NFKC."""
    return unicodedata.normalize("NFKC", IGNORABLE.sub("", text))


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("ｐａｓｓｗｏｒｄ", "password"),
        ("bob＠example．com", "bob@example.com"),
        ("pass\u200bword", "password"),
        ("pass\u200c\u200dword", "password"),
        ("pass\u2060word\ufeff", "password"),
        ("pass\u00adword", "password"),
        ("pass\u180eword\U000e0041", "password"),
        ("ﬁle ① ㍿", "file 1 株式会社"),
        ("cafe\u0301", "café"),
        ("e\u200b\u0301", "é"),
        ("ｶﾞｽ", "ガス"),
        ("，：！？（）\u3000", ",:!?() "),
        ("请帮我，谢谢！", "请帮我,谢谢!"),
    ],
)
def test_the_form_is_nfkc_without_ignorable_characters(text: str, form: str) -> None:
    assert normalise(text) == form == reference(text)


@pytest.mark.parametrize("text", ["plain ascii", "Ça va très bien", "请帮我总结", "Привет", "emoji 😀"])
def test_text_that_is_its_own_form_comes_back_itself(text: str) -> None:
    assert normalise(text) is text


ALPHABET = st.sampled_from(
    list("ab1@.- ")
    + list("ｂ１＠．－，\u3000")  # fullwidth
    + list("\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f\ufe0f\U000e0020")  # ignorable
    + list("\u0301\u0308\u0323\u3099")  # combining marks
    + list("\u1100\u1161\u11a8\u0bc6\u0bbe\uac00")  # Hangul jamo, a Tamil two-part vowel
    + list("ﬁ①½ｶﾞéÅ请😀")  # compatibility characters, composed letters, CJK, astral
)
texts = st.lists(ALPHABET, max_size=24).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=texts)
def test_the_fast_path_agrees_with_the_definition(text: str) -> None:
    assert normalise(text) == reference(text)


@settings(max_examples=400, deadline=None)
@given(text=texts, data=st.data())
def test_a_span_of_the_form_maps_to_text_that_normalises_to_cover_it(text: str, data: st.DataObject) -> None:
    form = normalise(text)
    if not form:
        return
    start = data.draw(st.integers(0, len(form) - 1))
    end = data.draw(st.integers(start + 1, len(form)))
    lo, hi = Mapping(text, form).span(start, end)
    assert 0 <= lo < hi <= len(text)
    assert form[start:end] in normalise(text[lo:hi])


def test_a_mapped_span_keeps_inner_ignorables_and_drops_outer_ones() -> None:
    text = "mail \u200bｂｏｂ\u200b＠ｅｘａｍｐｌｅ．ｃｏｍ\u00ad, thanks"
    form = normalise(text)
    start = form.index("bob")
    lo, hi = Mapping(text, form).span(start, start + len("bob@example.com"))
    assert text[lo:hi] == "ｂｏｂ\u200b＠ｅｘａｍｐｌｅ．ｃｏｍ"


def test_a_letter_and_its_combining_mark_map_as_one() -> None:
    text = "cafe\u0301 bob"
    form = normalise(text)
    assert Mapping(text, form).span(form.index("é"), form.index("é") + 1) == (3, 5)
    assert Mapping(text, form).span(form.index("bob"), len(form)) == (6, 9)


def test_the_tables_match_this_pythons_unicode_data() -> None:
    """BACKWARD holds every character of combining class 0 that composes with the one
    before it; every ignorable the brief names is one; every character ``Mapping`` takes
    as plain comes out of NFKC as it went in and never joins what precedes it."""
    seconds = set()
    for code in range(0x110000):
        ch = chr(code)
        mapping = unicodedata.decomposition(ch)
        if not mapping or mapping.startswith("<"):
            continue
        parts = [chr(int(p, 16)) for p in mapping.split()]
        if len(parts) == 2 and unicodedata.normalize("NFC", "".join(parts)) == ch:
            seconds.add(parts[1])
    assert {c for c in seconds if unicodedata.combining(c) == 0} <= BACKWARD
    for ch in "\u200b\u200c\u200d\u2060\ufeff\u00ad":
        assert IGNORABLE.fullmatch(ch), hex(ord(ch))
    plain = re.compile(f"[{PLAIN}]")
    for code in range(0x10000):
        ch = chr(code)
        if plain.fullmatch(ch) is None:
            continue
        first = unicodedata.normalize("NFKD", ch)[:1]
        assert unicodedata.normalize("NFKC", ch) == ch and IGNORABLE.match(ch) is None, hex(code)
        assert unicodedata.combining(ch) == 0 and ch not in BACKWARD, hex(code)
        assert unicodedata.combining(first) == 0 and first not in BACKWARD, hex(code)
