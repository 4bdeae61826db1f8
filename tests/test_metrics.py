"""The evaluation metrics equal their references (scikit-image) and respect the cube's symmetry."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from powdersolve.baselines import baseline_grids, mean_baseline, random_atoms_baseline
from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import InputError
from powdersolve.metrics import (
    align,
    cube_rotations,
    invert,
    map_correlation,
    map_correlation_batch,
    paper_scores,
    psnr,
    rotate,
    score_predictions,
    ssim3d,
)
from powdersolve.structures import load_crystal

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
    """rho(-x) of a P3_121 crystal is its P3_221 enantiomorph: CC 1 with inversion, < 1 without."""
    te = load_crystal(real_dir / "trigonal" / "Te_152.cif")
    cfg = DensityConfig(b_iso=8.0, grid=24)
    truth = density_grid(te, cfg)
    mirror = invert(truth[None])[0]
    assert np.allclose(invert(invert(truth[None])), truth[None])
    assert mirror[0, 0, 0] == truth[0, 0, 0]
    assert map_correlation(mirror, truth) < 0.95
    assert map_correlation(invert(mirror[None])[0], truth) == pytest.approx(1.0, abs=1e-6)
