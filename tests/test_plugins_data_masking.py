"""ai-data-masking (SPEC §3; Higress reference §13), without sockets: the detectors, the
scanner against a plain one-alternation reference, masking each API's request, the
deny answers, and restoring placeholders in whole answers and across stream events."""

from __future__ import annotations

import random
import re
from typing import Any, get_args

import orjson
import pytest
from pydantic import ValidationError

from tollway.errors import GatewayError
from tollway.exchange import Exchange, Reply
from tollway.masking.bodies import map_path, map_request, parse_jsonpath
from tollway.masking.detectors import DETECTORS, cn_id_ok, luhn_ok
from tollway.masking.masker import Masker
from tollway.masking.rules import DenyWords, compile_user_regex, expand_value, hash_value
from tollway.masking.scanner import Hit, Rule, ScanError, Scanner
from tollway.masking.shapes import shape_of
from tollway.masking.streams import AnswerStream
from tollway.masking.vault import StreamRestorer, Vault
from tollway.plugins.ai_data_masking import Detector
from tollway.protocols.sse import SseEvent
from tollway.testing.harness import AnyPlugin, make_exchange, make_plugin, run_request

CHAT = "/v1/chat/completions"


def found(text: str, detector: str) -> list[str]:
    """What one built-in detector takes from ``text``."""
    masker = Masker(detectors=[detector])
    return [text[h.start : h.end] for h in masker.scanner.scan(text)]


def masking(**config: Any) -> AnyPlugin:
    return make_plugin("ai-data-masking", config)


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def request(body: dict[str, Any], path: str = CHAT) -> Exchange:
    return make_exchange("POST", path, {"content-type": "application/json"}, body=orjson.dumps(body))


async def masked(plugin: AnyPlugin, body: dict[str, Any], path: str = CHAT) -> Exchange:
    ex = request(body, path)
    assert await run_request(plugin, ex) is None
    return ex


def chunk(text: str | None = None, finish: str | None = None, index: int = 0, **delta: Any) -> SseEvent:
    if text is not None:
        delta["content"] = text
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return SseEvent.of_json({"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]})


def streamed(events: list[SseEvent]) -> str:
    """The text a client assembles from OpenAI chunks."""
    out = []
    for ev in events:
        obj = ev.json()
        if isinstance(obj, dict):
            for choice in obj["choices"]:
                out.append(choice.get("delta", {}).get("content") or choice.get("text") or "")
    return "".join(out)


# --- detectors ---------------------------------------------------------------------------


def test_the_config_schema_names_every_detector() -> None:
    assert set(get_args(Detector)) == set(DETECTORS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe+tag@mail.example.co.uk today", ["john.doe+tag@mail.example.co.uk"]),
        ("(a@b.io), <x_y@z-z.org>.", ["a@b.io", "x_y@z-z.org"]),
        ("no tld user@localhost, twitter @handle, trailing dot .a@b.com", ["a@b.com"]),
        ("@start a@b.cd", ["a@b.cd"]),
    ],
)
def test_email(text: str, expected: list[str]) -> None:
    assert found(text, "email") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("visa 4111 1111 1111 1111 ok", ["4111 1111 1111 1111"]),
        ("mc 5500-0000-0000-0004, amex 3782 822463 10005", ["5500-0000-0000-0004", "3782 822463 10005"]),
        ("plain 4012888888881881", ["4012888888881881"]),
        ("luhn fails 4111 1111 1111 1112", []),
        ("no issuer 1111111111111117 or 9111111111111111", []),
        ("mc 2-series 2223000048400011 but 2100000000000008", ["2223000048400011"]),
        ("inside a longer number 94111111111111111", []),
    ],
)
def test_card_needs_luhn_and_an_issuer(text: str, expected: list[str]) -> None:
    assert found(text, "card") == expected


