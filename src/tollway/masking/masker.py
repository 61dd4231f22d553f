"""What one ai-data-masking config compiles to, and masking one call's texts with it.

A ``Masker`` is built once per config snapshot: the scanner over every replace_roles
regex (first, in config order, so they win a tie) and every enabled detector, the deny
words, and what to do with each rule's hits. ``Masker.session()`` starts one call; the
session is the function the body walkers pass each prompt text through, and it keeps the
call's ``Vault``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tollway.masking.detectors import DETECTORS
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


class MaskSession:
    """One call: ``mask(text)`` returns the text as the model may see it, or raises
    ``Denied``. A text it already produced is returned as it is (a field selected twice,
    by the protocol and by ``deny_jsonpath``, is masked once)."""

    def __init__(self, masker: Masker, vault: Vault) -> None:
        self.masker = masker
        self.vault = vault
        self._done: dict[str, str] = {}
        self._produced: set[str] = set()

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
        masker = self.masker
        if masker.deny_words and (word := masker.deny_words.first_in(text)) is not None:
            raise Denied(f"deny word {word!r}")
        if masker.system_deny and "PRIVATE KEY" in text and SYSTEM_DENY.search(text):
            raise Denied("a private key (system_deny)")
        hits = masker.scanner.scan(text)
        if not hits:
            return text
        parts: list[str] = []
        last = 0
        for hit in hits:
            action = masker.actions[hit.rule]
            original = text[hit.start : hit.end]
            role = action.role
            if role is None:
                if masker.deny_detected:
                    raise Denied(f"{action.detector} value (mode: deny)")
                token = self.vault.placeholder(action.kind, original)
            else:
                token = hash_value(original) if role.type == "hash" else self._replaced(role, text, hit.start)
                if role.restore:
                    self.vault.remember(token, original)
            parts.append(text[last : hit.start])
            parts.append(token)
            last = hit.end
        parts.append(text[last:])
        return "".join(parts)

    @staticmethod
    def _replaced(role: Role, text: str, start: int) -> str:
        if "$" not in role.value:
            return role.value
        match = role.pattern.match(text, start)  # the scanner's own match, its groups
        return role.value if match is None else expand_value(role.value, match)
