"""What a call cost: the built-in price table, the config's ``pricing:`` laid over it.

Prices are US dollars per million tokens. A model's cost is

    (input - cached - written) × input price + cached × cached-input price
        + (written - written_1h) × cache-write price
        + written_1h × one-hour cache-write price + output × output price

where ``input`` already counts the cached (read) and written tokens (OpenAI's
``prompt_tokens`` counts its cache reads, and ``protocols.usage`` adds Anthropic's cache
reads and writes into it), ``written_1h`` the one-hour writes among them, and ``output``
already counts reasoning tokens (billed as output by every provider listed). Anthropic
bills cache writes by the cache's lifetime: five-minute writes at 1.25× the input price,
one-hour writes (``cache_creation.ephemeral_1h_input_tokens``) at 2×. A model without a
cached or cache-write price pays the input price for those tokens; without a one-hour
cache-write price, twice the input price (Anthropic's, the only provider reporting them).
A call whose prompt (its ``input``) is above a model's long-context threshold is priced
wholly at that model's long-context prices (``ModelPrice.long``), as Google and
Anthropic bill it.

A name resolves exactly, then through the longest configured ``prefix*`` key, then by
dropping a version or date suffix that providers add to a listed model
(``gpt-4o-2024-08-06`` → ``gpt-4o``, ``claude-3-5-sonnet-20241022`` →
``claude-3-5-sonnet``, ``gemini-1.5-pro-002`` → ``gemini-1.5-pro``). Unresolved → no
price, and the record's ``cost_usd`` is null.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tollway.config.schema import LongContextPrice, Price

# A cost's decimal places kept (a pico-dollar): a price times tokens in binary floating
# point reads 5.0999999999999995e-06 where the sum is $0.0000051.
_DIGITS = 12


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Per-million-token prices of one model; ``long``: the prices of a call whose prompt
    (its input tokens, cached and written ones included) is above a number of tokens,
    for the whole call (Gemini's and Claude's long-context prices)."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    long: tuple[int, ModelPrice] | None = None

    def at(self, input_tokens: int) -> ModelPrice:
        """The prices of a call with a prompt of ``input_tokens``."""
        long = self.long
        return long[1] if long is not None and input_tokens > long[0] else self

    @property
    def write(self) -> float:
        """What a token written to a (five-minute) prompt cache costs: without a price of
        its own, the input price."""
        return self.cache_write if self.cache_write is not None else self.input

    @property
    def write_1h(self) -> float:
        """What a token written to a one-hour cache costs: without a price of its own,
        twice the input price (Anthropic's, the only provider reporting them)."""
        return self.cache_write_1h if self.cache_write_1h is not None else 2 * self.input

    def prompt_at_most(self, writes: CacheWrites) -> float:
        """The most a prompt token can cost: the input price, or, for a prompt that asks to
        be cached (``cache_writes``), the dearer write price of that cache's lifetime,
        which is what the provider bills for every token it writes."""
        if writes is None:
            return self.input
        if writes == "5m":
            return max(self.input, self.write)
        return max(self.input, self.write, self.write_1h)


# Whether a prompt asks the provider to cache it, and for how long at most (None: it does not).
CacheWrites = Literal["5m", "1h"] | None


# List prices (standard tier, no batch or priority discounts; where prices depend on the
# prompt's length, the long prompts' in ``long``), from the providers' pricing pages:
#   OpenAI     https://developers.openai.com/api/docs/pricing (openai.com/api/pricing)
#   Anthropic  https://docs.anthropic.com/en/docs/about-claude/pricing
#   Google     https://ai.google.dev/gemini-api/docs/pricing
#   DeepSeek   https://api-docs.deepseek.com/quick_start/pricing
# as published up to mid-2026 (GPT-5.4/5.5, Claude 4.6 and Gemini 3 Flash at their
# releases). Reasoning tokens: every model listed bills them as output (OpenAI's
# o-series and GPT-5, Claude's thinking, Gemini's thoughts, whose output price includes
# thinking), so no separate reasoning price is kept. Prices change: a deployment that
# bills from these should pin its own under `pricing:` (`tollway pricing` shows the table
# in effect). Embedding models bill input only.
_SONNET_LONG = (200_000, ModelPrice(6.00, 22.50, 0.60, 7.50, 12.00))
BUILTIN_PRICES: Mapping[str, ModelPrice] = {
    # OpenAI
    "gpt-5": ModelPrice(1.25, 10.00, 0.125),
    "gpt-5-mini": ModelPrice(0.25, 2.00, 0.025),
    "gpt-5-nano": ModelPrice(0.05, 0.40, 0.005),
    "gpt-5-chat-latest": ModelPrice(1.25, 10.00, 0.125),
    "gpt-5-codex": ModelPrice(1.25, 10.00, 0.125),
    "gpt-5-pro": ModelPrice(15.00, 120.00),
    "gpt-5.1": ModelPrice(1.25, 10.00, 0.125),
    "gpt-5.1-codex": ModelPrice(1.25, 10.00, 0.125),
    "gpt-5.1-codex-max": ModelPrice(1.25, 10.00, 0.125),
    # (its cached-input price not confirmed: cached tokens pay the input price, a bound)
    "gpt-5.1-codex-mini": ModelPrice(0.25, 2.00),
    "gpt-5.2": ModelPrice(1.75, 14.00, 0.175),
    "gpt-5.2-codex": ModelPrice(1.75, 14.00, 0.175),
    "gpt-5.3-codex": ModelPrice(1.75, 14.00, 0.175),
    "gpt-5.2-pro": ModelPrice(21.00, 168.00),
    "gpt-5.4": ModelPrice(2.50, 15.00, 0.25),
    "gpt-5.4-mini": ModelPrice(0.75, 4.50, 0.075),
    "gpt-5.4-nano": ModelPrice(0.20, 1.25, 0.02),
    "gpt-5.5": ModelPrice(5.00, 30.00, 0.50),
    "gpt-4o": ModelPrice(2.50, 10.00, 1.25),
    "gpt-4o-2024-05-13": ModelPrice(5.00, 15.00),
    "gpt-4o-mini": ModelPrice(0.15, 0.60, 0.075),
    "gpt-4.1": ModelPrice(2.00, 8.00, 0.50),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60, 0.10),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40, 0.025),
    "gpt-4-turbo": ModelPrice(10.00, 30.00),
    # GPT-4 Turbo's previews, listed so that their names do not shed two suffixes
    # down to GPT-4's (three times their price).
    "gpt-4-turbo-preview": ModelPrice(10.00, 30.00),
    "gpt-4-0125-preview": ModelPrice(10.00, 30.00),
    "gpt-4-1106-preview": ModelPrice(10.00, 30.00),
    "gpt-4": ModelPrice(30.00, 60.00),
    "chatgpt-4o-latest": ModelPrice(5.00, 15.00),
    "gpt-3.5-turbo": ModelPrice(0.50, 1.50),
    "gpt-3.5-turbo-instruct": ModelPrice(1.50, 2.00),  # the completions API's model
    "o1": ModelPrice(15.00, 60.00, 7.50),
    "o1-mini": ModelPrice(1.10, 4.40, 0.55),
    "o1-pro": ModelPrice(150.00, 600.00),
    "o3": ModelPrice(2.00, 8.00, 0.50),
    "o3-mini": ModelPrice(1.10, 4.40, 0.55),
    "o3-pro": ModelPrice(20.00, 80.00),
    "o4-mini": ModelPrice(1.10, 4.40, 0.275),
    "text-embedding-3-small": ModelPrice(0.02, 0.0),
    "text-embedding-3-large": ModelPrice(0.13, 0.0),
    "text-embedding-ada-002": ModelPrice(0.10, 0.0),
    # Anthropic (cache reads at 0.1× input, cache writes at 1.25× for five minutes, 2× for
    # an hour; Sonnet 4's million-token context bills a prompt above 200k tokens at 2×
    # input and 1.5× output, the cache's prices alike)
    "claude-3-haiku": ModelPrice(0.25, 1.25, 0.03, 0.30, 0.50),
    "claude-3-opus": ModelPrice(15.00, 75.00, 1.50, 18.75, 30.00),
    "claude-3-5-haiku": ModelPrice(0.80, 4.00, 0.08, 1.00, 1.60),
    "claude-3-5-sonnet": ModelPrice(3.00, 15.00, 0.30, 3.75, 6.00),
    "claude-3-7-sonnet": ModelPrice(3.00, 15.00, 0.30, 3.75, 6.00),
    "claude-sonnet-4": ModelPrice(3.00, 15.00, 0.30, 3.75, 6.00, _SONNET_LONG),
    "claude-sonnet-4-0": ModelPrice(3.00, 15.00, 0.30, 3.75, 6.00, _SONNET_LONG),
    "claude-opus-4": ModelPrice(15.00, 75.00, 1.50, 18.75, 30.00),
    "claude-opus-4-0": ModelPrice(15.00, 75.00, 1.50, 18.75, 30.00),
    "claude-opus-4-1": ModelPrice(15.00, 75.00, 1.50, 18.75, 30.00),
    "claude-sonnet-4-5": ModelPrice(3.00, 15.00, 0.30, 3.75, 6.00, _SONNET_LONG),
    "claude-haiku-4-5": ModelPrice(1.00, 5.00, 0.10, 1.25, 2.00),
    "claude-opus-4-5": ModelPrice(5.00, 25.00, 0.50, 6.25, 10.00),
    "claude-sonnet-4-6": ModelPrice(3.00, 15.00, 0.30, 3.75, 6.00, _SONNET_LONG),
    "claude-opus-4-6": ModelPrice(5.00, 25.00, 0.50, 6.25, 10.00),
    # Google Gemini (a prompt above 128k tokens for 1.5, 200k for 2.5 Pro and 3 Pro, at
    # the long prices; the 2.5 models' cached input at a tenth of their input price since
    # implicit caching)
    "gemini-1.5-pro": ModelPrice(1.25, 5.00, 0.3125, long=(128_000, ModelPrice(2.50, 10.00, 0.625))),
    "gemini-1.5-flash": ModelPrice(0.075, 0.30, 0.01875, long=(128_000, ModelPrice(0.15, 0.60, 0.0375))),
    "gemini-1.5-flash-8b": ModelPrice(0.0375, 0.15, 0.01, long=(128_000, ModelPrice(0.075, 0.30, 0.02))),
    "gemini-2.0-flash": ModelPrice(0.10, 0.40, 0.025),
    "gemini-2.0-flash-lite": ModelPrice(0.075, 0.30),
    "gemini-2.5-pro": ModelPrice(1.25, 10.00, 0.125, long=(200_000, ModelPrice(2.50, 15.00, 0.25))),
    "gemini-2.5-flash": ModelPrice(0.30, 2.50, 0.03),
    "gemini-2.5-flash-lite": ModelPrice(0.10, 0.40, 0.01),
    "gemini-3-pro-preview": ModelPrice(2.00, 12.00, 0.20, long=(200_000, ModelPrice(4.00, 18.00, 0.40))),
    "gemini-3-flash-preview": ModelPrice(0.50, 3.00, 0.05),
    "gemini-embedding-001": ModelPrice(0.15, 0.0),
    # DeepSeek (standard hours; "cached" is DeepSeek's cache-hit input price)
    "deepseek-chat": ModelPrice(0.27, 1.10, 0.07),
    "deepseek-reasoner": ModelPrice(0.55, 2.19, 0.14),
}

