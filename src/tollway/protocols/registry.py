"""The codecs by protocol name (what ``Provider.protocol`` and a client's API speak)."""

from __future__ import annotations

from tollway.protocols.anthropic.messages import AnthropicMessages
from tollway.protocols.codec import Codec
from tollway.protocols.gemini.generate_content import GeminiGenerateContent
from tollway.protocols.openai.chat import OpenAIChat

# Codecs hold no state (readers and writers are made per stream), so one each will do.
CODECS: dict[str, Codec] = {c.name: c for c in (OpenAIChat(), AnthropicMessages(), GeminiGenerateContent())}


def codec_for(protocol: str) -> Codec:
    """The codec for ``"openai"``, ``"anthropic"`` or ``"gemini"``; KeyError otherwise."""
    return CODECS[protocol]
