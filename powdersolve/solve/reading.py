"""Candidate structures read from density maps: each map read for its plausible Z, identical ones merged."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from powdersolve.cell import Composition, metric_family
from powdersolve.errors import InputError
from powdersolve.indexing.extinction import ExtinctionClass
from powdersolve.maps.settings import AxisSetting, axis_setting, to_standard
from powdersolve.maps.symmetry import (
    FAMILY_GROUPS,
    group_operations,
    plausible_groups_of,
    search_space_groups,
    symmetrise_map,
)
from powdersolve.solve.atoms import AtomsResult, density_to_structures
from powdersolve.solve.candidate import DistinctStructures


@dataclass(frozen=True)
class MapReadings:
    """Distinct structures read from density maps.

    Attributes:
        structures: distinct structures, consensus (read from most maps) first, after ``n_priority``
            read from the maps that come first (symmetry-averaged ones).
        origins: per structure, the labels of the maps it was read from.
        species_note: how species were chosen when the composition was partial or missing ('' otherwise).
        notes: maps without atoms, overlaps, symmetry found at another tolerance.
        n_priority: how many structures lead the list because they came from the first maps.
    """

    structures: list[Structure]
    origins: list[list[str]]
    species_note: str
    notes: list[str]
    n_priority: int


def composition_for_atoms(text: str | None) -> tuple[dict[str, float] | None, bool]:
    """(element -> amount or None, ratios_known) for :func:`density_to_structure` from the user's text."""
    if not text:
        return None, False
    parsed = Composition.parse(text)
    return dict(parsed.amounts), bool(parsed.ratios_known)


def candidates_from_grids(grids: Sequence[np.ndarray] | np.ndarray, lattice: np.ndarray,
                          composition: dict[str, float] | None, *, ratios_known: bool = True,
                          labels: Sequence[str] | None = None, min_distance: float = 0.7, symprec: float = 0.2,
                          n_z: int = 2, n_z_averaged: int = 2, n_first: int = 0,
                          spacegroups: Sequence[int | None] | None = None,
                          skip_p1_pairs: bool = False, lattices: Sequence[np.ndarray | None] | None = None,
                          workers: int = 1) -> MapReadings:
    """Distinct structures read from density grids (e/A^3, fractional axes) in the cell ``lattice`` (rows, A).

    Each map is read for its ``n_z`` (averaged maps: ``n_z_averaged``) most plausible numbers of formula units.
    Maps that give no
    atom are skipped with a note; identical structures (StructureMatcher, same formula) are merged,
    first occurrence kept, so the refinement runs once per distinct structure. Structures are ordered
    by the number of maps that gave them (consensus first), except that those read from the first
    ``n_first`` maps (symmetry-averaged ones) come before all others. ``spacegroups``: per map, the
    group it was averaged over (its atoms are read as whole orbits), or None.
    ``skip_p1_pairs``: see :class:`~powdersolve.solve.config.SolveConfig`. ``lattices``: per map, its own
    cell (rows, A) where it differs from ``lattice`` (a map relabelled to a group's standard setting), or None.
    ``workers``: maps read at once (threads); the result does not depend on it.
    """
    labels = list(labels) if labels is not None else [f"map {i}" for i in range(len(grids))]
    seen = DistinctStructures()
    structures: list[Structure] = []
    origins: list[list[str]] = []
    species_note = ""
    notes: list[str] = []
    failed: list[str] = []
    priority: list[bool] = []

    def read(m: int) -> list[AtomsResult] | InputError:
        group = spacegroups[m] if spacegroups is not None else None
        own = lattices[m] if lattices is not None and lattices[m] is not None else lattice
        try:
            return density_to_structures(grids[m], own, composition, ratios_known=ratios_known,
                                         min_distance=min_distance, symprec=symprec,
                                         n_z=n_z if group is None else n_z_averaged, spacegroup=group)
        except InputError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        readings = list(pool.map(read, range(len(grids))))
    for m, (results, label) in enumerate(zip(readings, labels)):
        if isinstance(results, InputError):
            failed.append(f"{label} ({results})")
            continue
        for k, res in enumerate(results):
            species_note = species_note or res.inferred_species_note
            notes += [n for n in res.notes if n not in notes]
            s = res.structure
            tag = label if k == 0 else f"{label} (Z={res.z_formula_units})"
            # A P1 reading is noise that no symmetry could place; the matcher, slowest on such pairs,
            # is not asked to merge two of them.
            same = seen.index(s, noisy=skip_p1_pairs and res.spacegroup == 1)
            if same is None:
                structures.append(s)
                origins.append([tag])
                priority.append(m < n_first)
            else:
                origins[same].append(tag)
                priority[same] |= m < n_first
    # Consensus first: a structure read from many samples is the likelier one to screen.
    order = sorted(range(len(structures)), key=lambda i: (not priority[i], -len(origins[i])))
    structures, origins = [structures[i] for i in order], [origins[i] for i in order]
    if failed:
        more = "; ..." if len(failed) > 3 else ""
        notes.append(f"{len(failed)} map(s) gave no atoms: " + "; ".join(failed[:3]) + more)
    return MapReadings(structures, origins, species_note, notes, sum(priority))


