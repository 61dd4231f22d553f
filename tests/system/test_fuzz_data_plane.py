"""The data plane fuzzed over real HTTP (SPEC §4, §14): whatever the request line,
headers, body and encoding, a real ``tollway serve`` answers 2xx–4xx (never a 5xx it made
itself: a provider's own 5xx passes through), never hangs, keeps serving, and no secret
reaches the provider: never the consumer's key, and never a value ai-data-masking must
mask in a call to an API that carries prompt text.

Requests are written as raw bytes on a socket, so nothing a client library would tidy up
(a bad percent-escape, two Host headers, a backslash) is tidied. Hypothesis shrinks any
failure to a small request; the profile keeps the run to about half a minute.
"""

from __future__ import annotations

import gzip
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Proc
from tests.support.fake_provider import FakeProvider, serve_gateway

KEY = "k-fuzz-0123456789"
SECRET = "planted.secret@example.com"
# A header value that must not reach the provider when Connection names its header.
HOP = "hop-by-hop-value"

CONFIG = """
providers: [{{id: fake, type: openai, apiTokens: [sk-org], baseUrl: "{url}/v1"}}]
routes: [{{name: v1, path_prefix: /v1/, provider: fake}}]
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization, x-api-key]
      consumers: [{{name: fuzzer, credential: {key}}}]
  - name: request-block
    defaultConfig: {{block_bodies: [forbidden-word]}}
  - name: ai-data-masking
    defaultConfig: {{}}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway_addr(upstream: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    proc: Proc = serve_gateway(folder, CONFIG.format(url=upstream.url, key=KEY))
    host, port = proc.url.removeprefix("http://").rsplit(":", 1)
    yield host, int(port)
    proc.stop()


# --- what a request is made of ------------------------------------------------------------

_SEGMENTS = st.sampled_from(
    ["v1", "chat", "completions", "messages", "models", "responses", "embeddings", "", ".", "..", "%2e", "%2E%2e",
     "%2f", "%5c", "%ff", "%", "%zz", "%252e%252e", "a%20b", "\\", "caf%C3%A9", "x;y", "count_tokens", "~", "*"]
)  # fmt: skip
_PATHS = st.lists(_SEGMENTS, min_size=1, max_size=6).map(lambda segs: "/" + "/".join(segs))
_HOSTS = st.sampled_from(["127.0.0.1", "LOCALHOST.", "gw.test:80", "gw.test.", "", "[::1]", "a" * 300])
_ENCODINGS = st.sampled_from([None, "gzip", "deflate", "identity", "br", "zstd", "compress", "gzip, gzip"])


def _chat(content: str, extra: bytes) -> bytes:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})
    return body[:-1] + extra + b"}" if extra else body


_CONTENTS = st.sampled_from([f"mail {SECRET} please", "hi", "forbidden-word", "\u200bzero", "Ｆｕｌｌ"])
_EXTRAS = st.sampled_from([b"", b',"model":"other"', b',"n":' + b"[" * 70 + b"]" * 70, b',"user":"u"', b',"x":"\x00"'])
_BODIES = st.one_of(
    st.builds(_chat, _CONTENTS, _EXTRAS),
    st.binary(max_size=64),
    st.just(b""),
    st.just(b"[" * 5000),
)


def _encode(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    return body


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A raw HTTP/1.1 request, and whether it carries the consumer's key."""
    method = draw(st.sampled_from(["POST", "GET", "PUT", "DELETE", "OPTIONS"]))
    path = draw(_PATHS)
    query = draw(st.sampled_from(["", "?a=1", "?x-api-key=" + KEY, "?%ff", "?x=%00"]))
    headers: list[tuple[str, str]] = []
    for host in draw(st.lists(_HOSTS, min_size=0, max_size=2)):
        headers.append(("Host", host))
    with_key = draw(st.booleans())
    if with_key:
        headers.append(draw(st.sampled_from([("Authorization", f"Bearer {KEY}"), ("x-api-key", KEY)])))
    for name, value in draw(
        st.lists(
            st.sampled_from(
                [("X-Mse-Consumer", "admin"), ("x_mse_consumer", "admin"), ("OpenAI-Organization", "org-x"),
                 ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked"), ("Expect", "100-continue"),
                 ("Connection", "x-secret, close"), ("x-secret", HOP)]
            ),
            max_size=3,
        )
    ):  # fmt: skip
        headers.append((name, value))
    encoding = draw(_ENCODINGS)
    body = _encode(draw(_BODIES), encoding)
    if encoding is not None:
        headers.append(("Content-Encoding", encoding))
    chunked = any(n == "Transfer-Encoding" for n, _ in headers)
    if chunked:
        payload = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
    else:
        headers.append(("Content-Length", str(len(body))))
        payload = body
    head = f"{method} {path}{query} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
    return head.encode("utf-8", "surrogateescape") + payload, with_key


PROMPT_PATHS = ("/chat/completions", "/completions", "/embeddings", "/messages", "/responses", "/count_tokens")


def _exchange(addr: tuple[str, int], raw: bytes) -> tuple[int, bytes] | None:
    """The status and head the gateway answers ``raw`` with (None: it closed without
    answering); a hang fails the test through the socket timeout."""
    with socket.create_connection(addr, timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                return None
            data += piece
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    return int(head.split(b"\r\n", 1)[0].split()[1]), head


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests())
def test_any_request_is_refused_or_served_and_no_secret_reaches_the_provider(
    gateway_addr: tuple[str, int], upstream: FakeProvider, request: tuple[bytes, bool]
) -> None:
    raw, _ = request
    upstream.reset()
    answer = _exchange(gateway_addr, raw)
    if answer is not None:
        status, head = answer
        made_here = b"x-tollway-reason:" in head
        assert status < 500 or not made_here, (status, head, raw[:300])
    alive = _exchange(gateway_addr, f"GET /v1/models HTTP/1.1\r\nHost: gw\r\nx-api-key: {KEY}\r\n\r\n".encode())
    assert alive is not None and alive[0] == 200, "the gateway still serves"
    for seen in upstream.seen:
        sent = seen.path.encode() + seen.query.encode() + repr(seen.headers).encode() + seen.body
        assert KEY.encode() not in sent, ("the consumer key reached the provider", seen)
        if b"connection: x-secret" in raw.lower():
            assert HOP.encode() not in sent, ("a header Connection names reached the provider", seen)
        if seen.path.endswith(PROMPT_PATHS):
            assert SECRET.encode() not in sent, ("a value masking must hide reached the provider", seen)
        assert not seen.all("x-mse-consumer") or seen.all("x-mse-consumer") == ["fuzzer"], seen
        assert not seen.all("x_mse_consumer"), seen
        assert not seen.all("openai-organization"), seen
