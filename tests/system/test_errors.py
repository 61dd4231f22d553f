"""Bad input, failing providers and impatient clients (SPEC §4): each refusal is an
OpenAI-shaped (or, on /v1/messages, Anthropic-shaped) error with its status, code and
``x-tollway-reason``, provider errors pass through, streams fail with an error event,
and after every one of these the gateway goes on serving.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, start_process
from tests.support.raw_http import read_answer

MAX_BODY = 4096
CONFIG = """
server: {{max_body_bytes: {max_body}, upstream_timeout_s: 2}}
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: mock, type: openai, baseUrl: "{mock}/v1", apiTokens: [sk-provider-1], timeout: 400}}
  - {{id: garbage, type: openai, baseUrl: "{garbage}/v1", apiTokens: [sk-provider-1]}}
  - {{id: huge-head, type: openai, baseUrl: "{garbage}/huge-head/v1", apiTokens: [sk-provider-1]}}
  - id: down
    type: openai
    baseUrl: "http://127.0.0.1:{dead}/v1"
    apiTokens: [sk-provider-1]
    modelMapping: {{house-model: mock-gpt, "house-*": mock-gpt, "*": mock-gpt}}
routes:
  - {{name: chat, path_prefix: /v1/, provider: mock}}
  - {{name: down, path_prefix: /down/v1/, provider: down}}
  - {{name: failover, path_prefix: /failover/v1/, providers: [down, mock]}}
  - {{name: nothing, path_prefix: /nothing/}}
  - {{name: garbage, path_prefix: /garbage/v1/, provider: garbage}}
  - {{name: huge-head, path_prefix: /huge-head/v1/, provider: huge-head}}
