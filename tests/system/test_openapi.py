"""``GET /openapi.json`` (SPEC §13): the admin API's OpenAPI 3.1 document, and the API held
to it. The document validates; it names exactly the routes the admin app serves (read
from the app's own routing table, so a new route without a description fails here); real
answers of every route validate against their documented schemas, the routes it calls
open are the ones the app leaves open, and every route's answers to a body over 1 MiB or
a stalled one are documented; and schemathesis drives every operation of a running
gateway from the document: no 5xx, every status, header, content type and body as
documented."""

from __future__ import annotations

import re
import socket
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

from tests.conftest import GatewayFactory, Proc
from tests.support.fake_provider import serve_gateway
from tests.support.raw_http import read_answer
from tollway import __version__
from tollway.admin.openapi import document
from tollway.config.load import load_config_text
from tollway.consumers.store import MAX_ITEM, InvalidConsumer
from tollway.consumers.store import validate as validate_consumer
from tollway.plugins.registry import PLUGIN_MODELS
from tollway.runtime.config_source import ConfigSource
from tollway.runtime.root import Runtime

TOKEN = "admin-token-for-the-openapi-test"
AUTH = {"authorization": f"Bearer {TOKEN}"}
# A short body timeout, so that a stalled body's answer comes soon.
BODY_S = 0.5


def _config(database: str = "sqlite:///./tollway.db") -> str:
    return f"""
server: {{body_timeout_s: {BODY_S}}}
admin: {{token: {TOKEN}}}
storage: {{database: "{database}"}}
providers: [{{id: up, type: mock}}]
routes: [{{name: chat, path_prefix: /v1/, provider: up}}]
plugins:
  - name: key-auth
    defaultConfig: {{keys: [authorization], consumers: [{{name: alice, credential: k-alice}}]}}
"""


CONFIG = _config()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openapi")


@pytest.fixture(scope="module")
def gw(folder: Path) -> Iterator[Proc]:
    proc = serve_gateway(folder, CONFIG)
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
            # (/api/consumers/{name}/rotate is served by the same prefix route).
            template = re.sub(r"\{[^}]+\}.*$", "{…}", path) if not path.startswith("/dashboard/") else path
            routes.add((method.upper(), template))
    return routes


def test_every_served_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    assert _served_routes(tmp_path) == _documented_routes(document(__version__))


def test_the_routes_documented_as_open_are_the_ones_the_app_leaves_open(tmp_path: Path) -> None:
    loaded = load_config_text(CONFIG, plugins=PLUGIN_MODELS, base_dir=tmp_path)
    public = Runtime(ConfigSource(None, CONFIG), loaded).admin.public
    served_open = {"/dashboard/{file}" if path.startswith("/dashboard/") else path for path in public}
    doc = document(__version__)
    documented_open = {path for path, item in doc["paths"].items() for op in item.values() if op.get("security") == []}
    assert served_open == documented_open == {"/healthz", "/readyz", "/", "/dashboard/{file}"}


