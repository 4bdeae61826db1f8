"""Reciprocal metric of a cell, its parameterisation per crystal system, and the lines it predicts.

Every lattice is linear in the six reciprocal-metric coefficients of
``Q = 1/d^2 = h^2 A + k^2 B + l^2 C + hk D + hl E + kl F`` (1/Angstrom^2). A crystal system fixes
some of them: its free parameters ``p`` (n of them) map to the six by ``p6 = M @ p`` with the
(6, n) matrix :data:`PARAM_MAPS`. Conventional settings: hexagonal/rhombohedral cells in the
hexagonal setting (gamma 120 deg, R obverse), monoclinic with unique axis b.
"""

from __future__ import annotations

import numpy as np

#: Crystal systems in order of decreasing symmetry; 'trigonal' means a rhombohedral (R) lattice.
SYSTEMS = ("cubic", "hexagonal", "trigonal", "tetragonal", "orthorhombic", "monoclinic", "triclinic")
#: Lattice centrings searched per system (A/B centred cells are C-centred ones with the axes renamed).
CENTRINGS = {
    "cubic": ("P", "I", "F"),
    "hexagonal": ("P",),
    "trigonal": ("R",),
    "tetragonal": ("P", "I"),
    "orthorhombic": ("P", "C", "I", "F"),
    "monoclinic": ("P", "C"),
    "triclinic": ("P",),
}
#: Lattice family whose metric parameterisation a system uses.
FAMILY = {"trigonal": "hexagonal"}

_E = np.eye(6)
#: p6 = M @ p for each metric family (columns: the free parameters).
PARAM_MAPS = {
    "cubic": np.array([[1, 1, 1, 0, 0, 0]], dtype=np.float64).T,
    "hexagonal": np.array([[1, 1, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]], dtype=np.float64).T,
    "tetragonal": np.array([[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]], dtype=np.float64).T,
    "orthorhombic": _E[:, :3].copy(),
    "monoclinic": _E[:, [0, 1, 2, 4]].copy(),
    "triclinic": _E.copy(),
}

#: Rows: primitive lattice vectors in terms of the conventional ones for each centring.
TO_PRIMITIVE = {
    "P": np.eye(3),
    "A": np.array([[1, 0, 0], [0, 0.5, 0.5], [0, -0.5, 0.5]]),
    "B": np.array([[0.5, 0, 0.5], [0, 1, 0], [-0.5, 0, 0.5]]),
    "C": np.array([[0.5, 0.5, 0], [-0.5, 0.5, 0], [0, 0, 1]]),
    "I": np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]]),
    "F": np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]),
    "R": np.array([[2 / 3, 1 / 3, 1 / 3], [-1 / 3, 1 / 3, 1 / 3], [-1 / 3, -2 / 3, 1 / 3]]),
}


def param_map(system: str) -> np.ndarray:
    """(6, n) matrix taking the system's free parameters to (A, B, C, D, E, F)."""
    return PARAM_MAPS[FAMILY.get(system, system)]


def design(hkl: np.ndarray) -> np.ndarray:
    """(K, 6) rows (h^2, k^2, l^2, hk, hl, kl) of integer indices (K, 3)."""
    h, k, l = (hkl[..., i].astype(np.float64) for i in range(3))
    return np.stack([h * h, k * k, l * l, h * k, h * l, k * l], axis=-1)


def allowed(hkl: np.ndarray, centring: str) -> np.ndarray:
    """Boolean mask of the reflections a lattice centring allows (R: obverse, hexagonal setting)."""
    h, k, l = hkl[..., 0], hkl[..., 1], hkl[..., 2]
    if centring == "P":
        return np.ones(h.shape, dtype=bool)
    if centring == "A":
        return (k + l) % 2 == 0
    if centring == "B":
        return (h + l) % 2 == 0
    if centring == "C":
        return (h + k) % 2 == 0
    if centring == "I":
        return (h + k + l) % 2 == 0
    if centring == "F":
        return ((h + k) % 2 == 0) & ((h + l) % 2 == 0)
    if centring == "R":
        return (-h + k + l) % 3 == 0
    raise ValueError(f"unknown centring {centring}")


def metric_from_p6(p6: np.ndarray) -> np.ndarray:
    """(..., 3, 3) reciprocal metric tensor G* (1/A^2) from (..., 6) coefficients."""
    a, b, c, d, e, f = (p6[..., i] for i in range(6))
    row0 = np.stack([a, d / 2, e / 2], axis=-1)
    row1 = np.stack([d / 2, b, f / 2], axis=-1)
    row2 = np.stack([e / 2, f / 2, c], axis=-1)
    return np.stack([row0, row1, row2], axis=-2)


