"""request-block (AUTHN, 320): refuse requests whose URL, headers or body contain
what must not leave the organisation.

Each list works on its own (Higress only checks the exact and regex lists when
``block_urls`` is set). Encodings are no way around a block: URLs are also matched
percent-decoded and with ``+`` as space, bodies also as every decoded JSON string, and
every one of these texts also normalised (``tollway.masking.normalise``: NFKC, zero-width
characters and soft hyphens removed) and with Latin lookalikes folded
(``tollway.masking.lookalikes``: ``pаssword`` with a Cyrillic ``а``, ``sk‑live`` with a
non-breaking hyphen), so fullwidth letters, zero-width joiners, soft hyphens and
lookalike letters are none either; the words are matched as written and normalised
(``plugins.words``: case-insensitive lists compare Unicode case foldings, and a phrase's
runs of whitespace match any run of whitespace).

A body that cannot be read through is refused, whatever the entry's ``failure_mode``:
the JSON walk keeps its own stack (no nesting exhausts it), a body that does not parse
is unescaped as JSON text instead, and anything that still fails while the body is
looked at blocks the request rather than letting it pass unread.

Cost per request: an ASCII body without ``%``, ``+`` or ``\\`` is searched once, as
before; only other bodies pay for their decodings and normal forms, and a body of
``OFF_LOOP_BYTES`` or more is looked through on a thread, not the event loop.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from pydantic import AliasChoices, Field, model_validator

from tollway.errors import BadRequest, Forbidden
from tollway.exchange import Exchange, Reply
from tollway.masking.escapes import unescape, unescaped_levels
from tollway.masking.lookalikes import find_in_lookalikes
from tollway.masking.normalise import normalise
from tollway.plugin import Phase, Plugin, PluginConfig, Scope
from tollway.plugins.words import Words
from tollway.services import Services

log = logging.getLogger("tollway.plugins.request_block")


# A body this large is looked through on a thread of its own, not the event loop's: its
# decodings, normal forms and lookalike views take about 0.13 s a megabyte of non-ASCII
# text (more with ``%`` and ``+`` in it), which on the loop would hold every other call.
# One thread for all such bodies: they queue for it, so the loop shares the process with
# one of them at a time and keeps about half the CPU whatever a flood of them does.
OFF_LOOP_BYTES = 128 * 1024
_executor: ThreadPoolExecutor | None = None


def _big_bodies() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollway-request-block")
    return _executor


class RequestBlockConfig(PluginConfig):
    block_urls: list[str] = []
    block_exact_urls: list[str] = []
    block_regexp_urls: list[str] = []
    block_headers: list[str] = []
    # ``block_bodys`` is the name Higress's C++ plugin reads.
    block_bodies: list[str] = Field([], validation_alias=AliasChoices("block_bodies", "block_bodys"))
    blocked_code: int = 403
    blocked_message: str = ""
    case_sensitive: bool = True

    @model_validator(mode="before")
    @classmethod
    def _one_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "block_bodies" in data and "block_bodys" in data:
            raise ValueError("give block_bodies or block_bodys (the same list), not both")
        return data

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
        if not 200 <= self.blocked_code <= 599 or self.blocked_code in (204, 205, 304):
            raise ValueError("blocked_code must be a final HTTP status with a body (200-599, not 204, 205 or 304)")
        for rx in self.block_regexp_urls:
            try:
                re.compile(rx)
            except re.error as exc:
                raise ValueError(f"block_regexp_urls: {rx!r} is not a valid regular expression: {exc}") from None
        return self


def _any_of(words: list[str], case_sensitive: bool) -> Words | None:
    """The words, each as written and normalised; None for no word."""
    every = Words((form for w in words if w for form in (w, normalise(w))), case_sensitive=case_sensitive)
    return every if every else None


def _decodings(text: str) -> Iterator[str]:
    """The text as sent, then percent-decoded (``+`` kept and as space), until stable."""
    seen = {text}
    yield text
    current = text
    for _ in range(3):  # double and triple encoding, bounded
        plain = unquote(current)
        plus = unquote(current.replace("+", " ")) if "+" in current else plain
        for decoded in (plain, plus):
            if decoded not in seen:
                seen.add(decoded)
                yield decoded
        if plus == current:
            break
        current = plus


# A run of percent-escapes: decoded as one, as ``urllib.parse.unquote`` decodes them (a
# character made of several escapes is in one run; ASCII between runs ends any).
_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
# A ``%`` that begins no escape: kept as it is.
_NOT_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _escapes(run: re.Match[str]) -> str:
    return bytes.fromhex(run.group().replace("%", "")).decode("utf-8", "replace")


def unquote(text: str) -> str:
    """``urllib.parse.unquote(text)``, the same text (a test holds them to it), in C.

    urllib's works in Python for each run of ASCII between other characters (about 3 µs
    each: a megabyte of Cyrillic with ``%`` in it took a third of a second a pass), and a
    regex with a call per run of escapes still took a tenth. Here the escapes are made
    quoted-printable ones (``%41`` is ``=41``; a ``=`` of the text is ``=3D`` and a ``%``
    that begins no escape ``=25``, so every ``=`` is followed by two hex digits and none is
    a soft line break) and ``binascii.a2b_qp`` decodes them all in one pass; the bytes are
    then read as UTF-8, invalid ones replaced, as urllib reads each run of escapes (text
    characters are whole UTF-8 sequences, so no escape joins one or is joined by one)."""
    if "%" not in text:
        return text
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (urllib keeps it): the regex's way
        return _ESCAPES.sub(_escapes, text)
    quoted = _NOT_ESCAPE.sub(b"=25", raw.replace(b"=", b"=3D")).replace(b"%", b"=")
    return binascii.a2b_qp(quoted).decode("utf-8", "replace")


def _forms(texts: Iterable[str]) -> Iterator[str]:
    """Each text, then its normal form where that differs."""
    for text in texts:
        yield text
        form = normalise(text)
        if form is not text:
            yield form


def _found(found: Callable[[str], bool], texts: Iterable[str]) -> bool:
    """Whether ``found`` finds a word in any of ``texts``: as it is, normalised, or that
    with its Latin lookalikes folded (``masking.lookalikes``). ASCII text is its own
    normal form and has nothing to fold: one look."""
    for text in texts:
        if found(text):
            return True
        if not text.isascii():
            form = normalise(text)
            if (form is not text and found(form)) or find_in_lookalikes(form, found):
                return True
    return False


def _header_lines(name: str, value: str) -> Iterator[str]:
    """``name: value`` as a server may read it: the value's bytes as UTF-8 too (they come
    as Latin-1, so a fullwidth letter would be three other characters and escape the
    normal form), and ``_`` in the name as ``-`` (as CGI-style servers read it)."""
    names = (name, name.replace("_", "-")) if "_" in name else (name,)
    values = [value]
    if not value.isascii():
        try:
            values.append(value.encode("latin-1").decode("utf-8"))
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    for n in names:
        for v in values:
            yield f"{n}: {v}"


def _json_strings(value: Any) -> Iterator[str]:
    """Every key and string value in parsed JSON, at any depth: an explicit stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for k, v in item.items():
                yield k
                stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)


