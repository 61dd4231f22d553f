"""User rules of ai-data-masking (masking/rules.py): grok names and Rust group syntax,
Higress's hash, and deny words. No sockets."""

from __future__ import annotations

from tollway.masking.rules import DenyWords, compile_user_regex, expand_value, hash_value


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
