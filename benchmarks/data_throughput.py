"""Training-data throughput: generator structures/s, stick-pattern and CMED-grid cost per structure.

Usage: .venv/bin/python benchmarks/data_throughput.py [--count 10]
Prints a JSON summary and writes it to benchmarks/results/data_throughput.json. Timings are wall
time on this machine (single process) and depend on its load.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from powdersolve.dataset import PAPER_Q_MAX, PAPER_WAVELENGTH, STORED_Q_MAX
from powdersolve.density import DensityConfig, density_grid
from powdersolve.diffraction import encode_two_theta, sticks
from powdersolve.structures.crystal import Crystal
from powdersolve.structures.generators import generate

OUT = Path(__file__).resolve().parent / "results" / "data_throughput.json"


def _ms_per(fn, crystals: list[Crystal]) -> float:
    t = time.perf_counter()
    for c in crystals:
        fn(c)
    return 1000 * (time.perf_counter() - t) / len(crystals)


def _supercell(c: Crystal, reps: tuple[int, int, int]) -> Crystal:
    s = c.to_structure()
    s.make_supercell(list(reps))
    return Crystal.from_structure(s, c.spacegroup)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10, help="structures per generator and system")
    args = ap.parse_args()
    result: dict = {"machine": platform.processor() or platform.machine(), "count": args.count, "generators": {}}
    pool: list[Crystal] = []
    for kind in ("prototypes", "random"):
        for system in ("cubic", "trigonal"):
            generate(kind, system, 1, 99)  # warm caches and imports
            t = time.perf_counter()
            cs = generate(kind, system, args.count, [1, 2])
            dt = time.perf_counter() - t
            result["generators"][f"{kind}/{system}"] = {"structures_per_s": args.count / dt}
            pool += cs
    small = [c for c in pool if len(c.numbers) <= 8][:10]
    # Large cells: supercells of small ones, 40-100 atoms.
    large = []
    for c in small:
        k = max(1, math.ceil((48 / len(c.numbers)) ** (1 / 3)))
        big = _supercell(c, (k, k, k))
        if 40 <= len(big.numbers) <= 100:
            large.append(big)
    cfg = DensityConfig(grid=50)
    for name, cs in (("small_le8_atoms", small), ("large_40_100_atoms", large)):
        if not cs:
            continue
        result[name] = {
            "n": len(cs),
            "mean_atoms": float(np.mean([len(c.numbers) for c in cs])),
            "sticks_q8.5_ms": _ms_per(lambda c: sticks(c, q_max=STORED_Q_MAX), cs),
            "paper_encoding_ms": _ms_per(
                lambda c: encode_two_theta(sticks(c, q_max=PAPER_Q_MAX), PAPER_WAVELENGTH), cs),
            "density_grid_n50_ms": _ms_per(lambda c: density_grid(c, cfg), cs),
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
