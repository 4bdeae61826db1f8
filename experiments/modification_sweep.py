"""Paper SSIM and map CC before and after density modification, on generated crystals.

Each crystal's stick pattern gives the observed magnitudes (:mod:`powdersolve.maps.modification`); the
network's 5 latent samples give the phases. Variants: the raw maps, the ``--sharpen 1.25,1``
post-processing, and density modification: 10 error-reduction cycles returning the amplitude-constrained
map (``dm10``) or its non-negative part (``_clip``), 30 cycles, cycles on magnitudes at B = 4 A^2
blurred back to the target's B afterwards (``_b4``), the model-fitted scale instead of Wilson's, and
two of them followed by the sharpening. The same modification applied to random atoms (true
composition and cell, 5 draws) measures what the pattern's amplitudes do without the network's
phases. Scored by the evaluate protocol (grid 50, best over samples and rotations). Used to choose
the ``--modify`` setting on generated validation crystals, never on the benchmark.

    python experiments/modification_sweep.py --weights powdersolve/weights/trigonal.safetensors \
        --data data/build/trigonal_s --split val --limit 40 --json experiments/results/modification_trigonal_s_val.json
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
from powdersolve.maps.sharpen import sharpen_map

SETTINGS = {
    "dm10": ModificationConfig(cycles=10, final="amplitudes"),
    "dm10_clip": ModificationConfig(cycles=10, final="density"),
    "dm30_clip": ModificationConfig(cycles=30, final="density"),
    "dm10_clip_b4": ModificationConfig(cycles=10, final="density", b_work=4.0),
    "dm10_clip_model_scale": ModificationConfig(cycles=10, final="density", scale="model"),
}
SHARPENED = ("dm10_clip", "dm10_clip_b4")  # also scored after --sharpen 1.25,1


def variants(preds: np.ndarray, crystal, model, truth) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Sharpening, every modification setting, two of them sharpened after, and random atoms raw and modified;
    ``dm_s``: seconds per setting."""
    c, b = crystal, model.cfg.b_iso
    s = sticks(c, q_max=model.cfg.q_max)

    def modify(grids: np.ndarray, mcfg: ModificationConfig) -> np.ndarray:
        return modify_density(grids, c.lattice, MeasuredPeaks.from_sticks(s, model.cfg.q_max), c.numbers, c.occupancy,
                              mcfg)

    rand = np.stack(baseline_grids(c, truth, DensityConfig(b, 50), 0, 5)["random_atoms"])
    out = {"sharpen": sharpen_map(preds, c.lattice, 1.25, 1.0), "random_atoms": rand}
    t0 = time.perf_counter()
    for name, mcfg in SETTINGS.items():
        out[name] = modify(preds, mcfg)
    dm_s = (time.perf_counter() - t0) / len(SETTINGS)
    for name in SHARPENED:
        out[f"{name}_sharpen"] = sharpen_map(out[name], c.lattice, 1.25, 1.0)
    out["random_atoms_dm10_clip"] = modify(rand, SETTINGS["dm10_clip"])
    return out, {"dm_s": dm_s}


if __name__ == "__main__":
    run_sweep(__doc__.splitlines()[0], variants)
