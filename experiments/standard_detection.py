"""How often a common standard is recognised in a pattern (:func:`standards_present`), with and without it.

For the first N val + test crystals of generated builds, laboratory-like patterns from the independent
simulator (``benchmarks/independent.py::lab_pattern``: K-alpha doublet, widths growing with angle, zero error
0.03 deg, background, Poisson noise): clean (a hit is a false alarm) and with diamond Si whose strongest peak
is ``--impurity`` of the sample's (a miss leaves the indexing to the weak-line rule). Peaks picked as
``index`` picks them.

    python experiments/standard_detection.py --data data/build/cubic_dev data/build/hexaxes_dev \
        --limit 40 --json experiments/results/standard_detection.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from independent import CU_KA1, lab_pattern  # noqa: E402

from powdersolve.dataset import load_dataset  # noqa: E402
from powdersolve.diffraction.known_phases import standards_present  # noqa: E402
from powdersolve.fileio import atomic_write_text  # noqa: E402
from powdersolve.indexing.pattern import pick_peaks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, nargs="+", required=True, help="generated builds (data/build/...)")
    ap.add_argument("--limit", type=int, default=40, help="crystals per build")
    ap.add_argument("--impurity", type=float, nargs="+", default=[0.03, 0.1, 0.3],
                    help="strongest Si peak / strongest sample peak")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for data in args.data:
        records = [r for r in load_dataset(data) if r.split in ("val", "test")][: args.limit]
        for r in records:
            structure = r.crystal.to_structure()
            row = {"set": data.name, "name": f"{r.crystal.formula}_{r.crystal.spacegroup}"}
            for impurity in (0.0, *args.impurity):
                tt, counts = lab_pattern(structure, seed=1, impurity=impurity)
                picked = pick_peaks(tt, counts, CU_KA1)
                row[str(impurity)] = list(standards_present(picked.peaks, picked.wavelength, float(np.max(tt))))
            rows.append(row)
            print(row, flush=True)
    summary = {"n": len(rows), "false_alarms_clean": sum(bool(row["0.0"]) for row in rows)}
    for impurity in args.impurity:
        summary[f"si_found_at_{impurity}"] = sum("Si" in row[str(impurity)] for row in rows)
    print(summary)
    if args.json is not None:
        atomic_write_text(args.json, json.dumps({"settings": {**vars(args), "data": [str(d) for d in args.data],
                                                              "json": str(args.json)},
                                                 "summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
