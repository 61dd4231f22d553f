"""The mock model's token counter and pure replies (mockllm/replies.py): deterministic, and
truthful about usage."""

from __future__ import annotations

from tollway.mockllm import count_tokens, replies


def test_count_tokens_counts_whitespace_separated_words() -> None:
    assert count_tokens("") == 0
    assert count_tokens("  ") == 0
    assert count_tokens("Hello, world!") == 2
    assert count_tokens(" one\ttwo\nthree  ") == 3


def test_truncate_and_split_keep_the_text() -> None:
    text = "alpha beta  gamma delta"
    assert replies.truncate_tokens(text, 2) == "alpha beta"
    assert replies.truncate_tokens(text, 0) == ""
    assert replies.truncate_tokens(text, 9) == text
    pieces = replies.split_chunks(text, 4)
    assert len(pieces) == 4 and "".join(pieces) == text and all(pieces)
    assert replies.split_chunks("ab", 5) == ["a", "b"]
    assert replies.split_chunks("", 3) == []


def test_default_reply_uses_first_40_chars_of_collapsed_prompt() -> None:
    prompt = "Tell me\n\n a story   about a dragon who loves tea and biscuits"
    assert replies.default_reply(prompt) == "This is a mock reply to: Tell me a story about a dragon who loves"
    assert replies.default_reply("") == "This is a mock reply."


def test_embedding_vector_is_deterministic_unit_float32() -> None:
    first = replies.embedding_vector("hello")
    assert first == replies.embedding_vector("hello")
    assert first != replies.embedding_vector("hello!")
    assert len(first) == 8
    assert abs(sum(v * v for v in first) - 1.0) < 1e-5
