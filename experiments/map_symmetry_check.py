"""Does the space-group search find the true group in predicted maps, and does averaging improve them?

For each crystal: the model's posterior-mean map (stick pattern, true cell and composition, as in
``powdersolve evaluate``), the space-group search of :mod:`powdersolve.maps.symmetry`, and:

- whether the true space group is among the plausible groups the solver reads (``--top``), and
  whether it is the first;
- the map correlation (rotations and origin shifts, as ``evaluate``) with the true CMED of the raw
  map, of the map averaged over the first plausible group, and of the map averaged over the true
  group at its best origin (the ceiling of averaging).

    .venv/bin/python experiments/map_symmetry_check.py --dataset data/build/trigonal_r --limit 24 \\
        --json experiments/results/map_symmetry_dev_trigonal.json
    .venv/bin/python experiments/map_symmetry_check.py --real trigonal   # report only: never tune on it
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from powdersolve.cell import metric_family
from powdersolve.density import DensityConfig, density_grid
from powdersolve.evaluate import model_inputs
from powdersolve.fileio import atomic_write_text
from powdersolve.inputs import sample_grids
from powdersolve.maps.symmetry import plausible_groups, search_space_groups, symmetrise_map
from powdersolve.metrics import map_correlation_per_sample
from powdersolve.structures import load_crystal
from powdersolve.weights import load_model

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = {"cubic": ROOT / "powdersolve/weights/cubic.safetensors",
           "trigonal": ROOT / "powdersolve/weights/trigonal.safetensors"}


def crystals(args: argparse.Namespace) -> list[tuple[str, object]]:
    if args.real:
        files = sorted((ROOT.parent / "shared/benchmark/real" / args.real).glob("*.cif"))[: args.limit]
        return [(f.stem, load_crystal(f)) for f in files]
    from powdersolve.dataset import load_dataset

    recs = [r for r in load_dataset(args.dataset) if r.split in ("val", "test")][: args.limit]
    return [(f"{r.crystal.formula}_{r.crystal.spacegroup}", r.crystal) for r in recs]


def best_cc(grid: np.ndarray, truth: np.ndarray) -> float:
    return float(np.max(map_correlation_per_sample(grid[None].astype(np.float32), truth)[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, default=ROOT / "data/build/trigonal_r")
    ap.add_argument("--real", choices=["cubic", "trigonal"], default=None)
    ap.add_argument("--system", choices=["cubic", "trigonal"], default="trigonal")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--slack", type=float, default=0.2)
    ap.add_argument("--json", type=Path, default=ROOT / "experiments/results/map_symmetry_check.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    system = args.real or args.system
    model, _ = load_model(WEIGHTS[system])
    rows = []
    for name, c in crystals(args):
        t0 = time.perf_counter()
        truth = density_grid(c, DensityConfig(b_iso=model.cfg.b_iso, grid=50))
        pred = sample_grids(model, model_inputs(model, c), 1, 50)[0].astype(np.float64)
        family = metric_family(c.lattice)
        found = search_space_groups(pred, family)
        plaus = plausible_groups(found, top=args.top, slack=args.slack)
        true = next(g for g in found if g.number == c.spacegroup)
        row = {"name": name, "spacegroup": c.spacegroup, "atoms": len(c.numbers),
               "plausible": [(g.number, g.symbol, round(g.cc_min, 3)) for g in plaus],
               "true_cc_min": round(true.cc_min, 3),
               "true_rank_by_cc_min": 1 + [g.number for g in found].index(c.spacegroup),
               "true_in_plausible": any(g.number == c.spacegroup for g in plaus),
               "true_first": bool(plaus) and plaus[0].number == c.spacegroup,
               "cc_raw": best_cc(pred, truth),
               "cc_first_group": (best_cc(symmetrise_map(pred, plaus[0].number, plaus[0].origin), truth)
                                  if plaus else best_cc(pred, truth)),  # no plausible group: the map as it is
               "cc_true_group": best_cc(symmetrise_map(pred, true.number, true.origin), truth),
               "seconds_search": time.perf_counter() - t0}
        rows.append(row)
        print(f"{name:22s} #{c.spacegroup:3d} true cc_min {row['true_cc_min']:.2f} in {row['true_in_plausible']!s:5s} "
              f"first {row['true_first']!s:5s} plausible {row['plausible']}  CC raw {row['cc_raw']:.3f} "
              f"first {row['cc_first_group']:.3f} true {row['cc_true_group']:.3f}", flush=True)
    n = len(rows)
    summary = {"n": n, "true_in_plausible": sum(r["true_in_plausible"] for r in rows),
               "true_first": sum(r["true_first"] for r in rows),
               "cc_raw_mean": float(np.mean([r["cc_raw"] for r in rows])),
               "cc_first_group_mean": float(np.mean([r["cc_first_group"] for r in rows])),
               "cc_true_group_mean": float(np.mean([r["cc_true_group"] for r in rows]))}
    print(json.dumps(summary, indent=1))
    doc = {"settings": {"dataset": None if args.real else str(args.dataset), "real": args.real,
                        "limit": args.limit, "top": args.top, "slack": args.slack, "weights": str(WEIGHTS[system]),
                        "pattern": "stick, true cell and composition (as evaluate)", "map": "posterior mean"},
           "summary": summary, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
