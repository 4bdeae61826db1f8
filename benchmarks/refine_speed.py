"""Wall time of the Rietveld refinement's pattern evaluation: the shipped path against a reference formulation.

For real structures of each crystal system (``../shared/benchmark/real``), the independent simulator's pattern
(`independent.py`: pymatgen sticks, pseudo-Voigt FWHM 0.08 deg, Cu K-alpha1, 5-120 deg at 0.01 deg) is fitted
by `refine` (profile refined, as `solve` does), once the shipped way and once with a reference formulation:
``--against array``: the same peaks built as torch arrays and summed by ``index_add`` instead of the fused peak
sum (:mod:`powdersolve.diffraction.peak_sum`; the formulation before 2026-12-08); ``--against every-reflection``:
|F|^2 computed for every reflection instead of once per set of symmetry equivalents
(``RefineConfig.merge_equivalents``). Reported per structure: reflections rendered, median time of one loss
evaluation with its backward pass (all parameters free), and the time and Rwp of the whole refinement. One
torch thread, as each refinement runs in `solve`.

Usage: .venv/bin/python benchmarks/refine_speed.py [--per-system 2] [--repeats 10] [--against every-reflection]
Prints a table and writes benchmarks/results/refine_speed.json (``refine_speed_every_reflection.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from independent import CU_KA1, independent_pattern
from pymatgen.core import Structure

from powdersolve.diffraction.peakshape import PeakProfile
from powdersolve.fileio import atomic_write_text
from powdersolve.solve.refine import RefineConfig, build_model, refine

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "benchmark" / "real"
RESULTS = Path(__file__).resolve().parent / "results" / "refine_speed.json"
SYSTEMS = ("cubic", "trigonal", "hexagonal", "tetragonal", "orthorhombic", "monoclinic", "triclinic")
FUSED_RENDER = PeakProfile.render


def array_render(self: PeakProfile, q2: torch.Tensor, intensity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pattern as ``index_add`` of the (reflections x window) arrays of :meth:`PeakProfile.peaks`."""
    idx, vals, pos = self.peaks(q2)
    flat = (vals * intensity[:, None]).reshape(-1)
    return torch.zeros(len(self.tt), dtype=torch.float64).index_add(0, idx.reshape(-1), flat), pos


def _evaluation_ms(structure: Structure, tt: np.ndarray, y: np.ndarray, cfg: RefineConfig, repeats: int
                   ) -> tuple[float, int, int]:
    """Median ms of one loss + backward pass with every parameter free, the reflection groups rendered and the
    reflections whose |F|^2 is computed."""
    model = build_model(structure, tt, CU_KA1, cfg)
    obs = torch.as_tensor(y)
    weight = 1.0 / torch.clamp(obs, min=1.0)
    for p in model.parameters():
        p.requires_grad_(True)

    def once() -> None:
        for p in model.parameters():
            p.grad = None
        calc, _, _ = model.fit_linear(obs, weight)
        torch.sum(weight * (obs - calc) ** 2).backward()

    once()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times)), model.n_groups, len(model.hkl)


def measure(path: Path, repeats: int, against: str) -> dict:
    """One structure's row: ``shipped_*`` and ``reference_*`` evaluation ms, refinement s and Rwp."""
    structure = Structure.from_file(path)
    tt, y, _ = independent_pattern(structure, seed=zlib.crc32(path.stem.encode()))
    shipped = RefineConfig(refine_profile=True, w=0.08**2)
    reference = (replace(shipped, merge_equivalents=False), FUSED_RENDER) if against == "every-reflection" \
        else (shipped, array_render)
    row: dict = {"name": path.stem, "atoms": len(structure)}
    for label, (cfg, render) in (("shipped", (shipped, FUSED_RENDER)), ("reference", reference)):
        PeakProfile.render = render
        try:
            row[f"{label}_eval_ms"], row["reflection_groups"], row[f"{label}_reflections"] = _evaluation_ms(
                structure, tt, y, cfg, repeats)
            t0 = time.perf_counter()
            res = refine(structure, tt, y, CU_KA1, None, cfg)
            row[f"{label}_refine_s"], row[f"{label}_rwp"] = time.perf_counter() - t0, res.rwp
        finally:
            PeakProfile.render = FUSED_RENDER
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-system", type=int, default=2, help="first N structures of each system")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--against", choices=("array", "every-reflection"), default="array",
                    help="the reference formulation (see the module docstring)")
    ap.add_argument("--json", type=Path, default=None, help="default: benchmarks/results/refine_speed[_<against>].json")
    args = ap.parse_args()
    if args.json is None:
        args.json = RESULTS if args.against == "array" else RESULTS.with_name("refine_speed_every_reflection.json")
    if not REAL.is_dir():
        raise SystemExit(f"{REAL}: the held-out real set is missing (../shared beside the repository)")
    torch.set_num_threads(1)
    rows = []
    print(f"against {args.against}: shipped/reference")
    print(f"{'structure':28s} {'groups':>6s} {'reflections':>11s} {'eval ms':>20s} {'refine s':>21s} {'Rwp':>17s}")
    for system in SYSTEMS:
        for path in sorted((REAL / system).glob("*.cif"))[: args.per_system]:
            row = {"system": system, **measure(path, args.repeats, args.against)}
            rows.append(row)
            print(f"{row['name']:28s} {row['reflection_groups']:6d} "
                  f"{row['shipped_reflections']:5d}/{row['reference_reflections']:<5d} "
                  f"{row['shipped_eval_ms']:9.1f}/{row['reference_eval_ms']:<9.1f} "
                  f"{row['shipped_refine_s']:10.2f}/{row['reference_refine_s']:<10.2f} "
                  f"{row['shipped_rwp']:.4f}/{row['reference_rwp']:.4f}", flush=True)
    ratio = [r["reference_eval_ms"] / r["shipped_eval_ms"] for r in rows]
    total = sum(r["reference_refine_s"] for r in rows) / sum(r["shipped_refine_s"] for r in rows)
    print(f"evaluation {np.median(ratio):.1f}x faster (median), whole refinements {total:.1f}x (sum of times)")
    atomic_write_text(args.json, json.dumps({"machine": platform.processor() or platform.machine(),
                                             "torch_threads": 1, "repeats": args.repeats, "against": args.against,
                                             "median_evaluation_speedup": float(np.median(ratio)),
                                             "refinement_time_ratio": total, "rows": rows}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
