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
    """Lattice parameters of one crystal system around a starting cell (A, degrees)."""

    def __init__(self, lengths: np.ndarray, angles: np.ndarray, system: str) -> None:
        super().__init__()
        self.l0 = np.asarray(lengths, dtype=np.float64)
        self.a0 = np.asarray(angles, dtype=np.float64)
        self.len_tie, self.ang_tie = lattice_ties(self.l0, self.a0, system)
        # Frozen until a fit switches the gradient on.
        n_len, n_ang = int(self.len_tie.max()) + 1, max(int(self.ang_tie.max()) + 1, 0)
        self.p_len = torch.nn.Parameter(torch.zeros(n_len, dtype=_DT), requires_grad=False)
        self.p_ang = torch.nn.Parameter(torch.zeros(n_ang, dtype=_DT), requires_grad=False)

    @property
    def n_free(self) -> int:
        """Independent lattice parameters."""
        return self.p_len.numel() + self.p_ang.numel()

    def lattice_parameters(self, relative: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b, c) in A and (alpha, beta, gamma) in degrees; ``relative`` replaces the refined length changes."""
        l0 = torch.as_tensor(self.l0)
        tie = torch.as_tensor(self.len_tie)
        rel = _SCALE_LEN * self.p_len if relative is None else torch.as_tensor(relative, dtype=_DT)
        lengths = l0 * (1 + rel[tie])
        ang = torch.as_tensor(self.a0).clone()
        free = torch.as_tensor(self.ang_tie >= 0)
        if free.any():
            ang = torch.where(free, ang + _SCALE_ANG * self.p_ang[torch.as_tensor(np.maximum(self.ang_tie, 0))], ang)
        return lengths, ang

    def q2(self, hkl: torch.Tensor, relative: np.ndarray | None = None) -> torch.Tensor:
        """1/d^2 (1/A^2) of each row of ``hkl`` (float tensor)."""
        gstar = torch.linalg.inv(metric(*self.lattice_parameters(relative)))
        return torch.einsum("mi,ij,mj->m", hkl, gstar, hkl)

    def equal_d_groups(self, hkl: torch.Tensor) -> np.ndarray:
        """Group label per reflection: equal d now and after a random change of the free lengths.

        Reflections that coincide for every allowed metric cannot be told apart by any profile fit.
        """
        with torch.no_grad():
            q_now = self.q2(hkl).numpy()
            rng = np.random.default_rng(0)
            q_other = self.q2(hkl, rng.uniform(0.01, 0.03, self.p_len.numel())).numpy()
        keys = np.stack([np.round(np.log(q_now) * 1e7), np.round(np.log(q_other) * 1e7)], axis=1)
        _, group = np.unique(keys, axis=0, return_inverse=True)
        return group.ravel()
