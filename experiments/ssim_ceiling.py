"""How much of the paper-SSIM gap is the map's resolution, not the network?

For each crystal, score (paper SSIM, map CC) of:
- ``oracle``: the true CMED's own Fourier series cut to the model's reflections (|h|, |k|, |l| within
  the model's box and Q <= its q_max), i.e. a perfect network with the shipped output format;
- ``model``: the shipped model's prediction (5 samples, the evaluate protocol);
and of each after simple map post-processing (clipping negative density, extra blur) or with the
map's mean replaced by the truth's (a diagnostic, not a method). ``ssim_aligned`` is the SSIM at the
rotation and origin shift of the best map correlation.

Usage:
    python experiments/ssim_ceiling.py --weights powdersolve/weights/cubic.safetensors \
        --data data/build/cubic_dev --split val --limit 40 --json experiments/results/ssim_ceiling_cubic_dev.json
    python experiments/ssim_ceiling.py --weights ... --structures ../shared/benchmark/real/cubic --json ...
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from powdersolve.density import DensityConfig, density_grid
from powdersolve.evaluate import model_inputs
from powdersolve.inputs import sample_grids
from powdersolve.maps.sharpen import gaussian_blur
from powdersolve.metrics import score_predictions
from powdersolve.structures import crystal_system, iter_structure_files, load_crystal
from powdersolve.weights import load_model


def truncated(truth: np.ndarray, crystal, box: tuple[int, int, int], q_max: float) -> np.ndarray:
    """The grid's Fourier series kept only on |h|,|k|,|l| <= box with Q = 2 pi |h*| <= q_max."""
    n = truth.shape[0]
    coef = np.fft.ifftn(truth)
    f = np.rint(np.fft.fftfreq(n) * n).astype(int)
    h, k, l = np.meshgrid(f, f, f, indexing="ij")
    hkl = np.stack([h, k, l], -1).reshape(-1, 3).astype(float)
    q = 2 * np.pi * np.linalg.norm(hkl @ crystal.reciprocal, axis=1).reshape(n, n, n)
    keep = (np.abs(h) <= box[0]) & (np.abs(k) <= box[1]) & (np.abs(l) <= box[2]) & (q <= q_max + 1e-9)
    return np.fft.fftn(np.where(keep, coef, 0)).real


def true_mean(grid: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Diagnostic: the grid with its mean (F000 / V) replaced by the truth's."""
    return grid - grid.mean() + truth.mean()


VARIANTS = {
    "raw": lambda g, c, t: g,
    "clip0": lambda g, c, t: np.maximum(g, 0.0),
    "blur2": lambda g, c, t: gaussian_blur(g, c.lattice, 2.0),
    "true_mean": lambda g, c, t: true_mean(g, t),
}


def crystals_of(args) -> list:
    if args.structures:
        out = []
        for f in iter_structure_files(args.structures):
            c = load_crystal(f)
            if crystal_system(max(c.spacegroup, 1)) == args.system:
                out.append(c)
        return out
    from powdersolve.dataset import load_dataset

    return [r.crystal for r in load_dataset(args.data, split=args.split)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--structures", default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--split", default="val")
    p.add_argument("--system", default=None)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    model, _ = load_model(args.weights)
    args.system = args.system or model.cfg.system
    crystals = crystals_of(args)
    if args.limit:
        crystals = crystals[: args.limit]
    rows = []
    t0 = time.time()
    for c in crystals:
        truth = density_grid(c, DensityConfig(model.cfg.b_iso, 50))
        oracle = truncated(truth, c, model.cfg.hkl_box, model.cfg.q_max)
        preds = sample_grids(model, model_inputs(model, c), args.samples, 50).astype(np.float64)
        row = {"formula": c.formula, "spacegroup": c.spacegroup, "natoms": int(len(c.numbers))}
        for name, fn in VARIANTS.items():
            so = score_predictions(fn(oracle, c, truth)[None], truth)
            sm = score_predictions(np.stack([fn(g, c, truth) for g in preds]), truth)
            row[f"oracle_{name}"] = {"cc": so.cc, "ssim": so.ssim, "ssim_aligned": so.ssim_aligned}
            row[f"model_{name}"] = {"cc": sm.cc, "ssim": sm.ssim, "ssim_aligned": sm.ssim_aligned}
        rows.append(row)
        print(c.formula, c.spacegroup, {k: round(v["ssim"], 3) for k, v in row.items() if isinstance(v, dict)},
              flush=True)
    keys = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    summary = {k: {m: float(np.mean([r[k][m] for r in rows])) for m in ("cc", "ssim", "ssim_aligned")}
               for k in keys}
    out = {"n": len(rows), "summary": summary, "rows": rows, "wall_s": time.time() - t0, "args": vars(args)}
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
