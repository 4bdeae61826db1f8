"""Measured peaks on a map's reciprocal grid, and a peak's intensity shared among its reflections.

A powder peak measures the sum of |F(h)|^2 over the reflections at one d-spacing. Density modification and
charge flipping both need per-reflection magnitudes: each peak's intensity is shared among the grid
reflections under it in proportion to the current map's |F|^2 (equally where the map has none), the
intensity-partition rule of Rietveld's decomposition formula.

Conventions: grids are N^3 maps of a cell with row-vector lattice (A); Q = 2 pi / d (1/A); peak
intensities are |F|^2-like sums without Lorentz factor, on any scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powdersolve.density import grid_q
from powdersolve.diffraction.peaks import peak_membership, reflections_per_peak
from powdersolve.diffraction.sticks import Sticks
from powdersolve.errors import ModificationError
from powdersolve.scattering import reflection_q


@dataclass(frozen=True)
class MeasuredPeaks:
    """A pattern's picked peaks as the maps use them.

    Attributes:
        q: (n,) peak positions Q = 2 pi / d (1/A).
        intensity: (n,) |F|^2-like intensities (Lorentz-polarisation removed), any scale.
        q_limit: upper edge of the measured range (1/A): a reflection below it under no peak is absent.
    """

    q: np.ndarray
    intensity: np.ndarray
    q_limit: float

    @classmethod
    def from_sticks(cls, sticks: Sticks, q_limit: float) -> MeasuredPeaks:
        """Exact stick intensities (:func:`powdersolve.diffraction.sticks`) as peaks measured to ``q_limit`` (1/A)."""
        return cls(sticks.q, sticks.intensity, float(q_limit))


@dataclass(frozen=True)
class PeaksOnGrid:
    """Measured peaks on the reciprocal grid of an N^3 map (numpy FFT layout, (N, N, N) arrays).

    Attributes:
        q: Q (1/A) of every coefficient; measured: 0 < Q <= the measured limit;
        member: index of the peak each coefficient lies under, -1 for none (or unmeasured);
        on_grid: per peak, the grid's coefficients under it; peak_on_grid: per peak, the part of its
            intensity the grid holds (reflections beyond the grid's Nyquist index drop their share).
    """

    q: np.ndarray
    measured: np.ndarray
    member: np.ndarray
    on_grid: np.ndarray
    peak_on_grid: np.ndarray


def peaks_on_grid(n: int, lattice: np.ndarray, peaks: MeasuredPeaks, tol: float, what: str) -> PeaksOnGrid:
    """Where the measured ``peaks`` within their range fall on the N^3 grid of a cell (row vectors, A),
    matched within ``tol`` (1/A). Raises :class:`ModificationError`, naming ``what``, when none falls on a
    reflection of the cell."""
    peak_q = np.asarray(peaks.q, dtype=np.float64)
    peak_i = np.asarray(peaks.intensity, dtype=np.float64)
    q_limit = float(peaks.q_limit)
    keep = (peak_q > 0) & (peak_q <= q_limit + tol) & (peak_i > 0)
    peak_q, peak_i = peak_q[keep], peak_i[keep]
    q = grid_q(n, lattice)
    measured = (q <= q_limit) & (q > 0)
    member = np.where(measured, peak_membership(q, peak_q, tol), -1)
    if not (member >= 0).any():
        raise ModificationError(f"{what}: no peak falls on a reflection of the cell")
    on_grid = np.bincount(member[member >= 0], minlength=len(peak_q))
    q_all = reflection_q(lattice, peak_q.max(initial=0.0) + 2 * tol)
    total = np.maximum(reflections_per_peak(q_all, peak_q, tol), on_grid)
    return PeaksOnGrid(q, measured, member, on_grid, peak_i * on_grid / np.maximum(total, 1))


def shared_magnitudes(power: np.ndarray, idx: np.ndarray, weight: np.ndarray, on_grid: np.ndarray,
                      peak_on_grid: np.ndarray) -> np.ndarray:
    """Magnitudes |F| (square root of the peak's intensity units) of the grid coefficients: each peak's
    intensity on the grid shared in proportion to ``power`` (equally where its reflections have none).

    Args:
        power: (..., *G) the current map's |F|^2 at each coefficient of a reciprocal layout G (full or the
            rfftn half); leading axes are maps, each shared on its own.
        idx: (*G) the peak each coefficient lies under (any index where ``weight`` is 0).
        weight: (*G) reflections each coefficient stands for (1 in the full layout, 2 for a half-layout
            coefficient that also stands for its Friedel mate), 0 off the peaks.
        on_grid, peak_on_grid: per peak, its reflections on the grid and the intensity they hold
            (:class:`PeaksOnGrid`).

    Returns:
        (..., *G) magnitudes, 0 off the peaks.
    """
    idx = np.asarray(idx)
    lead = power.shape[: power.ndim - idx.ndim]
    weighted = (power * weight).reshape(-1, idx.size)
    flat = idx.ravel()
    share = np.stack([np.bincount(flat, weights=w, minlength=len(on_grid)) for w in weighted])
    share = share.reshape(*lead, len(on_grid))[..., idx]
    frac = np.where(share > 0, power / np.maximum(share, 1e-300), 1.0 / np.maximum(on_grid[idx], 1))
    return np.sqrt(np.maximum(peak_on_grid[idx] * frac, 0.0)) * (weight > 0)