class RequestBlock(Plugin[RequestBlockConfig]):
    name = "request-block"
    phase = Phase.AUTHN
    priority = 320
    config_model = RequestBlockConfig

    def __init__(self, config: RequestBlockConfig, scope: Scope, services: Services) -> None:
        super().__init__(config, scope, services)
        flags = 0 if config.case_sensitive else re.IGNORECASE
        self.urls = _any_of(config.block_urls, config.case_sensitive)
        self.exact = frozenset(u if config.case_sensitive else u.lower() for u in config.block_exact_urls)
        self.regexps = tuple(re.compile(rx, flags) for rx in config.block_regexp_urls)
        self.headers = _any_of(config.block_headers, config.case_sensitive)
        self.bodies = _any_of(config.block_bodies, config.case_sensitive)
        self._blocked_body: bytes | None = None
        self._failure_logged = -60.0
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
        if self.urls is not None and _found(self.urls.found, _decodings(url)):
            return True
        if not self.exact and not self.regexps:
            return False
        for text in _forms(_decodings(url)):
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
            found = self.headers.found
            for name, value in req.headers:
                if "_" in name or not value.isascii():  # (rare: most heads are ASCII, dashed)
                    if any(_found(found, _decodings(line)) for line in _header_lines(name, value)):
                        raise self._block(ex, "header")
                elif _found(found, _decodings(f"{name}: {value}")):
                    raise self._block(ex, "header")
        return None

    async def request_body(self, ex: Exchange) -> Reply | None:
        body = ex.request.body
        if self.bodies is None or not body:
            return None
        try:
            if len(body) < OFF_LOOP_BYTES:
                blocked = self._body_blocked(ex, body)
            else:  # seconds for megabytes of text: the loop keeps serving meanwhile
                loop = asyncio.get_running_loop()
                blocked = await loop.run_in_executor(_big_bodies(), self._body_blocked, ex, body)
        except Exception:  # a body it cannot read through is not let through unread
            now = time.monotonic()
            if now - self._failure_logged >= 60.0:  # a body that always fails costs a line a minute
                self._failure_logged = now
                log.warning("request %s: body could not be checked; blocked", ex.request_id, exc_info=True)
            blocked = True
        if blocked:
            raise self._block(ex, "body")
        return None

    def _body_blocked(self, ex: Exchange, body: bytes) -> bool:
        assert self.bodies is not None
        search = self.bodies.found
        text = body.decode("utf-8", "replace")
        if _found(search, _decodings(text) if "%" in text or "+" in text else (text,)):
            return True
        if "\\" not in text:
            return False
        # JSON escapes: match the text the model would see.
        try:
            strings: Iterable[str] = _json_strings(ex.request.json())  # parsed once for every plugin
        except BadRequest:
            strings = (unescape(text),)
        for s in strings:
            # (A string holding escapes of its own, JSON inside JSON such as a tool
            # call's arguments, is read as the model reads it too: ``masking.escapes``.)
            for level in unescaped_levels(s) if "\\" in s else (s,):
                decoded = _decodings(level) if "%" in level or "+" in level else (level,)
                if _found(search, decoded):
                    return True
        return False
