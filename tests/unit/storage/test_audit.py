"""What the audit log keeps of an admin write's body (storage/audit.py): everything but
the fields whose names say they hold a secret, at any depth, inside lists too."""

from __future__ import annotations

from tollway.storage.audit import without_secrets


def test_secret_fields_go_at_any_depth_and_inside_lists() -> None:
    details = {
        "name": "aud1",
        "api_key": "sk-top",
        "metadata": {
            "upstream": [{"api_key": "sk-LEAKED", "region": "eu"}, "plain", [{"password": "p", "ok": 1}]],
            "creds": {"token": "t", "note": "n"},
        },
        "list": [{"Secret_Value": "s"}],
    }
    assert without_secrets(details) == {
        "name": "aud1",
        "metadata": {"upstream": [{"region": "eu"}, "plain", [{"ok": 1}]]},
        "list": [{}],
    }


def test_the_shorter_names_of_secrets_go_too_in_any_case_or_width() -> None:
    details = {
        "Authorization": "Bearer s", "x-auth": "s", "pwd": "s", "bearer": "s", "cred": "s",
        "ｋｅｙ": "s", "ＡＰＩ＿ＫＥＹ": "s", "session": "s", "PASSPHRASE": "s", "private_key_pem": "s",
        "sessionid": "s", "passcode": "s", "jwt_value": "s", "signature": "s", "otp": "s", "ke\u200by": "s",
        "author": "bob", "authors": ["x"], "passenger": 1, "region": "eu", "pinned": True,
    }  # fmt: skip
    assert without_secrets(details) == {
        "author": "bob", "authors": ["x"], "passenger": 1, "region": "eu", "pinned": True
    }  # fmt: skip
