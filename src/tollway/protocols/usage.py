"""Token usage: the counts of one call, read from provider answers or estimated when
there are none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Usage:
    """Token counts for one call, as the provider reported them (or estimated)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    # Prompt tokens written to the provider's prompt cache (Anthropic's
    # ``cache_creation_input_tokens``): part of ``input_tokens``, billed at their own price.
    cache_write_tokens: int = 0
    # The part of ``cache_write_tokens`` written to a one-hour cache (Anthropic's
    # ``cache_creation.ephemeral_1h_input_tokens``), billed at twice the input price
    # where five-minute writes are billed at 1.25 times.
    cache_write_1h_tokens: int = 0
    estimated: bool = False
    reported: bool = False
    # The counts are a stream's opening report (Anthropic's ``message_start``: 1 output
    # token so far), not yet its final one.
    provisional: bool = False
    # A report of the call was not believed (``apply_usage``): until one with the input
    # count comes, later partial reports (a stream's output count) are not taken either,
    # so the call is estimated rather than recorded with no input.
    disbelieved: bool = False


# Where an OpenAI-shaped usage object (chat's ``prompt_tokens_details``, the Responses
# API's ``input_tokens_details``) carries prompt-cache writes: OpenAI's own name, under
# which a translated Anthropic answer carries its ``cache_creation_input_tokens`` too
# (without it they would be priced as plain input). ``LEGACY_CACHE_WRITES`` is the name
# Tollway used before OpenAI had one: answers stored by ai-cache may still carry it.
CACHE_WRITES = "cache_write_tokens"
# The part of them written to Anthropic's one-hour cache (priced at twice the input
# price), beside them in the same details object when a Claude answer is translated.
CACHE_WRITES_1H = "cache_write_1h_tokens"
LEGACY_CACHE_WRITES = "cache_creation_tokens"
# More tokens than any call has: a provider reporting beyond it (or below 0, or a count
# that is not a whole number) is not believed at all (the call is estimated instead); a
# count that large or negative would refund a quota, bill a fortune or be unstorable.
MAX_TOKENS = 10**12


class _Unbelievable(Exception):
    pass


def _count(v: Any) -> int:
    """A count as reported: absent or null is 0; anything a call cannot have raises."""
    if v is None:
        return 0
    if type(v) is not int or not 0 <= v <= MAX_TOKENS:
        raise _Unbelievable
    return v


def believable(*counts: Any) -> bool:
    """Whether each count is one a call can have, or absent (None): for a translator,
    which must not turn a report ``apply_usage`` would refuse into one it takes (an
    input of -5 beside 3,000 cache tokens summed into a prompt of 2,995)."""
    return all(v is None or (type(v) is int and 0 <= v <= MAX_TOKENS) for v in counts)


def _reported(obj: dict[str, Any], name: str) -> int | None:
    """A count an Anthropic usage object reports, None when it has none: absent, or null
    (a ``message_delta``'s counts it does not repeat; the SDKs type them optional)."""
    v = obj.get(name)
    return None if v is None else _count(v)


def _detail(details: Any, name: str) -> int:
    return _count(details.get(name)) if isinstance(details, dict) else 0


def _one_hour_writes(obj: dict[str, Any]) -> int | None:
    """The one-hour cache writes an Anthropic usage object reports in its
    ``cache_creation`` breakdown; None when it has none (``cache_creation_input_tokens``
    alone: five-minute writes, or an earlier report's breakdown still stands)."""
    breakdown = obj.get("cache_creation")
    return _count(breakdown.get("ephemeral_1h_input_tokens")) if isinstance(breakdown, dict) else None


def _writes(details: dict[str, Any]) -> int:
    """The cache writes an OpenAI-shaped details object reports, under either name."""
    v = details.get(CACHE_WRITES)
    return _count(v if v is not None else details.get(LEGACY_CACHE_WRITES))


