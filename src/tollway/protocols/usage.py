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
# More tokens than any call has: a provider reporting beyond it (or below 0) is not
# believed past it; a count that large or negative would refund a quota or be unstorable.
MAX_TOKENS = 10**12


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        return 0
    return v if 0 <= v <= MAX_TOKENS else (0 if v < 0 else MAX_TOKENS)


def apply_usage(usage: Usage, obj: Any) -> bool:
    """Fill ``usage`` from an OpenAI chat, OpenAI Responses or Anthropic ``usage``
    object; True if it had one.

    Anthropic streams report input tokens in ``message_start`` and output tokens in
    ``message_delta``, so a later report only overwrites the counts it carries.
    """
    if not isinstance(obj, dict):
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
