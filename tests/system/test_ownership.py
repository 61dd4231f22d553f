"""Files and batches belong to the consumer that created them (SPEC §9): the provider
account holds everyone's, and another consumer listing or fetching them gets only its
own, 404 for another's id. The OpenAI SDK is the client; the provider a fake of OpenAI's
files and batches API (tests/support/files_provider.py) holding every upload together.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import new_request_id, serve_gateway, usage_record
from tests.support.files_provider import FilesProvider

BATCH_LINE = orjson.dumps(
    {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}}
)  # fmt: skip


@pytest.fixture(scope="module")
def provider() -> Iterator[FilesProvider]:
    with FilesProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(provider: FilesProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers: [{{id: openai, type: openai, baseUrl: "{provider.url}/v1", apiTokens: [sk-org]}}]
routes:
  - {{name: v1, path_prefix: /v1/, provider: openai}}
  - {{name: open, path_prefix: /open/v1/, provider: openai}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{{name: ann, credential: k-ann}}, {{name: bob, credential: k-bob}}]
    matchRules: [{{ingress: [v1], config: {{allow: [ann, bob]}}}}]
"""
    proc = serve_gateway(tmp_path_factory.mktemp("ownership"), config)
    yield proc
    assert proc.stop() == 0


def _sdk(gw: Proc, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=10)


def test_a_consumer_lists_and_fetches_only_its_own_files(gw: Proc, provider: FilesProvider) -> None:
    with _sdk(gw, "k-ann") as ann, _sdk(gw, "k-bob") as bob:
        ann_file = ann.files.create(file=("ann.jsonl", BATCH_LINE), purpose="batch")
        bob_file = bob.files.create(file=("bob.jsonl", BATCH_LINE), purpose="batch")
        assert set(provider.files) >= {ann_file.id, bob_file.id}  # one account holds both

        assert [f.id for f in ann.files.list()] == [ann_file.id]
        assert [f.id for f in bob.files.list()] == [bob_file.id]
        assert ann.files.retrieve(ann_file.id).filename == "ann.jsonl"
        assert ann.files.content(ann_file.id).content == BATCH_LINE

        asked = len(provider.seen)
        rid = new_request_id()
        with pytest.raises(openai.NotFoundError) as caught:
            bob.files.retrieve(ann_file.id, extra_headers={"x-request-id": rid})
        with pytest.raises(openai.NotFoundError):
            bob.files.content(ann_file.id)
        with pytest.raises(openai.NotFoundError):
            bob.files.delete(ann_file.id)
        assert len(provider.seen) == asked  # another's id is asked of no provider
    assert caught.value.response.headers["x-tollway-reason"] == "ai-proxy.not_owner"
    assert ann_file.id in caught.value.message
    record = usage_record(gw, rid)
    assert (record["status"], record["consumer"], record["api"]) == (404, "bob", "files")


def test_batches_and_their_output_files_are_the_creators(gw: Proc, provider: FilesProvider) -> None:
    with _sdk(gw, "k-ann") as ann, _sdk(gw, "k-bob") as bob:
        ann_input = ann.files.create(file=("in.jsonl", BATCH_LINE), purpose="batch")
        batch = ann.batches.create(input_file_id=ann_input.id, endpoint="/v1/chat/completions", completion_window="24h")
        # Bob may not run a batch from Ann's file, nor see, poll or cancel Ann's batch.
        with pytest.raises(openai.NotFoundError) as caught:
            bob.batches.create(input_file_id=ann_input.id, endpoint="/v1/chat/completions", completion_window="24h")
        assert ann_input.id in caught.value.message
        assert batch.id not in [b.id for b in bob.batches.list()]
        with pytest.raises(openai.NotFoundError):
            bob.batches.retrieve(batch.id)
        with pytest.raises(openai.NotFoundError):
            bob.batches.cancel(batch.id)

        done = ann.batches.retrieve(batch.id)
        assert done.status == "completed" and done.output_file_id is not None
        assert [b.id for b in ann.batches.list()] == [batch.id]
        # The output file the provider made for Ann's batch is Ann's.
        assert ann.files.content(done.output_file_id).content.startswith(b'{"custom_id"')
        assert done.output_file_id in [f.id for f in ann.files.list()]
        assert done.output_file_id not in [f.id for f in bob.files.list()]
        with pytest.raises(openai.NotFoundError):
            bob.files.content(done.output_file_id)


def test_a_call_without_a_key_sees_no_consumers_objects(gw: Proc, provider: FilesProvider) -> None:
    with _sdk(gw, "k-ann") as ann:
        owned = ann.files.create(file=("mine.jsonl", BATCH_LINE), purpose="batch")
    anonymous = httpx.post(
        gw.url + "/open/v1/files", files={"file": ("free.jsonl", BATCH_LINE)}, data={"purpose": "batch"}, timeout=10
    ).json()
    listed = [f["id"] for f in httpx.get(gw.url + "/open/v1/files", timeout=10).json()["data"]]
    assert anonymous["id"] in listed and owned.id not in listed
    assert httpx.get(f"{gw.url}/open/v1/files/{owned.id}", timeout=10).status_code == 404


def test_a_page_is_filled_with_the_consumers_own_from_the_providers_next_pages(
    gw: Proc, provider: FilesProvider
) -> None:
    with _sdk(gw, "k-ann") as ann, _sdk(gw, "k-bob") as bob:
        ann.files.create(file=("a1.jsonl", BATCH_LINE), purpose="batch")
        for n in range(5):
            bob.files.create(file=(f"b{n}.jsonl", BATCH_LINE), purpose="batch")
        ann.files.create(file=("a2.jsonl", BATCH_LINE), purpose="batch")
        everything = [f.id for f in ann.files.list()]
        asked = sum(1 for seen in provider.seen if seen == ("GET", "/v1/files"))
        # Pages of two: the provider's pages hold mostly Bob's files; Ann's page holds two of hers.
        first = ann.files.list(limit=2)
        assert [f.id for f in first.data] == everything[:2] and first.has_more
        assert sum(1 for seen in provider.seen if seen == ("GET", "/v1/files")) > asked + 1
        assert [f.id for f in ann.files.list(limit=2)] == everything  # the SDK's paging, page after page
