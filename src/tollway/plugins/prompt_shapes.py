"""Where a prompt's messages stand in each API's body, for the plugins that shape prompts
(ai-prompt-decorator, ai-prompt-template): chat's ``messages``; Anthropic's ``system``
and ``messages``; the Responses API's ``instructions`` and ``input``.

A *message* here is OpenAI's ``{"role", "content"}``. System (and developer) messages
go where each API keeps its instructions: into chat's list, Anthropic's ``system``, the
Responses API's ``instructions``; the others into the list of turns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tollway.errors import BadRequest
from tollway.exchange import Exchange, StateKey

Json = dict[str, Any]
SHAPED_APIS = frozenset({"chat", "messages", "responses"})
_INSTRUCTION_ROLES = frozenset({"system", "developer"})
# How many turns the prompt plugins put before and after the client's own (``note_added_turns``):
# ai-cache's question is the client's last one, not a fixed "Answer in English." after it.
ADDED_TURNS: StateKey[tuple[int, int]] = StateKey("prompt_shapes.added_turns")


def shaped_body(ex: Exchange) -> Json | None:
    """The body of a call whose prompt may be shaped, as the plugins before left it (a
    rewrite of theirs, else the client's), or None: another API or method, or a body
    that is not a JSON object (the gateway answers that one)."""
    if ex.request.method != "POST" or ex.api not in SHAPED_APIS:
        return None
    try:
        parsed = ex.body_json()
    except BadRequest:
        return None
    return parsed if isinstance(parsed, dict) else None


def _joined(first: Any, second: Any) -> Any:
    """Two instructions as one: strings joined by a blank line; Anthropic's text blocks
    (a list) keep their blocks, a string becoming one."""
    if not first:
        return second
    if not second:
        return first
    if isinstance(first, list) or isinstance(second, list):
        blocks = [
            *(first if isinstance(first, list) else [{"type": "text", "text": str(first)}]),
            *(second if isinstance(second, list) else [{"type": "text", "text": str(second)}]),
        ]
        return blocks
    return f"{first}\n\n{second}"


def _instructions(messages: list[Json]) -> str:
    return "\n\n".join(str(m.get("content") or "") for m in messages)


def add_messages(api: str, body: Json, prepend: list[Json], append: list[Json]) -> Json:
    """``body`` (not changed) with ``prepend`` before its turns and ``append`` after them."""
    out = dict(body)
    if api == "chat":
        out["messages"] = [*prepend, *(body.get("messages") or []), *append]
        return out
    first = [m for m in prepend if m.get("role") in _INSTRUCTION_ROLES]
    last = [m for m in append if m.get("role") in _INSTRUCTION_ROLES]
    before = [m for m in prepend if m.get("role") not in _INSTRUCTION_ROLES]
    after = [m for m in append if m.get("role") not in _INSTRUCTION_ROLES]
    key = "system" if api == "messages" else "instructions"
    if first or last:
        current = body.get(key)
        out[key] = _joined(_joined(_instructions(first), current), _instructions(last))
    if before or after:
        if api == "messages":
            out["messages"] = [*before, *(body.get("messages") or []), *after]
        else:
            turns = body.get("input")
            listed = [{"role": "user", "content": turns}] if isinstance(turns, str) else list(turns or [])
            out["input"] = [*before, *listed, *after]
    return out


def note_added_turns(ex: Exchange, api: str, prepend: list[Json], append: list[Json]) -> None:
    """Count the turns ``add_messages`` put before and after the client's own (chat's
    list takes every message; the others' instructions go apart) in ``ADDED_TURNS``."""
    if api == "chat":
        before, after = len(prepend), len(append)
    else:
        before = sum(1 for m in prepend if m.get("role") not in _INSTRUCTION_ROLES)
        after = sum(1 for m in append if m.get("role") not in _INSTRUCTION_ROLES)
    earlier = ex.get(ADDED_TURNS)
    if earlier is not None:
        before, after = before + earlier[0], after + earlier[1]
    ex.put(ADDED_TURNS, (before, after))


def map_texts(api: str, body: Json, edit: Callable[[str, str], str]) -> Json:
    """``body`` (not changed) with every string content passed through ``edit(role,
    text)``: each message's string content, and the instructions as role ``system``.
    Content given as parts is left as it is."""
    out = dict(body)
    turns_key = "input" if api == "responses" else "messages"
    turns = body.get(turns_key)
    if isinstance(turns, str):
        out[turns_key] = edit("user", turns)
    elif isinstance(turns, list):
        out[turns_key] = [
            {**m, "content": edit(str(m.get("role")), m["content"])}
            if isinstance(m, dict) and isinstance(m.get("content"), str)
            else m
            for m in turns
        ]
    key = "system" if api == "messages" else "instructions" if api == "responses" else None
    if key is not None and isinstance(body.get(key), str):
        out[key] = edit("system", body[key])
    return out


__all__ = ["ADDED_TURNS", "SHAPED_APIS", "add_messages", "map_texts", "note_added_turns", "shaped_body"]
