"""Export a development set: generated crystals with free coordinates, as CIF files for `powdersolve evaluate`.

Choices (which model to ship, which setting) are made on such a set, never on the held-out real
one. The crystals come from the test split of a build (the split no model selection reads: the
training loop selects on val), at most ``--per-group`` per space group so that a few prolific
prototypes do not dominate, and only those with at least one free coordinate (a crystal whose
atoms all sit on fixed Wyckoff positions is scored near 1 by the zero-phase null, which makes it
useless for telling models apart). Every crystal is checked against the benchmark exclusion list.

    python benchmarks/dev_set.py --data data/build/orthorhombic_e --out data/dev/orthorhombic --limit 80
    python benchmarks/dev_set.py --data data/build/orthorhombic_r2 --out data/dev/orthorhombic_random \
        --limit 120 --per-group 6
    powdersolve evaluate --structures data/dev/orthorhombic --json benchmarks/results/dev_orthorhombic.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from pymatgen.core import Structure
from pymatgen.io.cif import CifWriter

from powdersolve.dataset import load_dataset
from powdersolve.fileio import atomic_output_dir
from powdersolve.structures.exclusion import is_excluded
from powdersolve.structures.orbits import site_constraints


def has_free_coordinate(structure: Structure, symprec: float = 0.01) -> bool:
    """True when some site's Wyckoff position has a free parameter (site-symmetry projector of nonzero rank)."""
    return site_constraints(structure, symprec)[0].n_free > 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a build folder (`powdersolve data build`)")
    ap.add_argument("--out", required=True, help="folder for the CIF files (written whole)")
    ap.add_argument("--split", default="test", choices=("val", "test", "all"),
                    help="'all': every split, only for a build no model was trained on")
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--per-group", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-atoms", type=int, default=1, help="only cells of at least this many atoms")
    args = ap.parse_args()
    splits = ("train", "val", "test") if args.split == "all" else (args.split,)
    records = [r for split in splits for r in load_dataset(args.data, split)]
    order = np.random.default_rng(args.seed).permutation(len(records))
    per_group: Counter[int] = Counter()
    chosen = []
    for i in order:
        crystal = records[i].crystal
        if per_group[crystal.spacegroup] >= args.per_group or is_excluded(crystal.formula, crystal.spacegroup):
            continue
        structure = crystal.to_structure()
        if len(structure) < args.min_atoms or not has_free_coordinate(structure):
            continue
        per_group[crystal.spacegroup] += 1
        chosen.append((crystal, structure))
        if len(chosen) == args.limit:
            break
    with atomic_output_dir(Path(args.out), overwrite=True) as tmp:
        for k, (crystal, structure) in enumerate(chosen):
            (tmp / f"{k:03d}_{crystal.formula}_{crystal.spacegroup}.cif").write_text(str(CifWriter(structure)))
        summary = {"source": str(args.data), "split": args.split, "seed": args.seed, "n": len(chosen),
                   "min_atoms": args.min_atoms,
                   "per_group": args.per_group, "spacegroups": dict(sorted(per_group.items())),
                   "atoms_per_cell": [len(s) for _, s in chosen]}
        # A .md manifest: evaluate reads every .json/.cif in the folder as a structure.
        about = __doc__.split("\n\n")[1]
        body = json.dumps(summary, indent=1)
        (tmp / "dev_set.md").write_text(f"# Development set\n\n{about}\n\n```json\n{body}\n```\n")
    print(f"{args.out}: {len(chosen)} crystals with free coordinates from the {args.split} split of {args.data}, "
          f"{len(per_group)} space groups")


if __name__ == "__main__":
    main()
