"""Posterior-mean map CC when the network reads its input from picked peaks, a Le Bail fit, or exact sticks.

For each crystal of a development set (CIFs), an independent pattern (``benchmarks/independent.py``:
pymatgen sticks broadened by benchmark code, Poisson noise, Cu K-alpha1, 5-120 deg) is given to
``predict`` with the true cell and composition, one latent sample (the posterior mean). The network's
input (the Q-axis pattern and the indexed amplitudes) is built from one of three line lists:

- ``picked``: the picked, fitted peaks, as ``predict`` does (intensity / LP);
- ``lebail``: every reflection's Le Bail intensity (:func:`powdersolve.diffraction.lebail.le_bail`, the
  true cell's lattice centring, starting FWHM 0.08 deg), entries closer than 0.01 1/A summed into one line;
- ``sticks``: the crystal's exact sticks (B = 0, the independent simulator's), the ceiling of extraction.

Scored by the evaluate protocol (CC over rotations and shifts, grid 50) against the B = 8 A^2 target.

    python experiments/input_amplitude_sources.py --cifs data/dev/orthorhombic --limit 10 \
        --json experiments/results/input_amplitude_sources_orthorhombic_dev.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from pymatgen.symmetry.groups import SpaceGroup

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from independent import CU_KA1, independent_pattern  # noqa: E402

from powdersolve.density import DensityConfig, density_grid  # noqa: E402
from powdersolve.diffraction.lebail import LeBailConfig, le_bail  # noqa: E402
from powdersolve.diffraction.sticks import sticks  # noqa: E402
from powdersolve.formats.pattern import make_pattern  # noqa: E402
from powdersolve.metrics import score_predictions  # noqa: E402
from powdersolve.predict import PredictConfig, predict, steps  # noqa: E402
from powdersolve.structures import load_crystal  # noqa: E402
from powdersolve.structures.crystal import Crystal  # noqa: E402

MERGE_Q = 0.01  # 1/A: Le Bail entries closer than this become one line, as one picked peak would


def lebail_lines(processed: steps.Processed, crystal: Crystal) -> tuple[np.ndarray, np.ndarray]:
    """(Q 1/A, intensity / LP) of every Le Bail reflection of the processed pattern, close entries summed."""
    centring = SpaceGroup.from_int_number(crystal.spacegroup).symbol[0]
    res = le_bail(processed.two_theta, processed.counts, processed.wavelength.effective,
                  tuple(float(v) for v in crystal.cell_parameters), centring, config=LeBailConfig(fwhm=0.08))
    q = np.array([2 * np.pi / r.d for r in res.reflections])
    i = np.array([max(r.intensity, 0.0) for r in res.reflections])
    keep = q <= processed.q_max
    q, i = q[keep], i[keep]
    order = np.argsort(q)
    q, i = q[order], i[order]
    starts = np.flatnonzero(np.r_[True, np.diff(q) > MERGE_Q])
    total = np.add.reduceat(i, starts)
    centre = np.add.reduceat(q * np.maximum(i, 1e-12), starts) / np.add.reduceat(np.maximum(i, 1e-12), starts)
    return centre, total


def stick_lines(processed: steps.Processed, crystal: Crystal) -> tuple[np.ndarray, np.ndarray]:
    """(Q 1/A, intensity) of the crystal's exact sticks within the measured range."""
    st = sticks(crystal, q_max=processed.q_max, b_iso=0.0)
    keep = st.q <= processed.q_max
    return st.q[keep], st.intensity[keep]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cifs", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    picked = steps.Processed.peaks_q_intensity
    rows = []
    for cif in sorted(args.cifs.glob("*.cif"))[: args.limit]:
        crystal = load_crystal(cif)
        structure = crystal.to_structure()
        tt, y, _ = independent_pattern(structure, seed=1)
        pattern = make_pattern(tt, y, None, CU_KA1, Path(f"{cif.stem}.xy"), "xy")
        cfg = PredictConfig(composition=structure.composition.formula.replace(" ", ""),
                            cell=tuple(float(v) for v in crystal.cell_parameters), samples=1)
        target = density_grid(crystal, DensityConfig(b_iso=8.0, grid=cfg.grid))
        row = {"name": cif.stem}
        sources = {"picked": picked, "lebail": lambda self, c=crystal: lebail_lines(self, c),
                   "sticks": lambda self, c=crystal: stick_lines(self, c)}
        for name, lines in sources.items():
            steps.Processed.peaks_q_intensity = lines  # the one place predict reads its line list
            t0 = time.perf_counter()
            row[name] = float(score_predictions(predict(pattern, cfg).mean[None], target).cc)
            row[f"{name}_s"] = time.perf_counter() - t0
        steps.Processed.peaks_q_intensity = picked
        rows.append(row)
        print(row, flush=True)
    summary = {k: float(np.mean([r[k] for r in rows])) for k in ("picked", "lebail", "sticks")}
    print("mean posterior-mean CC:", summary)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
