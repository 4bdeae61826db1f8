"""Density modification with and without the space group found in each map, on generated crystals.

Variants of the network's 5 latent samples: ``dm10_clip`` (the ``--modify 10`` default: the pattern's
magnitudes with the map's phases, 10 error-reduction cycles, non-negative map); ``symmetrised``
(the raw map averaged over the most symmetric group it plausibly shows, at that group's standard
origin; no modification); ``dm10_clip_sym`` (:func:`powdersolve.modification.modify_density_symmetric`:
``dm10_clip``, then the group found in that map, the map moved to its standard origin, and 10 more
cycles averaging over the group in each); and ``dm10_clip_sym`` sharpened (``--sharpen 1.25,1``).
Random atoms (true composition and cell, 5 draws) get both modifications, which measures what the
magnitudes and the symmetry do without the network's phases. Scored by the evaluate protocol (grid
50, best over samples and rotations; SSIM with no origin shift). Chooses the setting on generated
validation crystals, never on the benchmark.

    python benchmarks/symmetry_modification_sweep.py --weights powdersolve/weights/trigonal.safetensors \
        --data data/build/trigonal_s --split val --limit 20 \
        --json benchmarks/results/symmetry_modification_trigonal_s_val.json
"""

from __future__ import annotations

import time

import numpy as np
from postprocess_sweep import run_sweep

from powdersolve.baselines import baseline_grids
from powdersolve.density import DensityConfig
from powdersolve.diffraction.sticks import sticks
from powdersolve.modification import ModificationConfig, modify_density, modify_density_symmetric
from powdersolve.sharpen import sharpen_map
from powdersolve.solve.mapsymmetry import symmetrise_found

PLAIN = ModificationConfig(cycles=10, final="density")


def variants(preds: np.ndarray, crystal, model, truth) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The variants above; extra fields: seconds of the symmetric modification, and whether the group
    found in the posterior-mean map is the crystal's."""
    c = crystal
    s = sticks(c, q_max=model.cfg.q_max)
    args = (c.lattice, s.q, s.intensity, model.cfg.q_max, c.numbers, c.occupancy, PLAIN)
    rand = np.stack(baseline_grids(c, truth, DensityConfig(model.cfg.b_iso, 50), 0, 5)["random_atoms"])
    t0 = time.perf_counter()
    sym, groups = modify_density_symmetric(preds, *args)
    sym_s = time.perf_counter() - t0
    out = {
        "dm10_clip": modify_density(preds, *args),
        "symmetrised": symmetrise_found(preds, c.lattice)[0],
        "dm10_clip_sym": sym,
        "dm10_clip_sym_sharpen": sharpen_map(sym, c.lattice, 1.25, 1.0),
        "random_atoms": rand,
        "random_atoms_dm10_clip": modify_density(rand, *args),
        "random_atoms_dm10_clip_sym": modify_density_symmetric(rand, *args)[0],
    }
    return out, {"sym_s": sym_s, "true_group_found": float(groups[0] is not None and groups[0].number == c.spacegroup)}


if __name__ == "__main__":
    run_sweep(__doc__.splitlines()[0], variants)
