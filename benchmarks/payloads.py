"""The fixed bodies of the benchmark: a ~1 KB chat request, the upstream's ~1.1 KB
chat.completion answer, and its streaming twin (10 content chunks, a finish chunk, a
usage chunk and ``[DONE]``).

The JSON holds no backslash, quote-in-string, ``'`` or ``$`` so it can sit verbatim in an
nginx ``return`` string and a Lua long string.
"""

from __future__ import annotations

import json

MODEL = "gpt-4o-mini"

_SYSTEM = (
    "You are a concise assistant for an operations team. Answer in plain English, prefer short "
    "paragraphs, and say when you are not sure. Never invent numbers, commands or file names."
)
_USER_1 = (
    "Our nightly export job started failing last week after we moved the database to a new host. "
    "The job connects, runs for about four minutes and then stops with a timeout. Nothing else changed "
    "as far as we know. What should we check first?"
)
_ASSISTANT_1 = (
    "Start with the network path and the server settings that changed with the move: idle and statement "
    "timeouts on the new host, any load balancer or firewall between the job and the database that drops "
    "long idle connections, and whether the new host has the same indexes."
)
_USER_2 = "The firewall has a 240 second idle timeout. Could that be it, and how would we confirm it?"


def chat_request(stream: bool = False) -> bytes:
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": _SYSTEM},
            {"role": "user", "content": _USER_1},
            {"role": "assistant", "content": _ASSISTANT_1},
            {"role": "user", "content": _USER_2},
        ],
        "temperature": 0.2,
        "max_tokens": 300,
        "user": "bench-user-0001",
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


_ANSWER = (
    "Yes, very likely. A job that runs for about four minutes and then times out matches a 240 second idle "
    "timeout closely. During a long export the client can sit waiting on one large query while no packets "
    "cross the firewall, which then drops the connection without telling either side. To confirm it, run "
    "the export while capturing traffic on the job host and look for a gap of about 240 seconds followed by "
    "a reset or silence. You can also enable TCP keepalives on the client with an interval well below 240 "
    "seconds, or ask the network team to raise the idle timeout for this flow, and see whether the failure "
    "goes away. If it does, keep the keepalive setting and document it next to the job."
)

_USAGE = {
    "prompt_tokens": 187,
    "completion_tokens": 142,
    "total_tokens": 329,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}


def chat_response() -> bytes:
    body = {
        "id": "chatcmpl-BENCH0000000000000000000001",
        "object": "chat.completion",
        "created": 1735689600,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _ANSWER, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _USAGE,
        "system_fingerprint": "fp_bench0001",
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _chunk(delta: dict[str, object] | None, finish: str | None = None, usage: object = None) -> bytes:
    obj: dict[str, object] = {
        "id": "chatcmpl-BENCH0000000000000000000002",
        "object": "chat.completion.chunk",
        "created": 1735689600,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_bench0001",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def chat_stream() -> bytes:
    words = _ANSWER.split(" ")
    n = len(words)
    pieces = [" ".join(words[n * i // 10 : n * (i + 1) // 10]) + " " for i in range(10)]  # 10 content events
    events = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [_chunk({"content": p}) for p in pieces]
    events.append(_chunk({}, finish="stop"))
    events.append(_chunk(None, usage=_USAGE))
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)


def _check_embeddable(data: bytes) -> None:
    for bad in (b"\\", b"'", b"$", b"]==]"):
        if bad in data:
            raise ValueError(f"payload holds {bad!r}; it cannot be embedded verbatim")


for _payload in (chat_request(), chat_request(True), chat_response(), chat_stream()):
    _check_embeddable(_payload)

if __name__ == "__main__":
    for name, data in (
        ("request", chat_request()),
        ("stream request", chat_request(True)),
        ("response", chat_response()),
        ("stream", chat_stream()),
    ):
        print(f"{name}: {len(data)} bytes")
