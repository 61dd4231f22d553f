"""What one MCP request body says, read once, and the JSON-RPC errors the gateway answers.

A POST carries one JSON-RPC message: a request (``method`` and ``id``), a notification
(``method``, no ``id``) or a response to the server (``id``, no ``method``). What the
gateway cannot read as one message is refused (400 ``gateway.bad_request``), never
relayed unread: a body its JSON parse refuses (``NaN``, a duplicate key, a lone
surrogate: a lenient server could still run it), a JSON value that is no object, and a
batch (an array; the 2025-03-26 revision allowed them, 2025-06-18 removed them), whose
calls ``allow_tools`` could not check one by one. Everything else the server judges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jiter
import orjson

from tollway.errors import BadRequest, MethodNotAllowed
from tollway.exchange import Exchange
from tollway.masking.normalise import normalise

# JSON-RPC's own codes, and the one SPEC §12 gives a tool the consumer may not call.
INTERNAL_ERROR = -32603
TOOL_NOT_ALLOWED = -32001
# Beyond this a client-chosen method or tool name is cut in the record.
_MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class Message:
    """The parts of a client's JSON-RPC message the gateway acts on."""

    method: str | None
    # The request's id as parsed (a string or a number); None for a notification or a
    # batch. The server's response carries the same id, parsed the same way.
    id: Any
    # ``params.name`` of a ``tools/call``.
    tool: str | None
    params: dict[str, Any] | None
    # The id as the client wrote it, where ``id`` is not quite it (see ``_exact_id``).
    exact_id: Any = None

    # ``method`` as a lenient server might read it (trimmed, case-folded, NFKC): what
    # the gateway's checks go by (``TOOLS/CALL`` is a ``tools/call`` to them).
    kind: str | None = None
    # ``params.name`` of a ``tools/call``, whole (``tool`` is cut for the record).
    tool_name: str | None = None

    @property
    def is_request(self) -> bool:
        return self.method is not None and self.id is not None

    @property
    def reply_id(self) -> Any:
        """The id for what the gateway answers: as the client wrote it."""
        return self.id if self.exact_id is None else self.exact_id


_NOTHING = Message(None, None, None, None)


def _name(value: Any) -> str | None:
    return value[:_MAX_NAME] if isinstance(value, str) and value else None


