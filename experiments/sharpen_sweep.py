"""Paper SSIM and map CC of a model's maps before and after simple post-processing, on generated crystals.

Variants: raw; negative density clipped (``clip0``); extra blur B = 2 A^2 (``blur2``); and
:func:`powdersolve.maps.sharpen.sharpen_map` at (power, B) = (1.5, 2) and (1.25, 1). Scored by the evaluate
protocol (5 samples, grid 50, best over samples and rotations). Used to choose the ``--sharpen``
setting on generated validation crystals, never on the benchmark.

    python experiments/sharpen_sweep.py --weights powdersolve/weights/trigonal.safetensors \
        --data data/build/trigonal_s --split val --limit 40 --json experiments/results/sharpen_trigonal_s_val.json
"""

from __future__ import annotations

import numpy as np
from postprocess_sweep import run_sweep

from powdersolve.maps.sharpen import gaussian_blur, sharpen_map

VARIANTS = {
    "clip0": lambda g, lat: np.maximum(g, 0.0),
    "blur2": lambda g, lat: gaussian_blur(g, lat, 2.0),
    "pow1.5_blur2": lambda g, lat: sharpen_map(g, lat, 1.5, 2.0),
    "pow1.25_blur1": lambda g, lat: sharpen_map(g, lat, 1.25, 1.0),
}


def variants(preds: np.ndarray, crystal, model, truth) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Each post-processing applied to every sample."""
    return {name: np.stack([fn(g, crystal.lattice) for g in preds]) for name, fn in VARIANTS.items()}, {}


if __name__ == "__main__":
    run_sweep(__doc__.splitlines()[0], variants)
