"""ai-cache through real gateway processes, with the OpenAI and Anthropic SDKs as clients
(SPEC §11): the same request twice costs the provider one call and the second answer is
the same in content and shape (plain and streamed), recorded as a hit with cost 0 and
what it saved; scope keeps consumers apart; a stream cut short is never stored; a
paraphrase within the threshold hits the semantic cache and another question does not;
two processes share exact entries through Redis and semantic ones through the database.

The chat provider is the recording fake (it counts the calls); the embeddings provider
a fake whose vectors put paraphrases close (``embedding_provider``). An answer is stored
after the client has it, so each test waits for the first call's usage record (written
after every plugin's ``done``) before asking again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import GatewayFactory, Proc
from tests.support.embedding_provider import EmbeddingProvider
from tests.support.fake_provider import FakeProvider, new_request_id, serve_gateway, usage_record
from tests.support.redis_support import redis_prefix, redis_url  # noqa: F401  (fixtures)

CONFIG = """
storage: {{database: "{database}", state: "{state}"}}
providers:
  - {{id: oai, type: openai, baseUrl: "{fake}/v1", apiTokens: [sk-oai]}}
  - {{id: ant, type: claude, baseUrl: "{fake}", apiTokens: [sk-ant]}}
  - {{id: emb, type: openai, baseUrl: "{emb}/v1", apiTokens: [sk-emb]}}
routes:
  - {{name: chat, path_prefix: /v1/, provider: oai, model_providers: {{"claude-*": ant}}}}
  - {{name: personal, path_prefix: /personal/v1/, provider: oai}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization, x-api-key]
      consumers: [{{name: alice, credential: key-alice}}, {{name: bob, credential: key-bob}}]
  - name: ai-cache
    defaultConfig:
      semantic: {{provider: emb, model: text-embedding-3-small, threshold: 0.85, sync_s: 0}}
    matchRules:
      - ingress: [personal]
        config: {{scope: consumer}}
"""


def config(fake: FakeProvider, emb: EmbeddingProvider, database: str, state: str = "memory") -> str:
    return CONFIG.format(fake=fake.url, emb=emb.url, database=database, state=state)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def emb() -> Iterator[EmbeddingProvider]:
    with EmbeddingProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def gw(fake: FakeProvider, emb: EmbeddingProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = serve_gateway(tmp_path_factory.mktemp("ai-cache"), config(fake, emb, "sqlite:///./tollway.db"))
    yield proc
    assert proc.stop() == 0


# Every SDK client a test makes, closed after it: a client left to the garbage collector
# leaves its pooled sockets unclosed (a ResourceWarning that fails the run).
_CLIENTS: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def openai_sdk(gw: Proc, key: str = "key-alice", prefix: str = "") -> openai.OpenAI:
    client = openai.OpenAI(base_url=f"{gw.url}{prefix}/v1", api_key=key, max_retries=0, timeout=10)
    _CLIENTS.append(client)
    return client


def anthropic_sdk(gw: Proc) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=gw.url, api_key="key-alice", max_retries=0, timeout=10)
    _CLIENTS.append(client)
    return client


def chat_calls(fake: FakeProvider) -> int:
    return sum(1 for s in fake.seen if s.path.endswith(("/chat/completions", "/messages")))


def question() -> str:
    """A question no other test asks, nor anything close to it (the gateway is shared by
    the module, and its semantic cache compares words: six of the question's own outweigh
    the words it shares with the others)."""
    words = " ".join(uuid.uuid4().hex[:8] for _ in range(6))
    return f"{words}: what is the capital of France?"


def ask(client: openai.OpenAI, text: str, **headers: str) -> tuple[str, Any]:
    """One chat call; its request id and raw response."""
    rid = new_request_id()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        extra_headers={"x-request-id": rid, **headers},
    )
    return rid, raw


def streamed(client: openai.OpenAI, text: str, rid: str) -> Iterator[Any]:
    """A streamed chat call's chunks, as the SDK reads them."""
    with client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        stream=True,
        extra_headers={"x-request-id": rid},
    ) as stream:
        yield from stream


