"""What the CLI prints of text it did not write: a model name a client sent (refused calls
included, so anyone who can reach the gateway writes them), a consumer's patterns.

In a table, control characters are shown escaped (``\\x1b``), not sent to the terminal:
an escape sequence in a model name set the terminal's title or cleared its screen, and a
line break in one drew a row of its own (a fake TOTAL line). In CSV, a cell a spreadsheet
would run as a formula (``=HYPERLINK(…)``, ``+``, ``-``, ``@``) begins with a quote
instead, as OWASP advises."""

from __future__ import annotations

import re
import unicodedata

# C0 and C1 controls, DEL, and the line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Bidirectional embeddings, overrides and isolates: they reorder what follows them.
_OVERRIDES = frozenset({"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"})


def shown(text: str) -> str:
    """``text`` for a terminal: its control and bidirectional-override characters escaped."""
    return "".join(_escaped(c) if _CONTROLS.match(c) or unicodedata.bidirectional(c) in _OVERRIDES else c for c in text)


def _escaped(c: str) -> str:
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a string it would take for a formula is
    quoted with a leading ``'``; numbers and other text are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


__all__ = ["csv_cell", "shown"]
