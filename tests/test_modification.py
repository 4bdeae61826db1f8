"""Density modification: the truth is a fixed point, a damaged map moves to the truth, the observed
magnitudes and the electron count are imposed, overlapped peaks are shared by the map's own |F|^2."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from powdersolve.density import DensityConfig, density_grid, grid_q
from powdersolve.diffraction.sticks import sticks
from powdersolve.errors import InputError
from powdersolve.maps.modification import ModificationConfig, modify_density
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.maps.sharpen import gaussian_blur
from powdersolve.metrics import score_predictions
from powdersolve.scattering import wilson_sum
from powdersolve.structures import Crystal

N = 24


def _crystal() -> Crystal:
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.46), ["Ca", "F"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    return Crystal.from_structure(s, 225)


def _damaged(c: Crystal, truth: np.ndarray, blur: float, noise: float, seed: int) -> np.ndarray:
    """A network-like map: the truth blurred by ``blur`` A^2, 40% flattened, with relative noise."""
    rng = np.random.default_rng(seed)
    return (0.6 * gaussian_blur(truth, c.lattice, blur) + 0.4 * truth.mean()
            + noise * truth.std() * rng.normal(size=truth.shape))


def _modify(c: Crystal, grids: np.ndarray, cfg: ModificationConfig, q_limit: float = 6.0) -> np.ndarray:
    s = sticks(c, q_max=q_limit)
    return modify_density(grids, c.lattice, MeasuredPeaks.from_sticks(s, q_limit), c.numbers, c.occupancy, cfg)


def test_the_truth_is_a_fixed_point() -> None:
    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    out = _modify(c, truth[None], ModificationConfig(cycles=3, scale="model"))
    assert out.shape == (1, N, N, N)
    assert np.abs(out[0] - truth).max() < 1e-4 * truth.max()
    # The Wilson scale comes from the composition alone: close, not exact, on one small cell.
    wilson = _modify(c, truth[None], ModificationConfig(cycles=0))
    assert np.abs(wilson[0] - truth).max() < 0.05 * truth.max()


def test_a_damaged_map_moves_to_the_truth() -> None:
    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    damaged = _damaged(c, truth, 6.0, 0.02, 0)
    before = score_predictions(damaged[None], truth)
    after = score_predictions(_modify(c, damaged[None], ModificationConfig(cycles=5)), truth)
    assert after.ssim > before.ssim + 0.1
    assert after.cc > before.cc


def test_observed_magnitudes_and_electrons_are_imposed() -> None:
    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    rng = np.random.default_rng(1)
    start = np.stack([truth + 0.2 * truth.std() * rng.normal(size=truth.shape) for _ in range(2)])
    out = _modify(c, start, ModificationConfig(cycles=0, scale="model", final="amplitudes"))
    electrons = float(c.occupancy @ c.numbers)
    assert np.allclose(out.mean(axis=(1, 2, 3)) * c.volume, electrons, rtol=1e-9)
    q = grid_q(N, c.lattice)
    measured = (q > 0) & (q <= 6.0)
    want = np.abs(np.fft.fftn(truth))[measured]
    for g in out:  # exact in every peak's sum; shares of symmetry mates follow the noisy map
        got = np.abs(np.fft.fftn(g))[measured]
        assert np.isclose((got**2).sum(), (want**2).sum(), rtol=0.02)


def test_an_overlapped_peak_is_shared_by_the_maps_own_intensities() -> None:
    # Cubic (333) and (511) fall on one powder peak; put all of it in the map's (333) family.
    c = _crystal()
    lat = c.lattice
    q = grid_q(N, lat)
    h = np.round(np.fft.fftfreq(N) * N).astype(int)
    srt = np.sort(np.abs(np.stack(np.meshgrid(h, h, h, indexing="ij"), -1)), axis=-1)
    fam333, fam511 = (srt == [3, 3, 3]).all(-1), (srt == [1, 1, 5]).all(-1)
    coef = np.where(fam333, 1.0 + 0j, 0.0)
    coef[0, 0, 0] = 100.0
    grid = np.fft.ifftn(coef).real
    q_peak = float(q[fam333][0])
    assert np.isclose(q_peak, float(q[fam511][0]))
    peaks = MeasuredPeaks(np.array([q_peak]), np.array([64.0]), q_peak + 0.01)
    out = modify_density(grid[None], lat, peaks, np.array([20]),
                         cfg=ModificationConfig(cycles=0, b_iso=0.0, final="amplitudes"))
    mag = np.abs(np.fft.fftn(out[0]))
    assert mag[fam333].min() > 0 and mag[fam511].max() < 1e-9 * mag[fam333].min()


def test_a_sharper_working_map_is_blurred_back() -> None:
    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    out = _modify(c, truth[None], ModificationConfig(cycles=0, scale="model", b_work=4.0, final="amplitudes"))
    assert np.abs(out[0] - truth).max() < 0.02 * truth.max()


def test_wilson_sum_is_the_sum_of_squared_form_factors() -> None:
    z = np.array([20, 9, 9])
    at_zero = wilson_sum(z, np.ones(3), np.zeros(1))
    assert np.isclose(at_zero, 20.0**2 + 2 * 9.0**2, rtol=0.01)


@pytest.mark.parametrize("kwargs", [{"cycles": -1}, {"scale": "guess"}, {"final": "x"}, {"b_work": 9.0},
                                    {"origin": "here"}, {"histogram": "always"}])
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(InputError):
        ModificationConfig(**kwargs)


def test_symmetry_constrained_modification_finds_the_group_and_its_origin() -> None:
    # A noisy, blurred map of CaF2 moved off its origin: the cycles find Fm-3m in the map and return a
    # map that obeys it, at the group's standard origin (on the truth unshifted) or back at the map's.
    from powdersolve.maps.modification import modify_density_symmetric
    from powdersolve.maps.symmetry import from_standard_origin, symmetrise_map

    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    moved = np.roll(_damaged(c, truth, 4.0, 0.05, 2), (3, 5, 7), axis=(0, 1, 2))
    s = sticks(c, q_max=6.0)
    args = (moved[None], c.lattice, MeasuredPeaks.from_sticks(s, 6.0), c.numbers, c.occupancy)
    out, groups = modify_density_symmetric(*args, ModificationConfig(cycles=5, origin="standard"))
    assert [g.number for g in groups] == [225]
    assert np.allclose(symmetrise_map(out[0], 225), out[0], atol=1e-6 * out.max())
    plain = _modify(c, moved[None], ModificationConfig(cycles=5))
    # Unshifted SSIM (the paper's protocol): the plain map keeps the wrong origin, this one is back on it.
    assert score_predictions(out, truth).ssim > 0.9 > score_predictions(plain, truth).ssim
    assert score_predictions(out, truth).cc >= score_predictions(plain, truth).cc - 1e-3
    at_map, _ = modify_density_symmetric(*args, ModificationConfig(cycles=5))
    assert np.allclose(at_map, np.maximum(from_standard_origin(out, groups), 0.0))
    assert np.allclose(np.roll(at_map[0], (-3, -5, -7), axis=(0, 1, 2)), out[0], atol=1e-3 * out.max())


def test_random_positions_keep_their_distance() -> None:
    from powdersolve.maps.modification import spread_positions

    lattice = np.diag([6.0, 6.0, 6.0])
    frac = spread_positions(lattice, 12, 2.0, np.random.default_rng(0))
    d = frac[:, None] - frac[None]
    d -= np.round(d)
    r = np.linalg.norm(d @ lattice, axis=-1) + 100 * np.eye(12)
    assert frac.shape == (12, 3) and r.min() >= 2.0
    # A cell too full for the distance asked still gets all its atoms, a little closer.
    assert spread_positions(np.diag([3.0] * 3), 8, 2.5, np.random.default_rng(0)).shape == (8, 3)


def test_the_reference_histogram_is_that_of_the_crystal() -> None:
    # The values of a CMED depend on the atoms, the cell and B, little on where the atoms sit.
    from powdersolve.maps.modification import reference_histogram

    c = _crystal()
    truth = np.sort(density_grid(c, DensityConfig(b_iso=8.0, grid=N)).ravel())
    ref = reference_histogram(c.lattice, c.numbers, c.occupancy, N, 8.0, min_distance=2.3)
    assert ref.shape == (N**3,) and np.all(np.diff(ref) >= 0)
    assert np.isclose(ref.mean(), c.n_electrons / c.volume, rtol=1e-3)  # the electron count (aliases aside)
    q = [0.1, 0.5, 0.9, 0.99, 0.999]
    assert np.allclose(np.quantile(ref, q), np.quantile(truth, q), rtol=0.25)
    with pytest.raises(InputError):
        reference_histogram(c.lattice, np.zeros(0, dtype=int), None, N, 8.0)


def test_histogram_matching_keeps_the_order_and_takes_the_values() -> None:
    from powdersolve.maps.modification import match_histogram

    rng = np.random.default_rng(1)
    maps = rng.normal(size=(2, 6, 6, 6))
    ref = np.sort(rng.gamma(2.0, size=6**3))
    out = match_histogram(maps, ref)
    for m, o in zip(maps, out):
        assert np.array_equal(np.sort(o.ravel()), ref)
        assert np.array_equal(np.argsort(m.ravel()), np.argsort(o.ravel()))


def test_modification_with_histogram_matching_returns_the_expected_values() -> None:
    from powdersolve.maps.modification import reference_histogram

    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    damaged = _damaged(c, truth, 6.0, 0.02, 0)
    for where in ("final", "cycles"):
        out = _modify(c, damaged[None], ModificationConfig(cycles=3, histogram=where))
        ref = reference_histogram(c.lattice, c.numbers, c.occupancy, N, 8.0)
        assert np.allclose(np.sort(out[0].ravel()), ref)
        assert score_predictions(out, truth).cc > score_predictions(damaged[None], truth).cc


def test_peaks_off_every_reflection_raise_a_modification_error() -> None:
    from powdersolve.errors import ModificationError

    lattice = np.eye(3) * 5.0  # reflections at Q = 2 pi / 5 sqrt(n) = 1.257, 1.777, ... 1/A
    grid = np.random.default_rng(0).random((12, 12, 12))
    with pytest.raises(ModificationError, match="no peak falls"):
        modify_density(grid[None], lattice, MeasuredPeaks(np.array([1.0, 1.5]), np.array([1.0, 1.0]), 2.0), [20], [1.0],
                       ModificationConfig(cycles=1))
