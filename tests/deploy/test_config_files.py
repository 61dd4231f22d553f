"""Every config file in deploy/ (the replicas', the container image's, the ConfigMap's)
passes the real ``tollway check``, and none starts without its admin token: each opens
the admin port to the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.deploy_support import DEPLOY, KUBERNETES, SECRETS, documents, tollway_check


def _configmap_config(folder: Path) -> Path:
    (configmap,) = [d for d in documents(KUBERNETES / "configmap.yaml") if d["kind"] == "ConfigMap"]
    path = folder / "configmap-tollway.yaml"
    path.write_text(configmap["data"]["tollway.yaml"])
    return path


@pytest.mark.parametrize("name", ["tollway.yaml", "container.yaml", "configmap"])
def test_the_config_passes_tollway_check(name: str, tmp_path: Path) -> None:
    config = _configmap_config(tmp_path) if name == "configmap" else DEPLOY / name
    done = tollway_check(config, SECRETS)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


@pytest.mark.parametrize("name", ["tollway.yaml", "container.yaml", "configmap"])
def test_the_config_refuses_to_load_without_an_admin_token(name: str, tmp_path: Path) -> None:
    config = _configmap_config(tmp_path) if name == "configmap" else DEPLOY / name
    without = {k: v for k, v in SECRETS.items() if k != "TOLLWAY_ADMIN_TOKEN"}
    refused = tollway_check(config, without)
    assert refused.returncode == 2 and "TOLLWAY_ADMIN_TOKEN" in refused.stdout + refused.stderr
