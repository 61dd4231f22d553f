"""A fake OpenAI-style embeddings server whose vectors put paraphrases close together.

``POST …/embeddings`` answers each ``input`` with a bag-of-words vector: every lower-cased
word adds 1 to one of ``DIMENSIONS`` buckets chosen by a hash of the word. Two texts that
share most of their words are therefore close (cosine near 1: "What is the capital of
France?" and "what is the capital city of France" share six words of seven), two that
share none are near 0. Deterministic; ``calls`` counts the requests answered; usage is
the number of words, as a provider counts tokens.

The buckets are many so that words rarely share one: with 64, two texts sharing half
their words (the tests' "… what is the capital of France?" questions) read 0.85 or more
about once in a hundred pairs, a semantic hit no test meant (CI saw one).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading

from tests.support.loopback_server import LoopbackServer, read_request

DIMENSIONS = 1024
_WORD = re.compile(r"[a-z0-9]+")


def bag_of_words(text: str) -> list[float]:
    vector = [0.0] * DIMENSIONS
    for word in _WORD.findall(text.lower()):
        vector[int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little") % DIMENSIONS] += 1.0
    return vector


class EmbeddingProvider(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._calls = 0

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            if not head.split(b" ", 2)[1].endswith(b"/embeddings"):
                writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                continue
            with self._lock:
                self._calls += 1
            request = json.loads(body)
            inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
            data = [{"object": "embedding", "index": i, "embedding": bag_of_words(t)} for i, t in enumerate(inputs)]
            words = sum(len(_WORD.findall(t.lower())) for t in inputs)
            answer = json.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": request["model"],
                    "usage": {"prompt_tokens": words, "total_tokens": words},
                }
            ).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(answer), answer)
            )
            await writer.drain()


__all__ = ["DIMENSIONS", "EmbeddingProvider", "bag_of_words"]
