"""The relay's handling of a server's event stream: the response noted and a tool list
filtered, and a stream that ends or breaks before the response answered with a JSON-RPC
error for the request (fake server answers: each case exactly)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
import pytest

from tollway.exchange import Exchange, Request
from tollway.headers import Headers
from tollway.mcp import relay
from tollway.mcp.jsonrpc import Message
from tollway.mcp.servers import McpServer
from tollway.mcp.tools import ToolFilter
from tollway.protocols.sse import SseParser
from tollway.upstream import ProtocolFailure, Transport, TransportError

SERVER = McpServer("tools", "http://x/mcp", (), frozenset(), 5.0)
CALL = Message("tools/call", 7, "echo", {})
LIST = Message("tools/list", 8, None, None)


class _Answer:
    def __init__(self, parts: list[bytes], fail: TransportError | None = None) -> None:
        self.status = 200
        self.headers = [("content-type", "text/event-stream")]
        self._parts = parts
        self._fail = fail
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            yield part
        if self._fail is not None:
            raise self._fail

    async def read(self) -> bytes:
        return b"".join(self._parts)

    async def aclose(self) -> None:
        self.closed = True


def _event(message: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n".encode() if event_id else b""
    return head + b"event: message\ndata: " + orjson.dumps(message) + b"\n\n"


async def _relayed(
    msg: Message, answer: _Answer, tools: ToolFilter | None = None
) -> tuple[Exchange, list[dict[str, Any]]]:
    ex = Exchange("r", Request("POST", "/mcp", "", Headers(), "127.0.0.1", "gw"))
    ex.status = 200
    events = relay.McpEvents(ex, SERVER, answer, msg, tools)
    seen: list[dict[str, Any]] = []
    while (batch := await events.next()) is not None:
        seen.extend(e.json() for e in batch)
    return ex, seen


async def test_progress_then_the_response_pass_as_they_come() -> None:
    progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
    done = {"jsonrpc": "2.0", "id": 7, "result": {"content": [], "isError": True}}
    ex, seen = await _relayed(CALL, _Answer([_event(progress), _event(done)]))
    assert seen == [progress, done]
    assert (ex.status, ex.reason) == (200, "mcp.tool_error")


async def test_a_tool_list_in_a_stream_is_filtered_for_the_consumer() -> None:
    listed = {"jsonrpc": "2.0", "id": 8, "result": {"tools": [{"name": "echo"}, {"name": "rm"}], "nextCursor": "c"}}
    _, seen = await _relayed(LIST, _Answer([_event(listed)[:20], _event(listed)[20:]]), ToolFilter("tools", ("echo",)))
    assert seen == [{"jsonrpc": "2.0", "id": 8, "result": {"tools": [{"name": "echo"}], "nextCursor": "c"}}]


async def test_a_tool_list_replayed_on_the_get_stream_is_filtered_and_keeps_its_id() -> None:
    """A client resuming (GET, Last-Event-ID) gets the server's replay: a tool list
    there is one the consumer may see only in part, and its event id is how the client
    resumes again."""
    listed = {"jsonrpc": "2.0", "id": 8, "result": {"tools": [{"name": "echo"}, {"name": "rm"}]}}
    ex = Exchange("r", Request("GET", "/mcp", "", Headers(), "127.0.0.1", "gw"))
    events = relay.McpEvents(ex, SERVER, _Answer([_event(listed, event_id="2::12")]), Message(None, None, None, None),
                             ToolFilter("tools", ("echo",)))  # fmt: skip
    batch = await events.next()
    assert batch is not None and len(batch) == 1
    assert batch[0].raw.startswith(b"id: 2::12\nevent: message\ndata: ")
    assert batch[0].json() == {"jsonrpc": "2.0", "id": 8, "result": {"tools": [{"name": "echo"}]}}


def test_the_whole_tool_name_is_checked_not_the_one_cut_for_the_record() -> None:
    only_xs = ToolFilter("tools", ("~x+",))
    ex = Exchange("r", Request("POST", "/mcp", "", Headers(), "127.0.0.1", "gw"))
    long_name = "x" * 200 + "_secret"
    call = Message("tools/call", 9, long_name[:200], {"name": long_name}, kind="tools/call", tool_name=long_name)
    refused = only_xs.refusal(ex, call)
    assert refused is not None and ex.reason == "mcp.tool_not_allowed"
    allowed = Message("tools/call", 9, "x" * 200, {}, kind="tools/call", tool_name="x" * 200)
    assert only_xs.refusal(ex, allowed) is None


@pytest.mark.parametrize(
    ("parts", "fail", "status"),
    [
        ([], ProtocolFailure("reset"), 502),
        ([_event({"jsonrpc": "2.0", "method": "notifications/progress"})], None, 502),
        ([b"data: " + b"x" * 64], None, 502),
    ],
    ids=["broken", "ended-unanswered", "cut-mid-event"],
)
async def test_a_request_left_unanswered_gets_a_json_rpc_error(
    parts: list[bytes], fail: TransportError | None, status: int
) -> None:
    ex, seen = await _relayed(CALL, _Answer(parts, fail))
    last = seen[-1]
    assert last["id"] == 7 and last["error"]["code"] == -32603 and "'tools'" in last["error"]["message"]
    assert (ex.status, ex.reason) == (status, "mcp.upstream_failed")


async def test_an_event_past_the_bound_is_told_as_such_not_as_a_break(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "SseParser", lambda: SseParser(max_event_bytes=64))
    ex, seen = await _relayed(CALL, _Answer([b"data: " + b"x" * 100]))
    message = seen[-1]["error"]["message"]
    assert "sent what the gateway does not relay" in message and "64 bytes" in message and "broke off" not in message
    assert (ex.status, ex.reason) == (502, "mcp.upstream_failed")


async def test_a_resumable_stream_that_ends_is_left_to_the_client_to_resume() -> None:
    progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
    ex, seen = await _relayed(CALL, _Answer([_event(progress, event_id="e1")]))
    assert seen == [progress]  # the client reconnects with Last-Event-ID
    assert ex.reason is None


async def test_a_break_after_the_response_costs_the_call_nothing() -> None:
    done = {"jsonrpc": "2.0", "id": 7, "result": {"content": []}}
    ex, seen = await _relayed(CALL, _Answer([_event(done)], ProtocolFailure("reset")))
    assert seen == [done]
    assert (ex.status, ex.reason) == (200, None)


async def test_a_broken_notification_stream_is_recorded_as_the_servers_failure() -> None:
    listen = Message(None, None, None, None)
    ex, seen = await _relayed(listen, _Answer([], ProtocolFailure("reset")))
    assert seen == []
    assert (ex.status, ex.reason) == (502, "mcp.upstream_failed")


class _Sends:
    """A transport that answers every request with one ``_Answer``."""

    def __init__(self, answer: _Answer) -> None:
        self.answer = answer

    async def send(self, request: Any) -> _Answer:
        return self.answer

    async def aclose(self) -> None:
        pass


def _relay(answer: _Answer) -> relay.McpRelay:
    return relay.McpRelay(cast(Transport, _Sends(answer)))


def _plain(status: int, ctype: str, body: bytes) -> _Answer:
    answer = _Answer([body])
    answer.status, answer.headers = status, [("content-type", ctype)]
    return answer


@pytest.mark.parametrize(
    ("status", "ctype", "body", "recorded"),
    [
        (200, "application/json", b'{"jsonrpc":"2.0","id":7,"result":{nope', 502),  # not JSON
        (200, "application/json", b"[1,2,3]", 502),  # no object
        (200, "application/json", b'{"jsonrpc":"2.0","id":99,"result":{}}', 502),  # another request's
        (200, "text/html", b"<h1>hello</h1>", 502),
        (500, "text/plain", b"internal oops", 502),
    ],
    ids=["not-json", "array", "other-id", "html", "http-500"],
)
async def test_an_answer_that_is_no_response_to_the_request_is_a_json_rpc_error(
    status: int, ctype: str, body: bytes, recorded: int
) -> None:
    """The client would wait for its response in vain (an SDK until its own timeout),
    and the record would say the call went well."""
    ex = Exchange("r", Request("POST", "/mcp", "", Headers(), "127.0.0.1", "gw", body=b"{}"))
    reply = await _relay(_plain(status, ctype, body)).serve(ex, SERVER, CALL, None)
    assert reply.status == 200
    error = orjson.loads(reply.body)
    assert error["id"] == 7 and error["error"]["code"] == -32603 and "'tools'" in error["error"]["message"]
    assert (ex.status, ex.reason) == (recorded, "mcp.upstream_failed")


async def test_a_servers_own_answers_pass_as_they_are() -> None:
    gone = b'{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"Session not found"}}'
    for status, body in [(200, b'{"jsonrpc":"2.0","id":7,"result":{"content":[]}}'), (404, gone)]:
        ex = Exchange("r", Request("POST", "/mcp", "", Headers(), "127.0.0.1", "gw", body=b"{}"))
        reply = await _relay(_plain(status, "application/json", body)).serve(ex, SERVER, CALL, None)
        assert (reply.status, reply.body) == (status, body)  # a 404 tells the client to start a new session


async def test_the_servers_credentials_never_reach_the_client_through_its_answer() -> None:
    """A server (or a proxy before it) may name the credentials it was sent, in an
    error or a header: the client never has them, whole or masked."""
    token = "srv-secret-0123456789abcd"
    server = McpServer(
        "tools", "http://x/mcp", (("authorization", f"Bearer {token}"),), frozenset({"authorization"}), 5
    )
    told = (
        b'{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"bad token srv-****abcd (Bearer '
        + token.encode()
        + b')"}}'
    )
    answer = _plain(401, "application/json", told)
    answer.headers.append(("x-echo", f"Bearer {token}"))
    ex = Exchange("r", Request("POST", "/mcp", "", Headers(), "127.0.0.1", "gw", body=b"{}"))
    reply = await _relay(answer).serve(ex, server, CALL, None)
    assert reply.status == 401
    assert token.encode() not in reply.body and b"abcd" not in reply.body and b"[redacted]" in reply.body
    assert [k for k, _ in reply.headers] == ["content-type"]


async def test_a_json_rpc_error_sent_with_200_never_shows_the_servers_credentials() -> None:
    token = "srv-secret-0123456789abcd"
    server = McpServer(
        "tools", "http://x/mcp", (("authorization", f"Bearer {token}"),), frozenset({"authorization"}), 5
    )
    told = (
        b'{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"token rejected: Bearer ' + token.encode() + b'"}}'
    )
    ex = Exchange("r", Request("POST", "/mcp", "", Headers(), "127.0.0.1", "gw", body=b"{}"))
    reply = await _relay(_plain(200, "application/json", told)).serve(ex, server, CALL, None)
    assert reply.status == 200 and token.encode() not in reply.body and b"[redacted]" in reply.body
    # And in a stream's error event.
    event = {"jsonrpc": "2.0", "id": 7, "error": {"code": -32001, "message": f"token {token} rejected"}}
    streamed = relay.McpEvents(ex, server, _Answer([_event(event)]), CALL, None)
    batch = await streamed.next()
    assert batch is not None and token.encode() not in batch[0].raw and b"[redacted]" in batch[0].raw
