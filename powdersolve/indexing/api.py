"""Indexing of a powder pattern: ranked unit cells of all seven crystal systems from peak positions.

Pipeline (all in Q = 1/d^2):

1. one- and two-parameter lattices (cubic P/I/F, hexagonal P, rhombohedral R, tetragonal P/I) from
   exhaustive low-index trial assignment of the first lines (:mod:`.trials`). Cubic goes first: a cubic
   cell that indexes every line (at least ``MIN_LINES_COMPLETE``) with M20 >= ``MIN_M20_COMPLETE``
   ends the search after step 5's second refinement (a lower metric indexing the same lines is the
   same lattice or loses on Occam; a split line would be unindexed);
2. orthorhombic (3 parameters) and monoclinic (4) lattices from exhaustive assignment of 3 or 4 of
   the first lines to low-index reflections of P, C, I and F lattices (:func:`.trials.metric_trials`),
   screened smallest cell first; each refined primitive cell is re-refined with every centring its
   lines allow, in the standard setting spglib finds. When a cell from step 1 indexes every line
   (one may be an impurity's) with M20 >= ``IndexConfig.stop_m20``, only cells with a smaller
   primitive volume are searched: a larger one could not beat it, a smaller one (e.g. a C-centred
   orthorhombic cell under a pseudo-tetragonal P one) may;
3. unless a cell from steps 1-2 indexes every line but at most one with M20 >= ``stop_m20``, the
   triclinic search: trial primitive cells in a reduced reciprocal basis, refined as triclinic, then
   in every Bravais lattice spglib finds in their metric at a few tolerances (:mod:`.reduction`);
4. every trial that indexes enough of the first lines is refined by weighted least squares with a
   zero shift (:mod:`.refine`) and scored by de Wolff M20 and Smith-Snyder F_N;
5. the leading ``N_NEIGHBOURS`` candidates are refined once more from their refined cells (a trial far
   from the right metric can stop in a false minimum), then their index-2 supercells and subcells
   in every Bravais lattice of their metric (the generators of steps 1-3 start from a few low-index
   lines and miss a superstructure whose doubling shows only in weak lines, while its subcell
   indexes most lines), and the leading candidates once more;
6. candidates describing the same lattice (same Niggli cell) are merged, keeping the most symmetric
   one unless its M20 is clearly worse; the rest are ranked by M20 times (fraction of the lines
   indexed) ** (``UNINDEXED_EXPONENT`` max(n, 20) / 20) times ``IndexConfig.occam`` per free metric
   parameter fewer than triclinic (:func:`.solution.solution_of`);
7. with the line intensities known (:func:`index_counts`), the systems with fewer metric parameters than
   the leader's (as many when its M20 is below 20) are searched again letting weak lines (a minor
   impurity's) go unindexed, and such a cell that explains every other line far better goes first
   (:mod:`.strays`). Lines at a common standard's lines, when its strong lines are among the peaks
   (:func:`~powdersolve.diffraction.known_phases.standards_present`), count as weak whatever their
   intensity and may outnumber the sample's.

Each system has a time budget (``IndexConfig.time_budget_s``); a search out of time returns what it has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from powdersolve.diffraction.known_phases import KnownLines, known_phase, standards_hint, standards_present
from powdersolve.errors import InputError
from powdersolve.indexing.metric import SYSTEMS
from powdersolve.indexing.observations import MIN_LINES, Observed, observations
from powdersolve.indexing.pattern import PickedPeaks, pick_peaks
from powdersolve.indexing.reduction import niggli, same_lattice
from powdersolve.indexing.search import HIGH_SYSTEMS, Search
from powdersolve.indexing.solution import CENTRING_POINTS, M20_THRESHOLD, CellSolution, IndexConfig
from powdersolve.indexing.strays import challengers, prefer_despite_weak_strays
from powdersolve.structures.crystal import Crystal

#: Leading candidates whose index-2 supercells and subcells are refined.
N_NEIGHBOURS = 5
#: Fewest lines for which a cubic cell indexing all of them ends the search (:func:`_complete_cubic`).
MIN_LINES_COMPLETE = 6
#: Lowest M20 at which it does. A large cubic cell indexes the lines of a lower-symmetry pattern by
#: chance at M20 40-80 (generated rhombohedral and hexagonal crystals, 30 lines: cubic P a = 17.6 A, I 11.9 A
#: and I 16.4 A) and up to 112 (hcp Hf, 15 lines: cubic P a = 8.75 A), where the true cell fits them better;
#: true cubic cells of generated crystals mostly index at M20 >= 250. Below this the full search runs and
#: the ranking decides: the same answer for a true cubic cell (one of the index development set, M20 142),
#: a few seconds later.
MIN_M20_COMPLETE = 200.0


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


def _complete_cubic(found: Sequence[CellSolution], config: IndexConfig) -> CellSolution | None:
    """A cubic cell that indexes every one of at least ``MIN_LINES_COMPLETE`` lines with M20 >=
    ``MIN_M20_COMPLETE`` (the best such), or None (also when ``config.stop_m20`` is 0: never stop early).

    A lower-symmetry metric that indexes the same lines describes the same lattice (the merge keeps the
    cubic one) or a cell the cubic one beats by Occam, unless some line splits (then the cubic cell does
    not index it) or the cubic cell fits the lines only loosely (a large cell indexing them by chance:
    its M20 is low, and the full search runs).
    """
    if config.stop_m20 <= 0:
        return None
    complete = [s for s in found if s.system == "cubic" and s.n_lines >= MIN_LINES_COMPLETE
                and s.n_indexed == s.n_lines and s.m20 >= MIN_M20_COMPLETE]
    return max(complete, key=lambda s: s.score, default=None)


def _systems_the_lines_allow(obs: Observed, config: IndexConfig, say: Callable[[str], None]) -> IndexConfig:
    """``config``, searching only cubic cells when there are fewer than ``MIN_LINES`` lines (a cell of two or
    more metric parameters and a zero shift would fit so few positions by chance)."""
    if obs.tt.size >= MIN_LINES:
        return config
    if "cubic" not in config.systems:
        raise InputError(f"only {obs.tt.size} peak positions; indexing a non-cubic cell needs at least {MIN_LINES}; "
                         "give --cell")
    say(f"indexing: only {obs.tt.size} lines: only cubic cells searched")
    return replace(config, systems=("cubic",))


def index_peaks(obs: Observed, config: IndexConfig, progress: Callable[[str], None] | None = None
                ) -> list[CellSolution]:
    """Ranked cells (best first) of validated observations; see the module docstring."""
    say = progress or (lambda _msg: None)
    config = _systems_the_lines_allow(obs, config, say)
    search = Search(obs, config, say)
    systems = set(config.systems)
    if systems & {"hexagonal", "trigonal"}:
        systems |= {"hexagonal", "trigonal"}

    def leading(n: int) -> list[CellSolution]:
        return _rank([s for s in search.found if s.system in systems], n)

    high = [s for s in HIGH_SYSTEMS if s in systems]
    if high and high[0] == "cubic":
        search.high(["cubic"])
        complete = _complete_cubic(search.found, config)
        if complete is not None:
            say(f"indexing: a cubic {complete.centring} cell indexes all {complete.n_lines} lines with M20 "
                f"{complete.m20:.1f}; the lower systems not searched")
            search.polish(leading(N_NEIGHBOURS))
            return leading(config.n_keep)
        high = high[1:]
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

    # Step 5: the leading candidates refined to convergence, their supercells and subcells, and the
    # leading ones (perhaps some of those) refined to convergence in turn.
    search.polish(leading(N_NEIGHBOURS))
    search.neighbours(leading(N_NEIGHBOURS), tuple(systems))
    search.polish(leading(N_NEIGHBOURS))
    return _despite_weak_strays(leading(config.n_keep), obs, config, [s for s in HIGH_SYSTEMS if s in systems], say)


def _despite_weak_strays(ranked: list[CellSolution], obs: Observed, config: IndexConfig, high: Sequence[str],
                         say: Callable[[str], None]) -> list[CellSolution]:
    """``ranked``, or a one- or two-parameter cell first that leaves only weak lines (a minor impurity's or a
    present standard's) unindexed and explains the rest far better than the leading cell
    (:func:`.strays.prefer_despite_weak_strays`). The second, lenient search runs only when the pattern has
    weak lines, for the high systems with fewer free metric parameters than the leader's, or as many when the
    leader is unconvincing (:func:`.strays.challengers`: a large cell indexing the impurity's lines by chance)."""
    if not ranked or obs.weak is None or not obs.weak.any():
        return ranked
    fewer = challengers(ranked[0], high)
    if not fewer:
        return ranked
    lenient = Search(obs, config, say, lenient=True)
    lenient.high(fewer)
    out = prefer_despite_weak_strays(ranked, lenient.found, obs, config.impurity_fraction)
    if out[0] is not ranked[0]:
        top = out[0]
        stray = np.all(np.asarray(top.hkl) == 0, axis=1)
        at_standard = int((stray & ~obs.capped()).sum())
        parts = [f"{n} {kind}" for n, kind in ((stray.sum() - at_standard, "weak lines"),
                                               (at_standard, "lines at a standard's lines")) if n]
        which = " and ".join(parts)
        say(f"indexing: the {top.system} {top.centring} cell goes first: it leaves only {which} unindexed "
            f"(a second phase?) at M20 {top.m20:.1f}, against M20 {ranked[0].m20:.1f} of the {ranked[0].system} "
            "cell that indexes more of them")
    return out[: config.n_keep]


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


def index_counts(two_theta: np.ndarray, counts: np.ndarray, wavelength: float, config: IndexConfig,
                 progress: Callable[[str], None] | None = None, strip_kalpha2: bool = False,
                 min_two_theta: float = 5.0, known_phases: tuple[Crystal, ...] = ()
                 ) -> tuple[PickedPeaks, list[CellSolution]]:
    """Index a measured pattern (2-theta deg, counts; wavelength A): its peaks picked by
    :func:`.pattern.pick_peaks` (each step reported to ``progress``), less those at the lines of
    ``known_phases`` (:mod:`powdersolve.diffraction.known_phases`), and the ranked cells, best first."""
    picked = pick_peaks(two_theta, counts, wavelength, strip_kalpha2=strip_kalpha2, min_two_theta=min_two_theta)
    foreign = None
    if not known_phases and (present := standards_present(picked.peaks, picked.wavelength, float(np.max(two_theta)))):
        picked = replace(picked, standards=present, log=(*picked.log, standards_hint(present)))
        # Not removed (a sample's own lines can fall there), but a cell may leave them unindexed as it may
        # leave weak lines (step 7 of the module docstring).
        foreign = KnownLines.of(tuple(known_phase(name) for name in present), picked.wavelength,
                                float(np.max(two_theta)), picked.peaks).peaks_of(picked.peaks)
    if known_phases:
        lines = KnownLines.of(known_phases, picked.wavelength, float(np.max(two_theta)), picked.peaks)
        kept = lines.without(picked.peaks)
        note = (f"{len(picked.peaks) - len(kept)} peaks at lines of the known phases "
                f"({', '.join(lines.names)}) left out")
        picked = replace(picked, peaks=kept, log=(*picked.log, note))
    if progress is not None:
        for line in picked.log:
            progress(line)
    obs = observations(None, picked.peaks.two_theta, picked.wavelength, config.tol, config.zero_range,
                       config.max_lines, picked.peaks.integrated_intensity, config.weak_line, foreign)
    return picked, index_peaks(obs, config, progress)