# Model families billed per unit of what they read or make, not per token: OpenAI's
# speech (per character of input), Whisper (per minute of audio, Groq's too) and DALL·E
# (per image, by size and quality). Their answers report no tokens, so no per-token price
# can price them: their calls are recorded with ``cost_usd`` null, and a budget cannot
# hold them (``tollway.budgets``).
_BILLED_PER_UNIT = (
    ("tts-1", "character"),
    ("whisper-", "minute of audio"),
    ("distil-whisper-", "minute of audio"),
    ("dall-e-", "image"),
)


def billed_per(model: str) -> str | None:
    """The unit ``model`` is billed per when its family is billed per unit, not per
    token (``"image"``, ``"character"``, ``"minute of audio"``); else None."""
    for prefix, unit in _BILLED_PER_UNIT:
        if model.startswith(prefix):
            return unit
    return None


# Media model families whose transcriptions and images are answered with their token
# usage (and billed by it): GPT-4o's transcription models, OpenAI's GPT Image models.
# Other models on those APIs may answer none (Whisper reports seconds of audio, DALL·E
# nothing), whatever their name suggests.
_REPORTS_TOKENS = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-image-", "chatgpt-image-")


def reports_media_tokens(model: str) -> bool:
    """Whether ``model`` is one whose transcriptions or images report token usage."""
    return model.startswith(_REPORTS_TOKENS)


