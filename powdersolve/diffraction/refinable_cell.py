"""Refinable unit cell (torch, float64): lattice parameters tied by crystal system, and 1/d^2 of reflections.

Lengths in Angstrom, angles in degrees, 1/d^2 in 1/A^2. Parameters are stored as scaled changes from the
starting cell so that L-BFGS sees a well-conditioned problem.
"""

from __future__ import annotations

import numpy as np
import torch

_DT = torch.float64
_SCALE_LEN = 5e-4  # relative length change
_SCALE_ANG = 0.05  # degrees


def lattice_ties(lengths: np.ndarray, angles: np.ndarray, system: str) -> tuple[np.ndarray, np.ndarray]:
    """Parameter index of each length and each angle (-1: fixed) for a crystal system.

    Assumes the conventional standard setting (pymatgen/spglib): unique axes along c, trigonal
    R groups in hexagonal axes unless the cell is rhombohedral (a = b = c, equal angles != 90).
    """
    rhombo = system == "trigonal" and np.ptp(lengths) < 1e-6 * lengths[0] and abs(angles[0] - 90) > 1e-3 \
        and np.ptp(angles) < 1e-6
    if system == "cubic":
        return np.array([0, 0, 0]), np.array([-1, -1, -1])
    if rhombo:
        return np.array([0, 0, 0]), np.array([0, 0, 0])
    if system in ("tetragonal", "hexagonal", "trigonal"):
        return np.array([0, 0, 1]), np.array([-1, -1, -1])
    if system == "orthorhombic":
        return np.array([0, 1, 2]), np.array([-1, -1, -1])
    if system == "monoclinic":
        free = np.abs(angles - 90) > 1e-4
        return np.array([0, 1, 2]), np.where(free, np.cumsum(free) - 1, -1)
    return np.array([0, 1, 2]), np.array([0, 1, 2])


def metric_ties(lengths: np.ndarray, angles: np.ndarray, length_tol: float = 1e-6, angle_tol: float = 1e-4
                ) -> tuple[np.ndarray, np.ndarray]:
    """Ties that keep every equality of the cell as it is: equal lengths (relative ``length_tol``) share a
    parameter, angles at 60, 90 or 120 degrees (``angle_tol`` degrees) are fixed, and equal free angles share one.

    In any setting these keep the metric's own symmetry, e.g. a cubic lattice described by a P1 structure
    in its cube (or a Niggli cell with 60 degree angles) stays cubic. Same format as :func:`lattice_ties`.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    angles = np.asarray(angles, dtype=np.float64)
    length_tie = _share(lengths, np.abs(lengths[:, None] - lengths[None, :]) <= length_tol * lengths.max())
    fixed = np.any(np.abs(angles[:, None] - np.array([60.0, 90.0, 120.0])[None, :]) <= angle_tol, axis=1)
    angle_tie = np.full(3, -1)
    free = np.flatnonzero(~fixed)
    if len(free):
        angle_tie[free] = _share(angles[free], np.abs(angles[free, None] - angles[None, free]) <= angle_tol)
    return length_tie, angle_tie


def _share(values: np.ndarray, equal: np.ndarray) -> np.ndarray:
    """Parameter index per value: the first value of each run of mutually ``equal`` ones numbers it."""
    index = np.full(len(values), -1)
    n = 0
    for i in range(len(values)):
        if index[i] < 0:
            index[(index < 0) & equal[i]] = n
            n += 1
    return index


def _combined(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Ties that hold both sets of ties (-1: fixed by either); parameters renumbered from 0 in order."""
    fixed = (first < 0) | (second < 0)
    out = np.full(len(first), -1)
    n = 0
    for i in np.flatnonzero(~fixed):
        if out[i] < 0:
            same = ~fixed & (out < 0) & ((first == first[i]) | (second == second[i]))
            out[same] = n
            n += 1
    return out


