"""Z read from the network's posterior-mean map, on a folder of structure files (the real sets: report only).

For each structure: its simulated pattern (evaluate's protocol), the model's posterior-mean map on a
50^3 grid, and :func:`powdersolve.maps.scale.formula_units_from_map` against the true Z per
reduced formula. Prints one line per crystal and writes the JSON: how many got a Z, how many of
those are right, and the rows (formula, true Z, read Z or null, candidates).

    python experiments/formula_units_structures.py --weights powdersolve/weights/cubic.safetensors \\
        --structures ../shared/benchmark/real/cubic --json experiments/results/formula_units_real_cubic.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from pymatgen.core import Composition

from powdersolve.evaluate import cell_formula, model_inputs
from powdersolve.fileio import atomic_write_text
from powdersolve.inputs import sample_grids
from powdersolve.maps.scale import formula_units_from_map
from powdersolve.structures import iter_structure_files, load_crystal
from powdersolve.weights import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--structures", required=True, type=Path)
    ap.add_argument("--grid", type=int, default=50)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, _ = load_model(args.weights)
    rows = []
    for path in iter_structure_files(args.structures):
        c = load_crystal(path)
        reduced, z_true = Composition(cell_formula(c)).get_reduced_composition_and_factor()
        mean_map = sample_grids(model, model_inputs(model, c), 1, args.grid)[0]
        z, candidates = formula_units_from_map(mean_map, c.lattice, reduced)
        rows.append({"file": path.name, "formula": reduced.reduced_formula, "z_true": int(round(z_true)), "z_map": z,
                     "candidates": candidates})
        print(path.name, reduced.reduced_formula, int(round(z_true)), z, candidates, flush=True)
    read = [r for r in rows if r["z_map"] is not None]
    doc = {"n": len(rows), "n_read": len(read), "n_right": sum(r["z_map"] == r["z_true"] for r in read),
           "rows": rows, "args": {k: str(v) for k, v in vars(args).items()}}
    print(json.dumps({k: v for k, v in doc.items() if k not in ("rows", "args")}))
    atomic_write_text(args.json, json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
