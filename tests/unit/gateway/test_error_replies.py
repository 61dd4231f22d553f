"""The event that ends a stream the gateway could not finish (gateway/error_replies.py):
in the client's protocol, and none when the provider's own error event went out."""

from __future__ import annotations

import orjson

from tollway.errors import UpstreamError, UpstreamStreamFailed, UpstreamTimeout
from tollway.gateway.error_replies import render_stream_error

BROKE = UpstreamError("provider 'up' failed: connection reset", reason="ai-proxy.bad_upstream_response")


def test_each_protocol_gets_its_own_error_event() -> None:
    chat = render_stream_error(BROKE, "openai", "/chat/completions")
    assert chat.startswith(b"data: ") and orjson.loads(chat[6:])["error"]["code"] == "upstream_error"
    messages = render_stream_error(BROKE, "anthropic", "/messages")
    assert messages.startswith(b"event: error\ndata: ") and orjson.loads(messages[19:])["type"] == "error"
    responses = render_stream_error(BROKE, "openai", "/responses")
    assert responses.startswith(b"event: error\ndata: ")
    event = orjson.loads(responses[19:])
    assert (event["type"], event["code"], event["message"]) == ("error", "upstream_error", BROKE.message)


def test_nothing_follows_the_providers_own_error_event() -> None:
    failed = UpstreamStreamFailed(
        "provider 'up' failed mid-stream: overloaded", reason="ai-proxy.bad_upstream_response"
    )
    assert render_stream_error(failed, "openai", "/chat/completions") == b""
    assert render_stream_error(failed, "anthropic", "/messages") == b""


def test_an_anthropic_stream_that_timed_out_ends_with_a_timeout_error() -> None:
    """Anthropic's API types a 504 ``timeout_error``; a stream cut by the same timeout says so too."""
    silent = UpstreamTimeout("provider 'up' timed out: nothing for 2s", reason="ai-proxy.upstream_timeout")
    event = orjson.loads(render_stream_error(silent, "anthropic", "/messages")[19:])
    assert event["error"]["type"] == "timeout_error"
    assert orjson.loads(render_stream_error(BROKE, "anthropic", "/messages")[19:])["error"]["type"] == "api_error"
