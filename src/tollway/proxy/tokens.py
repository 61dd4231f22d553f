"""What a call cost, read off the provider's answer as it passes, or estimated when the
answer never said (a stream cut short, a client that left)."""

from __future__ import annotations

from typing import Any

from tollway.exchange import Exchange
from tollway.protocols.usage import apply_usage, estimate_tokens


def take_model(ex: Exchange, obj: dict[str, Any]) -> None:
    model = obj.get("model")
    if isinstance(model, str) and model:
        ex.model_reported = model


def take_usage(ex: Exchange, obj: dict[str, Any]) -> None:
    """The usage (and the model named beside it) in one decoded answer or stream event:
    OpenAI's ``usage`` (the answer's, or a stream's usage chunk), Anthropic's answer,
    ``message_start`` and ``message_delta``, the Responses API's answer and its
    ``response.completed`` event."""
    u = obj.get("usage")
    if u is not None and apply_usage(ex.usage, u):
        take_model(ex, obj)
    msg = obj.get("message")
    if isinstance(msg, dict) and msg.get("usage") is not None and apply_usage(ex.usage, msg["usage"]):
        take_model(ex, msg)
    # The Responses API streams its usage in ``response.completed``'s response.
    response = obj.get("response")
    if isinstance(response, dict) and response.get("usage") is not None and apply_usage(ex.usage, response["usage"]):
        take_model(ex, response)


def estimate_unfinished(ex: Exchange, sent_chars: int) -> None:
    """Tokens for an answer that did not run to its end. Nothing reported: estimate
    both sides. Reported only in part (Anthropic's ``message_start`` counts the output
    so far as 1): keep the input, and raise the output to what the client was sent if
    that is more."""
    usage = ex.usage
    if not usage.reported:
        if not usage.estimated:
            usage.output_tokens = estimate_tokens(sent_chars)
            usage.input_tokens = estimate_tokens(len(ex.request.body or b""))
            usage.estimated = True
        return
    sent = estimate_tokens(sent_chars)
    if sent > usage.output_tokens:
        usage.output_tokens = sent
        usage.estimated = True
