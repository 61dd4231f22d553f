"""request-block (AUTHN, 320): refuse requests whose URL, headers or body contain
what must not leave the organisation.

Each list works on its own (Higress only checks the exact and regex lists when
``block_urls`` is set). Encodings are no way around a block: URLs are also matched
percent-decoded and with ``+`` as space, and bodies also as every decoded JSON string.
All substrings of one kind are compiled into one regular expression per snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, unquote_plus

import orjson
from pydantic import model_validator

from tollway.errors import BadRequest, Forbidden
from tollway.exchange import Exchange, Reply
from tollway.plugin import Phase, Plugin, PluginConfig, Scope
from tollway.services import Services


class RequestBlockConfig(PluginConfig):
    block_urls: list[str] = []
    block_exact_urls: list[str] = []
    block_regexp_urls: list[str] = []
    block_headers: list[str] = []
    block_bodies: list[str] = []
    blocked_code: int = 403
    blocked_message: str = ""
    case_sensitive: bool = True

    @model_validator(mode="after")
    def _check(self) -> RequestBlockConfig:
        if not (
            self.block_urls
            or self.block_exact_urls
            or self.block_regexp_urls
            or self.block_headers
            or self.block_bodies
        ):
            raise ValueError(
                "at least one of block_urls, block_exact_urls, block_regexp_urls, "
                "block_headers, block_bodies is required"
            )
        if not 100 <= self.blocked_code <= 599:
            raise ValueError("blocked_code must be an HTTP status (100-599)")
        for rx in self.block_regexp_urls:
            try:
                re.compile(rx)
            except re.error as exc:
                raise ValueError(f"block_regexp_urls: {rx!r} is not a valid regular expression: {exc}") from None
        return self


def _any_of(words: list[str], flags: int) -> re.Pattern[str] | None:
    words = [w for w in words if w]
    return re.compile("|".join(re.escape(w) for w in words), flags) if words else None


def _decodings(text: str) -> Iterator[str]:
    """The text as sent, then percent-decoded (``+`` kept and as space), until stable."""
    seen = {text}
    yield text
    current = text
    for _ in range(3):  # double and triple encoding, bounded
        for decoded in (unquote(current), unquote_plus(current)):
            if decoded not in seen:
                seen.add(decoded)
                yield decoded
        nxt = unquote_plus(current)
        if nxt == current:
            break
        current = nxt


def _json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _json_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _json_strings(v)


class RequestBlock(Plugin[RequestBlockConfig]):
    name = "request-block"
    phase = Phase.AUTHN
    priority = 320
    config_model = RequestBlockConfig

    def __init__(self, config: RequestBlockConfig, scope: Scope, services: Services) -> None:
        super().__init__(config, scope, services)
        flags = 0 if config.case_sensitive else re.IGNORECASE
        self.urls = _any_of(config.block_urls, flags)
        self.exact = frozenset(u if config.case_sensitive else u.lower() for u in config.block_exact_urls)
        self.regexps = tuple(re.compile(rx, flags) for rx in config.block_regexp_urls)
        self.headers = _any_of(config.block_headers, flags)
        self.bodies = _any_of(config.block_bodies, flags)
        self._blocked_body: bytes | None = None
        message = config.blocked_message
        if message:
            try:
                parsed = orjson.loads(message)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                self._blocked_body = orjson.dumps(parsed)
        self.message = message or "request blocked"

    def _block(self, ex: Exchange, what: str) -> Forbidden:
        ex.blocked_by = self.name
        return Forbidden(
            self.message,
            reason="request-block.blocked",
            status=self.config.blocked_code,
            code="request_blocked",
            body=self._blocked_body,
        )

    def _url_blocked(self, url: str, path: str) -> bool:
        for text in _decodings(url):
            if self.urls is not None and self.urls.search(text):
                return True
            if self.exact:
                t = text if self.config.case_sensitive else text.lower()
                p = path if self.config.case_sensitive else path.lower()
                if t in self.exact or p in self.exact:
                    return True
            if any(rx.search(text) for rx in self.regexps):
                return True
        return False

    async def request_headers(self, ex: Exchange) -> Reply | None:
        req = ex.request
        if self.urls is not None or self.exact or self.regexps:
            url = f"{req.path}?{req.query}" if req.query else req.path
            if self._url_blocked(url, req.path):
                raise self._block(ex, "url")
        if self.headers is not None:
            for name, value in req.headers:
                line = f"{name}: {value}"
                if any(self.headers.search(t) for t in _decodings(line)):
                    raise self._block(ex, "header")
        return None

    async def request_body(self, ex: Exchange) -> Reply | None:
        body = ex.request.body
        if self.bodies is None or not body:
            return None
        text = body.decode("utf-8", "replace")
        if self.bodies.search(text):
            raise self._block(ex, "body")
        if "%" in text or "+" in text:
            if any(self.bodies.search(t) for t in _decodings(text)):
                raise self._block(ex, "body")
        if "\\" in text:  # JSON escapes: match the text the model would see
            try:
                parsed = ex.request.json()  # parsed once for every plugin
            except BadRequest:
                return None
            if any(self.bodies.search(s) for s in _json_strings(parsed)):
                raise self._block(ex, "body")
        return None
