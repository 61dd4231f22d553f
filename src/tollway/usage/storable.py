"""Usage records a database can store, and the journal line of each.

The usage writer passes every record through ``encode`` once, as it takes it and before
the journal or the database sees it. What it changes:

- the text fields (``request_id``, ``route``, ``consumer``, ``provider``, the two
  models, ``reason``, ``blocked_by``, ``client_ip``, ``mcp_method``, ``mcp_tool``): NUL
  characters are removed (PostgreSQL's text cannot hold them), lone surrogates become
  U+FFFD (they are not UTF-8, which both databases want), and each is cut to ``MAX_TEXT`` characters (512:
  far above any real name, and PostgreSQL refuses an index entry over ~2.7 kB, which a
  consumer name is part of);
- ``attributes`` (ai-statistics): the same for every string in them, keys included;
  a value JSON cannot carry becomes its string; if the whole is over ``MAX_ATTRIBUTES``
  (16 KiB of JSON), the entries that fit are kept, in order, and the rest dropped.

Numbers stay as they are. A count a database cannot hold (a provider reporting 2^63
tokens) is refused by it, and the writer puts that record in the dead-letter file; one
that JSON cannot carry either (beyond 64 bits) makes ``encode`` answer None, and the
record goes there at once.

What the writer queues, and the journal keeps, is the record's database row (``row_of``,
its key last), so the row is made once; the journal line is that row as a JSON array
(its length says its format). Checking costs one scan of the line: a row whose line holds
no ``\\u0000`` and is at most ``MAX_TEXT`` bytes long (nearly every one; else at most
``MAX_ATTRIBUTES`` with no text field too long) is storable as it is; only the others
are made storable field by field, and their row made again.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import orjson

from tollway.usage.record import UsageRecord
from tollway.usage.store import INSERTED, UsageRow, row_of

MAX_TEXT = 512
MAX_ATTRIBUTES = 16 * 1024
# Past this depth an attribute value is kept as its string (no deeper walk).
_MAX_DEPTH = 32
_FIELDS = UsageRecord._fields
_TEXT = tuple(
    _FIELDS.index(name)
    for name in (
        "request_id",
        "route",
        "consumer",
        "provider",
        "model_requested",
        "model_upstream",
        "reason",
        "blocked_by",
        "client_ip",
        "mcp_method",
        "mcp_tool",
    )
)
_texts = itemgetter(*_TEXT)
_ATTRIBUTES = _FIELDS.index("attributes")
_NUL = b"\\u0000"
_NL = orjson.OPT_APPEND_NEWLINE
# What a journal line may hold in each column's place (anything else: not a line of ours).
_NUMBER = (int, float)
_TEXT_OR_NONE = (str, type(None))
_NUMBER_OR_NONE = (int, float, type(None))
_COLUMN_TYPES: dict[str, tuple[type, ...]] = {
    "ts_ms": (int,),
    "day": (str,),
    "hour": (str,),
    "request_id": (str,),
    "status": (int,),
    "stream": (int,),
    "input_tokens": (int,),
    "output_tokens": (int,),
    "cached_tokens": (int,),
    "reasoning_tokens": (int,),
    "cache_write_tokens": (int,),
    "tokens_estimated": (int,),
    "cost_usd": _NUMBER_OR_NONE,
    "cost_saved_usd": _NUMBER_OR_NONE,
    "latency_ms": _NUMBER,
    "ttft_ms": _NUMBER_OR_NONE,
    "attempts": (str,),
    "record_key": (int,),
}
_TYPES = tuple(_COLUMN_TYPES.get(name, _TEXT_OR_NONE) for name in INSERTED)
_API = INSERTED.index("api")
_CACHE = INSERTED.index("cache")
_MCP = INSERTED.index("mcp_method")
# As in record.py: a record from its values without NamedTuple's Python-level __new__.
_make_record = tuple.__new__


def _too_long(text: str | None) -> bool:
    return text is not None and len(text) > MAX_TEXT


def encode(key: int, record: UsageRecord) -> tuple[UsageRow, bytes | None]:
    """The database row of ``record`` made storable, under ``key``, and its journal line
    (newline included); None for the line when not even JSON can carry the record (a
    number beyond 64 bits): the writer then puts it in the dead-letter file at once."""
    try:
        row = row_of(record, key)
        line = orjson.dumps(row, option=_NL)
        # rfind, not ``in``: its skip table keys on the needle's first byte, a backslash,
        # rarer in a row than the "0" that ``in`` keys on (measured: half the time).
        if line.rfind(_NUL) < 0 and (
            len(line) <= MAX_TEXT or (len(line) <= MAX_ATTRIBUTES and not any(map(_too_long, _texts(record))))
        ):
            return row, line
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, an int beyond 64 bits
        pass
    row = row_of(make_storable(record), key)
    try:
        return row, orjson.dumps(row, option=_NL)
    except TypeError:
        return row, None


def make_storable(record: UsageRecord) -> UsageRecord:
    """``record`` with its text and attributes made storable (see the module's docstring)."""
    values: list[Any] = list(record)
    for i in _TEXT:
        if values[i] is not None:
            values[i] = storable_text(values[i])[:MAX_TEXT]
    if values[_ATTRIBUTES] is not None:
        values[_ATTRIBUTES] = _storable_attributes(values[_ATTRIBUTES])
    return _make_record(UsageRecord, values)


def storable_text(value: object) -> str:
    """``value`` as text without NUL characters or lone surrogates."""
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            # Through UTF-16 and back: a surrogate pair becomes its character, a lone
            # surrogate U+FFFD.
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _storable_value(value: object, depth: int) -> object:
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, str) or depth >= _MAX_DEPTH:
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(k): _storable_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable_value(v, depth + 1) for v in value]
    return storable_text(value)


