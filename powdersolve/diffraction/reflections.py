"""Which reflections a lattice shows: centring and space-group extinctions, and the distinct reflections of a cell.

Miller indices refer to the conventional cell (R centring in hexagonal axes, obverse setting); lengths
in Angstrom, angles in degrees, 2-theta in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pymatgen.core import Lattice
from pymatgen.symmetry.groups import SpaceGroup

from powdersolve.diffraction.refinable_cell import RefinableCell
from powdersolve.errors import InputError
from powdersolve.scattering import hkl_sphere

#: Lattice centrings :func:`allowed` knows (R in hexagonal axes, obverse setting).
CENTRINGS = ("P", "A", "B", "C", "I", "F", "R")


def system_of_cell(lengths: np.ndarray, angles: np.ndarray, tol: float = 1e-4) -> str:
    """Crystal system whose metric the cell (A, degrees) has exactly (within ``tol`` relative / degrees)."""
    a, b, c = lengths
    al, be, ga = angles
    eq = lambda x, y: abs(x - y) <= tol * max(abs(x), abs(y), 1.0)  # noqa: E731
    right = [eq(x, 90.0) for x in angles]
    if eq(a, b) and eq(b, c) and eq(al, be) and eq(be, ga) and not right[0]:
        return "trigonal"
    if all(right):
        if eq(a, b) and eq(b, c):
            return "cubic"
        return "tetragonal" if eq(a, b) else "orthorhombic"
    if eq(a, b) and right[0] and right[1] and eq(ga, 120.0):
        return "hexagonal"
    return "monoclinic" if sum(right) == 2 else "triclinic"


def allowed(hkl: np.ndarray, centring_or_spacegroup: str | int) -> np.ndarray:
    """Mask of the reflections the lattice centring ('P', 'A', 'B', 'C', 'I', 'F', 'R') or the space
    group (international number, standard setting; R groups in hexagonal axes) does not extinguish."""
    h, k, l = (hkl[:, i] for i in range(3))  # noqa: E741
    if isinstance(centring_or_spacegroup, str):
        key = centring_or_spacegroup.strip().upper()[:1]
        rules = {"P": np.ones(len(hkl), bool), "A": (k + l) % 2 == 0, "B": (h + l) % 2 == 0,
                 "C": (h + k) % 2 == 0, "I": (h + k + l) % 2 == 0,
                 "F": ((h + k) % 2 == 0) & ((k + l) % 2 == 0), "R": (-h + k + l) % 3 == 0}
        if key not in rules:
            raise InputError(f"unknown centring '{centring_or_spacegroup}'; give one of {', '.join(CENTRINGS)}")
        return rules[key]
    number = int(centring_or_spacegroup)
    if not 1 <= number <= 230:
        raise InputError(f"space group {number} is outside 1-230")
    ok = np.ones(len(hkl), dtype=bool)
    for op in SpaceGroup.from_int_number(number).symmetry_ops:
        rot, trans = op.rotation_matrix, op.translation_vector
        fixed = np.all(hkl @ rot == hkl, axis=1)
        phase = (hkl @ trans) % 1.0
        ok &= ~(fixed & (np.minimum(phase, 1 - phase) > 1e-6))
    return ok


def friedel_half(hkl: np.ndarray) -> np.ndarray:
    """(m,) bool: one reflection of each Friedel pair (h, k, l) / (-h, -k, -l), the lexicographically
    positive one (|indices| < 500); (0, 0, 0) is excluded."""
    return hkl[:, 0] * 1_000_000 + hkl[:, 1] * 1000 + hkl[:, 2] > 0


def distinct_reflections(cell: RefinableCell, lattice: Lattice, wavelength: float, tt_range: tuple[float, float],
                 centring_or_spacegroup: str | int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Representative hkl (float tensor) and multiplicity of each distinct reflection, and member labels.

    Only reflections whose K-alpha1 peak lies inside ``tt_range`` (degrees) at the starting cell: one
    that only reaches in with a tail has an intensity the data cannot fix.
    """
    q_lo, q_hi = (2 * np.sin(np.radians(t) / 2) / wavelength for t in tt_range)
    recip = lattice.reciprocal_lattice_crystallographic.matrix
    hkl = hkl_sphere(recip, q_hi)
    q = np.linalg.norm(hkl @ recip, axis=1)
    hkl = hkl[friedel_half(hkl) & (q >= q_lo) & allowed(hkl, centring_or_spacegroup)]
    if len(hkl) == 0:
        raise InputError("no allowed reflection lies inside the 2-theta range; check the cell and wavelength")
    group = cell.equal_d_groups(torch.as_tensor(hkl.astype(np.float64)))
    # Representative: most non-negative indices, then the largest h, k, l (lexsort keys last-major).
    order = np.lexsort((hkl[:, 2], hkl[:, 1], hkl[:, 0], (hkl >= 0).sum(axis=1)))[::-1]
    _, at = np.unique(group[order], return_index=True)
    first = order[at]
    mult = 2 * np.bincount(group)
    return torch.as_tensor(hkl[first].astype(np.float64)), mult, group


