"""A chat request as the mock-llm tests write them."""

from __future__ import annotations

from typing import Any


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "mock-gpt", "messages": [{"role": "user", "content": text}], **extra}
