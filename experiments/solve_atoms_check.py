"""Density -> atoms on the shipped model's posterior-mean maps, no refinement: StructureMatcher matches.

A quick check of the first stage of `solve` on real cubic structures (true cell and composition).

    python experiments/solve_atoms_check.py --limit 9 --json experiments/results/solve_atoms_check.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core.periodic_table import Element

from powdersolve.errors import PowdersolveError
from powdersolve.evaluate import model_inputs
from powdersolve.inputs import composition_amounts, sample_grids
from powdersolve.solve.atoms import density_to_structure
from powdersolve.structures import iter_structure_files, load_crystal
from powdersolve.weights import load_model, shipped_weights

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--structures", default=str(ROOT.parent / "shared/benchmark/real/cubic"))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", default=str(ROOT / "experiments/results/solve_atoms_check.json"))
    args = ap.parse_args()
    model, _ = load_model(args.weights or shipped_weights("cubic"))
    matcher = StructureMatcher()
    rows = []
    for f in iter_structure_files(args.structures)[: args.limit]:
        c = load_crystal(f)
        grid = sample_grids(model, model_inputs(model, c), 1, 50)[0]
        comp = {Element.from_Z(z).symbol: v for z, v in composition_amounts(c).items()}
        try:
            r = density_to_structure(grid, c.lattice, comp)
            row = {"file": f.name, "spacegroup_true": c.spacegroup, "spacegroup_found": r.spacegroup,
                   "formula_found": r.structure.composition.formula,
                   "match": bool(matcher.fit(r.structure, c.to_structure()))}
        except PowdersolveError as exc:
            row = {"file": f.name, "spacegroup_true": c.spacegroup, "error": str(exc), "match": False}
        rows.append(row)
        print(row)
    out = {"n": len(rows), "matches": sum(r["match"] for r in rows), "rows": rows}
    print(f"{out['matches']} / {out['n']} match (StructureMatcher defaults)")
    Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
