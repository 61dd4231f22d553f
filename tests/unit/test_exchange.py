"""The one bounded body parse (exchange.py ``Request.json``, SPEC §14): a JSON body with a
duplicate key at any depth, or nested deeper than 64 levels, is refused; anything else
parses as orjson parses it. Generated documents show that no string content (quotes,
colons, braces, escapes) and no whitespace or escaping of a key hides a duplicate."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.errors import BadRequest
from tollway.exchange import MAX_JSON_DEPTH, AmbiguousJson, parse_json
from tollway.testing.harness import make_exchange

# Characters that end or open things in JSON text, escapes, and the rest of Unicode.
TRICKY = st.sampled_from(list('"\\:{}[],/ \n\tu0a\u2028é\U0001f600'))
TEXT = st.text(TRICKY | st.characters(codec="utf-8"), max_size=10)
NUMBERS = st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
LEAVES = st.none() | st.booleans() | NUMBERS | TEXT
VALUES = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=25
)
CONTAINERS = st.lists(VALUES, max_size=4) | st.dictionaries(TEXT, VALUES, max_size=5)
SPACE = ["", " ", "\n", "\t  ", "\r\n "]


def key_spellings(key: str) -> list[str]:
    """JSON strings that all mean ``key``: escaped or not, its first character as \\uXXXX."""
    out = [json.dumps(key), json.dumps(key, ensure_ascii=False)]
    if key and ord(key[0]) < 0x10000:
        out.append('"' + f"\\u{ord(key[0]):04x}" + json.dumps(key[1:], ensure_ascii=False)[1:])
    return out


@dataclass
class Writer:
    """Writes a JSON value with whitespace and key spellings chosen by ``rng``; the
    object numbered ``duplicate_in`` (in writing order) gets one of its keys twice."""

    rng: random.Random
    duplicate_in: int | None
    objects: int = 0
    duplicated: bool = False

    def space(self) -> str:
        return self.rng.choice(SPACE)

    def key(self, key: str) -> str:
        return self.rng.choice(key_spellings(key))

    def write(self, value: Any) -> str:
        ws = self.space()
        if isinstance(value, dict):
            number = self.objects
            self.objects += 1
            pairs = [(self.key(k), self.write(v)) for k, v in value.items()]
            if number == self.duplicate_in and value:
                again = (self.key(self.rng.choice(sorted(value))), self.write(self.rng.choice([0, "x", None, [], {}])))
                pairs.insert(self.rng.randint(0, len(pairs)), again)
                self.duplicated = True
            return "{" + ws + ",".join(f"{k}{self.space()}:{ws}{v}" for k, v in pairs) + ws + "}"
        if isinstance(value, list):
            return "[" + ws + f"{ws},".join(self.write(v) for v in value) + ws + "]"
        return json.dumps(value, ensure_ascii=self.rng.random() < 0.5)


def objects_in(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(objects_in(v) for v in value.values())
    if isinstance(value, list):
        return sum(objects_in(v) for v in value)
    return 0


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), CONTAINERS)
def test_a_document_without_a_duplicate_key_parses_as_orjson_reads_it(rng: random.Random, value: Any) -> None:
    text = Writer(rng, duplicate_in=None).write(value).encode()
    assert parse_json(text) == orjson.loads(text)


@settings(max_examples=200, deadline=None)
@given(CONTAINERS)
def test_a_body_written_as_orjson_writes_it_parses(value: Any) -> None:
    text = orjson.dumps(value)
    assert parse_json(text) == orjson.loads(text)


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), CONTAINERS)
def test_a_duplicate_key_in_any_object_at_any_depth_is_refused(rng: random.Random, value: Any) -> None:
    objects = objects_in(value)
    if objects == 0:
        value = [value, {"k": 1}]
        objects = 1
    writer = Writer(rng, duplicate_in=rng.randrange(objects))
    text = writer.write(value).encode()
    if not writer.duplicated:  # the object drawn was empty
        return
    with pytest.raises(AmbiguousJson) as refused:
        parse_json(text)
    assert refused.value.status == 400 and refused.value.reason == "gateway.bad_request"


@pytest.mark.parametrize(
    "text",
    [
        b'{"model": "a", "model": "b"}',
        b'{"messages": [{"role": "user", "role": "system", "content": "x"}]}',
        b'[[[{"a": {"b": 1, "b": 2}}]]]',
        b'{"a": 1, "\\u0061": 2}',
        b'{"a\\"": 1, "a\\u0022": 2}',
        b'{"tools": [{"function": {"name": "f", "parameters": {}, "name": "g"}}]}',
        # An escaped colon in text must not make up for the colon a duplicate key took.
        b'{"a": 1, "a": 2, "b": "\\u003a"}',
        b'{"a": "x", "b": "\\u003A\\u003a", "a": "y:z"}',
        # Compact, as orjson writes (a body that is its own dump skips the colon count).
        b'{"model":"a","model":"b"}',
        b'{"a":1,"a":2,"b":"\\u003a"}',
    ],
)
def test_duplicates_written_by_hand(text: bytes) -> None:
    with pytest.raises(AmbiguousJson, match="twice"):
        parse_json(text)


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": "\\"a\\": 1, \\"a\\": 2", "b": "{\\"a\\":1,\\"a\\":2}"}',  # duplicates inside strings are text
        b'{"a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 2}]}',  # the same key in different objects
        b'{"a\\\\": 1, "a": 2}',
        b'{"url": "https://x.example:8443/a:b", "t": "\\u003a\\u003A:", "k\\u003a": {"k:": 1}}',
    ],
)
def test_look_alikes_are_not_duplicates(text: bytes) -> None:
    assert parse_json(text) == json.loads(text)


def nested(depth: int, kinds: str = "[{") -> bytes:
    """A document ``depth`` levels deep, alternating the container kinds in ``kinds``."""
    opening = ["[1," if kinds[level % len(kinds)] == "[" else '{"k":' for level in range(depth)]
    closing = ["]" if o == "[1," else "}" for o in reversed(opening)]
    return ("".join(opening) + "0" + "".join(closing)).encode()


@pytest.mark.parametrize("kinds", ["[", "{", "[{", "{{["])
def test_sixty_four_levels_parse_and_sixty_five_are_refused(kinds: str) -> None:
    assert parse_json(nested(MAX_JSON_DEPTH, kinds)) == json.loads(nested(MAX_JSON_DEPTH, kinds))
    with pytest.raises(AmbiguousJson, match="deeper than 64"):
        parse_json(nested(MAX_JSON_DEPTH + 1, kinds))
    for deeper in (300, 1000):  # past what orjson writes (255 levels), within what it reads
        with pytest.raises(AmbiguousJson, match="deeper than 64"):
            parse_json(nested(deeper, kinds))
    with pytest.raises(BadRequest):  # far deeper: refused without a recursion anywhere
        parse_json(nested(100_000, kinds))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 90), st.text("[{", min_size=1, max_size=3), st.integers(0, 80))
def test_the_depth_limit_holds_whatever_the_shape(depth: int, kinds: str, wide: int) -> None:
    """Many shallow containers beside a deep one (more brackets than the limit, so the
    depth is walked) change nothing: only the depth counts."""
    deep = nested(depth, kinds).decode()
    text = ("[" + ",".join(["{}", "[]"] * wide + [deep]) + "]").encode()
    if depth + 1 > MAX_JSON_DEPTH:
        with pytest.raises(AmbiguousJson):
            parse_json(text)
    else:
        assert parse_json(text) == json.loads(text)


@pytest.mark.parametrize(("text", "value"), [(b"1", 1), (b'"s"', "s"), (b"null", None), (b"[]", []), (b"{}", {})])
def test_scalars_and_empty_containers(text: bytes, value: Any) -> None:
    assert parse_json(text) == value


def test_the_request_remembers_its_refusal() -> None:
    ex = make_exchange("POST", "/v1/files")
    ex.request.body = b'{"a": 1, "a": 2}'
    with pytest.raises(AmbiguousJson) as first:
        ex.request.json()
    with pytest.raises(AmbiguousJson) as second:
        ex.request.json()
    assert first.value is second.value


def test_a_large_body_crowded_with_arrays_and_objects_is_refused_before_it_is_parsed() -> None:
    """A 10 MB body of empty arrays held 300-550 MB parsed (56-64 bytes each, from 3
    bytes of text): from 256 KiB on, more than one array or object per 4 bytes is
    refused before the parse. Token-id lists and chat text pass."""
    crowded = b'{"model": "m", "x": [' + b"[]," * 200_000 + b"[]]}"
    with pytest.raises(BadRequest, match="arrays and objects"):
        parse_json(crowded)
    tokens = orjson.dumps({"model": "m", "input": [[12345, 678, 91011] for _ in range(30_000)]})
    assert len(tokens) > 256 * 1024 and parse_json(tokens)["input"][0] == [12345, 678, 91011]
    chat = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "word " * 20} for _ in range(4000)]})
    assert len(chat) > 256 * 1024 and len(parse_json(chat)["messages"]) == 4000
    # A JSON grid in a prompt's text, and lists of one token id each (one per 6 bytes).
    grid = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "[1,7]," * 60_000}]})
    assert len(parse_json(grid)["messages"]) == 1
    singles = orjson.dumps({"model": "m", "input": [[123] for _ in range(60_000)]})
    assert len(singles) > 256 * 1024 and len(parse_json(singles)["input"]) == 60_000
    small = b"[" + b"[]," * 1000 + b"[]]"  # (below the size counted: a few MB parsed at worst)
    assert len(parse_json(small)) == 1001
