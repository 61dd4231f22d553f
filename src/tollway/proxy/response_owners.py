"""A stored response, and a conversation, belong to the consumer whose call made it (SPEC §9).

OpenAI keeps every response made with the organisation's key (``store`` is true unless
the call says otherwise) and serves it to anyone holding its id: ``GET /responses/{id}``
(the whole exchange), its ``input_items``, ``DELETE``, ``POST …/cancel``, and a new
call's ``previous_response_id``, which continues it with all it held. A conversation
(``POST /conversations``) is the same: its items are every turn of it, readable,
editable and continued (a response's ``conversation``) by any holder of its id. The
gateway keeps consumers apart as it does for files and batches (``ownership``): each
response or conversation id a consumer's call is answered with is recorded as that
consumer's (``consumer_objects``, kind ``response`` or ``conversation``), and another
consumer naming it gets what the provider says of an id it does not know: 404 for the
path, 400 for ``previous_response_id`` or ``conversation``, before the provider is asked.

The items of a stored response are its maker's too: its output's messages, reasoning and
tool calls (and the items a consumer adds to its conversation) are recorded as the
consumer's (kind ``item``), and a Responses call whose ``input`` (or a conversation's
new ``items``) names another consumer's item, by an ``item_reference`` or an item given
with its ``id`` (a reasoning item passed back by id is read from the provider's store),
is refused 400 ``item_not_found`` before the provider is asked.

An id no consumer holds passes as before: one made before the gateway recorded them, by
a call without a consumer, or outside the gateway (files hold the stricter rule, as they
did from the start; a stored response a consumer made before an upgrade must stay its
own to continue). A whole answer's id is recorded before the client has it; a stream's
when its ``response.created`` passes (at its end it was, and a client that left a
background stream early left its response anyone's), and again at its end. The database failing lets the call through
(logged): the provider's own ids are no secret lists, and every Responses call stopping
with the database is the worse outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tollway.consumers.holdings import Holdings, Kind
from tollway.errors import BadRequest, GatewayError, NotFound
from tollway.exchange import Exchange, StateKey
from tollway.protocols.apis import RESPONSES_COMPACT, RESPONSES_INPUT_TOKENS
from tollway.storage import StorageError

log = logging.getLogger("tollway.ownership")

# Paths under /responses that name no response.
_NOT_IDS = frozenset(path.rsplit("/", 1)[1] for path in (RESPONSES_INPUT_TOKENS, RESPONSES_COMPACT))
# The call reads a response its consumer made (``admit``).
_READS_OWN: StateKey[bool] = StateKey("response_owners.reads_own")
# How often a database failure is said (a busy gateway asks on every call).
_SAY_EVERY_S = 60.0
# What a collection's path holds, by its name in lower case.
_KINDS: dict[str, Kind] = {"responses": "response", "conversations": "conversation"}


def held_here(api_path: str) -> bool:
    """Whether a call of no metered API (``other``) is on one response or conversation,
    or makes a conversation: ``/responses/{id}…``, ``/conversations[/{id}…]``, in any
    letter case (a provider may match paths so)."""
    head = api_path[:15].lower()
    return head.startswith("/responses/") or head.startswith("/conversations")


def _path_id(api_path: str) -> tuple[Kind, str] | None:
    """The response or conversation a ``/responses/{id}[/…]`` or
    ``/conversations/{id}[/…]`` path names, or None."""
    segments = api_path.split("/", 3)  # "", "responses", id, rest
    if len(segments) < 3 or not segments[2]:
        return None
    kind = _KINDS.get(segments[1].lower())
    if kind is None or (kind == "response" and segments[2] in _NOT_IDS):
        return None
    return kind, segments[2]


def _named_in_body(ex: Exchange) -> list[tuple[Kind, str]]:
    """What a POST's body continues: its ``previous_response_id``, its ``conversation``
    (an id, or an object with one), and the stored items its ``input`` (or a
    conversation's ``items``) names by id."""
    if ex.request.method != "POST":
        return []
    try:
        body = ex.body_json()
    except GatewayError:
        return []
    if not isinstance(body, dict):
        return []
    named: list[tuple[Kind, str]] = []
    previous = body.get("previous_response_id")
    if isinstance(previous, str) and previous:
        named.append(("response", previous))
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    if isinstance(conversation, str) and conversation:
        named.append(("conversation", conversation))
    for field in ("input", "items"):
        named.extend(("item", item_id) for item_id in _item_ids(body.get(field)))
    return named


def _item_ids(items: Any) -> list[str]:
    """The ids of a list's items (an ``item_reference``'s, or an item given with its id)."""
    if not isinstance(items, list):
        return []
    return [i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), str) and i["id"]]


