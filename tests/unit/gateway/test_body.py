"""Request bodies with a Content-Encoding (gateway/body.py, content_coding.py, SPEC §14), through a gateway in
this process: gzip, deflate, br and zstd bodies are decoded before any plugin reads them
and forwarded decoded; what decodes to more than ``max_body_bytes`` is a 413 with the
memory it takes bounded; an unknown coding is a 415, a corrupt body a 400."""

from __future__ import annotations

import functools
import gzip
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import brotli
import orjson
import pytest
import zstandard

from tests.support.asgi_support import RecordingUpstream, send_raw
from tollway import content_coding
from tollway.errors import BadRequest, BodyTooLarge, UnsupportedMediaType
from tollway.gateway import body
from tollway.testing.gateway import GatewayUnderTest

LIMIT = 64 * 1024
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "tell me about project falcon"}]}


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


def _zstd_stream(data: bytes) -> bytes:
    """A zstd frame that does not say its size up front (as a streaming client makes it)."""
    packer = zstandard.ZstdCompressor().compressobj()
    return packer.compress(data) + packer.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "deflate (raw)": _raw_deflate,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "zstd (streamed)": _zstd_stream,
}


def coding_name(label: str) -> str:
    return label.split(" ")[0]


def gateway(upstream: RecordingUpstream, plugins: list[dict[str, Any]] | None = None) -> GatewayUnderTest:
    config = {
        "server": {"max_body_bytes": LIMIT},
        "providers": [{"id": "p", "type": "openai", "apiTokens": ["sk-org"], "baseUrl": "http://up.test/v1"}],
        "routes": [{"name": "v1", "path_prefix": "/v1/", "provider": "p"}],
        "plugins": plugins or [],
    }
    return GatewayUnderTest(orjson.dumps(config).decode(), upstream=upstream)


async def post(gw: GatewayUnderTest, data: bytes, *codings: str) -> Any:
    headers = [(b"host", b"gw"), (b"content-type", b"application/json")]
    headers += [(b"content-encoding", c.encode()) for c in codings]
    return await send_raw(gw, "POST", b"/v1/chat/completions", headers, data)


@pytest.mark.parametrize("label", ENCODERS)
async def test_an_encoded_body_is_decoded_for_the_plugins_and_the_provider(label: str) -> None:
    up = RecordingUpstream()
    blocking = [{"name": "request-block", "defaultConfig": {"block_bodies": ["project falcon"]}}]
    gw = gateway(up, blocking)
    r = await post(gw, ENCODERS[label](orjson.dumps(CHAT)), coding_name(label))
    assert (r.status, r.headers["x-tollway-reason"]) == (403, "request-block.blocked")  # the plugin read it
    assert up.seen == []
    allowed = {**CHAT, "messages": [{"role": "user", "content": "hello"}]}
    r = await post(gw, ENCODERS[label](orjson.dumps(allowed)), coding_name(label))
    assert r.status == 200, r.body
    (reached,) = up.seen
    assert reached.json() == allowed
    assert "content-encoding" not in reached.names()
    assert gw.calls[-1].model_requested == "gpt-4o-mini"


async def test_layers_are_undone_last_first_and_identity_is_no_layer() -> None:
    up = RecordingUpstream()
    gw = gateway(up)
    data = brotli.compress(gzip.compress(orjson.dumps(CHAT)))
    r = await post(gw, data, "identity, gzip", "BR")
    assert r.status == 200, r.body
    assert up.seen[0].json() == CHAT


@pytest.mark.parametrize("coding", ["compress", "gzip;q=1", "exi", "gzip, gzip, gzip"])
async def test_an_unknown_coding_or_too_many_layers_is_a_415(coding: str) -> None:
    up = RecordingUpstream()
    r = await post(gateway(up), gzip.compress(orjson.dumps(CHAT)), coding)
    assert (r.status, r.headers["x-tollway-reason"]) == (415, "gateway.unsupported_encoding")
    assert r.json()["error"]["code"] == "unsupported_media_type"
    assert up.seen == []


@pytest.mark.parametrize(
    ("coding", "data"),
    [
        ("gzip", b"not gzip at all"),
        ("gzip", gzip.compress(orjson.dumps(CHAT))[:-6]),  # cut short
        ("gzip", gzip.compress(orjson.dumps(CHAT)) + b"junk"),
        ("deflate", zlib.compress(orjson.dumps(CHAT))[:-3]),
        ("deflate", zlib.compress(orjson.dumps(CHAT)) + b"x"),
        ("br", b"\xff\xff\xff\xff"),
        ("br", brotli.compress(orjson.dumps(CHAT))[:-2]),
        ("zstd", b"not zstd"),
        ("zstd", zstandard.ZstdCompressor().compress(orjson.dumps(CHAT))[:-4]),
        ("zstd", _zstd_stream(orjson.dumps(CHAT))[:-4]),
        ("zstd", zstandard.ZstdCompressor().compress(orjson.dumps(CHAT)) + b"xy"),
    ],
)
async def test_a_body_that_is_not_what_its_coding_says_is_a_400(coding: str, data: bytes) -> None:
    up = RecordingUpstream()
    r = await post(gateway(up), data, coding)
    assert (r.status, r.headers["x-tollway-reason"]) == (400, "gateway.bad_request")
    assert up.seen == []


