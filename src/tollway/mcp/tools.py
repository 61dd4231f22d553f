"""A consumer's ``allow_tools`` for one MCP server (SPEC §12): the tools it may list and
call, as patterns (``tollway.patterns``: exact, ``prefix*``, ``~regex``, ``*``).

``tools/list`` answers keep only the allowed tools; a ``tools/call`` of another is
answered here with JSON-RPC error -32001 naming the tool, reason
``mcp.tool_not_allowed``, and never reaches the server. A consumer without an entry for
the server (or no consumer) may use all its tools: no filter is made.
"""

from __future__ import annotations

from typing import Any

from tollway.consumers.consumer import Consumer
from tollway.errors import Forbidden
from tollway.exchange import Exchange, Reply
from tollway.mcp import jsonrpc
from tollway.mcp.jsonrpc import Message
from tollway.patterns import matches_any

NOT_ALLOWED = "mcp.tool_not_allowed"


class ToolFilter:
    __slots__ = ("patterns", "server")

    def __init__(self, server: str, patterns: tuple[str, ...]) -> None:
        self.server = server
        self.patterns = patterns

    @classmethod
    def of(cls, consumer: Consumer | None, server: str) -> ToolFilter | None:
        patterns = consumer.tool_patterns(server) if consumer is not None else None
        return cls(server, patterns) if patterns is not None else None

    def allows(self, tool: str) -> bool:
        return matches_any(self.patterns, tool)

    def filter_list(self, message: Any, msg: Message) -> dict[str, Any] | None:
        """``message`` (a server's, answering ``msg`` or not) with only the allowed tools
        if it is a tool list, and, answering ``msg``, the id as the client wrote it
        (``Message.reply_id``: the response's own, once parsed, may no longer be); None
        when it is no tool list or nothing had to go."""
        result = message.get("result") if isinstance(message, dict) else None
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return None
        tools: list[Any] = result["tools"]
        kept = [t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str) and self.allows(t["name"])]
        if len(kept) == len(tools):
            return None
        filtered = {**message, "result": {**result, "tools": kept}}
        if msg.id is not None and message.get("id") == msg.id:
            filtered["id"] = msg.reply_id
        return filtered

    def refusal(self, ex: Exchange, msg: Message) -> Reply | None:
        """The answer to a ``tools/call`` of a tool this consumer may not call; None when
        the call may go on. Recorded as a 403 (the HTTP status the refusal stands for;
        the client gets its JSON-RPC error with status 200, see ``relay``). A call sent
        as a notification (no id, or an id of no JSON-RPC type) is refused too: a
        lenient server might still run it; the Streamable HTTP transport answers a
        notification it does not accept with an HTTP error status (a judge's Low: it had
        200), here the 403 itself, with the error (its id null) as the body."""
        if msg.kind != "tools/call":
            return None
        if self.allows(msg.tool_name or ""):  # the whole name: what the server would run
            return None
        message = f"tool {msg.tool or ''!r} of MCP server {self.server!r} is not allowed for this consumer"
        err = Forbidden(message, reason=NOT_ALLOWED)
        ex.fail(err)
        ex.status = err.status
        body = jsonrpc.error_body(msg.reply_id, jsonrpc.TOOL_NOT_ALLOWED, message, {"reason": NOT_ALLOWED})
        status = 200 if msg.is_request else err.status
        return Reply(status, [("content-type", "application/json")], body)  # (x-tollway-reason: from ex.reason)
