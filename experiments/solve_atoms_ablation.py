"""Density -> atoms settings compared on generated (not benchmark) crystals: which choices help.

For each crystal of a generated dataset (e.g. ``powdersolve data build --generator prototypes,random
--system cubic --count 160 --out data/build/cubic_dev --workers 1 --seed 11 --no-paper-encoding``),
the shipped model of the system predicts ``--samples`` maps (true cell and composition, grid 40) plus
their mean; atoms are read from every map with each variant of
:func:`powdersolve.solve.atoms.density_to_structures`, without refinement. Reported per variant:
crystals where any map gives a StructureMatcher (defaults) match, and matching maps in all.

Variants: ``base`` (spglib at 0.2 A, best Z only), ``+escalate`` (tolerance raised to the cell's crystal
family), ``+2 Z`` (the two most plausible Z read), ``+centring`` (lattice centring detected and imposed).

    python experiments/solve_atoms_ablation.py --data data/build/cubic_dev --system cubic --limit 80
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core.periodic_table import Element

from powdersolve.dataset import load_dataset
from powdersolve.errors import PowdersolveError
from powdersolve.evaluate import model_inputs
from powdersolve.fileio import atomic_write_text
from powdersolve.inputs import composition_amounts, sample_grids
from powdersolve.solve.atoms import density_to_structures
from powdersolve.weights import load_model, shipped_weights

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "base": dict(escalate=False, centre=False, n_z=1),
    "+escalate": dict(escalate=True, centre=False, n_z=1),
    "+escalate +2 Z": dict(escalate=True, centre=False, n_z=2),
    "+escalate +2 Z +centring (shipped)": dict(escalate=True, centre=True, n_z=2),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--system", default="cubic")
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--grid", type=int, default=40)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    model, _ = load_model(shipped_weights(args.system))
    matcher = StructureMatcher()
    records = load_dataset(args.data)[: args.limit]
    totals = {k: {"crystals_matched": 0, "maps_matched": 0} for k in VARIANTS}
    t0 = time.perf_counter()
    for r in records:
        c = r.crystal
        truth = c.to_structure()
        grids = sample_grids(model, model_inputs(model, c), args.samples, args.grid)
        grids = [np.mean(grids, axis=0), *grids]
        comp = {Element.from_Z(z).symbol: v for z, v in composition_amounts(c).items()}
        line = []
        for name, kw in VARIANTS.items():
            hits = []
            for g in grids:
                try:
                    found = density_to_structures(g, c.lattice, comp, **kw)
                    hits.append(any(bool(matcher.fit(a.structure, truth)) for a in found))
                except PowdersolveError:
                    hits.append(False)
            totals[name]["crystals_matched"] += any(hits)
            totals[name]["maps_matched"] += sum(hits)
            line.append(f"{name}: {sum(hits)}")
        print(c.formula, c.spacegroup, "|", ", ".join(line), flush=True)
    doc = {"data": str(args.data), "system": args.system, "n_crystals": len(records),
           "maps_per_crystal": args.samples + 1, "grid": args.grid, "variants": totals,
           "seconds": time.perf_counter() - t0}
    print(json.dumps(doc["variants"], indent=1))
    out = args.json or ROOT / "experiments" / "results" / f"solve_atoms_ablation_{args.system}.json"
    atomic_write_text(out, json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
