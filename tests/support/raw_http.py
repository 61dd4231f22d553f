"""Reading an HTTP/1.1 answer straight off a socket, for tests that must write the
request themselves (a body promised and never finished, a head sent without its body),
which no HTTP client will do."""

from __future__ import annotations

import socket

import httpx


def read_answer(sock: socket.socket) -> httpx.Response:
    """The one answer on ``sock``, which carries a ``content-length``; fails if the
    connection closes before all of it came."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
    length = int(next(v for k, v in headers if k.lower() == "content-length"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed mid-body"
        body += chunk
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)
