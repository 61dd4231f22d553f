"""One call's placeholders, and the way back to the originals.

Placeholders look like ``[EMAIL_1]``: ASCII, no spaces and no characters JSON or Markdown
escape, so models copy them verbatim (and tokenisers keep them to a few tokens); the
brackets read as "redacted" so models do not try to fill them in; the kind tells the model
what the value was, so it can still reason about it ("write to [EMAIL_1]"); and the
closing bracket means no placeholder is the start of another (``[EMAIL_1]`` vs
``[EMAIL_12]``), so a stream can tell when one is complete. Within a call the same value
always gets the same placeholder; a placeholder the client itself wrote is never issued.
"""

from __future__ import annotations

import re
from collections.abc import Hashable

import orjson

PLACEHOLDER = re.compile(r"\[[A-Z][A-Z_]*_[0-9]+\]")


class Vault:
    """Tokens issued in one call: built-in placeholders, and the replace_roles values
    (Higress ``restore: true``) that stand for one original each."""

    def __init__(self, request_body: bytes) -> None:
        self._request_body = request_body
        self._taken: set[str] | None = None
        self._issued: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self._ambiguous: set[str] = set()
        self.only_placeholders = True
        self._regex: re.Pattern[str] | None = None
        self.tokens: dict[str, str] = {}
        self._escaped: dict[str, str] = {}

    def placeholder(self, kind: str, original: str) -> str:
        token = self._issued.get((kind, original))
        if token is not None:
            return token
        if self._taken is None:
            self._taken = set(PLACEHOLDER.findall(self._request_body.decode("utf-8", "replace")))
        n = self._counts.get(kind, 0) + 1
        while f"[{kind}_{n}]" in self._taken:
            n += 1
        self._counts[kind] = n
        token = f"[{kind}_{n}]"
        self._issued[(kind, original)] = token
        self.tokens[token] = original
        self._regex = None
        return token

    def remember(self, token: str, original: str) -> None:
        """A replace_roles value to put back; one that stood for two different originals
        is put back nowhere (as in Higress)."""
        if not token or token in self._ambiguous:
            return
        known = self.tokens.get(token)
        if known is None:
            self.tokens[token] = original
            self.only_placeholders = self.only_placeholders and PLACEHOLDER.fullmatch(token) is not None
        elif known != original:
            del self.tokens[token]
            self._ambiguous.add(token)
        self._regex = None

    @property
    def regex(self) -> re.Pattern[str]:
        if self._regex is None:
            if self.only_placeholders:
                self._regex = PLACEHOLDER
            else:  # longest first, so a token that contains another wins
                tokens = sorted(self.tokens, key=len, reverse=True)
                self._regex = re.compile("|".join(re.escape(t) for t in tokens))
        return self._regex

    def restore(self, text: str) -> str:
        if not self.tokens or (self.only_placeholders and "[" not in text):
            return text
        tokens = self.tokens
        return self.regex.sub(lambda m: tokens.get(m.group(), m.group()), text)

    def restore_json(self, text: str) -> str:
        """``restore`` for text that is JSON (a tool call's ``arguments``): each original
        goes back escaped as a JSON string's content, since a placeholder stands inside
        one there (an original with a newline, a quote or a backslash, put back as it is,
        made the arguments JSON no client could parse)."""
        if not self.tokens or (self.only_placeholders and "[" not in text):
            return text
        escaped = self.escaped
        return self.regex.sub(lambda m: escaped.get(m.group(), m.group()), text)

    @property
    def escaped(self) -> dict[str, str]:
        """Each token's original as JSON string content."""
        if len(self._escaped) != len(self.tokens):
            self._escaped = {t: orjson.dumps(o).decode()[1:-1] for t, o in self.tokens.items()}
        return self._escaped


class StreamRestorer:
    """Restores tokens in text that arrives in pieces (stream events).

    Each streamed field (a choice's content, a tool call's arguments, a content block)
    is a ``slot``. The tail of a piece that could be the start of a token is held back
    until the next piece of that slot completes it (and it is restored) or shows it was
    not one (and it is sent as it was); ``flush`` gives back what is held at the end.
    """

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.pending: dict[Hashable, str] = {}
        self._prefixes = {t[:i] for t in vault.tokens for i in range(1, len(t))}
        self._longest = max((len(t) for t in vault.tokens), default=0)

    def feed(self, slot: Hashable, text: str, *, json_text: bool = False) -> str:
        """``json_text``: the slot streams JSON (a tool call's arguments), where an
        original goes back escaped (``Vault.restore_json``)."""
        held = self.pending.pop(slot, None)
        if held:
            text = held + text
        tokens = self.vault.escaped if json_text else self.vault.tokens
        parts: list[str] = []
        last = 0
        if not self.vault.only_placeholders or "[" in text:
            for m in self.vault.regex.finditer(text):
                parts.append(text[last : m.start()])
                parts.append(tokens.get(m.group(), m.group()))
                last = m.end()
        tail = text[last:]
        hold = self._hold(tail)
        if hold:
            self.pending[slot] = tail[-hold:]
            tail = tail[:-hold]
        if not parts:
            return tail
        parts.append(tail)
        return "".join(parts)

    def _hold(self, tail: str) -> int:
        """How many characters at the end of ``tail`` could begin a token."""
        if self.vault.only_placeholders:  # a placeholder begins with its only "["
            i = tail.rfind("[", max(0, len(tail) - self._longest + 1))
            return len(tail) - i if i >= 0 and tail[i:] in self._prefixes else 0
        for k in range(min(len(tail), self._longest - 1), 0, -1):
            if tail[-k:] in self._prefixes:
                return k
        return 0

    def flush(self, slot: Hashable) -> str:
        return self.pending.pop(slot, "")
