"""The paper's ablation table at our scale: train each variant with the same budget, evaluate on real cubic.

Variants (same data, epochs, seed): the `cpu` config (indexed amplitudes) with full formula, elements
without ratios, one element dropped, no formula; no XRD at all (composition only); the `cpu-free`
config (no cell, the paper's information) with the Q input and with the paper's 2-theta input with one
(Mo) vs two (Mo + Cu) channels.

Usage:
    python experiments/ablations.py --data data/build/cubic --epochs 60 --out runs/ablations \
        --structures ../shared/benchmark/real/cubic --json experiments/results/ablations.json
Each run and evaluation is a CLI subprocess; finished variants are skipped on rerun.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

VARIANTS: dict[str, list[str]] = {
    "cpu, full formula": ["--config", "cpu"],
    "cpu, elements without ratios": ["--config", "cpu", "--composition", "presence"],
    "cpu, one element dropped": ["--config", "cpu", "--composition", "drop"],
    "cpu, no formula": ["--config", "cpu", "--composition", "none"],
    "no XRD (composition only)": ["--config", "cpu-free", "--no-xrd"],
    "cpu-free (no cell), Q input": ["--config", "cpu-free"],
    "cpu-free, 2-theta Mo, 1 channel": ["--config", "cpu-free", "--xrd-input", "paper", "--augment", "paper"],
    "cpu-free, 2-theta Mo + Cu, 2 channels": ["--config", "cpu-free", "--xrd-input", "paper", "--wavelengths",
                                              "0.71073,1.54184", "--augment", "paper"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--structures", required=True)
    ap.add_argument("--out", default="runs/ablations")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--only", default=None, help="comma-separated variant names")
    ap.add_argument("--json", default="experiments/results/ablations.json")
    args = ap.parse_args()
    out = Path(args.out)
    results_path = Path(args.json)
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    names = args.only.split(",") if args.only else list(VARIANTS)
    exe = [sys.executable, "-m", "powdersolve"]
    for name in names:
        run = out / "".join(ch if ch.isalnum() else "_" for ch in name)
        weights = run / "best.safetensors"
        train_cmd = [*exe, "train", "--data", args.data, "--system", "cubic", "--out", str(run),
                     "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--threads", "1",
                     "--val-every", "5", "--shift-grid", "16", *VARIANTS[name]]
        if not (run / "last.safetensors").exists():
            t0 = time.time()
            resume = ["--resume"] if (run / "checkpoint" / "state.json").exists() else []
            subprocess.run(train_cmd + resume, check=True)
            train_s = time.time() - t0
        else:
            train_s = results.get(name, {}).get("train_s")
        report = run / "eval.json"
        eval_cmd = [*exe, "evaluate", "--weights", str(weights), "--structures", args.structures, "--no-baselines",
                    "--samples", str(args.samples), "--json", str(report)]
        if not report.exists():
            subprocess.run(eval_cmd, check=True)
        rep = json.loads(report.read_text())
        results[name] = {"cc_mean": rep["cc_mean"], "ssim_mean": rep["ssim_mean"], "psnr_mean": rep["psnr_mean"],
                         "n": rep["n"], "baselines": rep["baselines"], "train_s": train_s,
                         "train_command": " ".join(train_cmd[2:]), "eval_command": " ".join(eval_cmd[2:])}
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=1))
        print(f"{name:30s} CC {rep['cc_mean']:.3f}  SSIM {rep['ssim_mean']:.3f}  PSNR {rep['psnr_mean']:.1f}")


if __name__ == "__main__":
    main()
