"""One Cell and one Composition: parsing, checks, the matrix, the metric family, against pymatgen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Composition as PmgComposition
from pymatgen.core import Lattice

from powdersolve.cell import ANGLE_TOL_DEG, Cell, Composition, metric_family
from powdersolve.errors import InputError, OutputError
from powdersolve.formats.maps import WRITERS, save_npy, write_ccp4, write_map


def test_a_parsed_cell_matches_pymatgen() -> None:
    cell = Cell.parse("5.1, 6.2 7.3 80 95 101")
    lattice = Lattice.from_parameters(5.1, 6.2, 7.3, 80, 95, 101)
    assert np.allclose(cell.matrix, lattice.matrix)
    assert cell.volume == pytest.approx(lattice.volume)
    assert np.allclose(Cell.from_matrix(cell.matrix), cell)
    assert cell.lattice().abc == pytest.approx(lattice.abc)


def test_one_number_is_a_cube() -> None:
    assert Cell.parse("5.4631") == (5.4631, 5.4631, 5.4631, 90.0, 90.0, 90.0)
    assert Cell.parse("5.4631").family == "cubic"


@pytest.mark.parametrize("text", ["5 5", "a b c 90 90 90", "0.1", "5 5 5 90 90 190", "5 5 5 120 120 120", "nan"])
def test_bad_cells_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(InputError) as err:
        Cell.parse(text)
    assert "\n" not in str(err.value)


def test_one_tolerance_classifies_the_six_numbers_and_the_matrix_alike() -> None:
    off = ANGLE_TOL_DEG / 2
    for params, family in [((4, 4, 4, 90, 90, 90), "cubic"), ((3, 3, 5, 90, 90, 120), "hexagonal"),
                           ((4, 4, 4, 90 + off, 90, 90), "cubic"),
                           ((4, 4, 4, 90 + 2 * ANGLE_TOL_DEG, 90, 90), "triclinic"),
                           ((3, 3, 5, 90, 90, 90), "tetragonal"), ((4, 4.1, 4, 90, 90, 90), "orthorhombic"),
                           ((5, 6, 7, 90, 104, 90), "monoclinic"), ((5, 6, 7, 80, 104, 90), "triclinic"),
                           ((3, 3, 5, 90, 90, 119), "triclinic")]:
        cell = Cell.of(params)
        assert cell.family == family, params
        assert metric_family(cell.matrix) == family, params


@pytest.mark.parametrize(("text", "ratios"), [("CaF2", True), ("Fe2(SO4)3", True), ("Ce4O8", True), ("Ca,F", False)])
def test_a_composition_matches_pymatgen(text: str, ratios: bool) -> None:
    comp = Composition.parse(text)
    assert comp.ratios_known is ratios and comp.text == text
    if ratios:
        assert comp.pymatgen() == PmgComposition(text)
        assert comp.reduced_formula == PmgComposition(text).reduced_formula


def test_the_atoms_of_a_cell_add_up_to_the_formula_times_z() -> None:
    numbers, occupancy = Composition.parse("Mg0.5Fe1.5SiO4").cell_atoms(4)
    electrons = float(np.dot(numbers, occupancy))
    assert electrons == pytest.approx(4 * PmgComposition("Mg0.5Fe1.5SiO4").total_electrons)
    assert Composition.parse("Ca,F").cell_atoms(4) is None
    assert Composition.parse("CaF2").cell_atoms(None) is None


def test_the_map_writer_picks_the_format_by_name(tmp_path: Path) -> None:
    grid = np.random.default_rng(0).random((6, 6, 6)).astype(np.float32)
    cell = Cell.parse("5.4631")
    write_map(tmp_path / "a.ccp4", grid, cell)
    write_ccp4(tmp_path / "b.ccp4", grid, cell)
    assert (tmp_path / "a.ccp4").read_bytes() == (tmp_path / "b.ccp4").read_bytes()
    write_map(tmp_path / "a.npy", grid, cell)
    save_npy(tmp_path / "b.npy", grid)
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    for name in ("m.cube", "CHGCAR", "m.xplor"):
        write_map(tmp_path / name, grid, cell)
        assert (tmp_path / name).stat().st_size > 0
    assert set(WRITERS) == {"ccp4", "cube", "chgcar", "xplor", "npy"}
    with pytest.raises(OutputError, match="no map format"):
        write_map(tmp_path / "m.png", grid, cell)
