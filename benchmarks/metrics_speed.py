"""Wall time of scoring one crystal: 5 samples x 24 rotations on a 50^3 grid, CC (with shifts) + SSIM/PSNR.

Usage: .venv/bin/python benchmarks/metrics_speed.py [--grid 50] [--samples 5] [--repeats 5] [--threads 1 2]
Prints a table and writes benchmarks/results/metrics_speed.json. Times are medians over repeats
(the machine is shared, so the minimum is also reported).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from powdersolve.fileio import atomic_write_text
from powdersolve.metrics import map_correlation_per_sample, paper_scores_per_rotation, score_predictions

RESULTS = Path(__file__).resolve().parent / "results" / "metrics_speed.json"


def _grid(n: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth positive random periodic grid (density-like)."""
    k = np.fft.fftfreq(n)
    k2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2
    return np.fft.ifftn(np.fft.fftn(rng.random((n, n, n))) * np.exp(-200 * k2)).real + 0.1


def _time(fn, repeats: int) -> dict[str, float]:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"median_s": float(np.median(ts)), "min_s": float(np.min(ts))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=50)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    truth = _grid(args.grid, rng)
    preds = np.stack([_grid(args.grid, rng) for _ in range(args.samples)])
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        row = {"threads": threads}
        row["score_predictions"] = _time(lambda: score_predictions(preds, truth), args.repeats)
        row["map_correlation"] = _time(lambda: map_correlation_per_sample(preds, truth), args.repeats)
        row["ssim_psnr"] = _time(lambda: paper_scores_per_rotation(preds, truth), args.repeats)
        rows.append(row)
        print(f"threads {threads}: " + ", ".join(
            f"{k} {v['median_s']:.3f} s (min {v['min_s']:.3f})" for k, v in row.items() if k != "threads"))
    out = {"grid": args.grid, "samples": args.samples, "rotations": 24, "repeats": args.repeats,
           "torch": torch.__version__, "cpu": platform.processor() or platform.machine(), "results": rows}
    atomic_write_text(RESULTS, json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
