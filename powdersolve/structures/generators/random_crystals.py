"""Random symmetric crystals (PyXtal) of random plausible compositions."""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
from pymatgen.core import Element, Structure

from powdersolve.structures.generators.limits import _ANIONS, _cations, _elements, _pick


def random_composition(rng: np.random.Generator) -> dict[str, int]:
    """A reduced, chemically plausible composition of 1-4 elements.

    Mostly charge-balanced (cations in a common positive oxidation state, one or two anions);
    a fifth are elements or binary intermetallics with simple ratios.
    """
    kind = rng.random()
    if kind < 0.07:
        metals = [e for e in _elements() if e.is_metal or e.symbol in ("C", "Si", "Ge", "B", "Se", "Te")]
        return {metals[int(rng.integers(len(metals)))].symbol: 1}
    if kind < 0.2:
        metals = [e.symbol for e in _elements() if e.is_metal]
        a, b = rng.choice(len(metals), 2, replace=False)
        na, nb = [(1, 1), (1, 2), (1, 3), (2, 3), (1, 5)][int(rng.integers(5))]
        return {metals[a]: na, metals[b]: nb}
    n_species = int(rng.choice([2, 3, 4], p=[0.4, 0.4, 0.2]))
    n_anions = 2 if n_species == 4 and rng.random() < 0.25 else 1
    anions: list[str] = []
    while len(anions) < n_anions:
        a = _pick(rng, list(_ANIONS), list(_ANIONS.values()))
        if a not in anions:
            anions.append(a)
    cations: dict[str, int] = {}
    pairs = _cations()
    while len(cations) < n_species - n_anions:
        el, q = pairs[int(rng.integers(len(pairs)))]
        if el not in cations and el not in anions:
            cations[el] = q
    counts = {el: int(rng.integers(1, 4)) for el in cations}
    positive = sum(counts[el] * q for el, q in cations.items())
    charges = {a: -min(q for q in Element(a).common_oxidation_states if q < 0) for a in anions}
    if n_anions == 2:  # split the negative charge between the anions
        first = int(rng.integers(1, max(2, positive // charges[anions[0]])))
        first = min(first, positive // charges[anions[0]])
        rest = positive - first * charges[anions[0]]
        if first < 1 or rest <= 0 or rest % charges[anions[1]]:
            return random_composition(rng)
        counts[anions[0]], counts[anions[1]] = first, rest // charges[anions[1]]
    else:
        qa = charges[anions[0]]
        if positive % qa:
            counts = {el: c * qa // math.gcd(positive, qa) for el, c in counts.items()}
            positive = sum(counts[el] * q for el, q in cations.items())
        counts[anions[0]] = positive // qa
    g = functools.reduce(math.gcd, counts.values())
    return {el: c // g for el, c in counts.items()}


def cell_multiple(group, base: np.ndarray, atoms_per_multiple: int, max_atoms: int,
                  rng: np.random.Generator) -> int | None:
    """A random multiple k of the species counts ``base`` that PyXtal can place in ``group`` (a
    ``pyxtal.symmetry.Group``) with k x ``atoms_per_multiple`` <= ``max_atoms`` atoms; None when none fits.

    Small k are preferred (weight 1/rank), as real structures are mostly small cells, but large ones stay.
    """
    factors = [k for k in range(1, max_atoms // atoms_per_multiple + 1)
               if group.check_compatible((base * k).tolist())[0]]
    if not factors:
        return None
    w = 1.0 / np.arange(1, len(factors) + 1)
    return factors[int(rng.choice(len(factors), p=w / w.sum()))]


def _random_candidate(groups: tuple[int, ...], max_atoms: int, rng: np.random.Generator) -> Structure | None:
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    comp = random_composition(rng)
    species = list(comp)
    base = np.array([comp[s] for s in species])
    sg = int(groups[int(rng.integers(len(groups)))])
    group = Group(sg)
    k = cell_multiple(group, base, int(base.sum()), max_atoms, rng)
    if k is None:
        return None
    xtal = pyxtal()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xtal.from_random(3, sg, species, (base * k).tolist(), random_state=int(rng.integers(2**31)))
    if not xtal.valid:
        return None
    return xtal.to_pymatgen()
