"""Paired comparison of two density models on generated validation crystals (never the benchmark).

Each model predicts the posterior-mean map (true cell, no augmentation) of the same val + test
crystals of a dataset, per generator; map correlation (24 rotations x all origin shifts, grid 24)
against the true CMED. With ``--samples N`` it also scores the best of the posterior mean and N - 1
latent draws, by map CC and by the paper's SSIM (the evaluate protocol at this grid). Prints and saves
the means and the paired differences with their standard errors, and the same CC figures for the
elements among the crystals (``elements``; the real benchmark sets hold many) and for the chiral ones
(``chiral``, Sohncke groups: their hand is not in the pattern).

    python benchmarks/compare_models.py --data data/build/trigonal_r \
        --a powdersolve/weights/trigonal.safetensors --b runs/trigonal_r/best.safetensors
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from powdersolve.dataset import load_dataset
from powdersolve.density import DensityConfig, density_grid
from powdersolve.fileio import atomic_write_text
from powdersolve.metrics import map_correlation, score_predictions
from powdersolve.structures import is_chiral
from powdersolve.train import TrainConfig, TrainingSet, aux_of
from powdersolve.weights import load_model

ROOT = Path(__file__).resolve().parents[1]


def scores(weights: Path, records: list, grid: int, samples: int = 1) -> dict[str, np.ndarray]:
    """Per-record scores: ``cc`` of the posterior mean and, with ``samples`` > 1, ``cc_best`` and ``ssim_best``,
    the map CC and the paper's SSIM best over the posterior mean and ``samples`` - 1 latent draws (the
    evaluate protocol at this grid)."""
    model, _ = load_model(weights)
    model.eval()
    data = TrainingSet(records, model.cfg, TrainConfig())
    gen = torch.Generator().manual_seed(0)
    out: dict[str, list] = {"cc": [], "cc_best": [], "ssim_best": []}
    for start in range(0, len(records), 32):
        idx = np.arange(start, min(start + 32, len(records)))
        b = data.batch(idx, np.random.default_rng(0), augment=False)
        aux = aux_of(b)
        with torch.no_grad():
            draws, _ = model.encode_draws(b["xrd"], b["comp"], max(samples, 1), gen)
            grids = np.stack([model.grid(c, grid, aux=aux).numpy() for c in draws], 1)  # (B, S, n, n, n)
        for j, i in enumerate(idx):
            truth = density_grid(records[i].crystal, DensityConfig(model.cfg.b_iso, grid))
            out["cc"].append(map_correlation(grids[j, 0], truth))
            if samples > 1:
                sc = score_predictions(grids[j], truth)
                out["cc_best"].append(sc.cc)
                out["ssim_best"].append(sc.ssim)
    return {k: np.array(v) for k, v in out.items() if v}


def random_hands(records: list, rng: np.random.Generator) -> list:
    """The records with each chiral crystal replaced by its inverse with probability 1/2."""
    out = []
    for r in records:
        c = r.crystal
        if is_chiral(c.spacegroup) and rng.random() < 0.5:
            r = replace(r, crystal=replace(c, frac=-c.frac % 1.0))
        out.append(r)
    return out


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float | None]:
    """Means of ``a`` and ``b``, the mean paired difference b - a and its standard error (None for one crystal)."""
    d = b - a
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else None
    return float(a.mean()), float(b.mean()), float(d.mean()), se


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--a", type=Path, required=True, help="reference model")
    ap.add_argument("--b", type=Path, required=True, help="candidate model")
    ap.add_argument("--limit", type=int, default=150, help="crystals per generator")
    ap.add_argument("--grid", type=int, default=24)
    ap.add_argument("--samples", type=int, default=1,
                    help="also score the best of the posterior mean and samples-1 latent draws (CC and paper SSIM)")
    ap.add_argument("--splits", default="val,test",
                    help="splits to score (comma-separated); 'test' alone when a run was selected on 'val'")
    ap.add_argument("--random-hand", action="store_true",
                    help="invert each chiral crystal with probability 1/2 (seeded): its pattern is unchanged, and "
                         "real crystals come in either hand, while a generator may keep a prototype's one")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "compare_models.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    splits = tuple(s for s in args.splits.split(",") if s)
    records = [r for r in load_dataset(args.data) if r.split in splits]
    if args.random_hand:
        records = random_hands(records, np.random.default_rng(0))
    doc = {"data": str(args.data), "splits": list(splits), "a": str(args.a), "b": str(args.b), "grid": args.grid,
           "samples": args.samples, "random_hand": args.random_hand,
           "generators": {}}
    for gen in sorted({r.generator for r in records}):
        sel = [r for r in records if r.generator == gen][: args.limit]
        a, b = scores(args.a, sel, args.grid, args.samples), scores(args.b, sel, args.grid, args.samples)
        cc_a, cc_b, diff, se = _paired(a["cc"], b["cc"])
        entry = {"n": len(sel), "cc_a": cc_a, "cc_b": cc_b, "diff": diff, "diff_se": se}
        for key in ("cc_best", "ssim_best"):
            if key in a:
                ma, mb, diff, se = _paired(a[key], b[key])
                entry.update({f"{key}_a": ma, f"{key}_b": mb, f"{key}_diff": diff, f"{key}_diff_se": se})
        subsets = {
            # elements' own structures, apart: the benchmark sets hold many
            "elements": np.array([len(set(r.crystal.numbers.tolist())) == 1 for r in sel]),
            # chiral crystals (Sohncke groups), whose hand the pattern cannot tell
            "chiral": np.array([is_chiral(r.crystal.spacegroup) for r in sel]),
        }
        for name, mask in subsets.items():
            if 1 < mask.sum() < len(sel):
                sub = {"n": int(mask.sum())}
                # The same key names as the whole set's: cc_a, ..., diff_se; cc_best_a, ..., cc_best_diff_se.
                for key, names in (("cc", ("cc_a", "cc_b", "diff", "diff_se")),
                                   ("cc_best", ("cc_best_a", "cc_best_b", "cc_best_diff", "cc_best_diff_se"))):
                    if key in a:
                        sub.update(zip(names, _paired(a[key][mask], b[key][mask])))
                entry[name] = sub
        doc["generators"][gen] = entry
        print(gen, json.dumps(entry), flush=True)
    atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