def test_luhn() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("11010519491231002X", True),
        ("11010519491231002x", True),
        ("110105194912310021", False),  # check character wrong
        ("11010519491331002X", False),  # month 13
        ("11010519490230002X", False),  # 30 February
    ],
)
def test_cn_id_checksum_and_date(value: str, ok: bool) -> None:
    assert cn_id_ok(value) is ok
    assert found(f"ID {value}.", "cn_id") == ([value] if ok else [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ssn 536-90-4417.", ["536-90-4417"]),
        ("never issued 000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000", []),
        ("not dashed 536904417, longer 1536-90-4417", []),
    ],
)
def test_us_ssn(text: str, expected: list[str]) -> None:
    assert found(text, "us_ssn") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +1 415 555 2671 now", ["+1 415 555 2671"]),
        ("+44 20 7946 0958, +8613800138000", ["+44 20 7946 0958", "+8613800138000"]),
        ("(212) 555-0147 or 212-555-0147 or 212.555.0147", ["(212) 555-0147", "212-555-0147", "212.555.0147"]),
        ("mobile 13800138000;", ["13800138000"]),
        ("too short +12 345, area 123-555-0147, 1234-555-0147", []),
    ],
)
def test_phone(text: str, expected: list[str]) -> None:
    assert found(text, "phone") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from 10.0.0.1 to 255.255.255.255.", ["10.0.0.1", "255.255.255.255"]),
        ("octet 256.1.1.1 and 1.2.3.999", []),
        ("version 1.2.3.4.5 and 10.0.0.1.2", []),
    ],
)
def test_ipv4_octets_at_most_255(text: str, expected: list[str]) -> None:
    assert found(text, "ipv4") == expected


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-Xq93kLmN0pQrStUvWxYz1234567890abcdEF",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "github_pat_11ABCDEFG0abcdefghijklmnopqrstuvwxyz",
        "glpat-abcdefghij0123456789",
        "xoxb-1234567890-abcdefghij",
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
    ],
)
def test_api_keys(secret: str) -> None:
    assert found(f"key: {secret} end", "api_key") == [secret]


def test_api_keys_need_their_own_word_and_aws_secret_values_their_name() -> None:
    assert found("task-abcdefghijklmnopqrstuvwxyz0123 mAKIAIOSFODNN7EXAMPLE", "api_key") == []
    value = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert found(f"aws_secret_access_key = {value}\n", "api_key") == [value]
    assert found(f"AWS_SECRET_ACCESS_KEY='{value}'", "api_key") == [value]
    assert found(f"some other {value}", "api_key") == []


# --- the scanner -------------------------------------------------------------------------


def reference(rules: list[Rule], text: str) -> list[tuple[int, int, int]]:
    """One alternation, leftmost first, then by priority, as the scanner promises."""
    out = []
    pos = 0
    while pos < len(text):
        for i, rule in enumerate(rules):
            assert rule.pattern is not None
            m = rule.pattern.match(text, pos)
            if m and m.end() > pos and (rule.accept is None or rule.accept(m.group())):
                out.append((*m.span(rule.group), i))
                pos = m.end()
                break
        else:
            pos += 1
    return out


RANDOM_PATTERNS = [
    r"AB-\d{2,4}",  # keyed by '-', two characters in
    r"B-1",  # keyed by '-' one character in: overlaps the one before
    r"-12",  # and at the marker itself
    r"(?<![0-9])\d{3}-\d{2}(?![0-9])",  # keyed by digits, fenced
    r"\d\d",  # every digit
    r"\d{2}(?=-)",
    r"(?i)\bproj[ _]?x\b",  # folded
    r"(?i)ab",
    r"\b[a-z0-9-]+\.corp\.com\b",  # anchored
    r"(?i)[a-z.]+\.CORP",  # anchored, casefolded, its run holds its own literal's characters
    r"(\w)\1x",  # back reference: alone, as written
    r"[a-z]+@[a-z]+\.io",  # anchored by "@"
    r"[a-z]{1,3}(?:\.[a-z]+)*@[a-z]+",  # anchored, with a group in its run
    r"(?<=x)\d+\.\d",  # gated
    r"[^ ]+@",  # general
    r"Q(?:zz|yy)+",
    r"k_[a-z]{3}",  # keyed by '_'
    r"(?P<n>zz)9",  # named group
    r"x(?P<n>y)z",  # the same name: cannot share a regex with the one before
    r"z+",
    r"\.[a-z]{2}",
]
PIECES = ["AB-12", "AB-1234567", "123-45", "1234-56", "77", "Proj X", "PROJ_x", "db-1.corp.com", "aax",
          "ab@cd.io", "Qzzyy", "k_abc", "zz9", "xyz", " ", " ", "-", ".", "ab", "9", "A.CORP", "x.corp.", "B-1",
          "yy", "@", "AB", "a.b@cd", "x12.3"]  # fmt: skip