# Suffixes providers put after a listed model's name: dates, numbered versions, aliases.
_VERSION_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3,4}|latest|(?:preview|exp)(?:-\d{2}-\d{2}|-\d{4})?)$")
_CACHE_LIMIT = 4096


def _from_config(price: Price | LongContextPrice) -> ModelPrice:
    long = price.long_context if isinstance(price, Price) else None
    return ModelPrice(
        price.input_per_mtok,
        price.output_per_mtok,
        price.cached_input_per_mtok,
        price.cache_write_per_mtok,
        price.cache_write_1h_per_mtok,
        (long.above_input_tokens, _from_config(long)) if long is not None else None,
    )


class PriceTable:
    """The built-in prices with ``overrides`` (the config's ``pricing:``) laid over them.

    Built once per loaded config; ``cost`` is on every call's path, so resolution is
    memoised (bounded: model names come from clients).
    """

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        exact = dict(BUILTIN_PRICES)
        prefixes: list[tuple[str, ModelPrice]] = []
        for name, price in (overrides or {}).items():
            if name.endswith("*"):
                prefixes.append((name[:-1], _from_config(price)))
            else:
                exact[name] = _from_config(price)
        self._exact = exact
        self._prefixes = sorted(prefixes, key=lambda p: len(p[0]), reverse=True)
        self._cache: dict[str, tuple[str, ModelPrice] | None] = {}

    def names(self) -> list[str]:
        """Every exact model name the table prices (the metrics' known model names)."""
        return list(self._exact)

    def entries(self) -> list[tuple[str, ModelPrice]]:
        """Every entry, exact names then ``prefix*`` keys, as ``tollway pricing`` shows them."""
        return [*self._exact.items(), *((prefix + "*", price) for prefix, price in self._prefixes)]

    def resolve(self, model: str) -> tuple[str, ModelPrice] | None:
        """The table entry (its name and price) that prices ``model``, or None."""
        hit = self._cache.get(model, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        found = self._resolve(model)
        if len(self._cache) < _CACHE_LIMIT:
            self._cache[model] = found
        return found

    def _resolve(self, model: str) -> tuple[str, ModelPrice] | None:
        price = self._exact.get(model)
        if price is not None:
            return model, price
        for prefix, p in self._prefixes:
            if model.startswith(prefix):
                return prefix + "*", p
        base = model
        # Two rounds: "gemini-2.5-flash-preview-05-20" sheds one suffix, a dated alias
        # of a numbered version ("…-001-2024-05-01") would shed two.
        for _ in range(2):
            shorter = _VERSION_SUFFIX.sub("", base)
            if shorter == base:
                break
            base = shorter
            price = self._exact.get(base)
            if price is not None:
                return base, price
        return None

    def cost(
        self,
        model: str | None,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
    ) -> float | None:
        """US dollars for one call to ``model``; None when the model has no price.
        ``cache_write_1h_tokens`` are the part of ``cache_write_tokens`` written to a
        one-hour cache."""
        if not model:
            return None
        found = self.resolve(model)
        if found is None:
            return None
        price = found[1].at(input_tokens)
        if not cached_tokens and not cache_write_tokens:  # most calls: the same sum, less work
            return round((input_tokens * price.input + output_tokens * price.output) / 1_000_000, _DIGITS)
        cached = min(cached_tokens, input_tokens)
        written = min(cache_write_tokens, input_tokens - cached)
        written_1h = min(cache_write_1h_tokens, written)
        cached_price = price.cached_input if price.cached_input is not None else price.input
        dollars = (
            (input_tokens - cached - written) * price.input
            + cached * cached_price
            + (written - written_1h) * price.write
            + written_1h * price.write_1h
            + output_tokens * price.output
        )
        return round(dollars / 1_000_000, _DIGITS)
