"""Fourier recycling: a candidate's own phases, refined by charge flipping of the measured peaks.

A candidate that fits the pattern roughly has its heavy atoms about right, and those carry most of each
reflection's phase: its structure factors phase the measured peaks better than the map it was read from.
Charge flipping of the measured magnitudes started from the candidate's density
(:func:`powdersolve.maps.flipping.charge_flip`) keeps what is right and moves what is not, the way a
crystallographer completes a partial structure from Fourier maps; atoms read from that map are refined and
ranked with the first candidates (:func:`powdersolve.solve.pipeline.solve`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from powdersolve.cell import metric_family
from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import ModificationError, NoSolutionError
from powdersolve.maps.flipping import FlipConfig, charge_flip
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.predict.steps import PEAK_TOL_Q
from powdersolve.solve.candidate import Candidate
from powdersolve.solve.config import SolveConfig
from powdersolve.solve.from_maps import solve_maps
from powdersolve.solve.rank import Ranking, deadline_passed, merge_rankings
from powdersolve.solve.result import Progress, SolveResult
from powdersolve.structures.crystal import Crystal

#: The shipped flipping on picked peaks (matched to reflections as predict matches them).
RECYCLING_FLIP = FlipConfig(tol=PEAK_TOL_Q)


@dataclass(frozen=True)
class RecycledMap:
    """A map phased from a candidate.

    Attributes:
        grid: (N, N, N) density (e/A^3 on the candidate's scale) on fractional coordinates of ``lattice``.
        lattice: (3, 3) row-vector cell of the candidate (A): its refined, conventional cell.
        label: where the map came from, for the candidates' origins.
    """

    grid: np.ndarray
    lattice: np.ndarray
    label: str


def recycled_map(candidate: Candidate, rank: int, peaks: MeasuredPeaks, grid: int,
                 flip: FlipConfig = RECYCLING_FLIP, round_: int = 1) -> RecycledMap:
    """The measured peaks charge-flipped from the phases of ``candidate``'s refined structure (its CMED at
    ``flip.b_iso``), on an (``grid``,)*3 map of its cell; ``rank`` (1-based) and ``round_`` name it in the label.

    Raises:
        ModificationError: no measured peak falls on a reflection of the candidate's cell.
    """
    crystal = Crystal.from_structure(candidate.result.structure, candidate.spacegroup)
    start = density_grid(crystal, DensityConfig(b_iso=flip.b_iso, grid=grid))
    flipped = charge_flip(start, crystal.lattice, peaks, flip)
    again = f" (round {round_})" if round_ > 1 else ""
    label = f"recycled{again} from candidate {rank} ({candidate.spacegroup_symbol})"
    return RecycledMap(flipped.grid, np.asarray(crystal.lattice, dtype=np.float64), label)


def recycle(result: SolveResult, peaks: MeasuredPeaks, composition: str | None, lattice: np.ndarray,
            config: SolveConfig, say: Progress, deadline: float | None) -> SolveResult:
    """``result`` with the candidates read from the recycled maps of its best ``config.recycle`` candidates
    ranked in; while a round lowers the best Rwp to at most ``config.recycle_gain`` times the round before's
    and it stays above ``config.recycle_above``, the new best is recycled in turn, up to
    ``config.recycle_rounds`` rounds. Nothing is begun after ``deadline`` (``time.perf_counter``; None: no
    limit); never abstains."""
    t0 = time.perf_counter()
    rankings = [Ranking(result.candidates, result.origins, result.notes)]
    n_maps, n_distinct = result.n_maps, result.n_distinct
    todo, best_rwp = list(result.candidates[: config.recycle]), result.best.result.rwp
    ranking = rankings[0]
    for round_ in range(1, config.recycle_rounds + 1):
        for rank, candidate in enumerate(todo, start=1):
            if deadline_passed(deadline):
                late = (f"recycling stopped before candidate {rank}: the time limit ({config.time_limit:g} s) "
                        "was reached")
                say(late)
                rankings.append(Ranking([], [], [late]))
                todo = []
                break
            again = f" (round {round_})" if round_ > 1 else ""
            say(f"recycling{again} candidate {rank} ({candidate.spacegroup_symbol}, Rwp {candidate.result.rwp:.3f}): "
                "charge flipping of the measured peaks from its phases")
            try:
                recycled = recycled_map(candidate, rank, peaks, config.grid, round_=round_)
                more = solve_maps([recycled.grid], [recycled.label], recycled.lattice, composition, result.observed,
                                  replace(config, abstain=False), say, {}, deadline=deadline)
            except (ModificationError, NoSolutionError) as exc:
                say(f"recycling candidate {rank} gave nothing: {exc}")
                continue
            rankings.append(Ranking(more.candidates, more.origins, more.notes))
            n_maps, n_distinct = n_maps + more.n_maps, n_distinct + more.n_distinct
        ranking = merge_rankings(rankings, replace(config.rank_config(), abstain=False), metric_family(lattice),
                                 result.observed.source)
        new_rwp = ranking.candidates[0].result.rwp
        if not todo or new_rwp <= config.recycle_above or new_rwp > config.recycle_gain * best_rwp:
            break
        # A gain this large is a new candidate (every one recycled so far fitted worse): recycle it in turn.
        todo, best_rwp = ranking.candidates[:1], new_rwp
    return replace(result, candidates=ranking.candidates, origins=ranking.origins, notes=ranking.notes,
                   n_maps=n_maps, n_distinct=n_distinct,
                   timings={**result.timings, "recycle": time.perf_counter() - t0})
