"""One REST tool per operation of an OpenAPI 3 document (``mcp_servers[].openapi``).

The tool's name is the operation's ``operationId`` (else its method and path's words:
``get /pets/{petId}`` is ``get_pets_petId``), its
description the summary and description, its ``inputSchema`` an object with one
property per path, query and header parameter and, for a JSON request body, one per
field of the body's object schema (a body that is no object is the property ``body``).
Local ``$ref``s (``#/components/...``) are resolved. Read once, when the config is
loaded; a document that cannot be read or has no operation is a config error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tollway.mcp.rest_tools import RestTool

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_MAX_REF_DEPTH = 32
_UNNAMEABLE = re.compile(r"[^A-Za-z0-9.\-]+")


class OpenApiError(ValueError):
    pass


def _resolve(doc: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """``node`` with every local ``$ref`` replaced by what it points at."""
    if depth > _MAX_REF_DEPTH:
        raise OpenApiError("$ref chain is too deep (or circular)")
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                raise OpenApiError(f"only local $refs are read: {ref!r}")
            target: Any = doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise OpenApiError(f"$ref {ref!r} points at nothing")
                target = target[part]
            return _resolve(doc, target, depth + 1)
        return {k: _resolve(doc, v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(doc, v, depth + 1) for v in node]
    return node


def load(path: Path, base_url: str | None) -> list[RestTool]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise OpenApiError(f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        raise OpenApiError(f"{path} is not an OpenAPI document (no paths)")
    return tools_of(doc, base_url)


def _base(doc: dict[str, Any], base_url: str | None) -> str:
    if base_url is None:
        servers = doc.get("servers")
        first = servers[0] if isinstance(servers, list) and servers else None
        base_url = first.get("url") if isinstance(first, dict) else None
    if not isinstance(base_url, str) or not re.match(r"^https?://[^/]+", base_url):
        raise OpenApiError("the document names no http(s) server: give base_url")
    return base_url.rstrip("/")


def tools_of(doc: dict[str, Any], base_url: str | None) -> list[RestTool]:
    base = _base(doc, base_url)
    tools: list[RestTool] = []
    for route, item in doc["paths"].items():
        if not isinstance(item, dict):
            continue
        shared = _resolve(doc, item.get("parameters") or [])
        for method in _METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                tools.append(_tool(doc, base, str(route), method, op, shared))
    if not tools:
        raise OpenApiError("the document has no operation")
    names = [t.name for t in tools]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise OpenApiError(f"two operations make the tool {twice[0]!r}")
    return tools


def _tool(doc: dict[str, Any], base: str, route: str, method: str, op: dict[str, Any], shared: list[Any]) -> RestTool:
    name = op.get("operationId")
    if not isinstance(name, str) or not name:
        # get /pets/{petId} → get_pets_petId
        name = _UNNAMEABLE.sub("_", f"{method} {route}").strip("_")
    properties: dict[str, Any] = {}
    required: list[str] = []
    query: list[str] = []
    headers: list[str] = []
    url = base + route
    params = {(p.get("in"), p.get("name")): p for p in [*shared, *_resolve(doc, op.get("parameters") or [])]}
    for (where, pname), p in params.items():
        if not isinstance(pname, str) or where not in ("path", "query", "header"):
            continue
        properties[pname] = {
            **(p.get("schema") or {}),
            **({"description": p["description"]} if "description" in p else {}),
        }
        if p.get("required") or where == "path":
            required.append(pname)
        if where == "path":
            url = url.replace("{" + pname + "}", "{{args." + pname + "}}")
        elif where == "query":
            query.append(pname)
        else:
            headers.append(pname)
    body_args: tuple[str, ...] | None = None
    whole_body = False
    body = _resolve(doc, op.get("requestBody") or {})
    schema = (
        ((body.get("content") or {}).get("application/json") or {}).get("schema") if isinstance(body, dict) else None
    )
    if isinstance(schema, dict):
        fields = schema.get("properties")
        if schema.get("type", "object") == "object" and isinstance(fields, dict):
            properties.update(fields)
            body_args = tuple(fields)
            required += [f for f in schema.get("required") or [] if f in fields]
        else:
            properties["body"] = schema
            whole_body = True
            if body.get("required"):
                required.append("body")
    described = [op.get("summary"), op.get("description")]
    input_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = list(dict.fromkeys(required))
    return RestTool(
        name=name,
        description=" ".join(d for d in described if isinstance(d, str) and d),
        input_schema=input_schema,
        method=method.upper(),
        url=url,
        query_args=tuple(query),
        header_args=tuple(headers),
        body_args=body_args,
        whole_body=whole_body,
    )
