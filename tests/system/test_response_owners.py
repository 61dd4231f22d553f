"""A stored response is its maker's (SPEC §9): through a real ``tollway serve`` and a fake
of OpenAI's Responses API, another consumer naming it (reading it back, its input items,
deleting it, or continuing it with ``previous_response_id``) gets what OpenAI says of an
id it does not know, and the provider is never asked."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.conftest import Proc
from tests.support.responses_provider import MODEL, ResponsesProvider

GatewayFactory = Callable[..., Proc]
ALICE = {"authorization": "Bearer key-alice"}
BOB = {"authorization": "Bearer key-bob"}


def _config(provider: ResponsesProvider) -> str:
    return f"""
providers: [{{id: openai, type: openai, baseUrl: "{provider.url}/v1", apiTokens: [sk-openai]}}]
routes: [{{name: v1, path_prefix: /v1/, provider: openai}}]
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{{name: alice, credential: key-alice}}, {{name: bob, credential: key-bob}}]
"""


def _refused_to(gw: Proc, provider: ResponsesProvider, response_id: str) -> None:
    """Every way bob could name alice's response is refused before the provider is asked."""
    asked = len(provider.paths)
    base = gw.url + f"/v1/responses/{response_id}"
    shouted = gw.url + f"/v1/Responses/{response_id}"
    for method, url in (
        ("GET", base),
        ("GET", base + "/input_items"),
        ("DELETE", base),
        ("POST", base + "/cancel"),
        ("GET", shouted),
    ):
        refused = httpx.request(method, url, headers=BOB)
        assert refused.status_code == 404, (method, url, refused.text)
        assert refused.headers["x-tollway-reason"] == "ai-proxy.not_owner"
        assert refused.json()["error"]["code"] == "response_not_found"
    continued = httpx.post(
        gw.url + "/v1/responses",
        json={"model": MODEL, "input": "go on", "previous_response_id": response_id},
        headers=BOB,
    )
    assert continued.status_code == 400 and continued.json()["error"]["code"] == "previous_response_not_found"
    assert len(provider.paths) == asked


@pytest.mark.parametrize("stream", [False, True])
def test_another_consumer_cannot_read_delete_or_continue_a_stored_response(
    gateway: GatewayFactory, fresh_responses_provider: ResponsesProvider, stream: bool
) -> None:
    # It was answered: bob, holding the id of alice's response, read her whole exchange,
    # deleted it, or continued her conversation with all it held.
    gw = gateway(_config(fresh_responses_provider))
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="key-alice", max_retries=0, timeout=10) as sdk:
        if stream:
            with sdk.responses.stream(model=MODEL, input="hi") as events:
                response_id = events.get_final_response().id
        else:
            response_id = sdk.responses.create(model=MODEL, input="hi").id
        # A stream's id is recorded as its response.completed passes, off the relay.
        deadline = time.monotonic() + 5
        while httpx.get(gw.url + f"/v1/responses/{response_id}", headers=BOB).status_code == 200:
            assert time.monotonic() < deadline, "bob still reads alice's response"
            time.sleep(0.05)
        _refused_to(gw, fresh_responses_provider, response_id)

        # Alice herself: all of it, and her continuation reaches the provider.
        assert sdk.responses.retrieve(response_id).id == response_id
        assert sdk.responses.create(model=MODEL, input="and then?", previous_response_id=response_id).id
    assert fresh_responses_provider.bodies[-1]["previous_response_id"] == response_id
    assert httpx.delete(gw.url + f"/v1/responses/{response_id}", headers=ALICE).status_code == 200