def _made(ex: Exchange, answer: Any) -> list[tuple[Kind, str]]:
    """What a consumer's call made: the stored response it was answered with and that
    response's output items (``POST /responses``), the conversation it made (``POST
    /conversations``), or the items it added to one (``POST /conversations/{id}/items``);
    [] for any other call or answer. Also the output items of the consumer's own
    response read back (``GET /responses/{id}``): a background run's answer had none
    when it was made, and its items were anyone's."""
    if ex.consumer is None or not isinstance(answer, dict) or answer.get("store") is False:
        return []
    kind = answer.get("object")
    if ex.request.method != "POST":
        if ex.get(_READS_OWN) and kind == "response":
            return [("item", item_id) for item_id in _item_ids(answer.get("output"))]
        return []
    in_path = _path_id(ex.api_path)
    if in_path is not None:
        if in_path[0] == "conversation" and kind == "list":
            return [("item", item_id) for item_id in _item_ids(answer.get("data"))]
        return []
    made_id = answer.get("id")
    if kind not in ("response", "conversation") or not isinstance(made_id, str) or not made_id:
        return []
    made: list[tuple[Kind, str]] = [(kind, made_id)]
    if kind == "response":
        made.extend(("item", item_id) for item_id in _item_ids(answer.get("output")))
    return made


def _refusal(kind: Kind, object_id: str, in_path: bool) -> GatewayError:
    """What the provider answers for an id it does not know."""
    if kind == "conversation":
        message = f"Conversation with id '{object_id}' not found."
        if in_path:
            return NotFound(message, reason="ai-proxy.not_owner", code="conversation_not_found")
        return BadRequest(message, reason="ai-proxy.not_owner", code="conversation_not_found")
    if kind == "item":
        return BadRequest(f"Item with id '{object_id}' not found.", reason="ai-proxy.not_owner", code="item_not_found")
    if in_path:
        return NotFound(
            f"No response found with id '{object_id}'.", reason="ai-proxy.not_owner", code="response_not_found"
        )
    return BadRequest(
        f"Previous response with id '{object_id}' not found.",
        reason="ai-proxy.not_owner",
        code="previous_response_not_found",
    )


class ResponseOwners:
    __slots__ = ("_said_at", "_tasks", "holdings")

    def __init__(self, holdings: Holdings) -> None:
        self.holdings = holdings
        self._said_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    async def admit(self, ex: Exchange) -> None:
        """Refuse a call naming a response or conversation another consumer's call made
        (see the module)."""
        in_path = _path_id(ex.api_path)
        # (A conversation's path and the items its body adds: ``/conversations/{id}/items``.)
        named = ([in_path] if in_path is not None else []) + _named_in_body(ex)
        consumer = ex.consumer.name if ex.consumer is not None else None
        by_kind: dict[Kind, list[str]] = {}
        for kind, object_id in named:
            by_kind.setdefault(kind, []).append(object_id)
        for kind, ids in by_kind.items():  # (one query a kind: an input may name many items)
            try:
                owners = await self.holdings.owners(kind, ids)
            except StorageError as exc:
                self._say(f"a call naming {kind} {ids[0]!r} was let through unchecked: {exc}")
                return
            for object_id in ids:
                owner = owners.get(object_id)
                if owner is not None and owner != consumer:
                    raise _refusal(kind, object_id, (kind, object_id) == in_path)
                if owner is not None and (kind, object_id) == in_path and kind == "response":
                    ex.put(_READS_OWN, True)  # (its items, read back, are recorded as its maker's)

    async def made(self, ex: Exchange, answer: Any) -> None:
        """Record what a call made (``_made``) as the call's consumer's."""
        made = _made(ex, answer)
        if made:
            await self._record(made, ex)

    def streamed(self, ex: Exchange, response: Any) -> None:
        """``made``, for a stream's ``response.created`` and ``response.completed``
        (called from the relay, which does not wait): recorded in the background."""
        made = _made(ex, response)
        if made:
            task = asyncio.get_running_loop().create_task(self._record(made, ex))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _record(self, made: list[tuple[Kind, str]], ex: Exchange) -> None:
        consumer = ex.consumer.name if ex.consumer is not None else ""
        try:
            await self.holdings.add_each(made, consumer)
        except StorageError as exc:
            kind, object_id = made[0]
            self._say(f"{kind} {object_id!r} is not recorded as consumer {consumer!r}'s: {exc}")

    def _say(self, what: str) -> None:
        now = time.monotonic()
        if now - self._said_at >= _SAY_EVERY_S:
            self._said_at = now
            log.warning("%s (the database failed; said at most once a minute)", what)


__all__ = ["ResponseOwners", "held_here"]
