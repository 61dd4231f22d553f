"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.recorder_support import RECORDERS
from tollway.plugins.registry import PLUGIN_MODELS, REGISTRY


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for cls in RECORDERS:
        monkeypatch.setitem(REGISTRY, cls.name, cls)
        monkeypatch.setitem(PLUGIN_MODELS, cls.name, cls.config_model)
    yield
