"""Indexing records: the search settings (:class:`IndexConfig`) and one solution (:class:`CellSolution`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from powdersolve.cell import Cell
from powdersolve.errors import InputError
from powdersolve.indexing.metric import (
    SYSTEMS,
    cell_from_p6,
    lattice_from_cell,
    p6_from_lattice,
    param_map,
)
from powdersolve.indexing.observations import Observed
from powdersolve.indexing.refine import Fit

#: de Wolff M20 below which :func:`best_cell` refuses the cell.
M20_THRESHOLD = 10.0
#: Lattice points per conventional cell of each centring.
CENTRING_POINTS = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "F": 4, "R": 3}
#: Ranking factor (fraction of the lines indexed) ** (UNINDEXED_EXPONENT * max(n, 20) / 20) for n
#: lines: each unindexed line weighs more when there are fewer than 20 (one in ten: x 0.43; one in
#: twenty: x 0.66), and about x 0.66 wherever it lies among more (one in thirty: x 0.67).
UNINDEXED_EXPONENT = 8.0



@dataclass(frozen=True)
class IndexConfig:
    """Settings of :func:`index_pattern`.

    Attributes:
        systems: crystal systems searched ('hexagonal' and 'trigonal' both search hexagonal P and R lattices).
        tol: 2-theta tolerance (deg) for a line to count as indexed (taken at Cu K-alpha1 for d-spacings).
        zero_range: largest 2-theta zero shift (deg) fitted; 0 fits none.
        max_lines: use at most this many lowest-angle lines.
        max_unindexed: lines among the first 20 a candidate may leave unindexed (impurities, K-alpha2);
            weak lines do not count (see ``weak_line``).
        weak_line: when the peak intensities are known (:func:`index_counts`), a line of at most this
            fraction of the strongest line's intensity may be a minor impurity's: a candidate may leave
            such lines unindexed beyond ``max_unindexed`` (up to ``impurity_fraction`` of all lines), and
            a more symmetric cell that leaves only such lines unexplained at 3x the M20 goes first
            (:mod:`powdersolve.indexing.strays`); 0 counts every line alike.
        impurity_fraction: most lines (fraction of all) that weak unindexed lines may make up.
        n_keep: candidates returned.
        time_budget_s: wall-clock budget (s) of each search stage (high systems; reduced-basis search).
        stop_m20: skip the lower-symmetry search when a higher-symmetry cell indexes every line with
            at least this M20 (0 never skips).
        occam: ranking factor per free metric parameter fewer (prefers higher symmetry on near ties).
        max_volume: largest cell volume (A^3) kept.
        min_volume: smallest primitive-cell volume (A^3) kept; no solid packs its atoms tighter than
            about 11 A^3 per primitive cell (fcc Ni 10.9, diamond 11.3).
        min_edge: shortest lattice translation (A) kept (no two atoms of a solid are closer than
            about 2 A, so no lattice vector is shorter: Be 2.23, diamond 2.52).
        n_refine: trials refined per lattice type (the best screened ones).
    """

    systems: tuple[str, ...] = SYSTEMS
    tol: float = 0.05
    zero_range: float = 0.0
    max_lines: int = 30
    max_unindexed: int = 3
    weak_line: float = 0.05
    impurity_fraction: float = 0.5
    n_keep: int = 10
    time_budget_s: float = 10.0
    stop_m20: float = 20.0
    occam: float = 1.3
    max_volume: float = 6000.0
    min_volume: float = 9.0
    min_edge: float = 2.0
    n_refine: int = 30

    def __post_init__(self) -> None:
        bad = [s for s in self.systems if s not in SYSTEMS]
        if bad:
            raise InputError(f"cannot index crystal system(s) {', '.join(bad)}; choose from {', '.join(SYSTEMS)}")
        if not (self.tol > 0 and self.zero_range >= 0 and self.max_lines >= 5 and self.n_keep >= 1):
            raise InputError("indexing needs tol > 0, zero_range >= 0, max_lines >= 5 and n_keep >= 1")
        if not 0 <= self.impurity_fraction < 1:
            raise InputError(f"impurity_fraction {self.impurity_fraction} must lie in [0, 1)")


@dataclass(frozen=True)
class CellSolution:
    """One indexing solution, in the conventional standard setting.

    Attributes:
        system: 'cubic', 'hexagonal' (P lattice), 'trigonal' (R lattice, hexagonal setting),
            'tetragonal', 'orthorhombic', 'monoclinic' (unique axis b) or 'triclinic' (Niggli cell).
        a, b, c: cell edges (Angstrom); alpha, beta, gamma: angles (deg).
        centring: 'P', 'C', 'I', 'F' or 'R' (obverse).
        m20: de Wolff figure of merit over the first 20 lines (or all if fewer), unindexed lines excluded.
        n_indexed: observed lines within the tolerance of a calculated line.
        zero_shift: 2-theta zero shift (deg) with 2th_true = 2th_measured - zero_shift; 0 when not fitted.
        n_lines: observed lines given.
        f_n: Smith-Snyder F_N in 2-theta (1/deg) over the first 30 lines (or all).
        hkl: (n_lines, 3) indices assigned to each observed line (0 0 0: unindexed).
        score: ranking score (see the module docstring).
    """

    system: str
    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float
    centring: str
    m20: float
    n_indexed: int
    zero_shift: float
    n_lines: int = 0
    f_n: float = 0.0
    hkl: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=int), compare=False, repr=False)
    score: float = 0.0

    @property
    def volume(self) -> float:
        """Cell volume in Angstrom^3."""
        return float(abs(np.linalg.det(self.lattice())))

    @property
    def cell(self) -> Cell:
        """The cell (:class:`powdersolve.cell.Cell`: Angstrom, degrees)."""
        return Cell(self.a, self.b, self.c, self.alpha, self.beta, self.gamma)

    def lattice(self) -> np.ndarray:
        """(3, 3) lattice rows a, b, c in Angstrom (a along x, b in the xy plane)."""
        return lattice_from_cell(*self.cell)

    def p6(self) -> np.ndarray:
        """Reciprocal metric coefficients (A, B, C, D, E, F) in 1/A^2."""
        return p6_from_lattice(self.lattice())


def solution_of(fit: Fit, obs: Observed, occam: float) -> CellSolution | None:
    """The :class:`CellSolution` of a refined fit, with its ranking score; None for a cell that is not
    positive definite.

    The score is M20 times the indexed-fraction factor of :data:`UNINDEXED_EXPONENT` times ``occam``
    per free metric parameter fewer than triclinic. The fraction counts every line given, not only
    the first 20 of M20: a subcell that leaves a superstructure line beyond the 20th unexplained
    must pay for it, or it out-ranks the right cell on M20 alone (its N20 is half).
    """
    cell = cell_from_p6(param_map(fit.system) @ fit.p)
    if cell is None:
        return None
    n_par = param_map(fit.system).shape[1]
    n = max(fit.n_lines, 1)
    exponent = UNINDEXED_EXPONENT * max(n, 20) / 20
    score = fit.m20 * (fit.n_indexed / n) ** exponent * occam ** (6 - n_par)
    return CellSolution(fit.system, *cell, fit.centring, fit.m20, fit.n_indexed, fit.zero, int(obs.tt.size),
                        fit.f_n, fit.hkl, float(score))


