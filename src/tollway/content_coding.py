"""A body sent with a ``Content-Encoding``, decoded with its memory bounded: a request's
(``gateway.body``) and a provider's answer the gateway must read (``proxy.ai_proxy``).

gzip (``x-gzip``), deflate (zlib's format, or raw deflate as some senders use), br and
zstd, in layers as the header lists them (at most ``MAX_LAYERS``); ``identity`` is no
layer. Each layer is decoded in steps of at most ``STEP`` bytes of output, so a
decompression bomb costs no more memory than ``limit`` and a step. What cannot be
decoded raises, and the caller says whose fault it is:

    CodingError
    ├── UnknownCoding   a coding not decoded here, or more than ``MAX_LAYERS``
    ├── TooLarge        more than ``limit`` bytes decoded
    └── Corrupt         not the coding it claims, or cut short
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli
import zstandard

# Output per decoding step (brotli may give up to twice this in one step).
STEP = 64 * 1024
MAX_LAYERS = 2
# The largest zstd window a body may ask for: 8 MiB, what RFC 8878 asks every decoder
# to support; a frame wanting more is refused rather than given the memory.
ZSTD_MAX_WINDOW = 8 * 1024 * 1024


class CodingError(ValueError):
    pass


class UnknownCoding(CodingError):
    pass


class TooLarge(CodingError):
    pass


class Corrupt(CodingError):
    """``coding``: the one whose data is not what it claims."""

    def __init__(self, coding: str) -> None:
        super().__init__(f"not valid {coding} data")
        self.coding = coding


Decoder = Callable[[bytes, int], bytes]


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"larger than {limit} bytes once decoded")


def _corrupt(coding: str) -> Corrupt:
    return Corrupt(coding)


def codings(values: list[str]) -> list[str]:
    """The codings of the Content-Encoding header lines, in the order they were applied,
    ``identity`` left out; raises ``UnknownCoding`` for one not decoded here."""
    named = [c for c in (t.strip().lower() for v in values for t in v.split(",")) if c and c != "identity"]
    for coding in named:
        if coding not in _DECODERS:
            raise UnknownCoding(f"Content-Encoding {coding!r} is not supported (gzip, deflate, br, zstd are)")
    if len(named) > MAX_LAYERS:
        raise UnknownCoding(f"body has {len(named)} content codings; at most {MAX_LAYERS} are decoded")
    return named


def decode(body: bytes, values: list[str], limit: int) -> bytes:
    """``body`` with the codings of the Content-Encoding header lines ``values`` undone
    (the last applied first), never more than ``limit`` bytes (see the module)."""
    for coding in reversed(codings(values)):
        if not body:
            break
        body = _DECODERS[coding](body, limit)
    return body


def _inflate(data: bytes, limit: int, wbits: int, coding: str) -> bytes:
    """zlib's formats: gzip (``wbits`` 31; members one after another are one body, as
    RFC 1952 allows), zlib (15) or raw deflate (-15)."""
    parts: list[bytes] = []
    size = 0
    inflater = zlib.decompressobj(wbits)
    try:
        while True:
            chunk = inflater.decompress(data, STEP)
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            parts.append(chunk)
            data = inflater.unconsumed_tail
            if inflater.eof:
                data = inflater.unused_data
                if not data:
                    break
                if wbits != 31:
                    raise _corrupt(coding)
                inflater = zlib.decompressobj(wbits)
            elif not data and not chunk:
                raise _corrupt(coding)  # the input ended inside the stream
    except zlib.error:
        raise _corrupt(coding) from None
    return b"".join(parts)


def _gunzip(data: bytes, limit: int) -> bytes:
    return _inflate(data, limit, 31, "gzip")


def _deflate(data: bytes, limit: int) -> bytes:
    # HTTP's "deflate" is the zlib format (RFC 9110 §8.4.1.2); some clients send the raw
    # deflate stream instead, which no zlib header check (RFC 1950 §2.2) accepts.
    zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    return _inflate(data, limit, 15 if zlib_header else -15, "deflate")


def _unbrotli(data: bytes, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    decoder = brotli.Decompressor()
    try:
        chunk = decoder.process(data, output_buffer_limit=STEP)
        while True:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            parts.append(chunk)
            if decoder.can_accept_more_data():
                break
            chunk = decoder.process(b"", output_buffer_limit=STEP)
    except brotli.error:
        raise _corrupt("br") from None
    if not decoder.is_finished():
        raise _corrupt("br")
    return b"".join(parts)


def _unzstd(data: bytes, limit: int) -> bytes:
    """Frames one after another are one body. The bounded read cannot tell a frame cut
    short from a whole one, so a body that fit is read once more, frame by frame, to
    check each ends (that read makes no more than the first did)."""
    context = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    parts: list[bytes] = []
    size = 0
    try:
        reader = context.stream_reader(data, read_across_frames=True)
        while chunk := reader.read(STEP):
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            parts.append(chunk)
        rest = data
        while rest:
            frame = context.decompressobj()
            frame.decompress(rest)
            if not frame.eof:
                raise _corrupt("zstd")
            rest = frame.unused_data
    except zstandard.ZstdError:
        raise _corrupt("zstd") from None
    return b"".join(parts)


_DECODERS: dict[str, Decoder] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _deflate,
    "br": _unbrotli,
    "zstd": _unzstd,
}