def symmetry_equivalents(hkl: np.ndarray, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sets of reflections with equal |F|^2 in a structure with the given symmetry.

    Args:
        hkl: (m, 3) integer Miller indices.
        rotations: (ops, 3, 3) rotation parts of the structure's space-group operations in the same
            (fractional) basis, acting on coordinates as x' = R x + t.

    Returns:
        label: (m,) set index of every reflection (0 .. n_sets - 1).
        first: (n_sets,) index into ``hkl`` of one member of each set.

    An atom at R x + t contributes to F(h) as one at x does to F(h R) (times a phase), so h and h R have
    equal |F|^2; so do h and -h (Friedel's law, no anomalous scattering). Each set is labelled by the
    lexicographically largest of its members' images.
    """
    hkl = np.asarray(hkl, dtype=np.int64)
    # A centred cell's operations repeat each rotation once per centring translation.
    rots = np.unique(np.rint(np.asarray(rotations)).astype(np.int64), axis=0)
    images = np.einsum("mi,oij->moj", hkl, rots)  # (m, ops, 3): h R
    images = np.concatenate([images, -images], axis=1)
    span = 2 * int(np.abs(images).max(initial=0)) + 1
    key = ((images[..., 0] * span) + images[..., 1]) * span + images[..., 2]
    _, first, label = np.unique(key.max(axis=1), return_index=True, return_inverse=True)
    return label.ravel(), first


@dataclass(frozen=True)
class ReflectionGroups:
    """The reflections a pattern model computes, and the profile groups they fall in.

    Attributes:
        hkl: (m, 3) integer Miller indices: one of each Friedel pair, and one of each set of symmetry
            equivalents when merged.
        count: (m,) reflections each row stands for (its set of equivalents, one of each Friedel pair).
        group: (m,) profile group: reflections that coincide for every metric the cell allows.
        first: (n_groups,) index of the first row of each group.
    """

    hkl: np.ndarray
    count: np.ndarray
    group: np.ndarray
    first: np.ndarray


def reflection_groups(lattice: Lattice, q_max: float, cell: RefinableCell, rotations: np.ndarray | None = None
                      ) -> ReflectionGroups:
    """Every reflection of ``lattice`` with 1/d <= ``q_max`` (1/A), one of each Friedel pair, grouped by
    coincidence in every metric ``cell`` allows; with ``rotations`` (see :func:`symmetry_equivalents`), one
    row per set of equivalents. Where equivalents would fall in different groups (a structure whose
    symmetry its cell's metric lacks) every reflection is kept."""
    hkl = hkl_sphere(lattice.reciprocal_lattice_crystallographic.matrix, q_max)
    hkl = hkl[friedel_half(hkl)]
    group = cell.equal_d_groups(torch.as_tensor(hkl.astype(np.float64)))
    count = np.ones(len(hkl))
    if rotations is not None:
        label, rep = symmetry_equivalents(hkl, rotations)
        if np.array_equal(group, group[rep][label]):
            hkl, group, count = hkl[rep], group[rep], np.bincount(label).astype(np.float64)
    n_groups = int(group.max()) + 1
    first = np.zeros(n_groups, dtype=int)
    first[group[::-1]] = np.arange(len(group))[::-1]
    return ReflectionGroups(hkl, count, group, first)
