"""``urls.shown_url``: a URL as logs may show it."""

from __future__ import annotations

import pytest

from tollway.urls import shown_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://me:sk-secret@127.0.0.1:9/v1", "http://***@127.0.0.1:9/v1"),
        ("http://sk-token-alone@host/x", "http://***@host/x"),
        ("https://api.example.com/v1?key=AIza-secret&alt=sse&flag", "https://api.example.com/v1?key=***&alt=***&flag"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
    ],
)
def test_what_a_url_holds_of_secrets_is_not_shown(url: str, shown: str) -> None:
    assert shown_url(url) == shown
