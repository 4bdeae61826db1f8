"""Synthetic training crystals: substituted AFLOW prototypes and PyXtal random symmetric crystals.

Every generator is deterministic given its seed: one :class:`numpy.random.Generator` drives all
choices, and PyXtal gets an integer seed drawn from it. The only non-deterministic element is the
per-candidate CPU-time limit ``timeout_s`` that guards PyXtal's heavy-tailed run time: when it
fires, that candidate is skipped. CPU time (not wall time) is used so that a loaded machine does
not change which candidates survive; caches and imports are warmed before the timed loop.

All crystals come back in the conventional standard cell (spglib via :func:`standardize`), with
their space group, and pass three filters: the requested space groups, a minimum interatomic
distance and the benchmark exclusion list.

Modules: :mod:`~powdersolve.structures.generators.limits` (space groups, splits, distance checks, element
pools), :mod:`~powdersolve.structures.generators.prototypes`, :mod:`~powdersolve.structures.generators.random_crystals`,
:mod:`~powdersolve.structures.generators.generate` (:func:`generate`, :func:`iter_files`).
"""

from powdersolve.structures.generators.generate import generate, iter_files
from powdersolve.structures.generators.limits import (
    DEFAULT_COVALENT_FACTOR,
    DEFAULT_MAX_ATOMS,
    DEFAULT_MIN_DISTANCE,
    KINDS,
    MAX_ATTEMPTS_PER_CRYSTAL,
    MAX_Z,
    SYSTEMS,
    distances_ok,
    parse_system,
    split_of,
)
from powdersolve.structures.generators.prototypes import perturb_symmetric
from powdersolve.structures.generators.random_crystals import random_composition

__all__ = [
    "DEFAULT_COVALENT_FACTOR",
    "DEFAULT_MAX_ATOMS",
    "DEFAULT_MIN_DISTANCE",
    "KINDS",
    "MAX_ATTEMPTS_PER_CRYSTAL",
    "MAX_Z",
    "SYSTEMS",
    "distances_ok",
    "generate",
    "iter_files",
    "parse_system",
    "perturb_symmetric",
    "random_composition",
    "split_of",
]
