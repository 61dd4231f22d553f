"""Who may reach the admin API from a browser.

A web page the operator visits may send requests to the admin listener, though it is on
loopback: to ``127.0.0.1`` directly (cross-site), or to a name of its own that it
points at ``127.0.0.1`` (DNS rebinding), which makes the page and the admin API one
origin in the browser's eyes, so the page reads every answer. Without an admin token
(allowed on loopback only) that would hand any web page the usage data and the power to
make consumers. So, before anything else:

- a request that names another origin (``Origin`` not the ``Host`` it is sent to) is
  refused, token or not: the dashboard's own calls are same-origin, and the CLI and
  scripts send no ``Origin``;
- without a token, only requests addressed to a loopback name are answered
  (``localhost``, ``*.localhost``, a loopback address, any port): a rebound name is not
  one. Behind a proxy that passes another ``Host``, set a token;
- an HTTP/1.1 request must have one ``Host`` (RFC 9112 §3.2), as on the gateway, and
  a ``Host`` must be a host name or address and an optional port (RFC 3986 3.2.2): an
  empty one, or ``evil.example#.localhost``, names no listener and is refused (400).

The ``Origin``'s scheme is not held to the listener's: behind a proxy that ends TLS the
dashboard's page is ``https://`` while the listener is plain HTTP; and no page elsewhere
can have the admin listener's own host and port under another scheme.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

Refusal = tuple[int, str]

# A Host field's value: a name of RFC 3986's reg-name characters (no percent-encoding,
# which no browser sends and ``evil%23.localhost`` would hide behind), an IPv4 address,
# or an IPv6 literal in brackets, then an optional port.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=]+)(?::[0-9]*)?")


def _name(host: str) -> str:
    """``host`` without its port, lower-case, an IPv6 address without brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() else host


def _loopback(host: str) -> bool:
    name = _name(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True  # (browsers resolve these to loopback themselves, never by DNS)
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def refusal(raw: list[tuple[bytes, bytes]], http_version: str, token_set: bool) -> Refusal | None:
    """Why the admin API must not answer this request (a status and a message), or None."""
    hosts = [v.decode("latin-1") for k, v in raw if k == b"host"]
    if len(hosts) > 1:
        return 400, "the request has more than one Host header"
    if not hosts and http_version != "1.0":
        return 400, "an HTTP/1.1 request must have a Host header (RFC 9112 3.2)"
    host = hosts[0].strip(" \t") if hosts else ""
    if hosts and not _HOST.fullmatch(host):
        return 400, f"the request's Host {host[:64]!r} is not a host name or address and an optional port"
    origins = [v.decode("latin-1") for k, v in raw if k == b"origin"]
    if origins and any(urlsplit(o.strip()).netloc.lower() != host.lower() for o in origins):
        return 403, "a request from another origin (a web page elsewhere) is refused by the admin API"
    if not token_set and host and not _loopback(host):
        return 403, (
            "without an admin token the admin API answers only requests addressed to a loopback name "
            "(localhost, 127.0.0.1, [::1]); set admin.token to reach it by another name"
        )
    return None


__all__ = ["refusal"]