def test_the_same_request_twice_costs_one_call_and_answers_the_same(gw: Proc, fake: FakeProvider) -> None:
    client, text = openai_sdk(gw), question()
    before = chat_calls(fake)
    first_id, first = ask(client, text)
    first_record = usage_record(gw, first_id)
    second_id, second = ask(client, text)
    assert chat_calls(fake) - before == 1
    assert (first.headers["x-tollway-cache"], second.headers["x-tollway-cache"]) == ("miss", "hit")
    assert second.parse().model_dump() == first.parse().model_dump()
    record = usage_record(gw, second_id)
    assert first_record["cache"] == "miss" and first_record["cost_usd"] > 0
    assert record["cache"] == "hit" and record["status"] == 200 and record["cost_usd"] == 0
    assert record["cost_saved_usd"] == pytest.approx(first_record["cost_usd"])
    assert (record["input_tokens"], record["output_tokens"]) == (
        first_record["input_tokens"],
        first_record["output_tokens"],
    )
    assert record["attempts"] == [] and record["provider"] is None and record["consumer"] == "alice"


def test_a_stream_twice_costs_one_call_and_streams_the_same(gw: Proc, fake: FakeProvider) -> None:
    client, text = openai_sdk(gw), question()
    before = chat_calls(fake)
    streams = []
    for _ in range(2):
        rid = new_request_id()
        streams.append([c.model_dump() for c in streamed(client, text, rid)])
        usage_record(gw, rid)
    assert chat_calls(fake) - before == 1
    assert streams[1] == streams[0] and "".join(c["choices"][0]["delta"]["content"] or "" for c in streams[1])
    record = usage_record(gw, rid)
    assert record["cache"] == "hit" and record["stream"] is True and record["cost_usd"] == 0


def test_a_whole_answer_is_streamed_to_a_client_asking_for_a_stream(gw: Proc, fake: FakeProvider) -> None:
    client, text = openai_sdk(gw), question()
    rid, whole = ask(client, text)
    usage_record(gw, rid)
    before = chat_calls(fake)
    text_streamed = "".join(c.choices[0].delta.content or "" for c in streamed(client, text, new_request_id()))
    assert chat_calls(fake) == before
    assert text_streamed == whole.parse().choices[0].message.content


def test_the_anthropic_sdk_gets_hits_in_its_own_shape_plain_and_streamed(gw: Proc, fake: FakeProvider) -> None:
    client, text = anthropic_sdk(gw), question()
    before = chat_calls(fake)
    rid = new_request_id()
    messages = [{"role": "user", "content": text}]
    asked: dict[str, Any] = {"model": "claude-sonnet-4", "max_tokens": 64, "messages": messages}
    first = client.messages.create(**asked, extra_headers={"x-request-id": rid})
    paid = usage_record(gw, rid)
    hit_id = new_request_id()
    second = client.messages.create(**asked, extra_headers={"x-request-id": hit_id})
    with client.messages.stream(**asked) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert chat_calls(fake) - before == 1
    assert second.model_dump() == first.model_dump()
    assert streamed == "".join(b.text for b in first.content if b.type == "text")
    assert final.usage.output_tokens == first.usage.output_tokens
    # The hit saved what the call cost: its prompt-cache reads priced as such.
    saved = usage_record(gw, hit_id)
    assert paid["cost_usd"] > 0 and saved["cost_usd"] == 0 and saved["cost_saved_usd"] == paid["cost_usd"]


def test_scope_consumer_keeps_consumers_apart(gw: Proc, fake: FakeProvider) -> None:
    text = question()
    alice, bob = openai_sdk(gw, "key-alice", "/personal"), openai_sdk(gw, "key-bob", "/personal")
    before = chat_calls(fake)
    rid, first = ask(alice, text)
    usage_record(gw, rid)
    rid, other = ask(bob, text)
    usage_record(gw, rid)
    _, again = ask(alice, text)
    assert chat_calls(fake) - before == 2
    assert (first.headers["x-tollway-cache"], other.headers["x-tollway-cache"]) == ("miss", "miss")
    assert again.headers["x-tollway-cache"] == "hit"


