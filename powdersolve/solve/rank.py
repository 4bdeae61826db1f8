"""The ranker: refine candidate structures against the pattern, drop duplicates, rank them, abstain.

One ranking for every caller (:func:`powdersolve.solve.pipeline.solve` and :func:`rank_candidates`),
with one abstain threshold, :data:`MAX_RWP`, on the background-subtracted, unit-weight Rwp.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np
from pymatgen.core import Structure

from powdersolve.cell import FAMILY_SYSTEMS
from powdersolve.diffraction.leastsq import single_threaded_torch
from powdersolve.errors import InputError, NoSolutionError, TooLargeError
from powdersolve.maps.symmetry import group_operations
from powdersolve.solve.candidate import Candidate, candidate_of, drop_duplicates
from powdersolve.solve.observed import Observed
from powdersolve.solve.refine import RefineConfig, RefineResult, refine
from powdersolve.structures.io import crystal_system

#: Abstain threshold on the background-subtracted, unit-weight Rwp (fraction). A correct structure
#: refined with this package's simple model (one B, Chebyshev background, pseudo-Voigt) reaches
#: ~0.05-0.25 on simulated and typical laboratory data (the exact structure against simulated
#: measured-like Cu patterns, profile refined: ~0.05-0.15), whereas a wrong structure in the right cell
#: leaves most intensity unexplained and stays at 0.4-0.8; 0.35 sits between, erring towards returning a
#: roughly right solution rather than nothing.
MAX_RWP = 0.35
#: Atoms of one species closer than this (A) after a refinement are one atom counted twice: two
#: orbits read from neighbouring density peaks that the fit moved onto each other.
COINCIDENT = 0.5


@dataclass(frozen=True)
class RankConfig:
    """Ranking and abstention settings (defaults: refine every candidate fully, rank by Rwp alone).

    Attributes:
        max_rwp: abstain when the best refined Rwp is above this (fraction).
        keep: most candidates kept (best first).
        symprec: tolerance (A) of the space group reported and written in the CIF.
        refine: settings of each full refinement.
        abstain: raise NoSolutionError above ``max_rwp`` (False returns the ranked list anyway).
        width_from_peaks: start W at the squared median FWHM (deg^2) of the observed peaks.
        refine_top: when there are more candidates than this, all get a short screening refinement
            (``screen_iter`` L-BFGS iterations per stage, profile fixed) and only the best ``refine_top``
            are fully refined; 0 refines every one fully.
        screen_iter: L-BFGS iterations per stage of the screening refinement.
        max_candidates: most candidates refined (None: all).
        rwp_tie: fits within this relative Rwp of the best count as equally good, and the most
            symmetric of them ranks first (:func:`prefer_symmetry`); 0 ranks by Rwp alone.
        family_first: acceptable fits with the symmetry of the cell's metric family rank first
            (:func:`family_first`).
        screen_ratio: of the best ``refine_top`` screened candidates, only those within this factor of the
            best screening Rwp are fully refined (a fit leaving twice the misfit after screening is a
            different structure, not one short of convergence).
        screen_points_per_fwhm: the screening fits use the pattern thinned to about this many points per
            median FWHM (:meth:`Observed.thinned`); the full fits use every point.
        full_from_screened: a full refinement starts from its screening fit (structure, zero shift, B)
            instead of from the candidate as read.
        workers: candidates refined at once, each in its own thread (torch releases the interpreter in
            its kernels and backward passes); the results do not depend on it.
    """

    max_rwp: float = MAX_RWP
    keep: int = 5
    symprec: float = 0.1
    refine: RefineConfig = field(default_factory=RefineConfig)
    abstain: bool = True
    width_from_peaks: bool = False
    refine_top: int = 0
    screen_iter: int = 12
    max_candidates: int | None = None
    rwp_tie: float = 0.0
    family_first: bool = False
    screen_ratio: float = 2.0
    screen_points_per_fwhm: float = 4.0
    full_from_screened: bool = True
    workers: int = 1


@dataclass(frozen=True)
class Ranking:
    """Ranked candidates: best first (at most ``keep``), the labels of the maps each came from, notes."""

    candidates: list[Candidate]
    origins: list[list[str]]
    notes: list[str]


def refine_settings(config: RankConfig, observed: Observed) -> RefineConfig:
    """The full refinement's settings for ``observed``: ``config.refine``, W started at the peaks' width when asked."""
    cfg = config.refine
    if config.width_from_peaks and observed.fwhm is not None and np.isfinite(observed.fwhm) and observed.fwhm > 0:
        # Starting from the measured width keeps the first (positions-only) stage from fitting a
        # wrongly sized peak; U and V start at zero and refine later.
        cfg = replace(cfg, w=float(np.clip(observed.fwhm, 0.01, 2.0)) ** 2)
    return cfg


def _finite(res: RefineResult) -> bool:
    s = res.structure
    return bool(np.isfinite(res.rwp) and np.all(np.isfinite(s.lattice.matrix)) and np.all(np.isfinite(s.frac_coords)))


def refine_safely(structure: Structure, observed: Observed, config: RefineConfig) -> RefineResult | None:
    """Refine, falling back to fewer free parameters when a fit diverges (NaN); None when every try fails.

    A wrong starting structure can drive the Caglioti widths or the cell to a non-physical point where
    the pattern is NaN; the fit is then retried with the profile fixed, then with only the scale, zero
    and B free. A structure too large to refine (:class:`TooLargeError`) gives None at once.
    """
    tries = (config, replace(config, refine_profile=False),
             replace(config, refine_profile=False, refine_lattice=False, refine_coords=False))
    for cfg in tries:
        try:
            res = refine(structure, observed.two_theta, observed.counts, observed.wavelength, observed.sigma, cfg)
        except TooLargeError:
            return None  # a candidate read in a huge cell: the others still stand
        except InputError:
            raise
        except (ValueError, RuntimeError, np.linalg.LinAlgError):  # a singular or diverged fit
            continue
        if _finite(res):
            return res
    return None


def merge_coincident(structure: Structure, tol: float = COINCIDENT) -> Structure | None:
    """``structure`` with each cluster of same-species atoms closer than ``tol`` (A) kept as its first
    atom, or None when no two such atoms are that close.

    A doubled atom scales every structure factor of its site by two, which the refined scale absorbs,
    so such a candidate can fit the pattern as well as the truth while stating twice the atoms.
    """
    if len(structure) < 2:
        return None
    d = structure.distance_matrix
    species = np.array([str(sp) for sp in structure.species])
    same = species[:, None] == species[None, :]
    close = (d < tol) & same & ~np.eye(len(structure), dtype=bool)
    if not close.any():
        return None
    drop = set()
    for i in range(len(structure)):
        if i not in drop:
            drop |= {int(j) for j in np.flatnonzero(close[i]) if j > i}
    return Structure.from_sites([site for k, site in enumerate(structure) if k not in drop])


#: What a refinement not begun for the time limit gives (``None`` is a refinement that failed).
_LATE = object()


def deadline_passed(deadline: float | None) -> bool:
    """Whether ``deadline`` (a ``time.perf_counter`` reading; None: no limit) has passed."""
    return deadline is not None and time.perf_counter() > deadline


def _refine_merged(structure: Structure, observed: Observed, config: RefineConfig) -> RefineResult | None:
    """:func:`refine_safely`, then once more from the result with coincident atoms merged, if it has any
    and merging keeps the formula (a merge that changes it would give a candidate of another compound)."""
    res = refine_safely(structure, observed, config)
    merged = merge_coincident(res.structure) if res is not None else None
    if merged is None or merged.composition.reduced_composition != structure.composition.reduced_composition:
        return res
    return refine_safely(merged, observed, config)


@cache
def point_group_order(spacegroup: int) -> int:
    """Operations of the crystal class of an international space-group number (1 for P1, 48 for m-3m)."""
    # Distinct rotations of the group's spglib operations: pymatgen's PointGroup object took ~0.1 s a call.
    rotations, _, _ = group_operations(int(spacegroup))
    return len(np.unique(rotations.reshape(len(rotations), 9), axis=0))


def in_family(candidate: Candidate, family: str | None) -> bool:
    """Whether the candidate's space group belongs to the crystal family of the cell's metric."""
    return crystal_system(max(candidate.spacegroup, 1)) in FAMILY_SYSTEMS.get(family or "", ())


def family_first(candidates: list[Candidate], family: str | None, max_rwp: float, ratio: float = 2.0
                 ) -> list[Candidate]:
    """Candidates whose symmetry belongs to the cell's metric ``family`` ('cubic', 'hexagonal') and
    that fit acceptably rank before the others, each group in its given order.

    Acceptable: fully refined (a screening Rwp is not comparable), Rwp <= ``max_rwp`` and at most
    ``ratio`` times the best fully refined Rwp (a fit leaving several times more of the pattern
    unexplained is not the same structure with fewer parameters).

    A cell whose metric is exactly cubic or hexagonal almost always holds a structure of that
    crystal family; a P1 (or other lower-symmetry) model in it has many more free coordinates and
    can fit a powder pattern as well as the truth while being wrong.
    """
    if not FAMILY_SYSTEMS.get(family or ""):
        return candidates
    refined = [c.result.rwp for c in candidates if not c.screened_only]
    if not refined:
        return candidates
    limit = min(max_rwp, ratio * min(refined))
    good = [c for c in candidates if not c.screened_only and c.result.rwp <= limit and in_family(c, family)]
    return good + [c for c in candidates if c not in good]


def prefer_symmetry(candidates: list[Candidate], rwp_tie: float) -> list[Candidate]:
    """Candidates in ranking order: Rwp, except that fits as good as the best within ``rwp_tie``
    (relative) go highest point-group order first.

    The usual crystallographic rule: of models that fit the data equally well, report the most
    symmetric; a subgroup description of the same structure has more free parameters and always
    fits at least as well. Only the fully refined candidates at the head of the list are reordered.
    """
    if not candidates or rwp_tie <= 0:
        return candidates
    limit = candidates[0].result.rwp * (1 + rwp_tie)
    head = [c for c in candidates if not c.screened_only and c.result.rwp <= limit]
    rest = [c for c in candidates if c not in head]
    head.sort(key=lambda c: (-point_group_order(c.spacegroup), c.result.rwp))
    return head + rest


def rank_structures(structures: Sequence[Structure], origins: Sequence[Sequence[str]], observed: Observed,
                    config: RankConfig, family: str | None = None, n_priority: int = 0,
                    deadline: float | None = None) -> Ranking:
    """Refine, deduplicate and rank ``structures`` against ``observed``; abstain (NoSolutionError) per ``config``.

    At most ``config.max_candidates`` are refined; above ``config.refine_top`` all are screened and
    only the best fully refined; a diverged refinement is retried with fewer parameters and else
    dropped; refined fits are sorted by Rwp and StructureMatcher duplicates dropped, keeping the
    better fit; equally good fits go most symmetric first and, with ``config.family_first``,
    in-family fits before the others. The first ``n_priority`` structures (read from
    symmetry-averaged maps) are refined on top of ``config.max_candidates`` others. After ``deadline`` (a
    ``time.perf_counter`` reading; None: no limit) no refinement begins but the first screening and the first
    full refinement, so a late ranking still ranks something.
    """
    if not structures:
        raise NoSolutionError(f"no solution: no candidate structure for {observed.source} (no density map gave "
                              "atoms); check the composition and cell, or sample more candidates")
    notes: list[str] = []
    if config.max_candidates is not None and len(structures) > config.max_candidates + n_priority:
        cap = config.max_candidates + n_priority
        notes.append(f"{len(structures) - cap} of {len(structures)} distinct candidates "
                     f"(read from the fewest maps) not refined: at most {cap} are")
        structures, origins = structures[:cap], origins[:cap]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refined = _refine_all(structures, origins, observed, config, family, notes, deadline)
    distinct = order_candidates(refined, config, family)
    if not distinct:
        raise NoSolutionError(f"no solution: none of {len(structures)} candidates for {observed.source} could be "
                              "refined; check composition, cell and wavelength")
    abstain_if_poor(distinct[0].result.rwp, len(structures), observed.source, config)
    ranked = distinct[: config.keep]
    return Ranking(ranked, [list(origins[c.source]) for c in ranked], notes)


def order_candidates(candidates: Sequence[Candidate], config: RankConfig, family: str | None) -> list[Candidate]:
    """Refined ``candidates`` (fully refined by Rwp, then screened-only) in ranking order: StructureMatcher
    duplicates dropped (the better fit kept), equally good fits most symmetric first, and with
    ``config.family_first`` acceptable in-family fits before the others."""
    distinct = prefer_symmetry(drop_duplicates(candidates), config.rwp_tie)
    return family_first(distinct, family, config.max_rwp) if config.family_first else distinct


def merge_rankings(rankings: Sequence[Ranking], config: RankConfig, family: str | None, source: str) -> Ranking:
    """One ranking of the candidates of several (each already refined against the same pattern ``source``),
    ordered as :func:`rank_structures` orders one; abstains per ``config``. Each candidate's ``source`` is
    renumbered to its place in the merged list, and its origins travel with it."""
    pairs = [(c, list(o)) for r in rankings for c, o in zip(r.candidates, r.origins, strict=True)]
    # Screened-only fits rank after the fully refined ones, as within one ranking.
    pairs.sort(key=lambda p: (p[0].screened_only, p[0].result.rwp))
    merged = [replace(c, source=i) for i, (c, _) in enumerate(pairs)]
    ordered = order_candidates(merged, config, family)
    notes = [n for r in rankings for n in r.notes]
    if not ordered:
        raise NoSolutionError(f"no solution: no candidate structure for {source} refined")
    abstain_if_poor(ordered[0].result.rwp, len(merged), source, config)
    ranked = ordered[: config.keep]
    return Ranking(ranked, [pairs[c.source][1] for c in ranked], notes)


def abstain_if_poor(best_rwp: float, n_candidates: int, source: str, config: RankConfig) -> None:
    """Raise NoSolutionError when ``config.abstain`` and the best Rwp is above ``config.max_rwp``."""
    if config.abstain and not best_rwp <= config.max_rwp:
        raise NoSolutionError(
            f"no solution: best Rwp {best_rwp:.3f} > threshold {config.max_rwp:.3f} for {source} "
            f"({n_candidates} distinct candidates), the abstain threshold; check composition, cell and "
            "wavelength, or raise --max-rwp")


def _refine_all(structures: Sequence[Structure], origins: Sequence[Sequence[str]], observed: Observed,
                config: RankConfig, family: str | None, notes: list[str], deadline: float | None
                ) -> list[Candidate]:
    """Candidates best first: the fully refined by Rwp, then the screened-only ones by screening Rwp; after
    ``deadline`` only the first of each stage begins (:func:`rank_structures`)."""
    rcfg = refine_settings(config, observed)

    def in_time(i: int) -> bool:
        return i == 0 or not deadline_passed(deadline)

    screened: dict[int, RefineResult] = {}
    as_screened: dict[int, Candidate] = {}  # spglib runs once per screened candidate

    def screened_candidate(i: int) -> Candidate:
        if i not in as_screened:
            as_screened[i] = candidate_of(screened[i], i, screened_only=True, symprec=config.symprec)
        return as_screened[i]

    full = list(range(len(structures)))
    with ThreadPoolExecutor(max_workers=max(1, config.workers)) as pool, single_threaded_torch():
        if config.refine_top and len(structures) > config.refine_top:
            # A short fit already separates the right structure (Rwp ~0.1) from wrong ones (> 0.3);
            # the full fit, ~10x the cost, is spent on the few best.
            quick = replace(rcfg, max_iter=config.screen_iter, refine_profile=False)
            coarse = observed.thinned(config.screen_points_per_fwhm)
            fits = list(pool.map(lambda i: _refine_merged(structures[i], coarse, quick) if in_time(i) else _LATE,
                                 range(len(structures))))
            if n_late := sum(res is _LATE for res in fits):
                notes.append(f"{n_late} of {len(structures)} candidates not screened: the time limit was reached")
            screened = {i: res for i, res in enumerate(fits) if isinstance(res, RefineResult)}
            by_rwp = sorted(screened, key=lambda i: screened[i].rwp)
            limit = config.screen_ratio * screened[by_rwp[0]].rwp if by_rwp else np.inf
            full = [i for i in by_rwp[: config.refine_top] if screened[i].rwp <= limit]
            if config.family_first and family in FAMILY_SYSTEMS:
                # The best in-family screened fit is also refined fully, so family_first can weigh it.
                best_in_family = next((i for i in by_rwp if in_family(screened_candidate(i), family)), None)
                if best_in_family is not None and best_in_family not in full:
                    full.append(best_in_family)
            notes.append(f"{len(structures)} candidates screened, the best {len(full)} fully refined")
        starts = [_full_start(structures[i], screened.get(i), rcfg, config.full_from_screened) for i in full]
        results = list(pool.map(lambda j: _refine_merged(starts[j][0], observed, starts[j][1]) if in_time(j)
                                else _LATE, range(len(starts))))
    refined: list[Candidate] = []
    late: set[int] = set()
    for i, res in zip(full, results, strict=True):
        if res is _LATE:
            late.add(i)
            notes.append(f"candidate from {', '.join(origins[i])} not fully refined: the time limit was reached")
            continue
        if res is None:
            notes.append(f"candidate from {', '.join(origins[i])} did not refine (diverged or too large); dropped")
            continue
        refined.append(candidate_of(res, i, symprec=config.symprec))
    # Those left unrefined for the time limit rank with the screened-only ones.
    rest = sorted((i for i in screened if i not in full or i in late), key=lambda i: screened[i].rwp)
    refined.sort(key=lambda c: c.result.rwp)
    # Screened-only candidates rank after the fully refined ones: their Rwp is not comparable.
    return refined + [screened_candidate(i) for i in rest]


def _full_start(structure: Structure, screened: RefineResult | None, config: RefineConfig, warm: bool
                ) -> tuple[Structure, RefineConfig]:
    """Where a full refinement starts: with ``warm``, the screening fit's structure, zero shift and B (the
    full fit then only finishes what screening began), else ``structure`` and ``config`` as given."""
    if not warm or screened is None:
        return structure, config
    return screened.structure, replace(config, zero_start=screened.zero_shift, zero_search=0.0,
                                       b_iso=screened.b_iso)


def rank_candidates(structures: Sequence[Structure], two_theta: np.ndarray, observed: np.ndarray,
                    wavelength: float, sigma: np.ndarray | None = None, config: RankConfig | None = None,
                    *, source: str = "pattern", abstain: bool = True) -> list[Candidate]:
    """:func:`rank_structures` of ``structures`` against a profile (2-theta deg, intensities, wavelength A,
    optional uncertainties ``sigma``): refined, deduplicated, ranked best first.

    Raises :class:`NoSolutionError` when there is no candidate, none refines, or (with ``abstain``) the
    best Rwp is above ``config.max_rwp``; ``source`` names the pattern in that message.
    """
    cfg = replace(config or RankConfig(), abstain=abstain)
    obs = Observed(np.asarray(two_theta, np.float64), np.asarray(observed, np.float64), float(wavelength), source,
                   sigma=None if sigma is None else np.asarray(sigma, np.float64))
    return rank_structures(structures, [[f"input {i}"] for i in range(len(structures))], obs, cfg).candidates
