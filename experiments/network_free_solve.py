"""Structure solution without any network: the map charge flipping finds from random phases
(:func:`powdersolve.predict.phasing.phase_pattern`, cell indexed over all seven systems), read and refined by
:func:`powdersolve.solve.pipeline.solve_from_grids` with the formula. What `solve` does where no shipped model
serves the cell. Patterns from the independent benchmark simulator (`benchmarks/independent.py`, Cu K-alpha1,
5-120 deg); top-1 by StructureMatcher defaults.

    python experiments/network_free_solve.py --structures data/dev/monoclinic --limit 16 \
        --json experiments/results/network_free_solve_dev_monoclinic.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from independent import CU_KA1, independent_pattern  # noqa: E402
from pymatgen.analysis.structure_matcher import StructureMatcher  # noqa: E402

from powdersolve.errors import PowdersolveError  # noqa: E402
from powdersolve.formats.pattern import make_pattern  # noqa: E402
from powdersolve.predict import PredictConfig  # noqa: E402
from powdersolve.predict.phasing import phase_pattern  # noqa: E402
from powdersolve.solve.config import SolveConfig  # noqa: E402
from powdersolve.solve.pipeline import solve_from_grids  # noqa: E402
from powdersolve.structures import iter_structure_files, load_crystal  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--structures", required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    rows = []
    for path in list(iter_structure_files(args.structures))[: args.limit]:
        crystal = load_crystal(path)
        tt, y, _ = independent_pattern(crystal.to_structure(), seed=0)
        pattern = make_pattern(tt, y, None, CU_KA1, Path(f"{path.stem}.xy"), "xy")
        t0 = time.perf_counter()
        try:
            phased = phase_pattern(pattern, PredictConfig(), starts=3)
            result = solve_from_grids(pattern, [phased.grid], phased.cell.matrix, crystal.formula,
                                      SolveConfig(abstain=False), labels=["charge-flipped map"])
            top = result.candidates[0]
            row = {"file": path.name, "indexed": (phased.indexing or {}).get("system"),
                   "top1": bool(StructureMatcher().fit(top.result.structure, crystal.to_structure())),
                   "rwp": top.result.rwp, "spacegroup": top.spacegroup}
        except PowdersolveError as exc:
            row = {"file": path.name, "error": str(exc)[:200]}
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(json.dumps(row), flush=True)
    n_top1 = sum(bool(r.get("top1")) for r in rows)
    print(f"top-1 {n_top1} of {len(rows)}")
    Path(args.json).write_text(json.dumps({"structures": args.structures, "n": len(rows), "top1": n_top1,
                                           "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
