"""``ProviderSecrets``: a provider's keys, whole or masked as providers mask them, taken
out of what its answers show."""

from __future__ import annotations

import orjson
import pytest

from tollway.providers.secrets import ProviderSecrets

KEY = "sk-proj-ORGKEYopenai1234567890abcd"


@pytest.mark.parametrize(
    "shown",
    [
        KEY,
        "sk-proj-****abcd",  # OpenAI's mask
        "sk-proj-********************abcd",
        "sk-ant-api03-•••••abcd",  # bullets
        "****abcd",
        "sk-proj-ORG***...***abcd",
    ],
)
def test_the_key_whole_or_masked_is_redacted(shown: str) -> None:
    secrets = ProviderSecrets([KEY])
    message = f"Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com."
    assert secrets.text(message) == (
        "Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com."
    )
    assert secrets.body(message.encode()) == secrets.text(message).encode()


@pytest.mark.parametrize(
    "text",
    [
        "sk-proj-****abce",  # another key's tail
        "****abcdef",  # the tail inside a longer run
        "the word abcd alone",  # a tail with no mask before it
        "rate limit reached for gpt-4o",
    ],
)
def test_what_shows_no_key_is_left_as_it_is(text: str) -> None:
    assert ProviderSecrets([KEY]).text(text) == text


def test_a_short_key_is_matched_only_whole_and_no_keys_change_nothing() -> None:
    assert ProviderSecrets(["sk-short"]).text("sk-short and ****hort") == "[redacted] and ****hort"
    assert ProviderSecrets([]).text(KEY) == KEY
    assert ProviderSecrets([]).headers([("a", KEY)]) == [("a", KEY)]


def test_headers_that_show_a_key_are_dropped() -> None:
    secrets = ProviderSecrets(["other-key-000000000000", KEY])
    headers = [("content-type", "application/json"), ("x-echo", f"Bearer {KEY}"), ("x-hint", "sk-****abcd"),
               ("x-ratelimit-remaining", "99")]  # fmt: skip
    assert secrets.headers(headers) == [("content-type", "application/json"), ("x-ratelimit-remaining", "99")]
    plain = [("content-type", "application/json")]
    assert secrets.headers(plain) is plain  # the common case: nothing copied


def test_a_placeholder_key_changes_nothing() -> None:
    """A local server's dummy key ("x", "token") is no secret: replaced in text it would
    garble the answer ("conte[redacted]t_length_e[redacted]ceeded")."""
    body = b'{"error": {"code": "context_length_exceeded", "message": "token limit: 4096"}}'
    for key in ("x", "e", "0", "token", "sk-1234"):
        secrets = ProviderSecrets([key])
        assert secrets.body(body) == body and secrets.headers([("a", key)]) == [("a", key)]


def test_a_key_with_characters_past_latin_1_is_still_found() -> None:
    key = "sk-…-0123456789-ключ"
    secrets = ProviderSecrets([key])
    assert secrets.body(f"bad key {key}".encode()) == b"bad key [redacted]"
    assert secrets.text(f"bad key {key}") == "bad key [redacted]"


SLASHED = "Zx9/kQ2+SLASHKEY/abcd1234"


@pytest.mark.parametrize(
    "written",
    [
        r"Zx9\/kQ2+SLASHKEY\/abcd1234",  # PHP's json_encode escapes every slash
        r"Zx9/kQ2\u002bSLASHKEY/abcd1234",
        "".join(f"\\u{ord(c):04x}" for c in SLASHED),  # every character escaped
        r"sk-\u2022\u2022\u2022\u20221234",  # a masked key's bullets, as Python's json.dumps writes them
        r"****\u0061bcd1234",
    ],
)
def test_a_key_spelled_with_json_escapes_is_redacted(written: str) -> None:
    """A JSON error body may escape characters of the key: a client's parser reads the
    key back whole, where the bytes did not match it (a red team's finding)."""
    secrets = ProviderSecrets([SLASHED])
    body = b'{"error": {"message": "Invalid key ' + written.encode() + b'", "code": "bad\\/key"}}'
    read = orjson.loads(secrets.body(body))
    assert read["error"]["message"] == "Invalid key [redacted]"
    assert read["error"]["code"] == "bad/key"  # (another string with an escape, as it reads)
    event = b"event: error\ndata: " + body + b"\n\n"
    assert SLASHED.encode() not in secrets.body(event) and b"[redacted]" in secrets.body(event)


def test_escapes_that_spell_no_key_leave_the_body_as_it_came() -> None:
    body = b'{"error": {"message": "path C:\\\\dir\\/x \\ud800 \\"quoted\\""}}'
    assert ProviderSecrets([SLASHED]).body(body) == body
