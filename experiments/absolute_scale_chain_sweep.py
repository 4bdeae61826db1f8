"""The full post-processing chain from raw maps and from maps on the absolute scale, on generated crystals.

`predict` with `--formula-units` puts the samples on the absolute scale of the cell content before
`--modify` reads their mean; `evaluate --modify` modifies the raw maps. This measures whether the
order matters: variants ``chain`` (``--modify 10 --modify-symmetry --modify-histogram final`` on the
raw maps), ``absolute`` (:func:`powdersolve.maps.scale.absolute_scale` alone) and
``absolute_chain`` (the chain on the absolute-scaled maps). Generated validation crystals only.

    python experiments/absolute_scale_chain_sweep.py --weights powdersolve/weights/cubic.safetensors \\
        --data data/build/cubic_e --split val --limit 24 \\
        --json experiments/results/absolute_scale_chain_cubic_e_val.json
"""

from __future__ import annotations

import numpy as np
from postprocess_sweep import run_sweep

from powdersolve.diffraction.sticks import sticks
from powdersolve.maps.modification import ModificationConfig, modify_density
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.maps.scale import absolute_scale
from powdersolve.model import model_band


def variants(preds: np.ndarray, crystal, model, truth) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The three variants above (no extra fields)."""
    c = crystal
    s = sticks(c, q_max=model.cfg.q_max)
    args = (c.lattice, MeasuredPeaks.from_sticks(s, model.cfg.q_max), c.numbers, c.occupancy)
    cfg = ModificationConfig(cycles=10, final="density", symmetry=True, histogram="final", b_iso=model.cfg.b_iso)
    scaled = absolute_scale(preds, c.lattice, c.numbers, c.occupancy, model.cfg.b_iso, model_band(model.cfg))
    return {"chain": modify_density(preds, *args, cfg), "absolute": scaled,
            "absolute_chain": modify_density(scaled, *args, cfg)}, {}


if __name__ == "__main__":
    run_sweep(__doc__.splitlines()[0], variants)
