"""Map writers: each file reopens in an independent reader with the right cell and the grid values."""

from __future__ import annotations

from pathlib import Path

import gemmi
import mrcfile
import numpy as np
import pytest
from ase.io.cube import read_cube

from powdersolve.formats.maps import BOHR, write_ccp4, write_chgcar, write_cube, write_xplor
from powdersolve.structures.crystal import Crystal

SHAPE = (6, 8, 10)


@pytest.fixture()
def crystal() -> Crystal:
    # monoclinic, so a swapped axis or a transposed grid shows up
    lattice = np.array([[4.0, 0.0, 0.0], [0.0, 5.0, 0.0], [-1.2, 0.0, 6.0]])
    return Crystal(
        lattice=lattice,
        frac=np.array([[0.0, 0.0, 0.0], [0.25, 0.5, 0.1]]),
        numbers=np.array([14, 8]),
        occupancy=np.array([1.0, 1.0]),
        formula="SiO",
        spacegroup=1,
    )


@pytest.fixture()
def grid() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0.0, 3.0, SHAPE)


def test_ccp4_reopens_with_cell_and_values_at_fractional_points(tmp_path: Path, crystal: Crystal, grid) -> None:
    f = tmp_path / "rho.ccp4"
    write_ccp4(f, grid, crystal.cell_parameters)
    m = gemmi.read_ccp4_map(str(f))
    m.setup(float("nan"))
    assert (m.grid.nu, m.grid.nv, m.grid.nw) == SHAPE
    cell = m.grid.unit_cell
    np.testing.assert_allclose([cell.a, cell.b, cell.c, cell.alpha, cell.beta, cell.gamma],
                               crystal.cell_parameters, rtol=1e-5)
    for i, j, k in [(1, 2, 3), (5, 0, 9), (0, 7, 4)]:
        frac = gemmi.Fractional(i / SHAPE[0], j / SHAPE[1], k / SHAPE[2])
        assert m.grid.interpolate_value(frac) == pytest.approx(np.float32(grid[i, j, k]), rel=1e-6)
    # independent reader: mrcfile stores sections (z, y, x)
    with mrcfile.open(f, permissive=True) as mrc:
        np.testing.assert_allclose(mrc.data.transpose(2, 1, 0), grid.astype(np.float32))
        assert float(mrc.voxel_size.x) == pytest.approx(crystal.cell_parameters[0] / SHAPE[0], rel=1e-5)


def test_ccp4_accepts_lattice_matrix(tmp_path: Path, crystal: Crystal, grid) -> None:
    f = tmp_path / "m.map"
    write_ccp4(f, grid, crystal.lattice)
    cell = gemmi.read_ccp4_map(str(f)).grid.unit_cell
    assert cell.volume == pytest.approx(crystal.volume, rel=1e-5)


def test_cube_reopens_in_ase_in_bohr_units(tmp_path: Path, crystal: Crystal, grid) -> None:
    f = tmp_path / "rho.cube"
    write_cube(f, grid, crystal)
    with open(f) as fh:
        data = read_cube(fh)
    np.testing.assert_allclose(data["data"], grid * BOHR**3, rtol=1e-5)
    atoms = data["atoms"]
    np.testing.assert_allclose(np.asarray(atoms.cell), crystal.lattice, atol=1e-5)
    np.testing.assert_allclose(atoms.get_scaled_positions(wrap=False), crystal.frac, atol=1e-5)
    assert list(atoms.numbers) == [14, 8]
    np.testing.assert_allclose(data["origin"], 0.0)


def test_chgcar_reopens_in_pymatgen_as_rho_times_volume(tmp_path: Path, crystal: Crystal, grid) -> None:
    from pymatgen.io.vasp.outputs import Chgcar

    f = tmp_path / "CHGCAR"
    write_chgcar(f, grid, crystal)
    chg = Chgcar.from_file(str(f))
    np.testing.assert_allclose(chg.structure.lattice.matrix, crystal.lattice, atol=1e-6)
    np.testing.assert_allclose(chg.data["total"], grid * crystal.volume, rtol=1e-5)
    # Fortran order on disk, checked without pymatgen: the second value is grid[1, 0, 0]
    lines = f.read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.split() == [str(n) for n in SHAPE])
    first = [float(v) for v in lines[at + 1].split()]
    assert first[1] == pytest.approx(grid[1, 0, 0] * crystal.volume, rel=1e-5)
    assert first[0] == pytest.approx(grid[0, 0, 0] * crystal.volume, rel=1e-5)


def test_xplor_section_layout(tmp_path: Path, crystal: Crystal, grid) -> None:
    f = tmp_path / "rho.xplor"
    write_xplor(f, grid, crystal)
    lines = f.read_text().splitlines()
    assert lines[3].split()[::3] == [str(n) for n in SHAPE]
    assert lines[5] == "ZYX" and lines[6].split() == ["0"]
    values = [float(v) for v in (lines[7][i:i + 12] for i in range(0, 72, 12))]
    np.testing.assert_allclose(values, grid[:6, 0, 0], rtol=1e-4)


def test_bad_grid_and_unwritable_path(tmp_path: Path, crystal: Crystal, grid) -> None:
    from powdersolve.errors import InputError, OutputError

    with pytest.raises(InputError, match="3-D"):
        write_ccp4(tmp_path / "x.ccp4", grid[0], crystal.cell_parameters)
    bad = grid.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        write_cube(tmp_path / "x.cube", bad, crystal)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError):
        write_cube(tmp_path / "file" / "x.cube", grid, crystal)
    assert not (tmp_path / "x.cube").exists() and not (tmp_path / "x.ccp4").exists()


def test_chgcar_of_an_atomless_cell(tmp_path) -> None:
    """A predicted map has a cell but no atoms: values rho * V, a fastest, after a zero atom count."""
    lattice = np.diag([3.0, 4.0, 5.0])
    crystal = Crystal(lattice, np.zeros((0, 3)), np.zeros(0, dtype=np.int64), np.zeros(0), "X", 1)
    grid = np.random.default_rng(0).random((3, 4, 5))
    f = tmp_path / "CHGCAR"
    write_chgcar(f, grid, crystal)
    lines = f.read_text().splitlines()
    assert lines[6].split() == ["0"] and lines[9].split() == ["3", "4", "5"]
    values = np.array(" ".join(lines[10:]).split(), dtype=float)
    np.testing.assert_allclose(values, (grid * 60.0).ravel(order="F"), rtol=1e-9)
