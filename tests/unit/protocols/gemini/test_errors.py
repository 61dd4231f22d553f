"""Gemini error bodies ↔ OpenAI's (protocols/gemini/errors.py), over the hand-written
transcripts in tests/fixtures/transcripts. No sockets."""

from __future__ import annotations

import orjson
import pytest

from tests.support.transcript_support import raw
from tollway.protocols.gemini.errors import retry_after
from tollway.protocols.registry import codec_for

G = codec_for("gemini")


def test_gemini_error_bodies_become_openai_ones() -> None:
    assert orjson.loads(G.error_to_pivot(400, raw("gemini", "error_400.json"))) == {
        "error": {
            "message": "API key not valid. Please pass a valid API key.",
            "type": "invalid_request_error",
            "code": "invalid_request_error",
            "param": None,
        }
    }
    limited = orjson.loads(G.error_to_pivot(429, raw("gemini", "error_429.json")))["error"]
    assert (limited["type"], limited["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    wrapped = b"[" + raw("gemini", "error_429.json") + b"]"  # streamGenerateContent without alt=sse
    assert orjson.loads(G.error_to_pivot(429, wrapped))["error"]["message"].startswith("Resource has been exhausted")
    assert orjson.loads(G.error_to_pivot(500, b"oops"))["error"]["message"] == "oops"


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (503, "UNAVAILABLE"),
    ],
)
def test_openai_error_bodies_become_gemini_ones(status: int, name: str) -> None:
    obj = orjson.loads(G.error_from_pivot(status, raw("openai", "error_401.json")))
    assert obj["error"]["code"] == status
    assert obj["error"]["status"] == name
    assert obj["error"]["message"].startswith("Incorrect API key provided")


@pytest.mark.parametrize(
    ("delay", "said"),
    [("6.2s", "7"), ("0s", "0"), ("86399.5s", "86400"), ("86401s", None), ("1e400s", None), ("nans", None),
     ("-3s", None), ("7", None), (7, None)],
)  # fmt: skip
def test_a_retry_delay_becomes_whole_seconds_or_nothing(delay: object, said: str | None) -> None:
    """RetryInfo's retryDelay as a Retry-After value: rounded up, a day at most; one no
    client should wait on (infinite, negative, not a duration) says nothing and raises
    nothing (an infinite one raised OverflowError out of the error's translation)."""
    body = orjson.dumps({"error": {"code": 429, "details": [{"@type": "x/google.rpc.RetryInfo", "retryDelay": delay}]}})
    assert retry_after(body) == said
