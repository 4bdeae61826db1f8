"""Wyckoff-orbit constraints: how every atom of a symmetrised structure moves with its orbit's representative.

Every atom j of an orbit is op_j applied to the orbit's representative r; the representative moves by
P_r u with P_r the site-symmetry projector (mean of the rotation parts of the ops fixing r), so
x_j = x_j0 + R_j P_r u keeps the orbit on its Wyckoff position exactly. Fractional coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from powdersolve.structures.sitesymmetry import site_projector


@dataclass
class Orbits:
    """Per-atom constraint data: x_j = x0_j + M_j u[orbit_j]."""

    x0: np.ndarray  # (n, 3)
    matrices: np.ndarray  # (n, 3, 3)
    orbit: np.ndarray  # (n,)
    n_orbits: int
    n_free: int  # rank sum of the site projectors: independent coordinates
    rotations: np.ndarray  # (ops, 3, 3) rotation parts of the space-group operations the orbits keep


def site_constraints(structure: Structure, symprec: float) -> tuple[Orbits, list[int]]:
    """Orbit matrices for every site of a symmetrised structure (identity ops when spglib fails)."""
    frac = structure.frac_coords
    n = len(structure)
    try:
        sga = SpacegroupAnalyzer(structure, symprec=symprec)
        ops = sga.get_symmetry_operations(cartesian=False)
        groups = sga.get_symmetrized_structure().equivalent_indices
        rots = np.array([op.rotation_matrix for op in ops])
        trans = np.array([op.translation_vector for op in ops])
    except Exception:
        rots, trans = np.eye(3)[None], np.zeros((1, 3))
        groups = [[i] for i in range(n)]
    lat = structure.lattice.matrix
    mats = np.zeros((n, 3, 3))
    orbit = np.zeros(n, dtype=int)
    n_free = 0
    for g, members in enumerate(groups):
        r = members[0]
        images = np.einsum("oij,j->oi", rots, frac[r]) + trans  # (ops, 3)
        proj = site_projector(rots, trans, frac[r], lat, 1e-3 + 0.05 * symprec)
        n_free += int(round(np.trace(proj)))
        for j in members:
            d = images - frac[j]
            d -= np.round(d)
            k = int(np.argmin(np.linalg.norm(d @ lat, axis=1)))
            mats[j] = rots[k] @ proj
            orbit[j] = g
    return Orbits(frac.copy(), mats, orbit, len(groups), n_free, rots), [m[0] for m in groups]
