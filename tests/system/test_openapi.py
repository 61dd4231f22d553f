"""``GET /openapi.json`` (SPEC §13): the admin API's OpenAPI 3.1 document, and the API held
to it. The document validates; it names exactly the routes the admin app serves (read
from the app's own routing table, so a new route without a description fails here); real
answers of every route validate against their documented schemas; and schemathesis
drives every operation of a running gateway from the document: no 5xx, every status,
header, content type and body as documented."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import Proc
from tests.support.fake_provider import serve_gateway
from tollway import __version__
from tollway.admin.openapi import document
from tollway.config.load import load_config_text
from tollway.plugins.registry import PLUGIN_MODELS
from tollway.runtime.config_source import ConfigSource
from tollway.runtime.root import Runtime

TOKEN = "admin-token-for-the-openapi-test"
AUTH = {"authorization": f"Bearer {TOKEN}"}
CONFIG = f"""
admin: {{token: {TOKEN}}}
storage: {{database: "sqlite:///./tollway.db"}}
providers: [{{id: up, type: mock}}]
routes: [{{name: chat, path_prefix: /v1/, provider: up}}]
plugins:
  - name: key-auth
    defaultConfig: {{keys: [authorization], consumers: [{{name: alice, credential: k-alice}}]}}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = serve_gateway(tmp_path_factory.mktemp("openapi"), CONFIG)
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def doc(gw: Proc) -> dict[str, Any]:
    r = httpx.get(gw.admin_url + "/openapi.json", headers=AUTH, timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    served: dict[str, Any] = r.json()
    return served


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["version"] == __version__


def test_the_document_needs_the_token_like_the_data_it_describes(gw: Proc) -> None:
    r = httpx.get(gw.admin_url + "/openapi.json", timeout=10)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def _served_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route the admin app serves, from its own table."""
    loaded = load_config_text(CONFIG, plugins=PLUGIN_MODELS, base_dir=tmp_path)
    admin = Runtime(ConfigSource(None, CONFIG), loaded).admin
    routes: set[tuple[str, str]] = set()
    for method, path in admin.routes:
        # The dashboard's files are one template: /dashboard/{file}.
        routes.add((method, "/dashboard/{file}" if path.startswith("/dashboard/") else path))
    for method, prefix, _ in admin.prefix_routes:
        routes.add((method, prefix + "{…}"))
    return routes


def _documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for path, item in doc["paths"].items():
        for method in item:
            # A prefix route's one path parameter stands for the rest of the path.
            template = re.sub(r"\{[^}]+\}$", "{…}", path) if not path.startswith("/dashboard/") else path
            routes.add((method.upper(), template))
    return routes


def test_every_served_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    assert _served_routes(tmp_path) == _documented_routes(document(__version__))


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _conforms(doc: dict[str, Any], path: str, method: str, r: httpx.Response) -> None:
    """``r`` is an answer the document names for ``method path``, with a body that fits."""
    responses = doc["paths"][path][method]["responses"]
    status = str(r.status_code)
    assert status in responses, f"{method.upper()} {path} answered an undocumented {status}"
    content = responses[status].get("content")
    if content is None:
        assert r.content == b""
        return
    media_type = r.headers["content-type"].split(";")[0]
    assert media_type in content or (media_type.startswith("text/") and any(m.startswith("text/") for m in content))
    if media_type == "application/json":
        # The schema where it stands in the document, so its references resolve there.
        registry: Registry[Any] = Registry().with_resource(
            "urn:admin", Resource.from_contents(doc, default_specification=DRAFT202012)
        )
        where = _pointer("paths", path, method, "responses", status, "content", media_type, "schema")
        jsonschema.Draft202012Validator({"$ref": "urn:admin#" + where}, registry=registry).validate(r.json())


def test_real_answers_of_every_route_fit_the_document(gw: Proc, doc: dict[str, Any]) -> None:
    admin = gw.admin_url
    # Some calls, so that records and usage rows hold real values.
    for key in ("k-alice", "k-nobody"):
        httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {key}"},
            timeout=10,
        )
    answers: list[tuple[str, str, httpx.Response]] = [
        ("/healthz", "get", httpx.get(admin + "/healthz")),
        ("/readyz", "get", httpx.get(admin + "/readyz")),
        ("/metrics", "get", httpx.get(admin + "/metrics", headers=AUTH)),
        ("/metrics", "get", httpx.get(admin + "/metrics")),
        ("/openapi.json", "get", httpx.get(admin + "/openapi.json", headers=AUTH)),
        ("/api/usage", "get", httpx.get(admin + "/api/usage", params={"by": "model"}, headers=AUTH)),
        ("/api/usage", "get", httpx.get(admin + "/api/usage", params={"by": "colour"}, headers=AUTH)),
        ("/api/requests", "get", httpx.get(admin + "/api/requests", params={"limit": "5"}, headers=AUTH)),
        ("/api/requests", "get", httpx.get(admin + "/api/requests", params={"since": "1999-13-01"}, headers=AUTH)),
        ("/api/consumers", "post", httpx.post(admin + "/api/consumers", json={"name": "bob"}, headers=AUTH)),
        ("/api/consumers", "post", httpx.post(admin + "/api/consumers", json={"name": "bob"}, headers=AUTH)),
        ("/api/consumers", "post", httpx.post(admin + "/api/consumers", json={"name": 3}, headers=AUTH)),
        ("/api/consumers", "get", httpx.get(admin + "/api/consumers", headers=AUTH)),
        ("/api/consumers/{name}", "delete", httpx.delete(admin + "/api/consumers/bob", headers=AUTH)),
        ("/api/consumers/{name}", "delete", httpx.delete(admin + "/api/consumers/bob", headers=AUTH)),
        ("/api/consumers/{name}", "delete", httpx.delete(admin + "/api/consumers/alice", headers=AUTH)),
        ("/api/reload", "post", httpx.post(admin + "/api/reload", headers=AUTH)),
        ("/", "get", httpx.get(admin + "/")),
        ("/dashboard/{file}", "get", httpx.get(admin + "/dashboard/app.js")),
    ]
    statuses = [(path, r.status_code) for path, _, r in answers]
    # Each answer is the one the route gives (so each body below is a real one).
    assert statuses == [
        ("/healthz", 200), ("/readyz", 200), ("/metrics", 200), ("/metrics", 401), ("/openapi.json", 200),
        ("/api/usage", 200), ("/api/usage", 400), ("/api/requests", 200), ("/api/requests", 400),
        ("/api/consumers", 201), ("/api/consumers", 409), ("/api/consumers", 400), ("/api/consumers", 200),
        ("/api/consumers/{name}", 204), ("/api/consumers/{name}", 404), ("/api/consumers/{name}", 409),
        ("/api/reload", 200), ("/", 200), ("/dashboard/{file}", 200),
    ]  # fmt: skip
    records = answers[7][2].json()["requests"]
    assert {r["status"] for r in records} == {200, 401} and all(r["attempts"] is not None for r in records)
    for path, method, r in answers:
        _conforms(doc, path, method, r)


# --- schemathesis: every operation, generated from the document -------------------------


def _operations() -> list[str]:
    return [f"{method.upper()} {path}" for path, item in document(__version__)["paths"].items() for method in item]


@pytest.mark.parametrize("operation", _operations())
def test_schemathesis_finds_no_departure_from_the_document(gw: Proc, doc: dict[str, Any], operation: str) -> None:
    method, path = operation.split(" ", 1)
    schema = schemathesis.openapi.from_dict(doc)
    found = schema[path][method]

    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=found.as_strategy(), with_token=st.booleans())
    def conforms(case: schemathesis.Case[Any], with_token: bool) -> None:
        # "Authorization" as the document's scheme spells it: schemathesis then knows the
        # token as the test's own, and probes the route without it and with a wrong one.
        headers = {"Authorization": AUTH["authorization"]} if with_token else {}
        case.call_and_validate(base_url=gw.admin_url, headers=headers, timeout=10)

    conforms()
