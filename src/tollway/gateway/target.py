"""One canonical request target: the path and Host every decision is made on, and the
path that goes to the provider.

The path is percent-decoded once, here; routes, plugin match rules and API detection
see the decoded path, and the provider's URL gets the same path percent-encoded once
again (``Request.encoded_path``), so no part of the path is decoded twice on its way
(a ``%252e`` the client sent reaches the provider as ``%252e``: a literal ``%2e`` to
it, as to us). Empty segments are dropped: ``/v1//chat/completions/`` is
``/v1/chat/completions`` for matching and upstream alike, so a trailing or doubled
slash cannot name an API the gateway does not see. The encoding leaves unreserved
characters, ``:`` and ``@`` as they are and percent-encodes every other byte, so the
provider can find no delimiter (``;``, ``?``) that the gateway did not see as text.

Refused with 400 ``gateway.bad_request``, before any plugin runs: a path that is not
percent-encoded UTF-8 (``%ff``, ``%zz``), control characters, a ``.`` or ``..``
segment (encoded or not, or with a ``;`` parameter: the provider's server would resolve
it away), an encoded
``/`` or ``\\`` (a segment boundary to some servers, not to others), an encoded ``?``
or ``#``, a raw ``\\``, ``?`` or ``#`` in what the server handed over as the path.

The Host is lower-cased, its port and one trailing dot removed (``API.Example.com.:8080``
is ``api.example.com``) before routes and domain-scoped plugin rules match it; two Host
headers, a Host that is no host name or address, or an absolute-form target
(``GET http://a.example/v1/…``) whose host is not the Host → 400. An absolute-form
target's host is the one matched (RFC 9112 §3.2.2).
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote

from tollway.errors import BadRequest
from tollway.exchange import Request
from tollway.routing.hosts import canonical_host

# A path with nothing to decode or drop: every segment non-empty, made of the characters
# the encoding keeps, and not starting with a dot (so no dot segment). Most requests.
_PLAIN = re.compile(rb"(?:/[A-Za-z0-9_~:@\-][A-Za-z0-9_~:@.\-]*)+|/")
# Bytes that may not arrive percent-encoded: "/" and "\" (a segment boundary to some
# servers), "?" and "#" (a query or fragment to the provider's server).
_NOT_ENCODED = frozenset(b"/\\?#")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DOT_SEGMENTS = frozenset({".", ".."})
_ABSOLUTE = re.compile(rb"(?i:https?)://([^/?#]*)(.*)", re.DOTALL)
# What the encoding leaves as it is, beside the unreserved characters (which ``quote``
# always keeps): segment separators, and ":" and "@", which name things in provider
# paths (``models/m:generateContent``, ``claude@2024``).
_KEEP = "/:@"
# Clients send the same few paths and Hosts again and again: short ones are remembered
# (a bounded memo of pure functions; long ones would let a client fill it with junk).
_MEMO_BELOW = 256


def _bad(message: str) -> BadRequest:
    return BadRequest(message, reason="gateway.bad_request")


def settle(req: Request) -> None:
    """Make ``req.host``, ``req.path`` and ``req.encoded_path`` canonical (see the
    module); raises ``BadRequest`` for a target or Host that cannot be made so."""
    headers = req.headers
    if headers.repeated("host"):
        raise _bad("the request has more than one Host header")
    given = headers.get("host")
    host = _host(given) if given is not None else ""
    if host is None:
        raise _bad("the Host header is not a host name or address")
    raw = req.raw_path
    if raw is None:  # no wire path from the server: ``path`` is decoded already
        try:
            raw = quote(req.path, safe=_KEEP).encode("ascii")
        except UnicodeEncodeError:
            raise _bad("the request path is not UTF-8") from None
    if raw[:1] == b"/":
        if given is None and not req.http10:  # (an absolute-form target names its host)
            raise _bad("an HTTP/1.1 request must have a Host header (RFC 9112 3.2)")
    else:
        absolute = _ABSOLUTE.fullmatch(raw)
        if absolute is None or (absolute[2] and not absolute[2].startswith(b"/")):
            raise _bad("the request target is neither a path nor an absolute URL")
        named = _host(absolute[1].decode("latin-1"))
        if named is None:
            raise _bad("the request target's host is not a host name or address")
        if given is not None and named != host:
            raise _bad("the request target names another host than the Host header")
        host = named
        raw = absolute[2] or b"/"
    req.host = host
    req.path, req.encoded_path = _memo_path(raw) if len(raw) < _MEMO_BELOW else _path(raw)


def _host(value: str) -> str | None:
    return _memo_host(value) if len(value) < _MEMO_BELOW else canonical_host(value)


_memo_host = lru_cache(maxsize=256)(canonical_host)


def _path(raw: bytes) -> tuple[str, str]:
    """The canonical path and its encoding; the same string when nothing was encoded."""
    if _PLAIN.fullmatch(raw) is not None:
        path = raw.decode("ascii")
        return path, path
    path = canonical_path(raw)
    return path, quote(path, safe=_KEEP)


_memo_path = lru_cache(maxsize=1024)(_path)


def canonical_path(raw: bytes) -> str:
    """The path for matching: ``raw`` (as it came on the wire) percent-decoded once,
    its empty segments dropped; raises ``BadRequest`` (see the module)."""
    if b"\\" in raw:
        raise _bad("the request path has a backslash")
    if b"?" in raw or b"#" in raw:  # a server split the query off already: never from the wire
        raise _bad("the request path has a '?' or '#'")
    pieces = raw.split(b"%")
    decoded = bytearray(pieces[0])
    for piece in pieces[1:]:
        try:
            byte = int(piece[:2], 16) if len(piece) >= 2 and piece[:2].isalnum() else -1
        except ValueError:
            byte = -1
        if byte < 0:
            raise _bad("the request path has a '%' that starts no percent-encoded byte")
        if byte in _NOT_ENCODED:
            raise _bad(f"the request path has an encoded {chr(byte)!r}")
        decoded.append(byte)
        decoded += piece[2:]
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("the request path is not percent-encoded UTF-8") from None
    if _CONTROL.search(text) is not None:
        raise _bad("the request path has control characters")
    segments = [s for s in text.split("/") if s]
    # ``..;x`` is ``..`` with a path parameter, and a dot segment to servers that strip
    # parameters before resolving (Tomcat, Jetty): refused like the bare one.
    if any(s.split(";", 1)[0] in _DOT_SEGMENTS for s in segments):
        raise _bad("the request path has a '.' or '..' segment")
    return "/" + "/".join(segments)
