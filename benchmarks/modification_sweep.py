"""Paper SSIM and map CC before and after density modification, on generated crystals.

Each crystal's stick pattern gives the observed magnitudes (:mod:`powdersolve.modification`); the
network's 5 latent samples give the phases. Variants: the raw maps, the ``--sharpen 1.25,1``
post-processing, and density modification: 10 error-reduction cycles returning the amplitude-constrained
map (``dm10``) or its non-negative part (``_clip``), 30 cycles, cycles on magnitudes at B = 4 A^2
blurred back to the target's B afterwards (``_b4``), the model-fitted scale instead of Wilson's, and
two of them followed by the sharpening. The same modification applied to random atoms (true
composition and cell, 5 draws) measures what the pattern's amplitudes do without the network's
phases. Scored by the evaluate protocol (grid 50, best over samples and rotations). Used to choose
the ``--modify`` setting on generated validation crystals, never on the benchmark.

    python benchmarks/modification_sweep.py --weights powdersolve/weights/trigonal.safetensors \
        --data data/build/trigonal_s --split val --limit 40 --json benchmarks/results/modification_trigonal_s_val.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from powdersolve.baselines import baseline_grids
from powdersolve.dataset import load_dataset
from powdersolve.density import DensityConfig, density_grid
from powdersolve.diffraction.sticks import sticks
from powdersolve.evaluate import model_inputs
from powdersolve.fileio import atomic_write_text
from powdersolve.inputs import sample_grids
from powdersolve.metrics import score_predictions
from powdersolve.modification import ModificationConfig, modify_density
from powdersolve.sharpen import sharpen_map

SETTINGS = {
    "dm10": ModificationConfig(cycles=10),
    "dm10_clip": ModificationConfig(cycles=10, final="density"),
    "dm30_clip": ModificationConfig(cycles=30, final="density"),
    "dm10_clip_b4": ModificationConfig(cycles=10, final="density", b_work=4.0),
    "dm10_clip_model_scale": ModificationConfig(cycles=10, final="density", scale="model"),
}
SHARPENED = ("dm10_clip", "dm10_clip_b4")  # also scored after --sharpen 1.25,1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from powdersolve.weights import load_model

    model, _ = load_model(args.weights)
    b = model.cfg.b_iso
    rows = []
    for r in load_dataset(args.data, split=args.split)[: args.limit]:
        c = r.crystal
        dcfg = DensityConfig(b, 50)
        truth = density_grid(c, dcfg)
        s = sticks(c, q_max=model.cfg.q_max)
        preds = sample_grids(model, model_inputs(model, c), 5, 50).astype(np.float64)
        rand = np.stack(baseline_grids(c, truth, dcfg, 0, 5)["random_atoms"])
        row: dict = {"formula": c.formula, "spacegroup": c.spacegroup}
        variants = {"raw": preds, "sharpen": sharpen_map(preds, c.lattice, 1.25, 1.0), "random_atoms": rand}
        t0 = time.perf_counter()
        for name, mcfg in SETTINGS.items():
            variants[name] = modify_density(preds, c.lattice, s.q, s.intensity, model.cfg.q_max, c.numbers,
                                            c.occupancy, mcfg)
        row["dm_s"] = (time.perf_counter() - t0) / len(SETTINGS)
        for name in SHARPENED:
            variants[f"{name}_sharpen"] = sharpen_map(variants[name], c.lattice, 1.25, 1.0)
        variants["random_atoms_dm10_clip"] = modify_density(rand, c.lattice, s.q, s.intensity, model.cfg.q_max,
                                                            c.numbers, c.occupancy, SETTINGS["dm10_clip"])
        for name, g in variants.items():
            sc = score_predictions(g, truth)
            row[name] = (sc.cc, sc.ssim)
        rows.append(row)
        print(c.formula, c.spacegroup, {k: [round(x, 3) for x in v] for k, v in row.items() if isinstance(v, tuple)},
              flush=True)
    names = [k for k in rows[0] if isinstance(rows[0][k], tuple)]
    means = {k: [float(np.mean([r[k][i] for r in rows])) for i in (0, 1)] for k in names}
    diff = {k: np.array([r[k][1] - r["raw"][1] for r in rows]) for k in names}
    doc = {"n": len(rows), "cc_ssim": means,
           "ssim_diff": {k: float(v.mean()) for k, v in diff.items()},
           "se": {k: float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None for k, v in diff.items()},
           "dm_s_per_crystal": float(np.mean([r["dm_s"] for r in rows])),
           "rows": rows, "args": {k: str(v) for k, v in vars(args).items()}}
    print(json.dumps({k: doc[k] for k in ("n", "cc_ssim", "ssim_diff", "se", "dm_s_per_crystal")}, indent=1))
    atomic_write_text(args.json, json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
