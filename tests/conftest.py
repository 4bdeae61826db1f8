"""Shared fixtures: paths to the held-out benchmark structures beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "benchmark" / "real"
BUNDLED = ROOT / "powdersolve" / "examples"


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """Folder of real benchmark structures (shared/), skipped when absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared/benchmark/real not present")
    return SHARED


@pytest.fixture(scope="session")
def cubic_cif(real_dir: Path) -> Path:
    return real_dir / "cubic" / "CaF2_225.cif"
