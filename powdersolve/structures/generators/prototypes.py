"""Crystals from AFLOW prototypes: species substituted by oxidation state, cell strained, volume predicted."""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
from pymatgen.core import Element, Lattice, Structure

from powdersolve.errors import InputError
from powdersolve.structures.generators.limits import _electronegativity, _elements, _pick
from powdersolve.structures.io import standardize
from powdersolve.structures.sitesymmetry import site_projector


@functools.cache
def _templates(groups: tuple[int, ...], max_atoms: int) -> tuple[tuple[Structure, int, tuple], ...]:
    """(conventional structure, space group, oxidation states per element or ()) of each usable prototype."""
    from pymatgen.analysis.prototypes._data import AFLOW_PROTOTYPE_LIBRARY

    out = []
    for entry in AFLOW_PROTOTYPE_LIBRARY:
        s = entry["snl"].structure
        if not s.is_ordered:
            continue
        conv, sg = standardize(s)
        if sg not in groups or len(conv) > max_atoms:
            continue
        comp = conv.composition
        guesses = comp.oxi_state_guesses(max_sites=-1) if len(comp) > 1 and comp.num_atoms <= 40 else ()
        ox = tuple(sorted((k, int(round(v))) for k, v in guesses[0].items())) if guesses else ()
        out.append((conv, sg, ox))
    return tuple(out)


def _substitute(template: Structure, ox: tuple, rng: np.random.Generator,
                group_swap: bool = False) -> Structure | None:
    """Swap each element for one of the same oxidation state (or, without one, a similar metal),
    preferring similar electronegativity; distinct elements stay distinct so symmetry is kept.

    A non-metal without an oxidation state (an element's own structure: Se chains, As layers) stays
    itself, or with ``group_swap`` takes an element of its periodic-table group (As -> P, Sb, Bi).
    """
    old = sorted({sp.symbol for sp in template.species})
    states = dict(ox)
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for sym in old:
        e_old = Element(sym)
        q = states.get(sym)
        if q is not None:
            pool = [e for e in _elements() if q in e.common_oxidation_states]
        elif e_old.is_metal:
            pool = [e for e in _elements() if e.is_metal]
        elif group_swap:
            pool = [e for e in _elements() if e.group == e_old.group and (e.row > 1 or e == e_old)]
        else:
            pool = [e_old]
        pool = [e for e in pool if e.symbol not in used] or [e_old]
        x_old = _electronegativity(e_old)
        r_old = float(e_old.atomic_radius or 1.5)
        w = [math.exp(-abs(_electronegativity(e) - x_old) / 0.4 - abs(float(e.atomic_radius or 1.5) - r_old) / 0.3)
             for e in pool]
        new = _pick(rng, pool, w).symbol
        if new in used:
            return None
        mapping[sym] = new
        used.add(new)
    s = template.copy()
    s.replace_species({Element(k): Element(v) for k, v in mapping.items()})
    return s


def _strain(s: Structure, sg: int, rng: np.random.Generator, amount: float = 0.04) -> Structure:
    """Random axial strain that keeps the crystal system (none for cubic, c only for uniaxial)."""
    a, b, c, al, be, ga = s.lattice.parameters
    eps = 1.0 + rng.uniform(-amount, amount, 3)
    if sg >= 195:
        return s
    if sg >= 75:  # tetragonal, trigonal, hexagonal: a = b, free c
        a, b, c = a * eps[0], b * eps[0], c * eps[2]
    else:
        a, b, c = a * eps[0], b * eps[1], c * eps[2]
    out = s.copy()
    out.lattice = Lattice.from_parameters(a, b, c, al, be, ga)
    return out


def perturb_symmetric(s: Structure, rng: np.random.Generator, amount: float, symprec: float = 0.1) -> Structure:
    """The structure with every symmetry-distinct site moved by up to ``amount`` Angstrom, keeping its space group.

    Each orbit's representative gets a random displacement averaged over the site's stabiliser (so a
    special position moves only along its free directions), and the orbit is regenerated from it by
    the space-group operations. The lattice is unchanged.
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    sga = SpacegroupAnalyzer(s, symprec=symprec)
    ops = sga.get_space_group_operations()
    rot = np.array([op.rotation_matrix for op in ops])
    trans = np.array([op.translation_vector for op in ops])
    inv_lat = np.linalg.inv(s.lattice.matrix)
    species, coords = [], []
    for group in sga.get_symmetrized_structure().equivalent_sites:
        x = group[0].frac_coords
        direction = rng.normal(size=3)
        cart = direction / np.linalg.norm(direction) * rng.uniform(0.0, amount)
        d = site_projector(rot, trans, x, s.lattice.matrix, 1e-3 + 0.05 * symprec) @ (cart @ inv_lat)
        orbit = (np.einsum("kij,j->ki", rot, x + d) + trans) % 1.0
        unique: list[np.ndarray] = []
        for y in orbit:
            if not any(np.all(np.abs((y - u) - np.rint(y - u)) < 1e-4) for u in unique):
                unique.append(y)
        species += [group[0].species] * len(unique)
        coords += unique
    return Structure(s.lattice, species, coords)


@functools.cache
def _volume_predictor():
    from pymatgen.analysis.structure_prediction.volume_predictor import DLSVolumePredictor

    return DLSVolumePredictor()


def _prototype_candidate(groups: tuple[int, ...], max_atoms: int, rng: np.random.Generator,
                         perturb: float = 0.0, group_swap: bool = False) -> Structure | None:
    templates = _templates(groups, max_atoms)
    if not templates:
        raise InputError(f"no AFLOW prototype has a space group in {groups[0]}-{groups[-1]} with <= {max_atoms} "
                         "atoms; use --generator random")
    conv, sg, ox = templates[int(rng.integers(len(templates)))]
    s = _substitute(conv, ox, rng, group_swap)
    if s is None:
        return None
    s = _strain(s, sg, rng)
    if perturb > 0:
        s = perturb_symmetric(s, rng, perturb)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DLS falls back to atomic radii with a warning per call
            vol = _volume_predictor().predict(s)
    except Exception:  # DLS has no radius for some elements: fall back to the template volume
        vol = conv.volume
    s.scale_lattice(float(vol) * rng.uniform(0.97, 1.03))
    return s
