"""A space group's setting as an axis permutation of its standard one, and maps moved between them.

An indexed orthorhombic cell lists its axes in no particular order, so the group that diffracts
it is often in a non-standard setting (Pbnm for Pnma, Ccme-like ``C 2/c 2/m 2_1/e`` for Cmce).
The map search and the orbit reading work in standard settings only; relabelling the cell's axes
(a permutation, with one axis reversed when the permutation is odd, to keep the basis
right-handed) brings such a map to the standard setting. Settings that are not an axis
permutation of the standard one (monoclinic cell choices, rhombohedral axes) are not handled.

Grids are fractional: voxel [i, j, k] at (i/N0, j/N1, k/N2) of the cell's a, b, c.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import spglib

from powdersolve.indexing.extinction import systematically_absent
from powdersolve.maps.symmetry import group_operations

#: Reflections on which two settings' systematic absences are compared.
_PROBE_HKL = np.array([h for h in itertools.product(range(-4, 5), repeat=3) if any(h)], dtype=np.int64)


@dataclass(frozen=True)
class AxisSetting:
    """How a cell in one group setting becomes the group's standard setting.

    Attributes:
        number: international space-group number.
        symbol: the setting's full Hermann-Mauguin symbol (e.g. 'P 2_1/b 2_1/n 2_1/m').
        perm: the standard axes as the setting's axes: standard axis i is setting axis ``perm[i]``.
        reverse_last: the third standard axis is the reversed setting axis (odd permutations, so that
            the relabelled basis stays right-handed).
    """

    number: int
    symbol: str
    perm: tuple[int, int, int]
    reverse_last: bool

    @property
    def is_identity(self) -> bool:
        """True when the setting is already standard (up to an origin shift)."""
        return self.perm == (0, 1, 2)

    def matrix(self) -> np.ndarray:
        """(3, 3) integer P with standard fractional coordinates x_std = P x (and basis rows a_std = P a)."""
        p = np.zeros((3, 3), dtype=np.int64)
        for i, j in enumerate(self.perm):
            p[i, j] = 1
        if self.reverse_last:
            p[2] *= -1
        return p


def _rotation_set(rot: np.ndarray) -> frozenset[bytes]:
    return frozenset(np.asarray(r, dtype=np.int64).tobytes() for r in rot)


@functools.lru_cache(maxsize=1024)
def axis_setting(hall: int) -> AxisSetting | None:
    """The axis relabelling that takes spglib Hall setting ``hall`` to its group's standard setting.

    Two settings are the same group up to an origin shift when the relabelled rotations are the
    standard ones and the relabelled reflections are absent exactly where the standard group's are.
    None when no axis permutation does it (e.g. a monoclinic cell choice other than the first).
    """
    sg = spglib.get_spacegroup_type(hall)
    ops = spglib.get_symmetry_from_database(hall)
    rot = np.asarray(ops["rotations"], dtype=np.int64)
    trans = np.asarray(ops["translations"], dtype=np.float64)
    std_rot, std_tau, _ = group_operations(int(sg.number))
    std_rots = _rotation_set(std_rot)
    std_absent = systematically_absent(_PROBE_HKL, std_rot, std_tau)
    for perm in itertools.permutations(range(3)):
        parity = np.linalg.det(np.eye(3)[list(perm)]) < 0
        setting = AxisSetting(int(sg.number), str(sg.international_full), tuple(perm), bool(parity))
        p = setting.matrix()
        p_inv = np.round(np.linalg.inv(p)).astype(np.int64)
        if _rotation_set(np.einsum("ij,njk,kl->nil", p, rot, p_inv)) != std_rots:
            continue
        # A reflection h of the setting is h_std = h P^-1 in standard indices.
        hkl_std = _PROBE_HKL @ p_inv
        if np.array_equal(systematically_absent(_PROBE_HKL, rot, trans), std_absent[_index_of(hkl_std)]):
            return setting
    return None


def _index_of(hkl: np.ndarray) -> np.ndarray:
    """Rows of :data:`_PROBE_HKL` holding each of ``hkl`` (a permutation of the probe set, signs included)."""
    codes = ((hkl + 4) * np.array([81, 9, 1])).sum(axis=1)
    probe = ((_PROBE_HKL + 4) * np.array([81, 9, 1])).sum(axis=1)
    lookup = np.full(729, -1, dtype=np.int64)
    lookup[probe] = np.arange(len(probe))
    return lookup[codes]


def to_standard(grid: np.ndarray, lattice: np.ndarray, setting: AxisSetting) -> tuple[np.ndarray, np.ndarray]:
    """(grid, lattice rows in A) of a map in ``setting``'s axes relabelled to the standard setting.

    rho_std(x_std) = rho(x) with x_std = P x: the grid's axes are transposed by the permutation and
    the third one reversed (voxel 0 stays at the origin) when the permutation is odd.
    """
    grid = np.asarray(grid, dtype=np.float64)
    lattice = np.asarray(lattice, dtype=np.float64)
    out = np.transpose(grid, setting.perm)
    if setting.reverse_last:
        out = np.roll(np.flip(out, axis=2), 1, axis=2)
    return np.ascontiguousarray(out), setting.matrix().astype(np.float64) @ lattice
