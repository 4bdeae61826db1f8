"""Synthetic training crystals: substituted AFLOW prototypes and PyXtal random symmetric crystals.

Every generator is deterministic given its seed: one :class:`numpy.random.Generator` drives all
choices, and PyXtal gets an integer seed drawn from it. The only non-deterministic element is the
per-candidate CPU-time limit ``timeout_s`` that guards PyXtal's heavy-tailed run time: when it
fires, that candidate is skipped. CPU time (not wall time) is used so that a loaded machine does
not change which candidates survive; caches and imports are warmed before the timed loop.

All crystals come back in the conventional standard cell (spglib via :func:`standardize`), with
their space group, and pass three filters: the requested space groups, a minimum interatomic
distance and the benchmark exclusion list.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import signal
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from pymatgen.core import Element, Lattice, Structure

from powdersolve.errors import InputError
from powdersolve.structures.crystal import Crystal
from powdersolve.structures.exclusion import is_excluded
from powdersolve.structures.io import iter_structure_files, load_crystal, standardize
from powdersolve.structures.sitesymmetry import site_projector

#: Space-group ranges of the seven crystal systems (inclusive).
SYSTEMS: dict[str, tuple[int, int]] = {
    "triclinic": (1, 2), "monoclinic": (3, 15), "orthorhombic": (16, 74), "tetragonal": (75, 142),
    "trigonal": (143, 167), "hexagonal": (168, 194), "cubic": (195, 230), "all": (1, 230),
}
KINDS = ("prototypes", "random")
DEFAULT_MIN_DISTANCE = 1.0
#: A pair closer than this fraction of the sum of covalent radii is unphysical.
DEFAULT_COVALENT_FACTOR = 0.6
DEFAULT_MAX_ATOMS = 60
MAX_Z = 83
_NOBLE = {"He", "Ne", "Ar", "Kr", "Xe", "Rn"}
_RADIOACTIVE = {"Tc", "Pm", "Po", "At"}
#: Anions and their relative sampling weights (oxygen-rich like the inorganic databases).
_ANIONS = {"O": 4.0, "F": 1.5, "S": 1.5, "Cl": 1.0, "N": 0.7, "Se": 0.7, "Br": 0.5, "I": 0.5, "Te": 0.4,
           "P": 0.3, "As": 0.2, "H": 0.2, "C": 0.2, "Sb": 0.1}
#: Elements never drawn as cations of a random ionic compound.
_NOT_CATIONS = {"H", "C", "N", "O", "F", "S", "Se", "Cl", "Br", "I"}
#: Attempts per requested crystal before a generator gives up.
MAX_ATTEMPTS_PER_CRYSTAL = 60


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`_Timeout` in the block after ``seconds`` of CPU time (main thread only; elsewhere no limit)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        raise _Timeout

    # CPU time of this process (ITIMER_PROF), not wall time: other processes on a busy machine
    # then cannot make a candidate time out, which keeps builds reproducible under load.
    old = signal.signal(signal.SIGPROF, handler)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


def parse_system(system: str | Sequence[int]) -> tuple[int, ...]:
    """Allowed space groups: a crystal-system name, 'all', '225,221', or a list of numbers."""
    if isinstance(system, str):
        name = system.strip().lower()
        if name in SYSTEMS:
            lo, hi = SYSTEMS[name]
            return tuple(range(lo, hi + 1))
        try:
            groups = [int(t) for t in name.split(",") if t.strip()]
        except ValueError:
            raise InputError(f"unknown crystal system '{system}'; use one of {', '.join(SYSTEMS)} "
                             "or space-group numbers like 225,221") from None
    else:
        groups = [int(g) for g in system]
    if not groups or any(not 1 <= g <= 230 for g in groups):
        raise InputError(f"space groups {system} must be numbers in 1-230")
    return tuple(sorted(set(groups)))


def split_of(formula: str, spacegroup: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """'train', 'val' or 'test' from a stable SHA-256 hash of (reduced formula, space group).

    Every polymorph-free key lands in the same split in every build, so a formula never leaks
    between train and test.
    """
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise InputError(f"split fractions {fractions} must be three non-negative numbers summing to 1")
    digest = hashlib.sha256(f"{formula}|{int(spacegroup)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


# ---------------------------------------------------------------------------------------------
# Shared filters


@functools.cache
def _covalent_radius(z: int) -> float:
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius

    return float(CovalentRadius.radius.get(Element.from_Z(z).symbol, 1.5))


def distances_ok(crystal: Crystal, min_distance: float = DEFAULT_MIN_DISTANCE,
                 covalent_factor: float = DEFAULT_COVALENT_FACTOR) -> bool:
    """True when every pair of atoms (periodic images included) is at least
    max(``min_distance``, ``covalent_factor`` x sum of covalent radii) Angstrom apart."""
    lat = Lattice(crystal.lattice)
    d = lat.get_all_distances(crystal.frac, crystal.frac)
    n = len(crystal.numbers)
    d[np.arange(n), np.arange(n)] = np.inf
    r = np.array([_covalent_radius(int(z)) for z in crystal.numbers])
    limit = np.maximum(min_distance, covalent_factor * (r[:, None] + r[None, :]))
    # A site's own periodic images: the shortest lattice vector must also clear the limit.
    own = float(np.min(np.linalg.norm(crystal.lattice, axis=1)))
    return bool(np.all(d >= limit)) and own >= float(np.max(np.diag(limit)))


def _accept(structure: Structure, groups: tuple[int, ...], max_atoms: int, min_distance: float,
            covalent_factor: float) -> Crystal | None:
    """Standardise and filter one candidate; None when it fails any filter."""
    if not structure.is_ordered:
        return None
    conv, sg = standardize(structure)
    if sg not in groups or len(conv) > max_atoms:
        return None
    crystal = Crystal.from_structure(conv, sg)
    if is_excluded(crystal.formula, sg) or not distances_ok(crystal, min_distance, covalent_factor):
        return None
    return crystal


# ---------------------------------------------------------------------------------------------
# Element pools


@functools.cache
def _elements() -> tuple[Element, ...]:
    return tuple(Element.from_Z(z) for z in range(1, MAX_Z + 1)
                 if Element.from_Z(z).symbol not in _NOBLE | _RADIOACTIVE)


@functools.cache
def _cations() -> tuple[tuple[str, int], ...]:
    """(element, positive common oxidation state) pairs."""
    return tuple((e.symbol, q) for e in _elements() if e.symbol not in _NOT_CATIONS
                 for q in e.common_oxidation_states if q > 0)


def _electronegativity(e: Element) -> float:
    x = e.X
    return float(x) if x and math.isfinite(x) else 1.5


def _pick(rng: np.random.Generator, items: Sequence, weights: Sequence[float]):
    w = np.asarray(weights, dtype=np.float64)
    return items[int(rng.choice(len(items), p=w / w.sum()))]


# ---------------------------------------------------------------------------------------------
# Prototype substitution


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


# ---------------------------------------------------------------------------------------------
# PyXtal random crystals


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


def _random_candidate(groups: tuple[int, ...], max_atoms: int, rng: np.random.Generator) -> Structure | None:
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    comp = random_composition(rng)
    species = list(comp)
    base = np.array([comp[s] for s in species])
    sg = int(groups[int(rng.integers(len(groups)))])
    group = Group(sg)
    factors = [k for k in range(1, max_atoms // int(base.sum()) + 1)
               if group.check_compatible((base * k).tolist())[0]]
    if not factors:
        return None
    # Prefer small cells, as real structures do, but keep some large ones.
    w = 1.0 / np.arange(1, len(factors) + 1)
    k = factors[int(rng.choice(len(factors), p=w / w.sum()))]
    xtal = pyxtal()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xtal.from_random(3, sg, species, (base * k).tolist(), random_state=int(rng.integers(2**31)))
    if not xtal.valid:
        return None
    return xtal.to_pymatgen()


# ---------------------------------------------------------------------------------------------
# Public API


def _warm_up(kind: str, groups: tuple[int, ...], max_atoms: int) -> None:
    """Fill the per-process caches and imports outside the per-candidate time limit, so that a slow
    first call (template standardisation, importing pyxtal) can never time out and shift the output."""
    _elements()
    _cations()
    for z in range(1, MAX_Z + 1):
        _covalent_radius(z)
    from powdersolve.structures.exclusion import exclusion_set

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
    """``count`` filtered crystals from generator ``kind`` ('prototypes', 'random' or 'files:DIR').

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
        raise InputError(f"unknown generator '{kind}'; use prototypes, random or files:DIR")
    if perturb < 0:
        raise InputError(f"perturb {perturb} must be a non-negative distance in Angstrom")
    if kind == "prototypes":
        make = functools.partial(_prototype_candidate, perturb=perturb, group_swap=group_swap)
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
