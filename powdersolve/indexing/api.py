"""Indexing of a powder pattern: ranked unit cells of all seven crystal systems from peak positions.

Pipeline (all in Q = 1/d^2):

1. one- and two-parameter lattices (cubic P/I/F, hexagonal P, rhombohedral R, tetragonal P/I) from
   exhaustive low-index trial assignment of the first lines (:mod:`.trials`);
2. unless a cell from step 1 already indexes every line with M20 >= ``IndexConfig.stop_m20``, the
   lower systems (orthorhombic P/C/I/F, monoclinic P/C, triclinic) from trial primitive cells in a
   reduced reciprocal basis, refined as triclinic, then in every Bravais lattice spglib finds in
   their metric at a few tolerances (:mod:`.reduction`), in the conventional setting;
3. every trial that indexes enough of the first lines is refined by weighted least squares with a
   zero shift (:mod:`.refine`) and scored by de Wolff M20 and Smith-Snyder F_N;
4. candidates describing the same lattice (same Niggli cell) are merged, keeping the most symmetric
   one unless its M20 is clearly worse; the rest are ranked by M20 times (fraction of the first 20 lines
   indexed) ** ``UNINDEXED_EXPONENT`` times ``IndexConfig.occam`` per free metric parameter fewer than triclinic.

Each system has a time budget (``IndexConfig.time_budget_s``); a search out of time returns what it has.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from powdersolve.errors import InputError
from powdersolve.indexing.metric import (
    CENTRINGS,
    SYSTEMS,
    cell_from_p6,
    lattice_from_cell,
    metric_from_p6,
    p6_from_lattice,
    param_map,
    primitive_lattice,
)
from powdersolve.indexing.observations import Observed, observations
from powdersolve.indexing.reduction import bravais_lattices, niggli, same_lattice
from powdersolve.indexing.refine import Fit, figures, refine
from powdersolve.indexing.trials import (
    assignment_trials,
    chance_matches,
    metric_trials,
    reduced_basis_trials,
    screen,
)

#: de Wolff M20 below which :func:`best_cell` refuses the cell.
M20_THRESHOLD = 10.0
#: Lattice points per conventional cell of each centring.
CENTRING_POINTS = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "F": 4, "R": 3}
#: Ranking factor (fraction of the first 20 lines indexed) ** UNINDEXED_EXPONENT: each unindexed
#: line weighs more when there are few lines (one in ten: x 0.43; one in twenty: x 0.66).
UNINDEXED_EXPONENT = 8.0
#: Systems searched by the one/two-parameter trial assignment and by the reduced-basis search.
HIGH_SYSTEMS = ("cubic", "hexagonal", "trigonal", "tetragonal")
LOW_SYSTEMS = ("orthorhombic", "monoclinic", "triclinic")
#: Centrings tried on every refined primitive orthorhombic or monoclinic cell (the lattice is then
#: re-found by spglib in its standard setting).
SUBLATTICE_CENTRINGS = {"orthorhombic": ("P", "A", "B", "C", "I", "F"), "monoclinic": ("P", "A", "C", "I")}
#: (centring, reflections per assignment, first lines, largest index) of the assignment trials: a
#: centred lattice's first lines have higher indices than a primitive one's.
ASSIGNMENT_ROWS = {"orthorhombic": (("P", 20, 7, 2), ("C", 14, 7, 3), ("I", 14, 7, 3), ("F", 14, 7, 4)),
                   "monoclinic": (("P", 16, 6, 2), ("C", 12, 6, 3))}
#: Reflections per distinct line of a general hkl (Friedel pairs and mirrors merge).
LINE_MULTIPLICITY = {"orthorhombic": 8, "monoclinic": 4}
#: A trial cell may predict at most this many times as many lines as are observed up to the 20th:
#: beyond it the cell indexes lines by chance and its M20 is hopeless.
MAX_LINE_RATIO = 3.0


@dataclass(frozen=True)
class IndexConfig:
    """Settings of :func:`index_pattern`.

    Attributes:
        systems: crystal systems searched ('hexagonal' and 'trigonal' both search hexagonal P and R lattices).
        tol: 2-theta tolerance (deg) for a line to count as indexed (taken at Cu K-alpha1 for d-spacings).
        zero_range: largest 2-theta zero shift (deg) fitted; 0 fits none.
        max_lines: use at most this many lowest-angle lines.
        max_unindexed: lines among the first 20 a candidate may leave unindexed (impurities, K-alpha2).
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
    def cell(self) -> tuple[float, float, float, float, float, float]:
        """(a, b, c, alpha, beta, gamma) in Angstrom and degrees."""
        return self.a, self.b, self.c, self.alpha, self.beta, self.gamma

    def lattice(self) -> np.ndarray:
        """(3, 3) lattice rows a, b, c in Angstrom (a along x, b in the xy plane)."""
        return lattice_from_cell(*self.cell)

    def p6(self) -> np.ndarray:
        """Reciprocal metric coefficients (A, B, C, D, E, F) in 1/A^2."""
        return p6_from_lattice(self.lattice())


