"""What a provider's answer may show of the organisation's keys, taken out before a
client sees it.

Providers name the key they were sent in their errors: OpenAI and Anthropic answer a
bad key with ``Incorrect API key provided: sk-proj-****abcd`` (its prefix and last four
characters), and a self-hosted server or a debugging proxy in front of one may echo the
whole key, or the request's headers. Relayed as they came, those answers would give
every consumer part or all of the key the gateway exists to keep from them.

``ProviderSecrets`` holds one provider's keys (``apiTokens``) and scrubs them out of:

- every error answer's body (status ≥ 400), and a stream's error event: each key, and
  any masked run of characters that ends in a key's last four (``sk-proj-****abcd``),
  become ``[redacted]``;
- every answer's headers: a header whose value holds a key (or a masked one) is dropped.

A body is matched as it came, then each JSON string in it that holds an escape is read
and matched as the client's parser will read it: ``Zx9\\/kQ2`` (PHP's ``json_encode``),
``\\u002b``, ``\\u2022`` for the bullets of a masked key (Python's ``json.dumps``) all
spell the key to a client, and the bytes alone do not match it. Such a string, redacted,
is written again by ``orjson`` (its other escapes then as ``orjson`` writes them).

A success's body is the model's output, which never saw the key, and is not scanned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson

REDACTED = "[redacted]"
# A value shorter than this is no secret worth the name (a placeholder key for a local
# server, "x", "token"): replaced in text it would garble the answer ("conte[redacted]t").
MIN_SECRET = 8
# A key shorter than this is matched only whole (its tail would match ordinary text).
_TAIL_FROM = 12
_TAIL = 4
# The most characters a masked key holds before its stars, and between them and its tail.
_MASKED_SPAN = 200
# A JSON string literal: its quotes, and the escapes in it.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _alternatives(keys: tuple[str, ...], as_bytes: bool) -> str:
    """A pattern for each key whole, and for each one masked: key-like characters, at
    least three asterisks (or bullets), more of either, then the key's last four, not
    followed by another key character (``sk-****abcd``, not ``sk-****abcdef``). For a
    bytes pattern the text is the UTF-8 bytes as latin-1 characters (see ``__init__``).

    A masked key is looked for only where a run of key characters and stars begins
    (nothing of either before it), its parts taken possessively and bounded: tried at
    every position, unbounded, a 40 KB error body of one word took 26 s (the time grew
    with the square of its length; a red team's finding: 2 MB held a core for minutes,
    and every call with it)."""

    def esc(text: str) -> str:
        return re.escape(text.encode()).decode("latin-1") if as_bytes else re.escape(text)

    bullet = esc(chr(0x2022))
    star = f"(?:\\*|{bullet})"
    begins = f"(?<![\\w\\-.*])(?<!{bullet})"
    between = f"(?:[\\w\\-.]|{star}){{0,{_MASKED_SPAN}}}?"
    whole = [esc(k) for k in sorted(keys, key=len, reverse=True)]
    tails = [esc(k[-_TAIL:]) for k in keys if len(k) >= _TAIL_FROM]
    masked = [f"{begins}[\\w\\-.]{{0,{_MASKED_SPAN}}}+{star}{{3,}}+{between}{tail}(?![\\w\\-])" for tail in tails]
    return "|".join(whole + masked)


class ProviderSecrets:
    __slots__ = ("_keys", "_pattern", "_pattern_bytes")

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = tuple(k for k in keys if len(k) >= MIN_SECRET)
        self._pattern = re.compile(_alternatives(self._keys, False)) if self._keys else None
        self._pattern_bytes = re.compile(_alternatives(self._keys, True).encode("latin-1")) if self._keys else None

    @property
    def any(self) -> bool:
        """Whether there is anything to take out."""
        return bool(self._keys)

    def text(self, text: str) -> str:
        """``text`` with every key, whole or masked, replaced."""
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def body(self, body: bytes) -> bytes:
        """``body`` (an error answer's, or an event) with every key replaced."""
        if self._pattern_bytes is None:
            return body
        body = self._pattern_bytes.sub(REDACTED.encode(), body)
        if b"\\" in body:
            body = _JSON_STRING.sub(self._unescaped, body)
        return body

    def _unescaped(self, found: re.Match[bytes]) -> bytes:
        """One JSON string of a body, redacted as its escapes read (see the module)."""
        literal = found.group(0)
        if b"\\" not in literal:
            return literal
        try:
            text = orjson.loads(literal)
        except orjson.JSONDecodeError:
            return literal  # (no JSON string: a lone surrogate; no key is spelled so)
        redacted = self.text(text)
        return literal if redacted == text else orjson.dumps(redacted)

    def headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """``headers`` without any that shows a key. One look at all the values at once:
        this runs on every answer."""
        if not self._keys or not headers:
            return headers
        joined = "\n".join([v for _, v in headers])
        if not any(k in joined for k in self._keys) and "***" not in joined and "\u2022" not in joined:
            return headers
        assert self._pattern is not None
        return [(k, v) for k, v in headers if self._pattern.search(v) is None]


def of_headers(headers: Sequence[tuple[str, str]]) -> ProviderSecrets:
    """The secrets credential headers carry: each value, and the token after an auth
    scheme (``Bearer t``)."""
    values = [v for _, v in headers]
    return ProviderSecrets([*values, *(v.split(" ", 1)[1] for v in values if " " in v.strip())])
