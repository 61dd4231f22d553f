"""What one ai-data-masking config compiles to, and masking one call's texts with it.

A ``Masker`` is built once per config snapshot: the scanner over every replace_roles
regex (first, in config order, so they win a tie) and every enabled detector, the deny
words, and what to do with each rule's hits. ``Masker.session()`` starts one call; the
session is the function the body walkers pass each prompt text through, and it keeps the
call's ``Vault``.

Each text is looked at twice when its normalised form (``normalise``: NFKC, zero-width
characters and soft hyphens removed) differs from it: as sent, so that a rule written
for the characters the client typed still finds them, and as normalised, so that
``ｂｏｂ＠ｅｘａｍｐｌｅ．ｃｏｍ`` or ``bob\u200b@example.com`` is an e-mail address. A match
in the form is mapped back to the span of the client's text it came from (zero-width
characters inside it included), overlapping matches are joined, and the span is replaced
as a whole. The placeholder stands for exactly the characters the client wrote, so the
answer gets back what was sent, fullwidth letters and all; two spellings of one value
(``bob@example.com`` and ``ｂｏｂ＠example.com``) are two originals with two placeholders.
A ``hash`` value is the digest of the normalised span, so every spelling of a value
gets the same pseudonym.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tollway.masking.bodies import map_strings
from tollway.masking.detectors import DETECTORS
from tollway.masking.escapes import MAX_INNER, dump_inner_json, inner_json, unescape
from tollway.masking.lookalikes import find_in_lookalikes
from tollway.masking.normalise import Mapping, normalise
from tollway.masking.rules import SYSTEM_DENY, DenyWords, expand_value, hash_value
from tollway.masking.scanner import Rule, Scanner
from tollway.masking.vault import Vault


class Denied(Exception):
    """A prompt text that must not be sent; the message says what was found (for logs,
    never for the client: it may quote the sensitive value's kind, not the value)."""


@dataclass(frozen=True, slots=True)
class Role:
    """One Higress ``replace_roles`` entry, compiled."""

    pattern: re.Pattern[str]
    type: str  # "replace" | "hash"
    value: str = ""
    restore: bool = False


@dataclass(frozen=True, slots=True)
class _Action:
    detector: str | None = None  # built-in detector name, or None for a role
    kind: str = ""  # placeholder kind of a detector
    role: Role | None = None


# A span of the client's text to replace: start, end, the rule that found it, and where
# it found it: in the text itself or in its normalised form, from which position.
_Span = tuple[int, int, int, str, int]


class Masker:
    def __init__(
        self,
        roles: Sequence[Role] = (),
        detectors: Sequence[str] = tuple(DETECTORS),
        deny_words: Sequence[str] = (),
        *,
        system_deny: bool = False,
        deny_detected: bool = False,
    ) -> None:
        rules: list[Rule] = []
        actions: list[_Action] = []
        for role in roles:
            rules.append(Rule(role.pattern))
            actions.append(_Action(role=role))
        enabled = set(detectors)
        for name, (kind, detector_rules) in DETECTORS.items():
            if name in enabled:
                rules.extend(detector_rules)
                actions.extend(_Action(detector=name, kind=kind) for _ in detector_rules)
        self.scanner = Scanner(rules)
        self.actions = tuple(actions)
        self.deny_words = DenyWords(deny_words)
        self.system_deny = system_deny
        self.deny_detected = deny_detected

    def session(self, request_body: bytes) -> MaskSession:
        return MaskSession(self, Vault(request_body))

    @property
    def refuses(self) -> bool:
        """Whether a text can be refused for what it holds (deny words, system_deny)."""
        return bool(self.deny_words) or self.system_deny

    def check(self, text: str) -> None:
        """Raises ``Denied`` when ``text``, as sent or normalised, holds a deny word or
        (with ``system_deny``) a private key: how answers are checked."""
        form = normalise(text)
        self.refuse((text,) if form is text else (text, form))

    def refuse(self, forms: tuple[str, ...]) -> None:
        """``forms``: a text as sent and its normal form (the last); deny words are also
        looked for in that with Latin lookalikes folded (``lookalikes``)."""
        if self.deny_words:
            for view in forms:
                if (word := self.deny_words.first_in(view)) is not None:
                    raise Denied(f"deny word {word!r}")
            if (word := find_in_lookalikes(forms[-1], self.deny_words.first_in)) is not None:
                raise Denied(f"deny word {word!r}")
        if self.system_deny and any("PRIVATE KEY" in v and SYSTEM_DENY.search(v) for v in forms):
            raise Denied("a private key (system_deny)")

    @property
    def longest_refused(self) -> int:
        """How many characters a refused word or key header can span, at most, before
        normalisation removes anything: what a stream keeps of each text to catch one
        split between events."""
        longest = max((len(word) for word, _b, _a in self.deny_words.words), default=0)
        return max(longest, 64 if self.system_deny else 0) * 2


class MaskSession:
    """One call: ``mask(text)`` returns the text as the model may see it, or raises
    ``Denied``. A text it already produced is returned as it is (a field selected twice,
    by the protocol and by ``deny_jsonpath``, is masked once)."""

    def __init__(self, masker: Masker, vault: Vault) -> None:
        self.masker = masker
        self.vault = vault
        self._done: dict[str, str] = {}
        self._produced: set[str] = set()
        self._depth = 0  # levels of JSON inside strings being read (``_inner``)

    def mask(self, text: str) -> str:
        if text in self._produced:
            return text
        known = self._done.get(text)
        if known is not None:
            return known
        masked = self._mask(text)
        self._done[text] = masked
        self._produced.add(masked)
        return masked

    def _mask(self, text: str) -> str:
        inner = self._depth < MAX_INNER
        if inner and (text[:1] in _JSON_HEADS or text.lstrip()[:1] in _JSON_HEADS):
            masked_json = self._inner_json(text)
            if masked_json is not None:
                return masked_json
        masked = self._mask_text(text)
        if inner and "\\" in masked:
            # Escapes the model may decode (``masking.escapes``): read decoded too. Only
            # when that reading finds what the text as sent hid is the decoded text sent
            # (masked); else the text goes as it came (a path's or a regex's backslashes).
            decoded = unescape(masked)
            if decoded != masked:
                self._depth += 1
                try:
                    again = self.mask(decoded)
                finally:
                    self._depth -= 1
                if again != decoded:
                    return again
        return masked

    def _mask_text(self, text: str) -> str:
        masker = self.masker
        form = normalise(text)
        forms = (text,) if form is text else (text, form)
        masker.refuse(forms)
        spans = self._spans(text, form)
        if not spans:
            return text
        parts: list[str] = []
        last = 0
        for start, end, rule, source, at in spans:
            action = masker.actions[rule]
            original = text[start:end]
            role = action.role
            if role is None:
                if masker.deny_detected:
                    raise Denied(f"{action.detector} value (mode: deny)")
                token = self.vault.placeholder(action.kind, original)
            else:
                token = hash_value(normalise(original)) if role.type == "hash" else _replaced(role, source, at)
                if role.restore:
                    self.vault.remember(token, original)
            parts.append(text[last:start])
            parts.append(token)
            last = end
        parts.append(text[last:])
        return "".join(parts)

    def _inner_json(self, text: str) -> str | None:
        """JSON inside the string (a tool call's arguments, a tool's result), read as the
        model reads it, value by value and key by key, its escapes decoded: written back
        as JSON when anything in it was masked; None to read the text as it stands (its
        own scan then finds what a repeated key's lost value held)."""
        value = inner_json(text)
        if value is None:
            return None
        self._depth += 1
        try:
            masked = map_strings(value, self.mask, numbers=True, names=True)
        finally:
            self._depth -= 1
        return None if masked is value else dump_inner_json(masked)

    def _spans(self, text: str, form: str) -> list[_Span]:
        """The spans of ``text`` to replace, in order, none overlapping."""
        scan = self.masker.scanner.scan
        hits = scan(text)
        spans = [(h.start, h.end, h.rule, text, h.start) for h in hits]
        if form is text:
            return spans
        more = scan(form)
        if not more:
            return spans
        if len(form) == len(text):
            # Fullwidth punctuation in CJK text changes the form but no offset: when the
            # form's hits are the text's own, at the same places, there is nothing more.
            known = set(hits)
            if all(h in known and normalise(text[h.start : h.end]) == form[h.start : h.end] for h in more):
                return spans
        mapping = Mapping(text, form)
        spans.extend((*mapping.span(h.start, h.end), h.rule, form, h.start) for h in more)
        spans.sort(key=lambda s: (s[0], s[2]))
        joined = [spans[0]]
        for span in spans[1:]:
            start, end, rule, source, at = joined[-1]
            if span[0] < end:  # overlapping: one span, the first one's rule
                joined[-1] = (start, max(end, span[1]), rule, source, at)
            else:
                joined.append(span)
        return joined


# How JSON text inside a string begins (an object or an array): read as JSON (``_inner``).
_JSON_HEADS = ("{", "[")


def _replaced(role: Role, source: str, at: int) -> str:
    if "$" not in role.value:
        return role.value
    match = role.pattern.match(source, at)  # the scanner's own match, its groups
    return role.value if match is None else expand_value(role.value, match)