"""


def _dead_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def garbage() -> Iterator[str]:
    """A provider that answers every request with bytes that are not HTTP (under
    ``/huge-head/``, a 200 whose one header is 1 MiB)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                if b"/huge-head/" in conn.recv(65536):
                    head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-big: " + b"a" * (1 << 20) + b"\r\n\r\n{}"
                    with contextlib.suppress(OSError):  # the gateway hangs up part-way
                        conn.sendall(head)
                else:
                    conn.sendall(b"THIS IS NOT HTTP\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    server.close()


@pytest.fixture(scope="module")
def gw(mock_llm: Proc, garbage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    folder: Path = tmp_path_factory.mktemp("core-errors")
    text = CONFIG.format(max_body=MAX_BODY, mock=mock_llm.url, dead=_dead_port(), garbage=garbage)
    (folder / "tollway.yaml").write_text(text)
    proc = start_process(["serve", "-c", "tollway.yaml", "--port", "0", "--admin-port", "0"], cwd=folder)
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def http(gw: Proc) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        yield client


def chat(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "mock-gpt", "messages": [{"role": "user", "content": text}], **extra}


def assert_error(r: httpx.Response, status: int, code: str, reason: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-tollway-reason"] == reason
    assert r.headers["x-request-id"]
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    return error


def assert_still_serving(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", json=chat("still there?"))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "This is a mock reply to: still there?"


def logged(gw: Proc, request_id: str) -> dict[str, Any]:
    gw.wait_for_stdout(lambda lines: any(request_id in line for line in lines))
    [line] = [entry for entry in gw.access_log() if entry["request_id"] == request_id]
    return line


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[1, 2]", b'"a string"', b'{"messages": []}', b'{"model": 5, "messages": []}'],
    ids=["garbage", "empty", "array", "string", "no-model", "model-not-a-string"],
)
def test_a_bad_body_is_400(http: httpx.Client, gw: Proc, body: bytes) -> None:
    r = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert_error(r, 400, "invalid_request_error", "gateway.bad_request")
    assert logged(gw, r.headers["x-request-id"])["status"] == 400
    assert_still_serving(http)


def test_a_bad_body_on_the_anthropic_api_gets_anthropics_error_shape(http: httpx.Client) -> None:
    r = http.post("/v1/messages", content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.headers["x-tollway-reason"] == "gateway.bad_request"
    body = r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"]


def test_a_body_over_max_body_bytes_is_413(http: httpx.Client, gw: Proc) -> None:
    big = chat("x" * (MAX_BODY + 10))
    r = http.post("/v1/chat/completions", json=big)
    assert_error(r, 413, "request_too_large", "gateway.body_too_large")
    assert logged(gw, r.headers["x-request-id"])["status"] == 413
    assert_still_serving(http)


def test_a_chunked_body_over_max_body_bytes_is_413(http: httpx.Client) -> None:
    def pieces() -> Iterator[bytes]:
        yield b'{"model": "mock-gpt", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY // 512 + 2):
            yield b"y" * 512
        yield b'"}]}'

    r = http.post("/v1/chat/completions", content=pieces(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "request_too_large", "gateway.body_too_large")
    assert_still_serving(http)


def test_an_answer_before_the_body_is_all_in_tells_the_client_the_connection_ends(gw: Proc) -> None:
    # A chunked body past the limit whose last chunk has not come: the 413 goes out with
    # the body still arriving, and the gateway reads no further request on the
    # connection. Without "connection: close" a client would send its next one there
    # (and, before the gateway's half-close reached it, lose it: "server disconnected").
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ntransfer-encoding: chunked\r\n\r\n"
        sock.sendall(head.encode() + b"%x\r\n%b\r\n" % (MAX_BODY + 1, b"x" * (MAX_BODY + 1)))
        answer = read_answer(sock)
        assert answer.status_code == 413
        assert answer.headers["connection"] == "close"
        sock.sendall(b"5\r\nmore!\r\n")  # still read (and dropped), not a reset
        assert sock.recv(65536) == b"", "the gateway half-closed after its answer"


def test_a_body_just_under_the_limit_is_served(http: httpx.Client) -> None:
    body = json.dumps(chat("z")).encode()
    body = body.replace(b'"z"', b'"' + b"z" * (MAX_BODY - len(body) + 1) + b'"')
    assert len(body) == MAX_BODY
    assert http.post("/v1/chat/completions", content=body).status_code == 200


def test_an_unknown_path_is_404_route_not_found(http: httpx.Client, gw: Proc) -> None:
    r = http.post("/not/a/route", json=chat())
    assert_error(r, 404, "route_not_found", "gateway.no_route")
    line = logged(gw, r.headers["x-request-id"])
    assert (line["status"], line["route"], line["reason"]) == (404, None, "gateway.no_route")
    assert_still_serving(http)


def test_client_credentials_never_reach_the_provider_even_without_key_auth(
    http: httpx.Client, mock_requests: Any
) -> None:
    headers = {"authorization": "Bearer sk-client-own", "x-api-key": "sk-client-own", "api-key": "sk-client-own"}
    assert http.post("/v1/chat/completions", json=chat(), headers=headers).status_code == 200
    [seen] = mock_requests()
    assert ["authorization", "Bearer sk-provider-1"] in seen["headers"]
    assert not any("sk-client-own" in value for _, value in seen["headers"]), seen["headers"]


def test_a_route_with_no_provider_and_no_terminal_plugin_is_404(http: httpx.Client, gw: Proc) -> None:
    r = http.post("/nothing/v1/chat/completions", json=chat())
    assert_error(r, 404, "route_not_found", "gateway.no_route")
    assert logged(gw, r.headers["x-request-id"])["route"] == "nothing"


def test_a_provider_that_is_down_is_502(http: httpx.Client, gw: Proc) -> None:
    r = http.post("/down/v1/chat/completions", json=chat())
    error = assert_error(r, 502, "upstream_error", "ai-proxy.upstream_unreachable")
    assert "127.0.0.1" not in error["message"], "the provider's address is not the client's business"
    assert logged(gw, r.headers["x-request-id"])["status"] == 502
    assert_still_serving(http)


def raw_post(url: str, target: str, body: bytes) -> tuple[int, dict[str, str]]:
    """POST ``target`` exactly as written (no client normalises it); status and headers."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST {target} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, *lines = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers


@pytest.mark.parametrize(
    "target",
    [
        "/down/v1/../../v1/chat/completions",
        "/down/v1/%2e%2e/%2E%2E/v1/chat/completions",
        "/v1/./chat/completions",
        "/v1/chat/completions%3Fmodel=x",
        "/v1/chat/completions%23x",
    ],
)
def test_a_path_the_provider_could_read_differently_is_refused(gw: Proc, mock_requests: Any, target: str) -> None:
    status, headers = raw_post(gw.url, target, json.dumps(chat()).encode())
    assert status == 400
    assert headers["x-tollway-reason"] == "gateway.bad_request"
    assert mock_requests() == []


def test_a_provider_that_cannot_list_models_contributes_its_mapping_keys(http: httpx.Client) -> None:
    r = http.get("/down/v1/models")
    assert r.status_code == 200, r.text
    assert [m["id"] for m in r.json()["data"]] == ["house-model"]


def test_failover_tries_the_next_provider_before_answering(http: httpx.Client, gw: Proc) -> None:
    r = http.post("/failover/v1/chat/completions", json=chat(), headers={"x-request-id": "failover-1"})
    assert r.status_code == 200, r.text
    logged(gw, "failover-1")
    records = httpx.get(gw.admin_url + "/api/requests", params={"limit": 100}, timeout=5).json()["requests"]
    [record] = [rec for rec in records if rec["request_id"] == "failover-1"]
    assert [(a["provider"], a["status"]) for a in record["attempts"]] == [("down", 502), ("mock", 200)]
    assert record["provider"] == "mock"


def test_a_provider_slower_than_its_timeout_is_504(http: httpx.Client, gw: Proc) -> None:
    started = time.monotonic()
    r = http.post("/v1/chat/completions", json=chat(), headers={"x-mock-latency-ms": "1500"})
    assert time.monotonic() - started >= 0.3
    assert_error(r, 504, "upstream_timeout", "ai-proxy.upstream_timeout")
    assert logged(gw, r.headers["x-request-id"])["status"] == 504
    assert_still_serving(http)


def test_a_provider_that_drops_the_connection_before_answering_is_502(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", json=chat(), headers={"x-mock-drop": "before-headers"})
    assert_error(r, 502, "upstream_error", "ai-proxy.bad_upstream_response")
    assert_still_serving(http)


def test_a_provider_that_answers_garbage_is_502(http: httpx.Client) -> None:
    r = http.post("/garbage/v1/chat/completions", json=chat())
    assert_error(r, 502, "upstream_error", "ai-proxy.bad_upstream_response")
    assert_still_serving(http)


def test_a_provider_whose_headers_never_end_is_502_and_recorded(http: httpx.Client, gw: Proc) -> None:
    # A provider's 1 MiB header was held and relayed to the client whole.
    r = http.post("/huge-head/v1/chat/completions", json=chat())
    assert_error(r, 502, "upstream_error", "ai-proxy.bad_upstream_response")
    assert "aaaa" not in r.text and "x-big" not in r.headers
    assert logged(gw, r.headers["x-request-id"])["status"] == 502
    assert_still_serving(http)


def test_a_json_answer_cut_short_is_502(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", json=chat(), headers={"x-mock-drop": "mid-stream"})
    assert_error(r, 502, "upstream_error", "ai-proxy.bad_upstream_response")
    assert_still_serving(http)


@pytest.mark.parametrize("status", [400, 429, 503])
def test_provider_errors_pass_through_with_status_and_body(http: httpx.Client, gw: Proc, status: int) -> None:
    r = http.post("/v1/chat/completions", json=chat(), headers={"x-mock-status": str(status)})
    assert r.status_code == status
    error = r.json()["error"]
    assert (error["message"], error["code"]) == (f"mock error {status}", "mock_error")
    assert r.headers["x-request-id"]
    assert logged(gw, r.headers["x-request-id"])["status"] == status
    assert_still_serving(http)


def test_an_anthropic_client_is_told_a_timeout_as_timeout_error(http: httpx.Client) -> None:
    """Anthropic's API answers a 504 with type ``timeout_error`` (its errors page); so does the gateway."""
    body = {"model": "mock-gpt", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    r = http.post("/v1/messages", json=body, headers={"x-mock-latency-ms": "1500"})
    assert r.status_code == 504, r.text
    assert r.json() == {"type": "error", "error": {"type": "timeout_error", "message": r.json()["error"]["message"]}}


def test_the_sdk_sees_a_passed_through_rate_limit(gw: Proc) -> None:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=10) as client:
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(
                model="mock-gpt", messages=[{"role": "user", "content": "x"}], extra_headers={"x-mock-status": "429"}
            )
    assert raised.value.status_code == 429
    assert "mock error 429" in raised.value.message


# --- streams -----------------------------------------------------------------------------------


def sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def test_a_stream_that_fails_midway_ends_with_an_error_event(http: httpx.Client, gw: Proc) -> None:
    r = http.post("/v1/chat/completions", json=chat(stream=True), headers={"x-mock-drop": "mid-stream"})
    assert r.status_code == 200  # the answer had begun
    events = [json.loads(d) for d in sse_data(r.text) if d != "[DONE]"]
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "error" in events[-1], events[-1]
    assert events[-1]["error"]["message"]
    assert all("error" not in e for e in events[:-1])
    line = logged(gw, r.headers["x-request-id"])
    assert line["status"] == 502
    assert line["reason"] == "ai-proxy.bad_upstream_response"
    assert_still_serving(http)


def test_a_stream_that_goes_silent_past_upstream_timeout_ends_with_an_error_event(http: httpx.Client, gw: Proc) -> None:
    headers = {"x-mock-chunk-delay-ms": "2600", "x-mock-chunks": "2"}
    r = http.post("/v1/chat/completions", json=chat(stream=True), headers=headers)
    assert r.status_code == 200
    events = [json.loads(d) for d in sse_data(r.text) if d != "[DONE]"]
    assert events[-1]["error"]["code"] == "upstream_timeout"
    line = logged(gw, r.headers["x-request-id"])
    assert (line["status"], line["reason"]) == (504, "ai-proxy.upstream_timeout")
    assert_still_serving(http)


def test_an_anthropic_stream_that_goes_silent_ends_with_a_timeout_error(http: httpx.Client, gw: Proc) -> None:
    body = {"model": "mock-gpt", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    r = http.post("/v1/messages", json=body, headers={"x-mock-chunk-delay-ms": "2600", "x-mock-chunks": "2"})
    assert r.status_code == 200
    last = json.loads(sse_data(r.text)[-1])
    assert last["type"] == "error" and last["error"]["type"] == "timeout_error", last
    line = logged(gw, r.headers["x-request-id"])
    assert (line["status"], line["reason"]) == (504, "ai-proxy.upstream_timeout")


def test_the_sdk_raises_on_a_stream_that_fails_midway(gw: Proc) -> None:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=10) as client:
        stream = client.chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            extra_headers={"x-mock-drop": "mid-stream"},
        )
        with stream, pytest.raises(openai.APIError):
            for _ in stream:
                pass


def test_a_stream_is_relayed_as_it_arrives(gw: Proc) -> None:
    headers = {"x-mock-chunk-delay-ms": "400", "x-mock-chunks": "2"}
    started = time.monotonic()
    first_content: float | None = None
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST", gw.url + "/v1/chat/completions", json=chat("tell me more", stream=True), headers=headers
        ) as r,
    ):
        for line in r.iter_lines():
            if first_content is None and '"content":"' in line and '"content":""' not in line:
                first_content = time.monotonic() - started
        ended = time.monotonic() - started
    assert first_content is not None
    # Four pauses of 0.4 s follow the first content chunk (the rest of the content, the
    # finish chunk, the usage chunk, [DONE]): the first must not wait for them.
    assert ended >= 1.2
    assert ended - first_content >= 1.0, (first_content, ended)


def test_the_first_event_reaches_the_client_before_a_pause_ends(gw: Proc) -> None:
    started = time.monotonic()
    arrivals: list[float] = []
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST", gw.url + "/v1/chat/completions", json=chat(stream=True), headers={"x-mock-ttft-ms": "1500"}
        ) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) >= 3
    assert arrivals[-1] >= 1.4
    assert arrivals[-1] - arrivals[0] >= 1.0, arrivals


