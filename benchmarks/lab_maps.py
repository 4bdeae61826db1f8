"""Density maps from laboratory-like patterns of the real structures: the network's mean map and its
charge-flipped map, from the peaks `predict` picks, beside charge flipping without the network.

`powdersolve evaluate` scores maps from exact stick intensities to Q = 8 1/A. Here each real structure's
pattern comes from the independent simulator (`benchmarks/independent.py::lab_pattern`: Cu K-alpha1+2,
widths growing with angle, zero error, background, Poisson noise, 5-120 deg unless ``--hi``), `predict`
reads it with the true cell and composition (K-alpha2 stripped, peaks picked and fitted), and charge
flipping works on those picked peaks only. Rows per crystal: CC of the posterior mean (``density.*``), of
the flipped map (``density_flipped.*``), of the map the flipping prefers (the mean map where the flipped map
confirms it), of the same flipping started from random phases (no network; best of none, one start), of the
zero-phase map (the picked peaks' magnitudes, shared equally, every phase 0) and of that map flipped.
Scored as `evaluate` scores (the lattice's own rotations, every origin shift), against the CMED at B = 8 A^2.

    python benchmarks/lab_maps.py --systems orthorhombic,tetragonal --json benchmarks/results/lab_maps.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from independent import CU_KA1, lab_pattern

from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import PowdersolveError
from powdersolve.formats.pattern import make_pattern
from powdersolve.maps.flipping import FlipConfig, charge_flip, random_phase_map
from powdersolve.maps.peak_sharing import MeasuredPeaks, peaks_on_grid, shared_magnitudes
from powdersolve.metrics import lattice_rotations, map_correlation_per_sample
from powdersolve.predict import PredictConfig, predict
from powdersolve.predict.postprocess import measured_peaks
from powdersolve.predict.steps import PEAK_TOL_Q
from powdersolve.structures import iter_structure_files, load_crystal

REAL = Path(__file__).resolve().parents[2] / "shared" / "benchmark" / "real"


def zero_phase_map(n: int, lattice: np.ndarray, peaks: MeasuredPeaks, b_iso: float) -> np.ndarray:
    """The (n, n, n) Fourier map of the picked peaks' magnitudes (each peak shared equally among its
    reflections, damped to ``b_iso`` A^2) with every phase 0: the null a map must beat."""
    on = peaks_on_grid(n, lattice, peaks, PEAK_TOL_Q, "zero-phase map")
    hit = on.member >= 0
    mag = shared_magnitudes(np.zeros(hit.shape), np.where(hit, on.member, 0), hit.astype(np.float64), on.on_grid,
                            on.peak_on_grid)
    return np.fft.ifftn(mag * np.exp(-b_iso * (on.q / (4 * np.pi)) ** 2)).real


def score_one(path: Path, system: str, hi: float, flip: FlipConfig, seed: int) -> dict:
    crystal = load_crystal(path)
    tt, y = lab_pattern(crystal.to_structure(), seed=seed, hi=hi)
    pattern = make_pattern(tt, y, None, CU_KA1, Path(f"{path.stem}_lab.xy"), "xy")
    cfg = PredictConfig(composition=crystal.formula, cell=tuple(float(v) for v in crystal.cell_parameters),
                        samples=1, flip=flip)
    pred = predict(pattern, cfg)
    truth = density_grid(crystal, DensityConfig(b_iso=pred.model["b_iso_A2"], grid=pred.mean.shape[-1]))
    peaks = measured_peaks(pred)
    n, b_iso = pred.mean.shape[-1], pred.model["b_iso_A2"]
    null_flip = replace(flip, b_iso=b_iso, tol=PEAK_TOL_Q)
    rnd = charge_flip(random_phase_map(n, np.random.default_rng(seed)), pred.lattice, peaks, null_flip)
    zero = zero_phase_map(n, pred.lattice, peaks, b_iso)
    zero_flipped = charge_flip(zero, pred.lattice, peaks, null_flip)
    preferred = pred.mean if pred.flipping["confirms_mean"] else pred.flipped
    maps = np.stack([pred.mean, pred.flipped, preferred, rnd.grid, zero, zero_flipped.grid,
                     zero_flipped.preferred(zero)])
    cc = map_correlation_per_sample(maps, truth, lattice_rotations(system))[0]
    return {"file": path.name, "system": system, "model": pred.system, "natoms": int(len(crystal.numbers)),
            "peaks": int(peaks.q.size), "q_limit": peaks.q_limit, "posterior_mean": float(cc[0]),
            "flipped": float(cc[1]),
            "checked": float(cc[2]), "flipped_from_random_phases": float(cc[3]), "zero_phase": float(cc[4]),
            "zero_phase_flipped": float(cc[5]), "zero_phase_flipped_checked": float(cc[6]),
            "agreement": pred.flipping["agreement_with_mean"], "r_factor": pred.flipping["r_factor"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="cubic,trigonal,hexagonal,tetragonal,orthorhombic")
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--hi", type=float, default=120.0, help="upper end of the scan (deg 2-theta)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    if not args.real.is_dir():
        raise SystemExit(f"error: {args.real} not found (the held-out real set beside the repository)")
    flip = FlipConfig()
    rows, t0 = [], time.perf_counter()
    for system in args.systems.split(","):
        for path in list(iter_structure_files(args.real / system))[: args.limit]:
            try:
                row = score_one(path, system, args.hi, flip, args.seed)
            except PowdersolveError as exc:
                row = {"file": path.name, "system": system, "error": str(exc)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    keys = ("posterior_mean", "flipped", "checked", "flipped_from_random_phases", "zero_phase", "zero_phase_flipped",
            "zero_phase_flipped_checked")
    summary = {}
    for system in args.systems.split(","):
        ok = [r for r in rows if r["system"] == system and "error" not in r]
        summary[system] = {"n": len(ok), "errors": sum(r["system"] == system and "error" in r for r in rows),
                           **{k: float(np.mean([r[k] for r in ok])) if ok else None for k in keys}}
    print(json.dumps(summary, indent=1))
    Path(args.json).write_text(json.dumps({"settings": {**vars(args), "real": str(args.real), "flip": str(flip)},
                                           "summary": summary, "rows": rows,
                                           "seconds": time.perf_counter() - t0}, indent=1))


if __name__ == "__main__":
    main()
