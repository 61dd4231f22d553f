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
    estimated: bool = False
    reported: bool = False


# Where an OpenAI-shaped usage object (the pivot's, and the Responses API's
# ``input_tokens_details``) carries an Anthropic provider's cache writes: OpenAI has no
# such count, and without it a translated call would price them as plain input.
CACHE_WRITES = "cache_creation_tokens"
# More tokens than any call has: a provider reporting beyond it (or below 0, or a count
# that is not a whole number) is not believed at all (the call is estimated instead); a
# count that large or negative would refund a quota, bill a fortune or be unstorable.
MAX_TOKENS = 10**12
# Every count a usage object may carry, top level or in its details.
_COUNTS = (
    "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens",
    "cache_read_input_tokens", "cache_creation_input_tokens",
)  # fmt: skip
_DETAIL_COUNTS = ("cached_tokens", "reasoning_tokens", "cache_creation_tokens")
_DETAILS = ("prompt_tokens_details", "completion_tokens_details", "input_tokens_details", "output_tokens_details")


def _believable(v: Any) -> bool:
    return v is None or (type(v) is int and 0 <= v <= MAX_TOKENS)


def believable(obj: dict[str, Any]) -> bool:
    """Whether every count in a usage object is one a call can have."""
    for name in _COUNTS:
        if not _believable(obj.get(name)):
            return False
    for name in _DETAILS:
        details = obj.get(name)
        if isinstance(details, dict) and not all(_believable(details.get(c)) for c in _DETAIL_COUNTS):
            return False
    return True


def _int(v: Any) -> int:
    return v if type(v) is int else 0  # (``believable`` has checked it)


def apply_usage(usage: Usage, obj: Any) -> bool:
    """Fill ``usage`` from an OpenAI chat, OpenAI Responses or Anthropic ``usage``
    object; True if it had one. An object with a count no call can have is not
    believed (False: the call's tokens are estimated, unless another report comes).

    Anthropic streams report input tokens in ``message_start`` and output tokens in
    ``message_delta``, so a later report only overwrites the counts it carries.
    """
    if not isinstance(obj, dict) or not believable(obj):
        return False
    if "prompt_tokens" in obj or "completion_tokens" in obj:
        usage.input_tokens = _int(obj.get("prompt_tokens"))
        usage.output_tokens = _int(obj.get("completion_tokens"))
        details = obj.get("prompt_tokens_details")
        if isinstance(details, dict):
            usage.cached_tokens = _int(details.get("cached_tokens"))
            usage.cache_write_tokens = _int(details.get(CACHE_WRITES))
        out_details = obj.get("completion_tokens_details")
        if isinstance(out_details, dict):
            usage.reasoning_tokens = _int(out_details.get("reasoning_tokens"))
    elif "input_tokens_details" in obj or "output_tokens_details" in obj:
        # The Responses API: OpenAI's counts under Anthropic-like names (input includes
        # the cached tokens, output the reasoning ones).
        usage.input_tokens = _int(obj.get("input_tokens"))
        usage.output_tokens = _int(obj.get("output_tokens"))
        in_details = obj.get("input_tokens_details")
        usage.cached_tokens = _int(in_details.get("cached_tokens")) if isinstance(in_details, dict) else 0
        usage.cache_write_tokens = _int(in_details.get(CACHE_WRITES)) if isinstance(in_details, dict) else 0
        out_details = obj.get("output_tokens_details")
        usage.reasoning_tokens = _int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
    elif "input_tokens" in obj or "output_tokens" in obj:
        if "input_tokens" in obj:
            usage.input_tokens = (
                _int(obj.get("input_tokens"))
                + _int(obj.get("cache_read_input_tokens"))
                + _int(obj.get("cache_creation_input_tokens"))
            )
            usage.cached_tokens = _int(obj.get("cache_read_input_tokens"))
            usage.cache_write_tokens = _int(obj.get("cache_creation_input_tokens"))
        if "output_tokens" in obj:
            usage.output_tokens = _int(obj.get("output_tokens"))
    else:
        return False
    usage.reported = True
    usage.estimated = False
    return True


def estimate_tokens(n_chars: int) -> int:
    """About four characters a token for English text: good enough to bound and bill
    a call the provider never reported (a dropped stream, an abandoned request)."""
    return (n_chars + 3) // 4
