"""Shared loop of the post-processing sweeps (``sharpen_sweep.py``, ``modification_sweep.py``).

For each generated crystal of a dataset split: the true CMED (grid 50, the model's B), the model's 5
latent samples, then every variant the caller makes of them, scored by the evaluate protocol (best
over samples and rotations). Prints one line per crystal and the summary, and writes the JSON: mean
CC and SSIM per variant, the paired SSIM gain over the raw maps and its standard error, the rows.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from powdersolve.dataset import load_dataset
from powdersolve.density import DensityConfig, density_grid
from powdersolve.evaluate import model_inputs
from powdersolve.fileio import atomic_write_text
from powdersolve.inputs import sample_grids
from powdersolve.metrics import score_predictions
from powdersolve.model import CMEDNet
from powdersolve.structures.crystal import Crystal

#: variants(preds (5, 50, 50, 50), crystal, model, truth) -> ({name: grids}, {extra numeric field: value})
Variants = Callable[[np.ndarray, Crystal, CMEDNet, np.ndarray], tuple[dict[str, np.ndarray], dict[str, float]]]


def run_sweep(description: str, variants: Variants) -> None:
    """Parse ``--weights --data --split --limit --json``, score ``variants`` on the split and save the JSON.

    An extra field ``k`` of the rows is averaged into ``k_per_crystal``.
    """
    from powdersolve.weights import load_model

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, _ = load_model(args.weights)
    crystals = [r.crystal for r in load_dataset(args.data, split=args.split)[: args.limit]]
    sweep_crystals(crystals, model, variants, args.json, {k: str(v) for k, v in vars(args).items()})


def sweep_crystals(crystals: list[Crystal], model: CMEDNet, variants: Variants, out: Path, args: dict) -> dict:
    """Score ``variants`` of ``model``'s 5 samples on each crystal, print, and save the JSON to ``out``."""
    rows = []
    for c in crystals:
        truth = density_grid(c, DensityConfig(model.cfg.b_iso, 50))
        preds = sample_grids(model, model_inputs(model, c), 5, 50).astype(np.float64)
        grids, extra = variants(preds, c, model, truth)
        row: dict = {"formula": c.formula, "spacegroup": c.spacegroup, **extra}
        for name, g in {"raw": preds, **grids}.items():
            s = score_predictions(g, truth)
            row[name] = (s.cc, s.ssim)
        rows.append(row)
        print(c.formula, c.spacegroup, {k: [round(x, 3) for x in v] for k, v in row.items() if isinstance(v, tuple)},
              flush=True)
    names = [k for k in rows[0] if isinstance(rows[0][k], tuple)]
    means = {k: [float(np.mean([r[k][i] for r in rows])) for i in (0, 1)] for k in names}
    diff = {k: np.array([r[k][1] - r["raw"][1] for r in rows]) for k in names}
    doc = {"n": len(rows), "cc_ssim": means,
           "ssim_diff": {k: float(v.mean()) for k, v in diff.items()},
           "se": {k: float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None for k, v in diff.items()},
           **{f"{k}_per_crystal": float(np.mean([r[k] for r in rows])) for k in rows[0]
              if isinstance(rows[0][k], float)},
           "rows": rows, "args": args}
    print(json.dumps({k: v for k, v in doc.items() if k not in ("rows", "args")}, indent=1))
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    return doc
