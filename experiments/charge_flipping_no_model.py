"""Charge flipping without any network, from random phases: what a cell with no shipped model (monoclinic,
triclinic) could get today.

Each crystal's stick pattern (B = 0, to Q = 8 1/A) gives the magnitudes; ``--starts`` random-phase starts
are flipped with the shipped settings (:class:`powdersolve.maps.flipping.FlipConfig`, merging tolerance of
the models' Q axis), and the one with the lowest flip R is the answer (no truth used). Scored as `evaluate`
scores (the lattice's own rotations, every origin shift) against the CMED at B = 8 A^2; the best start picked
against the truth is listed beside as an oracle.

    python experiments/charge_flipping_no_model.py --structures ../shared/benchmark/real/monoclinic \
        --json experiments/results/charge_flipping_no_model_real_monoclinic.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from powdersolve.density import DensityConfig, density_grid
from powdersolve.diffraction.peaks import merge_tolerance
from powdersolve.diffraction.sticks import sticks
from powdersolve.maps.flipping import FlipConfig, charge_flip, random_phase_map
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.metrics import lattice_rotations, map_correlation_per_sample
from powdersolve.structures import crystal_system, iter_structure_files, load_crystal

Q_MAX, B_ISO = 8.0, 8.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--structures", required=True)
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--grid", type=int, default=50)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    cfg = FlipConfig(b_iso=B_ISO, tol=merge_tolerance())
    rows = []
    for path in list(iter_structure_files(args.structures))[: args.limit]:
        c = load_crystal(path)
        truth = density_grid(c, DensityConfig(b_iso=B_ISO, grid=args.grid))
        pattern = sticks(c, q_max=Q_MAX)
        rng = np.random.default_rng(0)
        runs = [charge_flip(random_phase_map(args.grid, rng), c.lattice, MeasuredPeaks.from_sticks(pattern, Q_MAX), cfg)
                for _ in range(args.starts)]
        system = crystal_system(c.spacegroup)
        cc = map_correlation_per_sample(np.stack([r.grid for r in runs]), truth, lattice_rotations(system))[0]
        pick = int(np.argmin([r.r_factor for r in runs]))
        rows.append({"file": path.name, "system": system, "natoms": int(len(c.numbers)),
                     "cc_lowest_r": float(cc[pick]), "cc_best_oracle": float(cc.max()),
                     "r": [r.r_factor for r in runs]})
        print(json.dumps(rows[-1]), flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("cc_lowest_r", "cc_best_oracle")}
    print(json.dumps({"n": len(rows), **mean}))
    Path(args.json).write_text(json.dumps({"settings": {**vars(args), "flip": str(cfg)}, "n": len(rows), "mean": mean,
                                           "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
