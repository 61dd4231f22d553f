"""A small REST service for the MCP gateway's REST-tool tests, on 127.0.0.1 in a thread:
pets to list, read and add, behind ``X-Api-Key: rest-secret``; and its OpenAPI document."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

KEY = "rest-secret"
# How long ``/pets/tagged/slow`` takes to answer: past the timeout the tests give a tool.
SLOW_S = 3.0


def openapi_document(base_url: str) -> dict[str, Any]:
    pet = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "tag": {"type": "string"}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Pets", "version": "1"},
        "servers": [{"url": base_url}],
        "components": {
            "schemas": {"Pet": pet, "NewPet": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "tag": {"type": "string"}}}},
            "parameters": {"PetId": {"name": "petId", "in": "path", "required": True, "schema": {"type": "integer"}}},
        },
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "listPets",
                    "summary": "List pets.",
                    "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                    "responses": {"200": {"description": "pets"}},
                },
                "post": {
                    "operationId": "createPet",
                    "summary": "Add a pet.",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/NewPet"}}}},
                    "responses": {"201": {"description": "the pet"}},
                },
            },
            "/pets/{petId}": {
                "parameters": [{"$ref": "#/components/parameters/PetId"}],
                "get": {"summary": "One pet.", "responses": {"200": {"description": "the pet"}}},
            },
        },
    }  # fmt: skip


class PetsService:
    def __init__(self) -> None:
        self.pets: list[dict[str, Any]] = [{"id": 1, "name": "Rex", "tag": "dog"}, {"id": 2, "name": "Tom"}]
        self.seen_headers: list[dict[str, str]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _allowed(self) -> bool:
                service.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.headers.get("x-api-key") != KEY:
                    self._answer(401, {"error": "no key"})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._allowed():
                    return
                url = urlsplit(self.path)
                if url.path == "/pets":
                    limit = int(parse_qs(url.query).get("limit", ["100"])[0])
                    self._answer(200, {"pets": service.pets[:limit]})
                    return
                if url.path == "/pets/tagged/moved":  # a redirect, which a tool call does not follow
                    self.send_response(307)
                    self.send_header("location", "/pets/1")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if url.path == "/pets/tagged/slow":  # a service that takes longer than a tool's timeout
                    time.sleep(SLOW_S)
                    self._answer(200, {"pets": []})
                    return
                if url.path == "/pets/tagged/trickle":  # its head at once, its body a byte at a time
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", "12")
                    self.end_headers()
                    for byte in b'{"pets": []}':
                        time.sleep(SLOW_S / 12)
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                if url.path == "/pets/tagged/broken":  # the service failing
                    self._answer(500, {"error": "the pet database is down"})
                    return
                pet_id = url.path.removeprefix("/pets/")
                found = [p for p in service.pets if str(p["id"]) == pet_id]
                self._answer(200, found[0]) if found else self._answer(404, {"error": f"no pet {pet_id}"})

            def do_POST(self) -> None:
                if not self._allowed():
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
                pet = {"id": len(service.pets) + 1, **body}
                service.pets.append(pet)
                self._answer(201, pet)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> PetsService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