def test_a_streamed_response_is_its_makers_from_its_first_event(
    gateway: GatewayFactory, fresh_responses_provider: ResponsesProvider
) -> None:
    """A stream's id was recorded when response.completed passed: alice leaving after
    response.created (a background stream's usual use) left her response anyone's, read
    and continued by bob (a judge's High). It is hers from response.created."""
    gw = gateway(_config(fresh_responses_provider))
    body = {"model": MODEL, "input": "HOLD", "stream": True, "background": True}
    try:
        with httpx.stream("POST", gw.url + "/v1/responses", json=body, headers=ALICE, timeout=10) as r:
            lines = r.iter_lines()
            data = next(line for line in lines if line.startswith("data: "))  # response.created's
        response_id = json.loads(data[6:])["response"]["id"]
        deadline = time.monotonic() + 5  # (recorded off the relay)
        while httpx.get(gw.url + f"/v1/responses/{response_id}", headers=BOB).status_code == 200:
            assert time.monotonic() < deadline, "bob still reads alice's stream"
            time.sleep(0.05)
        _refused_to(gw, fresh_responses_provider, response_id)
    finally:
        fresh_responses_provider.released.set()


def test_a_background_response_is_its_makers_from_the_queued_answer(
    gateway: GatewayFactory, fresh_responses_provider: ResponsesProvider
) -> None:
    # A background call's answer is queued, with no usage: the id is recorded all the same,
    # so the polls other consumers could make of it are refused.
    gw = gateway(_config(fresh_responses_provider))
    made = httpx.post(gw.url + "/v1/responses", json={"model": MODEL, "input": "hi", "background": True}, headers=ALICE)
    assert made.status_code == 200 and made.json()["status"] == "queued", made.text
    _refused_to(gw, fresh_responses_provider, made.json()["id"])
    polled = httpx.get(gw.url + f"/v1/responses/{made.json()['id']}", headers=ALICE)
    assert polled.status_code == 200 and polled.json()["status"] == "completed"


def test_a_response_no_consumer_made_is_left_to_the_provider(
    gateway: GatewayFactory, fresh_responses_provider: ResponsesProvider
) -> None:
    # One made outside the gateway (or before it recorded responses): passed as before.
    gw = gateway(_config(fresh_responses_provider))
    read = httpx.get(gw.url + "/v1/responses/resp_made_elsewhere", headers=BOB)
    assert read.status_code == 200 and fresh_responses_provider.paths[-1] == "GET /v1/responses/resp_made_elsewhere"


def test_another_consumer_cannot_read_change_or_continue_a_conversation(
    gateway: GatewayFactory, fresh_responses_provider: ResponsesProvider
) -> None:
    # A conversation's items are every turn of it: bob, holding the id of alice's, read
    # them, added to them, deleted it, or answered in it with all it held.
    gw = gateway(_config(fresh_responses_provider))
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="key-alice", max_retries=0, timeout=10) as sdk:
        conversation = sdk.conversations.create()
        asked = len(fresh_responses_provider.paths)
        base = gw.url + f"/v1/conversations/{conversation.id}"
        item = {"items": [{"type": "message", "role": "user", "content": "hi"}]}
        for method, url, body in (
            ("GET", base, None),
            ("POST", base, {"metadata": {"k": "v"}}),
            ("DELETE", base, None),
            ("GET", base + "/items", None),
            ("POST", base + "/items", item),
            ("GET", base + "/items/msg_1", None),
            ("GET", gw.url + f"/v1/Conversations/{conversation.id}", None),
        ):
            refused = httpx.request(method, url, json=body, headers=BOB)
            assert refused.status_code == 404, (method, url, refused.text)
            assert refused.headers["x-tollway-reason"] == "ai-proxy.not_owner"
            assert refused.json()["error"]["code"] == "conversation_not_found"
        for named in (conversation.id, {"id": conversation.id}):
            answered = httpx.post(
                gw.url + "/v1/responses", json={"model": MODEL, "input": "go on", "conversation": named}, headers=BOB
            )
            assert answered.status_code == 400 and answered.json()["error"]["code"] == "conversation_not_found"
        assert len(fresh_responses_provider.paths) == asked

        # Alice herself: all of it.
        assert sdk.conversations.retrieve(conversation.id).id == conversation.id
        assert sdk.conversations.items.list(conversation.id).data == []
        assert sdk.responses.create(model=MODEL, input="and then?", conversation=conversation.id).id
    assert fresh_responses_provider.bodies[-1]["conversation"] == conversation.id