def every_third_refused(text: str) -> bool:
    return len(text) % 3 != 0


@pytest.mark.parametrize("seed", range(60))
def test_scanner_finds_what_one_alternation_finds(seed: int) -> None:
    rng = random.Random(seed)
    patterns = rng.sample(RANDOM_PATTERNS, rng.randint(1, len(RANDOM_PATTERNS)))
    rules = [Rule(re.compile(p), accept=every_third_refused if rng.random() < 0.2 else None) for p in patterns]
    scanner = Scanner(rules)
    for _ in range(20):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))
        got = [(h.start, h.end, h.rule) for h in scanner.scan(text)]
        assert got == reference(rules, text), (patterns, text)


def test_shapes_decide_how_a_pattern_is_looked_for() -> None:
    assert shape_of(re.compile(r"\bsk-\w+")).prefix == "sk-"
    assert shape_of(re.compile(r"(?i)acme-\d+")).prefix == "acme-" and shape_of(re.compile(r"(?i)acme")).folded
    assert shape_of(re.compile(r"(?<![0-9])\d{3}")).first == frozenset("0123456789０１２３４５６７８９")
    assert shape_of(re.compile(r"(?<![0-9.])\d")).guard >= frozenset("0123456789.")
    lead = shape_of(re.compile(r"\b[a-z0-9-]+\.corp\.com")).lead
    assert lead is not None and (lead.literal, lead.min_width) == (".corp.com", 1)
    assert shape_of(re.compile(r"a*")).nullable and shape_of(re.compile(r"(a)\1")).backrefs


def test_a_leading_digit_class_also_starts_at_full_width_digits() -> None:
    scanner = Scanner([Rule(re.compile(r"\d{3}"))])
    assert scanner.scan("电话１２３") == [Hit(2, 0, 5)]


def test_patterns_that_match_nothing_are_refused() -> None:
    with pytest.raises(ScanError):
        Scanner([Rule(re.compile(r"x*"))])


def test_a_failed_check_lets_the_next_rule_try_the_same_place() -> None:
    rules = [Rule(re.compile(r"\d{4}"), accept=lambda s: s != "1234"), Rule(re.compile(r"\d{3}"))]
    assert Scanner(rules).scan("1234 5678") == [Hit(0, 1, 3), Hit(5, 0, 9)]


# --- user rules ----------------------------------------------------------------------------


def test_grok_names_and_rust_group_syntax() -> None:
    pattern = compile_user_regex(r"%{EMAILLOCALPART}@%{HOSTNAME:domain}")
    m = pattern.search("mail admin@gmail.com now")
    assert m is not None and m.group("domain") == "gmail.com"
    assert expand_value("****@$domain", m) == "****@gmail.com"
    assert compile_user_regex(r"(?<user>\w+)@").search("bob@x") is not None
    assert compile_user_regex("%{IP}").search("at 192.168.0.1") is not None


def test_hash_is_higress_md5() -> None:  # Higress README: sk-12345 → 48a7e98a…
    assert hash_value("sk-12345") == "48a7e98a91d93896d8dac522c5853948"


def test_deny_words_stand_alone_when_latin_and_match_inside_chinese() -> None:
    words = DenyWords(["pass", "机密", "top secret"])
    assert words.first_in("my password is long") is None
    assert words.first_in("the PASS is here") == "pass"
    assert words.first_in("这是机密文件") == "机密"
    assert words.first_in("this is Top Secret.") == "top secret"


# --- the vault and streams -----------------------------------------------------------------


def test_placeholders_are_stable_and_never_one_the_client_wrote() -> None:
    vault = Vault(b'{"content": "literal [EMAIL_1] here"}')
    assert vault.placeholder("EMAIL", "a@b.cd") == "[EMAIL_2]"
    assert vault.placeholder("EMAIL", "a@b.cd") == "[EMAIL_2]"
    assert vault.placeholder("EMAIL", "x@y.io") == "[EMAIL_3]"
    assert vault.placeholder("CARD", "4111111111111111") == "[CARD_1]"
    assert vault.restore("[EMAIL_1] [EMAIL_2] [CARD_1] [EMAIL_9]") == "[EMAIL_1] a@b.cd 4111111111111111 [EMAIL_9]"


