"""What a call cost, read off the provider's answer as it passes, or estimated when the
answer never said (a stream cut short, a client that left)."""

from __future__ import annotations

from typing import Any

from tollway.exchange import Exchange
from tollway.protocols.apis import recorded_api
from tollway.protocols.gemini.response import usage_to_pivot
from tollway.protocols.lists import members
from tollway.protocols.media import prompt_estimate
from tollway.protocols.usage import apply_usage, estimate_tokens

# The APIs whose answers are billed in tokens the provider reports: an answer that
# reports none (or none to believe) is billed an estimate (``tokens_estimated``; an
# embedding's output is none).
ESTIMATED_APIS = frozenset({"chat", "completions", "messages", "responses", "embeddings"})


def estimated(ex: Exchange) -> bool:
    """Whether the call's API is billed on an estimate when it reports no usage (Gemini's
    own methods by what they do: ``generateContent`` is a chat's, ``embedContent`` an
    embedding's; ``protocols.apis.recorded_api``). The Responses API's calls on a stored
    response are recorded as ``responses`` but not estimated: a read, a delete or a
    list of its items makes nothing."""
    return ex.api != "other" and recorded_api(ex.api, ex.api_path) in ESTIMATED_APIS


def take_model(ex: Exchange, obj: dict[str, Any]) -> None:
    model = obj.get("model")
    if isinstance(model, str) and model:
        ex.model_reported = model


def take_usage(ex: Exchange, obj: dict[str, Any]) -> None:
    """The usage (and the model named beside it) in one decoded answer or stream event:
    OpenAI's ``usage`` (the answer's, or a stream's usage chunk), Anthropic's answer,
    ``message_start`` and ``message_delta``, the Responses API's answer and its
    ``response.completed`` event, and Gemini's own answer and stream chunks
    (``usageMetadata``, cumulative in a stream: the last one stands)."""
    meta = obj.get("usageMetadata")
    if meta is not None and apply_usage(ex.usage, usage_to_pivot(meta)):
        ex.usage.provisional = False
        version = obj.get("modelVersion")
        if isinstance(version, str) and version:
            ex.model_reported = version
    u = obj.get("usage")
    if u is not None and apply_usage(ex.usage, u):
        ex.usage.provisional = False
        take_model(ex, obj)
        if obj.get("object") == "response" and isinstance(obj.get("id"), str):
            ex.answer_id = obj["id"]  # a whole Responses answer
    msg = obj.get("message")
    if isinstance(msg, dict) and msg.get("usage") is not None and apply_usage(ex.usage, msg["usage"]):
        ex.usage.provisional = True  # ``message_start``: the final counts come in ``message_delta``
        take_model(ex, msg)
    # The Responses API streams its usage in ``response.completed``'s response.
    response = obj.get("response")
    if isinstance(response, dict) and response.get("usage") is not None and apply_usage(ex.usage, response["usage"]):
        take_model(ex, response)
        if isinstance(response.get("id"), str):
            ex.answer_id = response["id"]


def answer_chars(obj: Any) -> int:
    """Characters generated in one whole answer (for an estimate): the text and
    tool-call arguments of an OpenAI chat or completions answer, an Anthropic message's
    text and tool input, a Gemini answer's text, a Responses answer's output text and
    call arguments."""
    if not isinstance(obj, dict):
        return 0
    n = 0
    for choice in members(obj, "choices"):
        if isinstance(choice, dict):
            message = choice.get("message")
            if isinstance(message, dict):
                n += _chars(message.get("content"))
                for call in members(message, "tool_calls"):
                    fn = call.get("function") if isinstance(call, dict) else None
                    n += _chars(fn.get("arguments")) if isinstance(fn, dict) else 0
            n += _chars(choice.get("text"))
    blocks = obj.get("content") if obj.get("type") == "message" else None
    for part in blocks if isinstance(blocks, list) else ():
        if isinstance(part, dict):
            n += _chars(part.get("text")) + (len(str(part["input"])) if "input" in part else 0)
    for candidate in members(obj, "candidates"):  # Gemini's own answer
        content = candidate.get("content") if isinstance(candidate, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            n += _chars(part.get("text")) if isinstance(part, dict) else 0
    for item in members(obj, "output"):
        if isinstance(item, dict):
            n += _chars(item.get("arguments"))
            for part in members(item, "content"):
                n += _chars(part.get("text")) if isinstance(part, dict) else 0
    return n


def _chars(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def estimate_unfinished(ex: Exchange, sent_chars: int) -> None:
    """Tokens for an answer that did not run to its end. Nothing reported: estimate
    both sides. Reported only in part (Anthropic's ``message_start`` counts the output
    so far as 1): keep the input, and raise the output to what the client was sent if
    that is more; counts still provisional are marked estimated."""
    usage = ex.usage
    if not usage.reported:
        if not usage.estimated:
            usage.output_tokens = estimate_tokens(sent_chars)
            usage.input_tokens = prompt_estimate(len(ex.request.body or b""), ex.request.json_or_none)
            usage.estimated = True
        return
    if usage.provisional:
        # Not the final counts (``message_start`` says 1 output token), whatever the
        # client was sent: the record says they are estimated.
        usage.estimated = True
    sent = estimate_tokens(sent_chars)
    if sent > usage.output_tokens:
        usage.output_tokens = sent
        usage.estimated = True
