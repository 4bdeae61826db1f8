"""What a generated crystal may be: crystal systems, splits, distance checks, element pools, time limits."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import signal
import threading
from collections.abc import Iterator, Sequence

import numpy as np
from pymatgen.core import Element, Lattice, Structure

from powdersolve.errors import InputError
from powdersolve.structures.crystal import Crystal
from powdersolve.structures.exclusion import is_excluded
from powdersolve.structures.io import standardize

#: Space-group ranges of the seven crystal systems (inclusive).
SYSTEMS: dict[str, tuple[int, int]] = {
    "triclinic": (1, 2), "monoclinic": (3, 15), "orthorhombic": (16, 74), "tetragonal": (75, 142),
    "trigonal": (143, 167), "hexagonal": (168, 194), "cubic": (195, 230), "all": (1, 230),
}


KINDS = ("prototypes", "random", "dimers")


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
