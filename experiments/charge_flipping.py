"""Charge flipping (:mod:`powdersolve.maps.flipping`) on the pattern's magnitudes, started from the network's
phases, from phase 0 or from random phases, on generated development crystals.

Each crystal's stick pattern (B = 0, to the model's Q limit, 8 1/A: d = 0.79 A) gives the magnitudes. Starts:
``network`` (the posterior mean, sample 0), ``zero_phase`` (the zero-phase null map) and ``random<j>``
(random phases). Each flipped map is scored by the evaluate protocol (CC over the lattice's own rotations
and every origin shift), beside the posterior mean and the zero-phase null. ``best_r``: of all starts, the
map with the lowest flip R factor (no truth used); ``best_r_no_network``: the same without the network's
start (what charge flipping does alone).

    python experiments/charge_flipping.py --structures data/dev/orthorhombic_random --limit 30 \
        --json experiments/results/charge_flipping_dev_orthorhombic_random.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from powdersolve.baselines import zero_phase_baseline
from powdersolve.density import DensityConfig, density_grid
from powdersolve.diffraction.peaks import merge_tolerance
from powdersolve.diffraction.sticks import sticks
from powdersolve.evaluate import assign_models, input_amplitudes, load_cases, model_inputs
from powdersolve.inputs import sample_grids
from powdersolve.maps.flipping import FlipConfig, charge_flip, random_phase_map
from powdersolve.maps.modification import ModificationConfig, modify_density
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.metrics import lattice_rotations, map_correlation_per_sample


def negativity(grid: np.ndarray) -> float:
    """Sum of squared negative density over the sum of squared deviations from the mean: 0 for a map of
    atoms on an empty background; wrong phases put density below 0."""
    g = np.asarray(grid, dtype=np.float64)
    return float((np.minimum(g, 0.0) ** 2).sum() / max(float(((g - g.mean()) ** 2).sum()), 1e-300))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--structures", required=True)
    ap.add_argument("--grid", type=int, default=50)
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--delta", type=float, default=1.1)
    ap.add_argument("--reshare", type=int, default=20)
    ap.add_argument("--polish", type=int, default=10)
    ap.add_argument("--tol", type=float, default=None,
                    help="a grid reflection belongs to a peak within this distance in Q (1/A; FlipConfig.tol); default "
                         "one bin of the model's Q axis, as predict shares overlapped peaks; 1e-5 shares nothing "
                         "(single-crystal-like magnitudes: the ceiling without powder overlap)")
    ap.add_argument("--max-grid", type=int, default=0,
                    help="largest flipping grid (FlipConfig.max_grid); 0: never finer than the map's grid")
    ap.add_argument("--sampling", type=float, default=None,
                    help="grid points per d_min the flipping iterates on (FlipConfig.sampling); default the map's grid")
    ap.add_argument("--random-starts", type=int, default=1)
    ap.add_argument("--q-limit", type=float, default=None, help="measured range (1/A); default the model's")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    scored, _ = assign_models(load_cases(args.structures, None), None)
    scored = scored[: args.limit] if args.limit else scored
    rows = []
    t0 = time.perf_counter()
    for case, lm in scored:
        model, c, n = lm.model, case.crystal, args.grid
        q_limit = args.q_limit or model.cfg.q_max
        truth = density_grid(c, DensityConfig(b_iso=model.cfg.b_iso, grid=n))
        pattern = sticks(c, q_max=q_limit)
        pm = sample_grids(model, model_inputs(model, c, q_limit), 1, n, 0)[0]
        zero = zero_phase_baseline(input_amplitudes(model, c, pattern, q_limit), truth)
        rng = np.random.default_rng(0)
        starts = {"network": pm, "zero_phase": zero,
                  **{f"random{j}": random_phase_map(n, rng) for j in range(args.random_starts)}}
        cfg = FlipConfig(cycles=args.cycles, delta=args.delta, reshare=args.reshare, polish=args.polish,
                         sampling=args.sampling, max_grid=args.max_grid, b_iso=model.cfg.b_iso,
                         tol=args.tol or merge_tolerance(model.cfg.q_max, model.cfg.xrd_bins))
        peaks = MeasuredPeaks.from_sticks(pattern, q_limit)
        flipped = {k: charge_flip(s, c.lattice, peaks, cfg) for k, s in starts.items()}
        fo_pm = modify_density(pm[None], c.lattice, peaks, None, None,
                               ModificationConfig(cycles=0, scale="model", final="amplitudes", b_iso=model.cfg.b_iso,
                                                  tol=cfg.tol), electrons=float(pm.mean() * c.volume))[0]
        maps = {"posterior_mean": pm, "zero_phase": zero, "fo_posterior_mean": fo_pm,
                **{f"cf_{k}": f.grid for k, f in flipped.items()}}
        cc = map_correlation_per_sample(np.stack(list(maps.values())), truth, lattice_rotations(case.system))[0]
        row = {"file": case.file.name, "system": case.system, "natoms": int(len(c.numbers)),
               **{k: float(v) for k, v in zip(maps, cc, strict=True)},
               **{f"r_{k}": f.r_factor for k, f in flipped.items()}}
        row["checked"] = row["posterior_mean"] if flipped["network"].confirmed else row["cf_network"]
        row["neg_fo_pm"], row["neg_cf_network"] = negativity(fo_pm), negativity(flipped["network"].grid)
        row["cc_cf_vs_pm"] = float(map_correlation_per_sample(flipped["network"].grid[None], pm,
                                                              lattice_rotations(case.system)[:1])[0][0])
        row["pick_negativity"] = (row["posterior_mean"] if row["neg_fo_pm"] <= row["neg_cf_network"]
                                  else row["cf_network"])
        row["best_r"] = row["cf_" + min(flipped, key=lambda k: flipped[k].r_factor)]
        row["best_r_no_network"] = row["cf_" + min((k for k in flipped if k != "network"),
                                                   key=lambda k: flipped[k].r_factor)]
        rows.append(row)
        print(f"{case.file.name:34s} n={row['natoms']:3d} " + " ".join(
            f"{k}={v:.3f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    names = [k for k, v in rows[0].items() if isinstance(v, float)]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in names}
    print(json.dumps({"n": len(rows), "mean": mean}, indent=1))
    Path(args.json).write_text(json.dumps({"structures": args.structures, "settings": vars(args), "n": len(rows),
                                           "mean": mean, "seconds": time.perf_counter() - t0, "rows": rows},
                                          indent=1))


if __name__ == "__main__":
    main()
