"""Fixtures for tests/training: the fake dataset and test models (helpers in tests/training/fake_data.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.registry import _BUILDERS
from tests.training.fake_data import RuleModel, make_fake_dataset


@pytest.fixture
def fake_data(tmp_path: Path) -> Path:
    return make_fake_dataset(tmp_path / "data")


@pytest.fixture
def broken_data(tmp_path: Path) -> Path:
    return make_fake_dataset(tmp_path / "broken", broken=True)


@pytest.fixture
def test_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register ``test-perfect`` and ``test-empty`` in the model registry for one test."""
    from models import list_models

    list_models()  # load the built-ins first, so they do not replace the registry later
    monkeypatch.setitem(_BUILDERS, "test-perfect", lambda **kw: RuleModel(**kw))
    monkeypatch.setitem(_BUILDERS, "test-empty", lambda **kw: RuleModel(empty=True, **kw))


@pytest.fixture
def rule_model() -> type[RuleModel]:
    return RuleModel
