"""Training throughput of the `cpu` (Fourier decoder) and `paper` (query decoder) configs on this machine.

Measures optimiser steps on random inputs of the right shapes (the data pipeline is timed apart:
targets are precomputed for the Fourier decoder, query densities are computed on the fly for the
paper's). Prints and saves JSON.

    python benchmarks/train_speed.py --threads 2 --json benchmarks/results/train_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from powdersolve.density import density_at, stratified_points
from powdersolve.model import build_model, cpu_config, half_space_hkl, paper_config
from powdersolve.structures import load_crystal
from powdersolve.train import LossModule, TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def _time_steps(loss_fn, batch, opt, steps: int) -> float:
    loss_fn(batch)[0].backward()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = loss_fn(batch)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/train_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {"threads": args.threads, "cpu": platform.processor() or platform.machine(), "load_avg": os.getloadavg()}

    cfg = cpu_config("cubic")
    m = build_model(cfg)
    b = 64
    m_coef = len(half_space_hkl(cfg.hkl_box))
    batch = {"xrd": torch.rand(b, 2, 1024), "comp": torch.rand(b, 119), "dc": torch.rand(b),
             "coef": torch.randn(b, m_coef, dtype=torch.complex64)}
    tcfg = TrainConfig(shift_grid=16)
    s = _time_steps(LossModule(m, tcfg), batch, torch.optim.Adam(m.parameters()), args.steps)
    out["cpu_config"] = {"params": m.n_parameters(), "batch_crystals": b, "s_per_step": s,
                         "crystals_per_s": b / s, "note": "whole-map loss via Parseval: no query points"}

    pcfg = paper_config()
    pm = build_model(pcfg)
    pb, pts = 8, 1000
    pbatch = {"xrd": torch.rand(pb, 1, 1024), "comp": torch.rand(pb, 119), "points": torch.rand(pb, pts, 3),
              "rho": torch.rand(pb, pts)}
    s = _time_steps(LossModule(pm, TrainConfig(loss="l1")), pbatch, torch.optim.Adam(pm.parameters()),
                    max(2, args.steps // 2))
    out["paper_config"] = {"params": pm.n_parameters(), "batch_crystals": pb, "points_per_crystal": pts,
                           "s_per_step": s, "points_per_s": pb * pts / s, "crystals_per_s": pb / s}

    c = load_crystal(ROOT / "powdersolve/examples/CaF2_225.cif")
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(10):
        density_at(c, stratified_points(10, rng))
    out["query_targets_ms_per_crystal_1000_points"] = (time.perf_counter() - t0) / 10 * 1e3
    print(json.dumps(out, indent=1))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