def _bomb(label: str, size: int) -> bytes:
    """``size`` zero bytes, compressed: a few kilobytes on the wire."""
    zeros = bytes(1 << 20)
    if label == "gzip":  # members one after another are one body
        return gzip.compress(zeros) * (size >> 20)
    if label == "zstd":  # and so are frames
        return zstandard.ZstdCompressor().compress(zeros) * (size >> 20)
    if label == "br":
        packer = brotli.Compressor(quality=1)
        stream = b"".join(packer.process(zeros) for _ in range(size >> 20))
        end: bytes = packer.finish()
        return stream + end
    deflater = zlib.compressobj(9)
    return b"".join(deflater.compress(zeros) for _ in range(size >> 20)) + deflater.flush()


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
async def test_a_decompression_bomb_is_a_413_in_bounded_memory(coding: str) -> None:
    up = RecordingUpstream()
    gw = gateway(up)
    data = _bomb(coding, 32 << 20)  # 32 MiB of zeros
    assert len(data) < LIMIT  # small enough on the wire
    tracemalloc.start()
    try:
        r = await post(gw, data, coding)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (r.status, r.headers["x-tollway-reason"]) == (413, "gateway.body_too_large")
    assert up.seen == []
    assert peak < 4 * LIMIT + (1 << 20), f"decoding took {peak} bytes at its peak"


def test_a_body_of_exactly_the_limit_is_decoded() -> None:
    data = bytes(range(256)) * (LIMIT // 256)
    for label, encode in ENCODERS.items():
        assert body.decode(encode(data), [coding_name(label)], LIMIT) == data
        with pytest.raises(BodyTooLarge):
            body.decode(encode(data + b"!"), [coding_name(label)], LIMIT)


# Many decoding steps long, and not all alike (a brotli decoder held output back past
# its first step, which was lost).
LONG = b"".join(b"%d lighthouse keepers, " % i for i in range(12000))


@functools.cache
def _long(label: str) -> bytes:
    """``LONG`` in ``label``'s coding; gzip members and zstd frames after a short one."""
    coded = ENCODERS[label](LONG)
    return ENCODERS[label](LONG[:100]) + coded if label in ("gzip", "zstd") else coded


def test_a_body_many_steps_long_is_decoded_whole() -> None:
    for label in ENCODERS:
        plain = LONG[:100] + LONG if label in ("gzip", "zstd") else LONG
        assert body.decode(_long(label), [coding_name(label)], len(plain)) == plain, label


@pytest.mark.parametrize("size", [7, 1000, 1 << 20])
def test_a_body_decoded_as_it_arrives_is_the_same_body(size: int) -> None:
    """A provider's stream is decoded one network chunk at a time, each as it comes."""
    for label in ENCODERS:
        coded = _long(label)
        decoding = content_coding.Decoding([coding_name(label)], 4 * len(LONG))
        decoded = b"".join(decoding.feed(coded[at : at + size]) for at in range(0, len(coded), size))
        decoding.end()
        assert decoded == (LONG[:100] + LONG if label in ("gzip", "zstd") else LONG), label
        cut = content_coding.Decoding([coding_name(label)], 4 * len(LONG))
        for at in range(0, len(coded) - 3, size):
            cut.feed(coded[at : min(at + size, len(coded) - 3)])
        with pytest.raises(content_coding.Corrupt):
            cut.end()


def test_gzip_members_and_zstd_frames_one_after_another_are_one_body() -> None:
    assert body.decode(gzip.compress(b"ab") + gzip.compress(b"cd"), ["gzip"], LIMIT) == b"abcd"
    zstd = zstandard.ZstdCompressor()
    assert body.decode(zstd.compress(b"ab") + zstd.compress(b"cd"), ["zstd"], LIMIT) == b"abcd"


def test_the_codings_of_the_header() -> None:
    assert content_coding.codings(["gzip, identity", " BR "]) == ["gzip", "br"]
    assert content_coding.codings(["", "identity"]) == []
    with pytest.raises(content_coding.UnknownCoding):
        content_coding.codings(["gzip", "lzma"])
    with pytest.raises(UnsupportedMediaType):
        body.decode(b"x", ["gzip", "lzma"], LIMIT)


def test_a_zstd_frame_that_wants_too_large_a_window_is_refused() -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=24)  # 16 MiB
    packer = zstandard.ZstdCompressor(compression_params=params).compressobj()
    data = packer.compress(b"x" * 1000) + packer.flush()
    with pytest.raises(BadRequest):
        body.decode(data, ["zstd"], LIMIT)


async def test_an_empty_body_with_a_coding_is_an_empty_body() -> None:
    up = RecordingUpstream()
    headers = [(b"host", b"gw"), (b"content-encoding", b"gzip")]
    r = await send_raw(gateway(up), "GET", b"/v1/models/x", headers)
    assert r.status == 200
    assert up.seen[0].body == b""
