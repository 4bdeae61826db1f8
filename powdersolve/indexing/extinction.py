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

from powdersolve.indexing.metric import allowed, design, hkl_grid
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
    """

    hkl: np.ndarray
    under_peak: np.ndarray
    unobserved: np.ndarray


@dataclass(frozen=True)
class ExtinctionClass:
    """Space groups sharing one set of systematic absences, with how well it fits the evidence.

    Attributes:
        groups: the space groups (all settings of the cell's system and centring) in the class.
        absent_examples: up to 8 lowest-angle reflections of the cell the class removes.
        n_unexplained: observed peaks whose every reflection the class removes.
        n_unobserved: reflections the class allows on which no peak is observed.
    """

    groups: tuple[SpaceGroup, ...]
    absent_examples: tuple[tuple[int, int, int], ...]
    n_unexplained: int
    n_unobserved: int

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


def evidence_from_peaks(cell: CellSolution, two_theta: np.ndarray, wavelength: float, tol: float = 0.05
                        ) -> ReflectionEvidence:
    """Evidence from peak positions (deg) alone: a reflection is observed when a peak lies within
    ``tol`` deg (after the cell's zero shift), unobserved otherwise (inside the observed range)."""
    tt = np.sort(np.asarray(two_theta, dtype=np.float64)) - cell.zero_shift
    q_obs = q_from_tt(tt, wavelength)
    tol_q = dq_dtt(tt, wavelength) * tol
    p6 = cell.p6()
    q_max = float(q_obs[-1] + tol_q[-1])
    hkl = hkl_grid(p6, q_max)
    hkl = hkl[allowed(hkl, cell.centring)]
    q = design(hkl) @ p6
    keep = q <= q_max
    hkl, q = hkl[keep], q[keep]
    order = np.argsort(q, kind="stable")
    hkl, q = hkl[order], q[order]
    under = np.abs(q[None, :] - q_obs[:, None]) <= tol_q[:, None]
    return ReflectionEvidence(hkl=hkl, under_peak=under, unobserved=~under.any(axis=0))


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
        n_unexplained = int(np.sum(lattice_peaks & ~explained))
        n_unobserved = int(np.sum(evidence.unobserved & ~absent))
        examples = tuple(tuple(int(v) for v in h) for h in hkl[absent][:8])
        groups = sorted(set(groups), key=lambda g: (g.number, g.hall))
        uniq = []
        for g in groups:
            if all(u.symbol != g.symbol for u in uniq):
                uniq.append(g)
        out.append((n_unexplained, n_unobserved, -int(absent.sum()),
                    ExtinctionClass(tuple(uniq), examples, n_unexplained, n_unobserved)))
    out.sort(key=lambda x: x[:3])
    return [x[3] for x in out]


def space_group_candidates(cell: CellSolution, two_theta: np.ndarray, wavelength: float, tol: float = 0.05,
                           n_classes: int = 3) -> list[ExtinctionClass]:
    """The ``n_classes`` best extinction classes of an indexed cell from peak positions (deg, A)."""
    evidence = evidence_from_peaks(cell, two_theta, wavelength, tol)
    return rank_extinction_classes(cell.system, cell.centring, evidence)[:n_classes]