def test_a_client_that_leaves_mid_stream_is_recorded_as_499(gw: Proc) -> None:
    # A long stream (20 events, 0.5 s apart): leaving after the first cancels the
    # provider call, so the record cannot carry the usage only its end would report.
    headers = {"x-mock-chunk-delay-ms": "500", "x-mock-chunks": "20", "x-request-id": "leaves-early"}
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", gw.url + "/v1/chat/completions", json=chat(stream=True), headers=headers) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")
        # Leaving the block closed the connection half-way through the stream.
        line = logged(gw, "leaves-early")
        assert line["status"] == 499
        assert line["reason"] == "gateway.client_closed"
        records = client.get(gw.admin_url + "/api/requests", params={"limit": 100}).json()["requests"]
        [record] = [rec for rec in records if rec["request_id"] == "leaves-early"]
        assert record["output_tokens"] > 0
        assert record["tokens_estimated"] is True, "the provider call was cancelled, not read to its end"
        r2 = client.post(gw.url + "/v1/chat/completions", json=chat("after the leaver"))
        assert r2.status_code == 200


def test_a_client_that_leaves_while_waiting_for_headers_is_recorded_as_499(gw: Proc) -> None:
    with httpx.Client(timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(
                gw.url + "/v1/chat/completions",
                json=chat(),
                headers={"x-mock-latency-ms": "350", "x-request-id": "leaves-waiting"},
            )
    line = logged(gw, "leaves-waiting")
    assert (line["status"], line["reason"]) == (499, "gateway.client_closed")