def test_a_value_standing_for_two_originals_is_not_restored() -> None:
    vault = Vault(b"")
    vault.remember("****@gmail.com", "a@gmail.com")
    vault.remember("****@gmail.com", "b@gmail.com")
    vault.remember("9cb4", "sk-1")
    assert vault.restore("****@gmail.com 9cb4") == "****@gmail.com sk-1"


def restorer() -> StreamRestorer:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    vault.placeholder("CARD", "4111 1111 1111 1111")
    return StreamRestorer(vault)


@pytest.mark.parametrize(
    "pieces",
    [
        ["Hi [EMAIL_1] and [CARD_1]."],
        ["Hi [EMA", "IL_1] and [CARD_1]."],  # split across two events
        ["Hi [", "EMAIL", "_1] and [CARD_", "1]."],  # across three
        ["Hi [EMAIL_1", "] and [CARD_1]", "."],
        ["Hi ", "[", "E", "M", "A", "I", "L", "_", "1", "]", " and [CARD_1]."],
    ],
)
def test_split_placeholders_are_restored(pieces: list[str]) -> None:
    r = restorer()
    out = "".join(r.feed("slot", p) for p in pieces) + r.flush("slot")
    assert out == "Hi bob@example.com and 4111 1111 1111 1111."


def test_a_held_tail_that_is_no_placeholder_goes_out_unchanged() -> None:
    r = restorer()
    assert r.feed("s", "array[EM") == "array"
    assert r.feed("s", "PTY] [i]") == "[EMPTY] [i]"
    assert r.feed("s", "end [CAR") == "end "
    assert r.flush("s") == "[CAR"


def test_openai_stream_restores_split_placeholders_and_flushes_before_the_finish() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)
    events = [chunk(role="assistant"), chunk("Mail [EM"), chunk("AIL_1] now [EMA"), chunk(finish="stop")]
    out = [e for ev in events for e in answer.event(ev)] + answer.event(SseEvent.build("[DONE]")) + answer.end()
    assert streamed(out) == "Mail bob@example.com now [EMA"
    finish = [i for i, e in enumerate(out) if b'"finish_reason":"stop"' in e.raw]
    flushed = [i for i, e in enumerate(out) if b"[EMA" in e.raw]
    assert flushed and finish and flushed[0] < finish[0], "held text must come before the finish chunk"
    assert out[-1].data == "[DONE]"


def test_openai_stream_placeholder_completed_in_the_finishing_chunk() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)
    out = answer.event(chunk("to [EMAIL")) + answer.event(chunk("_1]", finish="stop"))
    assert streamed(out) == "to bob@example.com"


def test_a_stream_that_ends_without_done_still_gets_its_held_text() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)
    out = answer.event(chunk("x [EMAIL_")) + answer.event(chunk("1]")) + answer.event(chunk(" [EM")) + answer.end()
    assert streamed(out) == "x bob@example.com [EM"


def test_stream_tool_arguments_choices_and_completions_are_separate_slots() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)
    call = {"index": 0, "function": {"arguments": '{"to": "[EMAI'}}
    out = answer.event(chunk(tool_calls=[call]))
    out += answer.event(chunk("[EMAIL_1]", index=1))
    call = {"index": 0, "function": {"arguments": 'L_1]"}'}}
    out += answer.event(chunk(tool_calls=[call]))
    completion = {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": "[EMAIL_1]"}]}
    out += answer.event(SseEvent.of_json(completion))
    args = "".join(
        c["delta"]["tool_calls"][0]["function"]["arguments"]
        for e in out
        for c in e.json()["choices"]
        if "tool_calls" in c.get("delta", {})
    )
    assert orjson.loads(args) == {"to": "bob@example.com"}
    assert [c.get("delta", {}).get("content") for c in out[1].json()["choices"]] == ["bob@example.com"]
    assert out[-1].json()["choices"][0]["text"] == "bob@example.com"


def test_anthropic_stream_flushes_at_block_stop() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)

    def delta(text: str) -> SseEvent:
        event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
        return SseEvent.of_json(event, "content_block_delta")

    events = [
        delta("Hi [EM"),
        delta("AIL_1] [CA"),
        SseEvent.of_json({"type": "content_block_stop", "index": 0}, "content_block_stop"),
    ]
    out = [e for ev in events for e in answer.event(ev)]
    texts = [e.json()["delta"]["text"] for e in out if e.event == "content_block_delta"]
    assert "".join(texts) == "Hi bob@example.com [CA"
    assert out[-1].event == "content_block_stop" and all(e.raw.startswith(b"event: ") for e in out)


