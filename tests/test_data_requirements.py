"""Missing test data fails in CI and skips only locally (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import require_data


def test_missing_data_fails_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="test data missing: .*absent"):
        require_data(tmp_path / "absent")


def test_missing_data_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="test data missing"):
        require_data(tmp_path / "absent")


def test_present_data_passes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CI", "true")
    require_data(tmp_path)