@pytest.mark.parametrize("stream", [False, True])
def test_another_consumer_cannot_name_a_stored_responses_items(
    gateway: GatewayFactory, fresh_responses_provider: ResponsesProvider, stream: bool
) -> None:
    # It was answered: bob, holding the id of an item of alice's stored response, put it
    # in his input by reference (OpenAI reads it from its store: her answer, her
    # reasoning) or added it to his own conversation.
    gw = gateway(_config(fresh_responses_provider))
    provider = fresh_responses_provider
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="key-alice", max_retries=0, timeout=10) as sdk:
        if stream:
            with sdk.responses.stream(model=MODEL, input="hi") as events:
                item_id = events.get_final_response().model_dump()["output"][0]["id"]
        else:
            item_id = sdk.responses.create(model=MODEL, input="hi").model_dump()["output"][0]["id"]
        conversation = sdk.conversations.create()
        added = sdk.conversations.items.create(
            conversation.id, items=[{"type": "message", "role": "user", "content": "my secret plan"}]
        )
        added_id = added.data[0].id
    bobs = httpx.post(gw.url + "/v1/conversations", json={}, headers=BOB).json()["id"]

    def bob_names(item: dict[str, object]) -> list[httpx.Response]:
        return [
            httpx.post(gw.url + "/v1/responses", json={"model": MODEL, "input": [item]}, headers=BOB),
            httpx.post(gw.url + f"/v1/conversations/{bobs}/items", json={"items": [item]}, headers=BOB),
        ]

    deadline = time.monotonic() + 5  # (a stream's items are recorded off the relay, at its end)
    while bob_names({"type": "item_reference", "id": item_id})[0].status_code == 200:
        assert time.monotonic() < deadline, "bob still names alice's item"
        time.sleep(0.05)
    asked = len(provider.paths)
    for named in (item_id, added_id):
        by_id: list[dict[str, object]] = [{"type": "item_reference", "id": named}, {"type": "reasoning", "id": named}]
        for item in by_id:
            for refused in bob_names(item):
                assert refused.status_code == 400, refused.text
                assert refused.headers["x-tollway-reason"] == "ai-proxy.not_owner"
                assert refused.json()["error"]["code"] == "item_not_found"
                assert named in refused.json()["error"]["message"]
    assert len(provider.paths) == asked, "the provider was asked"

    # Alice names her own; bob his own, and an item no consumer made.
    for key, named in (("key-alice", item_id), ("key-alice", added_id), ("key-bob", "msg_made_elsewhere")):
        answered = httpx.post(
            gw.url + "/v1/responses",
            json={"model": MODEL, "input": [{"type": "item_reference", "id": named}]},
            headers={"authorization": f"Bearer {key}"},
        )
        assert answered.status_code == 200, answered.text
        assert provider.bodies[-1]["input"] == [{"type": "item_reference", "id": named}]
    own = httpx.post(gw.url + "/v1/responses", json={"model": MODEL, "input": "hi"}, headers=BOB).json()
    again = bob_names({"type": "item_reference", "id": own["output"][0]["id"]})
    assert [r.status_code for r in again] == [200, 200]


def test_a_background_responses_items_are_its_makers_once_she_reads_them(
    gateway: GatewayFactory, fresh_responses_provider: ResponsesProvider
) -> None:
    # Its answer was queued, with no output: its items came with the read, and were
    # anyone's to name (a reviewer's finding).
    gw = gateway(_config(fresh_responses_provider))
    made = httpx.post(gw.url + "/v1/responses", json={"model": MODEL, "input": "hi", "background": True}, headers=ALICE)
    assert made.status_code == 200 and made.json()["output"] == []
    read = httpx.get(gw.url + f"/v1/responses/{made.json()['id']}", headers=ALICE)
    item_id = read.json()["output"][0]["id"]
    reference = {"model": MODEL, "input": [{"type": "item_reference", "id": item_id}]}
    refused = httpx.post(gw.url + "/v1/responses", json=reference, headers=BOB)
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "item_not_found")
    assert httpx.post(gw.url + "/v1/responses", json=reference, headers=ALICE).status_code == 200
