"""One exact cache entry: an answer as its client got it, with the call's usage.

In this process's memory an entry is kept as this object (a hit reads it as it is: no
copy, no parse); in Redis and in the semantic index's table it is kept encoded: a
magic and the length of a small JSON head (API, shape, usage, model), then the answer's
bytes as they were.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import orjson

from tollway.protocols.usage import Usage

_MAGIC = b"TWC1"
_HEAD = struct.Struct("<4sI")
# What an entry's fields other than its payload take in memory, roughly: counted with the
# payload and the key against the store's byte bound.
ENTRY_OVERHEAD = 200


# An entry's fields in a plain tuple: the memory store keeps these rather than the objects,
# because the garbage collector stops tracking a tuple that holds only strings, bytes,
# numbers and such tuples (thousands of entries are then no work for its full passes;
# a dataclass instance, or a named tuple, is tracked for as long as it lives).
EntryFields = tuple[str, bool, bytes, tuple[int, int, int, int, int, int], "str | None", bool]


class UnusableAnswer(ValueError):
    """A stored entry this version cannot read, or an answer it cannot replay."""


# Not frozen: a frozen dataclass sets each field through object.__setattr__ (4x the
# cost of building one), and every hit and every stored miss builds one.
@dataclass(slots=True)
class StoredAnswer:
    api: str
    streamed: bool
    payload: bytes  # the JSON body, or the events
    # input, output, cached, reasoning, cache-write tokens and the part of those written
    # to a one-hour cache (what a hit saves is priced on them, cache writes at their own
    # prices, as the call was)
    usage: tuple[int, int, int, int, int, int]
    model: str | None
    # The stored call's tokens were the gateway's estimate (its provider reported none):
    # a hit's record says so too, and what it saves is an estimate.
    estimated: bool = False

    def fields(self) -> EntryFields:
        """The entry as a plain tuple, as the memory store keeps it."""
        return (self.api, self.streamed, self.payload, self.usage, self.model, self.estimated)

    def encode(self) -> bytes:
        # Trailing zero counts left out, down to four: versions before the cache-write
        # counts (five, then six) read what they know, so an entry without one-hour writes
        # is a hit to an older replica in a rolling upgrade (it was a miss, with a warning
        # each time, and the provider called again).
        usage = list(self.usage)
        while len(usage) > 4 and usage[-1] == 0:
            usage.pop()
        fields: dict[str, Any] = {"api": self.api, "streamed": self.streamed, "usage": usage, "model": self.model}
        if self.estimated:
            fields["estimated"] = True
        head = orjson.dumps(fields)
        return _HEAD.pack(_MAGIC, len(head)) + head + self.payload

    @classmethod
    def decode(cls, raw: bytes) -> StoredAnswer:
        try:
            magic, size = _HEAD.unpack_from(raw)
            if magic != _MAGIC:
                raise UnusableAnswer("not a cache entry of this version")
            end = _HEAD.size + size
            head = orjson.loads(memoryview(raw)[_HEAD.size : end])
            counts = head["usage"]
            # An entry stored before cache writes (4 counts), or their one-hour part (5),
            # were kept: none of them.
            counts = [*counts, 0, 0][:6] if len(counts) in (4, 5) else counts
            i, o, c, r, w, h = counts
            usage = (int(i), int(o), int(c), int(r), int(w), int(h))
            estimated = head.get("estimated") is True
            return cls(head["api"], bool(head["streamed"]), raw[end:], usage, head["model"], estimated)
        except (struct.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UnusableAnswer(f"unreadable cache entry: {exc}") from None

    def usage_of(self) -> Usage:
        """The stored call's tokens, never reported (no provider was asked: limits charge
        a hit nothing, ``reservation.spent``), estimated when the stored call's were."""
        i, o, c, r, w, h = self.usage
        return Usage(i, o, c, r, w, h, estimated=self.estimated)


__all__ = ["ENTRY_OVERHEAD", "EntryFields", "StoredAnswer", "UnusableAnswer"]
