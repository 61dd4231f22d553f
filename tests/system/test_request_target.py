"""The canonical request target, bodies and header hygiene on the wire (SPEC §14): a real
``tollway serve`` in front of a recording fake provider, driven over raw sockets so that
the request line, the Host lines and the body bytes are exactly what a hostile client
would send.

- A trailing or doubled slash, or the API's path in other letter case, is the canonical
  API: masked, recorded with its model and tokens, and sent upstream as the canonical
  path; any other variant of it (``;x=1``, ``/x``) leaves masked too, and so do a
  form's text fields (an image edit's prompt), its files as they came; a dot segment, an encoded ``/`` or
  ``\\`` and an undecodable path are a 400 that reaches no provider; a double-encoded
  sequence reaches the provider still encoded once.
- ``API.Example.com.:8080`` is held to the rule for ``api.example.com``; two Host lines
  are a 400.
- gzip/deflate/br/zstd bodies reach the provider decoded; a bomb is a 413 with the
  gateway's peak memory flat; an unknown coding is a 415.
- OpenAI-Organization reaches the provider only where ``pass_headers`` names it; no
  spelling of X-Mse-Consumer from a client reaches it.
"""

from __future__ import annotations

import gzip
import socket
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import brotli
import httpx
import orjson
import pytest
import zstandard

from tests.conftest import Proc
from tests.support.fake_provider import FakeProvider, new_request_id, serve_gateway, usage_record
from tollway.protocols.form import form_fields

