"""Z (formula units per cell) read from the network's own map, and the absolute scale it gives.

A user often knows the formula but not Z. :func:`powdersolve.solve.atoms.ranked_formula_units_in_map`
counts Z from the peaks of the posterior-mean map (sample 0), scale-free. This sweep measures, on
generated crystals (Z known), how often its best Z is right, how far ahead of the next one it is,
and the paper SSIM of the absolute scale (shrink only, the predict default) with the true Z
(``true_z``) and with the map's best Z, counted with the lattice centring the map obeys imposed
(``map_z``) or without (``map_z_p``), and with unassigned peaks lighter than half the lightest
element not counted against a Z (``map_z_g``: the background ripples of a mis-scaled map). Each
row keeps the Z, its cost and the ratio of its cost to the next best's, so that a gate (accept the
map's Z only when its cost is low, keep the network's scale otherwise) can be chosen from the rows,
on generated validation crystals, never on the benchmark.

    python experiments/formula_units_sweep.py --weights powdersolve/weights/cubic.safetensors \\
        --data data/build/cubic_e --split val --limit 100 \\
        --json experiments/results/formula_units_cubic_e_val.json
"""

from __future__ import annotations

import numpy as np
from postprocess_sweep import run_sweep
from pymatgen.core import Composition

from powdersolve.evaluate import cell_formula
from powdersolve.maps.formula_units import ranked_formula_units_in_map
from powdersolve.maps.scale import absolute_scale, cell_atoms
from powdersolve.model import model_band

#: ``map_z_g``: unassigned peaks with under this fraction of the lightest element's electrons are
#: background ripples, not missing atoms (solve's rule for dropping a peak as noise).
GHOST = 0.5


def variants(preds: np.ndarray, crystal, model, truth) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The variants above; extra fields: true and estimated Z, whether they agree, the cost ratio."""
    c, band, b = crystal, model_band(model.cfg), model.cfg.b_iso
    reduced, z_true = Composition(cell_formula(c)).get_reduced_composition_and_factor()
    formula = reduced.formula.replace(" ", "")

    def scaled(z: int) -> np.ndarray:
        return absolute_scale(preds, c.lattice, *cell_atoms(formula, z), b, band)

    out = {"true_z": scaled(int(round(z_true)))}
    extra = {"z_true": float(z_true)}
    for name, centre, ghost in (("map_z", True, None), ("map_z_p", False, None), ("map_z_g", True, GHOST)):
        ranked = ranked_formula_units_in_map(preds[0], c.lattice, reduced, centre=centre, ghost_fraction=ghost)
        z_map = ranked[0][0]
        out[name] = out["true_z"] if z_map == round(z_true) else scaled(z_map)
        second = ranked[1][2] if len(ranked) > 1 else float("inf")
        extra.update({f"z_{name}": float(z_map), f"{name}_right": float(z_map == round(z_true)),
                      f"{name}_cost": float(ranked[0][2]), f"{name}_ratio": float(ranked[0][2] / second)})
    return out, extra


if __name__ == "__main__":
    run_sweep(__doc__.splitlines()[0], variants)
