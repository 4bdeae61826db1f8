"""Fourier recycling: the measured peaks charge-flipped from a rough candidate's phases put its misplaced
light atoms back; `solve` reads atoms from those maps and ranks them with the rest. Peaks from the independent
test simulator (pymatgen sticks)."""

from __future__ import annotations

import independent
import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import InputError
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.metrics import lattice_rotations, map_correlation_per_sample
from powdersolve.predict import PredictConfig
from powdersolve.solve.candidate import Candidate
from powdersolve.solve.config import SolveConfig
from powdersolve.solve.pipeline import solve
from powdersolve.solve.recycling import recycled_map
from powdersolve.solve.refine import RefineResult
from powdersolve.structures import Crystal

N = 40
LATTICE = Lattice.monoclinic(5.2, 4.1, 6.3, 97.0)


def _structure(s_site: list[float]) -> Structure:
    """P2_1/c ZnS-like: Zn and S on general orbits (8 atoms)."""
    return Structure.from_spacegroup("P2_1/c", LATTICE, ["Zn", "S"], [[0.18, 0.12, 0.21], s_site])


def _peaks(structure: Structure) -> MeasuredPeaks:
    """pymatgen's sticks as Q (1/A) and |F|^2-like intensity (Lorentz-polarisation divided out)."""
    tt, inten, _ = independent.sticks(structure)
    theta = np.radians(tt) / 2
    lp = (1 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
    q = 4 * np.pi * np.sin(theta) / independent.CU_KA1
    return MeasuredPeaks(q, inten / lp, float(4 * np.pi * np.sin(np.radians(60.0)) / independent.CU_KA1))


def _candidate(structure: Structure) -> Candidate:
    fit = RefineResult(structure, 0.0, 1.0, 1.0, 0.2, 0.2, 1.0, np.zeros(1), np.zeros(1), np.zeros(1))
    return Candidate(fit, 0, "ZnS", 14, "P2_1/c", len(structure))


def _cc(grid: np.ndarray, truth: np.ndarray) -> float:
    return float(map_correlation_per_sample(grid[None], truth, lattice_rotations("monoclinic"))[0][0])


def test_recycling_moves_misplaced_light_atoms_towards_the_truth() -> None:
    truth_s = _structure([0.33, 0.61, 0.08])
    rough = _structure([0.40, 0.50, 0.15])  # S 0.7 A off; Zn right
    truth = density_grid(Crystal.from_structure(truth_s, 14), DensityConfig(b_iso=8.0, grid=N))
    start = density_grid(Crystal.from_structure(rough, 14), DensityConfig(b_iso=8.0, grid=N))
    out = recycled_map(_candidate(rough), 1, _peaks(truth_s), N)
    assert out.grid.shape == (N, N, N)
    assert out.lattice == pytest.approx(LATTICE.matrix)
    assert out.label == "recycled from candidate 1 (P2_1/c)"
    before, after = _cc(start, truth), _cc(out.grid, truth)
    assert after > 0.9 and after > before + 0.05


def test_the_recycling_settings_are_checked() -> None:
    for bad in ({"recycle": -1}, {"recycle_above": -0.1}, {"recycle_above": float("nan")}, {"time_limit": 0.0},
                {"time_limit": float("nan")}, {"recycle_rounds": 0}, {"recycle_gain": 0.0}, {"recycle_gain": 1.5}):
        with pytest.raises(InputError):
            SolveConfig(**bad)


def test_solve_ranks_the_recycled_candidates_with_the_rest(tmp_path) -> None:
    """A monoclinic pattern (no shipped model: the network-free path), recycling forced: the recycled maps'
    candidates join the ranking, the answer stays right."""
    truth = _structure([0.33, 0.61, 0.08])
    tt, y = independent.pattern(truth)
    xy = tmp_path / "mono.xy"
    xy.write_text(f"# wavelength = {independent.CU_KA1}\n" + "\n".join(f"{a:.4f} {b:.1f}" for a, b in zip(tt, y)))
    result = solve(xy, SolveConfig(grid=32, recycle=1, recycle_above=0.0), PredictConfig(composition="ZnS"))
    assert "recycle" in result.timings
    assert result.config.abstain and result.config.recycle == 1  # the settings asked for, not the first pass's
    assert any("recycled from candidate 1" in o for origins in result.origins for o in origins)
    assert StructureMatcher().fit(result.best.result.structure, truth)
    # With a time limit already spent when recycling would begin, no candidate is recycled and a note says so.
    late = solve(xy, SolveConfig(grid=32, recycle=1, recycle_above=0.0, time_limit=1e-6),
                 PredictConfig(composition="ZnS"))
    assert not any("recycled" in o for origins in late.origins for o in origins)
    assert any("time limit" in n for n in late.notes)


def test_a_later_round_recycles_the_new_best(tmp_path) -> None:
    """With every round counted as a gain (``recycle_gain`` 1: the merged best never fits worse), the best
    candidate after the first round is recycled again, and no more than ``recycle_rounds`` rounds run."""
    truth = _structure([0.33, 0.61, 0.08])
    tt, y = independent.pattern(truth)
    xy = tmp_path / "mono.xy"
    xy.write_text(f"# wavelength = {independent.CU_KA1}\n" + "\n".join(f"{a:.4f} {b:.1f}" for a, b in zip(tt, y)))
    said: list[str] = []
    result = solve(xy, SolveConfig(grid=32, recycle=1, recycle_above=0.0, recycle_rounds=2, recycle_gain=1.0),
                   PredictConfig(composition="ZnS"), progress=said.append)
    assert sum("recycling candidate 1" in m for m in said) == 1
    assert sum("recycling (round 2) candidate 1" in m for m in said) == 1
    assert not any("round 3" in m for m in said)
    assert StructureMatcher().fit(result.best.result.structure, truth)
