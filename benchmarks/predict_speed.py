"""End-to-end `powdersolve predict` time and peak memory on a simulated CaF2 Cu K-alpha scan.

Usage: .venv/bin/python benchmarks/predict_speed.py [--threads 2] [--samples 20] [--grids 50 96 128] [--repeats 3]

Each configuration runs in a fresh child process (so ru_maxrss is that run's own peak) with
``torch.set_num_threads(threads)``: the child times ``predict`` (read, preprocess, peaks,
model, sampling) and ``Prediction.write`` (maps, figures, summary) separately, after imports.
The parent also reports the child's whole wall time including Python and torch start-up,
which is what a user waits for at the command line. Uses the shipped cubic weights when
present, else an untrained ``cpu`` config model (identical cost); the JSON says which.
Writes benchmarks/results/predict_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "predict_speed.json"
ROOT = Path(__file__).resolve().parents[1]
CIF = ROOT.parent / "shared" / "benchmark" / "real" / "cubic" / "CaF2_225.cif"


def make_pattern(path: Path) -> Path:
    """Cu K-alpha1/2 profile of CaF2 10-100 deg, step 0.02, with background and Poisson noise."""
    from powdersolve.diffraction.profile import ProfileConfig, profile_pattern
    from powdersolve.diffraction.sticks import WAVELENGTHS, q_from_two_theta, sticks
    from powdersolve.structures import load_crystal

    lam = WAVELENGTHS["CuKa1"]
    s = sticks(load_crystal(CIF), q_max=float(q_from_two_theta(105, lam)), b_iso=1.0)
    cfg = ProfileConfig(u=0.004, w=0.002, kalpha2=True, background=(300.0, -80.0, 30.0), scale=2e4, noise=True)
    tt = np.arange(10, 100, 0.02)
    y = profile_pattern(s, lam, tt, cfg, np.random.default_rng(0))
    path.write_text(f"# wavelength = {lam}\n" + "\n".join(f"{a:.4f} {b:.1f}" for a, b in zip(tt, y)) + "\n")
    return path


def make_weights(folder: Path) -> tuple[Path, str]:
    """Shipped cubic weights, else an untrained cpu-config model saved in ``folder``."""
    from powdersolve.weights import WEIGHTS_DIR

    shipped = WEIGHTS_DIR / "cubic.safetensors"
    if shipped.exists():
        return shipped, "shipped cubic weights"
    import torch

    from powdersolve.model import build_model, cpu_config
    from powdersolve.weights import save_model

    torch.manual_seed(0)
    return save_model(build_model(cpu_config("cubic")), folder / "cpu.safetensors"), "untrained cpu config"


def child(args: argparse.Namespace) -> None:
    """One timed run; prints a JSON line."""
    import torch

    from powdersolve.predict import PredictConfig, predict

    torch.set_num_threads(args.threads)
    cfg = PredictConfig(samples=args.samples, grid=args.grid, weights=Path(args.weights), composition="CaF2")
    t0 = time.perf_counter()
    result = predict(args.pattern, cfg)
    t1 = time.perf_counter()
    result.write(args.out, overwrite=True)
    t2 = time.perf_counter()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({"predict_s": t1 - t0, "write_s": t2 - t1, "in_process_s": t2 - t0, "peak_rss_mib": rss_mib,
                      "steps_s": result.timings}))


def run_one(pattern: Path, weights: Path, grid: int, samples: int, threads: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", "--pattern", str(pattern), "--weights", str(weights), "--grid",
           str(grid), "--samples", str(samples), "--threads", str(threads), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = time.perf_counter() - t0
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--grids", type=int, nargs="+", default=[50, 96, 128])
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the 50^3 timing (median reported)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pattern", type=Path)
    ap.add_argument("--weights", type=Path)
    ap.add_argument("--grid", type=int, default=50)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    from powdersolve.fileio import atomic_write_text

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pattern = make_pattern(tmp / "caf2_cu.xy")
        weights, which = make_weights(tmp)
        runs = []
        for grid in args.grids:
            reps = args.repeats if grid == 50 else 1
            res = [run_one(pattern, weights, grid, args.samples, args.threads, tmp / f"out{grid}") for _ in range(reps)]
            keys = ("predict_s", "write_s", "in_process_s", "process_wall_s")
            row = {"grid": grid, "samples": args.samples, "repeats": reps,
                   **{k: float(np.median([r[k] for r in res])) for k in keys},
                   "peak_rss_mib": float(max(r["peak_rss_mib"] for r in res)), "steps_s": res[-1]["steps_s"]}
            runs.append(row)
            print(f"grid {grid:4d}^3 x {args.samples} samples: predict {row['predict_s']:.2f} s + write "
                  f"{row['write_s']:.2f} s = {row['in_process_s']:.2f} s in process, "
                  f"{row['process_wall_s']:.2f} s with start-up; peak RSS {row['peak_rss_mib']:.0f} MiB")
    report = {
        "benchmark": "predict end to end (CaF2, Cu K-alpha 10-100 deg, .xy, composition given, cell indexed)",
        "model": which, "threads": args.threads, "target": "grid 50, 20 samples, 2 cores: < 5 s",
        "machine": {"python": platform.python_version(), "processor": platform.processor(),
                    "cpus_visible": len(__import__("os").sched_getaffinity(0))},
        "note": "shared machine (other jobs running): times are upper bounds",
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
