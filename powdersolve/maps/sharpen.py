"""Atomicity sharpening of a predicted density map (post-processing, not the network).

A network trained with an L2 loss shrinks the Fourier coefficients it is unsure of, so its maps have
peaks that are too low and broad plus a background ripple. Raising the non-negative part of the map
to a power p > 1 sharpens atoms (an electron density is a sum of peaked, positive atoms; Sayre's
squaring argument) and flattens the ripple; a Gaussian blur of Debye-Waller factor ``b_blur`` then
gives the peaks back the width of the B = 8 A^2 target. The map's electron count is kept.
"""

from __future__ import annotations

import numpy as np

from powdersolve.density import grid_q
from powdersolve.errors import InputError


def gaussian_blur(grids: np.ndarray, lattice: np.ndarray, b: float) -> np.ndarray:
    """Grids (..., N, N, N) on fractional coordinates convolved with exp(-b s^2 / 4) in reciprocal space.

    ``lattice``: (3, 3) row vectors in A; ``b``: Debye-Waller factor in A^2 (s = 1/d in 1/A).
    """
    s = grid_q(grids.shape[-1], lattice) / (2 * np.pi)
    damp = np.exp(-b * s**2 / 4.0)
    return np.fft.ifftn(np.fft.fftn(grids, axes=(-3, -2, -1)) * damp, axes=(-3, -2, -1)).real


def sharpen_map(grids: np.ndarray, lattice: np.ndarray, power: float = 1.5, b_blur: float = 2.0) -> np.ndarray:
    """Sharpened density (e/A^3), same shape as ``grids`` (..., N, N, N).

    Each map's negative density is set to 0, the rest raised to ``power``, scaled back to the map's
    own mean (its electron count per volume) and blurred by ``b_blur`` (A^2). ``power`` 1 with
    ``b_blur`` 0 only clips negative density.
    """
    if power < 1 or b_blur < 0:
        raise InputError(f"sharpening needs power >= 1 and blur B >= 0 (got {power}, {b_blur})")
    g = np.asarray(grids, dtype=np.float64)
    pos = np.maximum(g, 0.0) ** power
    axes = (-3, -2, -1)
    scale = g.mean(axis=axes, keepdims=True) / np.maximum(pos.mean(axis=axes, keepdims=True), 1e-12)
    out = pos * scale
    return gaussian_blur(out, lattice, b_blur) if b_blur > 0 else out
