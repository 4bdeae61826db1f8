"""The evaluation metrics equal their references (scikit-image, brute force) and search exactly the
rotations of each crystal's own lattice; the baselines are what they claim to be."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from powdersolve.baselines import (
    InputAmplitudes,
    baseline_grids,
    fourier_map,
    mean_baseline,
    patterson_baseline,
    random_atoms_baseline,
    zero_phase_baseline,
)
from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import InputError
from powdersolve.metrics import (
    align,
    cube_rotations,
    invert,
    lattice_rotations,
    map_correlation,
    map_correlation_batch,
    paper_scores,
    psnr,
    rotate,
    score_predictions,
    ssim3d,
)
from powdersolve.model import half_space_hkl
from powdersolve.scattering import structure_factors
from powdersolve.structures import Crystal, load_crystal

REAL_CUBIC = ["CaF2_225", "LaB6_221", "N2_205"]


def _smooth_random(n: int, seed: int) -> np.ndarray:
    """A random periodic grid with density-like positive values and some structure."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, n, n))
    k = np.fft.fftfreq(n)
    k2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2
    return np.fft.ifftn(np.fft.fftn(x) * np.exp(-40 * k2)).real + 0.5


@pytest.fixture(scope="module")
def real_grids(real_dir: Path) -> list[tuple[object, np.ndarray]]:
    out = []
    for name, n in zip(REAL_CUBIC, (24, 31, 40)):
        c = load_crystal(real_dir / "cubic" / f"{name}.cif")
        out.append((c, density_grid(c, DensityConfig(grid=n))))
    return out


# --- rotations -------------------------------------------------------------------------------


def test_rotations_are_24_distinct_proper_and_a_group() -> None:
    rots = cube_rotations()
    mats = [r.matrix for r in rots]
    assert len(rots) == 24
    assert np.array_equal(mats[0], np.eye(3, dtype=int))
    assert all(round(np.linalg.det(m)) == 1 for m in mats)
    keys = {m.tobytes() for m in mats}
    assert len(keys) == 24
    for a, b in itertools.product(rots, rots):
        assert (b.matrix @ a.matrix).tobytes() in keys
        assert np.array_equal(b.compose(a).matrix, b.matrix @ a.matrix)
    for r in rots:
        assert np.array_equal(r.inverse().matrix @ r.matrix, np.eye(3, dtype=int))


def test_rotations_act_as_their_matrices_and_compose_on_grids() -> None:
    g = np.random.default_rng(0).random((5, 5, 5))
    rots = cube_rotations()
    for a, b in [(rots[3], rots[17]), (rots[9], rots[22]), (rots[5], rots[5])]:
        assert np.array_equal(rotate(rotate(g, a), b), rotate(g, b.compose(a)))
    # Output index j (centred) = M @ input index i (centred).
    r = rots[13]
    i = np.array([0, 1, 4])
    j = r.matrix @ (i - 2) + 2
    assert rotate(g, r)[tuple(j)] == g[tuple(i)]


def test_rotations_are_the_np_rot90_compositions() -> None:
    g = np.random.default_rng(1).random((4, 4, 4))
    seen = {g.tobytes()}
    frontier = [g]
    while frontier:
        nxt = []
        for x in frontier:
            for axes in [(0, 1), (1, 2), (0, 2)]:
                y = np.ascontiguousarray(np.rot90(x, 1, axes))
                if y.tobytes() not in seen:
                    seen.add(y.tobytes())
                    nxt.append(y)
        frontier = nxt
    ours = {np.ascontiguousarray(rotate(g, r)).tobytes() for r in cube_rotations()}
    assert ours == seen


def test_rotate_numpy_equals_torch() -> None:
    g = np.random.default_rng(2).random((2, 6, 6, 6))
    for r in cube_rotations():
        assert np.array_equal(rotate(g, r), rotate(torch.from_numpy(g), r).numpy())


# --- the lattice's own rotations --------------------------------------------------------------

#: A generic conventional cell of each lattice family (a, b, c in A; alpha, beta, gamma in deg).
GENERIC_CELLS = {
    "cubic": (4.0, 4.0, 4.0, 90, 90, 90), "hexagonal": (4.0, 4.0, 6.5, 90, 90, 120),
    "tetragonal": (4.0, 4.0, 6.5, 90, 90, 90), "orthorhombic": (4.0, 5.0, 6.5, 90, 90, 90),
    "monoclinic": (4.0, 5.0, 6.5, 90, 103, 90), "triclinic": (4.0, 5.0, 6.5, 81, 97, 103),
}