def p6_from_lattice(lattice: np.ndarray) -> np.ndarray:
    """(6,) coefficients of a cell given as (3, 3) rows a, b, c (Angstrom)."""
    gs = np.linalg.inv(lattice @ lattice.T)
    return np.array([gs[0, 0], gs[1, 1], gs[2, 2], 2 * gs[0, 1], 2 * gs[0, 2], 2 * gs[1, 2]])


def cell_from_p6(p6: np.ndarray) -> tuple[float, float, float, float, float, float] | None:
    """(a, b, c, alpha, beta, gamma) in Angstrom and degrees; None unless G* is positive definite."""
    gs = metric_from_p6(np.asarray(p6, dtype=np.float64))
    try:
        np.linalg.cholesky(gs)
    except np.linalg.LinAlgError:
        return None
    g = np.linalg.inv(gs)
    a, b, c = np.sqrt(np.diag(g))
    ang = np.degrees(np.arccos(np.clip([g[1, 2] / (b * c), g[0, 2] / (a * c), g[0, 1] / (a * b)], -1, 1)))
    return float(a), float(b), float(c), float(ang[0]), float(ang[1]), float(ang[2])


def lattice_from_cell(a: float, b: float, c: float, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """(3, 3) rows a, b, c (Angstrom): a along x, b in the xy plane."""
    ca, cb, cg = np.cos(np.radians([alpha, beta, gamma]))
    sg = np.sin(np.radians(gamma))
    cx = cb
    cy = (ca - cb * cg) / sg
    cz = np.sqrt(max(1 - cx * cx - cy * cy, 0.0))
    return np.array([[a, 0, 0], [b * cg, b * sg, 0], [c * cx, c * cy, c * cz]])


def hkl_grid(p6: np.ndarray, q_max: float, max_index: int = 60) -> np.ndarray:
    """All hkl (half space: first non-zero index positive) with Q <= q_max, excluding 000."""
    g = np.linalg.inv(metric_from_p6(p6))
    lim = np.minimum(np.floor(np.sqrt(q_max * np.diag(g)) + 1e-9).astype(int), max_index)
    h = np.arange(0, lim[0] + 1)
    k = np.arange(-lim[1], lim[1] + 1)
    l = np.arange(-lim[2], lim[2] + 1)
    hh, kk, ll = np.meshgrid(h, k, l, indexing="ij")
    hkl = np.stack([hh.ravel(), kk.ravel(), ll.ravel()], axis=1)
    half = (hkl[:, 0] > 0) | ((hkl[:, 0] == 0) & ((hkl[:, 1] > 0) | ((hkl[:, 1] == 0) & (hkl[:, 2] > 0))))
    return hkl[half]


def calc_lines(system: str, centring: str, p: np.ndarray, q_max: float, max_lines: int = 20000
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Distinct calculated Q <= q_max (ascending), a design row (Q = X @ p) and hkl for each.

    None when the cell is not positive definite or predicts more than ``max_lines`` lines.
    """
    mp = param_map(system)
    p6 = mp @ p
    gs = metric_from_p6(p6)
    if not np.all(np.isfinite(gs)) or np.any(np.linalg.eigvalsh(gs) <= 0):
        return None
    g = np.linalg.inv(gs)
    if np.prod(np.sqrt(q_max * np.diag(g)) * 2 + 1) > 40 * max_lines:
        return None
    hkl = hkl_grid(p6, q_max)
    hkl = hkl[allowed(hkl, centring)]
    x6 = design(hkl)
    q = x6 @ p6
    keep = (q <= q_max) & (q > 0)
    q, x6, hkl = q[keep], x6[keep], hkl[keep]
    if q.size > max_lines:
        return None
    order = np.argsort(q, kind="stable")
    q, x6, hkl = q[order], x6[order], hkl[order]
    distinct = np.concatenate([[True], np.diff(q) > 1e-9 * q[1:]]) if q.size else np.zeros(0, bool)
    return q[distinct], (x6 @ mp)[distinct], hkl[distinct]


def nearest(sorted_vals: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of ``sorted_vals`` (non-empty, ascending) to each x."""
    i = np.clip(np.searchsorted(sorted_vals, x), 1, max(sorted_vals.size - 1, 1))
    lo = np.clip(i - 1, 0, sorted_vals.size - 1)
    i = np.clip(i, 0, sorted_vals.size - 1)
    return np.where(np.abs(x - sorted_vals[lo]) <= np.abs(sorted_vals[i] - x), lo, i)


def primitive_lattice(lattice: np.ndarray, centring: str) -> np.ndarray:
    """(3, 3) primitive rows of a conventional cell with the given centring."""
    return TO_PRIMITIVE[centring] @ lattice
