"""X-ray atomic form factors and structure factors: the one physics table every target shares.

Form factors are the International Tables Vol. C (IT92) four-Gaussian fits for neutral atoms,
read from gemmi::

    f(s) = sum_i a_i exp(-b_i s^2) + c,    s = sin(theta) / lambda = q / 2  (1/Angstrom)

where ``q = |G| = 1/d`` is the reciprocal-vector length without 2 pi. Because every term is a
Gaussian, the same coefficients give an analytic real-space atomic density (see
:mod:`powdersolve.density`), so the pattern and the density are consistent by construction.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from powdersolve.errors import InputError
from powdersolve.structures.crystal import Crystal

#: Highest atomic number with an IT92 form factor.
MAX_Z = 98


@lru_cache(maxsize=1)
def _it92_table() -> np.ndarray:
    import gemmi

    table = np.full((MAX_Z + 1, 9), np.nan)
    for z in range(1, MAX_Z + 1):
        el = gemmi.Element(z)
        table[z] = el.it92.get_coefs()
    return table


def form_factor_coefficients(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IT92 coefficients (a (n,4), b (n,4) in Angstrom^2, c (n,)) for atomic numbers ``numbers``."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if numbers.size and (numbers.min() < 1 or numbers.max() > MAX_Z):
        bad = int(numbers[(numbers < 1) | (numbers > MAX_Z)][0])
        raise InputError(f"element with Z={bad} has no X-ray form factor (supported: Z 1-{MAX_Z})")
    t = _it92_table()[numbers]
    return t[:, 0:4], t[:, 4:8], t[:, 8]


def form_factor(numbers: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Atomic form factors f(s) in electrons, shape (len(numbers), len(s2)); ``s2`` = (sin th/lambda)^2."""
    a, b, c = form_factor_coefficients(numbers)
    s2 = np.asarray(s2, dtype=np.float64)
    return np.einsum("ni,nim->nm", a, np.exp(-b[:, :, None] * s2[None, None, :])) + c[:, None]


def wilson_sum(numbers: np.ndarray, occupancy: np.ndarray, q: np.ndarray, b_iso: float = 0.0) -> float:
    """Sum over reflections at ``q`` (Q = 2 pi / d, 1/A) of sum_j (occ_j f_j)^2 exp(-2 B s^2)
    (electrons^2): the expected sum of |F|^2 of atoms at random positions (Wilson 1942), at rest by
    default or with Debye-Waller B = ``b_iso`` (A^2)."""
    zs, inverse = np.unique(np.asarray(numbers), return_inverse=True)
    weight = np.bincount(inverse, weights=np.asarray(occupancy, dtype=np.float64) ** 2)
    s2 = (np.asarray(q, dtype=np.float64) / (4 * np.pi)) ** 2
    f = form_factor(zs, s2)
    return float((weight[:, None] * f**2).sum(0) @ np.exp(-2.0 * b_iso * s2))


def hkl_sphere(reciprocal: np.ndarray, q_max: float) -> np.ndarray:
    """All integer (h, k, l) with reciprocal-vector length |h a* + k b* + l c*| <= ``q_max`` (1/A).

    ``reciprocal`` holds a*, b*, c* as rows (1/Angstrom, no 2 pi). Includes (0, 0, 0).
    """
    # |h_i| <= q_max * |a_i| bounds each index (the real-space axis length times q_max).
    real = np.linalg.inv(reciprocal).T
    lim = np.floor(q_max * np.linalg.norm(real, axis=1) + 1e-9).astype(int)
    if np.prod(2 * lim + 1) > 5e7:
        raise InputError(f"q_max {q_max:g} 1/A needs too many reflections for this cell")
    ranges = [np.arange(-n, n + 1) for n in lim]
    hkl = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
    q = np.linalg.norm(hkl @ reciprocal, axis=1)
    return hkl[q <= q_max + 1e-12]


def reflection_q(lattice: np.ndarray, q_max: float) -> np.ndarray:
    """Sorted Q = 2 pi / d (1/A) of every reflection of a cell (row-vector ``lattice``, A), full sphere
    without (0, 0, 0), up to ``q_max`` (1/A)."""
    recip = np.linalg.inv(np.asarray(lattice, dtype=np.float64)).T
    hkl = hkl_sphere(recip, q_max / (2 * np.pi))
    return np.sort(2 * np.pi * np.linalg.norm(hkl[np.any(hkl != 0, axis=1)] @ recip, axis=1))


def structure_factors(
    crystal: Crystal,
    hkl: np.ndarray,
    b_iso: float = 0.0,
    chunk: int = 4_000_000,
) -> np.ndarray:
    """Structure factors F(hkl) in electrons (complex128), occupancy-weighted.

    F(h) = sum_j occ_j f_j(s) exp(-B s^2) exp(+2 pi i h . x_j), with s = |G(h)| / 2 and ``b_iso``
    the overall isotropic displacement parameter B in Angstrom^2.
    """
    hkl = np.asarray(hkl, dtype=np.float64).reshape(-1, 3)
    q2 = np.sum((hkl @ crystal.reciprocal) ** 2, axis=1)
    s2 = q2 / 4.0
    species, inverse = np.unique(crystal.numbers, return_inverse=True)
    f = form_factor(species, s2) * np.exp(-b_iso * s2)[None, :]  # (n_species, m)
    out = np.zeros(len(hkl), dtype=np.complex128)
    step = max(1, chunk // max(1, len(crystal.numbers)))
    for start in range(0, len(hkl), step):
        sl = slice(start, start + step)
        phase = np.exp(2j * np.pi * (hkl[sl] @ crystal.frac.T))  # (m, n)
        weighted = phase * crystal.occupancy[None, :]
        # Sum atoms of one species first, then apply that species' form factor.
        per_species = np.zeros((len(species), phase.shape[0]), dtype=np.complex128)
        np.add.at(per_species, inverse, weighted.T)
        out[sl] = np.sum(per_species * f[:, sl], axis=0)
    return out
