"""Random symmetric crystals built around homonuclear dimers: X2 molecules and X2 ions.

Molecular halogens (Br2, I2), peroxides and superoxides (K2O2, KO2), persulfides (pyrite-like FeS2),
carbides (CaC2) and mercury(I) halides (Hg2Cl2) hold pairs of like atoms much closer together than any
ionic contact. Substituted prototypes and PyXtal crystals of ionic compositions almost never make such
pairs, so a density model trained on them has never seen one.

A candidate is made in three steps:

1. PyXtal places the counter-ions and one *placeholder* atom per dimer (:func:`_dimer_candidate`),
   kept far enough from the others to leave room for a whole pair (:func:`_tolerances`).
2. Each placeholder orbit becomes an orbit of dimers (:func:`dimer_orbit`). Where the placeholder's
   site symmetry holds an operation that reverses a direction ``u`` (an inversion centre, a 2-fold axis
   normal to ``u``, a mirror normal to ``u``), one orbit of atoms at ``c +/- (d/2) u`` is made. That
   operation swaps the pair, as in solid Br2 (dimers centred on inversion centres). On a general
   position the two atoms become two independent orbits.

The candidate is kept only when every dimer atom's nearest neighbour is its partner, so the pairs
really are molecules.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Element, Lattice, Structure

from powdersolve.structures.generators.limits import _ANIONS, _cations
from powdersolve.structures.generators.random_crystals import cell_multiple

#: Shortest distance between atoms of neighbouring pairs that PyXtal is asked to leave, Angstrom.
_CONTACT = 1.2

#: CPU-time limit per dimer candidate, seconds (see :func:`powdersolve.structures.generators.generate`).
DIMER_TIMEOUT_S = 1.0

#: Tolerance on a fractional coordinate difference (dimensionless) for "the same site".
_SAME_SITE = 1e-4


@dataclass(frozen=True)
class DimerUnit:
    """A homonuclear pair X2 with its bond length and the charge of the whole unit.

    Attributes:
        element: symbol of X.
        bond: X-X distance in Angstrom (drawn within +/- 3 % of this).
        charge: formal charge of the X2 unit (e.g. -2 for peroxide O2^2-, 0 for Br2, +2 for Hg2^2+).
        weight: relative sampling weight.
    """

    element: str
    bond: float
    charge: int
    weight: float


#: Dimer units and their sampling weights; bond lengths are typical solid-state values.
DIMER_UNITS: tuple[DimerUnit, ...] = (
    DimerUnit("O", 1.49, -2, 3.0),   # peroxide
    DimerUnit("O", 1.33, -1, 1.0),   # superoxide
    DimerUnit("O", 1.21, 0, 0.3),    # solid oxygen
    DimerUnit("S", 2.08, -2, 2.0),   # persulfide (pyrite, marcasite)
    DimerUnit("Se", 2.38, -2, 1.0),
    DimerUnit("Te", 2.75, -2, 0.5),
    DimerUnit("C", 1.22, -2, 1.0),   # acetylide carbide
    DimerUnit("N", 1.10, 0, 0.3),
    DimerUnit("P", 2.20, -4, 0.3),
    DimerUnit("F", 1.42, 0, 0.7),
    DimerUnit("Cl", 1.99, 0, 1.0),
    DimerUnit("Br", 2.28, 0, 1.0),
    DimerUnit("I", 2.70, 0, 1.0),
    DimerUnit("Hg", 2.52, 2, 0.7),   # mercury(I)
)


def _sign_of(rot_cart: np.ndarray, u: np.ndarray, tol: float = 1e-6) -> int:
    """+1 if R u = u, -1 if R u = -u, 0 otherwise (u a unit vector)."""
    v = rot_cart @ u
    if np.linalg.norm(v - u) < tol:
        return 1
    if np.linalg.norm(v + u) < tol:
        return -1
    return 0


def _pair_direction(stabiliser_cart: np.ndarray, rng: np.random.Generator, tries: int = 24) -> np.ndarray | None:
    """A random unit vector u (Cartesian) that every stabiliser operation maps to +u or -u, and at
    least one maps to -u; None when the site symmetry has no such direction (e.g. a 3-fold axis alone).

    Candidates are drawn from the -1 eigenspace of a random operation (its projector (I - R) / 2 for an
    involution; the real -1 eigenvectors otherwise) and kept only when the whole stabiliser agrees.
    """
    # Special orientations (along an axis of a higher site symmetry) have measure zero in an
    # eigenspace, so the real +/-1 eigenvectors of every operation are offered too.
    axes = [np.real(vec) for rr in stabiliser_cart
            for val, vec in zip(*np.linalg.eig(rr), strict=True)
            if abs(abs(val) - 1) < 1e-6 and np.linalg.norm(np.imag(vec)) < 1e-9]
    for _ in range(tries):
        r = stabiliser_cart[int(rng.integers(len(stabiliser_cart)))]
        w, v = np.linalg.eig(r)
        minus = np.real(v[:, np.abs(w + 1.0) < 1e-6])
        if minus.shape[1] == 0:
            continue
        u = minus @ rng.normal(size=minus.shape[1])
        if minus.shape[1] > 1 and rng.random() < 0.3:
            u = axes[int(rng.integers(len(axes)))]
        norm = np.linalg.norm(u)
        if norm < 1e-9:
            continue
        u = u / norm
        signs = [_sign_of(rr, u) for rr in stabiliser_cart]
        if 0 not in signs and -1 in signs:
            return u
    return None


def _orbit(rot: np.ndarray, trans: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Distinct images (fractional, in [0, 1)) of ``x`` under the operations (W, w)."""
    images = (np.einsum("kij,j->ki", rot, x) + trans) % 1.0
    unique: list[np.ndarray] = []
    for y in images:
        if not any(np.all(np.abs((y - u) - np.rint(y - u)) < _SAME_SITE) for u in unique):
            unique.append(y)
    return np.array(unique)


