"""Pivot requests as the Anthropic codec tests write them, and what a Claude provider
receives for one."""

from __future__ import annotations

from typing import Any

from tollway.protocols.registry import codec_for

A = codec_for("anthropic")


def to_claude(chat: dict[str, Any]) -> dict[str, Any]:
    return A.request_from_pivot(chat)


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "claude-x", "messages": list(messages), **fields}
