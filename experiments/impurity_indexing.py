"""Right-cell rate of indexing on laboratory-like patterns of generated crystals, with and without an impurity.

For the first N val + test crystals of a generated build, two patterns from the independent simulator
(``benchmarks/independent.py::lab_pattern``: K-alpha doublet, widths growing with angle, zero error
0.03 deg, falling background): clean, and with a silicon impurity whose strongest peak is ``--impurity``
of the sample's. Each is indexed as ``predict`` does (:func:`powdersolve.indexing.index_counts`, all seven
systems, zero shift up to 0.1 deg); right cell: the same Niggli-reduced lattice as the truth's primitive.
``--weak-line 0`` runs the indexing without the weak-line step (every line counts alike);
``--max-sites 2`` keeps crystals of at most 2 atoms in the primitive cell (few-line patterns, where an
impurity's lines are a large share of all). ``--elements`` takes instead the fcc, bcc and hcp metals of
:data:`METALS` at their room-temperature lattice parameters, none of them in the held-out set (checked
against the exclusion list): the patterns of 4-15 lines in which an internal standard is most often mixed.

    python experiments/impurity_indexing.py --data data/build/cubic_dev --limit 8 \
        --json experiments/results/impurity_indexing_cubic_dev.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from independent import CU_KA1, lab_pattern  # noqa: E402

from powdersolve.dataset import load_dataset  # noqa: E402
from powdersolve.errors import InputError  # noqa: E402
from powdersolve.fileio import atomic_write_text  # noqa: E402
from powdersolve.indexing import IndexConfig, index_counts  # noqa: E402
from powdersolve.indexing.reduction import niggli, same_lattice  # noqa: E402
from powdersolve.structures.exclusion import is_excluded  # noqa: E402

#: (element, structure type, a / A, c / A) of common metals (room-temperature values).
METALS = (
    ("Cu", "fcc", 3.615, 0), ("Ni", "fcc", 3.524, 0), ("Ag", "fcc", 4.086, 0), ("Pd", "fcc", 3.891, 0),
    ("Ca", "fcc", 5.588, 0), ("Sr", "fcc", 6.084, 0), ("Ce", "fcc", 5.161, 0), ("Fe", "bcc", 2.8665, 0),
    ("Cr", "bcc", 2.885, 0), ("W", "bcc", 3.165, 0), ("Nb", "bcc", 3.300, 0), ("Ta", "bcc", 3.303, 0),
    ("Ba", "bcc", 5.028, 0), ("K", "bcc", 5.328, 0), ("Na", "bcc", 4.291, 0), ("Mg", "hcp", 3.209, 5.211),
    ("Ti", "hcp", 2.951, 4.686), ("Co", "hcp", 2.507, 4.069), ("Y", "hcp", 3.647, 5.731),
    ("Hf", "hcp", 3.195, 5.051), ("Sc", "hcp", 3.309, 5.273), ("Tb", "hcp", 3.601, 5.694),
    ("Lu", "hcp", 3.505, 5.549), ("Tl", "hcp", 3.456, 5.525),
)


def metal(element: str, kind: str, a: float, c: float) -> Structure:
    """An fcc, bcc or hcp element in its conventional cell."""
    if kind == "hcp":
        return Structure.from_spacegroup(194, Lattice.hexagonal(a, c), [element], [[1 / 3, 2 / 3, 0.25]])
    return Structure.from_spacegroup(225 if kind == "fcc" else 229, Lattice.cubic(a), [element], [[0, 0, 0]])


def metals() -> list[Structure]:
    """The structures of :data:`METALS`; an error if one is in the held-out set."""
    out = [metal(*row) for row in METALS]
    for s in out:
        sg = SpacegroupAnalyzer(s).get_space_group_number()
        if is_excluded(s.composition.reduced_formula, sg):
            raise SystemExit(f"{s.composition.reduced_formula} ({sg}) is in the held-out set")
    return out


def _primitive_sites(structure) -> int:
    return len(SpacegroupAnalyzer(structure).find_primitive())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="a generated build (data/build/...)")
    src.add_argument("--elements", action="store_true", help="the fcc, bcc and hcp metals of METALS")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--impurity", type=float, default=0.03, help="strongest Si peak / strongest sample peak")
    ap.add_argument("--weak-line", type=float, default=IndexConfig.weak_line)
    ap.add_argument("--impurity-fraction", type=float, default=IndexConfig.impurity_fraction,
                    help="most lines (fraction) weak unindexed lines may make up")
    ap.add_argument("--max-sites", type=int, default=None,
                    help="only crystals with at most this many atoms in the primitive cell (few-line patterns)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    config = IndexConfig(zero_range=0.1, weak_line=args.weak_line, impurity_fraction=args.impurity_fraction)
    if args.elements:
        structures = metals()
    else:
        structures = [r.crystal.to_structure() for r in load_dataset(args.data) if r.split in ("val", "test")]
    structures = [s for s in structures if args.max_sites is None or _primitive_sites(s) <= args.max_sites]
    rows = []
    for structure in structures[: args.limit]:
        sga = SpacegroupAnalyzer(structure)
        truth = niggli(sga.get_primitive_standard_structure().lattice.matrix, "P")
        row = {"name": f"{structure.composition.reduced_formula}_{sga.get_space_group_number()}"}
        for kind, impurity in (("impurity", args.impurity), ("clean", 0.0)):
            tt, counts = lab_pattern(structure, seed=1, impurity=impurity)
            try:
                _, found = index_counts(tt, counts, CU_KA1, config)
            except InputError as err:
                row[kind] = {"right": False, "error": str(err)}
                continue
            top = found[0]
            row[kind] = {"right": bool(same_lattice(niggli(top.lattice(), top.centring), truth)),
                         "system": top.system, "centring": top.centring, "m20": top.m20}
        rows.append(row)
        print(row["name"], {k: (v["right"], v.get("system"), v.get("centring")) for k, v in row.items() if k != "name"},
              flush=True)
    summary = {kind: sum(row[kind]["right"] for row in rows) for kind in ("impurity", "clean")}
    print(f"right cell, top-1, of {len(rows)}: {summary}")
    if args.json is not None:
        atomic_write_text(args.json, json.dumps({"settings": {**vars(args), "data": str(args.data),
                                                              "json": str(args.json)},
                                                 "summary": summary, "n": len(rows), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
