"""REST tools: an MCP tool that is one HTTP request to a REST service, its arguments
laid into the request.

A configured tool (``mcp_servers[].tools``) says where with ``{{args.x}}`` placeholders:
in the URL the argument is percent-encoded, in a header value it is its text, in the
JSON body a string that is only a placeholder takes the argument's JSON value (a
number stays a number) and any other string its text. A missing argument is empty (or
null in the body). A tool made from an OpenAPI operation (``openapi``) also names the
arguments that go as query parameters, headers and body fields when the call gives them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from tollway.config.schema import RestTool as RestToolConfig

_PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_\-]+)\s*\}\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _fill_url(template: str, args: dict[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: quote(_text(args.get(m[1])), safe=""), template)


def _fill_text(template: str, args: dict[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: _text(args.get(m[1])), template)


def _fill_body(template: Any, args: dict[str, Any]) -> Any:
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template.strip())
        return args.get(whole[1]) if whole is not None else _fill_text(template, args)
    if isinstance(template, dict):
        return {k: _fill_body(v, args) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill_body(v, args) for v in template]
    return template


@dataclass(frozen=True, slots=True)
class RestTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: Any = None
    # OpenAPI parameters: the arguments sent as query parameters and headers when given,
    # and the ones that make the JSON body's fields (None: the ``body`` template).
    query_args: tuple[str, ...] = ()
    header_args: tuple[str, ...] = ()
    body_args: tuple[str, ...] | None = None
    # An OpenAPI body that is not an object: sent whole from the argument ``body``.
    whole_body: bool = field(default=False)

    @classmethod
    def from_config(cls, tc: RestToolConfig) -> RestTool:
        r = tc.request
        return cls(tc.name, tc.description, dict(tc.inputSchema), r.method, r.url, tuple(r.headers.items()), r.body)

    def request(self, args: dict[str, Any]) -> tuple[str, str, list[tuple[str, str]], bytes]:
        """The method, URL, headers and body of a call with ``args``; raises
        ``ValueError`` for a header value with control characters."""
        url = _fill_url(self.url, args)
        query = [(name, _text(args[name])) for name in self.query_args if args.get(name) is not None]
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        headers = [(k.lower(), _fill_text(v, args)) for k, v in self.headers]
        headers += [(name.lower(), _text(args[name])) for name in self.header_args if args.get(name) is not None]
        for name, value in headers:
            if _CONTROL.search(value):
                raise ValueError(f"the value of header {name!r} would have control characters")
        if self.whole_body:
            body: Any = args.get("body")
        elif self.body_args is not None:
            body = {name: args[name] for name in self.body_args if name in args} or None
        else:
            body = _fill_body(self.body, args)
        payload = b""
        if body is not None:
            payload = orjson.dumps(body)
            headers.append(("content-type", "application/json"))
        return self.method, url, headers, payload
