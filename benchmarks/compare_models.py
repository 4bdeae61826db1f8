"""Paired comparison of two density models on generated validation crystals (never the benchmark).

Each model predicts the posterior-mean map (true cell, no augmentation) of the same val + test
crystals of a dataset, per generator; map correlation (24 rotations x all origin shifts, grid 24)
against the true CMED. Prints and saves the means and the paired difference with its standard error.

    python benchmarks/compare_models.py --data data/build/trigonal_r \
        --a powdersolve/weights/trigonal.safetensors --b runs/trigonal_r/best.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from powdersolve.dataset import load_dataset
from powdersolve.density import DensityConfig, density_grid
from powdersolve.fileio import atomic_write_text
from powdersolve.metrics import map_correlation
from powdersolve.train import TrainConfig, TrainingSet, aux_of
from powdersolve.weights import load_model

ROOT = Path(__file__).resolve().parents[1]


def scores(weights: Path, records: list, grid: int) -> np.ndarray:
    """Map CC of the posterior mean of each record."""
    model, _ = load_model(weights)
    model.eval()
    data = TrainingSet(records, model.cfg, TrainConfig())
    out = []
    for start in range(0, len(records), 32):
        idx = np.arange(start, min(start + 32, len(records)))
        b = data.batch(idx, np.random.default_rng(0), augment=False)
        with torch.no_grad():
            cond, _ = model.encode(b["xrd"], b["comp"], sample=False)
            grids = model.grid(cond, grid, aux=aux_of(b)).numpy()
        for j, i in enumerate(idx):
            truth = density_grid(records[i].crystal, DensityConfig(model.cfg.b_iso, grid))
            out.append(map_correlation(grids[j], truth))
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--a", type=Path, required=True, help="reference model")
    ap.add_argument("--b", type=Path, required=True, help="candidate model")
    ap.add_argument("--limit", type=int, default=150, help="crystals per generator")
    ap.add_argument("--grid", type=int, default=24)
    ap.add_argument("--splits", default="val,test",
                    help="splits to score (comma-separated); 'test' alone when a run was selected on 'val'")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "compare_models.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    splits = tuple(s for s in args.splits.split(",") if s)
    records = [r for r in load_dataset(args.data) if r.split in splits]
    doc = {"data": str(args.data), "splits": list(splits), "a": str(args.a), "b": str(args.b), "grid": args.grid,
           "generators": {}}
    for gen in sorted({r.generator for r in records}):
        sel = [r for r in records if r.generator == gen][: args.limit]
        a, b = scores(args.a, sel, args.grid), scores(args.b, sel, args.grid)
        d = b - a
        entry = {"n": len(sel), "cc_a": float(a.mean()), "cc_b": float(b.mean()), "diff": float(d.mean()),
                 "diff_se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None}
        doc["generators"][gen] = entry
        print(gen, json.dumps(entry), flush=True)
    atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