def test_signed_thinking_keeps_its_placeholders() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)
    thinking = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "[EMAIL_1]"}}
    event = SseEvent.of_json(thinking, "content_block_delta")
    assert answer.event(event) == [event]


def test_events_without_placeholders_pass_byte_for_byte() -> None:
    vault = Vault(b"")
    vault.placeholder("EMAIL", "bob@example.com")
    answer = AnswerStream(vault)
    raw = SseEvent(b'data: {"choices":[{"index":0,"delta":{"content":"plain"}}]}\n\n')
    assert answer.event(raw) == [raw]
    ping = SseEvent(b"event: ping\ndata: {}\n\n")
    assert answer.event(ping) == [ping]


# --- request bodies ------------------------------------------------------------------------


def upper(text: str) -> str:
    return text.upper()


def test_chat_masks_contents_parts_and_tool_arguments_only() -> None:
    image = {"type": "image_url", "image_url": {"url": "u"}}
    body: dict[str, Any] = {
        "model": "gpt-4o",
        "temperature": 0.5,
        "messages": [
            {"role": "system", "content": "sys"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "part"}, image],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{}a"}}],
            },
        ],
    }
    before = orjson.dumps(body)
    out = map_request("chat", body, upper)
    assert orjson.dumps(body) == before, "the given body is never edited"
    assert out["model"] == "gpt-4o" and out["temperature"] == 0.5
    assert out["messages"][0]["content"] == "SYS"
    assert out["messages"][1]["content"] == [{"type": "text", "text": "PART"}, image]
    assert out["messages"][1]["content"][1] is image, "unchanged parts are shared, not copied"
    assert out["messages"][2]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}A"}


def test_completions_embeddings_and_anthropic() -> None:
    assert map_request("completions", {"model": "m", "prompt": ["a", 1]}, upper)["prompt"] == ["A", 1]
    assert map_request("embeddings", {"model": "m", "input": "e"}, upper)["input"] == "E"
    body = {
        "model": "claude",
        "system": [{"type": "text", "text": "s"}],
        "messages": [
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "sig"},
                                              {"type": "tool_use", "id": "x", "name": "n", "input": {"to": "v"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "r"}]},
        ],
    }  # fmt: skip
    out = map_request("messages", body, upper)
    assert out["system"] == [{"type": "text", "text": "S"}] and out["model"] == "claude"
    assert out["messages"][0]["content"] == "U"
    assert out["messages"][1]["content"][0] == {"type": "thinking", "thinking": "t", "signature": "sig"}
    assert out["messages"][1]["content"][1]["input"] == {"to": "V"}
    assert out["messages"][2]["content"][0]["content"] == "R"


def test_jsonpath_dialect() -> None:
    body = {"a": {"b": [{"c": "x"}, {"c": "y"}]}, "k": ["p", "q"], "n": 1}
    assert map_path(body, parse_jsonpath("$.a.b[*].c"), upper)["a"]["b"] == [{"c": "X"}, {"c": "Y"}]
    assert map_path(body, parse_jsonpath("$['k'][-1]"), upper)["k"] == ["p", "Q"]
    assert map_path(body, parse_jsonpath("$.*"), upper) == body  # only strings are touched
    with pytest.raises(ValueError, match="unsupported"):
        parse_jsonpath("$..c")


# --- the plugin ----------------------------------------------------------------------------


async def test_prompt_leaves_masked_and_the_client_request_is_untouched() -> None:
    plugin = masking()
    text = "Mail bob@example.com, card 4111 1111 1111 1111, again bob@example.com"
    ex = await masked(plugin, chat(text))
    assert ex.upstream_json is not None
    assert ex.upstream_json["messages"][0]["content"] == "Mail [EMAIL_1], card [CARD_1], again [EMAIL_1]"
    assert ex.upstream_json["model"] == "gpt-4o-mini"
    assert ex.request.json()["messages"][0]["content"] == text
    assert ex.blocked_by is None and ex.reason is None


