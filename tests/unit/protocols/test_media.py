"""Inline media in a request body, weighed for the holds made before a call
(``protocols.media``): each protocol's shape found, at any depth, and text left text."""

from __future__ import annotations

from typing import Any

from tollway.protocols.media import (
    AUDIO_CHARS_PER_TOKEN,
    IMAGE_TOKENS,
    MEDIA_FROM_BYTES,
    InlineMedia,
    inline_media,
    prompt_estimate,
)

B64 = "QUJD" * 25_000  # 100,000 characters


def test_every_protocols_image_counts_as_one_image() -> None:
    url = "data:image/png;base64," + B64
    bodies: list[Any] = [
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]},  # chat
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": url}]}]},  # responses
        {"messages": [{"role": "user", "content": [  # Anthropic
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64}}]}]},
        {"contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": B64}}]}]},  # Gemini
        {"contents": [{"parts": [{"inlineData": {"mimeType": "IMAGE/JPEG", "data": B64}}]}]},
    ]  # fmt: skip
    for body in bodies:
        found = inline_media(body)
        assert found.tokens == IMAGE_TOKENS, body
        assert len(B64) <= found.chars <= len(url)


def test_audio_counts_by_its_length_and_documents_as_text() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": B64, "format": "wav"}}
    assert inline_media({"messages": [{"content": [audio]}]}) == InlineMedia(
        len(B64), len(B64) // AUDIO_CHARS_PER_TOKEN + 1
    )
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": B64}}
    assert inline_media({"messages": [{"content": [pdf]}]}) == InlineMedia(len(B64), len(B64) // 4)
    file_data = {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64," + B64}
    assert inline_media({"input": [{"content": [file_data]}]}).tokens == len(B64) // 4


def test_text_is_no_media_and_small_bodies_are_not_walked() -> None:
    assert inline_media({"messages": [{"content": "data: not a URL " + B64}]}) == InlineMedia()
    assert inline_media({"text": "data:text/plain,no base64 here"}) == InlineMedia()
    asked: list[int] = []

    def parsed() -> Any:
        asked.append(1)
        return {"m": "x"}

    assert prompt_estimate(MEDIA_FROM_BYTES - 1, parsed) == (MEDIA_FROM_BYTES + 2) // 4 and asked == []
    assert prompt_estimate(MEDIA_FROM_BYTES * 4, lambda: None) == MEDIA_FROM_BYTES  # not JSON: its bytes


def test_a_large_body_is_held_for_its_text_and_its_images() -> None:
    url = "data:image/webp;base64," + B64
    body = {"messages": [{"content": [{"type": "text", "text": "hi"}] + [{"image_url": {"url": url}}] * 3}]}
    size = 2_000 + 3 * len(url)  # the JSON around them, then the URLs
    assert prompt_estimate(size, lambda: body) == 500 + 3 * IMAGE_TOKENS


def test_nesting_deeper_than_the_recursion_limit_is_walked() -> None:
    body: Any = {"inline_data": {"mime_type": "image/png", "data": B64}}
    for _ in range(5_000):
        body = [body]
    assert inline_media(body).tokens == IMAGE_TOKENS
