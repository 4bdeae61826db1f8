"""Do the network's phases beat phase 0? Maps from the pattern's own magnitudes with the network's phases.

The zero-phase null is the Fourier map of the model's input magnitudes with every phase 0. The network's
posterior mean (sample 0) is scored against it, but the two differ in both magnitudes and phases. Here
the magnitudes are held equal and only the phases differ, so the gain is the phases' alone:

- ``posterior_mean``: the network's map (what ``predict`` writes as ``density.*``);
- ``zero_phase``: input magnitudes, phases 0 (the null);
- ``network_phases``: the same input magnitudes on the same reflections, phases of the posterior mean;
- ``network_phases_shared``: the pattern's peaks shared among the reflections under them in proportion to
  the posterior mean's own |F|^2 (not equally), with its phases, every grid reflection in the measured
  range (:func:`powdersolve.maps.modification.modify_density` with 0 cycles, the map-fitted scale and
  the amplitude-constrained map returned: no composition or Z is used);
- ``blend_<w>``: the posterior mean's coefficients and the ``network_phases`` map mixed, weight w on the
  latter (both on the truth's mean and spread first).

Scored by the evaluate protocol (map CC over the lattice's own rotations and every origin shift; each
crystal by the model its lattice selects). Choices are made on generated development sets
(``data/dev/*``); the real sets are run once for the chosen map.

    python experiments/network_phases.py --structures data/dev/tetragonal \
        --json experiments/results/network_phases_dev_tetragonal.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from powdersolve.baselines import InputAmplitudes, zero_phase_baseline
from powdersolve.density import DensityConfig, density_grid
from powdersolve.diffraction.peaks import merge_tolerance
from powdersolve.diffraction.sticks import sticks
from powdersolve.evaluate import assign_models, input_amplitudes, load_cases, model_inputs
from powdersolve.inputs import sample_grids
from powdersolve.maps.modification import ModificationConfig, modify_density
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.metrics import lattice_rotations, map_correlation_per_sample

BLENDS = (0.25, 0.5, 0.75)


def with_phases_of(grid: np.ndarray, amplitudes: InputAmplitudes) -> np.ndarray:
    """The map whose coefficients on ``amplitudes.hkl`` (and their Friedel mates) have the input magnitudes
    and the phases of ``grid``'s own coefficients there; every other coefficient 0. Same grid, same origin."""
    n = grid.shape[-1]
    g = np.fft.fftn(grid)
    out = np.zeros_like(g)
    idx = tuple((amplitudes.hkl % n).T)
    mate = tuple((-amplitudes.hkl % n).T)
    unit = g[idx] / np.maximum(np.abs(g[idx]), 1e-30)
    out[idx] = amplitudes.amp * unit
    out[mate] = np.conj(out[idx])
    return np.real(np.fft.ifftn(out))


def standardised(grid: np.ndarray) -> np.ndarray:
    sd = float(grid.std())
    return (grid - grid.mean()) / (sd if sd > 0 else 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--structures", required=True, help="folder of CIF files")
    ap.add_argument("--weights", default=None, help="one model for every crystal (default: the shipped ones)")
    ap.add_argument("--grid", type=int, default=50)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    scored, skipped = assign_models(load_cases(args.structures, None), args.weights)
    scored = scored[: args.limit] if args.limit else scored
    rows = []
    t0 = time.perf_counter()
    for case, lm in scored:
        model, c = lm.model, case.crystal
        truth = density_grid(c, DensityConfig(b_iso=model.cfg.b_iso, grid=args.grid))
        pattern = sticks(c, q_max=model.cfg.q_max)
        pm = sample_grids(model, model_inputs(model, c), 1, args.grid, 0)[0]
        amps = input_amplitudes(model, c, pattern)
        mcfg = ModificationConfig(cycles=0, scale="model", final="amplitudes", b_iso=model.cfg.b_iso,
                                  tol=merge_tolerance(model.cfg.q_max, model.cfg.xrd_bins))
        maps = {
            "posterior_mean": pm,
            "zero_phase": zero_phase_baseline(amps, truth),
            "network_phases": with_phases_of(pm, amps),
            "network_phases_shared": modify_density(pm[None], c.lattice,
                                                    MeasuredPeaks.from_sticks(pattern, model.cfg.q_max), None, None,
                                                    mcfg, electrons=1.0)[0],
        }
        a, b = standardised(maps["posterior_mean"]), standardised(maps["network_phases"])
        for w in BLENDS:
            maps[f"blend_{w}"] = (1 - w) * a + w * b
        cc = map_correlation_per_sample(np.stack(list(maps.values())), truth, lattice_rotations(case.system))[0]
        row = {"file": case.file.name, "system": case.system, "natoms": int(len(c.numbers)),
               **{k: float(v) for k, v in zip(maps, cc, strict=True)}}
        rows.append(row)
        print(f"{case.file.name:40s} " + " ".join(f"{k[:14]}={row[k]:.3f}" for k in maps), flush=True)
    names = [k for k in rows[0] if k not in ("file", "system", "natoms")]
    summary = {k: float(np.mean([r[k] for r in rows])) for k in names}
    summary_median = {k: float(np.median([r[k] for r in rows])) for k in names}
    print(json.dumps({"n": len(rows), "mean": summary, "median": summary_median}, indent=1))
    Path(args.json).write_text(json.dumps({"structures": args.structures, "weights": args.weights, "n": len(rows),
                                           "skipped": len(skipped), "mean": summary, "median": summary_median,
                                           "seconds": time.perf_counter() - t0, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
