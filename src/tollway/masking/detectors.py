"""The built-in detectors: what each kind of sensitive value looks like, and the checks
that keep look-alikes out.

==============  ===============  ==========================================================
detector        placeholder      what it takes (ASCII digits only)
==============  ===============  ==========================================================
``email``       ``[EMAIL_n]``    local@domain.tld (TLD of 2+ letters), found from each ``@``
``phone``       ``[PHONE_n]``    ``+`` and 8-15 digits; North American ``(NXX) NXX-XXXX`` /
                                 ``NXX-NXX-XXXX`` / ``NXX.NXX.XXXX``; Chinese mobile
                                 ``1[3-9]`` + 9 digits
``card``        ``[CARD_n]``     13-19 digits, plain or grouped by spaces or dashes, with an
                                 issuer prefix (2221-2720, 3, 4, 5, 6) and a valid Luhn sum
``cn_id``       ``[CN_ID_n]``    Chinese resident ID: 18 characters, a real birth date and
                                 the ISO 7064 MOD 11-2 check character
``us_ssn``      ``[SSN_n]``      ``AAA-GG-SSSS`` outside the never-issued ranges (area 000,
                                 666, 9xx; group 00; serial 0000); undashed 9-digit runs
                                 are too ambiguous to take
``ipv4``        ``[IP_n]``       dotted quads, every octet ≤ 255, not part of a longer
                                 dotted number
``api_key``     ``[SECRET_n]``   ``sk-…`` (OpenAI, Anthropic), AWS access key ids
                                 (``AKIA…``/``ASIA…``) and ``aws_secret_access_key = …``
                                 values, GitHub, GitLab, Slack and Google API keys, JWTs,
                                 PEM private key blocks
==============  ===============  ==========================================================

Every pattern starts with a literal or a digit, so the scanner only tries it where such a
character is; none can match inside a longer run of its own characters.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator

from tollway.masking.rules import SYSTEM_DENY
from tollway.masking.scanner import Rule

_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    r"\.[A-Za-z]{2,63}(?![A-Za-z0-9]|\.[A-Za-z0-9])"  # (no TLD has a dash: one ends it)
)


def find_emails(text: str, pos: int = 0) -> Iterator[tuple[int, int]]:
    """E-mail addresses starting at ``pos`` or after, found from each ``@`` (memchr-fast)
    outwards."""
    at = text.find("@", pos)
    done = pos
    while at >= 0:
        start = at
        floor = max(done, at - 64)
        while start > floor and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        while start < at and text[start] == ".":
            start += 1
        domain = _DOMAIN.match(text, at + 1) if start < at and text[at - 1] != "." else None
        if domain is not None:
            done = domain.end()
            yield start, done
            at = text.find("@", done)
        else:
            at = text.find("@", at + 1)


_PHONES = (  # one rule per shape, so each digit-led one carries its own (?<![…]) guard
    r"\+(?<![0-9A-Za-z]\+)[1-9][0-9]{0,2}(?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,4})){2,6}(?![0-9])",
    r"\((?<![0-9A-Za-z]\()[2-9][0-9]{2}\) ?[2-9][0-9]{2}[-. ][0-9]{4}(?![0-9])",
    r"(?<![0-9A-Za-z.+-])[2-9][0-9]{2}-[2-9][0-9]{2}-[0-9]{4}(?![0-9]|-[0-9])",
    r"(?<![0-9A-Za-z.+-])[2-9][0-9]{2}\.[2-9][0-9]{2}\.[0-9]{4}(?![0-9]|\.[0-9])",
    r"(?<![0-9A-Za-z])1[3-9][0-9]{9}(?![0-9])",
)


def _phone_ok(text: str) -> bool:
    if text[0] != "+":
        return True
    digits = sum(c.isdigit() for c in text)
    return 8 <= digits <= 15


_CARD = re.compile(
    r"(?<![0-9])[2-6][0-9]{3}"
    r"(?:[0-9]{9,15}|(?: [0-9]{4}){2} [0-9]{1,7}|(?:-[0-9]{4}){2}-[0-9]{1,7}| [0-9]{6} [0-9]{5}|-[0-9]{6}-[0-9]{5})"
    r"(?![0-9])"
)


# Each ASCII digit as its value, and as the digits of its double summed (what Luhn adds
# for every second digit from the right): bytes, so that ``sum`` adds them in C.
_LUHN_PLAIN = bytes.maketrans(b"0123456789", bytes(range(10)))
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))


def luhn_ok(digits: str) -> bool:
    """The Luhn check of an ASCII digit string. A run of digit groups is checked at
    every group, so this is most of what scanning one costs: no Python loop per digit."""
    raw = digits.encode()
    return (sum(raw[::-2].translate(_LUHN_PLAIN)) + sum(raw[-2::-2].translate(_LUHN_DOUBLED))) % 10 == 0


def _card_ok(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19:
        return False
    if digits[0] == "2" and not 2221 <= int(digits[:4]) <= 2720:
        return False
    return luhn_ok(digits)


_CN_ID = re.compile(
    r"(?<![0-9])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]"
    r"(?![0-9A-Za-z])"
)
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"


def cn_id_ok(value: str) -> bool:
    """Birth date real, and the last character the ISO 7064 MOD 11-2 check of the rest."""
    if len(value) != 18:
        return False
    try:
        datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    total = sum(int(c) * w for c, w in zip(value[:17], _CN_ID_WEIGHTS, strict=True))
    return _CN_ID_CHECK[total % 11] == value[17].upper()


_SSN = re.compile(r"(?<![0-9-])(?!000|666|9)[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}(?![0-9]|-[0-9])")

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?<![0-9.])(?:{_OCTET}\.){{3}}{_OCTET}(?![0-9]|\.[0-9])")

# Each alternative starts with its literal, so the scanner keys it by that literal.
_KEY_BODY = r"(?![A-Za-z0-9_-])"
_SECRETS = (
    rf"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{{20,}}{_KEY_BODY}",
    r"A(?<![A-Za-z0-9]A)(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z0-9]{16}(?![A-Za-z0-9])",
    r"aws_secret_access_key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
    r"AWS_SECRET_ACCESS_KEY[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
    rf"gh(?<![A-Za-z0-9_]gh)[pousr]_[A-Za-z0-9]{{36,}}{_KEY_BODY}",
    rf"github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{{22,}}{_KEY_BODY}",
    rf"glpat-(?<![A-Za-z0-9_]glpat-)[A-Za-z0-9_-]{{20,}}{_KEY_BODY}",
    rf"xox(?<![A-Za-z0-9_]xox)[abposr]-[A-Za-z0-9-]{{10,}}{_KEY_BODY}",
    rf"AIza(?<![A-Za-z0-9_]AIza)[0-9A-Za-z_-]{{35}}{_KEY_BODY}",
    rf"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{{8,}}\.eyJ[A-Za-z0-9_-]{{8,}}\.[A-Za-z0-9_-]{{8,}}{_KEY_BODY}",
)

_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_MAX_BODY = 16384  # characters between a key's BEGIN and END lines


def find_private_keys(text: str, pos: int = 0) -> Iterator[tuple[int, int]]:
    """PEM private key blocks: a BEGIN line, up to ``_PEM_MAX_BODY`` characters, and the
    first END line after it.

    In time linear in the text, whatever it holds: each BEGIN is paired with the next END
    found once and kept while it lies ahead, so a text of many BEGIN lines and no END is
    not searched again from each of them (as a lazy ``BEGIN[\\s\\S]{1,16384}?END`` pattern
    does: 16,384 tries a BEGIN, seconds for a megabyte of them)."""
    if "-----BEGIN " not in text:
        return
    begin = SYSTEM_DENY.search(text, pos)
    end: re.Match[str] | None = None
    while begin is not None:
        body = begin.end() + 1  # the body is at least one character
        if end is None or end.start() < body:
            end = _PEM_END.search(text, body)
            if end is None:
                return  # no END after this BEGIN, so none after any later one
        if end.start() - begin.end() <= _PEM_MAX_BODY:
            yield begin.start(), end.end()
            begin = SYSTEM_DENY.search(text, end.end())
        else:
            begin = SYSTEM_DENY.search(text, begin.start() + 1)


def _secret_rule(source: str) -> Rule:
    pattern = re.compile(source)
    return Rule(pattern, group=1 if pattern.groups else 0)  # aws_secret_access_key = <the value>


# detector name → (placeholder kind, rules)
DETECTORS: dict[str, tuple[str, tuple[Rule, ...]]] = {
    "cn_id": ("CN_ID", (Rule(_CN_ID, accept=cn_id_ok),)),
    "card": ("CARD", (Rule(_CARD, accept=_card_ok),)),
    "us_ssn": ("SSN", (Rule(_SSN),)),
    "phone": ("PHONE", tuple(Rule(re.compile(p), accept=_phone_ok) for p in _PHONES)),
    "ipv4": ("IP", (Rule(_IPV4),)),
    "email": ("EMAIL", (Rule(finder=find_emails),)),
    "api_key": ("SECRET", (*(_secret_rule(s) for s in _SECRETS), Rule(finder=find_private_keys))),
}
"""In priority order: at one position, a valid resident ID wins over a card number, a
card over a phone number."""

DETECTOR_NAMES = tuple(DETECTORS)
