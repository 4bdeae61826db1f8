"""Histogram matching in the symmetry-constrained density modification, on generated crystals.

Variants of the network's 5 latent samples, all ``--modify 10 --modify-symmetry`` (the map returned at
the network's origin): ``sym`` (no histogram matching, the current default), ``sym_hist_final`` (the
returned map matched to the histogram the composition and cell lead one to expect,
:func:`powdersolve.maps.modification.reference_histogram`) and ``sym_hist_cycles`` (matched in every cycle's
real-space step too). Random atoms (true composition and cell, 5 draws) get the same three. Scored by
the evaluate protocol (grid 50, best over samples and rotations; SSIM with no origin shift). Chooses
the setting on generated validation crystals, never on the benchmark.

    python experiments/histogram_modification_sweep.py --weights powdersolve/weights/trigonal.safetensors \\
        --data data/build/trigonal_s --split val --limit 20 \\
        --json experiments/results/histogram_modification_trigonal_s_val.json
"""

from __future__ import annotations

import time

import numpy as np
from postprocess_sweep import run_sweep

from powdersolve.baselines import baseline_grids
from powdersolve.density import DensityConfig
from powdersolve.diffraction.sticks import sticks
from powdersolve.maps.modification import ModificationConfig, modify_density
from powdersolve.maps.peak_sharing import MeasuredPeaks

SETTINGS = {
    "sym": ModificationConfig(cycles=10, final="density", symmetry=True),
    "sym_hist_final": ModificationConfig(cycles=10, final="density", symmetry=True, histogram="final"),
    "sym_hist_cycles": ModificationConfig(cycles=10, final="density", symmetry=True, histogram="cycles"),
}


def variants(preds: np.ndarray, crystal, model, truth) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The variants above for the model and for random atoms; extra field: seconds per setting."""
    c = crystal
    s = sticks(c, q_max=model.cfg.q_max)
    args = (c.lattice, MeasuredPeaks.from_sticks(s, model.cfg.q_max), c.numbers, c.occupancy)
    rand = np.stack(baseline_grids(c, truth, DensityConfig(model.cfg.b_iso, 50), 0, 5)["random_atoms"])
    out: dict[str, np.ndarray] = {"random_atoms": rand}
    t0 = time.perf_counter()
    for name, cfg in SETTINGS.items():
        out[name] = modify_density(preds, *args, cfg)
        out[f"random_atoms_{name}"] = modify_density(rand, *args, cfg)
    return out, {"seconds_per_setting": (time.perf_counter() - t0) / (2 * len(SETTINGS))}


if __name__ == "__main__":
    run_sweep(__doc__.splitlines()[0], variants)
