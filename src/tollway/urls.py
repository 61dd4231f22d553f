"""URLs as a log or a message may show them."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def shown_url(url: str) -> str:
    """``url`` with what it may hold of secrets replaced by ``***``: the user info (a
    password, or a token standing alone as the user name) and its query's values (a
    provider's ``?key=``)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    pairs = (p.partition("=") for p in parts.query.split("&"))
    query = "&".join(f"{name}=***" if sep else name for name, sep, _ in pairs)
    return urlunsplit(parts._replace(netloc=netloc, query=query if parts.query else ""))
