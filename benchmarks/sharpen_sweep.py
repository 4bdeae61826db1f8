"""Paper SSIM and map CC of a model's maps before and after simple post-processing, on generated crystals.

Variants: raw; negative density clipped (``clip0``); extra blur B = 2 A^2 (``blur2``); and
:func:`powdersolve.sharpen.sharpen_map` at (power, B) = (1.5, 2) and (1.25, 1). Scored by the evaluate
protocol (5 samples, grid 50, best over samples and rotations). Used to choose the ``--sharpen``
setting on generated validation crystals, never on the benchmark.

    python benchmarks/sharpen_sweep.py --weights powdersolve/weights/trigonal.safetensors \
        --data data/build/trigonal_s --split val --limit 40 --json benchmarks/results/sharpen_trigonal_s_val.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from powdersolve.dataset import load_dataset
from powdersolve.density import DensityConfig, density_grid
from powdersolve.evaluate import model_inputs
from powdersolve.fileio import atomic_write_text
from powdersolve.inputs import sample_grids
from powdersolve.metrics import score_predictions
from powdersolve.sharpen import gaussian_blur, sharpen_map
from powdersolve.weights import load_model

VARIANTS = {
    "raw": lambda g, lat: g,
    "clip0": lambda g, lat: np.maximum(g, 0.0),
    "blur2": lambda g, lat: gaussian_blur(g, lat, 2.0),
    "pow1.5_blur2": lambda g, lat: sharpen_map(g, lat, 1.5, 2.0),
    "pow1.25_blur1": lambda g, lat: sharpen_map(g, lat, 1.25, 1.0),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, _ = load_model(args.weights)
    rows = []
    for r in load_dataset(args.data, split=args.split)[: args.limit]:
        c = r.crystal
        truth = density_grid(c, DensityConfig(model.cfg.b_iso, 50))
        preds = sample_grids(model, model_inputs(model, c), 5, 50).astype(np.float64)
        row = {"formula": c.formula}
        for name, fn in VARIANTS.items():
            s = score_predictions(np.stack([fn(g, c.lattice) for g in preds]), truth)
            row[name] = (s.cc, s.ssim)
        rows.append(row)
        print(c.formula, {k: round(v[1], 3) for k, v in row.items() if k != "formula"}, flush=True)
    gain = {k: np.array([r[k][1] - r["raw"][1] for r in rows]) for k in VARIANTS}
    means = {k: [float(np.mean([r[k][i] for r in rows])) for i in (0, 1)] for k in VARIANTS}
    doc = {"n": len(rows), "cc_ssim": means,
           "ssim_diff": {k: float(v.mean()) for k, v in gain.items()},
           "se": {k: float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None for k, v in gain.items()},
           "rows": rows, "args": {k: str(v) for k, v in vars(args).items()}}
    print(json.dumps({k: doc[k] for k in ("n", "cc_ssim", "ssim_diff", "se")}, indent=1))
    atomic_write_text(args.json, json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
