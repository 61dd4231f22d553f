"""``provider_json.loads``: a provider's JSON read as JSON allows it, a lone half of a
surrogate pair shown as U+FFFD; what is not JSON still refused."""

from __future__ import annotations

import orjson
import pytest

from tollway.protocols import provider_json


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (rb'"half \ud83d"', "half \ufffd"),  # a high half, nothing after it
        (rb'"\ud83d and on"', "\ufffd and on"),
        (rb'"\udc00 low first"', "\ufffd low first"),  # a low half with no high one before
        (rb'"\ud83d\ud83d\ude00"', "\ufffd\U0001f600"),  # a lone high, then a pair
        (rb'"\ud83d\ude00"', "\U0001f600"),  # a pair: as it is
        (rb'"\\ud83d"', "\\ud83d"),  # an escaped backslash: text, no escape
        (rb'"\\\ud83d"', "\\\ufffd"),  # a backslash, then a lone half
    ],
)
def test_a_lone_half_is_the_replacement_character(raw: bytes, text: str) -> None:
    assert provider_json.loads(raw) == text


@pytest.mark.parametrize("raw", [b'{"a": 1', b"[DONE]", rb'{"a": "\ud83d"', b""])
def test_what_is_not_json_is_still_refused(raw: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        provider_json.loads(raw)


@pytest.mark.parametrize("wrong", [453, "abc", {"a": 1}, True, None, 1.5])
def test_a_list_a_provider_sends_as_something_else_counts_nothing_and_raises_nothing(wrong: object) -> None:
    """``"choices": 453`` in a stream chunk raised TypeError out of the translation (the
    fuzzer found it); every list read off a provider's answer is read as a list or not
    at all (``protocols.lists.members``)."""
    from tollway.protocols.openai.wire import content_chars
    from tollway.proxy.tokens import answer_chars

    for shape in ({"choices": wrong}, {"candidates": wrong}, {"output": wrong},
                  {"choices": [{"delta": {"tool_calls": wrong}}]}, {"candidates": [{"content": {"parts": wrong}}]},
                  {"choices": [{"message": {"tool_calls": wrong}}]}, {"output": [{"content": wrong}]}):  # fmt: skip
        assert content_chars(shape) == 0
        assert answer_chars(shape) == 0
