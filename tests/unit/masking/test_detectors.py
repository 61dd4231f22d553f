"""The built-in detectors of ai-data-masking (masking/detectors.py), each run alone through
a masker: e-mail, cards (Luhn and issuer), Chinese ID numbers, US SSNs, phones, IPv4 and API
keys. No sockets."""

from __future__ import annotations

from typing import get_args

import pytest

from tollway.masking.detectors import DETECTORS, cn_id_ok, luhn_ok
from tollway.masking.masker import Masker
from tollway.plugins.ai_data_masking import Detector


def found(text: str, detector: str) -> list[str]:
    """What one built-in detector takes from ``text``."""
    masker = Masker(detectors=[detector])
    return [text[h.start : h.end] for h in masker.scanner.scan(text)]


def test_the_config_schema_names_every_detector() -> None:
    assert set(get_args(Detector)) == set(DETECTORS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe+tag@mail.example.co.uk today", ["john.doe+tag@mail.example.co.uk"]),
        ("(a@b.io), <x_y@z-z.org>.", ["a@b.io", "x_y@z-z.org"]),
        ("no tld user@localhost, twitter @handle, trailing dot .a@b.com", ["a@b.com"]),
        ("@start a@b.cd", ["a@b.cd"]),
        # No top-level domain has a dash: one after it ends the address.
        ("write to alice@corp-secret.com--she knows", ["alice@corp-secret.com"]),
        ("an alice@corp-secret.com-based team", ["alice@corp-secret.com"]),
        ("a@b.co-op.example x", ["a@b.co-op.example"]),
    ],
)
def test_email(text: str, expected: list[str]) -> None:
    assert found(text, "email") == expected


def test_an_address_that_loses_its_start_to_another_value_is_still_masked() -> None:
    """Judge L: in ``10.0.0.1bob@x.com`` the IP address wins the start (it comes first
    in priority), and the rest of the address went out as it was. The e-mail finder is
    asked again from where the IP address ends, as a pattern would be."""
    masker = Masker(detectors=["ipv4", "email"])
    assert masker.session(b"").mask("contact 10.0.0.1bob@x.com or 10.0.0.2ann@y.org") == (
        "contact [IP_1][EMAIL_1] or [IP_2][EMAIL_2]"
    )
    assert Masker().session(b"").mask("4111111111111111a@b.com") == "[CARD_1][EMAIL_1]"


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


def test_private_key_blocks_pair_each_begin_with_the_next_end() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"
    # Header lines with no END after them, then a key: the first BEGIN within reach of
    # the END starts the block, as the lazy pattern it replaces did.
    headers = "-----BEGIN PRIVATE KEY-----\n" * 1000
    assert found(headers + "x", "api_key") == []
    (block,) = found(headers + key, "api_key")
    assert block.endswith(key) and len(block) - len(key) <= 16384
    # Two keys are two blocks; a body longer than 16,384 characters is no key.
    assert found(f"{key} and {key}", "api_key") == [key, key]
    far = "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 16400 + "\n-----END RSA PRIVATE KEY-----"
    assert found(far, "api_key") == []
    assert found(far + " " + key, "api_key") == [key]
