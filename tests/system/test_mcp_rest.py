"""REST tools served as MCP by the gateway itself (SPEC §12): an OpenAPI document of a
small local REST service, and tools configured by hand, become tools an agent lists and
calls with the official SDK's ``ClientSession``, through ``tollway serve``. The
service's key is the server's ``headers``: added by the gateway, never the client's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayFactory, Proc
from tests.support.fake_provider import tried
from tests.support.mcp_support import mcp_calls, mcp_session, records, text_of
from tests.support.pets_service import KEY, SLOW_S, PetsService, openapi_document
from tests.support.usage_support import eventually

ALICE, BOB = "key-alice-1", "key-bob-2"
CLOSED_PORT = 19650  # nothing listens there: a REST service that cannot be reached


@pytest.fixture
def pets() -> Iterator[PetsService]:
    with PetsService() as service:
        yield service


def _config(pets: PetsService) -> str:
    return f"""
mcp_servers:
  - name: pets
    type: rest
    openapi: pets.json
    headers: {{X-Api-Key: {KEY}}}
  - name: by-hand
    type: rest
    headers: {{X-Api-Key: {KEY}}}
    tools:
      - name: rename_pet
        description: Adds a pet under a new name, tagged as given.
        inputSchema:
          type: object
          properties: {{name: {{type: string}}, tag: {{type: string}}}}
          required: [name]
        request:
          method: POST
          url: "{pets.url}/pets"
          body: {{name: "{{{{args.name}}}}", tag: "renamed {{{{args.tag}}}}"}}
      - name: pet_by_id
        inputSchema: {{type: object, properties: {{id: {{type: integer}}}}}}
        request: {{url: "{pets.url}/pets/{{{{args.id}}}}"}}
      - name: pets_tagged
        inputSchema: {{type: object, properties: {{tag: {{type: string}}}}, required: [tag]}}
        request: {{url: "{pets.url}/pets/tagged/{{{{args.tag}}}}"}}
      - name: gone
        inputSchema: {{type: object}}
        request: {{url: "http://127.0.0.1:{CLOSED_PORT}/pets"}}
  - name: hasty
    type: rest
    timeout: 0.5
    headers: {{X-Api-Key: {KEY}}}
    tools:
      - name: pets_tagged
        inputSchema: {{type: object, properties: {{tag: {{type: string}}}}, required: [tag]}}
        request: {{url: "{pets.url}/pets/tagged/{{{{args.tag}}}}"}}
      - name: pet_by_id
        inputSchema: {{type: object, properties: {{id: {{type: integer}}}}}}
        request: {{url: "{pets.url}/pets/{{{{args.id}}}}"}}
