"""Property: whatever text surrounds them, planted secrets never reach the provider.

Hypothesis builds prompts of random words with e-mail addresses, payment cards (valid
Luhn), API keys, AWS access keys, IPv4 addresses and US SSNs planted among them, in chat,
multi-part chat and Anthropic bodies; the masked body the provider would receive
(``Exchange.upstream_json``) must contain none of them, and restoring the placeholders
must give the original text back. The same holds when each secret is written to get
around the detectors (characters made fullwidth, zero-width characters and soft hyphens
between them), in every API shape that carries prompt text: the provider gets neither
the secret as written nor anything that reads as it.
"""

from __future__ import annotations

import string
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollway.exchange import Exchange
from tollway.masking.normalise import normalise
from tollway.testing.harness import make_exchange, make_plugin, run_request

LOWER = string.ascii_lowercase
ALNUM = string.ascii_letters + string.digits


def _luhn_complete(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # these double once the check digit is appended
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return digits + str((10 - total % 10) % 10)


emails = st.builds(
    lambda user, host, tld: f"{user}@{host}.{tld}",
    st.text(LOWER + string.digits + "._", min_size=1, max_size=12).filter(
        lambda u: u[0] not in "._" and u[-1] not in "._"
    ),
    st.text(LOWER, min_size=2, max_size=10),
    st.sampled_from(["com", "org", "net", "io", "co.uk"]),
)
cards = st.builds(
    lambda prefix, rest: _luhn_complete(prefix + rest),
    st.sampled_from(["4", "51", "55", "37"]),
    st.text(string.digits, min_size=13, max_size=13),
).map(lambda c: c[:16])
cards = cards.filter(lambda c: _luhn_complete(c[:-1]) == c)
api_keys = st.text(ALNUM, min_size=32, max_size=48).map(lambda s: "sk-" + s)
aws_keys = st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(lambda s: "AKIA" + s)
ips = (
    st.tuples(*[st.integers(0, 255)] * 4)
    .map(lambda t: ".".join(map(str, t)))
    .filter(lambda ip: not ip.startswith("0."))
)
ssns = st.builds(
    lambda a, b, c: f"{a:03d}-{b:02d}-{c:04d}", st.integers(1, 665), st.integers(1, 99), st.integers(1, 9999)
)
secrets_ = st.one_of(emails, cards, api_keys, aws_keys, ips, ssns)
words = st.text(LOWER + " ,.!?", min_size=0, max_size=30)


@st.composite
def prompts(draw: st.DrawFn) -> tuple[str, list[str]]:
    planted = draw(st.lists(secrets_, min_size=1, max_size=5))
    parts: list[str] = []
    for secret in planted:
        parts.append(draw(words))
        parts.append(secret)
    parts.append(draw(words))
    return " ".join(parts), planted


PLUGIN = make_plugin("ai-data-masking", {})


async def _masked(path: str, body: dict[str, Any]) -> tuple[Exchange, bytes]:
    ex = make_exchange("POST", path, {"content-type": "application/json"}, body=orjson.dumps(body))
    outcome = await run_request(PLUGIN, ex)
    assert outcome is None, outcome
    sent = orjson.dumps(ex.upstream_json) if ex.upstream_json is not None else ex.request.body or b""
    return ex, sent


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=prompts(), shape=st.sampled_from(["chat", "parts", "anthropic"]))
async def test_no_planted_secret_reaches_the_provider(prompt: tuple[str, list[str]], shape: str) -> None:
    text, planted = prompt
    body: dict[str, Any]
    if shape == "chat":
        path, body = "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]}
    elif shape == "parts":
        path, body = (
            "/v1/chat/completions",
            {
                "model": "m",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [{"type": "text", "text": text}]},
                ],
            },
        )
    else:
        path, body = (
            "/v1/messages",
            {"model": "m", "max_tokens": 5, "system": text, "messages": [{"role": "user", "content": text}]},
        )
    _, sent = await _masked(path, body)
    for secret in planted:
        assert secret.encode() not in sent, (secret, sent)


@settings(max_examples=200, deadline=None)
@given(prompt=prompts())
async def test_the_answer_gets_the_originals_back(prompt: tuple[str, list[str]]) -> None:
    text, _ = prompt
    ex, sent = await _masked("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]})
    masked_text = orjson.loads(sent)["messages"][0]["content"]
    answer = orjson.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": masked_text}}]})
    restored = orjson.loads(await PLUGIN.response_body(ex, answer))
    assert restored["choices"][0]["message"]["content"] == text


# --- written to get around the detectors (SPEC §14) --------------------------------------

INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"


@st.composite
def disguised(draw: st.DrawFn, secret: str) -> str:
    """``secret`` with characters made fullwidth and invisible ones put between them."""
    out: list[str] = []
    for ch in secret:
        wide = "!" <= ch <= "~" and draw(st.booleans())
        out.append(chr(ord(ch) + 0xFEE0) if wide else ch)
        if draw(st.integers(0, 3)) == 0:
            out.append(draw(st.sampled_from(INVISIBLE)))
    return "".join(out)


@st.composite
def disguised_prompts(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    planted = draw(st.lists(secrets_, min_size=1, max_size=4))
    written = [draw(disguised(secret)) for secret in planted]
    parts: list[str] = []
    for w in written:
        parts.append(draw(words))
        parts.append(w)
    parts.append(draw(words))
    return " ".join(parts), planted, written


def shaped(shape: str, text: str) -> tuple[str, dict[str, Any]]:
    if shape == "chat":
        return "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]}
    if shape == "tool":
        tool = {"type": "function", "function": {"name": "f", "description": text, "parameters": {}}}
        return "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [tool]}
    if shape == "anthropic":
        return "/v1/messages", {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": text}]}
    if shape == "count_tokens":
        return "/v1/messages/count_tokens", {"model": "m", "system": text, "messages": []}
    if shape == "responses":
        return "/v1/responses", {"model": "m", "instructions": text, "input": [{"role": "user", "content": text}]}
    return "/v1/embeddings", {"model": "m", "input": [text]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prompt=disguised_prompts(),
    shape=st.sampled_from(["chat", "tool", "anthropic", "count_tokens", "responses", "embeddings"]),
)
async def test_no_disguised_secret_reaches_the_provider(prompt: tuple[str, list[str], list[str]], shape: str) -> None:
    text, planted, written = prompt
    _, sent = await _masked(*shaped(shape, text))
    readable = normalise(sent.decode())
    for secret, as_written in zip(planted, written, strict=True):
        assert as_written not in sent.decode() and secret not in readable, (secret, as_written, sent)


@settings(max_examples=200, deadline=None)
@given(prompt=disguised_prompts())
async def test_the_answer_gets_back_the_secrets_as_they_were_written(prompt: tuple[str, list[str], list[str]]) -> None:
    text, _, _ = prompt
    ex, sent = await _masked("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]})
    masked_text = orjson.loads(sent)["messages"][0]["content"]
    answer = orjson.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": masked_text}}]})
    restored = orjson.loads(await PLUGIN.response_body(ex, answer))
    assert restored["choices"][0]["message"]["content"] == text
