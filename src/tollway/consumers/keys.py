"""Runtime consumer keys: how they are made, and the only form in which they are kept."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "tw-"


def new_key() -> str:
    """A fresh consumer key: ``tw-`` and 43 URL-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # SHA-256, not a password hash (bcrypt, scrypt): these keys carry 256 random bits, so
    # there is nothing to brute-force and no need for a slow hash or a salt, and the hash
    # runs on every request's auth path, where a deliberately slow one would cost
    # milliseconds per call.
    return hashlib.sha256(key.encode()).hexdigest()


# A key shorter than this is shown with no hint at all: its last four characters would
# be too much of it (a config credential of six characters, say).
HINT_FROM = 16


def hint_of(key: str) -> str:
    """What listings show of a key: its last 4 characters, or nothing for a short key."""
    return key[-4:] if len(key) >= HINT_FROM else ""