def dimer_orbit(rot: np.ndarray, trans: np.ndarray, lattice: np.ndarray, centre: np.ndarray, bond: float,
                rng: np.random.Generator) -> list[np.ndarray]:
    """Orbits of fractional coordinates that turn the orbit of ``centre`` into X2 pairs of length ``bond``.

    Args:
        rot, trans: the space-group operations (k, 3, 3) and (k, 3) in fractional coordinates.
        lattice: (3, 3) lattice vectors as rows, Angstrom.
        centre: fractional coordinates of the placeholder (the pairs' midpoint).
        bond: X-X distance in Angstrom.

    Returns:
        One orbit (pairs swapped by a site-symmetry operation) or two (a general position: the two
        atoms are symmetry-independent), or an empty list when the site symmetry allows no pair.
    """
    diff = (np.einsum("kij,j->ki", rot, centre) + trans) - centre
    in_stab = np.all(np.abs(diff - np.rint(diff)) < _SAME_SITE, axis=1)
    to_cart = lattice.T  # x_cart = L^T x_frac
    to_frac = np.linalg.inv(to_cart)
    stab_cart = np.einsum("ij,kjl,lm->kim", to_cart, rot[in_stab], to_frac)
    nontrivial = [r for r in stab_cart if np.linalg.norm(r - np.eye(3)) > 1e-6]
    if not nontrivial:
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        half = to_frac @ (0.5 * bond * u)
        return [_orbit(rot, trans, centre + half), _orbit(rot, trans, centre - half)]
    u = _pair_direction(stab_cart, rng)
    if u is None:
        return []
    return [_orbit(rot, trans, centre + to_frac @ (0.5 * bond * u))]