def _solution(fit: Fit, obs: Observed, occam: float) -> CellSolution | None:
    cell = cell_from_p6(param_map(fit.system) @ fit.p)
    if cell is None:
        return None
    n_par = param_map(fit.system).shape[1]
    m = min(20, fit.n_lines)
    score = fit.m20 * ((m - fit.n_unindexed20) / m) ** UNINDEXED_EXPONENT * occam ** (6 - n_par)
    return CellSolution(fit.system, *cell, fit.centring, fit.m20, fit.n_indexed, fit.zero, int(obs.tt.size),
                        fit.f_n, fit.hkl, float(score))


class _Search:
    """Collects refined candidates of one pattern (one job; no state outside it)."""

    def __init__(self, obs: Observed, config: IndexConfig, say: Callable[[str], None]) -> None:
        self.obs, self.config, self.say = obs, config, say
        self.q = obs.q()
        n_s = min(20, self.q.size)
        self.q_s = self.q[:n_s]
        self.tol_s = obs.tol_q(obs.max_zero)[:n_s]
        # Lines a cell may leave unindexed: at most one in five (few-line patterns leave no room).
        self.max_unindexed = min(config.max_unindexed, self.q.size // 5)
        self.need = n_s - self.max_unindexed
        self.found: list[CellSolution] = []

    def add(self, system: str, centring: str, p0: np.ndarray, keep: bool = True) -> Fit | None:
        """Refine a trial; keep it as a candidate (unless ``keep`` is False) when it indexes enough lines."""
        ref = refine(system, centring, np.asarray(p0, dtype=np.float64), self.obs,
                     max_unindexed=self.max_unindexed)
        if ref is None:
            return None
        fit = figures(system, centring, ref[0], ref[1], self.obs)
        if fit is None or fit.n_unindexed20 > self.max_unindexed or fit.n_lines - fit.n_indexed > 2 * max(
                self.max_unindexed, 1):
            return None
        sol = _solution(fit, self.obs, self.config.occam)
        if not keep:
            return fit if sol is not None else None
        if sol is None or not (self.config.min_volume * CENTRING_POINTS[centring] <= sol.volume
                                   <= self.config.max_volume):
            return None
        if float(niggli(sol.lattice(), centring)[0].min()) < self.config.min_edge:
            return None
        self.found.append(sol)
        return fit

    def best_trials(self, system: str, centring: str, trials: np.ndarray) -> np.ndarray:
        """Up to ``n_refine`` trials that index most of the first lines, smallest cells first."""
        if len(trials) == 0:
            return trials
        vol = _volume(trials @ param_map(system).T)
        trials, vol = trials[vol <= self.config.max_volume], vol[vol <= self.config.max_volume]
        counts = screen(system, centring, trials, self.q_s, self.tol_s)
        return trials[_pick(counts, vol, self.need, self.config.n_refine, self.q_s, self.tol_s)]

    def high(self, systems: Sequence[str]) -> None:
        t0 = time.monotonic()
        for system in systems:
            for centring in CENTRINGS[system]:
                if time.monotonic() - t0 > self.config.time_budget_s:
                    self.say(f"indexing: time budget spent before {system} {centring}")
                    return
                trials = assignment_trials(system, centring, self.q)
                for p0 in self.best_trials(system, centring, trials):
                    self.add(system, centring, p0)
                self.say(f"indexing: {system} {centring}: {len(trials)} trials, {len(self.found)} candidates so far")

    def assigned(self, system: str, systems: Sequence[str], max_primitive_volume: float = np.inf) -> None:
        """Orthorhombic or monoclinic search by exhaustive low-index assignment (:func:`metric_trials`).

        Trials are screened smallest cell first (principle of the smallest cell) on the first 12 lines,
        then on the first 20; the best are refined as primitive cells, then with every centring their
        lines allow, in the standard setting spglib gives the centred lattice. Only trials whose
        primitive cell is smaller than ``max_primitive_volume`` (A^3) are tried.
        """
        t0 = time.monotonic()
        budget = self.config.time_budget_s
        mp = param_map(system)
        sets = [(metric_trials(system, c, self.q, n_first=n_first, n_rows=n_rows, max_index=mi), c)
                for c, n_rows, n_first, mi in ASSIGNMENT_ROWS[system]]
        trials = np.concatenate([t for t, _ in sets])
        points = np.concatenate([np.full(len(t), CENTRING_POINTS[c]) for t, c in sets])
        vol = _volume(trials @ mp.T)
        m = self.q_s.size
        # Lines a cell predicts up to the 20th line, taking the centring its trial was made for.
        n_est = 4 * np.pi / 3 * vol / points * self.q_s[-1] ** 1.5 / LINE_MULTIPLICITY[system]
        ok = ((vol >= self.config.min_volume) & (vol <= self.config.max_volume) & (n_est <= MAX_LINE_RATIO * m)
              & (vol / points < max_primitive_volume))
        order = np.flatnonzero(ok)[np.argsort(vol[ok], kind="stable")]
        trials, vol = trials[order], vol[order]
        n1 = min(12, m)
        need1 = n1 - min(self.max_unindexed, 2)
        kept = []
        step = 20000
        for c0 in range(0, len(trials), step):
            if time.monotonic() - t0 > 0.6 * budget:
                self.say(f"indexing: {system} screening stopped at {c0} of {len(trials)} trials (time budget)")
                break
            sel = np.arange(c0, min(c0 + step, len(trials)))
            sel = sel[screen(system, "P", trials[sel], self.q_s[:n1], self.tol_s[:n1]) >= need1]
            kept.append(sel)
        sel = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
        counts = screen(system, "P", trials[sel], self.q_s, self.tol_s)
        pick = sel[_pick(counts, vol[sel], self.need, self.config.n_refine, self.q_s, self.tol_s)]
        self.say(f"indexing: {system}: {len(order)} trial cells, refining {len(pick)}")
        seen: list[tuple[np.ndarray, np.ndarray]] = []
        for p0 in trials[pick]:
            if time.monotonic() - t0 > budget:
                self.say(f"indexing: time budget spent in the {system} refinement")
                break
            fit = self.add(system, "P", p0, keep=False)
            if fit is None:
                continue
            cell = cell_from_p6(mp @ fit.p)
            red = niggli(lattice_from_cell(*cell))
            if any(same_lattice(red, r) for r in seen):
                continue
            seen.append(red)
            lat = lattice_from_cell(*cell)
            for centring in SUBLATTICE_CENTRINGS[system]:
                if screen(system, centring, fit.p[None], self.q_s, self.tol_s)[0] < self.need:
                    continue
                for sub_system, sub_centring, std in bravais_lattices(primitive_lattice(lat, centring)):
                    if sub_system in systems and sub_system != "triclinic":
                        sp = np.linalg.lstsq(param_map(sub_system), p6_from_lattice(std), rcond=None)[0]
                        self.add(sub_system, sub_centring, sp)

    def low(self, systems: Sequence[str]) -> None:
        t0 = time.monotonic()
        groups = reduced_basis_trials(self.q, self.obs.tol_q(self.obs.max_zero))
        # Two-stage screening: the first 10 lines (few reflections to generate) weed out most trials.
        n1 = min(10, self.q_s.size)
        q1, tol1, need1 = self.q_s[:n1], self.tol_s[:n1], n1 - min(self.max_unindexed, 2)
        kept = []
        for i, trials in enumerate(groups):
            if time.monotonic() - t0 > self.config.time_budget_s * 0.6:
                self.say(f"indexing: reduced-basis screening stopped at {i} of {len(groups)} axis choices "
                         "(time budget)")
                break
            trials = trials[_volume(trials) <= self.config.max_volume]
            trials = trials[screen("triclinic", "P", trials, q1, tol1) >= need1]
            counts = screen("triclinic", "P", trials, self.q_s, self.tol_s)
            ok = counts >= self.need
            if ok.any():
                kept.append(np.column_stack([trials[ok], counts[ok]]))
        if not kept:
            self.say("indexing: no primitive trial cell indexes enough lines")
            return
        allk = np.concatenate(kept)
        trials, counts = allk[:, :6], allk[:, 6]
        _, first = np.unique(np.round(trials / trials[:, :1] * 2000), axis=0, return_index=True)
        trials, counts = trials[first], counts[first]
        trials = trials[_pick(counts, _volume(trials), self.need, self.config.n_refine * 2, self.q_s, self.tol_s)]
        self.say(f"indexing: {sum(len(g) for g in groups)} primitive trials, refining {len(trials)}")
        seen: list[tuple[np.ndarray, np.ndarray]] = []
        for p0 in trials:
            if time.monotonic() - t0 > self.config.time_budget_s:
                self.say("indexing: time budget spent in the reduced-basis refinement")
                break
            fit = self.add_triclinic(p0, "triclinic" in systems)
            if fit is None:
                continue
            lat = lattice_from_cell(*cell_from_p6(fit.p))
            red = niggli(lat)
            if any(same_lattice(red, s) for s in seen):
                continue
            seen.append(red)
            for system, centring, std in bravais_lattices(lat):
                if system == "triclinic" or (system not in systems and system not in HIGH_SYSTEMS):
                    continue
                mp = param_map(system)
                p = np.linalg.lstsq(mp, p6_from_lattice(std), rcond=None)[0]
                self.add(system, centring, p)

    def add_triclinic(self, p0: np.ndarray, keep: bool) -> Fit | None:
        ref = refine("triclinic", "P", p0, self.obs, max_unindexed=self.max_unindexed)
        if ref is None:
            return None
        cell = cell_from_p6(ref[0])
        if cell is None:
            return None
        # Report the Niggli cell: refine once more from it so the indices refer to it.
        from_lat = lattice_from_cell(*cell)
        lengths, angles = niggli(from_lat)
        p = p6_from_lattice(lattice_from_cell(*lengths, *angles))
        if keep:
            return self.add("triclinic", "P", p)
        fit = figures("triclinic", "P", ref[0], ref[1], self.obs)
        return fit if fit is not None and fit.n_unindexed20 <= self.max_unindexed else None


def _volume(p6: np.ndarray) -> np.ndarray:
    """Cell volumes (A^3) of (T, 6) metric coefficients; inf where not positive definite."""
    det = np.linalg.det(metric_from_p6(p6))
    return np.where(det > 0, 1 / np.sqrt(np.maximum(det, 1e-300)), np.inf)


def _pick(counts: np.ndarray, vol: np.ndarray, need: int, n: int, q: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Indices of up to ``n`` trials indexing at least ``need`` lines, most lines above chance first
    (a large cell indexes many lines by chance, e.g. a supercell an impurity line)."""
    ok = np.flatnonzero(counts >= need)
    merit = counts[ok] - chance_matches(vol[ok], q, tol)
    return ok[np.argsort(-merit, kind="stable")[:n]]


def _rank(found: list[CellSolution], n_keep: int) -> list[CellSolution]:
    """Merge candidates of the same lattice (keep the most symmetric unless clearly worse) and rank."""
    order = {s: i for i, s in enumerate(SYSTEMS)}
    groups: list[list[tuple[CellSolution, tuple[np.ndarray, np.ndarray]]]] = []
    for sol in sorted(found, key=lambda x: -x.score):
        red = niggli(sol.lattice(), sol.centring)
        for g in groups:
            if same_lattice(g[0][1], red):
                g.append((sol, red))
                break
        else:
            groups.append([(sol, red)])
    best = []
    for g in groups:
        top = g[0][0]
        # With few lines M20 runs into the thousands and its ratios are noise: a symmetric cell with a
        # convincing M20 stands for the group.
        floor = min(0.5 * top.m20, 3 * M20_THRESHOLD)
        ok = [s for s, _ in g if s.m20 >= floor and s.n_indexed >= top.n_indexed - 1]
        pick = min(ok, key=lambda s: (order[s.system], -s.score))
        best.append((top.score, pick))
    # Exact ties (the same predicted lines, e.g. cubic P a/sqrt(2) and I a below N = 14) go to the
    # centred cell: one-atom primitive cubic structures are rare, bcc ones common.
    best.sort(key=lambda x: (-float(f"{x[0]:.9g}"), x[1].centring == "P"))
    return [s for _, s in best[:n_keep]]


def index_peaks(obs: Observed, config: IndexConfig, progress: Callable[[str], None] | None = None
                ) -> list[CellSolution]:
    """Ranked cells (best first) of validated observations; see the module docstring."""
    say = progress or (lambda _msg: None)
    search = _Search(obs, config, say)
    systems = set(config.systems)
    if systems & {"hexagonal", "trigonal"}:
        systems |= {"hexagonal", "trigonal"}
    high = [s for s in HIGH_SYSTEMS if s in systems]
    if high:
        search.high(high)
    # A symmetric cell indexing every line (one may be an impurity's) with a convincing M20 leaves a
    # lower system only a smaller cell to offer (a larger one would lose on Occam): the search is
    # bounded by its primitive volume.
    done = [s for s in search.found if s.n_indexed >= s.n_lines - 1 and s.m20 >= config.stop_m20]
    cap = min((s.volume / CENTRING_POINTS[s.centring] for s in done), default=np.inf) * 0.99
    if config.stop_m20 <= 0:
        cap = np.inf
    for system in ("orthorhombic", "monoclinic"):
        if system in systems:
            search.assigned(system, tuple(systems), cap)
    done = [s for s in search.found if s.n_indexed >= s.n_lines - 1 and s.m20 >= config.stop_m20]
    if "triclinic" in systems and done and config.stop_m20 > 0:
        say(f"indexing: a {done[0].system} cell indexes all lines but at most one with M20 {done[0].m20:.1f}; "
            "the triclinic search skipped")
    elif "triclinic" in systems:
        search.low(tuple(systems))
    found = [s for s in search.found if s.system in systems]
    return _rank(found, config.n_keep)


def index_pattern(d_spacings: Sequence[float] | np.ndarray | None = None, *,
                  two_theta: Sequence[float] | np.ndarray | None = None, wavelength: float | None = None,
                  systems: Sequence[str] = SYSTEMS, tol: float = 0.05, zero_range: float = 0.0,
                  max_lines: int = 30, n_keep: int = 10, config: IndexConfig | None = None,
                  progress: Callable[[str], None] | None = None) -> list[CellSolution]:
    """Index peak positions; solutions ranked best first.

    Args:
        d_spacings: observed d-spacings (Angstrom); or give ``two_theta`` (deg) and ``wavelength`` (Angstrom).
        systems, tol, zero_range, max_lines, n_keep: see :class:`IndexConfig` (ignored when ``config`` is given).
        config: all settings at once.
        progress: called with one-line progress messages.
    """
    if config is None:
        config = IndexConfig(systems=tuple(systems), tol=tol, zero_range=zero_range, max_lines=max_lines,
                             n_keep=n_keep)
    obs = observations(d_spacings, two_theta, wavelength, config.tol, config.zero_range, config.max_lines)
    return index_peaks(obs, config, progress)


def best_cell(d_spacings: Sequence[float] | np.ndarray | None = None, *, source: str = "pattern",
              threshold: float = M20_THRESHOLD, **kwargs) -> CellSolution:
    """Highest-ranked :func:`index_pattern` solution with M20 >= ``threshold``.

    Raises InputError naming ``source`` when none reaches it. ``kwargs`` go to :func:`index_pattern`.
    """
    sols = index_pattern(d_spacings, **kwargs)
    for sol in sols:
        if sol.m20 >= threshold:
            return sol
    best_m20 = max((sol.m20 for sol in sols), default=0.0)
    raise InputError(f"{source}: no cell fits the peak positions (best M20 = {best_m20:.1f} < {threshold:g}); "
                     "give --cell")
