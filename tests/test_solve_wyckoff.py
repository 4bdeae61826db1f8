"""Orbit-wise reading of symmetry-averaged maps: Wyckoff multiplicities, exact composition, restored peaks."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Lattice, Structure

from powdersolve.density import density_grid
from powdersolve.maps.peaks import find_peaks, integrate_basins, merge_peaks
from powdersolve.solve.atoms import density_to_structures
from powdersolve.solve.wyckoff import Orbit, assign_orbits, orbit_choices, peak_orbits
from powdersolve.structures import Crystal

QUARTZ = Structure.from_spacegroup("P3_221", Lattice.hexagonal(4.91, 5.40), ["Si", "O"],
                                   [[0.470, 0, 1 / 6], [0.414, 0.268, 0.286]])
PYRITE = Structure.from_spacegroup("Pa-3", Lattice.cubic(5.417), ["Fe", "S"], [[0, 0, 0], [0.385] * 3])


def _peaks(s: Structure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = Crystal.from_structure(s)
    grid = density_grid(c)
    idx, frac, height = find_peaks(grid)
    label = merge_peaks(frac, height, c.lattice, 0.7)
    first = np.array([np.flatnonzero(label == k)[0] for k in range(label.max() + 1)])
    electrons = integrate_basins(grid, idx, label, c.volume / grid.size, c.lattice)
    return frac[first], electrons, c.lattice


@pytest.mark.parametrize("s, number, mults", [(QUARTZ, 154, [3, 6]), (PYRITE, 205, [4, 8])])
def test_orbits_have_the_wyckoff_multiplicities(s: Structure, number: int, mults: list[int]) -> None:
    frac, electrons, lattice = _peaks(s)
    orbits = peak_orbits(frac, electrons, number, lattice)
    assert sorted(o.multiplicity for o in orbits) == mults
    assert sum(len(o.peaks) for o in orbits) == len(frac)


def test_a_missing_peak_is_restored_from_its_orbit() -> None:
    frac, electrons, lattice = _peaks(PYRITE)
    s_peaks = np.flatnonzero(electrons < 20)
    keep = np.setdiff1d(np.arange(len(frac)), s_peaks[:3])  # three of the eight S peaks lost
    orbits = peak_orbits(frac[keep], electrons[keep], 205, lattice)
    assert sorted(o.multiplicity for o in orbits) == [4, 8]
    (z, pos, names, per_orbit), *_ = orbit_choices(orbits, Composition("FeS2"))
    assert z == 4 and len(names) == 12
    assert StructureMatcher().fit(Structure(lattice, names, pos), PYRITE)


def test_assignment_meets_the_composition_exactly_or_refuses() -> None:
    a = Orbit(np.zeros((1, 3)), 26.0, (0,))
    b = Orbit(np.zeros((3, 3)), 16.0, (1,))
    ghost = Orbit(np.zeros((3, 3)), 1.0, (2,))
    species, cost = assign_orbits([a, b, ghost], {"Fe": 1, "S": 3}, 1.0)
    assert species == ["Fe", "S", None] and cost == pytest.approx(3.0 / (26 + 48))  # the ghost's electrons
    assert assign_orbits([a, b], {"Fe": 2, "S": 3}, 1.0) is None  # no orbit choice gives 2 Fe


def test_density_to_structures_reads_orbits_for_a_known_group() -> None:
    c = Crystal.from_structure(QUARTZ)
    res = density_to_structures(density_grid(c), c.lattice, {"Si": 1, "O": 2}, spacegroup=154)[0]
    assert res.spacegroup == 154 and res.z_formula_units == 3
    assert StructureMatcher().fit(res.structure, QUARTZ)
    assert set(res.peaks.species) == {"Si", "O"}
