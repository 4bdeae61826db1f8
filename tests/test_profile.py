"""Profile patterns, augmentations and peak picking: physics invariants and round trips."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize._numdiff import approx_derivative

from powdersolve.diffraction.augment import (
    Augment,
    augment_sticks,
    gaussian_noise_relu,
    shift_and_noise,
    shift_bins,
    thermal_factor,
)
from powdersolve.diffraction.encoding import encode_q
from powdersolve.diffraction.peaks import find_peaks, group_jacobian, group_residual, peaks_to_q_intensity
from powdersolve.diffraction.profile import ProfileConfig, profile_pattern, pseudo_voigt
from powdersolve.diffraction.sticks import DOUBLETS, WAVELENGTHS, Sticks, sticks, to_two_theta, two_theta_from_q
from powdersolve.errors import InputError
from powdersolve.structures import load_crystal

CU1 = WAVELENGTHS["CuKa1"]


def _one_stick(two_theta: float, intensity: float = 100.0, lam: float = CU1) -> Sticks:
    q = 4 * np.pi * np.sin(np.radians(two_theta) / 2) / lam
    return Sticks(np.array([q]), np.array([intensity]), np.array([[1, 0, 0]]), np.array([1]))


def _fwhm(x: np.ndarray, y: np.ndarray) -> float:
    above = x[y >= y.max() / 2]
    return float(above[-1] - above[0])


@pytest.mark.parametrize("cfg", [ProfileConfig(w=0.01, eta0=0.0), ProfileConfig(u=0.02, w=0.003, eta0=0.6),
                                 ProfileConfig(w=0.002, size=200.0)], ids=["gauss", "pv", "size"])
def test_peak_area_is_the_lp_weighted_stick(cfg: ProfileConfig) -> None:
    s = _one_stick(60.0)
    grid = np.arange(0.05, 179.95, 0.001)
    y = profile_pattern(s, CU1, grid, cfg)
    _, expected = to_two_theta(s, CU1)
    lorentz_part = cfg.eta0 if cfg.size is None else 0.5
    # Lorentzian tails beyond the 0-180 window hold ~ (2/pi) H / 120 deg of the area.
    assert y.sum() * 0.001 == pytest.approx(expected[0], rel=1e-3 + 5e-3 * lorentz_part)


def test_pseudo_voigt_has_unit_area_and_given_width() -> None:
    x = np.linspace(-50, 50, 400_001)
    for eta in (0.0, 0.3, 1.0):
        y = pseudo_voigt(x, np.float64(0.2), np.float64(eta))
        assert np.trapezoid(y, x) == pytest.approx(1.0, abs=3e-3)
        assert _fwhm(x, y) == pytest.approx(0.2, abs=1e-3)


def test_scherrer_width_scales_with_inverse_size() -> None:
    s = _one_stick(40.0)
    grid = np.arange(5.0, 75.0, 0.0005)
    widths = {}
    for size in (10.0, 100.0):
        y = profile_pattern(s, CU1, grid, ProfileConfig(w=1e-8, eta0=0.0, size=size))
        widths[size] = _fwhm(grid, y)
        scherrer = np.degrees(0.9 * CU1 / (size * np.cos(np.radians(20.0))))
        assert widths[size] == pytest.approx(scherrer, rel=0.02)
    assert widths[10.0] / widths[100.0] == pytest.approx(10.0, rel=0.02)


def test_kalpha2_doublet_position_and_ratio() -> None:
    lam1, lam2, ratio = DOUBLETS["Cu"]
    s = _one_stick(100.0, lam=lam1)
    grid = np.arange(99.0, 101.5, 0.0005)
    # The weighted K-alpha wavelength selects the Cu doublet with K-alpha1 as line 1.
    y = profile_pattern(s, WAVELENGTHS["CuKa"], grid, ProfileConfig(w=1e-4, eta0=0.0, kalpha2=True))
    tt2 = float(two_theta_from_q(s.q, lam2)[0])
    i1, i2 = np.argmin(np.abs(grid - 100.0)), np.argmin(np.abs(grid - tt2))
    assert grid[np.argmax(y)] == pytest.approx(100.0, abs=1e-3)
    assert tt2 - 100.0 == pytest.approx(0.3, abs=0.05)  # ~0.3 deg split at 100 deg for Cu
    local = y[i2 - 20:i2 + 21]
    assert grid[i2 - 20 + np.argmax(local)] == pytest.approx(tt2, abs=1e-3)
    # Same widths at nearly the same angle: the height ratio ~ I2/I1 times the LP ratio.
    assert y[i2] / y[i1] == pytest.approx(ratio, rel=0.03)


def test_zero_shift_moves_peaks() -> None:
    s = _one_stick(30.0)
    grid = np.arange(29.0, 31.0, 0.001)
    y = profile_pattern(s, CU1, grid, ProfileConfig(w=1e-3, zero_shift=0.1))
    assert grid[np.argmax(y)] == pytest.approx(30.1, abs=1e-3)


def test_any_grid_gives_the_same_values() -> None:
    s = _one_stick(30.0)
    s = Sticks(np.concatenate([s.q, s.q * 1.3]), np.array([100.0, 40.0]), np.zeros((2, 3), int), np.ones(2, int))
    grid = np.sort(np.random.default_rng(0).uniform(10, 80, 777))
    cfg = ProfileConfig(w=0.01, size=300.0, background=(10.0, 2.0), hump=(5.0, 25.0, 10.0))
    y = profile_pattern(s, CU1, grid, cfg)
    idx = np.array([3, 300, 700])
    bg = profile_pattern(Sticks(s.q[:0], s.intensity[:0], s.hkl[:0], s.multiplicity[:0]), CU1, grid, cfg)
    y_sub = profile_pattern(s, CU1, grid[idx], ProfileConfig(w=0.01, size=300.0))
    np.testing.assert_allclose(y[idx] - bg[idx], y_sub, rtol=1e-10, atol=1e-12)


def test_poisson_noise_statistics() -> None:
    s = _one_stick(30.0)
    grid = np.linspace(40.0, 80.0, 20_000)  # far from the peak: flat background
    cfg = ProfileConfig(w=1e-3, eta0=0.0, background=(200.0,), scale=1000.0, noise=True)
    y = profile_pattern(s, CU1, grid, cfg, np.random.default_rng(1))
    assert np.all(y == np.round(y))
    assert y.mean() == pytest.approx(200.0, rel=0.01)
    assert y.var() == pytest.approx(200.0, rel=0.05)
    again = profile_pattern(s, CU1, grid, cfg, np.random.default_rng(1))
    np.testing.assert_array_equal(y, again)


def test_bad_profile_settings_are_input_errors() -> None:
    with pytest.raises(InputError):
        ProfileConfig(size=1.0)
    with pytest.raises(InputError):
        profile_pattern(_one_stick(30.0), CU1, np.linspace(10, 80, 100), ProfileConfig(u=0, v=-1.0, w=0.01))
    with pytest.raises(InputError):
        profile_pattern(_one_stick(30.0), CU1, np.linspace(0, 80, 100), ProfileConfig())


def test_peak_picking_recovers_caf2_sticks(cubic_cif) -> None:
    s = sticks(load_crystal(cubic_cif), q_max=8.0)
    grid = np.arange(10.0, 120.0, 0.01)
    cfg = ProfileConfig(w=0.003, eta0=0.3, scale=2e4, background=(50.0, 10.0), background_inverse=300.0,
                        noise=True)
    y = profile_pattern(s, CU1, grid, cfg, np.random.default_rng(0))
    peaks = find_peaks(grid, y)
    tt, _ = to_two_theta(s, CU1)
    in_range = (tt > 10.5) & (tt < 119.5)
    nearest = np.abs(tt[None, :] - peaks.two_theta[:, None]).argmin(axis=1)
    # Every picked peak is a stick, within 0.02 deg.
    assert np.abs(tt[nearest] - peaks.two_theta).max() < 0.02
    # Every stick stronger than 1% of the strongest is found.
    strong = in_range & (s.intensity > 0.01 * s.intensity.max())
    assert set(np.flatnonzero(strong)) <= set(nearest)
    q, inten = peaks_to_q_intensity(peaks, CU1)
    np.testing.assert_allclose(q, s.q[nearest], atol=2e-3)
    rel_true = s.intensity[nearest] / s.intensity[nearest].max()
    rel_got = inten / inten.max()
    big = rel_true > 0.1
    np.testing.assert_allclose(rel_got[big], rel_true[big], rtol=0.1)


def test_peak_picking_rejects_bad_patterns() -> None:
    with pytest.raises(InputError):
        find_peaks(np.arange(5.0), np.ones(5))
    with pytest.raises(InputError):
        find_peaks(np.arange(20.0)[::-1], np.ones(20))
    with pytest.raises(InputError):
        find_peaks(np.arange(20.0), np.full(20, np.nan))


def test_shift_and_noise_follow_the_paper() -> None:
    x = np.zeros((3, 2, 32), dtype=np.float32)
    x[..., 10] = 1.0
    y = shift_bins(x, np.random.default_rng(0), 3)
    assert y.shape == x.shape
    pos = np.argmax(y, axis=-1)
    assert np.all(np.abs(pos - 10) <= 3) and len(np.unique(pos)) > 1
    np.testing.assert_array_equal(y.sum(-1), 1.0)
    edge = np.zeros(32, dtype=np.float32)
    edge[0] = 1.0
    shifted = [shift_bins(edge, np.random.default_rng(i), 3) for i in range(20)]
    assert any(v.sum() == 0 for v in shifted)  # shifted out, zero filled
    n = gaussian_noise_relu(np.zeros((4, 1000), np.float32), np.random.default_rng(0))
    assert n.min() == 0 and n.dtype == np.float32
    assert np.sqrt(np.mean(n**2) * 2) == pytest.approx(1e-3, rel=0.1)


def test_augment_is_deterministic_and_pure(cubic_cif) -> None:
    s = sticks(load_crystal(cubic_cif), q_max=8.0)
    q0, i0 = s.q.copy(), s.intensity.copy()
    aug = Augment(p_truncate=1.0)
    a = augment_sticks(s.q, s.intensity, aug, np.random.default_rng(5), 8.0)
    b = augment_sticks(s.q, s.intensity, aug, np.random.default_rng(5), 8.0)
    c = augment_sticks(s.q, s.intensity, aug, np.random.default_rng(6), 8.0)
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2] and a[2] != c[2]
    np.testing.assert_array_equal(s.q, q0)
    np.testing.assert_array_equal(s.intensity, i0)
    q, inten, q_limit = a
    assert 4.5 <= q_limit <= 8.0 and np.array_equal(q, q0)
    # The detection limit zeroes weak sticks relative to the strongest inside the measured range.
    kept = inten[(q <= q_limit) & (inten > 0)]
    assert kept.min() >= aug.detect * inten[q <= q_limit].max()
    x = encode_q(q, inten, q_limit=q_limit)
    e1 = shift_and_noise(x, aug, np.random.default_rng(2))
    e2 = shift_and_noise(x, aug, np.random.default_rng(2))
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_array_equal(e1[1], x[1])  # the coverage mask is left alone


def test_thermal_factor_is_debye_waller() -> None:
    q = np.array([0.0, 2.0, 5.0])
    s = q / (4 * np.pi)
    np.testing.assert_allclose(thermal_factor(q, 1.5), np.exp(-2 * 1.5 * s**2))


def test_identity_augment_keeps_sticks() -> None:
    q, inten = np.array([1.0, 2.0, 3.0]), np.array([5.0, 1e-6, 2.0])
    aug = Augment(p_truncate=0.0, b_range=(0.0, 0.0), intensity_sigma=0.0, detect=0.0)
    out_q, out_i, lim = augment_sticks(q, inten, aug, np.random.default_rng(0), 8.0)
    assert lim == 8.0
    np.testing.assert_array_equal(out_q, q)
    np.testing.assert_array_equal(out_i, inten)


def test_peak_group_jacobian_equals_finite_differences() -> None:
    """The analytic Jacobian of a joint peak fit: three overlapping pseudo-Voigts, away from the start."""
    x = np.linspace(20.0, 23.0, 300)
    # areas, centres (deg), FWHMs (deg), etas, offset
    p = np.array([5.0, 2.0, 1.0, 21.0, 21.2, 22.1, 0.08, 0.11, 0.06, 0.2, 0.7, 0.5, 3.0])
    y = np.random.default_rng(0).normal(size=x.size)
    numeric = approx_derivative(group_residual, p, method="3-point", args=(x, y, 7.0))
    np.testing.assert_allclose(group_jacobian(p, x, y, 7.0), numeric, rtol=1e-4, atol=1e-6 * np.abs(numeric).max())
