"""Reserving tokens before a call and settling to what it really spent.

ai-token-ratelimit and ai-quota take an estimate from their budget before the call
goes upstream, and replace it by the provider's reported usage in the ``done`` hook.
So concurrent calls see each other's spending at once, instead of only after each one
ends (Higress's way, which overshoots without bound under concurrency).

The estimate is ``ceil(body bytes / 4)`` for the prompt (the whole JSON body, so the
syntax around the text only adds margin; inline base64 media at what they cost instead,
``protocols.media``) plus the output limit the request names
(``max_tokens``, ``max_completion_tokens`` or ``max_output_tokens``: the largest where
it names more than one), times ``n`` (or ``best_of``, the answers a legacy completion
generates), or the plugin's ``reserve_output_tokens`` when it names none; embeddings
have no output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import orjson

from tollway.errors import BadRequest, Forbidden
from tollway.exchange import Exchange
from tollway.plugin import ProviderLookup, UpstreamCall
from tollway.protocols.media import prompt_estimate
from tollway.providers.base import apply_settings

OUTPUT_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def estimate(ex: Exchange, default_output: int, calls: Sequence[UpstreamCall] = ()) -> int:
    """Tokens to reserve for this call: at least 1, so a full budget refuses it.
    ``calls``: how the route's providers would send it (their settings may raise the
    output limit)."""
    return max(1, prompt_tokens(ex) + output_tokens(ex, default_output, calls))


def route_calls(ex: Exchange, lookup: ProviderLookup | None) -> Sequence[UpstreamCall]:
    """How the call's route would send it (``ProviderLookup.upstream_calls``), for its
    providers' settings; none where the plugin was built without the snapshot's
    providers, or the call names no model."""
    if lookup is None or ex.route is None or ex.model_requested is None:
        return ()
    return lookup.upstream_calls(ex.route, ex.model_requested)


def prompt_tokens(ex: Exchange) -> int:
    """The prompt's estimated tokens: the whole body's, so JSON syntax only adds margin;
    in a large body, its inline media at what they cost (``protocols.media``). The body
    the provider gets as far as it is made when asked: one a plugin made or rewrote
    before (chatgpt-proxy's from the query; ai-prompt-decorator's, for a limit ordered
    after it, and for budgets, which hold after every plugin) when there is one, not
    the client's, which a client could fill as it likes (a judge held chatgpt-proxy
    calls at a body the gateway never sent)."""
    made = ex.upstream_json
    if made is not None:
        return prompt_estimate(len(orjson.dumps(made)), lambda: made)
    return prompt_estimate(len(ex.request.body or b""), ex.request.json_or_none)


def cache_writes(ex: Exchange) -> Literal["5m", "1h"] | None:
    """What the call's body asks of Anthropic's prompt cache: ``cache_control`` marks are
    written to it, billed at 1.25× the input price, or 2× with ``ttl: "1h"`` (a budget
    held at the input price was passed by one call whose long system prompt was cached).
    Read off the bytes when the body escapes nothing (the marks are rare, and most bodies
    hold neither), else off the parsed body: ``cache\u005fcontrol`` is the same key."""
    made = ex.upstream_json
    body = orjson.dumps(made) if made is not None else ex.request.body or b""
    if b"\\u" in body:
        return _marks(made if made is not None else ex.request.json_or_none())
    if b'"cache_control"' not in body:
        return None
    return "1h" if b'"1h"' in body else "5m"


def _marks(value: Any) -> Literal["5m", "1h"] | None:
    """The longest cache lifetime the ``cache_control`` marks in ``value`` ask for."""
    found: Literal["5m", "1h"] | None = None
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            mark = item.get("cache_control")
            if mark is not None:
                if isinstance(mark, dict) and mark.get("ttl") == "1h":
                    return "1h"
                found = "5m"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def output_tokens(ex: Exchange, default_output: int, calls: Sequence[UpstreamCall] = ()) -> int:
    """The output limit the request names (times ``n``), else ``default_output``; 0 for
    embeddings and token counting (no output). ``calls``: a provider's ``customSettings``
    that set the output limit or ``n`` (``max_tokens: 3000`` over the client's 5) send
    the call so, and the most any of them sends is what it may generate."""
    if ex.api == "embeddings" or ex.api == "count_tokens":
        return 0
    obj: Any = ex.upstream_json  # (as the provider gets it: see ``prompt_tokens``)
    if obj is None:
        try:
            obj = ex.request.json() if ex.request.body else {}
        except BadRequest:
            obj = {}
    if type(obj) is not dict:
        obj = {}
    most = _output_of(obj, default_output)
    for call in calls:
        if call.settings:
            most = max(most, _output_of(apply_settings(obj, call.settings), default_output))
    return most


def _output_of(obj: dict[str, Any], default_output: int) -> int:
    # Parsed JSON: an int is exactly ``int`` (``true`` is a bool, 1.0 a float: neither counts).
    # The largest limit named: a body may name two (``max_tokens`` and
    # ``max_completion_tokens``), and which one counts is the provider's to say (the
    # gateway translating to Anthropic sends ``max_completion_tokens``, as vLLM obeys it).
    named = [given for name in OUTPUT_LIMIT_FIELDS if type(given := obj.get(name)) is int and given >= 0]
    # Answers generated: ``n``, or the legacy completions' ``best_of`` (generated on the
    # provider's side and billed, ``n`` of them returned); Gemini's own API says both in
    # its ``generationConfig``.
    counts = [obj.get("n"), obj.get("best_of")]
    config = obj.get("generationConfig")
    if type(config) is dict:
        limit = config.get("maxOutputTokens")
        if type(limit) is int and limit >= 0:
            named.append(limit)
        counts.append(config.get("candidateCount"))
    output = max(named) if named else default_output
    answers = max([1, *(c for c in counts if type(c) is int)])
    return output * answers * _prompts(obj.get("prompt"))


def _prompts(prompt: object) -> int:
    """How many prompts a legacy completions call's ``prompt`` holds, each answered on
    its own (``n`` times, ``max_tokens`` each): a list of texts or of token lists is
    that many; a text, or one list of token ids, is one."""
    if type(prompt) is not list or not prompt or all(type(p) is int for p in prompt):
        return 1
    return len(prompt)


# The paths that mint a realtime key: the client then spends tokens with the provider
# directly, on a connection the gateway never sees.
_REALTIME_KEYS = frozenset({"/realtime/client_secrets", "/realtime/sessions", "/realtime/transcription_sessions"})


def _in_background(ex: Exchange) -> bool:
    """A Responses call asking to run in the background: answered ``queued`` with no
    usage, its tokens told only to whoever later reads the response back."""
    if ex.api != "responses":
        return False
    try:
        body = ex.request.json()
    except BadRequest:
        return False
    return isinstance(body, dict) and body.get("background") is True


def spent_elsewhere(ex: Exchange) -> str | None:
    """Why this call's tokens are spent where no settlement of it can see them (so no
    limit that counts tokens or money can hold it: token limits, quotas and budgets all
    refuse it), or None for a call that reports its own."""
    if ex.request.method != "POST":
        return None
    if ex.api == "other" and ex.api_path.rstrip("/").lower() in _REALTIME_KEYS:
        return "it mints a realtime key, which spends tokens with the provider directly, unseen by the gateway"
    if _in_background(ex):
        return (
            "a background Responses call is answered queued, its tokens told only to a later read "
            "of the response; send it without background"
        )
    return None


def refuse_unmetered(plugin: str, ex: Exchange) -> None:
    """Refuse (403 ``<plugin>.unmetered``) a call ``spent_elsewhere`` names: the plugin
    counts this consumer's tokens, and a hold of this call would settle at its estimate
    while the provider bills what the gateway never sees."""
    why = spent_elsewhere(ex)
    if why is not None:
        raise Forbidden(
            f"{plugin} counts this consumer's tokens, and {why}",
            reason=f"{plugin}.unmetered",
            code="permission_denied",
        )


def spent(ex: Exchange, reserved: int) -> int:
    """What the call cost, to settle a reservation of ``reserved`` against.

    The provider's reported usage (input + output), or the gateway's estimate of it
    (a broken or abandoned stream). When the provider was called and answered (or the
    client left, status 499) but nothing was reported or estimated, the reservation
    stands: the provider may well have billed it. Calls that never reached a provider
    (a cache hit among them), or that it refused, cost nothing.
    """
    usage = ex.usage
    if ex.cache == "hit" or ex.cache == "semantic" or ex.api == "count_tokens":
        # Answered from the cache (its tokens are what it saved), or only counted: no
        # provider bills either.
        return 0
    if usage.reported or usage.estimated:
        return usage.input_tokens + usage.output_tokens
    reached = ex.provider is not None or bool(ex.attempts)
    if reached and (200 <= ex.status < 300 or ex.status == 499):
        return reserved
    return 0


__all__ = [
    "OUTPUT_LIMIT_FIELDS",
    "estimate",
    "output_tokens",
    "prompt_tokens",
    "refuse_unmetered",
    "spent",
    "spent_elsewhere",
]
