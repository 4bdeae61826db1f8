"""Density-map writers: CCP4/MRC, Gaussian cube, VASP CHGCAR, X-PLOR and NumPy .npy; ``write_map``
picks one by format name or file name (:data:`WRITERS`, :data:`NAMES`), as ``read_pattern`` does for patterns.

Every writer takes a grid whose voxel ``[i, j, k]`` sits at fractional position
(i/N0, j/N1, k/N2) along a, b, c (the convention of :func:`powdersolve.density.density_grid`),
in electrons per cubic Angstrom, and writes atomically (nothing appears unless the write succeeds).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import gemmi
import numpy as np
from pymatgen.core import Lattice

from powdersolve.errors import InputError, OutputError
from powdersolve.fileio import atomic_path, atomic_write_text
from powdersolve.structures.crystal import Crystal

#: A unit cell given as (a, b, c, alpha, beta, gamma), a (3, 3) row matrix or a Crystal.
CellLike = Crystal | np.ndarray | Sequence[float]

#: Bohr radius in Angstrom (CODATA 2018), the length unit of the cube format.
BOHR = 0.529177210903


def _check_grid(grid: np.ndarray) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 3 or min(g.shape) < 1:
        raise InputError(f"density grid must be 3-D, got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise InputError("density grid holds NaN or inf values; cannot write a map")
    return g


def _cell_parameters(lattice: CellLike) -> tuple[float, ...]:
    if isinstance(lattice, Crystal):
        return tuple(float(v) for v in lattice.cell_parameters)
    arr = np.asarray(lattice, dtype=np.float64)
    if arr.shape == (3, 3):
        lat = Lattice(arr)
        return (*lat.abc, *lat.angles)
    if arr.shape == (6,):
        return tuple(float(v) for v in arr)
    raise InputError(f"lattice must be (a, b, c, alpha, beta, gamma) or a (3, 3) matrix, got shape {arr.shape}")


def _io_error(path: str | os.PathLike, exc: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write the map ({exc.strerror or exc}); choose another path")


def write_ccp4(path: str | os.PathLike, grid: np.ndarray, lattice_params: CellLike) -> None:
    """Write a CCP4/MRC map (mode 2, float32, space group P1) with the cell in its header.

    Args:
        path: output .ccp4 / .map / .mrc file.
        grid: (N0, N1, N2) density in e/A^3, voxel [i, j, k] at (i/N0, j/N1, k/N2).
        lattice_params: (a, b, c) in Angstrom and (alpha, beta, gamma) in degrees, a (3, 3)
            row matrix, or a Crystal.
    """
    g = _check_grid(grid)
    cell = gemmi.UnitCell(*_cell_parameters(lattice_params))
    ccp4 = gemmi.Ccp4Map()
    # gemmi's first grid index runs along a, which is exactly our voxel convention.
    ccp4.grid = gemmi.FloatGrid(np.ascontiguousarray(g, dtype=np.float32), cell, gemmi.SpaceGroup("P 1"))
    ccp4.update_ccp4_header(2)
    try:
        with atomic_path(path) as tmp:
            ccp4.write_ccp4_map(str(tmp))
    except OSError as exc:
        raise _io_error(path, exc) from exc


def _atoms(crystal: Crystal) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(crystal.numbers, dtype=np.int64), np.asarray(crystal.frac, dtype=np.float64) @ crystal.lattice


def write_cube(path: str | os.PathLike, grid: np.ndarray, crystal: Crystal, comment: str = "") -> None:
    """Write a Gaussian cube file of the density.

    Lengths are in Bohr (positive voxel counts), the origin at 0, voxel vectors lattice / N and
    values converted from e/A^3 to e/bohr^3. Atoms are listed with their Cartesian positions; a
    disordered site is listed once per species (the cube format has no occupancy).
    """
    g = _check_grid(grid)
    n0, n1, n2 = g.shape
    lat_bohr = np.asarray(crystal.lattice, dtype=np.float64) / BOHR
    numbers, cart = _atoms(crystal)
    lines = [
        f"powdersolve CMED {crystal.formula} {comment}".strip()[:200],
        "electron density in e/bohr^3, voxel [i,j,k] at (i/N1, j/N2, k/N3)",
        f"{numbers.size:5d} {0.0:12.6f} {0.0:12.6f} {0.0:12.6f}",
    ]
    for n, vec in zip((n0, n1, n2), lat_bohr):
        v = vec / n
        lines.append(f"{n:5d} {v[0]:12.6f} {v[1]:12.6f} {v[2]:12.6f}")
    for z, pos in zip(numbers, cart / BOHR):
        lines.append(f"{z:5d} {float(z):12.6f} {pos[0]:12.6f} {pos[1]:12.6f} {pos[2]:12.6f}")
    values = g * BOHR**3
    # Cube order: k fastest, a line break after every (i, j) row of N3 values, 6 per line.
    body = []
    for row in values.reshape(n0 * n1, n2):
        for start in range(0, n2, 6):
            body.append(" ".join(f"{v:13.5E}" for v in row[start:start + 6]))
    try:
        atomic_write_text(path, "\n".join(lines + body) + "\n")
    except OSError as exc:
        raise _io_error(path, exc) from exc


def write_chgcar(path: str | os.PathLike, grid: np.ndarray, crystal: Crystal) -> None:
    """Write a VASP CHGCAR: values are rho * V_cell (electrons), a fastest (Fortran order).

    Written with :class:`pymatgen.io.vasp.outputs.Chgcar`. A disordered crystal is written with
    one POSCAR atom per species entry (positions only label the map; VASP never reads them back).
    A cell without atoms (a predicted map) is written in the same VASP 5 layout with zero atoms,
    which pymatgen cannot do and VESTA reads as a bare volume.
    """
    from pymatgen.core import Structure
    from pymatgen.core.periodic_table import Element
    from pymatgen.io.vasp.inputs import Poscar
    from pymatgen.io.vasp.outputs import Chgcar

    g = _check_grid(grid)
    if len(crystal.numbers) == 0:
        _write_atomless_chgcar(path, g * crystal.volume, crystal)
        return
    structure = Structure(
        Lattice(crystal.lattice),
        [Element.from_Z(int(z)).symbol for z in crystal.numbers],
        crystal.frac,
    )
    chg = Chgcar(Poscar(structure.get_sorted_structure()), {"total": g * crystal.volume})
    try:
        with atomic_path(path) as tmp:
            chg.write_file(str(tmp))
    except OSError as exc:
        raise _io_error(path, exc) from exc


def _write_atomless_chgcar(path: str | os.PathLike, values: np.ndarray, crystal: Crystal) -> None:
    """CHGCAR text of ``values`` (rho * V) for an atom-less cell: a fastest, 5 values per line."""
    n0, n1, n2 = values.shape
    lines = [f"powdersolve CMED {crystal.formula} (no atoms)".strip(), "   1.00000000000000"]
    lines += ["  " + " ".join(f"{v:12.6f}" for v in row) for row in np.asarray(crystal.lattice)]
    lines += ["", "   0", "Direct", "", f"{n0:5d}{n1:5d}{n2:5d}"]
    flat = np.asarray(values, dtype=np.float64).ravel(order="F").tolist()
    full = len(flat) // 5 * 5
    # One %-format over all values is ~20x faster than formatting them one by one.
    body = ("%18.11E %18.11E %18.11E %18.11E %18.11E\n" * (full // 5)) % tuple(flat[:full])
    tail = " ".join(f"{v:18.11E}" for v in flat[full:])
    try:
        atomic_write_text(path, "\n".join(lines) + "\n" + body + (tail + "\n" if tail else ""))
    except OSError as exc:
        raise _io_error(path, exc) from exc


def write_xplor(path: str | os.PathLike, grid: np.ndarray, lattice_params: CellLike) -> None:
    """Write an X-PLOR/CNS formatted map over one full cell (e/A^3, P1, sections along c).

    Layout: title block, the NA AMIN AMAX NB BMIN BMAX NC CMIN CMAX line, the cell line, 'ZYX',
    then for each k section its index and values with i fastest, 6 per line (E12.5), then
    '   -9999' and the mean and standard deviation.
    """
    g = _check_grid(grid)
    n0, n1, n2 = g.shape
    cell = _cell_parameters(lattice_params)
    lines = ["", "       1 !NTITLE", " REMARKS powdersolve CMED electron density (e/A^3)"]
    lines.append("".join(f"{v:8d}" for v in (n0, 0, n0 - 1, n1, 0, n1 - 1, n2, 0, n2 - 1)))
    lines.append("".join(f"{v:12.5E}" for v in cell))
    lines.append("ZYX")
    for k in range(n2):
        lines.append(f"{k:8d}")
        section = g[:, :, k].T.ravel()  # i (along a) fastest, then j
        for start in range(0, section.size, 6):
            lines.append("".join(f"{v:12.5E}" for v in section[start:start + 6]))
    lines.append(f"{-9999:8d}")
    lines.append(f"{g.mean():12.4E}{g.std():12.4E}")
    try:
        atomic_write_text(path, "\n".join(lines) + "\n")
    except OSError as exc:
        raise _io_error(path, exc) from exc


def save_npy(path: str | os.PathLike, grid: np.ndarray) -> None:
    """Write a float32 .npy atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(grid, dtype=np.float32))


