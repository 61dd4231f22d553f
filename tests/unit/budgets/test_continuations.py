"""``Continuations``: the input a Responses call carries by reference, for a budget's
hold: what the gateway answered before, or a large unseen context."""

from __future__ import annotations

import orjson

from tollway.budgets.continuations import UNSEEN_STATE_TOKENS, Continuations
from tollway.exchange import Exchange
from tollway.state.memory import MemoryStateStore
from tollway.testing.harness import make_exchange


def _call(**fields: object) -> Exchange:
    body = {"model": "gpt-4.1-mini", "input": "and then?", **fields}
    return make_exchange("POST", "/v1/responses", body=orjson.dumps(body))


def _answered(ex: Exchange, answer_id: str, tokens: tuple[int, int]) -> Exchange:
    ex.status, ex.answer_id = 200, answer_id
    ex.usage.input_tokens, ex.usage.output_tokens = tokens
    ex.usage.reported = True
    return ex


def test_a_response_or_conversation_the_gateway_answered_stands_for_its_tokens() -> None:
    seen = Continuations(MemoryStateStore())
    seen.remember_now(_answered(_call(conversation={"id": "conv_1"}), "resp_1", (1200, 57)))
    assert seen.hidden_now(_call(previous_response_id="resp_1")) == 1257
    assert seen.hidden_now(_call(conversation="conv_1")) == 1257
    # Both named: one context, counted once.
    assert seen.hidden_now(_call(previous_response_id="resp_1", conversation="conv_1")) == 1257
    # Answered later in the conversation: the larger count stands.
    seen.remember_now(_answered(_call(conversation="conv_1"), "resp_2", (1400, 60)))
    assert seen.hidden_now(_call(conversation="conv_1")) == 1460


def test_what_the_gateway_did_not_answer_is_held_as_a_large_unseen_context() -> None:
    seen = Continuations(MemoryStateStore())
    seen.remember_now(_answered(_call(), "resp_1", (10, 5)))
    assert seen.hidden_now(_call(previous_response_id="resp_elsewhere")) == UNSEEN_STATE_TOKENS
    assert seen.hidden_now(_call(previous_response_id="resp_1", conversation="conv_unknown")) == UNSEEN_STATE_TOKENS
    assert seen.hidden_now(_call(prompt={"id": "pmpt_1"})) == UNSEEN_STATE_TOKENS
    assert seen.hidden_now(_call()) == 0  # continues nothing
    chat = make_exchange("POST", "/v1/chat/completions", body=b'{"model": "m", "previous_response_id": "x"}')
    assert seen.hidden_now(chat) == 0  # only the Responses API continues by reference


def test_a_call_that_failed_or_reported_nothing_is_not_remembered() -> None:
    seen = Continuations(MemoryStateStore())
    failed = _answered(_call(), "resp_1", (10, 5))
    failed.status = 500
    unreported = _answered(_call(), "resp_2", (10, 5))
    unreported.usage.reported = False
    seen.remember_now(failed)
    seen.remember_now(unreported)
    assert seen.hidden_now(_call(previous_response_id="resp_1")) == UNSEEN_STATE_TOKENS
    assert seen.hidden_now(_call(previous_response_id="resp_2")) == UNSEEN_STATE_TOKENS
