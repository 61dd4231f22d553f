"""A read of a stored response tells the usage of the run that made it (SPEC §9: each
call's tokens, exactly once). Through a real `tollway serve` and a fake of OpenAI's
Responses API: a response the client waited for is counted by its own call, never by
the reads of it; a background run, answered ``queued`` with no usage, is counted by the
first read that finds it finished, once, whichever replica serves the reads."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Proc
from tests.support.mcp_support import records
from tests.support.redis_support import redis_prefix, redis_url  # noqa: F401
from tests.support.responses_provider import (
    ANSWERED_BY,
    MODEL,
    USAGE,
    ResponsesProvider,
)

GatewayFactory = Callable[..., Proc]
_AUTH = {"authorization": "Bearer key-alice"}


def _config(provider: ResponsesProvider, state: str) -> str:
    return f"""
storage: {{state: "{state}"}}
providers: [{{id: openai, type: openai, baseUrl: "{provider.url}/v1", apiTokens: [sk-openai]}}]
routes: [{{name: v1, path_prefix: /v1/, provider: openai}}]
plugins:
  - name: key-auth
    defaultConfig: {{keys: [authorization], consumers: [{{name: alice, credential: key-alice}}]}}
"""


def _all_records(gateways: list[Proc], count: int) -> list[dict[str, Any]]:
    """Every record the gateways wrote (one database or several), once each, waiting for
    ``count`` of them (records are written in batches, off the request path)."""
    deadline = time.monotonic() + 10
    while True:
        found = {r["request_id"]: r for gw in gateways for r in records(gw.admin_url)}
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(found.values(), key=lambda r: r["ts"])
        time.sleep(0.1)


def test_reading_a_response_back_counts_no_tokens_again(
    gateway: GatewayFactory, fresh_responses_provider: ResponsesProvider
) -> None:
    gw = gateway(_config(fresh_responses_provider, "memory"))
    made = httpx.post(gw.url + "/v1/responses", json={"model": MODEL, "input": "hi"}, headers=_AUTH)
    assert made.status_code == 200, made.text
    for _ in range(3):
        read = httpx.get(gw.url + f"/v1/responses/{made.json()['id']}", headers=_AUTH)
        assert read.status_code == 200 and read.json()["usage"] == USAGE
    deleted = httpx.delete(gw.url + f"/v1/responses/{made.json()['id']}", headers=_AUTH)
    assert deleted.status_code == 200
    got = _all_records([gw], 5)
    # Reads (and the delete) are the Responses API's calls too (they were "other", so a
    # background run's tokens, told by its first read, were summed under "other"); they
    # make nothing, so none is estimated.
    assert [(r["api"], r["input_tokens"], r["output_tokens"], r["tokens_estimated"]) for r in got] == [
        ("responses", USAGE["input_tokens"], USAGE["output_tokens"], False)
    ] + [("responses", 0, 0, False)] * 4


@pytest.mark.parametrize("replicas", [1, 2])
def test_a_background_run_is_counted_by_the_first_read_that_finds_it_finished(
    gateway: GatewayFactory,
    fresh_responses_provider: ResponsesProvider,
    redis_url: str,  # noqa: F811
    replicas: int,
) -> None:
    # Two replicas share their claims through Redis: the second replica's read is a
    # later read, and counts nothing.
    gws = [gateway(_config(fresh_responses_provider, redis_url), name=f"tollway-{i}.yaml") for i in range(replicas)]
    made = httpx.post(
        gws[0].url + "/v1/responses", json={"model": MODEL, "input": "hi", "background": True}, headers=_AUTH
    )
    assert made.status_code == 200 and made.json()["status"] == "queued", made.text
    for i in range(3):
        read = httpx.get(gws[i % replicas].url + f"/v1/responses/{made.json()['id']}", headers=_AUTH)
        assert read.status_code == 200 and read.json()["status"] == "completed"
    got = _all_records(gws, 4)
    assert len(got) == 4
    assert (got[0]["input_tokens"], got[0]["output_tokens"]) == (0, 0)  # queued: nothing told yet
    first = got[1]
    assert (first["input_tokens"], first["output_tokens"]) == (USAGE["input_tokens"], USAGE["output_tokens"])
    assert (first["consumer"], first["api"], first["model_upstream"]) == ("alice", "responses", ANSWERED_BY)
    assert first["cost_usd"] is not None and first["cost_usd"] > 0  # priced by the model that ran it
    assert [(r["input_tokens"], r["output_tokens"]) for r in got[2:]] == [(0, 0), (0, 0)]


def test_a_background_run_streamed_as_it_was_made_is_counted_by_that_call_alone(
    gateway: GatewayFactory, fresh_responses_provider: ResponsesProvider
) -> None:
    # Its stream told its usage to the call that started it; the read after that
    # counted it a second time.
    gw = gateway(_config(fresh_responses_provider, "memory"))
    made = {"model": MODEL, "input": "hi", "background": True, "stream": True}
    with httpx.stream("POST", gw.url + "/v1/responses", json=made, headers=_AUTH) as streamed:
        assert streamed.status_code == 200
        text = "".join(streamed.iter_text())
    assert "response.completed" in text
    read = httpx.get(gw.url + "/v1/responses/resp_1", headers=_AUTH)
    assert read.status_code == 200 and read.json()["status"] == "completed"
    got = _all_records([gw], 2)
    assert [(r["input_tokens"], r["output_tokens"]) for r in got] == [
        (USAGE["input_tokens"], USAGE["output_tokens"]),
        (0, 0),
    ]


def test_a_read_streamed_counts_no_tokens(gateway: GatewayFactory, fresh_responses_provider: ResponsesProvider) -> None:
    gw = gateway(_config(fresh_responses_provider, "memory"))
    made = httpx.post(gw.url + "/v1/responses", json={"model": MODEL, "input": "hi"}, headers=_AUTH)
    assert made.status_code == 200
    with httpx.stream("GET", gw.url + "/v1/responses/resp_1?stream=true", headers=_AUTH) as streamed:
        assert streamed.status_code == 200 and "response.completed" in "".join(streamed.iter_text())
    got = _all_records([gw], 2)
    assert [(r["input_tokens"], r["output_tokens"]) for r in got] == [
        (USAGE["input_tokens"], USAGE["output_tokens"]),
        (0, 0),
    ]