def _formula(unit: DimerUnit, rng: np.random.Generator) -> dict[str, int]:
    """Element counts of a charge-balanced formula around ``unit``: the dimer's element counts atoms
    (two per unit); one counter-ion species, or none for a neutral molecule; sometimes a second
    ordinary ion of the dimer's sign (K3(O2)Cl-like)."""
    if unit.charge == 0:
        return {unit.element: 2}
    if unit.charge < 0:
        pairs = [(el, q) for el, q in _cations() if el != unit.element]
        counter, q_counter = pairs[int(rng.integers(len(pairs)))]
        extra = [a for a in _ANIONS if a not in (unit.element, counter)]
    else:
        anions = [a for a in ("F", "Cl", "Br", "I", "O", "S") if a != unit.element]
        counter = anions[int(rng.integers(len(anions)))]
        q_counter = -min(q for q in Element(counter).common_oxidation_states if q < 0)
        extra = []
    n_units = int(rng.integers(1, 3))
    counts = {unit.element: 2 * n_units}
    charge = n_units * abs(unit.charge)
    if extra and rng.random() < 0.25:
        other = extra[int(rng.integers(len(extra)))]
        q_other = -min(q for q in Element(other).common_oxidation_states if q < 0)
        counts[other] = 1
        charge += q_other
    g = math.gcd(charge, abs(q_counter))
    scale = abs(q_counter) // g
    counts = {el: c * scale for el, c in counts.items()}
    counts[counter] = charge * scale // abs(q_counter)
    divisor = math.gcd(*counts.values())
    if counts[unit.element] // divisor % 2:  # keep whole pairs (the count is even, so divisor is too)
        divisor //= 2
    return {el: c // divisor for el, c in counts.items()}


def _dimers_only(structure: Structure, pairs: list[tuple[int, int]]) -> bool:
    """True when each atom of every pair has its partner as the strictly nearest neighbour."""
    d = structure.distance_matrix
    np.fill_diagonal(d, np.inf)
    for i, j in pairs:
        partner = d[i, j]
        if min(np.delete(d[i], j).min(initial=np.inf), np.delete(d[j], i).min(initial=np.inf)) <= 1.05 * partner:
            return False
    return True


def _dimer_candidate(groups: tuple[int, ...], max_atoms: int, rng: np.random.Generator) -> Structure | None:
    """One random crystal of the space groups ``groups`` with <= ``max_atoms`` atoms holding X2 pairs."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    index = int(rng.choice(len(DIMER_UNITS), p=_unit_weights()))
    unit = DIMER_UNITS[index]
    formula = _formula(unit, rng)
    # The bulky placeholders go first: PyXtal fills the cell species by species, and the last
    # species of a crowded cell is the one that fails to fit.
    species = [unit.element] + [el for el in formula if el != unit.element]
    # PyXtal places one placeholder (the dimer element) per pair.
    base = np.array([formula[s] // 2 if s == unit.element else formula[s] for s in species])
    sg = int(groups[int(rng.integers(len(groups)))])
    group = Group(sg)
    # Each placeholder becomes two atoms.
    k = cell_multiple(group, base, int(base.sum() + base[0]), max_atoms, rng)
    if k is None:
        return None
    xtal = pyxtal()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tm = _tolerances(index, tuple(sorted(s for s in species if s != unit.element)))
        xtal.from_random(3, sg, species, (base * k).tolist(), random_state=int(rng.integers(2**31)), tm=tm,
                         factor=float(rng.uniform(1.5, 2.2)))
    if not xtal.valid:
        return None
    placeholder = xtal.to_pymatgen()
    bond = unit.bond * rng.uniform(0.97, 1.03)
    # A supergroup found here (placeholders can be more symmetric than the crystal) is harmless: its
    # operations make pairs too, and the final filter checks the group of the finished crystal.
    sga = SpacegroupAnalyzer(placeholder, symprec=1e-3)
    ops = sga.get_space_group_operations()
    rot = np.array([op.rotation_matrix for op in ops])
    trans = np.array([op.translation_vector for op in ops])
    lattice = placeholder.lattice.matrix
    others: list[tuple[str, np.ndarray]] = []
    dimer_orbits: list[list[np.ndarray]] = []
    for sites in sga.get_symmetrized_structure().equivalent_sites:
        symbol = sites[0].specie.symbol
        if symbol != unit.element:
            others += [(symbol, s.frac_coords) for s in sites]
            continue
        orbits = dimer_orbit(rot, trans, lattice, sites[0].frac_coords, bond, rng)
        if not orbits:
            return None
        dimer_orbits.append(orbits)
    coords = [x for _, x in others]
    names = [s for s, _ in others]
    pairs: list[tuple[int, int]] = []
    for orbits in dimer_orbits:
        start = len(coords)
        for orbit in orbits:
            coords += list(orbit)
        names += [unit.element] * (len(coords) - start)
        pairs += _partners(np.array(coords[start:]), lattice, bond, start)
    if len(coords) > max_atoms or 2 * len(pairs) != names.count(unit.element):
        return None
    out = Structure(Lattice(lattice), names, coords)
    return out if _dimers_only(out, pairs) else None


def _partners(frac: np.ndarray, lattice: np.ndarray, bond: float, offset: int) -> list[tuple[int, int]]:
    """Index pairs (with ``offset`` added) of the atoms in ``frac`` that lie ``bond`` Angstrom apart."""
    d = Lattice(lattice).get_all_distances(frac, frac)
    np.fill_diagonal(d, np.inf)
    out = []
    for i in range(len(frac)):
        j = int(np.argmin(d[i]))
        if i < j and abs(d[i, j] - bond) < 1e-3:
            out.append((offset + i, offset + j))
    return out


@functools.cache
def _tolerances(index: int, others: tuple[str, ...]):
    """PyXtal's distance tolerances with room for pairs: a placeholder stands for a whole X2 unit, so
    placeholders keep a pair length plus an intermolecular contact apart, and counter-ions half a pair
    length further than from a single atom."""
    from pyxtal.tolerance import Tol_matrix

    unit = DIMER_UNITS[index]
    tm = Tol_matrix(prototype="atomic")
    tm.set_tol(unit.element, unit.element, unit.bond + _CONTACT)
    for other in others:
        tm.set_tol(unit.element, other, tm.get_tol(unit.element, other) + 0.5 * unit.bond)
    return tm


def _unit_weights() -> np.ndarray:
    w = np.array([u.weight for u in DIMER_UNITS])
    return w / w.sum()
