"""Structure solution where no shipped model serves the cell: `solve` with the pattern and the formula only.

`solve` indexes the cell over all seven systems; where no shipped model serves it (monoclinic, triclinic)
it reads atoms from the map charge flipping finds from random phases and, with ``--recycle N``, from the
maps flipped again from the phases of its N best candidates (:mod:`powdersolve.solve.recycling`). Where a
model serves the indexed cell (a monoclinic crystal indexed hexagonal, say) the network path runs, as it
would for a user. Patterns from the independent benchmark simulator (`benchmarks/independent.py`, Cu
K-alpha1, 5-120 deg); top-1 by StructureMatcher defaults. ``--control`` also solves, with each crystal's
formula, the pattern of the next crystal in the folder (a wrong-pattern control: it should not match).

    python experiments/network_free_solve.py --structures data/dev/monoclinic --limit 16 --recycle 2 \\
        --control --json experiments/results/network_free_solve_dev_monoclinic_recycle2.json
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
from powdersolve.solve.config import SolveConfig  # noqa: E402
from powdersolve.solve.pipeline import solve  # noqa: E402
from powdersolve.structures import Crystal, iter_structure_files, load_crystal  # noqa: E402


def solve_one(pattern_of: Crystal, formula: str, truth: Crystal, name: str, recycle: int, rounds: int,
              seed: int = 0) -> dict:
    """Solve the independent pattern of ``pattern_of`` with ``formula``; compare the top answer to ``truth``."""
    tt, y, _ = independent_pattern(pattern_of.to_structure(), seed=0)
    pattern = make_pattern(tt, y, None, CU_KA1, Path(f"{name}.xy"), "xy")
    t0 = time.perf_counter()
    try:
        cfg = SolveConfig(abstain=False, recycle=recycle, recycle_rounds=rounds)
        result = solve(pattern, cfg, PredictConfig(composition=formula, seed=seed))
        top = result.candidates[0]
        row = {"top1": bool(StructureMatcher().fit(top.result.structure, truth.to_structure())),
               "rwp": top.result.rwp, "spacegroup": top.spacegroup, "network": result.prediction is not None,
               "read_from": result.origins[0][0] if result.origins[0] else None,
               "timings": {k: round(v, 2) for k, v in result.timings.items()},
               "time_limited": any("time limit" in n for n in result.notes)}
    except PowdersolveError as exc:
        row = {"error": str(exc)[:200]}
    row["seconds"] = time.perf_counter() - t0
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--structures", required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--first", type=int, default=0, help="start at this crystal of the folder (to split a run)")
    ap.add_argument("--recycle", type=int, default=SolveConfig().recycle)
    ap.add_argument("--recycle-rounds", type=int, default=SolveConfig().recycle_rounds)
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the random-phase starts (the network-free path is chaotic: compare over seeds)")
    ap.add_argument("--control", action="store_true", help="also the wrong-pattern control")
    ap.add_argument("--skip", default="", help="comma-separated files not solved (e.g. one known to run for hours)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    paths = list(iter_structure_files(args.structures))[: args.limit]
    crystals = [load_crystal(p) for p in paths]
    rows = []
    skip = {name for name in args.skip.split(",") if name}
    for i, (path, crystal) in list(enumerate(zip(paths, crystals, strict=True)))[args.first:]:
        if path.name in skip:
            continue
        row = {"file": path.name, **solve_one(crystal, crystal.formula, crystal, path.stem, args.recycle,
                                                     args.recycle_rounds, args.seed)}
        if args.control and len(crystals) > 1:
            other = crystals[(i + 1) % len(crystals)]
            control = solve_one(other, crystal.formula, crystal, f"{path.stem}_control", args.recycle,
                                  args.recycle_rounds, args.seed)
            row["control"] = {k: control.get(k) for k in ("top1", "rwp", "spacegroup", "error", "seconds")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    n_top1 = sum(bool(r.get("top1")) for r in rows)
    n_control = sum(bool(r.get("control", {}).get("top1")) for r in rows)
    print(f"top-1 {n_top1} of {len(rows)}" + (f"; wrong-pattern control {n_control} of {len(rows)}" if args.control
                                               else ""))
    Path(args.json).write_text(json.dumps({"structures": args.structures, "settings": vars(args), "n": len(rows),
                                           "top1": n_top1, "control_top1": n_control if args.control else None,
                                           "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
