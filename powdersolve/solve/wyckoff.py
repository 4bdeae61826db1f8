"""Atoms from a map averaged over a space group: density peaks grouped into orbits, species per orbit.

In a map averaged over a group (:func:`powdersolve.maps.symmetry.symmetrise_map`) the peaks of
one atom type come as whole orbits of the group: the images of one position under every operation,
as many as its Wyckoff multiplicity (fewer distinct points on a special position). Reading such a
map peak by peak can split an orbit between two elements, or keep part of one, and the symmetry is
lost. Here each orbit is one unit: its positions are the images of its strongest peak (so a peak
missed by the search is restored), its electrons per atom are the mean over its peaks, and the
species are chosen per orbit so that the atoms of each element add up exactly to the composition
times Z. That choice is a small integer program, solved exactly with scipy's MILP (HiGHS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Composition
from pymatgen.core.periodic_table import Element
from scipy.optimize import Bounds, LinearConstraint, milp

from powdersolve.maps.peaks import min_image_distances
from powdersolve.maps.symmetry import group_operations


@dataclass(frozen=True)
class Orbit:
    """One orbit of density peaks under a space group.

    Attributes:
        positions: (m, 3) fractional positions of its m atoms in the cell.
        electrons: electrons per atom (mean of the integrated peaks it covers).
        peaks: indices of the density peaks it covers.
    """

    positions: np.ndarray
    electrons: float
    peaks: tuple[int, ...]

    @property
    def multiplicity(self) -> int:
        """Atoms in the cell on this orbit."""
        return len(self.positions)


def _cluster(points: np.ndarray, lattice: np.ndarray, tol: float) -> np.ndarray:
    """Distinct points: those within ``tol`` (A, minimum image) of an earlier one merge into its mean."""
    close = min_image_distances(points, points, lattice) < tol
    label = np.full(len(points), -1)
    centres = []
    for i in range(len(points)):
        if label[i] >= 0:
            continue
        members = np.flatnonzero(close[i] & (label < 0))
        label[members] = len(centres)
        unwrapped = points[i] + ((points[members] - points[i] + 0.5) % 1.0 - 0.5)  # next to point i
        centres.append(unwrapped.mean(axis=0) % 1.0)
    return np.array(centres)


def peak_orbits(frac: np.ndarray, electrons: np.ndarray, number: int, lattice: np.ndarray, tol: float = 0.5
                ) -> list[Orbit]:
    """Orbits of the peaks at fractional ``frac`` (strongest first) under space group ``number``.

    Images within ``tol`` (A) of each other are one atom (a special position: their mean lies on
    it); a peak within ``tol`` of an image belongs to that orbit.
    """
    rot, tau, _ = group_operations(number)
    lattice = np.asarray(lattice, dtype=np.float64)
    covered = np.zeros(len(frac), dtype=bool)
    orbits: list[Orbit] = []
    for i in range(len(frac)):
        if covered[i]:
            continue
        images = _cluster(np.mod(frac[i] @ np.transpose(rot, (0, 2, 1)) + tau, 1.0), lattice, tol)
        near = np.min(min_image_distances(frac, images, lattice), axis=1) < tol
        members = np.flatnonzero(near & ~covered) if near[i] else np.array([i])
        covered[members] = True
        covered[i] = True
        orbits.append(Orbit(images, float(np.mean(electrons[members])), tuple(int(k) for k in members)))
    return orbits


def assign_orbits(orbits: list[Orbit], counts: dict[str, int], scale: float) -> tuple[list[str | None], float] | None:
    """Species per orbit (None: left empty) so that each element has exactly ``counts`` atoms.

    Minimises sum over assigned orbits of multiplicity x |scale x electrons - Z|, with the
    electrons of orbits left empty added (weak ghost peaks may stay empty, strong ones should not).
    Returns (species per orbit, cost per atom of the composition) or None when no choice of orbits
    adds up to ``counts``.
    """
    elements = list(counts)
    n_o, n_s = len(orbits), len(elements)
    if n_o == 0 or n_s == 0:
        return None
    mult = np.array([o.multiplicity for o in orbits], dtype=np.float64)
    e = scale * np.array([o.electrons for o in orbits])
    z = np.array([Element(el).Z for el in elements], dtype=np.float64)
    # x[o, s] = 1 puts element s on orbit o; leaving orbit o empty costs its electrons.
    cost = (mult[:, None] * (np.abs(e[:, None] - z[None, :]) - e[:, None])).ravel()
    one_each = np.kron(np.eye(n_o), np.ones(n_s))
    totals = np.kron(mult[None, :], np.eye(n_s))  # (n_s, n_o * n_s)
    want = np.array([counts[el] for el in elements], dtype=np.float64)
    res = milp(cost, integrality=np.ones(n_o * n_s), bounds=Bounds(0, 1),
               constraints=[LinearConstraint(one_each, 0, 1), LinearConstraint(totals, want, want)])
    if res.status != 0 or res.x is None:
        return None
    x = np.round(res.x).reshape(n_o, n_s)
    species = [elements[int(np.argmax(row))] if row.sum() > 0.5 else None for row in x]
    total_cost = float(res.fun + np.sum(mult * e))
    return species, total_cost / max(float(np.sum(want * z)), 1e-9)


def orbit_choices(orbits: list[Orbit], composition: Composition, n_z: int = 2, max_z: int = 48,
                  max_atoms: int | None = None, multiple: int = 1
                  ) -> list[tuple[int, np.ndarray, list[str], list[str | None]]]:
    """The ``n_z`` best readings of the orbits, by cost: (Z, positions (n, 3), species per position,
    species per orbit (None: empty)).

    For each number of formula units Z whose atom count the orbits can hold, the electrons are
    scaled so that the strongest orbits hold the formula's electrons (as
    :func:`powdersolve.maps.formula_units.ranked_formula_units`), then species are chosen per orbit.
    """
    reduced, _ = composition.get_reduced_composition_and_factor()
    per_atom = np.concatenate([np.full(o.multiplicity, o.electrons) for o in orbits])
    capacity = len(per_atom)
    ranked = []
    for z_fu in range(1, max_z + 1):
        counts = {el.symbol: int(round(z_fu * amt)) for el, amt in reduced.items()}
        n_atoms = sum(counts.values())
        if abs(n_atoms - z_fu * reduced.num_atoms) > 1e-6 or n_atoms > capacity:
            continue
        if any(n % multiple for n in counts.values()) or (max_atoms is not None and n_atoms > max_atoms):
            continue
        electrons = sum(n * Element(el).Z for el, n in counts.items())
        scale = electrons / max(float(np.sort(per_atom)[::-1][:n_atoms].sum()), 1e-9)
        got = assign_orbits(orbits, counts, scale)
        if got is None:
            continue
        species, cost = got
        positions = [o.positions for o, s in zip(orbits, species) if s]
        names = [s for o, s in zip(orbits, species) if s for _ in range(o.multiplicity)]
        ranked.append((cost, z_fu, np.concatenate(positions), names, species))
    ranked.sort(key=lambda r: r[0])
    return [r[1:] for r in ranked[:n_z]]