def metric(lengths: torch.Tensor, angles_deg: torch.Tensor) -> torch.Tensor:
    """Real-space metric tensor G_ij = a_i a_j cos(angle_ij) (A^2)."""
    ca = torch.cos(torch.deg2rad(angles_deg))  # alpha (b,c), beta (a,c), gamma (a,b)
    a, b, c = lengths
    return torch.stack([
        torch.stack([a * a, a * b * ca[2], a * c * ca[1]]),
        torch.stack([a * b * ca[2], b * b, b * c * ca[0]]),
        torch.stack([a * c * ca[1], b * c * ca[0], c * c]),
    ])


class RefinableCell(torch.nn.Module):
    """Lattice parameters of one crystal system around a starting cell (A, degrees).

    With ``keep_metric`` the cell also keeps every equality of its start (:func:`metric_ties`): a structure
    read in a lower space group than its lattice's then refines in the lattice's metric.
    """

    def __init__(self, lengths: np.ndarray, angles: np.ndarray, system: str, keep_metric: bool = False) -> None:
        super().__init__()
        self.l0 = np.asarray(lengths, dtype=np.float64)
        self.a0 = np.asarray(angles, dtype=np.float64)
        self.len_tie, self.ang_tie = lattice_ties(self.l0, self.a0, system)
        if keep_metric:
            own_len, own_ang = metric_ties(self.l0, self.a0)
            self.len_tie, self.ang_tie = _combined(self.len_tie, own_len), _combined(self.ang_tie, own_ang)
        # Frozen until a fit switches the gradient on.
        n_len, n_ang = int(self.len_tie.max()) + 1, max(int(self.ang_tie.max()) + 1, 0)
        self.p_len = torch.nn.Parameter(torch.zeros(n_len, dtype=_DT), requires_grad=False)
        self.p_ang = torch.nn.Parameter(torch.zeros(n_ang, dtype=_DT), requires_grad=False)

    @property
    def n_free(self) -> int:
        """Independent lattice parameters."""
        return self.p_len.numel() + self.p_ang.numel()

    def lattice_parameters(self, relative: np.ndarray | None = None, angle_shift: np.ndarray | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b, c) in A and (alpha, beta, gamma) in degrees; ``relative`` replaces the refined length changes
        and ``angle_shift`` (degrees) the refined angle changes."""
        l0 = torch.as_tensor(self.l0)
        tie = torch.as_tensor(self.len_tie)
        rel = _SCALE_LEN * self.p_len if relative is None else torch.as_tensor(relative, dtype=_DT)
        lengths = l0 * (1 + rel[tie])
        ang = torch.as_tensor(self.a0).clone()
        free = torch.as_tensor(self.ang_tie >= 0)
        if free.any():
            shift = _SCALE_ANG * self.p_ang if angle_shift is None else torch.as_tensor(angle_shift, dtype=_DT)
            ang = torch.where(free, ang + shift[torch.as_tensor(np.maximum(self.ang_tie, 0))], ang)
        return lengths, ang

    def q2(self, hkl: torch.Tensor, relative: np.ndarray | None = None, angle_shift: np.ndarray | None = None
           ) -> torch.Tensor:
        """1/d^2 (1/A^2) of each row of ``hkl`` (float tensor)."""
        gstar = torch.linalg.inv(metric(*self.lattice_parameters(relative, angle_shift)))
        return torch.einsum("mi,ij,mj->m", hkl, gstar, hkl)

    def equal_d_groups(self, hkl: torch.Tensor) -> np.ndarray:
        """Group label per reflection: equal d now and after a random change of the free lengths and angles.

        Reflections that coincide for every allowed metric cannot be told apart by any profile fit.
        """
        with torch.no_grad():
            q_now = self.q2(hkl).numpy()
            rng = np.random.default_rng(0)
            q_other = self.q2(hkl, rng.uniform(0.01, 0.03, self.p_len.numel()),
                              rng.uniform(0.5, 1.5, self.p_ang.numel())).numpy()
        keys = np.stack([np.round(np.log(q_now) * 1e7), np.round(np.log(q_other) * 1e7)], axis=1)
        _, group = np.unique(keys, axis=0, return_inverse=True)
        return group.ravel()
