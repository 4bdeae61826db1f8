"""The benchmark exclusion list: (reduced formula, space group) pairs that training data must never hold.

The list is built from the held-out real structures (``shared/benchmark/real``) and its manifest,
and ships with the package as ``powdersolve/data/benchmark_exclusion.csv`` so that generators can
filter without access to the benchmark files.
"""

from __future__ import annotations

import csv
import functools
import io
from importlib import resources
from pathlib import Path

from pymatgen.core import Composition

from powdersolve.structures.io import iter_structure_files, load_crystal

CSV_NAME = "benchmark_exclusion.csv"


def normalize_formula(formula: str) -> str:
    """Reduced formula as pymatgen writes it, so 'Ti2O4' and 'TiO2' compare equal."""
    return Composition(formula).reduced_formula


def build_exclusion_list(real_dir: str | Path, manifest: str | Path | None = None) -> list[tuple[str, int]]:
    """Sorted unique (reduced formula, space group) of every structure under ``real_dir``.

    Each file contributes the key of its conventional standard cell (:func:`load_crystal`); the
    manifest (default ``real_dir/../manifest.csv`` when present) adds its listed formula and space
    group too, in case a symmetry tolerance disagrees.
    """
    real_dir = Path(real_dir)
    keys = {load_crystal(f).key for f in iter_structure_files(real_dir)}
    manifest = Path(manifest) if manifest is not None else real_dir.parent / "manifest.csv"
    if manifest.is_file():
        with open(manifest, newline="") as fh:
            for row in csv.DictReader(fh):
                keys.add((normalize_formula(row["formula"]), int(row["spacegroup"])))
    return sorted(keys)


def exclusion_csv_text(keys: list[tuple[str, int]]) -> str:
    """The CSV text (header formula,spacegroup) of an exclusion list."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["formula", "spacegroup"])
    w.writerows(keys)
    return buf.getvalue()


@functools.cache
def exclusion_set() -> frozenset[tuple[str, int]]:
    """The shipped exclusion list as a frozen set (read once per process)."""
    text = resources.files("powdersolve.data").joinpath(CSV_NAME).read_text()
    return frozenset((row["formula"], int(row["spacegroup"])) for row in csv.DictReader(io.StringIO(text)))


def is_excluded(formula: str, spacegroup: int) -> bool:
    """True when (formula, space group) is a benchmark structure; ``formula`` need not be reduced."""
    return (normalize_formula(formula), int(spacegroup)) in exclusion_set()