@pytest.mark.parametrize("fault", ["drop", "cut", "error"])
def test_a_stream_the_provider_ends_early_or_fails_in_is_a_502_and_never_stored(
    gw: Proc, fake: FakeProvider, fault: str
) -> None:
    """A provider that drops the connection mid-stream, a body that ends cleanly before
    the stream's last event (no transport error says so, the stream does), or an error
    event of the provider's own mid-stream: a 502, and nothing stored (SPEC §4, §11)."""
    text = question()
    before = chat_calls(fake)
    fake.next_answers(fault)  # type: ignore[arg-type]
    rid = new_request_id()
    with openai_sdk(gw) as client:
        with pytest.raises(openai.APIError):
            for _ in streamed(client, text, rid):
                pass
        record = usage_record(gw, rid)
        assert (record["status"], record["reason"]) == (502, "ai-proxy.bad_upstream_response")
        rid, after = ask(client, text)
    assert after.headers["x-tollway-cache"] == "miss" and chat_calls(fake) - before == 2


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_a_200_that_holds_an_error_is_never_stored(gw: Proc, fake: FakeProvider, client: str) -> None:
    """A provider (or a proxy before it) answering 200 with an error object: the client
    gets it as it came, and nothing is stored to be served to others for the whole TTL
    (a judge's Medium: it was, as a hit with a saving)."""
    text = question()
    before = chat_calls(fake)
    fake.next_answers("error200")
    if client == "openai":
        first = httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": "Bearer key-alice"},
                           json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})  # fmt: skip
        _, again = ask(openai_sdk(gw), text)
        assert again.parse().choices[0].message.content
    else:
        first = httpx.post(gw.url + "/v1/messages", headers={"x-api-key": "key-alice"},
                           json={"model": "claude-sonnet-4-5", "max_tokens": 50,
                                 "messages": [{"role": "user", "content": text}]})  # fmt: skip
        with anthropic_sdk(gw) as sdk:
            again = sdk.messages.with_raw_response.create(
                model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": text}]
            )
        assert again.parse().content
    assert first.status_code == 200 and "error" in first.json()
    assert first.headers["x-tollway-cache"] == "miss" and again.headers["x-tollway-cache"] == "miss"
    assert chat_calls(fake) - before == 2


@pytest.mark.parametrize("fault", ["cut", "error"])
def test_a_translated_stream_ended_early_is_no_whole_answer_to_an_anthropic_client(
    gw: Proc, fake: FakeProvider, fault: str
) -> None:
    """An OpenAI provider's stream cut short reaches an Anthropic client as an error
    event, not as a message_stop the gateway made up; nothing is stored."""
    text = question()
    before = chat_calls(fake)
    fake.next_answers(fault)  # type: ignore[arg-type]
    rid = new_request_id()
    kinds: list[str] = []
    with anthropic_sdk(gw) as sdk:
        with pytest.raises(anthropic.APIError):
            with sdk.messages.stream(
                model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": text}],
                extra_headers={"x-request-id": rid},
            ) as stream:  # fmt: skip
                kinds.extend(event.type for event in stream)
        assert "message_stop" not in kinds
        assert usage_record(gw, rid)["status"] == 502
        again = sdk.messages.with_raw_response.create(
            model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": text}]
        )
    assert again.headers["x-tollway-cache"] == "miss" and chat_calls(fake) - before == 2


@pytest.mark.parametrize("streamed", [False, True])
def test_a_translated_answer_that_never_said_it_finished_is_never_stored(
    gw: Proc, fake: FakeProvider, streamed: bool
) -> None:
    """An OpenAI provider's answer with no finish reason reaches an Anthropic client with
    the ``end_turn`` its protocol must say; a judge found it then stored and replayed as
    a whole answer, where the same answer to a chat client was (rightly) not."""
    text = question()
    before = chat_calls(fake)
    fake.next_answers("nofinish")
    messages: Any = [{"role": "user", "content": text}]
    with anthropic_sdk(gw) as sdk:
        if streamed:
            with sdk.messages.stream(model="gpt-4o-mini", max_tokens=50, messages=messages) as stream:
                assert stream.get_final_message().content
        else:
            assert sdk.messages.create(model="gpt-4o-mini", max_tokens=50, messages=messages).content
        again = sdk.messages.with_raw_response.create(model="gpt-4o-mini", max_tokens=50, messages=messages)
    assert again.headers["x-tollway-cache"] == "miss" and chat_calls(fake) - before == 2


