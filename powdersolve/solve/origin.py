"""Place a solved structure at the origin (and hand) of a predicted map.

A crystal's origin is a convention: the same structure can be written with any of the origins its
space group allows (the Euclidean normalizer: fcc Al with its atom at 0 or at (1/2, 0, 0)), polar
groups have a free origin along their axis, and a powder pattern cannot tell a structure from its
inverse. The refinement returns whichever of these its starting map led to. The network was trained
on one convention (the standard settings of its training data), so its map is the best guide to the
origin a user expects: :func:`align_to_map` moves the structure to the origin and hand that
overlay it best on the map. Nothing about the structure changes but its coordinates.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Structure
from scipy.optimize import minimize

from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import InputError
from powdersolve.structures.crystal import Crystal

SEARCH_STEPS = 48  # origins tried per axis before the continuous refinement: multiples of 1/48


def _coefficients(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Miller indices (K, 3) and Fourier coefficients (K,) of a grid, rho(x) = sum_h C_h exp(-2 pi i h.x)."""
    n = grid.shape[0]
    c = np.fft.ifftn(grid)
    f = np.rint(np.fft.fftfreq(n) * n).astype(int)
    h = np.stack(np.meshgrid(f, f, f, indexing="ij"), -1).reshape(-1, 3)
    return h, c.reshape(-1)


def best_shift(target: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, float]:
    """Fractional shift t (3,) maximising the correlation of ``moving(x - t)`` with ``target(x)``, and that
    correlation (both grids (N, N, N) on the same cell, voxel i at i/N).

    The shift is found on a 1/48 lattice by one FFT, then refined continuously, so origins such as 1/3 or
    a polar axis' free offset are not rounded to voxels.
    """
    if target.shape != moving.shape or target.ndim != 3 or len(set(target.shape)) != 1:
        raise InputError(f"grids {target.shape} and {moving.shape} must be the same cube")
    h, ct = _coefficients(np.asarray(target, dtype=np.float64))
    _, cm = _coefficients(np.asarray(moving, dtype=np.float64))
    a = ct * np.conj(cm)
    a[np.all(h == 0, axis=1)] = 0.0  # the means carry no origin information
    keep = np.abs(a) > 1e-12 * max(np.abs(a).max(), 1e-300)
    h, a = h[keep], a[keep]
    if len(a) == 0:  # a flat map: every origin is as good
        return np.zeros(3), 0.0
    m = SEARCH_STEPS
    folded = np.zeros((m, m, m), dtype=np.complex128)
    idx = np.mod(h, m)
    np.add.at(folded, (idx[:, 0], idx[:, 1], idx[:, 2]), a)
    # moving(x - t) has coefficients C_h exp(2 pi i h.t); the overlap is Re sum_h a_h exp(-2 pi i h.t).
    overlap = np.fft.fftn(folded).real
    k = np.array(np.unravel_index(int(np.argmax(overlap)), overlap.shape), dtype=np.float64)

    def negative(t: np.ndarray) -> float:
        return -float(np.real(np.sum(a * np.exp(-2j * np.pi * (h @ t)))))

    res = minimize(negative, k / m, method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-12})
    t = np.mod(res.x, 1.0)
    norm = np.sqrt(np.sum(np.abs(ct[1:]) ** 2) * np.sum(np.abs(cm[1:]) ** 2))
    return t, (-res.fun / norm if norm > 0 else 0.0)


def align_to_map(structure: Structure, grid: np.ndarray, b_iso: float = 8.0, inversion: bool = True) -> Structure:
    """The structure moved to the origin (and, with ``inversion``, the hand) that best overlays its CMED on
    ``grid``, a density of the same cell (e/A^3, fractional axes of the structure's lattice)."""
    n = np.asarray(grid).shape[0]
    cfg = DensityConfig(b_iso=b_iso, grid=n)
    options = [structure]
    if inversion:
        inverted = structure.copy()
        for i, site in enumerate(structure):
            inverted.replace(i, site.species, -site.frac_coords, properties=site.properties)
        options.append(inverted)
    fits = [best_shift(grid, density_grid(Crystal.from_structure(s, 1), cfg)) for s in options]
    pick = int(np.argmax([cc for _, cc in fits]))  # ties keep the structure as given
    moved = options[pick].copy()
    moved.translate_sites(list(range(len(moved))), fits[pick][0], frac_coords=True, to_unit_cell=True)
    return moved
