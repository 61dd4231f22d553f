"""Anthropic error bodies ↔ OpenAI's (protocols/anthropic/errors.py), over the hand-written
transcripts in tests/fixtures/transcripts. No sockets: the SDK checks run the real SDKs over
``httpx2.MockTransport`` (the SDKs' own httpx fork)."""

from __future__ import annotations

import anthropic
import httpx2
import orjson
import pytest

from tests.support.transcript_support import raw
from tollway.protocols.registry import codec_for

A = codec_for("anthropic")


def test_an_anthropic_error_body_becomes_an_openai_one() -> None:
    body = A.error_to_pivot(529, raw("anthropic", "error_overloaded.json"))
    assert orjson.loads(body) == {
        "error": {"message": "Overloaded", "type": "api_error", "code": "upstream_error", "param": None}
    }
    rate = A.error_to_pivot(429, b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}')
    assert orjson.loads(rate)["error"] == {
        "message": "slow down",
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
        "param": None,
    }
    assert (
        orjson.loads(A.error_to_pivot(502, b"<html>Bad gateway</html>"))["error"]["message"]
        == "<html>Bad gateway</html>"
    )


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_an_openai_error_body_becomes_an_anthropic_one(status: int, etype: str) -> None:
    body = A.error_from_pivot(status, raw("openai", "error_401.json"))
    obj = orjson.loads(body)
    assert obj["type"] == "error"
    assert obj["error"]["type"] == etype
    assert obj["error"]["message"].startswith("Incorrect API key provided")
    anthropic.types.ErrorResponse.model_validate(obj)


def test_the_anthropic_sdk_shows_a_translated_error() -> None:
    body = A.error_from_pivot(401, raw("openai", "error_401.json"))

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(401, headers={"content-type": "application/json"}, content=body)

    with httpx2.Client(transport=httpx2.MockTransport(answer)) as http:
        client = anthropic.Anthropic(api_key="k", base_url="http://provider.test", http_client=http, max_retries=0)
        with pytest.raises(anthropic.AuthenticationError, match="Incorrect API key provided"):
            client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
