"""Deterministic generation of synthetic crystals, and reading them from files."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from powdersolve.errors import InputError
from powdersolve.structures.crystal import Crystal
from powdersolve.structures.exclusion import exclusion_set, is_excluded
from powdersolve.structures.generators.dimers import DIMER_TIMEOUT_S, _dimer_candidate
from powdersolve.structures.generators.limits import (
    DEFAULT_COVALENT_FACTOR,
    DEFAULT_MAX_ATOMS,
    DEFAULT_MIN_DISTANCE,
    KINDS,
    MAX_ATTEMPTS_PER_CRYSTAL,
    MAX_Z,
    _accept,
    _cations,
    _covalent_radius,
    _elements,
    _time_limit,
    _Timeout,
    parse_system,
)
from powdersolve.structures.generators.prototypes import (
    _prototype_candidate,
    _templates,
    _volume_predictor,
)
from powdersolve.structures.generators.random_crystals import _random_candidate
from powdersolve.structures.io import iter_structure_files, load_crystal


def _warm_up(kind: str, groups: tuple[int, ...], max_atoms: int) -> None:
    """Fill the per-process caches and imports outside the per-candidate time limit, so that a slow
    first call (template standardisation, importing pyxtal) can never time out and shift the output."""
    _elements()
    _cations()
    for z in range(1, MAX_Z + 1):
        _covalent_radius(z)

    exclusion_set()
    if kind == "prototypes":
        _templates(groups, max_atoms)
        _volume_predictor()
    else:
        import pyxtal  # noqa: F401
        from pyxtal.symmetry import Group

        Group(int(groups[0]))


def generate(kind: str, system: str | Sequence[int], count: int, seed: int | Sequence[int], *,
             min_distance: float = DEFAULT_MIN_DISTANCE, covalent_factor: float = DEFAULT_COVALENT_FACTOR,
             max_atoms: int = DEFAULT_MAX_ATOMS, timeout_s: float = 5.0, perturb: float = 0.0,
             group_swap: bool = False) -> list[Crystal]:
    """``count`` filtered crystals from generator ``kind`` ('prototypes', 'random', 'dimers' or 'files:DIR').

    Args:
        system: crystal-system name ('cubic', 'trigonal', ..., 'all') or space-group numbers.
        seed: an int or a list of ints (e.g. [build seed, generator id, shard]) for
            :class:`numpy.random.SeedSequence`.
        min_distance: smallest allowed interatomic distance in Angstrom.
        covalent_factor: smallest allowed distance as a fraction of the sum of covalent radii.
        max_atoms: largest conventional cell (atoms).
        timeout_s: CPU-time limit per candidate in seconds (main thread only; 0 disables).
        perturb: prototypes only: largest symmetry-keeping displacement of each site in Angstrom
            (:func:`perturb_symmetric`), so one prototype yields many free-coordinate variants.
        group_swap: prototypes only: an element's own structure may take another element of its
            periodic-table group (see :func:`_substitute`).

    Raises:
        InputError: bad arguments, or fewer than ``count`` crystals after
            ``MAX_ATTEMPTS_PER_CRYSTAL * count`` attempts.
    """
    groups = parse_system(system)
    if count <= 0:
        raise InputError(f"count {count} must be a positive integer")
    if kind.startswith("files:"):
        found = iter_files(kind[len("files:"):], groups, max_atoms)
        if not found:
            raise InputError(f"{kind[len('files:'):]}: no structure passes the space-group, size and "
                             "benchmark-exclusion filters")
        return found[:count]
    if kind not in KINDS:
        raise InputError(f"unknown generator '{kind}'; use prototypes, random, dimers or files:DIR")
    if perturb < 0:
        raise InputError(f"perturb {perturb} must be a non-negative distance in Angstrom")
    if kind == "prototypes":
        make = functools.partial(_prototype_candidate, perturb=perturb, group_swap=group_swap)
    elif kind == "dimers":
        make = _dimer_candidate
        # Pairs crowd PyXtal's placements: a candidate that has not fitted within this CPU time
        # almost never does (measured: most successes take < 0.3 s), so give up early.
        timeout_s = min(timeout_s, DIMER_TIMEOUT_S) if timeout_s > 0 else DIMER_TIMEOUT_S
    else:
        make = _random_candidate
    _warm_up(kind, groups, max_atoms)
    seeds = [int(seed)] if isinstance(seed, int | np.integer) else [int(s) for s in seed]
    rng = np.random.default_rng(np.random.SeedSequence(seeds))
    out: list[Crystal] = []
    for _ in range(MAX_ATTEMPTS_PER_CRYSTAL * count):
        if len(out) == count:
            break
        # Each candidate gets its own child generator so a skipped (timed-out) candidate does not
        # shift the random stream of the following ones.
        child = np.random.default_rng(rng.integers(2**63))
        try:
            with _time_limit(timeout_s):
                s = make(groups, max_atoms, child)
                crystal = None if s is None else _accept(s, groups, max_atoms, min_distance, covalent_factor)
        except InputError:
            raise
        except (_Timeout, Exception):  # noqa: BLE001 - pyxtal/pymatgen fail in many ways on odd candidates
            crystal = None
        if crystal is not None:
            out.append(crystal)
    if len(out) < count:
        raise InputError(f"generator '{kind}' made only {len(out)} of {count} crystals in space groups "
                         f"{groups[0]}-{groups[-1]}; relax --system or the distance/atom limits")
    return out


def iter_files(directory: str | Path, groups: Sequence[int] | None = None,
               max_atoms: int | None = None) -> list[Crystal]:
    """Crystals (conventional standard cells) of every structure file under ``directory``, sorted by path,
    keeping those in ``groups`` with <= ``max_atoms`` atoms and not on the benchmark exclusion list."""
    out = []
    for f in iter_structure_files(directory):
        c = load_crystal(f)
        if groups is not None and c.spacegroup not in groups:
            continue
        if max_atoms is not None and len(c.numbers) > max_atoms:
            continue
        if is_excluded(c.formula, c.spacegroup):
            continue
        out.append(c)
    return out
