"""The admin API is never open to the network without a token (SPEC §13): the one rule
``serve``, ``check`` and a reload all hold a config's ``admin`` section to. A reload that
took such a file said it was in effect, and the next start refused it."""

from __future__ import annotations

import ipaddress

# The shortest admin token an admin API open to the network may have: a guessable one
# ("x", "admin") is no guard; `openssl rand -hex 24` gives 48 characters.
MIN_EXPOSED_TOKEN = 16


def exposure_problem(host: str, token: str | None) -> str | None:
    """Why an admin listener on ``host`` may not run with this token (or none), or None."""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:
        pass  # a host name other than localhost: it may resolve to anything
    if not token:
        return (
            f"admin.host {host!r} is not loopback and admin.token is empty: "
            "the admin API is never open to the network without a token"
        )
    if len(token) < MIN_EXPOSED_TOKEN:
        return (
            f"admin.host {host!r} is not loopback and admin.token has {len(token)} characters: an admin API "
            f"open to the network needs a token of at least {MIN_EXPOSED_TOKEN} (e.g. openssl rand -hex 24)"
        )
    return None


__all__ = ["MIN_EXPOSED_TOKEN", "exposure_problem"]