def test_a_paraphrase_hits_the_semantic_cache_and_another_question_does_not(
    gw: Proc, fake: FakeProvider, emb: EmbeddingProvider
) -> None:
    client, ticket = openai_sdk(gw), uuid.uuid4().hex
    before, embedded = chat_calls(fake), emb.calls
    rid, first = ask(client, f"Ticket {ticket}: what is the capital of France?")
    usage_record(gw, rid)
    rid, paraphrase = ask(client, f"ticket {ticket} - What is the capital city of France")
    record = usage_record(gw, rid)
    _, other = ask(client, f"Ticket {ticket}: how do I bake sourdough bread at home?")
    assert paraphrase.headers["x-tollway-cache"] == "hit" and other.headers["x-tollway-cache"] == "miss"
    assert paraphrase.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert chat_calls(fake) - before == 2 and emb.calls - embedded == 3
    assert record["cache"] == "semantic" and record["cost_usd"] == 0 and record["cost_saved_usd"] > 0
    # The embeddings call is a record of its own, on the same route and consumer.
    embedding = usage_record(gw, f"{rid}.embeddings")
    assert embedding["api"] == "embeddings" and embedding["provider"] == "emb" and embedding["consumer"] == "alice"
    assert embedding["model_upstream"] == "text-embedding-3-small" and embedding["input_tokens"] > 0
    assert embedding["cost_usd"] > 0 and embedding["cache"] is None


def test_cache_control_no_cache_skips_the_lookup(gw: Proc, fake: FakeProvider) -> None:
    client, text = openai_sdk(gw), question()
    rid, _ = ask(client, text)
    usage_record(gw, rid)
    before = chat_calls(fake)
    rid, skipped = ask(client, text, **{"cache-control": "no-cache"})
    assert skipped.headers["x-tollway-cache"] == "miss" and chat_calls(fake) == before + 1
    assert usage_record(gw, rid)["cache"] == "skip"


def test_an_answer_made_under_no_cache_is_stored_for_paraphrases_too(
    gw: Proc, fake: FakeProvider, emb: EmbeddingProvider
) -> None:
    """``no-cache`` skips the lookup, not the store: the fresh answer goes into the
    semantic index as well as under its exact key (its prompt embedded after the answer)."""
    client, ticket = openai_sdk(gw), uuid.uuid4().hex
    before, embedded = chat_calls(fake), emb.calls
    rid, fresh = ask(client, f"Ticket {ticket}: what is the capital of France?", **{"cache-control": "no-cache"})
    assert usage_record(gw, rid)["cache"] == "skip"
    assert usage_record(gw, f"{rid}.embeddings")["api"] == "embeddings"  # the embedding is recorded
    rid, paraphrase = ask(client, f"ticket {ticket} - What is the capital city of France")
    assert paraphrase.headers["x-tollway-cache"] == "hit" and usage_record(gw, rid)["cache"] == "semantic"
    assert paraphrase.parse().choices[0].message.content == fresh.parse().choices[0].message.content
    assert chat_calls(fake) - before == 1 and emb.calls - embedded == 2


def test_the_metric_counts_each_outcome(gw: Proc) -> None:
    client, text = openai_sdk(gw), question()
    rid, _ = ask(client, text)
    usage_record(gw, rid)
    rid, _ = ask(client, text)
    usage_record(gw, rid)
    metrics = httpx.get(gw.admin_url + "/metrics", timeout=10).text
    assert 'tollway_cache_requests_total{result="hit"}' in metrics
    assert 'tollway_cache_requests_total{result="miss"}' in metrics


# --- two processes ------------------------------------------------------------------------