def _metric_symmetries(cell: tuple[float, ...]) -> set[bytes]:
    """Brute force: every integer matrix (entries -1, 0, 1), det +1, that keeps the cell's metric tensor."""
    lat = Lattice.from_parameters(*cell).matrix
    g = lat @ lat.T
    mats = np.array(list(itertools.product((-1, 0, 1), repeat=9)), dtype=np.int64).reshape(-1, 3, 3)
    mats = mats[np.rint(np.linalg.det(mats)) == 1]
    keep = np.all(np.abs(np.einsum("nji,jk,nkl->nil", mats, g, mats) - g) < 1e-9, axis=(1, 2))
    return {m.tobytes() for m in mats[keep]}


@pytest.mark.parametrize("family,count", [("cubic", 24), ("hexagonal", 12), ("tetragonal", 8),
                                          ("orthorhombic", 4), ("monoclinic", 2), ("triclinic", 1)])
def test_lattice_rotations_are_the_proper_metric_symmetries_of_the_family(family: str, count: int) -> None:
    rots = lattice_rotations(family)
    mats = [r.matrix for r in rots]
    assert len(rots) == count and np.array_equal(mats[0], np.eye(3, dtype=np.int64))
    assert {m.astype(np.int64).tobytes() for m in mats} == _metric_symmetries(GENERIC_CELLS[family])


def test_trigonal_crystals_get_the_hexagonal_rotations_and_the_cube_keeps_its_order() -> None:
    assert lattice_rotations("trigonal") == lattice_rotations("hexagonal")
    assert lattice_rotations("cubic") == tuple(cube_rotations())
    with pytest.raises(InputError):
        lattice_rotations("rhombic")


@pytest.fixture(scope="module")
def hexagonal_crystal() -> Crystal:
    """A P1 hexagonal cell (a = 3.2, c = 5.1 A) with atoms at generic positions."""
    lat = Lattice.from_parameters(3.2, 3.2, 5.1, 90, 90, 120).matrix
    frac = np.array([[0.11, 0.23, 0.07], [0.52, 0.31, 0.61], [0.71, 0.88, 0.33]])
    return Crystal(lat, frac, np.array([26, 8, 26]), np.ones(3), "Fe2O", 1)


def test_hexagonal_rotations_move_the_density_as_they_move_the_atoms(hexagonal_crystal: Crystal) -> None:
    cfg = DensityConfig(b_iso=8.0, grid=12)
    grid = density_grid(hexagonal_crystal, cfg)
    for r in lattice_rotations("hexagonal"):
        moved = Crystal(hexagonal_crystal.lattice, np.mod(hexagonal_crystal.frac @ r.matrix.T, 1.0),
                        hexagonal_crystal.numbers, hexagonal_crystal.occupancy)
        np.testing.assert_allclose(rotate(grid, r), density_grid(moved, cfg), atol=1e-9)
        np.testing.assert_array_equal(rotate(torch.from_numpy(grid), r).numpy(), rotate(grid, r))


def test_a_hexagonal_map_is_not_matched_over_the_cube(hexagonal_crystal: Crystal) -> None:
    """Swapping a and c is a rotation of the cube, not of a hexagonal cell (c != a): the cube's 24 would
    score that wrong map 1."""
    truth = density_grid(hexagonal_crystal, DensityConfig(b_iso=8.0, grid=12))
    swapped = np.transpose(truth, (2, 1, 0))[::-1]
    assert map_correlation(swapped, truth) == pytest.approx(1.0, abs=1e-6)
    assert map_correlation(swapped, truth, lattice_rotations("hexagonal")) < 0.9
    sixfold = next(r for r in lattice_rotations("hexagonal") if np.trace(r.matrix) == 2)
    moved = np.roll(rotate(truth, sixfold), (3, 5, 1), (0, 1, 2))
    assert map_correlation(moved, truth, lattice_rotations("hexagonal")) == pytest.approx(1.0, abs=1e-6)
    assert map_correlation(moved, truth) < 0.99