routes:
  - {{name: pets, path_prefix: /mcp/pets, mcp_server: pets}}
  - {{name: by-hand, path_prefix: /mcp/by-hand, mcp_server: by-hand}}
  - {{name: hasty, path_prefix: /mcp/hasty, mcp_server: hasty}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [x-api-key]
      consumers:
        - {{name: alice, credential: {ALICE}}}
        - {{name: bob, credential: {BOB}, allow_tools: {{pets: [listPets]}}}}
"""


@pytest.fixture
def gw(gateway: GatewayFactory, pets: PetsService, tmp_path: Path) -> Proc:
    (tmp_path / "pets.json").write_text(json.dumps(openapi_document(pets.url)))
    return gateway(_config(pets))


async def test_an_openapi_documents_operations_are_callable_tools(gw: Proc, pets: PetsService) -> None:
    async with mcp_session(gw.url + "/mcp/pets", ALICE) as session:
        listed = await session.list_tools()
        some = await session.call_tool("listPets", {"limit": 1})
        created = await session.call_tool("createPet", {"name": "Nibbles", "tag": "hamster"})
        one = await session.call_tool("get_pets_petId", {"petId": 2})
        missing = await session.call_tool("get_pets_petId", {"petId": 99})

    tools = {t.name: t for t in listed.tools}
    assert set(tools) == {"listPets", "createPet", "get_pets_petId"}
    assert tools["listPets"].description == "List pets."
    assert tools["listPets"].input_schema["properties"]["limit"] == {"type": "integer"}
    # The body's schema ($ref resolved) is the tool's arguments.
    assert tools["createPet"].input_schema["required"] == ["name"]
    assert tools["get_pets_petId"].input_schema["required"] == ["petId"]

    assert some.structured_content == {"pets": [{"id": 1, "name": "Rex", "tag": "dog"}]}
    assert not some.is_error
    assert created.structured_content == {"id": 3, "name": "Nibbles", "tag": "hamster"}
    assert pets.pets[-1] == {"id": 3, "name": "Nibbles", "tag": "hamster"}
    assert json.loads(text_of(one)) == {"id": 2, "name": "Tom"}
    assert missing.is_error and "404" in text_of(missing)
    # The service got the server's key with every call, and never the agent's.
    assert pets.seen_headers and all(h["x-api-key"] == KEY for h in pets.seen_headers)
    assert not any(ALICE in str(h) for h in pets.seen_headers)

    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = [r for r in records(gw.admin_url, consumer="alice") if r["mcp_method"] == "tools/call"]
        return len(found) >= 4

    eventually(recorded)
    assert sorted(r["mcp_tool"] for r in found) == ["createPet", "get_pets_petId", "get_pets_petId", "listPets"]
    assert all(r["api"] == "mcp" and r["provider"] == "pets" for r in found)
    # Each record's attempt is the REST request; the one the service answered 404 is
    # recorded with that status.
    outcomes = sorted(((r["mcp_tool"], r["status"], r["reason"], tried(r)) for r in found), key=repr)
    assert outcomes == [
        ("createPet", 200, None, [("pets", 201)]),  # the service created it
        ("get_pets_petId", 200, None, [("pets", 200)]),
        ("get_pets_petId", 404, "mcp.tool_error", [("pets", 404)]),
        ("listPets", 200, None, [("pets", 200)]),
    ]
    # A rest server's tools are configured names: each is a label.
    assert mcp_calls(gw.admin_url, server="pets", tool="createPet", outcome="ok") == 1
    assert mcp_calls(gw.admin_url, server="pets", tool="get_pets_petId", outcome="error") == 1


async def test_configured_rest_tools_lay_arguments_into_the_request(gw: Proc, pets: PetsService) -> None:
    async with mcp_session(gw.url + "/mcp/by-hand", ALICE) as session:
        listed = await session.list_tools()
        renamed = await session.call_tool("rename_pet", {"name": "Felix", "tag": "cat"})
        found = await session.call_tool("pet_by_id", {"id": 1})

    assert {t.name for t in listed.tools} == {"rename_pet", "pet_by_id", "pets_tagged", "gone"}
    assert renamed.structured_content == {"id": 3, "name": "Felix", "tag": "renamed cat"}
    assert found.structured_content == {"id": 1, "name": "Rex", "tag": "dog"}


async def test_a_redirect_from_the_service_is_a_tool_error_not_a_result(gw: Proc, pets: PetsService) -> None:
    # The gateway follows no redirect (the server's key would go where the service
    # points); an empty 307 was handed to the agent as a successful, empty result.
    async with mcp_session(gw.url + "/mcp/by-hand", ALICE) as session:
        moved = await session.call_tool("pets_tagged", {"tag": "moved"})
    assert moved.is_error
    assert text_of(moved).startswith("HTTP 307") and "/pets/1" in text_of(moved)


async def test_a_failed_rest_call_is_recorded_as_it_went_upstream(gw: Proc, pets: PetsService) -> None:
    """A tool whose service failed or could not be reached was recorded as a 200 with an
    attempt of 200 (the gateway's own MCP server answered): the usage view counted no
    error, and the attempt hid what the service said."""
    async with mcp_session(gw.url + "/mcp/by-hand", ALICE) as session:
        broken = await session.call_tool("pets_tagged", {"tag": "broken"})
        moved = await session.call_tool("pets_tagged", {"tag": "moved"})
        gone = await session.call_tool("gone", {})
    assert broken.is_error and text_of(broken).startswith("HTTP 500")
    assert moved.is_error
    assert gone.is_error and "could not be reached" in text_of(gone)
    assert broken.meta is None and gone.meta is None  # the gateway's note is not the agent's

    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = [r for r in records(gw.admin_url, consumer="alice") if r["mcp_method"] == "tools/call"]
        return len(found) >= 3

    eventually(recorded)
    outcomes = sorted(((r["mcp_tool"], r["status"], r["reason"], tried(r)) for r in found), key=repr)
    assert outcomes == [
        ("gone", 502, "mcp.upstream_failed", [("by-hand", 502)]),
        ("pets_tagged", 500, "mcp.tool_error", [("by-hand", 500)]),
        ("pets_tagged", 502, "mcp.tool_error", [("by-hand", 307)]),  # a redirect, not followed
    ]
    assert mcp_calls(gw.admin_url, server="by-hand", tool="pets_tagged", outcome="error") == 2
    assert mcp_calls(gw.admin_url, server="by-hand", tool="gone", outcome="failed") == 1


async def test_a_rest_service_slower_than_the_servers_timeout_is_a_tool_error_recorded_504(
    gw: Proc, pets: PetsService
) -> None:
    """The server's ``timeout`` bounds each REST request: the agent gets a tool error
    when it runs out (not a call held for as long as the service takes), the record
    says 504 ``mcp.upstream_failed``, and the server goes on answering."""
    async with mcp_session(gw.url + "/mcp/hasty", ALICE) as session:
        for tag in ("slow", "trickle"):  # its head late; its body a byte at a time
            t0 = time.monotonic()
            slow = await session.call_tool("pets_tagged", {"tag": tag})
            waited = time.monotonic() - t0
            assert slow.is_error and "did not answer in time" in text_of(slow), tag
            assert waited < SLOW_S - 1, tag  # the timeout's 0.5 s, not the service's 3
        quick = await session.call_tool("pet_by_id", {"id": 1})
    assert not quick.is_error and "Rex" in text_of(quick)
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = [r for r in records(gw.admin_url, consumer="alice") if r["mcp_method"] == "tools/call"]
        return len(found) >= 3

    eventually(recorded)
    outcomes = sorted((r["status"], r["reason"], tried(r)) for r in found)
    timed_out = (504, "mcp.upstream_failed", [("hasty", 504)])
    assert outcomes == [(200, None, [("hasty", 200)]), timed_out, timed_out]


async def test_arguments_the_schema_refuses_or_that_climb_the_path_never_reach_the_service(
    gw: Proc, pets: PetsService
) -> None:
    """The service would get the server's credentials with a request the tool does not
    describe: another resource (``..``), the collection for an item, a string where a
    number belongs. The agent gets a tool error it can act on instead."""
    before = len(pets.seen_headers)
    async with mcp_session(gw.url + "/mcp/by-hand", ALICE) as session:
        climbs = await session.call_tool("pets_tagged", {"tag": ".."})
        here = await session.call_tool("pets_tagged", {"tag": "."})
        encoded = await session.call_tool("pets_tagged", {"tag": "../../secret.txt"})  # as ..%2F..%2Fsecret.txt
        untagged = await session.call_tool("pets_tagged", {})
        unnamed = await session.call_tool("rename_pet", {"tag": "cat"})
        wrong_type = await session.call_tool("pet_by_id", {"id": "1; drop"})
    async with mcp_session(gw.url + "/mcp/pets", ALICE) as session:
        too_many = await session.call_tool("listPets", {"limit": "5; drop"})
    for result in (climbs, here, encoded):
        assert result.is_error and "'.' or '..' segment" in text_of(result)
    for result in (untagged, unnamed, wrong_type, too_many):
        assert result.is_error and "inputSchema" in text_of(result), text_of(result)
    assert "'tag' is a required property" in text_of(untagged)
    assert len(pets.seen_headers) == before
    # Their records show no request to the service (as no session message does: the
    # gateway's own MCP server answers those in process).
    refused: list[dict[str, Any]] = []

    def recorded() -> bool:
        refused[:] = [
            r for r in records(gw.admin_url, consumer="alice") if r["reason"] == "mcp.tool_error" and r["status"] == 200
        ]
        return len(refused) >= 7

    eventually(recorded)
    sessions = [r for r in records(gw.admin_url, consumer="alice") if r["mcp_method"] != "tools/call"]
    assert sessions and all(r["attempts"] == [] for r in refused + sessions), [
        r["attempts"] for r in refused + sessions
    ]


async def test_allow_tools_holds_rest_tools_too(gw: Proc, pets: PetsService) -> None:
    from mcp.shared.exceptions import MCPError

    async with mcp_session(gw.url + "/mcp/pets", BOB) as session:
        listed = await session.list_tools()
        with pytest.raises(MCPError) as refused:
            await session.call_tool("createPet", {"name": "Sneaky"})

    assert [t.name for t in listed.tools] == ["listPets"]
    assert refused.value.code == -32001 and "createPet" in refused.value.message
    assert [p["name"] for p in pets.pets] == ["Rex", "Tom"]


def test_an_unreadable_openapi_document_fails_the_config(gateway: GatewayFactory, pets: PetsService) -> None:
    with pytest.raises(RuntimeError) as failed:
        gateway(_config(pets))  # no pets.json written
    assert "mcp_servers[0].openapi: cannot read" in str(failed.value)
