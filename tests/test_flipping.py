"""Charge flipping: the truth stays put, random phases find a small structure with free coordinates, the
R factor tells a right map from a wrong one, the result lies on the start map's scale, bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from powdersolve.density import DensityConfig, density_grid
from powdersolve.diffraction.sticks import sticks
from powdersolve.errors import InputError, ModificationError
from powdersolve.maps.flipping import FlipConfig, charge_flip, flip_grid_size, random_phase_map
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.metrics import lattice_rotations, map_correlation_per_sample
from powdersolve.structures import Crystal

N = 32
Q_LIMIT = 7.0


def _crystal() -> Crystal:
    """FeP-like, Pnma: 8 atoms on two 4c orbits, four free coordinates."""
    s = Structure.from_spacegroup("Pnma", Lattice.orthorhombic(5.19, 3.10, 5.79), ["Fe", "P"],
                                  [[0.005, 0.25, 0.20], [0.19, 0.25, 0.57]])
    return Crystal.from_structure(s, 62)


DEFAULT = FlipConfig()


def _flip(c: Crystal, start: np.ndarray, cfg: FlipConfig = DEFAULT):
    s = sticks(c, q_max=Q_LIMIT)
    return charge_flip(start, c.lattice, MeasuredPeaks.from_sticks(s, Q_LIMIT), cfg)


def _cc(grid: np.ndarray, truth: np.ndarray) -> float:
    return float(map_correlation_per_sample(grid[None], truth, lattice_rotations("orthorhombic"))[0][0])


def _random_phases(seed: int) -> np.ndarray:
    return random_phase_map(N, np.random.default_rng(seed))


def test_the_truth_stays_the_truth() -> None:
    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    out = _flip(c, truth)
    assert out.grid.shape == (N, N, N)
    assert _cc(out.grid, truth) > 0.95  # the flipping settles near the structure, not on it
    # On the start map's scale: same mean (F(000)), similar spread.
    assert out.grid.mean() == pytest.approx(truth.mean(), rel=1e-6)
    assert 0.7 < out.grid.std() / truth.std() < 1.3
    # It confirms the start: the start map stands.
    assert out.confirmed and out.agreement > 0.95
    assert out.preferred(truth) is truth or np.array_equal(out.preferred(truth), truth)


def test_random_phases_find_a_small_structure() -> None:
    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    start = _random_phases(0)
    assert _cc(start, truth) < 0.5
    out = _flip(c, start, FlipConfig(cycles=300, reshare=20))
    assert _cc(out.grid, truth) > 0.9
    # It departs from the start: the flipped map is preferred.
    assert not out.confirmed and out.agreement < 0.5
    assert np.array_equal(out.preferred(start), out.grid)


def test_r_factor_ranks_the_right_map_first() -> None:
    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    right = _flip(c, truth, FlipConfig(cycles=5))
    wrong = _flip(c, _random_phases(1), FlipConfig(cycles=5))
    assert right.r_factor < wrong.r_factor


def test_bad_input_is_refused() -> None:
    c = _crystal()
    with pytest.raises(InputError):
        _flip(c, np.zeros((N, N, N - 1)))
    with pytest.raises(InputError):
        _flip(c, np.full((N, N, N), np.nan))
    with pytest.raises(ModificationError):
        charge_flip(np.zeros((N, N, N)), c.lattice, MeasuredPeaks(np.array([100.0]), np.array([1.0]), Q_LIMIT))
    for bad in ({"cycles": 0}, {"delta": 0.0}, {"reshare": -1}, {"polish": -1}, {"tol": 0.0}, {"b_iso": -1.0},
                {"confirm": 1.5}, {"sampling": 1.0}, {"max_grid": -1}, {"reshare_large": -1},
                {"large_cell": -1.0}):
        with pytest.raises(InputError):
            FlipConfig(**bad)


def test_large_cells_reshare_more_often() -> None:
    cfg = FlipConfig()
    assert cfg.reshare_every(np.eye(3) * 5.0) == cfg.reshare  # 125 A^3
    assert cfg.reshare_every(np.diag([10.0, 11.0, 12.0])) == cfg.reshare_large  # 1320 A^3
    assert FlipConfig(large_cell=2000.0).reshare_every(np.diag([10.0, 11.0, 12.0])) == cfg.reshare


def test_the_iteration_grid_holds_every_measured_reflection() -> None:
    c = _crystal()
    m = flip_grid_size(48, c.lattice, Q_LIMIT, 4.0)
    assert m % 2 == 0 and m < 48
    hkl = np.stack(np.meshgrid(*[np.arange(-15, 16)] * 3, indexing="ij"), -1).reshape(-1, 3)
    q = 2 * np.pi * np.linalg.norm(hkl @ np.linalg.inv(c.lattice).T, axis=1)
    assert np.abs(hkl[q <= Q_LIMIT]).max() < m // 2
    assert flip_grid_size(48, c.lattice, Q_LIMIT, None) == 48
    assert flip_grid_size(16, c.lattice, Q_LIMIT, 4.0) == 16  # never finer than the map's own grid
    assert flip_grid_size(16, c.lattice, Q_LIMIT, 4.0, max_grid=64) == m  # unless allowed to be


def test_a_finer_iteration_grid_returns_the_start_grid() -> None:
    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=16))
    s = sticks(c, q_max=Q_LIMIT)
    peaks = MeasuredPeaks.from_sticks(s, Q_LIMIT)
    fine = charge_flip(truth, c.lattice, peaks, FlipConfig(max_grid=64))
    confined = charge_flip(truth, c.lattice, peaks, FlipConfig())
    assert fine.grid.shape == (16, 16, 16)
    assert fine.grid.mean() == pytest.approx(truth.mean(), rel=1e-6)
    # 16 points cut the measured reflections; iterating on all of them places the atoms at least as well.
    assert _cc(fine.grid, truth) > 0.9
    assert _cc(fine.grid, truth) >= _cc(confined.grid, truth) - 0.01


def test_a_coarser_iteration_grid_gives_the_same_map() -> None:
    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=48))
    s = sticks(c, q_max=Q_LIMIT)
    fine = charge_flip(truth, c.lattice, MeasuredPeaks.from_sticks(s, Q_LIMIT), FlipConfig(sampling=None))
    coarse = charge_flip(truth, c.lattice, MeasuredPeaks.from_sticks(s, Q_LIMIT), FlipConfig(sampling=4.0))
    assert coarse.grid.shape == (48, 48, 48)
    assert coarse.grid.mean() == pytest.approx(truth.mean(), rel=1e-6)
    assert _cc(coarse.grid, fine.grid) > 0.95  # both settle near the structure, not on one point
    assert _cc(coarse.grid, truth) > 0.95