def apply_usage(usage: Usage, obj: Any) -> bool:
    """Fill ``usage`` from an OpenAI chat, OpenAI Responses or Anthropic ``usage``
    object; True if it had one. An object with a count no call can have is not
    believed at all (False, ``usage`` untouched: the call's tokens are estimated unless
    another report comes), rather than read in part or capped into a fortune.

    Anthropic streams report input tokens in ``message_start`` and output tokens in
    ``message_delta``, so a later report only overwrites the counts it carries (a null
    count is none). A report not believed leaves the call unreported until one with its
    input comes (``Usage.disbelieved``).
    Anthropic's cache writes are split by the cache's lifetime in ``cache_creation``;
    the one-hour part is kept apart (``cache_write_1h_tokens``), within the total.
    """
    if not isinstance(obj, dict):
        return False
    one_hour: int | None = None
    # input, output, cached, cache-write and reasoning tokens (None: not reported here)
    counts: tuple[int | None, int | None, int | None, int | None, int | None]
    try:
        if "prompt_tokens" in obj or "completion_tokens" in obj:
            details, out_details = obj.get("prompt_tokens_details"), obj.get("completion_tokens_details")
            counts = (
                _count(obj.get("prompt_tokens")),
                _count(obj.get("completion_tokens")),
                _detail(details, "cached_tokens") if isinstance(details, dict) else None,
                _writes(details) if isinstance(details, dict) else None,
                _detail(out_details, "reasoning_tokens") if isinstance(out_details, dict) else None,
            )
            if isinstance(details, dict) and CACHE_WRITES_1H in details:  # a translated Claude answer's
                one_hour = _detail(details, CACHE_WRITES_1H)
        elif "input_tokens_details" in obj or "output_tokens_details" in obj:
            # The Responses API: OpenAI's counts under Anthropic-like names (input
            # includes the cached tokens, output the reasoning ones).
            in_details = obj.get("input_tokens_details")
            counts = (
                _count(obj.get("input_tokens")),
                _count(obj.get("output_tokens")),
                _detail(in_details, "cached_tokens"),
                _writes(in_details) if isinstance(in_details, dict) else 0,
                _detail(obj.get("output_tokens_details"), "reasoning_tokens"),
            )
            if isinstance(in_details, dict) and CACHE_WRITES_1H in in_details:  # a translated Claude answer's
                one_hour = _detail(in_details, CACHE_WRITES_1H)
        elif "input_tokens" in obj or "output_tokens" in obj:
            fresh = _reported(obj, "input_tokens")
            read, written = _reported(obj, "cache_read_input_tokens"), _reported(obj, "cache_creation_input_tokens")
            if fresh is not None:
                # The cache counts it leaves out (null) stand as an earlier report gave them.
                read = usage.cached_tokens if read is None else read
                written = usage.cache_write_tokens if written is None else written
                one_hour = _one_hour_writes(obj)
            counts = (
                fresh + read + written if fresh is not None and read is not None and written is not None else None,
                _reported(obj, "output_tokens"),
                read if fresh is not None else None,
                written if fresh is not None else None,
                None,
            )
            if counts[0] is None and counts[1] is None:
                return False  # (every count null: no report)
        else:
            return False
    except _Unbelievable:
        usage.disbelieved = True
        return False
    i, o, c, w, r = counts
    if usage.disbelieved:
        if i is None:
            return False  # (the input stays unknown: the call is estimated)
        usage.disbelieved = False
    if i is not None and c is not None and c + (w or 0) > i:
        # Cached (and cache-written) tokens are part of the prompt's: more of them than
        # the prompt had is a provider's slip. Kept as billed (``PriceTable.cost`` caps
        # them at the prompt), so the record's counts add up to its cost.
        c = min(c, i)
        w = min(w or 0, i - c)
    if i is not None:
        usage.input_tokens = i
    if o is not None:
        usage.output_tokens = o
    if c is not None:
        usage.cached_tokens = c
    if w is not None:
        usage.cache_write_tokens = w
    if one_hour is not None:
        usage.cache_write_1h_tokens = one_hour
    # Never more one-hour writes than writes (a provider's slip, or a later report of
    # fewer writes than the breakdown an earlier one gave).
    usage.cache_write_1h_tokens = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
    if r is not None:
        usage.reasoning_tokens = r
    usage.reported = True
    usage.estimated = False
    return True


def estimate_tokens(n_chars: int) -> int:
    """About four characters a token for English text: good enough to bound and bill
    a call the provider never reported (a dropped stream, an abandoned request)."""
    return (n_chars + 3) // 4