def test_paper_scores_over_hexagonal_rotations_equal_skimage(hexagonal_crystal: Crystal) -> None:
    truth = density_grid(hexagonal_crystal, DensityConfig(b_iso=8.0, grid=12))
    preds = np.stack([_smooth_random(12, 21), rotate(truth, lattice_rotations("hexagonal")[4]) + 0.05])
    dr = truth.max() - truth.min()
    ssims = [_skimage_ssim(truth, np.ascontiguousarray(rotate(p, r))) for p in preds
             for r in lattice_rotations("hexagonal")]
    psnrs = [peak_signal_noise_ratio(truth, np.ascontiguousarray(rotate(p, r)), data_range=dr) for p in preds
             for r in lattice_rotations("hexagonal")]
    got = paper_scores(preds, truth, lattice_rotations("hexagonal"))
    assert got["ssim"] == pytest.approx(max(ssims), abs=1e-4)
    assert got["psnr"] == pytest.approx(max(psnrs), rel=1e-9)


# --- map correlation --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [16, 21])
def test_rotated_and_shifted_truth_scores_one(n: int) -> None:
    truth = _smooth_random(n, 3)
    rots = cube_rotations()
    for k, shift in [(7, (0, 0, 0)), (19, (3, n - 2, 5))]:
        moved = np.roll(rotate(truth, rots[k]), shift, (0, 1, 2))
        assert map_correlation(moved, truth) == pytest.approx(1.0, abs=1e-5)
        # An affine change of the density scale is invisible to a correlation.
        noise = np.random.default_rng(k).random((n, n, n))
        m = map_correlation_batch(np.stack([noise, 3.0 * moved + 2.0]), truth)
        assert m.sample == 1 and m.cc == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(align(moved, m.rotation, m.shift), truth, atol=1e-12)


def test_correlation_equals_direct_pearson_at_found_alignment() -> None:
    n = 8
    truth, pred = _smooth_random(n, 4), _smooth_random(n, 5)
    m = map_correlation_batch(pred[None], truth)
    a = align(pred, m.rotation, m.shift)
    assert m.cc == pytest.approx(np.corrcoef(a.ravel(), truth.ravel())[0, 1], abs=1e-5)
    # It is the maximum: no rotation and shift does better (brute force on a small grid).
    best = -1.0
    for r in cube_rotations():
        x = rotate(pred, r)
        for s in itertools.product(range(n), repeat=3):
            best = max(best, float(np.corrcoef(np.roll(x, s, (0, 1, 2)).ravel(), truth.ravel())[0, 1]))
        if best > m.cc + 1e-5:
            break
    assert m.cc == pytest.approx(best, abs=1e-5)


def test_constant_map_scores_zero_correlation() -> None:
    truth = _smooth_random(10, 6)
    assert map_correlation(np.full_like(truth, truth.mean()), truth) == 0.0
    assert map_correlation(truth, np.zeros_like(truth)) == 0.0


def test_shapes_are_checked() -> None:
    with pytest.raises(InputError):
        map_correlation(np.zeros((8, 8, 9)), np.zeros((8, 8, 9)))
    with pytest.raises(InputError):
        ssim3d(np.zeros((1, 8, 8, 8)), np.zeros((9, 9, 9)))


# --- SSIM and PSNR against scikit-image ------------------------------------------------------


