"""Usage as providers report it (protocols/usage.py): counts a provider cannot mean are
not believed, so no record refunds a quota or becomes unstorable."""

from __future__ import annotations

from tollway.protocols.anthropic.response import usage_from_pivot, usage_to_pivot
from tollway.protocols.usage import MAX_TOKENS, Usage, apply_usage


def test_openai_and_anthropic_shapes_fill_the_counts() -> None:
    usage = Usage()
    assert apply_usage(usage, {"prompt_tokens": 12, "completion_tokens": 5})
    assert (usage.input_tokens, usage.output_tokens, usage.reported) == (12, 5, True)
    usage = Usage()
    assert apply_usage(usage, {"input_tokens": 7, "cache_read_input_tokens": 3, "output_tokens": 2})
    assert (usage.input_tokens, usage.cached_tokens, usage.output_tokens) == (10, 3, 2)


def test_negative_huge_and_non_integer_counts_are_not_believed() -> None:
    """A usage object with any count no call can have is not believed at all (the call
    is estimated instead), rather than read in part or capped into a fortune."""
    for absurd in (
        {"prompt_tokens": -5, "completion_tokens": 2},
        {"prompt_tokens": 5, "completion_tokens": 2**63},
        {"prompt_tokens": 5, "completion_tokens": MAX_TOKENS + 1},
        {"prompt_tokens": 1.5e300, "completion_tokens": 2},
        {"prompt_tokens": True, "completion_tokens": 2},
        {"prompt_tokens": 5, "completion_tokens": "9"},
        {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": -1}},
        {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 2.5},
        {"input_tokens": 5, "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": [1]}},
    ):
        usage = Usage()
        assert not apply_usage(usage, absurd), absurd
        assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens, usage.reported) == (0, 0, 0, False)
    usage = Usage()
    assert apply_usage(usage, {"prompt_tokens": MAX_TOKENS, "completion_tokens": 0, "prompt_tokens_details": None})
    assert (usage.input_tokens, usage.output_tokens, usage.reported) == (MAX_TOKENS, 0, True)


def test_cache_writes_are_read_under_openais_name_and_the_one_tollway_used_before() -> None:
    """OpenAI's chat and Responses usage name prompt-cache writes ``cache_write_tokens``;
    answers ai-cache stored before Tollway used that name carry ``cache_creation_tokens``.
    Either way the writes are priced as writes, not as plain input."""
    for details_key, shape in (
        ("prompt_tokens_details", {"prompt_tokens": 900, "completion_tokens": 4}),
        ("input_tokens_details", {"input_tokens": 900, "output_tokens": 4}),
    ):
        for name in ("cache_write_tokens", "cache_creation_tokens"):
            usage = Usage()
            assert apply_usage(usage, {**shape, details_key: {"cached_tokens": 100, name: 700}})
            assert (usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens) == (900, 100, 700), name


def test_more_cached_tokens_than_the_prompt_had_are_kept_as_billed() -> None:
    """A provider's slip (cached > prompt) is recorded as the price table bills it, so a
    record's counts add up to its cost_usd and the metrics never count more cached
    tokens than input ones."""
    usage = Usage()
    assert apply_usage(
        usage, {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 50}}
    )
    assert (usage.input_tokens, usage.cached_tokens, usage.output_tokens) == (10, 10, 5)
    usage = Usage()
    details = {"cached_tokens": 6, "cache_write_tokens": 9}
    assert apply_usage(usage, {"input_tokens": 10, "output_tokens": 1, "input_tokens_details": details})
    assert (usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens) == (10, 6, 4)


def test_anthropics_one_hour_cache_writes_are_kept_within_the_writes() -> None:
    """Anthropic splits its cache writes by the cache's lifetime (``cache_creation``); the
    one-hour part, billed at its own price, is kept apart and never exceeds the writes.
    A stream's later report without the split (``message_delta``) leaves it standing."""
    usage = Usage()
    split = {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200}
    start = {"input_tokens": 5, "cache_creation_input_tokens": 300, "cache_creation": split, "output_tokens": 1}
    assert apply_usage(usage, start)
    assert (usage.input_tokens, usage.cache_write_tokens, usage.cache_write_1h_tokens) == (305, 300, 200)
    assert apply_usage(usage, {"input_tokens": 5, "cache_creation_input_tokens": 300, "output_tokens": 9})
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens, usage.output_tokens) == (300, 200, 9)
    usage = Usage()
    slip = {"ephemeral_1h_input_tokens": 500}
    assert apply_usage(usage, {"input_tokens": 5, "cache_creation_input_tokens": 300, "cache_creation": slip})
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (300, 300)
    usage = Usage()
    absurd = {"ephemeral_1h_input_tokens": -1}
    assert not apply_usage(usage, {"input_tokens": 5, "cache_creation_input_tokens": 300, "cache_creation": absurd})


def test_one_hour_cache_writes_survive_a_claude_answer_translated_to_openais_shape() -> None:
    """A chat client's call answered by Claude: its usage reaches the record through the
    OpenAI-shaped pivot, which keeps the one-hour part beside the writes (priced at 2x
    input, not the five-minute 1.25x); an Anthropic client's answer made from the pivot
    gets Anthropic's split back."""
    split = {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200}
    native = {"input_tokens": 5, "cache_creation_input_tokens": 300, "cache_creation": split, "output_tokens": 7}
    translated = usage_to_pivot(native)
    usage = Usage()
    assert apply_usage(usage, translated)
    assert (usage.input_tokens, usage.cache_write_tokens, usage.cache_write_1h_tokens) == (305, 300, 200)
    assert usage_from_pivot(translated)["cache_creation"] == split
    # Five-minute writes alone: no one-hour part, and no split made up for the client.
    alone = usage_to_pivot({"input_tokens": 5, "cache_creation_input_tokens": 300, "output_tokens": 7})
    usage = Usage()
    assert apply_usage(usage, alone) and (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (300, 0)
    assert "cache_creation" not in usage_from_pivot(alone)