def _atomless(cell: CellLike) -> Crystal:
    """The cell as a Crystal without atoms (the cube and CHGCAR headers want one; a map has no atoms)."""
    if isinstance(cell, Crystal):
        return cell
    arr = np.asarray(cell, dtype=np.float64)
    lattice = arr if arr.shape == (3, 3) else np.asarray(Lattice.from_parameters(*_cell_parameters(arr)).matrix)
    return Crystal(lattice=lattice, frac=np.zeros((0, 3)), numbers=np.zeros(0, dtype=np.int64), occupancy=np.zeros(0),
                   formula="", spacegroup=1)


#: Writer per format name: (path, grid (N0, N1, N2) e/A^3, cell, comment) -> None; the comment goes where a
#: format has room for one (cube).
WRITERS: dict[str, Callable[[str | os.PathLike, np.ndarray, CellLike, str], None]] = {
    "ccp4": lambda path, grid, cell, _comment: write_ccp4(path, grid, cell),
    "cube": lambda path, grid, cell, comment: write_cube(path, grid, _atomless(cell), comment=comment),
    "chgcar": lambda path, grid, cell, _comment: write_chgcar(path, grid, _atomless(cell)),
    "xplor": lambda path, grid, cell, _comment: write_xplor(path, grid, cell),
    "npy": lambda path, grid, _cell, _comment: save_npy(path, grid),
}
#: Format per file extension, or per whole file name for names without one (VASP's CHGCAR).
NAMES: dict[str, str] = {
    ".ccp4": "ccp4", ".map": "ccp4", ".mrc": "ccp4", ".cube": "cube", ".xplor": "xplor", ".npy": "npy",
    "CHGCAR": "chgcar",
}


def write_map(path: str | os.PathLike, grid: np.ndarray, cell: CellLike, format: str | None = None,  # noqa: A002
              comment: str = "") -> None:
    """Write ``grid`` (e/A^3, voxel [i, j, k] at (i/N0, j/N1, k/N2)) in ``format`` (see :data:`WRITERS`), by
    default the one its file name says (:data:`NAMES`); atomically."""
    p = Path(path)
    fmt = format or NAMES.get(p.suffix.lower()) or NAMES.get(p.name)
    if fmt not in WRITERS:
        raise OutputError(f"{p}: no map format '{fmt or p.suffix}'; choose one of {', '.join(sorted(WRITERS))} "
                          f"or a file name ending in {', '.join(n for n in NAMES if n.startswith('.'))}")
    WRITERS[fmt](p, grid, cell, comment)