async def test_nothing_sensitive_leaves_the_body_alone() -> None:
    ex = await masked(masking(), chat("nothing to see here"))
    assert ex.upstream_json is None


async def test_whole_answers_get_their_originals_back() -> None:
    plugin = masking()
    ex = await masked(plugin, chat("Mail bob@example.com"))
    ex.status = 200
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Wrote to [EMAIL_1]."}}]}
    out = orjson.loads(await plugin.response_body(ex, orjson.dumps(answer)))
    assert out["choices"][0]["message"]["content"] == "Wrote to bob@example.com."
    thinking = {"type": "thinking", "thinking": "[EMAIL_1]", "signature": "sig"}
    anthropic = {"type": "message", "content": [thinking, {"type": "text", "text": "[EMAIL_1]"}]}
    content = orjson.loads(await plugin.response_body(ex, orjson.dumps(anthropic)))["content"]
    assert content == [thinking, {"type": "text", "text": "bob@example.com"}]
    ex.status = 500
    assert await plugin.response_body(ex, b'{"error": "[EMAIL_1]"}') == b'{"error": "[EMAIL_1]"}'


async def test_stream_hooks_restore_through_the_plugin() -> None:
    plugin = masking()
    ex = await masked(plugin, chat("Mail bob@example.com", stream=True))
    out = plugin.stream_event(ex, chunk("to [EMAI")) + plugin.stream_event(ex, chunk("L_1]!")) + plugin.stream_end(ex)
    assert streamed(out) == "to bob@example.com!"


async def test_replace_roles_follow_higress() -> None:
    plugin = masking(
        detectors=[],
        replace_roles=[
            {
                "regex": "%{EMAILLOCALPART}@%{HOSTNAME:domain}",
                "type": "replace",
                "restore": True,
                "value": "****@$domain",
            },
            {"regex": r"sk-[0-9a-zA-Z]*", "type": "hash", "restore": True},
            {"regex": r"%{IP}", "type": "replace", "value": "***.***.***.***"},
        ],
    )
    ex = await masked(plugin, chat('curl http://172.20.5.14/x -H "Authorization: sk-12345" -H "Auth: test@gmail.com"'))
    assert ex.upstream_json is not None
    assert ex.upstream_json["messages"][0]["content"] == (
        'curl http://***.***.***.***/x -H "Authorization: 48a7e98a91d93896d8dac522c5853948" -H "Auth: ****@gmail.com"'
    )
    ex.status = 200
    answer = {"choices": [{"message": {"content": "48a7e98a91d93896d8dac522c5853948 ****@gmail.com ***.***.***.***"}}]}
    out = orjson.loads(await plugin.response_body(ex, orjson.dumps(answer)))
    assert out["choices"][0]["message"]["content"] == "sk-12345 test@gmail.com ***.***.***.***"


async def test_detectors_can_be_chosen() -> None:
    ex = await masked(masking(detectors=["card"]), chat("bob@example.com 4111111111111111"))
    assert ex.upstream_json is not None
    assert ex.upstream_json["messages"][0]["content"] == "bob@example.com [CARD_1]"
    assert (await masked(masking(detectors=[]), chat("bob@example.com"))).upstream_json is None


async def test_jsonpath_and_raw_add_fields() -> None:
    ex = await masked(
        masking(deny_openai=False, deny_jsonpath=["$.metadata.note"]),
        {**chat("bob@example.com"), "metadata": {"note": "a@b.cd"}},
    )
    assert ex.upstream_json is not None
    assert ex.upstream_json["metadata"]["note"] == "[EMAIL_1]"
    assert ex.upstream_json["messages"][0]["content"] == "bob@example.com"
    ex = await masked(masking(deny_raw=True), {"model": "a@b.cd", "x": {"y": ["a@b.cd"]}}, "/v1/responses")
    assert ex.upstream_json == {"model": "a@b.cd", "x": {"y": ["[EMAIL_1]"]}}


async def test_a_field_selected_twice_is_masked_once() -> None:
    plugin = masking(
        deny_jsonpath=["$.messages[*].content"],
        replace_roles=[{"regex": r"[A-Z]+_\d", "type": "replace", "value": "X"}],
    )
    ex = await masked(plugin, chat("bob@example.com"))
    assert ex.upstream_json is not None
    assert ex.upstream_json["messages"][0]["content"] == "[EMAIL_1]"


