"""The input a Responses call carries by reference, for the budget's hold.

A call that continues server-side state (``previous_response_id``, a ``conversation``,
a stored ``prompt``) is billed for input its body does not show: the earlier turns,
kept by the provider. A hold made from the body alone would let such calls spend past
a budget however small their bodies (SPEC §10: no overshoot when every call sends
``max_tokens``). So the hold adds the tokens the reference stands for:

- a response or conversation this gateway answered for a budgeted consumer: its input
  plus its output tokens, remembered when that call settled (the next turn is billed at
  least those as input): in ``storage.state``, so every replica knows them (30 days,
  how long OpenAI keeps a stored response);
- anything else (a response made elsewhere, one forgotten, a stored prompt):
  ``UNSEEN_STATE_TOKENS``, more than most conversations reach; past it, the overshoot
  bound of docs/limits.md counts the difference.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Protocol

from tollway.errors import GatewayError
from tollway.exchange import Exchange
from tollway.state import StateStore, StateUnavailable

log = logging.getLogger("tollway.budgets")

# What a reference the gateway does not know is held as, in input tokens.
UNSEEN_STATE_TOKENS = 128_000
# How long a response's tokens are remembered in a shared store (OpenAI keeps a stored
# response 30 days).
REMEMBER_MS = 30 * 86_400_000
# Responses and conversations remembered in this process's memory at most.
_MEMORY_LIMIT = 100_000
_KEY = "continued:"


def references(ex: Exchange) -> tuple[list[str], bool] | None:
    """The keys of what a Responses call continues (``r:<response>``, ``c:<conversation>``)
    and whether it also names a stored prompt; None for a call that continues nothing
    (every call of another API, and most Responses calls)."""
    if ex.api != "responses":
        return None
    body = _body(ex)
    if body is None:
        return None
    keys: list[str] = []
    previous = body.get("previous_response_id")
    if isinstance(previous, str) and previous:
        keys.append("r:" + previous)
    conversation = _conversation_id(body.get("conversation"))
    if conversation is not None:
        keys.append("c:" + conversation)
    prompt = body.get("prompt") is not None
    return (keys, prompt) if keys or prompt else None


def _body(ex: Exchange) -> dict[str, Any] | None:
    try:
        body = ex.body_json()
    except GatewayError:  # a body the gateway refuses is refused before any hold
        return None
    return body if type(body) is dict else None


def _conversation_id(value: Any) -> str | None:
    """A ``conversation``: its id, or an object with one."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


class _Shared(Protocol):
    """A store replicas share (``RedisStateStore``): plain values under keys."""

    async def get_bytes(self, key: str) -> bytes | None: ...

    async def set_bytes(self, key: str, value: bytes, ttl_ms: int) -> None: ...


class Continuations:
    """What references stand for (see the module): in this process's memory, and in the
    shared store when ``storage.state`` is Redis."""

    def __init__(self, state: StateStore) -> None:
        self._shared: _Shared | None = state if hasattr(state, "set_bytes") else None  # type: ignore[assignment]
        self._known: OrderedDict[str, int] = OrderedDict()

    @property
    def shared(self) -> bool:
        return self._shared is not None

    def hidden_now(self, ex: Exchange) -> int:
        """The input tokens a call carries by reference, from this process's memory."""
        found = references(ex)
        if found is None:
            return 0
        keys, prompt = found
        return self._total(keys, prompt, [self._known.get(key) for key in keys])

    async def hidden(self, ex: Exchange) -> int:
        """``hidden_now``, asking the shared store for what this process does not know."""
        found = references(ex)
        if found is None:
            return 0
        keys, prompt = found
        counts = [self._known.get(key) for key in keys]
        shared = self._shared
        if shared is not None:
            for i, key in enumerate(keys):
                if counts[i] is None:
                    counts[i] = await self._fetch(shared, key)
        return self._total(keys, prompt, counts)

    @staticmethod
    def _total(keys: list[str], prompt: bool, counts: list[int | None]) -> int:
        # A conversation and a previous response overlap (the response is in the
        # conversation): the larger stands for both.
        known = [c for c in counts if c is not None]
        hidden = max(known) if known and len(known) == len(keys) else (UNSEEN_STATE_TOKENS if keys else 0)
        return hidden + (UNSEEN_STATE_TOKENS if prompt and not keys else 0)

    @staticmethod
    async def _fetch(shared: _Shared, key: str) -> int | None:
        try:
            raw = await shared.get_bytes(_KEY + key)
        except StateUnavailable:
            return None  # held as unseen: the budget's own store call will say the rest
        return int(raw) if raw is not None and raw.isdigit() else None

    def _remembered(self, ex: Exchange) -> list[tuple[str, int]]:
        """What a settled call leaves to be continued: its answer's id and conversation,
        each standing for the call's input and output tokens."""
        if ex.api != "responses" or ex.status != 200 or not ex.usage.reported:
            return []
        tokens = ex.usage.input_tokens + ex.usage.output_tokens
        out = [("r:" + ex.answer_id, tokens)] if ex.answer_id else []
        body = _body(ex)
        conversation = _conversation_id(body.get("conversation")) if body is not None else None
        if conversation is not None:
            out.append(("c:" + conversation, tokens))
        return out

    def remember_now(self, ex: Exchange) -> None:
        for key, tokens in self._remembered(ex):
            self._keep(key, tokens)

    async def remember(self, ex: Exchange) -> None:
        for key, tokens in self._remembered(ex):
            self._keep(key, tokens)
            if self._shared is not None:
                try:
                    await self._shared.set_bytes(_KEY + key, b"%d" % tokens, REMEMBER_MS)
                except StateUnavailable as exc:
                    log.warning("budgets: could not share what %s continues (%s)", key, exc)

    def _keep(self, key: str, tokens: int) -> None:
        known = self._known
        known[key] = tokens
        known.move_to_end(key)
        if len(known) > _MEMORY_LIMIT:
            known.popitem(last=False)