EMAIL = "bob.smith@example.com"
CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Mail {EMAIL} today"}]})
LIMIT = 1 << 20
JSON = b"application/json"
CONFIG = """
storage: {{database: "sqlite:///./tollway.db"}}
server: {{max_body_bytes: {limit}}}
providers:
  - {{id: fake, type: openai, baseUrl: "{fake}/v1", apiTokens: [sk-org]}}
  - {{id: passing, type: openai, baseUrl: "{fake}/v1", apiTokens: [sk-org], pass_headers: [OpenAI-Organization]}}
routes:
  - {{name: main, path_prefix: /v1/, provider: fake}}
  - {{name: passing, path_prefix: /passing/v1/, provider: passing}}
plugins:
  - name: ai-data-masking
    defaultConfig: {{deny_words: ["project falcon"]}}
  - name: key-auth
    defaultConfig: {{keys: [x-api-key], consumers: [{{name: alice, credential: k-alice}}]}}
    matchRules:
      - {{domain: [api.example.com], config: {{allow: [alice]}}}}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def gw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    folder: Path = tmp_path_factory.mktemp("request-target")
    proc = serve_gateway(folder, CONFIG.format(fake=fake.url, limit=LIMIT))
    yield proc
    assert proc.stop() == 0


@pytest.fixture(autouse=True)
def fresh(fake: FakeProvider) -> None:
    fake.reset()


def exchange(gw: Proc, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Sends ``head`` (request line and header lines, no blank line) and ``body`` on a new
    connection; the answer's status, headers and body."""
    address = urlsplit(gw.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        extra = b"content-length: %d\r\n" % len(body) if body else b""
        sock.sendall(head + b"\r\n" + extra + b"connection: close\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    top, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split(" ")[1]), headers, rest


Answer = tuple[int, dict[str, str], bytes]


def post(
    gw: Proc, target: bytes, body: bytes = CHAT, *headers: bytes, host: bytes = b"gw", ctype: bytes = JSON
) -> Answer:
    lines = [b"POST " + target + b" HTTP/1.1", b"host: " + host, b"content-type: " + ctype, *headers]
    return exchange(gw, b"\r\n".join(lines), body)


@pytest.mark.parametrize(
    "target",
    [
        b"/v1/chat/completions/",
        b"/v1//chat/completions",
        b"/v1/chat//completions//",
        b"/v1/Chat/Completions",
        b"/v1/CHAT/COMPLETIONS/",
    ],
)
def test_a_trailing_or_doubled_slash_is_the_canonical_api(gw: Proc, fake: FakeProvider, target: bytes) -> None:
    request_id = new_request_id()
    status, _, answer = post(gw, target, CHAT, b"x-request-id: " + request_id.encode())
    assert status == 200, answer
    (seen,) = fake.seen
    assert seen.path == "/v1/chat/completions"
    assert EMAIL not in seen.body.decode() and "[EMAIL_1]" in seen.body.decode()
    record = usage_record(gw, request_id)
    assert record["model_requested"] == "gpt-4o-mini"
    assert record["input_tokens"] > 0 and record["output_tokens"] > 0 and not record["tokens_estimated"]


@pytest.mark.parametrize(
    "target",
    [b"/v1/chat/completions;x=1", b"/v1/chat/completions%20", b"/v1/chat/completions/x", b"/v1/chat/completions.json"],
)
def test_a_variant_of_a_known_path_leaves_masked(gw: Proc, fake: FakeProvider, target: bytes) -> None:
    # Not an API the gateway knows, but one a provider might serve all the same: its body
    # is masked like any other (the fake answers 404; the text had left by then).
    post(gw, target)
    (seen,) = fake.seen
    assert EMAIL not in seen.body.decode() and "[EMAIL_1]" in seen.body.decode()


IMAGE = b"\x89PNG\r\n--not-a-boundary\r\n" + bytes(range(256)) * 64 + EMAIL.encode()


def form(*fields: tuple[str, str | bytes]) -> tuple[bytes, bytes]:
    """A multipart/form-data body of text fields and (bytes) files; its content type."""
    request = httpx.Request(
        "POST",
        "http://gw/",
        data={k: v for k, v in fields if isinstance(v, str)},
        files={k: (f"{k}.bin", v, "application/octet-stream") for k, v in fields if isinstance(v, bytes)},
    )
    return request.read(), request.headers["content-type"].encode()


@pytest.mark.parametrize(
    ("target", "fields"),
    [
        (b"/v1/images/edits", (("model", "gpt-image-1"), ("prompt", f"Sign it {EMAIL}"), ("image", IMAGE))),
        (b"/v1/audio/transcriptions", (("model", "whisper-1"), ("file", IMAGE), ("prompt", f"Names: {EMAIL}"))),
    ],
)
def test_a_forms_text_fields_leave_masked_and_its_files_as_they_came(
    gw: Proc, fake: FakeProvider, target: bytes, fields: tuple[tuple[str, str | bytes], ...]
) -> None:
    body, content_type = form(*fields)
    post(gw, target, body, ctype=content_type)
    (seen,) = fake.seen
    assert seen.header("content-type") == content_type.decode()
    sent = {k: v for k, v in fields}
    got = form_fields(content_type.decode(), seen.body, frozenset(sent), len(seen.body), files=frozenset(sent))
    assert got is not None and set(got) == set(sent)
    for name, value in sent.items():
        if isinstance(value, bytes):
            assert got[name] == value  # a file, byte for byte (the address in it too)
        elif name == "model":
            assert got[name] == value.encode()
        else:
            assert got[name] == value.replace(EMAIL, "[EMAIL_1]").encode()
    body, content_type = form(("model", "gpt-image-1"), ("prompt", "the project falcon logo"), ("image", IMAGE))
    status, headers, _ = post(gw, target, body, ctype=content_type)
    assert (status, headers["x-tollway-reason"]) == (200, "ai-data-masking.denied")
    assert len(fake.seen) == 1


def test_a_prompt_sent_as_a_file_or_urlencoded_leaves_masked(gw: Proc, fake: FakeProvider) -> None:
    request = httpx.Request(
        "POST", "http://gw/", files={"prompt": ("p.txt", f"Sign it {EMAIL}", "text/plain"), "image": ("a.png", IMAGE)}
    )
    post(gw, b"/v1/images/edits", request.read(), ctype=request.headers["content-type"].encode())
    urlencoded = b"model=gpt-image-1&prompt=" + EMAIL.replace("@", "%40").encode()
    post(gw, b"/v1/images/generations", urlencoded, ctype=b"application/x-www-form-urlencoded")
    sent = [seen.body for seen in fake.seen]
    assert len(sent) == 2
    assert b"Sign it [EMAIL_1]" in sent[0] and b"Sign it " + EMAIL.encode() not in sent[0]
    assert IMAGE in sent[0]  # the upload as it came (the address in its bytes too)
    assert sent[1] == b"model=gpt-image-1&prompt=%5BEMAIL_1%5D"
    # Base64 in a form part would carry the text past the masking, read as it is sent.
    encoded = (
        b'--XX\r\nContent-Disposition: form-data; name="prompt"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nYm9iQGV4YW1wbGUuY29t\r\n--XX--\r\n"
    )
    status, headers, _ = post(gw, b"/v1/images/edits", encoded, ctype=b"multipart/form-data; boundary=XX")
    assert (status, headers["x-tollway-reason"]) == (400, "gateway.bad_request")
    assert len(fake.seen) == 2
    # A skill's files are kept by the provider, stateful: they go as they came.
    skill, content_type = form(("display_title", "mailer"), ("files[]", f"Write to {EMAIL}".encode()))
    post(gw, b"/v1/skills", skill, ctype=content_type)
    assert fake.seen[-1].body == skill


@pytest.mark.parametrize(
    "target",
    [
        b"/v1/%2e%2e/v1/chat/completions",
        b"/v1/files/%2E%2E/%2e%2e/admin",
        b"/v1/../v1/chat/completions",
        b"/v1/files/..;/..;/admin",
        b"/v1/files/.;x/keys",
        b"/v1/files/%2e%2e%3b/admin",
        b"/v1/chat%2fcompletions",
        b"/v1/chat%5Ccompletions",
        b"/v1/files/%ff",
        b"/v1/files/%00",
    ],
)
def test_an_ambiguous_or_undecodable_path_is_a_400_and_nothing_goes_upstream(
    gw: Proc, fake: FakeProvider, target: bytes
) -> None:
    status, headers, answer = post(gw, target)
    assert status == 400, answer
    assert headers["x-tollway-reason"] == "gateway.bad_request"
    assert fake.seen == []


def test_a_raw_byte_outside_ascii_in_the_target_is_a_400(gw: Proc, fake: FakeProvider) -> None:
    status, _, _ = post(gw, b"/v1/files/\xff")  # the HTTP parser refuses it before the gateway sees it
    assert status == 400
    assert fake.seen == []


def test_a_double_encoded_sequence_reaches_the_provider_encoded_once(gw: Proc, fake: FakeProvider) -> None:
    status, _, _ = exchange(gw, b"GET /v1/files/%252e%252e%252fkeys HTTP/1.1\r\nhost: gw")
    assert status == 404  # the fake's answer to a path it does not know
    assert [s.path for s in fake.seen] == ["/v1/files/%252e%252e%252fkeys"]


@pytest.mark.parametrize("host", [b"API.Example.com.:8080", b"api.example.com.", b"Api.example.COM"])
def test_a_domain_rule_holds_for_the_host_however_it_is_written(gw: Proc, fake: FakeProvider, host: bytes) -> None:
    status, headers, _ = post(gw, b"/v1/chat/completions", host=host)
    assert (status, headers["x-tollway-reason"]) == (401, "key-auth.no_key")
    assert fake.seen == []
    status, _, _ = post(gw, b"/v1/chat/completions", CHAT, b"x-api-key: k-alice", host=host)
    assert status == 200


def test_an_absolute_form_target_is_held_to_the_host_header(gw: Proc, fake: FakeProvider) -> None:
    status, headers, _ = post(gw, b"http://web.example.com/v1/chat/completions", host=b"api.example.com")
    assert (status, headers["x-tollway-reason"]) == (400, "gateway.bad_request")
    assert fake.seen == []
    # Naming the Host's own host, it is that host's rule that applies (key-auth here).
    status, headers, _ = post(gw, b"http://API.example.com/v1/chat/completions", host=b"api.example.com")
    assert (status, headers["x-tollway-reason"]) == (401, "key-auth.no_key")
    status, _, _ = post(
        gw, b"http://api.example.com/v1/chat/completions", CHAT, b"x-api-key: k-alice", host=b"api.example.com"
    )
    assert status == 200
    assert [s.path for s in fake.seen] == ["/v1/chat/completions"]


def test_two_host_lines_are_a_400(gw: Proc, fake: FakeProvider) -> None:
    status, headers, _ = post(gw, b"/v1/chat/completions", CHAT, b"host: web.example.com", host=b"api.example.com")
    assert (status, headers["x-tollway-reason"]) == (400, "gateway.bad_request")
    assert fake.seen == []


@pytest.mark.parametrize("host", [b"api.example.com:99999", b"api.example.com:65536", b"api.example.com:8080:1"])
def test_a_host_with_no_valid_port_is_a_400(gw: Proc, fake: FakeProvider, host: bytes) -> None:
    status, headers, _ = post(gw, b"/v1/chat/completions", CHAT, b"x-api-key: k-alice", host=host)
    assert (status, headers["x-tollway-reason"]) == (400, "gateway.bad_request")
    assert fake.seen == []


@pytest.mark.parametrize("method", [b"TRACE", b"PROPFIND", b"PURGE"])
def test_a_method_no_provider_api_takes_is_a_405_and_nothing_goes_upstream(
    gw: Proc, fake: FakeProvider, method: bytes
) -> None:
    """An upstream (or a proxy before it) that honours TRACE would echo the request it
    got, the organisation's key in it."""
    status, headers, _ = exchange(gw, method + b" /v1/models HTTP/1.1\r\nhost: gw\r\nx-api-key: k-alice")
    assert (status, headers["x-tollway-reason"]) == (405, "gateway.method_not_allowed")
    assert "POST" in headers["allow"]
    assert fake.seen == []


def test_a_connect_is_a_405_not_a_parser_error(gw: Proc, fake: FakeProvider) -> None:
    # Its target is a host and port, no URL: it was a 400 "User callback error", logged
    # as input that was not HTTP.
    status, headers, body = exchange(gw, b"CONNECT api.example.com:443 HTTP/1.1\r\nhost: api.example.com:443")
    assert (status, headers["x-tollway-reason"]) == (405, "gateway.method_not_allowed")
    assert "POST" in headers["allow"] and b"CONNECT" in body
    assert fake.seen == []


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": _zstd,
}


@pytest.mark.parametrize("coding", ENCODERS)
def test_an_encoded_body_reaches_the_provider_decoded(gw: Proc, fake: FakeProvider, coding: str) -> None:
    data = ENCODERS[coding](CHAT)
    status, _, answer = post(gw, b"/v1/chat/completions", data, b"content-encoding: " + coding.encode())
    assert status == 200, answer
    (seen,) = fake.seen
    assert seen.json()["model"] == "gpt-4o-mini"
    assert "[EMAIL_1]" in seen.json()["messages"][0]["content"]  # masking read it decoded
    assert seen.header("content-encoding") is None
    assert seen.header("content-length") == str(len(seen.body))


def _raw_deflate_bomb(mib: int) -> bytes:
    """``mib`` MiB of zeros as one raw deflate stream, made without compressing them all:
    after a full flush the compressor starts afresh, so each further MiB is the same bytes."""
    zeros = bytes(1 << 20)
    packer = zlib.compressobj(9, wbits=-15)
    first = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    return first + again * (mib - 2) + packer.compress(zeros) + packer.flush()


def _bombs(mib: int) -> dict[str, bytes]:
    zeros = bytes(1 << 20)
    packer = brotli.Compressor(quality=1)
    return {
        "gzip": gzip.compress(zeros) * mib,  # members one after another are one body
        "deflate": _raw_deflate_bomb(mib),
        "br": b"".join(packer.process(zeros) for _ in range(mib)) + packer.finish(),
        "zstd": _zstd(zeros) * mib,  # and so are frames
    }


def test_a_bomb_is_a_413_and_the_gateways_memory_stays_flat(gw: Proc, fake: FakeProvider) -> None:
    before = gw.peak_memory_kib()
    for coding, bomb in _bombs(256).items():  # 256 MiB each, decoded
        assert len(bomb) < LIMIT
        status, headers, _ = post(gw, b"/v1/chat/completions", bomb, b"content-encoding: " + coding.encode())
        assert (status, headers["x-tollway-reason"]) == (413, "gateway.body_too_large"), coding
    assert fake.seen == []
    grew_mib = (gw.peak_memory_kib() - before) / 1024
    assert grew_mib < 48, f"the gateway's peak memory grew by {grew_mib:.0f} MiB"


def test_an_unknown_coding_is_a_415(gw: Proc, fake: FakeProvider) -> None:
    status, headers, _ = post(gw, b"/v1/chat/completions", CHAT, b"content-encoding: compress")
    assert (status, headers["x-tollway-reason"]) == (415, "gateway.unsupported_encoding")
    assert fake.seen == []


def test_the_account_headers_reach_only_a_provider_that_passes_them(gw: Proc, fake: FakeProvider) -> None:
    account = (b"openai-organization: org-attacker", b"OpenAI-Project: proj-attacker", b"openai_organization: org-x")
    assert post(gw, b"/v1/chat/completions", CHAT, *account)[0] == 200
    assert post(gw, b"/passing/v1/chat/completions", CHAT, *account)[0] == 200
    plain, passing = fake.seen
    assert not {k for k, _ in plain.headers} & {"openai-organization", "openai-project", "openai_organization"}
    assert passing.header("openai-organization") == "org-attacker"
    assert passing.header("openai-project") is None


def test_no_spelling_of_x_mse_consumer_from_a_client_reaches_the_provider(gw: Proc, fake: FakeProvider) -> None:
    spoofed = (b"X_Mse_Consumer: mallory", b"x-mse-consumer: mallory", b"X-MSE_consumer: mallory")
    assert post(gw, b"/v1/chat/completions", CHAT, *spoofed)[0] == 200
    assert post(gw, b"/v1/chat/completions", CHAT, b"x-api-key: k-alice", *spoofed, host=b"api.example.com")[0] == 200
    anonymous, alice = fake.seen
    assert not [k for k, _ in anonymous.headers if "mse" in k]
    assert [(k, v) for k, v in alice.headers if "mse" in k] == [("x-mse-consumer", "alice")]


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "gpt-4o-mini", "model": "gpt-4o", "messages": []}',
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a", "content": "b"}]}',
        b'{"model": "gpt-4o-mini", "messages": [], "metadata": ' + b"[" * 64 + b"0" + b"]" * 64 + b"}",
    ],
)
def test_an_ambiguous_or_too_deep_body_is_a_400_and_nothing_goes_upstream(
    gw: Proc, fake: FakeProvider, body: bytes
) -> None:
    status, headers, _ = post(gw, b"/v1/chat/completions", body)
    assert (status, headers["x-tollway-reason"]) == (400, "gateway.bad_request")
    assert fake.seen == []