def refusal(outcome: object, ex: Exchange) -> Reply:
    assert isinstance(outcome, Reply), outcome
    assert (ex.blocked_by, ex.reason) == ("ai-data-masking", "ai-data-masking.denied")
    return outcome


async def test_deny_words_answer_like_higress() -> None:
    plugin = masking(deny_words=["Project Falcon"], deny_message="Not allowed.")
    ex = request(chat("tell me about project falcon"))
    reply = refusal(await run_request(plugin, ex), ex)
    assert reply.status == 200 and ("content-type", "application/json") in reply.headers
    body = orjson.loads(reply.body)
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Not allowed."}
    assert ex.upstream_json is None


async def test_deny_in_a_stream_and_in_anthropic_and_raw_shapes() -> None:
    plugin = masking(deny_words=["forbidden"], deny_raw_message='{"errmsg": "no"}')
    ex = request(chat("forbidden", stream=True))
    reply = refusal(await run_request(plugin, ex), ex)
    events = [SseEvent(part + b"\n\n") for part in reply.body.split(b"\n\n") if part]
    assert streamed(events) == "Sensitive words found in the question or answer have been blocked"
    assert events[-1].data == "[DONE]" and ex.stream
    ex = request(
        {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "forbidden"}]}, "/v1/messages"
    )
    body = orjson.loads(refusal(await run_request(plugin, ex), ex).body)
    assert body["type"] == "message" and body["content"][0]["type"] == "text"
    ex = request({"model": "e", "input": "forbidden"}, "/v1/embeddings")
    assert refusal(await run_request(plugin, ex), ex).body == b'{"errmsg": "no"}'


async def test_deny_code_400_and_up_is_an_error_in_the_clients_protocol() -> None:
    plugin = masking(deny_words=["forbidden"], deny_code=403)
    ex = request(chat("forbidden"))
    err = await run_request(plugin, ex)
    assert isinstance(err, GatewayError)
    assert (err.status, err.reason, err.code) == (403, "ai-data-masking.denied", "request_blocked")
    assert err.message == "Sensitive words found in the question or answer have been blocked"
    assert ex.blocked_by == "ai-data-masking"


async def test_mode_deny_refuses_what_a_detector_finds() -> None:
    plugin = masking(mode="deny", replace_roles=[{"regex": "ACME-\\d+", "type": "replace", "value": "ACME"}])
    ex = request(chat("card 4111 1111 1111 1111"))
    refusal(await run_request(plugin, ex), ex)
    ex = await masked(plugin, chat("ticket ACME-42"))
    assert ex.upstream_json is not None and ex.upstream_json["messages"][0]["content"] == "ticket ACME"


async def test_system_deny_refuses_private_keys() -> None:
    plugin = masking(system_deny=True)
    ex = request(chat("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"))
    refusal(await run_request(plugin, ex), ex)


async def test_bodies_it_cannot_read_pass_untouched() -> None:
    plugin = masking()
    ex = make_exchange("POST", CHAT, {}, body=b"not json bob@example.com")
    assert await run_request(plugin, ex) is None and ex.upstream_json is None
    ex = make_exchange("GET", "/v1/models")
    assert await run_request(plugin, ex) is None


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"replace_roles": [{"regex": "(", "type": "replace"}]}, "not a valid regular expression"),
        ({"replace_roles": [{"regex": "%{NOPE}", "type": "replace"}]}, "unknown grok pattern"),
        ({"replace_roles": [{"regex": "a*", "type": "replace"}]}, "matches the empty string"),
        ({"replace_roles": [{"regex": "a", "type": "mask"}]}, "type"),
        ({"replace_roles": [{"regex": "(a)", "type": "replace", "value": "$2"}]}, "group"),
        ({"deny_jsonpath": ["messages"]}, "starts with"),
        ({"deny_code": 99}, "deny_code"),
        ({"detectors": ["passport"]}, "detectors"),
        ({"mode": "block"}, "mode"),
        ({"deny_word": ["x"]}, "deny_word"),
    ],
)
def test_invalid_config_is_an_error(config: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        make_plugin("ai-data-masking", config)
