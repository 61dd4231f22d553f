"""Whose tokens a read of a stored object tells (SPEC §9: the exact truth of every call).

A GET of a stored response (``/responses/{id}``) or batch answers with the usage of the
run that made it. A Responses call the client waited for already has those tokens in its
own record: counted again on each read, every poll of it would add them again. Two runs
are the provider's own, with no call whose record has their tokens: a Responses call
sent with ``background: true`` (answered ``queued``, no usage) and a batch. Their usage
is told only to a read, so the first read of such a run once it has finished records
it: the read's record has its tokens and, for a response, its model, which prices them
(a batch is billed at a discount the price table does not know, so its cost stays
null). Later reads record none, and the call that started the run is not estimated.
"First" holds across replicas: a claim on the object's id in ``storage.state`` (kept 30
days, as long as OpenAI keeps a stored response). A state store that does not answer
cannot tell first from later: the read records the tokens (a spend counted twice is
seen; one never counted is not). A background run the client streamed as it was made
(``background`` and ``stream`` both true) is counted by that call's own record, and
claimed then. A read's stream (``?stream=true``) counts nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tollway.exchange import Exchange
from tollway.state import StateStore, StateUnavailable

log = logging.getLogger("tollway.proxy")

# The states of a run that will not change again (OpenAI's response and batch states).
_FINISHED = frozenset({"completed", "failed", "incomplete", "cancelled", "expired"})
_REMEMBER_MS = 30 * 86_400_000
_KEY = "run-usage:"


def _background(answer: dict[str, Any]) -> bool:
    """A response the provider made (or makes) in the background."""
    return answer.get("object") == "response" and answer.get("background") is True


def _told(answer: dict[str, Any]) -> str | None:
    """The id of a run whose usage ``answer`` tells, if it has both."""
    run_id = answer.get("id")
    return run_id if isinstance(run_id, str) and answer.get("usage") is not None else None


def _own_run(answer: dict[str, Any]) -> str | None:
    """The id of a finished run the provider did on its own, whose usage ``answer`` has."""
    if answer.get("status") not in _FINISHED or not (_background(answer) or answer.get("object") == "batch"):
        return None
    return _told(answer)


def told_later(answer: dict[str, Any]) -> bool:
    """A background Responses call's answer (``queued``): its usage is told to the first
    read of the finished run, so the call itself is not estimated (that would count the
    run's input twice)."""
    return _background(answer) and answer.get("usage") is None


class StoredReads:
    __slots__ = ("_claims", "state")

    def __init__(self, state: StateStore | None) -> None:
        self.state = state
        self._claims: set[asyncio.Task[None]] = set()  # (kept until done: the loop holds tasks weakly)

    def counted(self, run: dict[str, Any]) -> None:
        """The response a stream ended with, whose usage the streaming call counted: a
        background run's is then claimed (off the stream), so no read counts it again."""
        run_id = _told(run) if self.state is not None and _background(run) else None
        if run_id is None:
            return
        task = asyncio.get_running_loop().create_task(self._claim(run_id))
        self._claims.add(task)
        task.add_done_callback(self._claims.discard)

    async def _claim(self, run_id: str) -> None:
        assert self.state is not None
        try:
            await self.state.claim(_KEY + run_id, _REMEMBER_MS)
        except StateUnavailable:
            log.warning("the state store is unavailable: a read of run %s may count its usage again", run_id)

    async def first_read(self, ex: Exchange, answer: dict[str, Any]) -> bool:
        """Whether a read's answer has usage for its record: only the first read of a
        finished run the provider did on its own (see above)."""
        run_id = _own_run(answer)
        if run_id is None:
            return False
        if self.state is not None:
            try:
                if not await self.state.claim(_KEY + run_id, _REMEMBER_MS):
                    return False
            except StateUnavailable:
                log.warning("the state store is unavailable: the usage of run %s is recorded without a claim", run_id)
        if answer.get("object") == "response" and ex.model_upstream is None and isinstance(answer.get("model"), str):
            # A background run is billed as the call it is; a batch at the provider's
            # batch discount, which the price table does not know: its cost stays null.
            ex.model_upstream = answer["model"]
        return True


__all__ = ["StoredReads", "told_later"]
