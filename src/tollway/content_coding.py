"""A body sent with a ``Content-Encoding``, decoded with its memory bounded: a request's
(``gateway.body``) and a provider's answer, whole or streamed (``tollway.upstream``).

gzip (``x-gzip``), deflate (zlib's format, or raw deflate as some senders use), br and
zstd, in layers as the header lists them (at most ``MAX_LAYERS``); ``identity`` is no
layer. A ``Decoding`` takes the body as it arrives, a piece at a time, and each layer
decodes in steps of at most ``STEP`` bytes of output (zstd: ``ZSTD_SLICE`` bytes of
input), checking the bound after each: a decompression bomb costs no more memory than
the bound and a step, and a refused one never gets its full size. The bound is
``limit`` bytes decoded, and, given a ``ratio``, no more than ``ratio`` times the
compressed bytes read so far once past ``floor`` bytes (a provider's answer: see
``tollway.upstream``). What cannot be decoded raises, and the caller says whose fault
it is:

    CodingError
    ├── UnknownCoding   a coding not decoded here, or more than ``MAX_LAYERS``
    ├── TooLarge        past the bound
    └── Corrupt         not the coding it claims, or cut short
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterator
from typing import Protocol

import brotli
import zstandard

# Output per decoding step (brotli may give up to twice this in one step).
STEP = 64 * 1024
MAX_LAYERS = 2
# The largest zstd window a body may ask for: 8 MiB, what RFC 8878 asks every decoder
# to support; a frame wanting more is refused rather than given the memory.
ZSTD_MAX_WINDOW = 8 * 1024 * 1024
# zstd's decoder has no output bound per call, so it is given this much input at a time:
# a block (at most 128 KiB decoded) takes at least 4 bytes, so one slice decodes to at
# most some 8 MiB (an RLE bomb), ordinary data to a few kilobytes.
ZSTD_SLICE = 256


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


def named(values: list[str]) -> list[str]:
    """The codings of the Content-Encoding header lines, in the order they were applied,
    ``identity`` left out (whether this module decodes them or not)."""
    return [c for c in (t.strip().lower() for v in values for t in v.split(",")) if c and c != "identity"]


def codings(values: list[str]) -> list[str]:
    """``named``, raising ``UnknownCoding`` for a coding not decoded here."""
    found = named(values)
    for coding in found:
        if coding not in _LAYERS:
            raise UnknownCoding(f"Content-Encoding {coding!r} is not supported (gzip, deflate, br, zstd are)")
    if len(found) > MAX_LAYERS:
        raise UnknownCoding(f"body has {len(found)} content codings; at most {MAX_LAYERS} are decoded")
    return found


def decode(body: bytes, values: list[str], limit: int, ratio: int = 0, floor: int = 0) -> bytes:
    """``body`` with the codings of the Content-Encoding header lines ``values`` undone
    (the last applied first), within the bound (see the module)."""
    named = codings(values)
    if not named or not body:
        return body
    decoding = Decoding(named, limit, ratio, floor)
    decoded = decoding.feed(body)
    decoding.end()
    return decoded


class Decoding:
    """One body's ``codings`` (as ``codings`` gives them) undone as its pieces arrive:
    ``feed`` each piece, then ``end`` (which raises ``Corrupt`` for a body cut short).
    The bound (see the module) counts from the first piece."""

    __slots__ = ("_floor", "_layers", "_limit", "_ratio", "_read", "_sizes")

    def __init__(self, codings: list[str], limit: int, ratio: int = 0, floor: int = 0) -> None:
        self._layers: list[_Layer] = [_LAYERS[c]() for c in reversed(codings)]
        self._limit = limit
        self._ratio = ratio
        self._floor = floor
        self._read = 0
        self._sizes = [0] * len(self._layers)

    def feed(self, data: bytes) -> bytes:
        """What ``data`` decodes to (maybe nothing yet: a layer may wait for more)."""
        self._read += len(data)
        out = io.BytesIO()  # (its value is taken without a copy: no second body in memory)
        try:
            for piece in self._through(0, data):
                out.write(piece)
            return out.getvalue()
        finally:
            out.close()  # a refused body's decoded part is let go at once, not with the error

    def end(self) -> None:
        for layer in self._layers:
            layer.end()

    def _through(self, i: int, data: bytes) -> Iterator[bytes]:
        allowed = self._allowed()
        for piece in self._layers[i].feed(data):
            self._sizes[i] += len(piece)
            if self._sizes[i] > allowed:
                raise self._too_large(allowed)
            if i + 1 == len(self._layers):
                yield piece
            else:
                yield from self._through(i + 1, piece)

    def _allowed(self) -> int:
        if not self._ratio:
            return self._limit
        return min(self._limit, max(self._floor, self._ratio * self._read))

    def _too_large(self, allowed: int) -> TooLarge:
        if allowed == self._limit:
            return TooLarge(f"larger than {self._limit} bytes once decoded")
        return TooLarge(
            f"larger than {allowed} bytes once decoded, over {self._ratio} times its {self._read} bytes as sent"
        )


class _Layer(Protocol):
    """One coding: ``feed`` yields the output of a piece of input in steps; ``end``
    raises ``Corrupt`` if the input ended inside the coded data."""

    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def end(self) -> None: ...


class _Inflate:
    """zlib's formats: gzip (``wbits`` 31; members one after another are one body, as
    RFC 1952 allows), zlib (15) or raw deflate (-15)."""

    __slots__ = ("_coding", "_inflater", "_wbits")

    def __init__(self, wbits: int, coding: str) -> None:
        self._wbits = wbits
        self._coding = coding
        self._inflater: zlib._Decompress | None = None  # made when its first byte comes

    def feed(self, data: bytes) -> Iterator[bytes]:
        inflater = self._inflater
        try:
            while data:
                if inflater is None or inflater.eof:
                    if inflater is not None and self._wbits != 31:
                        raise Corrupt(self._coding)  # data after the end
                    inflater = self._inflater = zlib.decompressobj(self._wbits)
                chunk = inflater.decompress(data, STEP)
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                while chunk:
                    yield chunk
                    # What it holds back for the bound: had with no more input.
                    chunk = b"" if data or inflater.eof else inflater.decompress(b"", STEP)
        except zlib.error:
            raise Corrupt(self._coding) from None

    def end(self) -> None:
        if self._inflater is not None and not self._inflater.eof:
            raise Corrupt(self._coding)  # the input ended inside the stream


def _gunzip() -> _Layer:
    return _Inflate(31, "gzip")


class _Deflate:
    """HTTP's "deflate" is the zlib format (RFC 9110 §8.4.1.2); some clients send the
    raw deflate stream instead, which no zlib header check (RFC 1950 §2.2) accepts: the
    first two bytes tell which."""

    __slots__ = ("_head", "_inflate")

    def __init__(self) -> None:
        self._head = b""
        self._inflate: _Inflate | None = None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._inflate is None:
            data = self._head = self._head + data
            if len(data) < 2:
                return
            zlib_header = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._inflate = _Inflate(15 if zlib_header else -15, "deflate")
        yield from self._inflate.feed(data)

    def end(self) -> None:
        if self._inflate is None:
            if self._head:
                raise Corrupt("deflate")
            return
        self._inflate.end()


class _Unbrotli:
    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        decoder = self._decoder
        try:
            chunk = decoder.process(data, output_buffer_limit=STEP)
            while True:
                # Output held back for the bound comes with empty input, until none
                # comes: ``can_accept_more_data`` may say True while some is held.
                if chunk:
                    yield chunk
                elif decoder.can_accept_more_data() or decoder.is_finished():
                    return
                chunk = decoder.process(b"", output_buffer_limit=STEP)
        except brotli.error:
            raise Corrupt("br") from None

    def end(self) -> None:
        if not self._decoder.is_finished():
            raise Corrupt("br")


class _Unzstd:
    """Frames one after another are one body."""

    __slots__ = ("_context", "_frame")

    def __init__(self) -> None:
        self._context = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        self._frame: zstandard.ZstdDecompressionObj | None = None  # made when its first byte comes

    def feed(self, data: bytes) -> Iterator[bytes]:
        frame = self._frame
        try:
            for at in range(0, len(data), ZSTD_SLICE):
                piece = data[at : at + ZSTD_SLICE]
                while piece:
                    if frame is None or frame.eof:
                        frame = self._frame = self._context.decompressobj(write_size=STEP)
                    chunk = frame.decompress(piece)
                    piece = frame.unused_data if frame.eof else b""
                    if chunk:
                        yield chunk
        except zstandard.ZstdError:
            raise Corrupt("zstd") from None

    def end(self) -> None:
        if self._frame is not None and not self._frame.eof:
            raise Corrupt("zstd")


_LAYERS: dict[str, Callable[[], _Layer]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _Deflate,
    "br": _Unbrotli,
    "zstd": _Unzstd,
}
