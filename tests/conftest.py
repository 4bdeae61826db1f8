"""Shared fixtures: paths to the held-out benchmark structures beside the checkout.

Data a test needs (../shared, shipped weights) may be missing in a local checkout: there such tests
skip. In CI (env CI=true, exported by .ci/run) a missing file is a failure, never a silent skip.
Mark a test with ``@pytest.mark.needs_data(path, ...)`` or call :func:`require_data`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "benchmark" / "real"
BUNDLED = ROOT / "powdersolve" / "examples"


def in_ci() -> bool:
    """Whether the suite runs in CI, where missing data must fail loudly."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_data(*paths: Path) -> None:
    """Fail (in CI) or skip (locally) the calling test when any of ``paths`` is missing."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if not missing:
        return
    message = f"test data missing: {', '.join(missing)}"
    if in_ci():
        pytest.fail(f"{message} (CI must have it: .ci/run runs with ../shared beside the checkout)", pytrace=False)
    pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_data(*paths): the test reads these files; missing: fail in CI, "
                                       "skip elsewhere")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_data"):
        require_data(*mark.args)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """Folder of real benchmark structures (../shared): a failure in CI when absent, a skip elsewhere."""
    require_data(SHARED)
    return SHARED


@pytest.fixture(scope="session")
def cubic_cif(real_dir: Path) -> Path:
    path = real_dir / "cubic" / "CaF2_225.cif"
    require_data(path)
    return path
