"""Right-cell rate of indexing on laboratory-like patterns of generated crystals, with and without an impurity.

For the first N val + test crystals of a generated build, two patterns from the independent simulator
(``benchmarks/independent.py::lab_pattern``: K-alpha doublet, widths growing with angle, zero error
0.03 deg, falling background): clean, and with a silicon impurity whose strongest peak is ``--impurity``
of the sample's. Each is indexed as ``predict`` does (:func:`powdersolve.indexing.index_counts`, all seven
systems, zero shift up to 0.1 deg); right cell: the same Niggli-reduced lattice as the truth's primitive.
``--weak-line 0`` runs the indexing without the weak-line step (every line counts alike);
``--max-sites 2`` keeps crystals of at most 2 atoms in the primitive cell (few-line patterns, where an
impurity's lines are a large share of all).

    python experiments/impurity_indexing.py --data data/build/cubic_dev --limit 8 \
        --json experiments/results/impurity_indexing_cubic_dev.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from independent import CU_KA1, lab_pattern  # noqa: E402

from powdersolve.dataset import load_dataset  # noqa: E402
from powdersolve.errors import InputError  # noqa: E402
from powdersolve.fileio import atomic_write_text  # noqa: E402
from powdersolve.indexing import IndexConfig, index_counts  # noqa: E402
from powdersolve.indexing.reduction import niggli, same_lattice  # noqa: E402


def _primitive_sites(structure) -> int:
    return len(SpacegroupAnalyzer(structure).find_primitive())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a generated build (data/build/...)")
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
    records = [r for r in load_dataset(args.data) if r.split in ("val", "test")
               and (args.max_sites is None or _primitive_sites(r.crystal.to_structure()) <= args.max_sites)]
    records = records[: args.limit]
    rows = []
    for r in records:
        structure = r.crystal.to_structure()
        truth = niggli(SpacegroupAnalyzer(structure).get_primitive_standard_structure().lattice.matrix, "P")
        row = {"name": f"{r.crystal.formula}_{r.crystal.spacegroup}"}
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
