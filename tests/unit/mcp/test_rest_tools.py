"""REST tools' requests from a call's arguments, and OpenAPI operations as tools."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.mcp.openapi import OpenApiError, tools_of
from tollway.mcp.rest_tools import RestTool


def _tool(url: str, body: Any = None, headers: tuple[tuple[str, str], ...] = ()) -> RestTool:
    return RestTool("t", "", {"type": "object"}, "POST", url, headers, body)


def test_arguments_are_percent_encoded_in_the_url() -> None:
    _, url, _, _ = _tool("http://svc/repos/{{args.repo}}/issues?q={{ args.q }}").request({"repo": "a/b", "q": "x y&z"})
    assert url == "http://svc/repos/a%2Fb/issues?q=x%20y%26z"


@pytest.mark.parametrize(
    "item",
    [
        "..",
        ".",
        "../../secret.txt",  # sent as ..%2F..%2Fsecret.txt: a service that decodes %2F climbs
        "a/../../admin",
        "..\\..\\admin",
        "%2e%2e",  # sent as %252e%252e: a service that decodes twice climbs
        "%252e%252e/x",
        "%25252e%25252e",  # past what is decoded: refused, not guessed at
    ],
)
def test_an_argument_cannot_climb_the_path_however_it_is_encoded(item: str) -> None:
    with pytest.raises(ValueError, match=r"'\.' or '\.\.' segment"):
        _tool("http://svc/api/items/{{args.id}}").request({"id": item})


@pytest.mark.parametrize("item", ["a/b", "..a", "a..", ".hidden", "v1.2", "%2Fetc"])
def test_an_argument_with_dots_or_slashes_that_climbs_nowhere_is_sent(item: str) -> None:
    _, url, _, _ = _tool("http://svc/api/items/{{args.id}}").request({"id": item})
    assert url.startswith("http://svc/api/items/") and "/" not in url.removeprefix("http://svc/api/items/")


def test_a_whole_placeholder_in_the_body_keeps_the_arguments_json_type() -> None:
    template = {"n": "{{args.n}}", "tags": ["{{args.tags}}"], "label": "n={{args.n}}", "none": "{{args.absent}}"}
    _, _, headers, body = _tool("http://svc/x", template).request({"n": 3, "tags": ["a"]})
    assert orjson.loads(body) == {"n": 3, "tags": [["a"]], "label": "n=3", "none": None}
    assert ("content-type", "application/json") in headers


def test_a_header_value_cannot_be_given_a_line_break() -> None:
    tool = _tool("http://svc/x", headers=(("X-Who", "{{args.who}}"),))
    with pytest.raises(ValueError, match="control characters"):
        tool.request({"who": "me\r\nX-Admin: 1"})
    # Nor characters a header's bytes cannot carry (full-width dots failed in the client,
    # a traceback and a JSON-RPC error of code 0).
    with pytest.raises(ValueError, match="characters a header cannot carry"):
        tool.request({"who": "．．"})


def _doc(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"openapi": "3.0.0", "servers": [{"url": "http://svc/api/"}], "paths": paths, **extra}


def test_an_operation_becomes_a_tool_with_its_parameters_and_body() -> None:
    doc = _doc(
        {
            "/items/{id}": {
                "put": {
                    "operationId": "putItem",
                    "parameters": [
                        {"name": "id", "in": "path", "schema": {"type": "string"}},
                        {"name": "dry", "in": "query", "schema": {"type": "boolean"}},
                    ],
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/I"}}}},
                }
            }
        },
        components={"schemas": {"I": {"type": "object", "required": ["v"], "properties": {"v": {"type": "integer"}}}}},
    )
    (tool,) = tools_of(doc, None)
    assert tool.name == "putItem"
    assert tool.input_schema["required"] == ["id", "v"]
    method, url, _, body = tool.request({"id": "x 1", "dry": True, "v": 7})
    assert (method, url, orjson.loads(body)) == ("PUT", "http://svc/api/items/x%201?dry=true", {"v": 7})


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        (_doc({}), "no operation"),
        ({"paths": {"/a": {"get": {}}}}, "no http\\(s\\) server"),
        (_doc({"/a": {"get": {"parameters": [{"$ref": "#/nowhere"}]}}}), "points at nothing"),
        (_doc({"/a": {"get": {"operationId": "x"}, "post": {"operationId": "x"}}}), "two operations"),
    ],
)
def test_a_document_that_cannot_make_tools_is_refused(doc: dict[str, Any], words: str) -> None:
    with pytest.raises(OpenApiError, match=words):
        tools_of(doc, None)
