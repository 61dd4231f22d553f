"""An MCP session belongs to the consumer that opened it.

The server sees every consumer's calls with the same credentials (the server's
``headers``), so it cannot tell them apart: a consumer holding another's
``Mcp-Session-Id`` could post into that session, or end it with a DELETE. The gateway
binds each session id to the consumer it was first seen with: the consumer whose
``initialize`` the server answered with it, or (a session opened before the gateway
knew it, or one whose binding expired) the first consumer to use it that the server
served (an id the server answered 404 for is no session: bound on first use before the
server answered, guessed ids were a consumer's before the server gave them to another
consumer's ``initialize``, and that session was taken over). Another consumer
naming it gets what a server answers for a session it does not have: 404, so its client
starts a session of its own. Bindings live in ``storage.state`` (every replica sees
them) for ``BIND_MS``. A route without key-auth has no consumer to bind: its sessions
are the server's to keep apart. A state store that does not answer binds nothing and
refuses nothing (logged): the session goes on as the server keeps it.
"""

from __future__ import annotations

import logging

from tollway.errors import NotFound
from tollway.exchange import Exchange
from tollway.mcp.servers import McpServer
from tollway.state import StateStore, StateUnavailable

log = logging.getLogger("tollway.mcp")

HEADER = "mcp-session-id"
# How long a session stays bound to its consumer without being opened again.
BIND_MS = 7 * 86_400_000
# A session id longer than this is none a server made; it is not bound (nor refused).
_MAX_ID = 512


def _key(server: McpServer, session: str) -> str:
    return f"mcp-session:{server.name}:{session}"


class SessionOwners:
    __slots__ = ("state",)

    def __init__(self, state: StateStore | None) -> None:
        self.state = state

    async def _bind(self, server: McpServer, session: str, consumer: str) -> str | None:
        if self.state is None or len(session) > _MAX_ID:
            return None
        try:
            return await self.state.bind(_key(server, session), consumer, BIND_MS)
        except StateUnavailable:
            log.warning(
                "an MCP session of %r is not bound to its consumer: the state store is unavailable", server.name
            )
            return None

    async def check(self, ex: Exchange, server: McpServer) -> None:
        """Raise 404 when the request names a session another consumer holds (bound
        nothing: ``used`` binds once the server served it)."""
        session = ex.request.headers.get(HEADER)
        if not session or ex.consumer is None or self.state is None or len(session) > _MAX_ID:
            return
        try:
            owner = await self.state.bound(_key(server, session))
        except StateUnavailable:
            log.warning("an MCP session of %r is not checked: the state store is unavailable", server.name)
            return
        if owner is not None and owner != ex.consumer.name:
            raise NotFound(
                "Session not found: this MCP session belongs to another consumer; start one of your own",
                reason="mcp.session_not_found",
                code="session_not_found",
            )

    async def used(self, ex: Exchange, server: McpServer) -> None:
        """The server served a request naming a session: bound to its consumer when no
        one holds it yet (a session opened before the gateway knew it)."""
        session = ex.request.headers.get(HEADER)
        if session and ex.consumer is not None:
            await self._bind(server, session, ex.consumer.name)

    async def take(self, ex: Exchange, server: McpServer, headers: list[tuple[str, str]]) -> None:
        """Bind the session id the server's answer gives the consumer."""
        if ex.consumer is None:
            return
        session = next((v for k, v in headers if k == HEADER), None)
        if session and session != ex.request.headers.get(HEADER):
            await self._bind(server, session, ex.consumer.name)


__all__ = ["HEADER", "SessionOwners"]
