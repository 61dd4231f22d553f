"""An ordered, case-insensitive header list: what the ASGI server hands us, kept cheap."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# Headers of one connection, never passed on by a proxy (RFC 9110 §7.6.1), and those a
# request's sender sets for its own framing and target: whoever relays a request to
# another server drops them (and adds its own).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
SENDER_SET = frozenset({"host", "content-length", "content-encoding", "accept-encoding", "expect"})


def spellings(name: str) -> frozenset[str]:
    """``name`` (lower-case, dash-separated) with each dash or underscore: the names a
    server that reads ``_`` as ``-`` (as CGI-style servers do) takes for it."""
    first, *rest = name.split("-")
    out = {first}
    for part in rest:
        out = {f"{head}{sep}{part}" for head in out for sep in "-_"}
    return frozenset(out)


def param_spelling(name: str) -> str:
    """One form for every spelling of a query parameter's name a server may take for the
    same one: any case; ``_``, ``.`` or a space for ``-`` (PHP reads ``my.key`` and
    ``my key`` as ``my_key``); an array's ``[]`` and what follows a NUL left off. What a
    credential's parameter is stripped by."""
    name = name.partition("\x00")[0].removesuffix("[]")
    return name.lower().replace("_", "-").replace(".", "-").replace(" ", "-")


class Headers:
    """Header lines with lower-case names, in arrival order, duplicates kept.

    Lookups go through a dict built once; most requests only ever read a handful of
    headers, so the list itself is the source of truth and the dict a cache.
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(k.lower(), v) for k, v in items]
        self._index: dict[str, str] | None = None

    @classmethod
    def from_asgi(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        h = cls.__new__(cls)
        # ASGI servers already lower-case names; latin-1 keeps every byte.
        h._items = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
        h._index = None
        return h

    def _lookup(self) -> dict[str, str]:
        if self._index is None:
            index: dict[str, str] = {}
            for k, v in self._items:
                index.setdefault(k, v)
            self._index = index
        return self._index

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._lookup().get(name, default)

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self._items if k == name]

    def repeated(self, name: str) -> bool:
        """Whether ``name`` comes more than once (no list scan unless some name does)."""
        if len(self._lookup()) == len(self._items):
            return False
        return sum(1 for k, _ in self._items if k == name) > 1

    def has_any(self, names: frozenset[str]) -> bool:
        """Whether any of ``names`` is here (one C-level set check)."""
        return not names.isdisjoint(self._lookup())

    def __contains__(self, name: object) -> bool:
        return name in self._lookup()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def set(self, name: str, value: str) -> None:
        name = name.lower()
        self._items = [(k, v) for k, v in self._items if k != name]
        self._items.append((name, value))
        self._index = None

    def add(self, name: str, value: str) -> None:
        """One more line ``name: value`` (``name`` lower-case), after the others."""
        self._items.append((name, value))
        if self._index is not None:
            self._index.setdefault(name, value)

    def remove(self, name: str) -> None:
        name = name.lower()
        if name in self._lookup():
            self._items = [(k, v) for k, v in self._items if k != name]
            self._index = None

    def copy(self) -> Headers:
        h = Headers.__new__(Headers)
        h._items = list(self._items)
        h._index = self._index
        return h

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)
