"""Reading structures (CIF, POSCAR, pymatgen JSON; files and folders), standardising them, and facts of space groups."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pymatgen.core import Element, Species, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from powdersolve.errors import InputError
from powdersolve.fileio import check_input_file
from powdersolve.structures.crystal import Crystal

SUFFIXES = (".cif", ".json", ".vasp", ".poscar")
#: Largest structure file accepted (bytes) and largest cell (atoms) standardised.
MAX_STRUCTURE_BYTES = 20 * 1024 * 1024
MAX_ATOMS = 2000
#: Largest cell volume accepted (A^3): reflection and grid counts grow with it, so a hostile cell cannot exhaust memory.
MAX_VOLUME = 1.0e6
#: Shortest lattice translation accepted (A); no crystal repeats over a shorter distance.
MIN_LATTICE_VECTOR = 1.0
#: Longest cell edge accepted (A).
MAX_CELL_LENGTH = 1000.0
#: The 65 Sohncke space groups: only proper operations, so a crystal in one is chiral.
SOHNCKE_GROUPS = frozenset((
    1, 3, 4, 5, *range(16, 25), *range(75, 81), *range(89, 99), *range(143, 147), *range(149, 156),
    *range(168, 174), *range(177, 183), *range(195, 200), *range(207, 215),
))


def _is_structure_file(p: Path) -> bool:
    return p.suffix.lower() in SUFFIXES or p.name.upper().startswith(("POSCAR", "CONTCAR"))


def read_structure(path: str | Path) -> Structure:
    """Read one structure file (format from the extension; POSCAR/CONTCAR by name).

    Raises :class:`InputError` with a one-line reason when the file cannot be read.
    """
    p = check_input_file(path, MAX_STRUCTURE_BYTES)
    head = p.read_bytes()[:4096]
    if b"\x00" in head:
        raise InputError(f"{p}: binary data, not a structure file (CIF, POSCAR or pymatgen JSON)")
    suffix = p.suffix.lower()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if suffix == ".json":
                structure = Structure.from_dict(json.loads(p.read_text()))
            elif suffix == ".cif":
                from pymatgen.io.cif import CifParser

                parsed = CifParser(p, occupancy_tolerance=1.05).parse_structures(primitive=False)
                if not parsed:
                    raise ValueError("no structure in file")
                structure = parsed[0]
            else:
                structure = Structure.from_file(p)
    except InputError:
        raise
    except Exception as exc:  # pymatgen raises many types on malformed files
        msg = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(f"{p}: cannot read structure ({msg}); check the file format") from None
    if len(structure) == 0:
        raise InputError(f"{p}: structure has no atoms")
    for sp in structure.composition.elements:
        if not isinstance(sp, Element | Species) or getattr(sp, "Z", 0) < 1:
            raise InputError(f"{p}: unknown element '{sp}'; use a real element symbol")
    if len(structure) > MAX_ATOMS:
        raise InputError(f"{p}: {len(structure)} sites, above the limit of {MAX_ATOMS}")
    if not (np.all(np.isfinite(structure.lattice.matrix)) and np.all(np.isfinite(structure.frac_coords))):
        raise InputError(f"{p}: cell or atom coordinates are not finite numbers (NaN/inf); fix the file")
    # NaN compares False, so test the good range rather than the bad one.
    if not 1.0 <= structure.volume <= MAX_VOLUME:
        raise InputError(f"{p}: cell volume {structure.volume:.3g} A^3 is outside 1-{MAX_VOLUME:.0e} A^3; "
                         "check the cell lengths")
    # Finite but huge edges (a sheared cell can keep a small volume) overflow the lattice reduction.
    longest = float(np.max(np.linalg.norm(structure.lattice.matrix, axis=1)))
    if not longest <= MAX_CELL_LENGTH:
        raise InputError(f"{p}: a cell edge of {longest:.3g} A is above {MAX_CELL_LENGTH:g} A; check the cell lengths")
    # A sub-Angstrom lattice translation (e.g. a 0.5-degree cell angle) is unphysical and stalls spglib for minutes.
    shortest = min(structure.lattice.get_lll_reduced_lattice().abc)
    if shortest < MIN_LATTICE_VECTOR:
        raise InputError(f"{p}: the cell has a {shortest:.3g} A lattice translation (below {MIN_LATTICE_VECTOR} A); "
                         "check the cell lengths and angles")
    return structure


def iter_structure_files(path: str | Path) -> list[Path]:
    """Structure files at ``path``: the file itself, or every structure file in a folder (sorted)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and _is_structure_file(f))
        if not files:
            raise InputError(f"{p}: folder holds no structure files ({', '.join(SUFFIXES)}, POSCAR)")
        return files
    return [check_input_file(p, MAX_STRUCTURE_BYTES)]


def standardize(structure: Structure, symprec: float = 0.1) -> tuple[Structure, int]:
    """Conventional standard cell (spglib via pymatgen) and its space-group number.

    Falls back to the structure as given (space group 1) when symmetry analysis fails,
    which happens for some disordered structures.
    """
    try:
        sga = SpacegroupAnalyzer(structure, symprec=symprec)
        conv = sga.get_conventional_standard_structure()
        sg = SpacegroupAnalyzer(conv, symprec=symprec).get_space_group_number()
        return conv, int(sg)
    except Exception:  # spglib gives up on some disordered cells
        return structure.copy(), 1


def load_crystal(path: str | Path, symprec: float = 0.1, standard: bool = True) -> Crystal:
    """Read a structure file and return its conventional standard cell as a :class:`Crystal`."""
    s = read_structure(path)
    if standard:
        s, sg = standardize(s, symprec)
    else:
        try:
            sg = SpacegroupAnalyzer(s, symprec=symprec).get_space_group_number()
        except Exception:
            sg = 1
    return Crystal.from_structure(s, sg)


def crystal_system(spacegroup: int) -> str:
    """Crystal system name of an international space-group number (1-230)."""
    if not 1 <= spacegroup <= 230:
        raise InputError(f"space group {spacegroup} is outside 1-230")
    bounds = [
        (2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
        (167, "trigonal"), (194, "hexagonal"), (230, "cubic"),
    ]
    return next(name for top, name in bounds if spacegroup <= top)


#: Space groups of the trigonal system with a rhombohedral (R) lattice.
RHOMBOHEDRAL_GROUPS = frozenset({146, 148, 155, 160, 161, 166, 167})


def lattice_system(spacegroup: int) -> str:
    """Crystal system of a space group's Bravais lattice as indexing names it: the crystal system, except
    that trigonal groups with a P lattice are 'hexagonal' (the hP lattice) and 'trigonal' is the R lattice."""
    system = crystal_system(spacegroup)
    if system == "trigonal" and int(spacegroup) not in RHOMBOHEDRAL_GROUPS:
        return "hexagonal"
    return system


def is_chiral(spacegroup: int) -> bool:
    """Whether a crystal of this space group (1-230) is chiral: its group is a Sohncke group.

    No proper rotation then maps the crystal onto its inverse (the enantiomorph), although both give the
    same powder pattern (Friedel's law). 0 (unknown) counts as not chiral.
    """
    return int(spacegroup) in SOHNCKE_GROUPS


def deduplicate(crystals: Iterable[Crystal]) -> list[Crystal]:
    """Keep the first crystal of each (reduced formula, space group), as the paper did."""
    seen: set[tuple[str, int]] = set()
    out = []
    for c in crystals:
        if c.key not in seen:
            seen.add(c.key)
            out.append(c)
    return out