# What the Streamable HTTP transport sends: POST a message; GET the server's stream,
# DELETE the session (no body either); OPTIONS and HEAD as any HTTP server knows them.
_BODILESS = frozenset({"GET", "DELETE", "OPTIONS", "HEAD"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ALLOWED = "GET, POST, DELETE, OPTIONS, HEAD"


def read(ex: Exchange) -> Message:
    """The message in the request's body (none for GET or DELETE), noted on the exchange
    for its record: ``mcp_method``, ``mcp_tool``. What the gateway could not check is
    refused, never relayed unread (a lenient server might run it): another HTTP method
    (405), a GET or DELETE with a body, a POST without one, an id of no JSON-RPC type."""
    req = ex.request
    if req.method in _BODILESS:
        if req.body:
            raise BadRequest(f"an MCP {req.method} carries no body", reason="gateway.bad_request")
        return _NOTHING
    if req.method != "POST":
        raise MethodNotAllowed(f"MCP's Streamable HTTP transport has no {req.method[:20]!r} requests", _ALLOWED)
    if not req.body:
        raise BadRequest("an MCP POST carries one JSON-RPC message; this one has no body", reason="gateway.bad_request")
    body = req.json()  # raises BadRequest for what its parse refuses
    if isinstance(body, list):
        ex.mcp_method = "batch"
        raise BadRequest(
            "JSON-RPC batches are not relayed (MCP 2025-06-18 removed them): send one message per request",
            reason="gateway.bad_request",
        )
    if not isinstance(body, dict):
        raise BadRequest("an MCP request body is one JSON-RPC message: a JSON object", reason="gateway.bad_request")
    raw_method = body.get("method")
    if isinstance(raw_method, str) and _CONTROL.search(raw_method) is not None:
        # A server reading C strings would take "tools/call\x00" for a tools/call.
        raise BadRequest("a JSON-RPC method has no control characters", reason="gateway.bad_request")
    method = _name(raw_method)
    kind = _kind(raw_method)
    params = body.get("params")
    params = params if isinstance(params, dict) else None
    tool_name = params.get("name") if kind == "tools/call" and params is not None else None
    tool_name = tool_name if isinstance(tool_name, str) else None
    if "id" in body and _id_of(body) is None:
        # A lenient server may still answer it (MCP: an id is a string or an integer,
        # never null): the gateway would not know the answer as the request's.
        raise BadRequest("a JSON-RPC id is a string or a number", reason="gateway.bad_request")
    msg_id = _id_of(body)
    tool = _name(tool_name)
    ex.mcp_method, ex.mcp_tool = method, tool
    return Message(method, msg_id, tool, params, _exact_id(msg_id, req.body), kind, tool_name)


# Slashes, with any run of them and the whitespace around them one "/" (a lenient
# server's router may read "tools//call" and "tools/call/" as "tools/call").
_SLASHES = re.compile(r"\s*/[\s/]*")


def _kind(method: Any) -> str | None:
    """What a lenient server may take the method for: its normal form, case folded, its
    slashes collapsed and none at either end."""
    if not isinstance(method, str) or not method:
        return None
    return _SLASHES.sub("/", normalise(method).casefold()).strip().strip("/")


def _id_of(body: dict[str, Any]) -> Any:
    """The message's id: a string or a number (JSON-RPC's types for it), else None."""
    msg_id = body.get("id")
    return msg_id if isinstance(msg_id, (str, int, float)) and not isinstance(msg_id, bool) else None


def _exact_id(msg_id: Any, raw: bytes) -> orjson.Fragment | None:
    """The id as the client wrote it, where ``msg_id`` is not: orjson reads an integer
    past 64 bits as a float, and can write no such integer, so an id like
    ``123456789012345678901234567890`` would come back as ``1.2345678901234568e+29``,
    an id the client never sent. Such a body is read once more (jiter keeps integers
    exact) and the integer is written as its own digits. None for any other id."""
    if type(msg_id) is not float:
        return None
    exact = jiter.from_json(raw, cache_mode="keys").get("id")
    return orjson.Fragment(str(exact)) if type(exact) is int else None


def error(msg_id: Any, code: int, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": msg_id, "error": err}


def error_body(msg_id: Any, code: int, message: str, data: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps(error(msg_id, code, message, data))


def outcome_of(message: Any) -> str | None:
    """What a server's JSON-RPC response says went wrong: ``mcp.server_error`` for a
    JSON-RPC error, ``mcp.tool_error`` for a tool result marked ``isError``; None when
    it went well or ``message`` is no response."""
    if not isinstance(message, dict):
        return None
    if "error" in message:
        return "mcp.server_error"
    result = message.get("result")
    if isinstance(result, dict) and result.get("isError") is True:
        return "mcp.tool_error"
    return None


# The gateway's own refusals and failures (key-auth, limits, request-block, …) on an MCP
# route: JSON-RPC's range for implementation-defined server errors.
GATEWAY_ERROR = -32000


def refusal_body(ex: Exchange, message: str, reason: str, status: int) -> bytes:
    """A refusal of an MCP call as a JSON-RPC error body (sent with the refusal's HTTP
    status: clients that read a JSON-RPC error there show the gateway's message)."""
    req = ex.request
    msg_id = None
    if req.body:
        try:
            body = req.json()
        except BadRequest:
            body = None
        if isinstance(body, dict):
            msg_id = _id_of(body)
            msg_id = _exact_id(msg_id, req.body) or msg_id
    return error_body(msg_id, GATEWAY_ERROR, message, {"reason": reason, "status": status})
