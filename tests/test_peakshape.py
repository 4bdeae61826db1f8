"""Refinable peak profile: shape invariants, TCH widths against the Voigt, and a pattern built independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import voigt_profile

from powdersolve.diffraction.peakshape import (
    PeakProfile,
    ProfileStart,
    asymmetry,
    chebyshev_basis,
    march_dollase,
    pseudo_voigt,
    split_tch,
    tch,
)

T = torch.as_tensor


def _fwhm(x: np.ndarray, y: np.ndarray) -> float:
    """Numerical FWHM of a single peak on a fine grid, interpolated at half maximum."""
    half = y.max() / 2
    i = np.flatnonzero(y >= half)
    lo = np.interp(half, [y[i[0] - 1], y[i[0]]], [x[i[0] - 1], x[i[0]]])
    hi = np.interp(half, [y[i[-1] + 1], y[i[-1]]], [x[i[-1] + 1], x[i[-1]]])
    return float(hi - lo)


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_pseudo_voigt_has_unit_area_and_its_fwhm(eta: float) -> None:
    fwhm = 0.1
    x = np.linspace(-2000 * fwhm, 2000 * fwhm, 4_000_001)
    y = pseudo_voigt(T(x), T(fwhm), T(eta)).numpy()
    # Lorentzian tails beyond +-2000 FWHM hold eta * 2/(pi * 4000) of the area.
    assert np.trapezoid(y, x) == pytest.approx(1 - eta * 2 / (np.pi * 4000), rel=1e-5)
    fine = np.linspace(-0.2, 0.2, 40001)
    assert _fwhm(fine, pseudo_voigt(T(fine), T(fwhm), T(eta)).numpy()) == pytest.approx(fwhm, rel=1e-4)


@pytest.mark.parametrize("h_g,h_l", [(0.08, 0.0), (0.06, 0.03), (0.03, 0.06), (0.01, 0.1)])
def test_tch_fwhm_and_shape_match_the_voigt(h_g: float, h_l: float) -> None:
    """TCH is an approximation of the Voigt (Gaussian * Lorentzian): width within 1%, shape within 2%."""
    x = np.linspace(-1.5, 1.5, 60001)
    voigt = voigt_profile(x, h_g / (2 * np.sqrt(2 * np.log(2))), h_l / 2)
    fwhm, eta = tch(T(h_g), T(h_l))
    assert float(fwhm) == pytest.approx(_fwhm(x, voigt), rel=0.01)
    approx = pseudo_voigt(T(x), fwhm, eta).numpy()
    assert np.abs(approx - voigt).max() < 0.02 * voigt.max()
    # The Ida inverse takes the combined peak back to its parts.
    g2, l2 = split_tch(float(fwhm), float(eta))
    assert (g2, l2) == pytest.approx((h_g, h_l), abs=0.02 * float(fwhm))


def test_asymmetry_keeps_area_and_is_one_when_off() -> None:
    x = np.linspace(-3, 3, 60001)
    fwhm, theta = T(0.1), T(np.radians(10.0))
    base = pseudo_voigt(T(x), fwhm, T(0.5))
    assert torch.equal(asymmetry(T(x), fwhm, theta, torch.zeros(4)) * base, base)
    skew = (asymmetry(T(x), fwhm, theta, T([0.02, 0.005, 0.0, 0.0])) * base).numpy()
    assert np.trapezoid(skew, x) == pytest.approx(np.trapezoid(base.numpy(), x), rel=1e-9)
    # Positive P1 at low angle moves intensity to the high-angle side.
    assert np.trapezoid(skew * x, x) > 1e-4


def test_march_dollase_is_normalised_over_the_sphere() -> None:
    cos_a = np.linspace(-1, 1, 200001)  # uniform in cos(alpha) = uniform on the sphere
    for r in (0.6, 1.0, 1.7):
        w = march_dollase(T(cos_a**2), T(r)).numpy()
        assert np.trapezoid(w, cos_a) / 2 == pytest.approx(1.0, rel=1e-6)
    assert float(march_dollase(T(0.3), T(1.0))) == 1.0


def test_chebyshev_basis_on_the_scan() -> None:
    tt = np.linspace(10, 50, 5)
    b = chebyshev_basis(tt, 3).numpy()
    x = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(b, np.stack([np.ones(5), x, 2 * x**2 - 1], axis=1))


def test_profile_matches_an_independently_built_pattern() -> None:
    """Two reflections, K-alpha1 + K-alpha2, zero shift and displacement, against a sum built here."""
    lam1, lam2 = 1.54056, 1.54439
    tt = np.arange(20.0, 100.0, 0.005)
    d = np.array([2.8, 1.2])
    inten = np.array([1000.0, 300.0])
    zero, disp = 0.03, -0.05
    fwhm, eta = 0.09, 0.4
    start = ProfileStart.from_pseudo_voigt(fwhm**2, eta, zero=zero, displacement=disp,
                                           lines=((lam1, 1.0), (lam2, 0.5)), window_fwhm=0)
    got, pos = PeakProfile(tt, start).render(T(1 / d**2), T(inten))
    expect = np.zeros_like(tt)
    for lam, wt in ((lam1, 1.0), (lam2, 0.5)):
        th = np.arcsin(lam / (2 * d))
        lp = (1 + np.cos(2 * th) ** 2) / (np.sin(th) ** 2 * np.cos(th))
        centre = np.degrees(2 * th) + zero + disp * np.cos(th)
        for c, a in zip(centre, wt * inten * lp):
            z2 = (2 * (tt - c) / fwhm) ** 2
            expect += a * (eta * 2 / (np.pi * fwhm) / (1 + z2)
                           + (1 - eta) * np.sqrt(4 * np.log(2) / np.pi) / fwhm * np.exp(-np.log(2) * z2))
    np.testing.assert_allclose(pos.numpy(), np.degrees(2 * np.arcsin(lam1 / (2 * d))) + zero
                               + disp * np.cos(np.arcsin(lam1 / (2 * d))), atol=1e-12)
    # Start from (FWHM, eta) goes through the TCH split and back: shapes agree to ~1%.
    assert np.abs(got.numpy() - expect).max() < 0.015 * expect.max()
    assert np.trapezoid(got.numpy(), tt) == pytest.approx(np.trapezoid(expect, tt), rel=0.005)


def test_windowed_peaks_carry_gradients() -> None:
    tt = np.arange(20.0, 60.0, 0.01)
    prof = PeakProfile(tt, ProfileStart(w=0.004, x=0.02))
    prof.p_gauss.requires_grad_(True)
    y, _ = prof.render(T(1 / np.array([3.0, 2.0]) ** 2), T([1.0, 2.0]))
    (y**2).sum().backward()
    assert prof.p_gauss.grad is not None and torch.all(torch.isfinite(prof.p_gauss.grad))