def symmetrised_maps(grid: np.ndarray, lattice: np.ndarray, label: str, top: int = 3
                     ) -> tuple[list[np.ndarray], list[str], list[int]]:
    """``grid`` averaged over each of the ``top`` most symmetric space groups it plausibly obeys.

    Only for cells of the cubic or hexagonal metric (others return nothing). Labels say the group
    and its correlation, e.g. 'mean averaged over P3_121 (cc_min 0.83)'; the groups' numbers come
    third. The averaged maps are in each group's standard origin.
    """
    grid = np.asarray(grid, dtype=np.float64)
    try:
        found = plausible_groups_of(grid, lattice, top)
    except InputError:  # a grid whose steps differ along axes the group's rotations mix
        return [], [], []
    maps = [symmetrise_map(grid, g.number, g.origin) for g in found]
    labels = [f"{label} averaged over {g.symbol} (cc_min {g.cc_min:.2f})" for g in found]
    return maps, labels, [g.number for g in found]


@dataclass(frozen=True)
class PriorityMap:
    """A map read before the others, usually averaged over a space group at its standard origin.

    Attributes:
        grid: the map (e/A^3, fractional axes of ``lattice``).
        label: where the map came from, e.g. 'mean averaged over Pnma as P 2_1/b 2_1/n 2_1/m (extinctions; ...)'.
        number: the space group it was averaged over (its atoms are read as whole orbits), or None.
        lattice: (3, 3) rows in A when the cell's axes were relabelled to the group's standard setting;
            None: the cell as given.
    """

    grid: np.ndarray
    label: str
    number: int | None = None
    lattice: np.ndarray | None = None


def extinction_maps(grid: np.ndarray, lattice: np.ndarray, label: str, classes: Sequence[ExtinctionClass],
                    top: int = 2, skip: Sequence[int] = ()) -> list[PriorityMap]:
    """``grid`` averaged over the most symmetric group of each of the ``top`` best extinction classes.

    The extinctions are evidence the map does not carry: a group the noisy map obeys too weakly to be
    found by :func:`plausible_groups_of` is still used when the pattern's absences call for it. More
    than one class is taken because an accidentally weak reflection makes a class with one absence
    too many rank first. Each group is taken in the setting the absences show (the cell's axes
    relabelled to its standard setting, :mod:`powdersolve.maps.settings`), its origin found on the map
    (:func:`search_space_groups`). Groups in ``skip`` (already read in the cell's own axes) and settings
    that are not an axis permutation of the standard one are left out.
    """
    family = metric_family(lattice)
    if top < 1 or family not in FAMILY_GROUPS:
        return []
    chosen: dict[tuple, AxisSetting] = {}
    for cls in classes[:top]:
        for group in sorted(cls.groups, key=lambda g: -len(group_operations(g.number)[0])):
            setting = axis_setting(group.hall)
            if setting is None or (setting.is_identity and group.number in skip):
                continue
            chosen.setdefault((setting.number, setting.perm, setting.reverse_last), setting)
            break
    out = []
    for setting in chosen.values():
        std_grid, std_lattice = to_standard(grid, lattice, setting)
        try:
            found = search_space_groups(std_grid, family, groups=(setting.number,))[0]  # relabelling keeps the family
        except InputError:  # the relabelled grid's steps differ along axes the group mixes
            continue
        symbol = found.symbol + ("" if setting.is_identity else f" as {setting.symbol}")
        out.append(PriorityMap(symmetrise_map(std_grid, setting.number, found.origin),
                               f"{label} averaged over {symbol} (extinctions; cc_min {found.cc_min:.2f})",
                               setting.number, std_lattice))
    return out
