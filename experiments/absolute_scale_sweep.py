"""The absolute scale from the cell's content (:mod:`powdersolve.maps.scale`), on generated crystals.

Variants of the network's 5 latent samples: ``mean_only`` (each map's mean moved to F(000)/V) and
``absolute`` (mean and variance both set from the atoms in the cell) and ``shrink_only`` (the same,
but a map whose variance is below the expected one keeps it) and ``stretch_beyond_<r>`` (shrink
only, except that a map whose mean is off the expected one by more than r either way is stretched
too: the network's scale for the whole composition is wrong). Random atoms (true composition
and cell, 5 draws) get ``absolute`` too. Scored by the evaluate protocol (grid 50, best over samples
and rotations; SSIM with no origin shift). Chooses the setting on generated validation crystals,
never on the benchmark.

    python experiments/absolute_scale_sweep.py --weights powdersolve/weights/cubic.safetensors \\
        --data data/build/cubic_e --split val --limit 100 \\
        --json experiments/results/absolute_scale_cubic_e_val.json
"""

from __future__ import annotations

import time

import numpy as np
from postprocess_sweep import run_sweep

from powdersolve.baselines import baseline_grids
from powdersolve.density import DensityConfig
from powdersolve.maps.scale import absolute_scale, expected_moments, grid_hkl
from powdersolve.model import model_band

#: ``stretch_beyond_<r>``: shrink only, but stretch too a map whose mean is off by more than r either way.
STRETCH_BEYOND = (1.1, 1.2, 1.35, 1.5)


def variants(preds: np.ndarray, crystal, model, truth) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The variants above; extra fields: seconds per map, and the ratio of the truth's variance to
    the expected one (1 where atoms do not overlap)."""
    c, band = crystal, model_band(model.cfg)
    t0 = time.perf_counter()
    scaled = absolute_scale(preds, c.lattice, c.numbers, c.occupancy, model.cfg.b_iso, band, stretch=True)
    seconds = (time.perf_counter() - t0) / len(preds)
    mean, var_band = expected_moments(c.lattice, c.numbers, c.occupancy, model.cfg.b_iso, grid_hkl(50))
    mean_only = preds - preds.mean(axis=(1, 2, 3), keepdims=True) + mean
    rand = np.stack(baseline_grids(c, truth, DensityConfig(model.cfg.b_iso, 50), 0, 5)["random_atoms"])
    shrunk = absolute_scale(preds, c.lattice, c.numbers, c.occupancy, model.cfg.b_iso, band, stretch_beyond=None)
    hybrid = {f"stretch_beyond_{r:g}": absolute_scale(preds, c.lattice, c.numbers, c.occupancy, model.cfg.b_iso,
                                                      band, stretch_beyond=r) for r in STRETCH_BEYOND}
    out = {"mean_only": mean_only, "absolute": scaled, "shrink_only": shrunk, **hybrid, "random_atoms": rand,
           "random_atoms_absolute": absolute_scale(rand, c.lattice, c.numbers, c.occupancy, model.cfg.b_iso,
                                                   stretch=True)}
    return out, {"seconds_per_map": seconds, "truth_variance_ratio": float(truth.var() / var_band),
                 "pred_variance_ratio": float(preds[0].var() / var_band),
                 "pred_mean_ratio": float(preds[0].mean() / mean)}


if __name__ == "__main__":
    run_sweep(__doc__.splitlines()[0], variants)
