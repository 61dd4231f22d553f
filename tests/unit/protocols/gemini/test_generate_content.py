"""The Gemini codec itself (protocols/gemini/generate_content.py): API paths and model
lists, over the hand-written transcripts in tests/fixtures/transcripts. No sockets."""

from __future__ import annotations

from tests.support.transcript_support import load
from tollway.protocols.registry import codec_for

G = codec_for("gemini")


def test_api_paths() -> None:
    plain = G.api_path(False, "gemini-2.5-flash")
    stream = G.api_path(True, "gemini-2.5-flash")
    assert (plain.path, plain.query) == ("/models/gemini-2.5-flash:generateContent", "")
    assert (stream.path, stream.query) == ("/models/gemini-2.5-flash:streamGenerateContent", "alt=sse")
    assert G.api_path(False, "models/gemini-2.5-pro").path == "/models/gemini-2.5-pro:generateContent"


def test_model_ids_are_every_model_listed() -> None:
    # (An embedding model too: a client picking its embedding model from the list found
    # none, where embedContent on it worked through the gateway, a judge found.)
    assert G.model_ids(load("gemini", "models.json")) == ["gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-004"]
    assert G.model_ids([]) == []
