"""Counting the formula units Z per cell in a density map, and species by assignment.

The number of formula units Z, and an electron scale, are chosen so that the strongest peaks best
hold Z formula units (scale-free: a predicted map's overall density may be off by tens of percent,
and weak spurious maxima must not count as atoms); species are an assignment problem: peaks x
element slots (each element repeated Z * n_el times), cost |electrons - Z_element|.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Composition
from pymatgen.core.periodic_table import Element
from scipy.optimize import linear_sum_assignment

from powdersolve.cell import metric_family
from powdersolve.maps.peaks import map_peaks

#: Smallest volume per atom (A^3) a candidate may have: diamond, the densest common solid at ambient
#: pressure, has 5.7 A^3 per atom.
MIN_VOLUME_PER_ATOM = 5.0


def ranked_formula_units(electrons: np.ndarray, composition: Composition, max_z: int = 48, multiple: int = 1,
                         max_atoms: int | None = None, ghost_fraction: float | None = None
                         ) -> list[tuple[int, float, float]]:
    """Every feasible number of formula units Z with its electron scale and cost, best first.

    Scale-free, so a predicted map whose overall density is off by tens of percent still gives the
    right Z: for each Z the strongest Z * (atoms per formula unit) peaks are rescaled to hold the
    formula's electrons and assigned to the element slots; the cost is the assignment error plus the
    electrons left in unassigned peaks, relative to the formula's electrons.
    ``multiple``: atoms of each element per cell must be a multiple of it (the lattice points per
    cell of a centred lattice); ``max_atoms``: most atoms the cell may hold. ``ghost_fraction``: an
    unassigned peak holding less than this fraction of the lightest element's electrons (after
    rescaling) is a ripple of the background, not a missing atom, and costs nothing (None counts
    every unassigned electron). Falls back to [(1, 1.0, inf)] when no Z fits.
    """
    order = np.argsort(electrons)[::-1]
    atoms_fu = composition.num_atoms
    ranked: list[tuple[int, float, float]] = []
    for z in range(1, max_z + 1):
        counts = [int(round(z * amt)) for amt in composition.values()]
        if abs(sum(counts) - z * atoms_fu) > 1e-6 or sum(counts) > len(electrons):
            continue
        if any(n % multiple for n in counts) or (max_atoms is not None and sum(counts) > max_atoms):
            continue
        slots = np.concatenate([np.full(n, Element(el.symbol).Z) for el, n in zip(composition, counts)])
        top = electrons[order[: len(slots)]]
        scale = slots.sum() / max(top.sum(), 1e-9)
        scaled = electrons * scale
        pick = assign_species(scaled, slots.astype(np.float64))
        used = pick >= 0
        left = scaled[~used]
        if ghost_fraction is not None:
            left = left[left >= ghost_fraction * slots.min()]
        err = np.abs(scaled[used] - slots[pick[used]]).sum() + left.sum()
        ranked.append((z, float(scale), float(err / slots.sum())))
    ranked.sort(key=lambda r: r[2])  # stable: ties keep the smaller Z first
    return ranked or [(1, 1.0, float("inf"))]


def assign_species(electrons: np.ndarray, slots_z: np.ndarray) -> np.ndarray:
    """Slot index assigned to each peak (-1 when dropped), minimising sum |electrons - Z| overall."""
    cost = np.abs(electrons[:, None] - slots_z[None, :].astype(np.float64))
    rows, cols = linear_sum_assignment(cost)
    out = np.full(len(electrons), -1)
    out[rows] = cols
    return out


def ranked_formula_units_in_map(grid: np.ndarray, lattice: np.ndarray, composition: Composition,
                                min_distance: float = 0.7, rel_threshold: float = 0.02, centre: bool = True,
                                ghost_fraction: float | None = None) -> list[tuple[int, float, float]]:
    """Numbers of formula units Z per cell that the map's peaks support, best first.

    Args:
        grid: (N0, N1, N2) density (any scale: the count is scale-free), voxel [i, j, k] at (i/N0, j/N1, k/N2);
            negative values are read as 0.
        lattice: (3, 3) row vectors in Angstrom.
        composition: the formula (any multiple of it; reduced here).
        centre: impose the lattice centring the map obeys, if any (Z then a multiple of its lattice points).
        ghost_fraction: see :func:`ranked_formula_units`.

    Returns:
        (Z, electron scale, cost) per feasible Z as :func:`ranked_formula_units` gives them, with at
        least :data:`MIN_VOLUME_PER_ATOM` A^3 per atom imposed.
    """
    # Electrons are counted on the non-negative part: a band-limited or untrained map's negative
    # ripples would otherwise enter the basins as negative electrons and make a bad fit look good.
    grid = np.maximum(np.asarray(grid, dtype=np.float64), 0.0)
    lattice = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
    family = metric_family(lattice) if centre else None
    _, multiple, _, _, electrons = map_peaks(grid, lattice, family, min_distance, rel_threshold)
    reduced = composition.get_reduced_composition_and_factor()[0]
    volume = abs(float(np.linalg.det(lattice)))
    return ranked_formula_units(electrons, reduced, multiple=multiple, max_atoms=int(volume / MIN_VOLUME_PER_ATOM),
                                ghost_fraction=ghost_fraction)
