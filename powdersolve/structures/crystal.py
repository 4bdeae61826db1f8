"""The array form of a crystal that all physics in powdersolve works on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Lattice, Structure


@dataclass(frozen=True)
class Crystal:
    """A periodic crystal as plain arrays.

    Attributes:
        lattice: (3, 3) row vectors a, b, c in Angstrom.
        frac: (n, 3) fractional coordinates in [0, 1).
        numbers: (n,) atomic numbers Z.
        occupancy: (n,) site occupancies in (0, 1]; a disordered site appears once per species.
        formula: reduced formula.
        spacegroup: international space-group number (0 when unknown).
    """

    lattice: np.ndarray
    frac: np.ndarray
    numbers: np.ndarray
    occupancy: np.ndarray
    formula: str = ""
    spacegroup: int = 0

    @property
    def volume(self) -> float:
        """Cell volume in Angstrom^3."""
        return float(abs(np.linalg.det(self.lattice)))

    @property
    def n_electrons(self) -> float:
        """Electrons per cell, sum of Z times occupancy (neutral atoms)."""
        return float(np.sum(self.numbers * self.occupancy))

    @property
    def reciprocal(self) -> np.ndarray:
        """(3, 3) reciprocal row vectors a*, b*, c* in 1/Angstrom (no 2 pi)."""
        return np.linalg.inv(self.lattice).T

    @property
    def cell_parameters(self) -> tuple[float, float, float, float, float, float]:
        """a, b, c (Angstrom) and alpha, beta, gamma (degrees)."""
        lat = Lattice(self.lattice)
        return (*lat.abc, *lat.angles)  # type: ignore[return-value]

    @property
    def key(self) -> tuple[str, int]:
        """(reduced formula, space group): the deduplication and split key."""
        return (self.formula, self.spacegroup)

    @classmethod
    def from_structure(cls, structure: Structure, spacegroup: int = 0) -> Crystal:
        """Flatten a (possibly disordered) pymatgen Structure; vacancies are dropped."""
        frac, numbers, occ = [], [], []
        for site in structure:
            for sp, amt in site.species.items():
                frac.append(site.frac_coords % 1.0)
                numbers.append(sp.Z)
                occ.append(float(amt))
        return cls(
            lattice=np.array(structure.lattice.matrix, dtype=np.float64),
            frac=np.array(frac, dtype=np.float64).reshape(-1, 3) % 1.0,
            numbers=np.array(numbers, dtype=np.int64),
            occupancy=np.array(occ, dtype=np.float64),
            formula=structure.composition.reduced_formula,
            spacegroup=int(spacegroup),
        )

    def to_structure(self) -> Structure:
        """A pymatgen Structure (occupancies below 1 become partially occupied sites)."""
        from pymatgen.core.periodic_table import Element

        species = [{Element.from_Z(int(z)).symbol: float(o)} for z, o in zip(self.numbers, self.occupancy)]
        return Structure(Lattice(self.lattice), species, self.frac)
