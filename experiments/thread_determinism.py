"""Does the network's posterior mean depend on torch's thread count? One development crystal's mean map
(sample 0), computed with 2, 2 and 1 threads: the largest difference between the two 2-thread maps and between
2 and 1 threads (charge flipping amplifies any difference; BENCHMARKS.md, Known limits).

    python experiments/thread_determinism.py --structures data/dev/orthorhombic_random --index 28
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from powdersolve.evaluate import assign_models, load_cases, model_inputs
from powdersolve.inputs import sample_grids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--structures", required=True)
    ap.add_argument("--index", type=int, default=0, help="which crystal of the folder")
    ap.add_argument("--grid", type=int, default=50)
    args = ap.parse_args()
    scored, _ = assign_models(load_cases(args.structures, None), None)
    case, lm = scored[args.index]
    model = lm.model
    maps = []
    for threads in (2, 2, 1):
        torch.set_num_threads(threads)
        maps.append(sample_grids(model, model_inputs(model, case.crystal, model.cfg.q_max), 1, args.grid, 0)[0])
    print(f"{case.file.name}: 2 vs 2 threads max |diff| {np.abs(maps[0] - maps[1]).max():.3g}, "
          f"2 vs 1 thread {np.abs(maps[0] - maps[2]).max():.3g} (map values up to {np.abs(maps[0]).max():.3g})")


if __name__ == "__main__":
    main()
