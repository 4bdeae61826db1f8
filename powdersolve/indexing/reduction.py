"""Lattice reduction and metric symmetry: Niggli cells, Bravais lattices of a primitive cell, equivalence.

The Bravais lattice of a refined primitive cell is the symmetry spglib finds for one atom per
primitive cell (its holohedry) at a given tolerance; the conventional standard cell it returns
(monoclinic unique axis b, rhombohedral in the hexagonal setting) is what the indexing reports.
"""

from __future__ import annotations

import numpy as np
import spglib
from pymatgen.core import Lattice

from powdersolve.indexing.metric import primitive_lattice

_SYSTEM_BY_NUMBER = ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                     (167, "trigonal"), (194, "hexagonal"), (230, "cubic"))


def system_of_number(number: int) -> str:
    """Crystal system of an International Tables space-group number."""
    for top, name in _SYSTEM_BY_NUMBER:
        if number <= top:
            return name
    raise ValueError(f"space group number {number} out of range 1-230")


def bravais_lattices(lattice: np.ndarray, rel_tols: tuple[float, ...] = (2e-3, 6e-3, 2e-2)
                     ) -> list[tuple[str, str, np.ndarray]]:
    """(system, centring, conventional lattice rows) of a primitive cell at each relative tolerance.

    A trigonal holohedry with a P lattice is reported as hexagonal (same metric), R as 'trigonal'.
    """
    scale = float(abs(np.linalg.det(lattice))) ** (1 / 3)
    found: list[tuple[str, str, np.ndarray]] = []
    for rel in rel_tols:
        ds = spglib.get_symmetry_dataset((lattice, [[0.0, 0.0, 0.0]], [1]), symprec=rel * scale,
                                         angle_tolerance=np.degrees(rel) * 2)
        if ds is None:
            continue
        system = system_of_number(int(ds.number))
        centring = ds.international[0]
        if system == "trigonal" and centring == "P":
            system = "hexagonal"
        if not any(f[0] == system and f[1] == centring for f in found):
            found.append((system, centring, np.asarray(ds.std_lattice, dtype=np.float64)))
    return found


def niggli(lattice: np.ndarray, centring: str = "P") -> tuple[np.ndarray, np.ndarray]:
    """Niggli-reduced primitive cell: (lengths (3,) Angstrom, angles (3,) deg)."""
    red = Lattice(primitive_lattice(lattice, centring)).get_niggli_reduced_lattice(tol=1e-3)
    return np.array(red.abc), np.array(red.angles)


def same_lattice(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], rel: float = 5e-3,
                 deg: float = 0.5) -> bool:
    """Whether two Niggli cells (lengths, angles) describe the same lattice within tolerance.

    Angles are compared as |cos| because a Niggli cell with an angle near 90 deg may be all-acute or
    all-obtuse depending on noise.
    """
    la, aa = a
    lb, ab = b
    if np.any(np.abs(la / lb - 1) > rel):
        return False
    ca, cb = np.abs(np.cos(np.radians(aa))), np.abs(np.cos(np.radians(ab)))
    return bool(np.all(np.abs(ca - cb) <= np.radians(deg)))