def _skimage_ssim(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(structural_similarity(truth, pred, data_range=truth.max() - truth.min()))


@pytest.mark.parametrize("n", [7, 9, 16, 25])
def test_ssim_and_psnr_equal_skimage_on_random_grids(n: int) -> None:
    rng = np.random.default_rng(n)
    truth = rng.random((n, n, n)) * 3.0
    preds = np.stack([rng.random((n, n, n)), _smooth_random(n, n), truth + 0.1 * rng.random((n, n, n))])
    got = ssim3d(preds, truth)
    want = [_skimage_ssim(truth, p) for p in preds]
    np.testing.assert_allclose(got, want, atol=1e-4)
    dr = truth.max() - truth.min()
    want_psnr = [peak_signal_noise_ratio(truth, p, data_range=dr) for p in preds]
    np.testing.assert_allclose(psnr(preds, truth), want_psnr, rtol=1e-9)


def test_ssim_and_psnr_equal_skimage_on_real_densities(real_grids) -> None:
    for i, (crystal, truth) in enumerate(real_grids):
        n = truth.shape[0]
        rng = np.random.default_rng(i)
        preds = np.stack([
            random_atoms_baseline(crystal, n, 8.0, rng),
            mean_baseline(truth),
            rotate(truth, cube_rotations()[5]) * 0.9,
        ])
        np.testing.assert_allclose(ssim3d(preds, truth), [_skimage_ssim(truth, p) for p in preds], atol=1e-4)
        dr = truth.max() - truth.min()
        want = [peak_signal_noise_ratio(truth, p, data_range=dr) for p in preds]
        np.testing.assert_allclose(psnr(preds, truth), want, rtol=1e-9)


def test_paper_scores_are_skimage_maximised_over_rotations_and_samples() -> None:
    n = 10
    truth = _smooth_random(n, 7)
    preds = np.stack([_smooth_random(n, 8), _smooth_random(n, 9)])
    dr = truth.max() - truth.min()
    ssims, psnrs = [], []
    for p in preds:
        for r in cube_rotations():
            q = np.ascontiguousarray(rotate(p, r))
            ssims.append(_skimage_ssim(truth, q))
            psnrs.append(peak_signal_noise_ratio(truth, q, data_range=dr))
    got = paper_scores(preds, truth)
    assert got["ssim"] == pytest.approx(max(ssims), abs=1e-4)
    assert got["psnr"] == pytest.approx(max(psnrs), rel=1e-9)


def test_rotated_truth_scores_one_on_every_metric() -> None:
    truth = _smooth_random(15, 10)
    moved = rotate(truth, cube_rotations()[11])
    preds = np.stack([_smooth_random(15, 11), moved])
    score = score_predictions(preds, truth)
    assert score.cc == pytest.approx(1.0, abs=1e-5)
    assert score.ssim == pytest.approx(1.0, abs=1e-12)
    assert score.psnr == np.inf
    assert score.best_sample_cc == 1 and score.best_sample_ssim == 1
    assert score.per_sample_cc[0] < 1.0 and len(score.per_sample_ssim) == 2
    np.testing.assert_array_equal(rotate(moved, cube_rotations()[score.rotation_ssim]), truth)


def test_posterior_mean_scores_are_sample_zeros_not_the_best() -> None:
    """Sample 0 (the posterior mean) is what a user gets; the best sample is an oracle pick."""
    truth = _smooth_random(15, 14)
    preds = np.stack([0.3 * truth + _smooth_random(15, 15), rotate(truth, cube_rotations()[3])])
    score = score_predictions(preds, truth)
    assert score.cc == pytest.approx(1.0, abs=1e-5) and score.psnr == np.inf
    assert score.cc_posterior_mean == score.per_sample_cc[0] < 0.99
    assert score.ssim_posterior_mean == score.per_sample_ssim[0] < score.ssim
    assert np.isfinite(score.psnr_posterior_mean) and score.psnr_posterior_mean == score.per_sample_psnr[0]
    assert score.ssim_aligned == pytest.approx(1.0, abs=1e-9) and score.ssim_aligned_posterior_mean < 0.99
    alone = score_predictions(preds[:1], truth)
    assert alone.cc == alone.cc_posterior_mean == pytest.approx(score.cc_posterior_mean, abs=1e-12)


def test_aligned_ssim_takes_the_origin_out_and_paper_ssim_does_not() -> None:
    truth = _smooth_random(15, 12)
    moved = np.roll(rotate(truth, cube_rotations()[5]), (4, 0, 9), (0, 1, 2))
    score = score_predictions(np.stack([_smooth_random(15, 13), moved]), truth)
    assert score.ssim_aligned == pytest.approx(1.0, abs=1e-9)
    assert score.ssim < 0.9  # the paper's protocol has no shifts


# --- baselines -----------------------------------------------------------------------------


def test_mean_baseline_is_constant_at_the_mean() -> None:
    truth = _smooth_random(8, 12)
    m = mean_baseline(truth)
    assert m.shape == truth.shape and np.ptp(m) == 0 and m[0, 0, 0] == pytest.approx(truth.mean())


def test_random_atoms_keep_electron_count_and_are_seeded(real_grids) -> None:
    crystal, truth = real_grids[0]
    cfg = DensityConfig(grid=truth.shape[0])
    a = baseline_grids(crystal, truth, cfg, seed=3, samples=2)
    b = baseline_grids(crystal, truth, cfg, seed=3, samples=2)
    c = baseline_grids(crystal, truth, cfg, seed=4, samples=2)
    assert set(a) == {"mean", "random_atoms"} and len(a["random_atoms"]) == 2
    for x, y in zip(a["random_atoms"], b["random_atoms"]):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a["random_atoms"][0], c["random_atoms"][0])
    assert not np.allclose(a["random_atoms"][0], a["random_atoms"][1])
    for g in a["random_atoms"]:
        total = g.sum() * crystal.volume / g.size
        # Exactly the truth's F(000); IT92 f(0) differs from Z by ~0.01 e per atom.
        assert total == pytest.approx(truth.sum() * crystal.volume / truth.size, rel=1e-9)
        assert total == pytest.approx(crystal.n_electrons, rel=1e-3)


