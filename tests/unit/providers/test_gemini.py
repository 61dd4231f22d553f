"""Gemini (providers/gemini.py): ``generateContent`` and ``streamGenerateContent?alt=sse``
URLs, the model listing, API versions and roots; the key goes in a header, never the URL. No
sockets: nothing here sends a request."""

from __future__ import annotations

from tests.support.provider_support import headers, provider
from tollway.providers.gemini import Gemini


def test_gemini_chat_stream_and_models() -> None:
    p = provider("gemini", apiTokens=["AIza-test"])
    assert isinstance(p, Gemini) and p.protocol == "gemini"
    chat = p.chat_endpoint("gemini-2.5-flash", False, "AIza-test")
    assert chat.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert headers(chat) == {"x-goog-api-key": "AIza-test"}
    stream = p.chat_endpoint("gemini-2.5-flash", True, "AIza-test")
    assert stream.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert headers(stream) == {"x-goog-api-key": "AIza-test"}
    models = p.models_endpoint("AIza-test")
    assert models is not None
    assert models.url == "https://generativelanguage.googleapis.com/v1beta/models?pageSize=1000"
    assert headers(models) == {"x-goog-api-key": "AIza-test"}
    assert "key=" not in stream.url  # the key never goes in the URL


def test_gemini_version_and_roots() -> None:
    assert provider("gemini", apiVersion="v1").chat_endpoint("gemini-2.5-pro", False, "k").url == (
        "https://generativelanguage.googleapis.com/v1/models/gemini-2.5-pro:generateContent"
    )
    assert provider("gemini", baseUrl="http://127.0.0.1:9000/v1beta").chat_endpoint("g", True, "k").url == (
        "http://127.0.0.1:9000/v1beta/models/g:streamGenerateContent?alt=sse"
    )
    assert provider("gemini", baseUrl="http://127.0.0.1:9000").chat_endpoint("models/g", False, "k").url == (
        "http://127.0.0.1:9000/v1beta/models/g:generateContent"
    )


def test_openais_own_apis_go_to_geminis_openai_layer() -> None:
    """Embeddings (and images, audio) in OpenAI's shape are passed through, not
    translated: Gemini serves them under /v1beta/openai/ only, with the key as a Bearer.
    They went to /v1beta/embeddings, a path Gemini does not have (a 404)."""
    p = provider("gemini", apiTokens=["AIza-test"])
    embeddings = p.endpoint("/embeddings", "", "AIza-test")
    assert embeddings.url == "https://generativelanguage.googleapis.com/v1beta/openai/embeddings"
    assert headers(embeddings) == {"authorization": "Bearer AIza-test"}
    images = p.endpoint("/images/generations", "", "AIza-test")
    assert images.url == "https://generativelanguage.googleapis.com/v1beta/openai/images/generations"
    # Gemini's own paths stay where they are, with its own header.
    native = p.endpoint("/models/gemini-embedding-001:embedContent", "", "AIza-test")
    assert native.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:embedContent"
    assert headers(native) == {"x-goog-api-key": "AIza-test"}


def test_a_media_upload_goes_to_googles_upload_root() -> None:
    """A client's ``POST /upload/v1beta/files`` went to ``/v1beta/files`` (the upload root
    dropped with the path's prefix), which Google does not take uploads at."""
    from tollway.protocols.apis import api_path_of, upstream_path

    path = "/gemini/upload/v1beta/files"
    asked = upstream_path(path, api_path_of(path))
    assert (api_path_of(path), asked) == ("/files", "/upload/files")  # the files API, asked at the upload root
    assert upstream_path("/gemini/v1beta/files/abc", "/files/abc") == "/files/abc"
    # Google's SDK asks at /upload/v1/files when given a base URL (its version then v1).
    assert upstream_path("/gemini/upload/v1/files", api_path_of("/gemini/upload/v1/files")) == "/upload/files"
    for base, url in [
        (None, "https://generativelanguage.googleapis.com/upload/v1beta/files?uploadType=multipart"),
        ("http://127.0.0.1:9000/v1beta", "http://127.0.0.1:9000/upload/v1beta/files?uploadType=multipart"),
        ("http://proxy.test/v1/gem?x=1", "http://proxy.test/v1/gem/upload/v1beta/files?x=1&uploadType=multipart"),
    ]:
        p = provider("gemini", baseUrl=base) if base else provider("gemini")
        assert p.endpoint(asked, "uploadType=multipart", "k").url == url
        assert "/upload/" not in p.endpoint("/files/abc", "", "k").url
