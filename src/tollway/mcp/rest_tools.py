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
from urllib.parse import quote, unquote, urlencode, urlsplit

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from tollway.config.schema import RestTool as RestToolConfig

_PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_\-]+)\s*\}\}")
_DOT_SEGMENTS = frozenset({".", ".."})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _fill_url(template: str, args: dict[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: quote(_text(args.get(m[1])), safe=""), template)


def _has_dot_segment(path: str) -> bool:
    """Whether ``path`` has a ``.`` or ``..`` segment as the service may read it: as sent,
    and decoded once, twice and three times (an argument's ``/`` goes out as ``%2F``,
    which many services decode before they resolve dot segments: Python's http.server,
    nginx proxying to a URI, Apache with ``AllowEncodedSlashes Decode``), a backslash
    counting as a slash."""
    for _ in range(4):
        if any(segment in _DOT_SEGMENTS for segment in path.replace("\\", "/").split("/")):
            return True
        decoded = unquote(path)
        if decoded == path:
            return False
        path = decoded
    return True  # still encoded after three decodings: no honest path is


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
    # ``input_schema`` compiled (``__post_init__``).
    _validator: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Compile ``input_schema``; raises ``ValueError`` for one that is no JSON Schema."""
        if self.input_schema:
            checker = validator_for(self.input_schema, default=Draft202012Validator)
            try:
                checker.check_schema(self.input_schema)
            except SchemaError as exc:
                raise ValueError(f"tool {self.name!r}: not a JSON Schema: {exc.message}") from None
            object.__setattr__(self, "_validator", checker(self.input_schema))

    def _schema_problem(self, args: dict[str, Any]) -> str | None:
        """What ``args`` break of the tool's ``inputSchema`` (JSON Schema), or None (a
        schema whose references lead nowhere checks nothing rather than every call)."""
        if self._validator is None:
            return None
        try:
            error = best_match(self._validator.iter_errors(args))
        except Unresolvable:
            return None
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path)
        return f"{where}: {error.message}" if where else error.message

    @classmethod
    def from_config(cls, tc: RestToolConfig) -> RestTool:
        r = tc.request
        return cls(tc.name, tc.description, dict(tc.inputSchema), r.method, r.url, tuple(r.headers.items()), r.body)

    def request(self, args: dict[str, Any]) -> tuple[str, str, list[tuple[str, str]], bytes]:
        """The method, URL, headers and body of a call with ``args``; raises
        ``ValueError`` for arguments the tool's ``inputSchema`` refuses, a path that
        would have a ``.`` or ``..`` segment (the service would resolve it away, to
        another resource than the tool's), and a header value with control characters."""
        problem = self._schema_problem(args)
        if problem is not None:
            raise ValueError(f"the arguments do not fit the tool's inputSchema: {problem}")
        url = _fill_url(self.url, args)
        if _has_dot_segment(urlsplit(url).path):
            raise ValueError("an argument would make a '.' or '..' segment of the tool's URL path")
        query = [(name, _text(args[name])) for name in self.query_args if args.get(name) is not None]
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        headers = [(k.lower(), _fill_text(v, args)) for k, v in self.headers]
        headers += [(name.lower(), _text(args[name])) for name in self.header_args if args.get(name) is not None]
        for name, value in headers:
            if _CONTROL.search(value):
                raise ValueError(f"the value of header {name!r} would have control characters")
            if not value.isascii():
                # (A header's value goes as Latin-1 bytes: anything else failed in the
                # client with a traceback, answered as a JSON-RPC error with code 0.)
                raise ValueError(f"the value of header {name!r} would have characters a header cannot carry")
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