def _storable_attributes(attributes: object) -> dict[str, Any]:
    clean = _storable_value(attributes, 0)
    if not isinstance(clean, dict):
        clean = {"value": clean}
    if len(orjson.dumps(clean)) <= MAX_ATTRIBUTES:
        return clean
    kept: dict[str, Any] = {}
    size = 2  # "{}"
    for k, v in clean.items():
        # One entry's JSON less its braces, plus a comma.
        entry = len(orjson.dumps({k: v})) - 1
        if size + entry <= MAX_ATTRIBUTES:
            kept[k] = v
            size += entry
    return kept


def decode(line: bytes) -> UsageRow:
    """The row a journal line holds; ``ValueError`` when it is not one (a line cut short
    by a kill, or not ours)."""
    values = orjson.loads(line)  # orjson.JSONDecodeError is a ValueError
    if isinstance(values, list) and len(values) in (len(_TYPES) - 6, len(_TYPES) - 5, len(_TYPES) - 3, len(_TYPES) - 1):
        # A line journaled before records kept their cache writes (the column before
        # the key), maybe older still (below).
        values.insert(len(values) - 1, 0)
    if isinstance(values, list) and len(values) in (len(_TYPES) - 5, len(_TYPES) - 4, len(_TYPES) - 2):
        # A line journaled before records kept an MCP call's method and tool (the two
        # columns before the key), maybe before they kept what ai-cache made of them
        # (the two before those), and maybe before they kept their ``api`` (the one
        # before those).
        if len(values) < len(_TYPES) - 2:
            if len(values) == len(_TYPES) - 5:
                values.insert(_API, None)
            values[_CACHE:_CACHE] = [None, None]
        values[_MCP:_MCP] = [None, None]
    if not isinstance(values, list) or len(values) != len(_TYPES):
        raise ValueError("not a usage journal line")
    for value, types in zip(values, _TYPES, strict=True):
        if not isinstance(value, types):
            raise ValueError("not a usage journal line")
    return tuple(values)