def test_two_processes_share_exact_entries_through_redis(
    gateway: GatewayFactory,
    fake: FakeProvider,
    emb: EmbeddingProvider,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    cfg = config(fake, emb, f"sqlite:///{tmp_path / 'shared.db'}", redis_url)
    one, two = gateway(cfg, name="one.yaml"), gateway(cfg, name="two.yaml")
    text = question()
    before = chat_calls(fake)
    rid, first = ask(openai_sdk(one), text)
    usage_record(one, rid)
    rid, second = ask(openai_sdk(two), text)
    assert second.headers["x-tollway-cache"] == "hit" and chat_calls(fake) - before == 1
    assert second.parse().model_dump() == first.parse().model_dump()
    assert usage_record(two, rid)["cache"] == "hit"


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_two_processes_share_semantic_entries_through_the_database(
    database: str,
    gateway: GatewayFactory,
    fake: FakeProvider,
    emb: EmbeddingProvider,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}" if database == "sqlite" else request.getfixturevalue("pg_url")
    cfg = config(fake, emb, url)  # exact entries in each process's memory: only the database is shared
    one, two = gateway(cfg, name="one.yaml"), gateway(cfg, name="two.yaml")
    ticket = uuid.uuid4().hex
    before = chat_calls(fake)
    rid, first = ask(openai_sdk(one), f"Ticket {ticket}: what is the capital of France?")
    usage_record(one, rid)
    rid, paraphrase = ask(openai_sdk(two), f"ticket {ticket} - What is the capital city of France")
    assert paraphrase.headers["x-tollway-cache"] == "hit" and chat_calls(fake) - before == 1
    assert paraphrase.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert usage_record(two, rid)["cache"] == "semantic"


BUDGETED = """
storage: {{database: "sqlite:///./tollway.db", state: memory}}
pricing:
  gpt-4o-mini: {{input_per_mtok: 1000, output_per_mtok: 1000}}
  text-embedding-3-small: {{input_per_mtok: 100, output_per_mtok: 0}}
providers:
  - {{id: oai, type: openai, baseUrl: "{mock}/v1", apiTokens: [sk-oai]}}
  - {{id: emb, type: openai, baseUrl: "{emb}/v1", apiTokens: [sk-emb]}}
routes: [{{name: chat, path_prefix: /v1/, provider: oai}}]
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers:
        - {{name: carol, credential: key-carol, budget: {{usd: 1, period: day}}}}
        - {{name: dave, credential: key-dave, budget: {{usd: 0.05, period: day}}}}
        - {{name: solo, credential: key-solo, budget: {{usd: 1, period: day}}, max_parallel: 1}}
  - name: ai-cache
    defaultConfig:
      scope: consumer
      semantic: {{provider: emb, model: text-embedding-3-small, threshold: 0.99, sync_s: 0}}
"""


def test_the_semantic_caches_embeddings_calls_are_held_to_the_budget_and_counted_in_its_spend(
    gateway: GatewayFactory, mock_llm: Proc, emb: EmbeddingProvider
) -> None:
    """The embeddings call of a lookup is paid for: its record has a cost, and the budget
    counted none of it, so spend and records disagreed and a consumer out of budget ran
    up embeddings charges call after call (a judge's High). It is held like any call and
    counted as soon as it ends; past the budget it is not made."""
    gw = gateway(BUDGETED.format(mock=mock_llm.url, emb=emb.url))  # (the mock model keeps to max_tokens)
    client = openai_sdk(gw, key="key-carol")
    outcomes, embedded = [], []
    for i in range(60):
        text = f"{uuid.uuid4().hex} question {i}: " + "tell me about the weather " * 40
        try:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": text}], max_tokens=10
            )
            outcomes.append("served")
        except openai.PermissionDeniedError as exc:
            assert exc.response.headers["x-tollway-reason"] == "budget.exceeded"
            outcomes.append("refused")
        embedded.append(emb.calls)
    # The chat calls (dear) are refused first; the lookups (cheap) are not made for them
    # (the call is held first, below), and none once the budget has no room for one.
    assert outcomes[0] == "served" and outcomes[-10:] == ["refused"] * 10, outcomes
    assert embedded[-10:] == [embedded[-10]] * 10, embedded
    # A call its budget can never afford (up to $4 where dave has $0.05) is refused before
    # its lookup: a judge found each try paying for an embedding of its own.
    before = emb.calls
    for _ in range(5):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            openai_sdk(gw, key="key-dave").chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": uuid.uuid4().hex}], max_tokens=4000
            )
        assert refused.value.response.headers["x-tollway-reason"] == "budget.exceeded"
        assert "x-tollway-cache" not in refused.value.response.headers
    assert emb.calls == before
    [dave] = httpx.get(gw.admin_url + "/api/consumers/dave").json()["spend"]
    assert dave["spend_usd"] == 0
    # The call held first counts as running; its embedding is part of it, not a second
    # call in flight (max_parallel 1 refused every lookup: a reviewer's finding).
    before = emb.calls
    answer = openai_sdk(gw, key="key-solo").chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": uuid.uuid4().hex}], max_tokens=10
    )
    assert answer.choices[0].message.content and emb.calls == before + 1
    records = httpx.get(gw.admin_url + "/api/requests", params={"consumer": "carol", "limit": "1000"}).json()
    costs = [r["cost_usd"] or 0.0 for r in records["requests"]]
    embeddings = [r for r in records["requests"] if r["api"] == "embeddings"]
    assert embeddings and all(r["cost_usd"] > 0 for r in embeddings)
    [spend] = httpx.get(gw.admin_url + "/api/consumers/carol").json()["spend"]
    assert abs(spend["spend_usd"] - sum(costs)) < 1e-9  # the spend is the records' sum
    assert spend["spend_usd"] <= 1.0
