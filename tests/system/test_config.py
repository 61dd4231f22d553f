"""`tollway check -c FILE` and `tollway serve` as processes (SPEC §1, §2, §5): a valid
config prints ``ok`` and exits 0; a config with a problem, or an admin API on a network
address without a token, exits 2 naming it. Config loading itself is tested in
tests/unit/config/test_load.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.config_support import VALID


def check_process(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "tollway.yaml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "tollway", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_a_valid_config_prints_ok_and_exits_0(tmp_path: Path) -> None:
    done = check_process(tmp_path, VALID)
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


def test_a_typo_fails_with_the_keys_place_and_exit_2(tmp_path: Path) -> None:
    done = check_process(tmp_path, VALID.replace("path_prefix: /v1/", "path_prefx: /v1/"))
    assert done.returncode == 2
    assert "routes[0].path_prefx: unknown field" in done.stdout.splitlines()
    assert "ok" not in done.stdout.splitlines()


def test_serve_refuses_an_invalid_config_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "tollway.yaml"
    path.write_text(VALID.replace("path_prefix: /v1/", "path_prefx: /v1/"))
    done = subprocess.run(
        [sys.executable, "-m", "tollway", "serve", "-c", str(path), "--port", "0", "--admin-port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "routes[0].path_prefx: unknown field" in done.stderr
    assert done.stdout == ""


def test_an_unset_variable_fails_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TW_TEST_UNSET_SECRET", raising=False)
    import os

    env = {k: v for k, v in os.environ.items() if k != "TW_TEST_UNSET_SECRET"}
    done = check_process(
        tmp_path, VALID.replace("sk-default}", "}").replace("TW_TEST_TOKEN:-", "TW_TEST_UNSET_SECRET"), env=env
    )
    assert done.returncode == 2
    assert "TW_TEST_UNSET_SECRET" in done.stdout


def test_admin_on_a_network_address_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    """The admin API is never open to the network without a token (SPEC §5)."""
    config = tmp_path / "tollway.yaml"
    config.write_text("admin: {host: 0.0.0.0, port: 0}\nserver: {port: 0}\n")
    result = subprocess.run(
        [sys.executable, "-m", "tollway", "serve", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "admin" in result.stderr and "token" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("host", "refused"),
    [("0.0.0.0", True), ("10.1.2.3", True), ("admin.internal", True), ("127.0.0.2", False), ("::1", False)],
)
def test_check_refuses_what_serve_refuses_an_admin_api_open_to_the_network(
    tmp_path: Path, host: str, refused: bool
) -> None:
    # A config `check` passes must start: the same rule, loopback (any of 127/8, ::1,
    # localhost) being the one place an admin API may listen without a token.
    done = check_process(tmp_path, VALID + f'admin: {{host: "{host}", port: 0}}\n')
    if refused:
        assert done.returncode == 2
        assert f"admin.host {host!r} is not loopback and admin.token is empty" in done.stdout
    else:
        assert (done.returncode, done.stdout) == (0, "ok\n"), done.stdout + done.stderr
