"""Usage as providers report it (protocols/usage.py): counts a provider cannot mean are
not believed, so no record refunds a quota or becomes unstorable."""

from __future__ import annotations

from tollway.protocols.anthropic.response import usage_from_pivot, usage_to_pivot
from tollway.protocols.gemini.response import usage_to_pivot as gemini_usage_to_pivot
from tollway.protocols.responses.response import usage as responses_usage
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


def test_a_null_count_in_a_later_report_is_no_count() -> None:
    """Anthropic's ``message_delta`` may carry its input and cache counts as null (the
    SDKs type them optional): read as 0, they wiped ``message_start``'s input, cache
    reads and writes, and the call was billed its output alone."""
    usage = Usage()
    start = {
        "input_tokens": 10,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 1000,
        "output_tokens": 1,
    }
    assert apply_usage(usage, start)
    delta = {
        "input_tokens": None,
        "cache_creation_input_tokens": None,
        "cache_read_input_tokens": None,
        "output_tokens": 50,
    }
    assert apply_usage(usage, delta)
    assert (usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.output_tokens) == (
        3010,
        2000,
        1000,
        50,
    )
    # A later input count without its cache counts keeps the cache counts it had.
    assert apply_usage(usage, {"input_tokens": 12, "cache_read_input_tokens": None, "output_tokens": 60})
    assert (usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens) == (3012, 2000, 1000)
    # Every count null is no report at all.
    fresh = Usage()
    assert not apply_usage(fresh, {"input_tokens": None, "output_tokens": None}) and not fresh.reported


def test_a_stream_whose_input_count_was_not_believed_is_estimated() -> None:
    """A ``message_start`` with an input no call has, then a ``message_delta`` with the
    output alone: the record had input 0, not flagged as estimated. The output count
    alone is not taken either, so the call is estimated; a later report with an input
    count is believed again."""
    usage = Usage()
    assert not apply_usage(usage, {"input_tokens": -5, "output_tokens": 1})
    assert not apply_usage(usage, {"output_tokens": 50})
    assert not usage.reported and (usage.input_tokens, usage.output_tokens) == (0, 0)
    assert apply_usage(usage, {"input_tokens": 40, "output_tokens": 50})
    assert usage.reported and (usage.input_tokens, usage.output_tokens) == (40, 50)


def test_a_translated_answer_does_not_make_unbelievable_counts_believable() -> None:
    """An input of -5 beside 3,000 cache tokens was summed into a prompt of 2,995 by the
    Claude-to-OpenAI translation, then believed: the translation now gives no usage
    (the call is estimated, as an untranslated one is), and Gemini's alike."""
    for absurd in (
        {"input_tokens": -5, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 1000, "output_tokens": 5},
        {"input_tokens": 5, "cache_read_input_tokens": 10**13, "output_tokens": 5},
        {"input_tokens": 5, "output_tokens": 1.5},
        {"input_tokens": 5, "cache_creation_input_tokens": 9, "cache_creation": {"ephemeral_1h_input_tokens": -1}},
    ):
        assert usage_to_pivot(absurd) is None, absurd
    assert gemini_usage_to_pivot({"promptTokenCount": 10, "toolUsePromptTokenCount": -8}) is None
    assert gemini_usage_to_pivot({"promptTokenCount": 10, "candidatesTokenCount": 4}) is not None


def test_one_hour_cache_writes_survive_a_claude_answer_translated_to_the_responses_api() -> None:
    """A Responses client's call answered by Claude: its usage named the writes
    (``cache_write_tokens``) but not their one-hour part, so a gateway in front (or any
    client pricing it) billed them at the five-minute price."""
    split = {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 400}
    native = {"input_tokens": 10, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 1000,
              "cache_creation": split, "output_tokens": 7}  # fmt: skip
    answer = responses_usage(usage_to_pivot(native))
    assert answer is not None
    assert answer["input_tokens_details"] == {
        "cached_tokens": 2000,
        "cache_write_tokens": 1000,
        "cache_write_1h_tokens": 400,
    }
    usage = Usage()
    assert apply_usage(usage, answer)
    assert (usage.input_tokens, usage.cache_write_tokens, usage.cache_write_1h_tokens) == (3010, 1000, 400)
    plain = responses_usage(usage_to_pivot({"input_tokens": 10, "output_tokens": 7}))
    assert plain is not None and "cache_write_1h_tokens" not in plain["input_tokens_details"]


def test_a_translated_client_is_shown_no_count_a_call_cannot_have() -> None:
    """A judge's finding: an OpenAI provider's ``completion_tokens: -3`` reached an
    Anthropic client as ``output_tokens: -3``, and 200 cached tokens of a 120-token
    prompt as 0 input plus 200 cache reads; the record, rightly, took neither."""
    bad = {"prompt_tokens": 120, "completion_tokens": -3, "prompt_tokens_details": {"cached_tokens": 200}}
    assert usage_from_pivot(bad) == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 120,
    }
    written = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 90},
    }
    shown = usage_from_pivot(written)
    assert shown["input_tokens"] + shown["cache_read_input_tokens"] + shown["cache_creation_input_tokens"] == 100
    responses = responses_usage(bad)
    assert responses is not None
    assert responses["output_tokens"] == 0 and responses["input_tokens_details"]["cached_tokens"] == 120
