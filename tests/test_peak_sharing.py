"""A peak's intensity shared among its reflections: it is conserved, follows the map's |F|^2, is equal where the
map has none, and a half-layout spectrum shares as its full layout does."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import fft

from powdersolve.maps.peak_sharing import MeasuredPeaks, peaks_on_grid, shared_magnitudes

N = 12
LATTICE = np.diag([4.0, 4.0, 4.0])


def _on_grid():
    # Cubic 4 A cell: peaks at (100), (110), (111), (200) with intensities 1, 2, 3, 4.
    q = 2 * np.pi / 4.0 * np.sqrt([1, 2, 3, 4])
    return peaks_on_grid(N, LATTICE, MeasuredPeaks(q, np.array([1.0, 2.0, 3.0, 4.0]), q.max() + 0.01), 1e-3, "test")


def test_intensity_is_conserved_and_follows_the_map() -> None:
    g = _on_grid()
    hit = g.member >= 0
    idx = np.where(hit, g.member, 0)
    power = np.random.default_rng(0).random((2, N, N, N)) * hit
    mag = shared_magnitudes(power, idx, hit.astype(float), g.on_grid, g.peak_on_grid)
    for m, p in zip(mag, power, strict=True):
        per_peak = np.bincount(idx[hit], weights=(m**2)[hit], minlength=4)
        assert per_peak == pytest.approx(g.peak_on_grid)
        # Within a peak, |F|^2 is proportional to the map's.
        sel = hit & (idx == 1)
        assert (m[sel] ** 2 / p[sel]) == pytest.approx(np.full(sel.sum(), (m[sel] ** 2 / p[sel])[0]))
    assert (mag[:, ~hit] == 0).all()


def test_equal_shares_where_the_map_has_none() -> None:
    g = _on_grid()
    hit = g.member >= 0
    idx = np.where(hit, g.member, 0)
    mag = shared_magnitudes(np.zeros((N, N, N)), idx, hit.astype(float), g.on_grid, g.peak_on_grid)
    sel = hit & (idx == 2)  # (111): 8 reflections
    assert g.on_grid[2] == 8
    assert mag[sel] == pytest.approx(np.sqrt(3.0 / 8))


def test_the_half_layout_shares_as_the_full_one() -> None:
    g = _on_grid()
    hit = g.member >= 0
    idx = np.where(hit, g.member, 0)
    rho = np.random.default_rng(1).random((N, N, N))
    full = fft.fftn(rho)
    half = fft.rfftn(rho)
    weight = np.full(half.shape, 2.0)
    weight[..., 0] = weight[..., -1] = 1.0
    h_hit = hit[..., : N // 2 + 1]
    mag_full = shared_magnitudes(np.abs(full) ** 2, idx, hit.astype(float), g.on_grid, g.peak_on_grid)
    mag_half = shared_magnitudes(np.abs(half) ** 2, idx[..., : N // 2 + 1], weight * h_hit, g.on_grid,
                                 g.peak_on_grid)
    assert mag_half == pytest.approx(mag_full[..., : N // 2 + 1])
