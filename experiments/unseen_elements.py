"""A dev set of cubic crystals of elements the shipped cubic model never saw: the absolute scale and Z on them.

The network's electron scale is worst for compositions it saw rarely or never, and that is where
the absolute scale matters most. The cubic training builds (``cubic_e``, ``cubic_p``) hold no noble
gas and no actinide, so the generated validation splits cannot show how reading Z from such maps
behaves. This set is built here from standard prototypes (A1, A2, B1, C1 fluorite, L1_2) with
literature cell edges, every entry checked against the benchmark exclusion list, and scored with
the variants of ``formula_units_sweep.py`` or (``--sweep absolute_scale``) ``absolute_scale_sweep.py``.

    python experiments/unseen_elements.py --weights powdersolve/weights/cubic.safetensors \\
        [--sweep absolute_scale] --json experiments/results/<formula_units|absolute_scale>_unseen_cubic.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import absolute_scale_sweep
import formula_units_sweep
import torch
from postprocess_sweep import sweep_crystals
from pymatgen.core import Lattice, Structure

from powdersolve.structures import Crystal
from powdersolve.structures.exclusion import is_excluded
from powdersolve.weights import load_model

_A1 = ("Fm-3m", [[0, 0, 0]])
_A2 = ("Im-3m", [[0, 0, 0]])
_B1 = ("Fm-3m", [[0, 0, 0], [0.5, 0.5, 0.5]])
_C1 = ("Fm-3m", [[0, 0, 0], [0.25, 0.25, 0.25]])
_L12 = ("Pm-3m", [[0, 0, 0], [0, 0.5, 0.5]])

#: (species per site, prototype, cell edge in A); noble gases and actinides: none is in cubic training.
STRUCTURES: list[tuple[list[str], tuple[str, list[list[float]]], float]] = [
    (["He"], _A1, 4.24), (["Ar"], _A1, 5.26), (["Kr"], _A1, 5.72), (["Rn"], _A1, 6.20),
    (["Th"], _A2, 4.11), (["U"], _A2, 3.47), (["Np"], _A2, 3.52),
    (["U", "O"], _C1, 5.47), (["Th", "O"], _C1, 5.60), (["Np", "O"], _C1, 5.43), (["Pu", "O"], _C1, 5.40),
    (["U", "N"], _B1, 4.89), (["U", "C"], _B1, 4.96), (["Th", "C"], _B1, 5.34), (["Th", "N"], _B1, 5.16),
    (["Pu", "N"], _B1, 4.90), (["U", "S"], _B1, 5.49), (["Th", "S"], _B1, 5.68), (["U", "P"], _B1, 5.59),
    (["Np", "N"], _B1, 4.90), (["Pu", "S"], _B1, 5.54), (["U", "As"], _B1, 5.78), (["U", "Sb"], _B1, 6.20),
    (["Th", "P"], _B1, 5.84),
    (["U", "Ge"], _L12, 4.21), (["U", "Sn"], _L12, 4.63), (["U", "Al"], _L12, 4.29), (["U", "Pb"], _L12, 4.79),
    (["Th", "Pb"], _L12, 4.86),
]


def crystals() -> list[Crystal]:
    """The set, as Crystals in their conventional standard cells; raises if one is a benchmark crystal."""
    out = []
    for species, (group, coords), a in STRUCTURES:
        s = Structure.from_spacegroup(group, Lattice.cubic(a), species, coords[: len(species)])
        number = s.get_space_group_info()[1]
        if is_excluded(s.composition.reduced_formula, number):
            raise ValueError(f"{s.composition.reduced_formula} {group} is a benchmark crystal")
        out.append(Crystal.from_structure(s, number))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--sweep", choices=["formula_units", "absolute_scale"], default="formula_units",
                    help="whose variants to score: formula_units_sweep.py's or absolute_scale_sweep.py's")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, _ = load_model(args.weights)
    variants = (formula_units_sweep if args.sweep == "formula_units" else absolute_scale_sweep).variants
    sweep_crystals(crystals(), model, variants, args.json, {k: str(v) for k, v in vars(args).items()})


if __name__ == "__main__":
    main()