def test_the_admin_api_page_lists_every_route_of_the_document() -> None:
    # docs/admin-api.md's table is written by hand (the reference beside it is generated):
    # it names each operation, a path parameter spelt in capitals (`DELETE /api/consumers/NAME`).
    page = (Path(__file__).resolve().parents[2] / "docs" / "admin-api.md").read_text()
    listed = set(re.findall(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)` \|", page, re.MULTILINE))
    documented = {
        (method.upper(), re.sub(r"\{([^}]+)\}", lambda m: m.group(1).upper(), path))
        for path, item in document(__version__)["paths"].items()
        for method in item
    }
    assert listed == documented


def test_the_allow_models_schema_takes_every_pattern_the_api_takes() -> None:
    # It said printable ASCII (`^[ -~]{1,200}$`) where the API rightly takes any script
    # (`模型-*`): a client generated from the document refused good patterns.
    schema = document(__version__)["components"]["schemas"]["ConsumerEdit"]["properties"]["allow_models"]["items"]

    def documented(item: str) -> bool:
        return jsonschema.Draft202012Validator(schema).is_valid(item)

    def taken(item: str) -> bool:
        try:
            validate_consumer("carol", [item], [])
        except InvalidConsumer:
            return False
        return True

    for item in ("模型-*", "gpt-4o*", "~claude-(opus|sonnet)-4.*", "modèle", "🤖-*", "a b", "x" * MAX_ITEM):
        assert taken(item) and documented(item), item
    # Every character the API takes, the document takes; the controls and Latin-1's
    # non-printing characters it refuses as the API does (the rest of what is not
    # printable, which no pattern can name portably, its description names).
    for cp in [*range(0x3000), *range(0xFF00, 0x10000), 0x1F916, 0x20000]:
        ch = chr(cp)
        if 0xD800 <= cp <= 0xDFFF or ch in "*~[](){}|.?+\\^$":
            continue  # a lone surrogate is no JSON string; a regex character alone is no pattern
        if taken(ch):
            assert documented(ch), hex(cp)
        elif cp < 0x100:
            assert not documented(ch), hex(cp)
    assert not documented("") and not documented("x" * (MAX_ITEM + 1))


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _conforms(doc: dict[str, Any], path: str, method: str, r: httpx.Response) -> None:
    """``r`` is an answer the document names for ``method path``, with the headers it
    promises and a body that fits."""
    responses = doc["paths"][path][method]["responses"]
    status = str(r.status_code)
    assert status in responses, f"{method.upper()} {path} answered an undocumented {status}"
    # Where the answer stands in the document (a shared one under components), so that
    # its schema's references resolve there.
    ref = responses[status].get("$ref")
    where = ref.removeprefix("#") if ref else _pointer("paths", path, method, "responses", status)
    answer = responses[status] if ref is None else doc["components"]["responses"][ref.rpartition("/")[2]]
    for name, header in answer.get("headers", {}).items():
        assert name in r.headers or not header.get("required"), f"{method.upper()} {path} {status} without {name}"
        if name in r.headers:
            jsonschema.validate(r.headers[name], header["schema"])
    content = answer.get("content")
    if content is None:
        assert r.content == b""
        return
    media_type = r.headers["content-type"].split(";")[0]
    assert media_type in content or (media_type.startswith("text/") and any(m.startswith("text/") for m in content))
    if media_type == "application/json":
        registry: Registry[Any] = Registry().with_resource(
            "urn:admin", Resource.from_contents(doc, default_specification=DRAFT202012)
        )
        schema = {"$ref": "urn:admin#" + where + _pointer("content", media_type, "schema")}
        jsonschema.Draft202012Validator(schema, registry=registry).validate(r.json())


def _answers_of_every_route(gw: Proc, config_file: Path) -> list[tuple[str, str, httpx.Response]]:
    """(OpenAPI path, method, answer): each route's answers, refusals included, from a
    gateway serving ``config_file`` (which is left as it was)."""
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
    ]
    good = config_file.read_text()
    config_file.write_text(good + "no_such_section: 1\n")
    try:
        answers.append(("/api/reload", "post", httpx.post(admin + "/api/reload", headers=AUTH)))
    finally:
        config_file.write_text(good)
    answers += [
        ("/", "get", httpx.get(admin + "/")),
        ("/dashboard/{file}", "get", httpx.get(admin + "/dashboard/app.js")),
        ("/dashboard/{file}", "get", httpx.get(admin + "/dashboard/nothing.js")),
    ]
    statuses = [(path, r.status_code) for path, _, r in answers]
    # Each answer is the one the route gives (so each body checked against the document
    # is a real one).
    assert statuses == [
        ("/healthz", 200), ("/readyz", 200), ("/metrics", 200), ("/metrics", 401), ("/openapi.json", 200),
        ("/api/usage", 200), ("/api/usage", 400), ("/api/requests", 200), ("/api/requests", 400),
        ("/api/consumers", 201), ("/api/consumers", 409), ("/api/consumers", 400), ("/api/consumers", 200),
        ("/api/consumers/{name}", 204), ("/api/consumers/{name}", 404), ("/api/consumers/{name}", 409),
        ("/api/reload", 200), ("/api/reload", 400), ("/", 200), ("/dashboard/{file}", 200),
        ("/dashboard/{file}", 401),
    ]  # fmt: skip
    records = answers[7][2].json()["requests"]
    assert {r["status"] for r in records} == {200, 401} and all(r["attempts"] is not None for r in records)
    consumers = answers[12][2].json()["consumers"]
    assert [(c["name"], c["source"]) for c in consumers] == [("alice", "config"), ("bob", "runtime")]
    return answers


def test_real_answers_of_every_route_fit_the_document(gw: Proc, doc: dict[str, Any], folder: Path) -> None:
    for path, method, r in _answers_of_every_route(gw, folder / "tollway.yaml"):
        _conforms(doc, path, method, r)


@pytest.mark.postgres
def test_real_answers_fit_the_document_on_postgresql(gateway: GatewayFactory, pg_url: str, tmp_path: Path) -> None:
    # Records, rows and consumers read back from PostgreSQL (its numbers and times come
    # back as other Python types than SQLite's) have the same documented shapes.
    gw = gateway(_config(pg_url))
    doc = document(__version__)
    for path, method, r in _answers_of_every_route(gw, tmp_path / "tollway.yaml"):
        _conforms(doc, path, method, r)


def _operation_urls() -> list[tuple[str, str, str]]:
    """(OpenAPI path, method, a concrete path that reaches it) for every operation."""
    examples = {"/api/consumers/{name}": "/api/consumers/nobody", "/dashboard/{file}": "/dashboard/app.js"}
    return [
        (path, method, examples.get(path, path))
        for path, item in document(__version__)["paths"].items()
        for method in item
    ]


@pytest.mark.parametrize(("path", "method", "url"), _operation_urls())
def test_every_route_refuses_a_body_over_1_mib_as_documented(
    gw: Proc, doc: dict[str, Any], path: str, method: str, url: str
) -> None:
    r = httpx.request(method, gw.admin_url + url, content=b"x" * (1024 * 1024 + 1), headers=AUTH, timeout=10)
    assert r.status_code == 413
    _conforms(doc, path, method, r)


def test_every_route_answers_a_stalled_body_as_documented(gw: Proc, doc: dict[str, Any]) -> None:
    host, port = gw.admin_url.removeprefix("http://").rsplit(":", 1)
    operations = _operation_urls()
    sockets = [socket.create_connection((host, int(port)), timeout=10) for _ in operations]
    try:
        # Every body promised and begun, none finished; then every answer, read together.
        for sock, (_, method, url) in zip(sockets, operations, strict=True):
            head = f"{method.upper()} {url} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n"
            sock.sendall(head.encode() + b"Content-Length: 100\r\n\r\n{")
        for sock, (path, method, _) in zip(sockets, operations, strict=True):
            r = read_answer(sock)
            assert r.status_code == 408
            _conforms(doc, path, method, r)
    finally:
        for sock in sockets:
            sock.close()


# --- schemathesis: every operation, generated from the document -------------------------


def _operations() -> list[str]:
    return [f"{method.upper()} {path}" for path, item in document(__version__)["paths"].items() for method in item]


def _printable_items(case: schemathesis.Case[Any]) -> bool:
    """Whether a generated body's allow_models and groups hold printable strings only:
    the document's pattern refuses the control characters, and its description the
    other non-printing ones (which no pattern can name portably: an unassigned code
    point of one Unicode version is assigned in the next), so a body with one is not a
    valid one the API must take. Nor is an ``allow_tools`` naming MCP servers: the
    description says they must be the config's, and this config has none."""
    body = case.body if isinstance(case.body, dict) else {}
    lists = [body.get(f) for f in ("allow_models", "groups")]
    items = [i for listed in lists if isinstance(listed, list) for i in listed]
    return all(not isinstance(i, str) or i.isprintable() for i in items) and not body.get("allow_tools")


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
    @given(case=found.as_strategy().filter(_printable_items), with_token=st.booleans())
    def conforms(case: schemathesis.Case[Any], with_token: bool) -> None:
        # "Authorization" as the document's scheme spells it: schemathesis then knows the
        # token as the test's own, and probes the route without it and with a wrong one.
        headers = {"Authorization": AUTH["authorization"]} if with_token else {}
        case.call_and_validate(base_url=gw.admin_url, headers=headers, timeout=10)

    conforms()
