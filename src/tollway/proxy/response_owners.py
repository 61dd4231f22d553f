"""A stored response belongs to the consumer whose call made it (SPEC §9).

OpenAI keeps every response made with the organisation's key (``store`` is true unless
the call says otherwise) and serves it to anyone holding its id: ``GET /responses/{id}``
(the whole exchange), its ``input_items``, ``DELETE``, ``POST …/cancel``, and a new
call's ``previous_response_id``, which continues it with all it held. The gateway keeps
consumers apart as it does for files and batches (``ownership``): each response id a
consumer's call is answered with is recorded as that consumer's (``consumer_objects``,
kind ``response``), and another consumer naming it gets what the provider says of an id
it does not know: 404 for the path, 400 for ``previous_response_id``, before the
provider is asked.

An id no consumer holds passes as before: one made before the gateway recorded them, by
a call without a consumer, or outside the gateway (files hold the stricter rule, as they
did from the start; a stored response a consumer made before an upgrade must stay its
own to continue). A whole answer's id is recorded before the client has it; a stream's
when its ``response.completed`` passes. The database failing lets the call through
(logged): the provider's own ids are no secret lists, and every Responses call stopping
with the database is the worse outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tollway.consumers.holdings import Holdings
from tollway.errors import BadRequest, GatewayError, NotFound
from tollway.exchange import Exchange
from tollway.protocols.apis import RESPONSES_COMPACT, RESPONSES_INPUT_TOKENS
from tollway.storage import StorageError

log = logging.getLogger("tollway.ownership")

# Paths under /responses that name no response.
_NOT_IDS = frozenset(path.rsplit("/", 1)[1] for path in (RESPONSES_INPUT_TOKENS, RESPONSES_COMPACT))
# How often a database failure is said (a busy gateway asks on every call).
_SAY_EVERY_S = 60.0


def _path_id(api_path: str) -> str | None:
    """The response a ``/responses/{id}[/…]`` path names, or None."""
    segments = api_path.split("/", 3)  # "", "responses", id, rest
    if len(segments) < 3 or not segments[2] or segments[2] in _NOT_IDS:
        return None
    return segments[2]


def _previous(ex: Exchange) -> str | None:
    """The ``previous_response_id`` of a POST's body, or None."""
    if ex.request.method != "POST":
        return None
    try:
        body = ex.body_json()
    except GatewayError:
        return None
    previous = body.get("previous_response_id") if isinstance(body, dict) else None
    return previous if isinstance(previous, str) and previous else None


def _made(ex: Exchange, response: Any) -> tuple[str, str] | None:
    """The stored response a consumer's call (``POST /responses``) was answered with,
    and the consumer; None for any other call or answer."""
    if ex.consumer is None or ex.request.method != "POST" or _path_id(ex.api_path) is not None:
        return None
    if not isinstance(response, dict) or response.get("object") != "response" or response.get("store") is False:
        return None
    response_id = response.get("id")
    return (response_id, ex.consumer.name) if isinstance(response_id, str) and response_id else None


class ResponseOwners:
    __slots__ = ("_said_at", "_tasks", "holdings")

    def __init__(self, holdings: Holdings) -> None:
        self.holdings = holdings
        self._said_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    async def admit(self, ex: Exchange) -> None:
        """Refuse a call naming a response another consumer's call made (see the module)."""
        named = _path_id(ex.api_path)
        previous = _previous(ex) if named is None else None
        response_id = named or previous
        if response_id is None:
            return
        try:
            owner = (await self.holdings.owners("response", [response_id])).get(response_id)
        except StorageError as exc:
            self._say(f"a call naming response {response_id!r} was let through unchecked: {exc}")
            return
        consumer = ex.consumer.name if ex.consumer is not None else None
        if owner is None or owner == consumer:
            return
        if named is not None:
            raise NotFound(
                f"No response found with id '{response_id}'.", reason="ai-proxy.not_owner", code="response_not_found"
            )
        raise BadRequest(
            f"Previous response with id '{response_id}' not found.",
            reason="ai-proxy.not_owner",
            code="previous_response_not_found",
        )

    async def made(self, ex: Exchange, response: Any) -> None:
        """Record the response a call was answered with as the call's consumer's."""
        made = _made(ex, response)
        if made is not None:
            await self._record(*made)

    def streamed(self, ex: Exchange, response: Any) -> None:
        """``made``, for a stream's ``response.completed`` (called from the relay, which
        does not wait): recorded in the background."""
        made = _made(ex, response)
        if made is not None:
            task = asyncio.get_running_loop().create_task(self._record(*made))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _record(self, response_id: str, consumer: str) -> None:
        try:
            await self.holdings.add("response", [response_id], consumer)
        except StorageError as exc:
            self._say(f"response {response_id!r} is not recorded as consumer {consumer!r}'s: {exc}")

    def _say(self, what: str) -> None:
        now = time.monotonic()
        if now - self._said_at >= _SAY_EVERY_S:
            self._said_at = now
            log.warning("%s (the database failed; said at most once a minute)", what)


__all__ = ["ResponseOwners"]
