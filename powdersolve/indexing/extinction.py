"""Space-group candidates of an indexed cell from systematic absences (extinction classes).

Reflection conditions are derived from the space-group operations (spglib's database, every
setting of the cell's system and centring): a reflection h is systematically absent in a group iff
some operation (R, t) has h R = h and h . t non-integer. Groups removing the same reflections of
the cell form one extinction class. Evidence comes as :class:`ReflectionEvidence` (which reflections
lie under each observed peak, and which are confidently unobserved), so it can be built from peak
positions (:func:`evidence_from_peaks`) or, later, from Le Bail intensities. A class is ranked by
the observed peaks it cannot explain (all reflections under them absent) and then by the
reflections it predicts where nothing is observed; a peak overlapped by a reflection the class
allows is no evidence against it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import spglib

from powdersolve.cell import Cell
from powdersolve.indexing.metric import CENTRINGS, FAMILY, SYSTEMS, allowed, design, hkl_grid, p6_from_lattice
from powdersolve.indexing.observations import dq_dtt, q_from_tt
from powdersolve.indexing.reduction import system_of_number
from powdersolve.indexing.solution import CellSolution

#: Monoclinic settings compatible with the reported cell (unique axis b, C-centred when centred).
_MONO_CHOICES = ("b", "b1", "b2", "b3")


@dataclass(frozen=True)
class SpaceGroup:
    """One space group in one setting: number, setting-specific symbol, Hall number."""

    number: int
    symbol: str
    hall: int


@dataclass(frozen=True)
class ReflectionEvidence:
    """What the pattern says about each reflection of a cell.

    Attributes:
        hkl: (K, 3) reflections the lattice centring allows in the observed range.
        under_peak: (P, K) bool, reflection k lies under observed peak p (within tolerance).
        unobserved: (K,) bool, no observed peak lies on reflection k (it is weak or absent).
        n_lattice_absent: reflections in the observed range the lattice centring removes (not in ``hkl``),
            so that centred and primitive classes count their absences alike.
        n_lattice_unexplained: observed peaks on reflections of the primitive cell that the centring removes.
    """

    hkl: np.ndarray
    under_peak: np.ndarray
    unobserved: np.ndarray
    n_lattice_absent: int = 0
    n_lattice_unexplained: int = 0


@dataclass(frozen=True)
class ExtinctionClass:
    """Space groups sharing one set of systematic absences, with how well it fits the evidence.

    Attributes:
        groups: the space groups (all settings of the cell's system and centring) in the class.
        absent_examples: up to 8 lowest-angle reflections of the cell the class removes.
        n_unexplained: observed peaks whose every reflection the class removes (the lattice centring's
            removals included).
        n_unobserved: reflections the class allows on which no peak is observed.
        n_absent: reflections of the cell in the observed range the class removes (lattice centring included).
    """

    groups: tuple[SpaceGroup, ...]
    absent_examples: tuple[tuple[int, int, int], ...]
    n_unexplained: int
    n_unobserved: int
    n_absent: int = 0

    @property
    def rank_key(self) -> tuple[int, int, int]:
        """Sort key, best first: fewest unexplained peaks, then fewest allowed-but-unseen reflections,
        then the most absences (the more specific class)."""
        return self.n_unexplained, self.n_unobserved, -self.n_absent

    @property
    def label(self) -> str:
        """The lowest-numbered group's symbol, e.g. 'P 1 2_1/c 1'."""
        return self.groups[0].symbol


def _lattice_system(number: int) -> str:
    system = system_of_number(number)
    return "hexagonal" if system == "trigonal" else system


@functools.lru_cache(maxsize=16)
def _groups(system: str, centring: str) -> tuple[tuple[SpaceGroup, np.ndarray, np.ndarray], ...]:
    """(group, rotations, translations) of every Hall setting of a cell's system and centring."""
    family = "hexagonal" if system in ("hexagonal", "trigonal") else system
    out = []
    for hall in range(1, 531):
        t = spglib.get_spacegroup_type(hall)
        if _lattice_system(t.number) != family or t.international_full[0] != centring:
            continue
        if family == "monoclinic" and t.choice not in _MONO_CHOICES:
            continue
        if family == "hexagonal" and centring == "R" and t.choice != "H":
            continue
        ops = spglib.get_symmetry_from_database(hall)
        out.append((SpaceGroup(int(t.number), t.international_full, hall), np.asarray(ops["rotations"]),
                    np.asarray(ops["translations"])))
    return tuple(out)


def systematically_absent(hkl: np.ndarray, rotations: np.ndarray, translations: np.ndarray) -> np.ndarray:
    """(K,) bool: reflections (K, 3) a group with these operations extinguishes."""
    hr = np.einsum("kj,oji->koi", hkl, rotations)  # h R per operation
    fixed = np.all(hr == hkl[:, None, :], axis=2)
    phase = hkl @ translations.T  # (K, ops)
    frac = np.abs(phase - np.round(phase)) > 1e-6
    return np.any(fixed & frac, axis=1)


def evidence_from_peaks(p6: np.ndarray, centring: str, two_theta: np.ndarray, wavelength: float,
                        tol: float = 0.05, zero_shift: float = 0.0) -> ReflectionEvidence:
    """Evidence from peak positions (deg) alone, for the cell of reciprocal metric ``p6`` (1/A^2) and its
    lattice ``centring``: a reflection is observed when a peak lies within ``tol`` deg (after the zero
    shift, deg), unobserved otherwise (inside the observed range)."""
    tt = np.sort(np.asarray(two_theta, dtype=np.float64)) - zero_shift
    q_obs = q_from_tt(tt, wavelength)
    tol_q = dq_dtt(tt, wavelength) * tol
    q_max = float(q_obs[-1] + tol_q[-1])
    hkl = hkl_grid(p6, q_max)
    q = design(hkl) @ p6
    keep = q <= q_max
    hkl, q = hkl[keep], q[keep]
    order = np.argsort(q, kind="stable")
    hkl, q = hkl[order], q[order]
    under = np.abs(q[None, :] - q_obs[:, None]) <= tol_q[:, None]
    lattice_ok = allowed(hkl, centring)
    # Peaks the primitive cell indexes and the centred lattice cannot: evidence against the centring.
    n_lattice_unexplained = int(np.sum(under.any(axis=1) & ~under[:, lattice_ok].any(axis=1)))
    under = under[:, lattice_ok]
    return ReflectionEvidence(hkl=hkl[lattice_ok], under_peak=under, unobserved=~under.any(axis=0),
                              n_lattice_absent=int(np.sum(~lattice_ok)), n_lattice_unexplained=n_lattice_unexplained)


def rank_extinction_classes(system: str, centring: str, evidence: ReflectionEvidence) -> list[ExtinctionClass]:
    """Extinction classes of the cell's system and centring, best supported first."""
    hkl = evidence.hkl
    lattice_peaks = evidence.under_peak.any(axis=1)  # peaks the lattice explains at all
    classes: dict[bytes, list] = {}
    for group, rot, trans in _groups(system, centring):
        absent = systematically_absent(hkl, rot, trans)
        classes.setdefault(absent.tobytes(), [absent, []])[1].append(group)
    out = []
    for absent, groups in classes.values():
        explained = (evidence.under_peak & ~absent[None, :]).any(axis=1)
        n_unexplained = int(np.sum(lattice_peaks & ~explained)) + evidence.n_lattice_unexplained
        n_unobserved = int(np.sum(evidence.unobserved & ~absent))
        examples = tuple(tuple(int(v) for v in h) for h in hkl[absent][:8])
        groups = sorted(set(groups), key=lambda g: (g.number, g.hall))
        uniq = []
        for g in groups:
            if all(u.symbol != g.symbol for u in uniq):
                uniq.append(g)
        out.append(ExtinctionClass(tuple(uniq), examples, n_unexplained, n_unobserved,
                                   int(absent.sum()) + evidence.n_lattice_absent))
    return sorted(out, key=lambda c: c.rank_key)


def space_group_candidates(cell: CellSolution, two_theta: np.ndarray, wavelength: float, tol: float = 0.05,
                           n_classes: int = 3) -> list[ExtinctionClass]:
    """The ``n_classes`` best extinction classes of an indexed cell from peak positions (deg, A)."""
    evidence = evidence_from_peaks(cell.p6(), cell.centring, two_theta, wavelength, tol, cell.zero_shift)
    return rank_extinction_classes(cell.system, cell.centring, evidence)[:n_classes]


def cell_space_group_candidates(cell: Cell, two_theta: np.ndarray, wavelength: float, *,
                                centring: str | None = None, zero_shift: float = 0.0, tol: float = 0.05,
                                n_classes: int = 3) -> list[ExtinctionClass]:
    """The ``n_classes`` best extinction classes of a cell (A, deg; conventional standard setting of its
    lattice) from peak positions (deg) at ``wavelength`` (A), over every lattice centring of its family,
    or only ``centring`` when known (e.g. from indexing). Empty when no peak is given."""
    two_theta = np.asarray(two_theta, dtype=np.float64)
    if two_theta.size == 0:
        return []
    p6 = p6_from_lattice(cell.matrix)
    found: list[ExtinctionClass] = []
    for system in SYSTEMS:
        if FAMILY.get(system, system) != cell.family:
            continue
        for c in CENTRINGS[system]:
            if centring in (None, c):
                evidence = evidence_from_peaks(p6, c, two_theta, wavelength, tol, zero_shift)
                found += rank_extinction_classes(system, c, evidence)
    return sorted(found, key=lambda c: c.rank_key)[:n_classes]
