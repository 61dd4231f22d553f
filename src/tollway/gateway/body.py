"""A request body sent with a ``Content-Encoding``: decoded once, before any plugin or
the body's facts see it, and forwarded decoded (``tollway.content_coding`` decodes it,
bounded by ``max_body_bytes``); what cannot be is the client's error:

    an unknown coding, or more layers     415 gateway.unsupported_encoding
    more than ``limit`` bytes decoded      413 gateway.body_too_large
    not the coding it claims, cut short    400 gateway.bad_request
"""

from __future__ import annotations

from tollway import content_coding
from tollway.errors import BadRequest, BodyTooLarge, UnsupportedMediaType


def decode(body: bytes, values: list[str], limit: int) -> bytes:
    """``body`` with the codings of the Content-Encoding header lines ``values`` undone
    (the last applied first), never more than ``limit`` bytes."""
    try:
        return content_coding.decode(body, values, limit)
    except content_coding.UnknownCoding as exc:
        raise UnsupportedMediaType(f"request {exc}", reason="gateway.unsupported_encoding") from None
    except content_coding.TooLarge as exc:
        raise BodyTooLarge(f"request body is {exc}", reason="gateway.body_too_large") from None
    except content_coding.Corrupt as exc:
        raise BadRequest(f"request body is {exc}", reason="gateway.bad_request") from None
