"""deploy/systemd/tollway.service: ``systemd-analyze verify`` accepts it, its command line
is one ``tollway serve`` takes, and the state directory it makes is the one the config
writes to."""

from __future__ import annotations

import configparser
import shlex
import subprocess
from pathlib import Path

from tests.support.deploy_support import DEPLOY, TOLLWAY, require_tool
from tollway.cli.main import build_parser

UNIT = DEPLOY / "systemd" / "tollway.service"


def _unit() -> configparser.ConfigParser:
    # systemd allows a key more than once (Environment=); this unit does not repeat one.
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", "systemd")
    unit = UNIT.read_text()
    binary = shlex.split(_unit()["Service"]["ExecStart"])[0]
    # verify wants the binary to exist: this venv's tollway stands in for /opt/tollway's.
    (tmp_path / "tollway.service").write_text(unit.replace(binary, str(TOLLWAY)))
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "tollway.service")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_the_command_line_is_one_tollway_serve_takes() -> None:
    service = _unit()["Service"]
    binary, *args = shlex.split(service["ExecStart"])
    assert Path(binary).name == "tollway"
    parsed = build_parser().parse_args(args)
    assert parsed.command == "serve" and parsed.config == "/etc/tollway/tollway.yaml"
    # The config it names is deploy/tollway.yaml (the unit's install steps copy it there;
    # tests/deploy/test_config_files.py checks it), whose journal goes to the state directory.
    assert "install -m 0644 deploy/tollway.yaml /etc/tollway/tollway.yaml" in UNIT.read_text()
    environment = dict(pair.split("=", 1) for pair in shlex.split(service["Environment"]))
    assert environment["TOLLWAY_DATA_FOLDER"] == "/var/lib/" + service["StateDirectory"]


def test_the_unit_is_hardened() -> None:
    service = _unit()["Service"]
    assert service["DynamicUser"] == "yes" and service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict" and service["ProtectHome"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    assert service["EnvironmentFile"] == "/etc/tollway/tollway.env"  # the keys, never in the unit
    assert "KEY" not in service["Environment"] and "TOKEN" not in service["Environment"]
