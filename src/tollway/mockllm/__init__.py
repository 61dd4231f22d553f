"""mock-llm: the built-in mock model server for demos, tests and benchmarks (SPEC §7).

It answers OpenAI (chat completions, completions, embeddings, models) and Anthropic
(messages) requests with deterministic text and truthful ``usage`` under
:func:`count_tokens`, streams when asked, and obeys per-request ``x-mock-*`` control
headers (see :mod:`tollway.mockllm.server`).

``create_app()`` gives a fresh ASGI app; ``serve(host, port)`` runs one with uvicorn.
"""

from tollway.mockllm.replies import count_tokens
from tollway.mockllm.server import create_app, serve

__all__ = ["count_tokens", "create_app", "serve"]
