"""Space groups from systematic absences used by solve: settings relabelled to standard ones, maps averaged there."""

from __future__ import annotations

import numpy as np
import pytest
import spglib
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from powdersolve.cell import Cell
from powdersolve.density import density_grid
from powdersolve.indexing.extinction import cell_space_group_candidates
from powdersolve.maps.settings import axis_setting, to_standard
from powdersolve.maps.symmetry import search_space_groups
from powdersolve.solve.reading import candidates_from_grids, extinction_maps
from powdersolve.structures import Crystal

CU = 1.54056
#: spglib Hall numbers of Pnma (standard) and of its Pbnm setting.
PNMA, PBNM = 292, 294


def _perovskite_pbnm() -> Structure:
    """A GdFeO3-type LaMnO3 in the Pbnm setting (a' = c, b' = a, c' = b of Pnma), as often reported."""
    pnma = Structure.from_spacegroup("Pnma", Lattice.orthorhombic(5.75, 7.66, 5.53), ["La", "Mn", "O", "O"],
                                     [[0.05, 0.25, 0.99], [0.0, 0.0, 0.5], [0.49, 0.25, 0.07], [0.28, 0.04, 0.72]])
    a, b, c = pnma.lattice.abc
    frac = pnma.frac_coords[:, [2, 0, 1]]
    return Structure(Lattice.orthorhombic(c, a, b), pnma.species, frac)


def test_every_orthorhombic_setting_is_an_axis_relabelling_of_the_standard_one() -> None:
    for hall in range(1, 531):
        sg = spglib.get_spacegroup_type(hall)
        if 16 <= sg.number <= 74:
            setting = axis_setting(hall)
            assert setting is not None and setting.number == sg.number, sg.international_full
            assert round(np.linalg.det(setting.matrix())) == 1  # right-handed
    assert axis_setting(PNMA).is_identity
    assert axis_setting(PBNM).perm == (1, 2, 0)
    # A monoclinic cell choice other than the first is no axis permutation.
    assert axis_setting(22) is None  # P 1 n 1


def test_a_map_in_a_nonstandard_setting_obeys_the_group_once_relabelled() -> None:
    s = _perovskite_pbnm()
    grid = density_grid(Crystal.from_structure(s))
    own = search_space_groups(grid, "orthorhombic", groups=(62,))[0]
    std_grid, std_lattice = to_standard(grid, s.lattice.matrix, axis_setting(PBNM))
    found = search_space_groups(std_grid, "orthorhombic", groups=(62,))[0]
    assert found.cc_min > 0.999 and own.cc_min < 0.9
    assert np.allclose(np.linalg.norm(std_lattice, axis=1), [5.75, 7.66, 5.53])
    assert np.linalg.det(std_lattice) > 0


def test_absences_of_independent_sticks_name_the_setting_and_solve_reads_the_structure() -> None:
    s = _perovskite_pbnm()
    sticks = XRDCalculator(wavelength=CU).get_pattern(s, two_theta_range=(10, 90))
    tt = np.asarray(sticks.x)[np.asarray(sticks.y) > 0.5]  # peaks above 0.5 % of the strongest
    classes = cell_space_group_candidates(Cell.from_matrix(s.lattice.matrix), tt, CU)
    # Pbnn ranks first: its extra absences fall on reflections below the 0.5 % cut (accidentally weak).
    assert [g.number for g in classes[0].groups] == [52]
    assert any(g.hall == PBNM for g in classes[1].groups)
    # A given cell tries every centring: P wins here, C and F lattices leave peaks unexplained.
    assert {g.symbol[0] for c in classes for g in c.groups} == {"P"}
    grid = density_grid(Crystal.from_structure(s))
    maps = extinction_maps(grid, s.lattice.matrix, "mean", classes, top=2)
    assert [m.number for m in maps] == [52, 62] and "P 2_1/b 2_1/n 2_1/m" in maps[1].label
    read = candidates_from_grids([maps[1].grid], s.lattice.matrix, {"La": 1, "Mn": 1, "O": 3}, n_first=1,
                                 spacegroups=[62], lattices=[maps[1].lattice], labels=[maps[1].label])
    assert StructureMatcher().fit(s, read.structures[0])


def test_no_peaks_no_classes() -> None:
    assert cell_space_group_candidates(Cell.of((5, 6, 7, 90, 90, 90)), np.zeros(0), CU) == []


@pytest.mark.parametrize("number", [1, 2])
def test_triclinic_maps_get_no_extinction_groups_beyond_their_own(number: int) -> None:
    lattice = Lattice.from_parameters(5, 6, 7, 80, 100, 110).matrix
    tt = np.array([15.0, 20.0, 25.0, 30.0])
    classes = cell_space_group_candidates(Cell.from_matrix(lattice), tt, CU)
    assert {g.number for c in classes for g in c.groups} <= {1, 2}