def test_inversion_maps_a_chiral_structure_onto_its_enantiomorph(real_dir: Path) -> None:
    """rho(-x) of a P3_121 crystal is its P3_221 enantiomorph: CC 1 with inversion, < 1 without (no proper
    rotation of the hexagonal lattice turns one hand into the other)."""
    te = load_crystal(real_dir / "trigonal" / "Te_152.cif")
    cfg = DensityConfig(b_iso=8.0, grid=24)
    truth = density_grid(te, cfg)
    hexagonal = lattice_rotations("trigonal")
    mirror = invert(truth[None])[0]
    assert np.allclose(invert(invert(truth[None])), truth[None])
    assert mirror[0, 0, 0] == truth[0, 0, 0]
    assert map_correlation(mirror, truth, hexagonal) < 0.95
    assert map_correlation(invert(mirror[None])[0], truth, hexagonal) == pytest.approx(1.0, abs=1e-6)


# --- Fourier baselines -------------------------------------------------------------------------


def _amplitudes(crystal: Crystal, box: tuple[int, int, int], b_iso: float = 8.0) -> InputAmplitudes:
    hkl = half_space_hkl(box)
    return InputAmplitudes(hkl, np.abs(structure_factors(crystal, hkl, b_iso)))


def test_fourier_map_equals_the_direct_cosine_sum() -> None:
    rng = np.random.default_rng(5)
    hkl = half_space_hkl((2, 2, 2))
    coef = rng.normal(size=len(hkl))
    n = 6
    x = np.stack(np.meshgrid(*[np.arange(n) / n] * 3, indexing="ij"), -1)
    want = 2 * np.cos(2 * np.pi * x @ hkl.T) @ coef
    np.testing.assert_allclose(fourier_map(hkl, coef, n), want, atol=1e-10)


def test_zero_phase_map_is_the_structure_when_every_phase_is_zero_and_not_otherwise(
        hexagonal_crystal: Crystal) -> None:
    """fcc Al (atoms on the origin's inversion centre, all F > 0): the zero-phase map is the density
    itself; a cell of atoms at generic positions is not recovered."""
    a = 4.05
    al = Crystal(np.eye(3) * a, np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]),
                 np.full(4, 13), np.ones(4), "Al", 225)
    truth = density_grid(al, DensityConfig(b_iso=8.0, grid=20))
    zero = zero_phase_baseline(_amplitudes(al, (7, 7, 7)), truth)
    assert map_correlation(zero, truth) > 0.999
    assert zero.mean() == pytest.approx(truth.mean()) and zero.std() == pytest.approx(truth.std())
    generic = density_grid(hexagonal_crystal, DensityConfig(b_iso=8.0, grid=20))
    amps = _amplitudes(hexagonal_crystal, (6, 6, 8))
    assert map_correlation(zero_phase_baseline(amps, generic), generic, lattice_rotations("hexagonal")) < 0.9


def test_patterson_is_centrosymmetric_and_peaks_at_the_origin(hexagonal_crystal: Crystal) -> None:
    truth = density_grid(hexagonal_crystal, DensityConfig(b_iso=8.0, grid=16))
    p = patterson_baseline(_amplitudes(hexagonal_crystal, (5, 5, 7)), truth)
    np.testing.assert_allclose(invert(p[None])[0], p, atol=1e-9)
    assert np.unravel_index(np.argmax(p), p.shape) == (0, 0, 0)
    grids = baseline_grids(hexagonal_crystal, truth, DensityConfig(b_iso=8.0, grid=16), 0, 2,
                           _amplitudes(hexagonal_crystal, (5, 5, 7)))
    assert set(grids) == {"mean", "random_atoms", "zero_phase", "patterson"}
    np.testing.assert_allclose(grids["patterson"][0], p)
