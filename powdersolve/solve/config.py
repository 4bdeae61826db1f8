"""Settings of a structure solution: :class:`SolveConfig`, checked once at the boundary."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from powdersolve.errors import InputError
from powdersolve.solve.missed_symmetry import MISSED_SYMMETRY_TIE, MISSED_SYMMETRY_TOLERANCES
from powdersolve.solve.rank import MAX_RWP, RankConfig
from powdersolve.solve.refine import RefineConfig


@dataclass(frozen=True)
class SolveConfig:
    """Settings of :func:`solve`.

    Attributes:
        samples: latent samples drawn (sample 0 is the posterior mean); each gives a candidate.
        grid: density grid points per cell axis.
        max_rwp: abstain when the best refined Rwp (fraction) is above this.
        top_k: candidates kept and written (best first).
        abstain: raise NoSolutionError above ``max_rwp`` (False returns the ranked list anyway).
        include_mean: also read atoms from the mean map over samples.
        min_distance: density maxima closer than this (Angstrom) are one atom.
        symprec: spglib tolerance (Angstrom) when reading atoms from a map.
        refine: refinement settings; the profile (U, V, W) is refined because real instruments differ.
        width_from_peaks: start W at the squared median FWHM (deg^2) of the picked peaks.
        refine_top: when there are more distinct candidates than this, all get a short screening
            refinement (``screen_iter`` L-BFGS iterations per stage, profile fixed, on the pattern
            thinned to 4 points per FWHM) and only the best ``refine_top`` by screening Rwp, and of those
            only the ones within 2x the best screening Rwp (:class:`~powdersolve.solve.rank.RankConfig`),
            are fully refined; 0 refines every one fully.
        screen_iter: L-BFGS iterations per stage of the screening refinement.
        n_z: each map is read for this many of its most plausible formula-unit counts Z.
        n_z_averaged: the same for the symmetry-averaged maps. 2: with 1 one of 24
            generated cubic crystals (PtRh, Fm-3m) lost its match, because its right Z came second.
        max_candidates: most distinct structures refined; those read from the most maps go first.
        rwp_tie: refined fits within this relative Rwp of the best count as equally good, and the
            most symmetric of them ranks first (:func:`prefer_symmetry`).
        family_first: acceptable fits with the symmetry of the cell's metric family rank first
            (:func:`family_first`). On 24 generated trigonal crystals it raised top-1 matches from
            3 to 4 and broke none.
        map_symmetry: for a cubic or hexagonal cell, search the first map (the posterior mean) for the
            space groups it obeys (:func:`powdersolve.maps.symmetry.search_space_groups`), and
            also read atoms from it averaged over each of the ``symmetry_top`` most symmetric
            plausible groups; those candidates are refined first.
        symmetry_top: plausible groups whose averaged maps are read.
        extinction_groups: with ``map_symmetry``, also read atoms from the first map averaged over this
            many of the most symmetric groups of the pattern's best extinction class (systematic
            absences of the picked peaks, :func:`powdersolve.indexing.extinction.cell_space_group_candidates`),
            each in the setting the absences show, relabelled to its standard one; refined first.
            0: the map's own symmetry only.
        modified_map: also read atoms from the density-modified mean map (the measured peaks'
            magnitudes with the map's phases, error-reduction cycles, then cycles averaged over the most
            symmetric space group the map obeys unless ``map_symmetry`` is off;
            :mod:`powdersolve.maps.modification`), at that group's standard origin, with the group's orbits;
            its candidates are refined before all others. On 24 generated trigonal crystals it raised
            top-1 matches from 18 to 20 and on 24 cubic ones kept 22, breaking none.
        flipped_map: where the mean map's phases refined by charge flipping of the measured magnitudes
            (:mod:`powdersolve.maps.flipping`) depart from the mean map, read atoms from the flipped map too,
            and search it, not the mean, for its space group (``map_symmetry``, ``extinction_groups``).
        all_serving_models: when the model is picked automatically and another shipped model serves the
            same lattice (:data:`powdersolve.weights.SERVING_MODELS`: the hexagonal and trigonal models
            both serve hexagonal axes, where indexing cannot tell a trigonal P group from a hexagonal one),
            and the first model's best fit is not an acceptable one in its own crystal system, also read
            atoms from that model's maps; the pattern fit ranks the candidates of both. Staged so: a
            hexagonal model that reads a hexagonal group stands, one that reads a trigonal group defers
            to the trigonal model's reading too.
        alternate_samples: latent samples drawn from each such additional model (at most ``samples``):
            its maps double the reading and refinement time when it draws as many as the first model.
        skip_p1_pairs: when reading candidates, two structures that spglib could only place in P1
            are merged only when one is a copy of the other (:func:`powdersolve.solve.rank.same_sites`),
            without StructureMatcher, which took a quarter of the solve time, mostly on such pairs.
            The shipped models' cells (cubic, hexagonal) are never P1; refined fits are still merged
            with the full matcher.
        workers: candidate refinements run at once (threads); results do not depend on it.
        recycle: where the best fit's Rwp is above ``recycle_above``, the measured peaks are charge-flipped
            from the phases of each of this many best candidates (:mod:`powdersolve.solve.recycling`) and
            the atoms read from those maps refined and ranked with the rest; 0 skips it.
        recycle_above: Rwp (fraction) at or below which the best fit is left as it is: a fit near the noise
            of the pattern has little to gain, and recycling costs a reading and refinement per candidate.
        recycle_rounds: most rounds of recycling: after the first (the ``recycle`` best candidates), the new
            best is recycled again while a round lowers the best Rwp to at most ``recycle_gain`` times the
            round before's and it is still above ``recycle_above`` (a partly right structure phases the
            peaks better each round, as in a crystallographer's Fourier cycles). On 15 generated monoclinic
            crystals (network-free path), over four first passes: 42 of 60 right against 41 with 1, losing
            none (docs/experiments/2026-12-08-refinement-speed-and-recycling-rounds.md).
        recycle_gain: see ``recycle_rounds``.
        symmetry_tolerances: spglib tolerances (A) at which the best candidate is searched for symmetry it
            missed; the most symmetric version that refines as well takes its place
            (:mod:`powdersolve.solve.missed_symmetry`). Empty: not searched.
        symmetry_tie: a symmetric version replaces the best candidate when its Rwp is at most ``1 +
            symmetry_tie`` times the candidate's.
        time_limit: seconds from the start of :func:`solve` after which no further stage begins: no other
            serving model is asked, no candidate is recycled, and a ranking screens and fully refines only its first
            candidate (:func:`powdersolve.solve.rank.rank_structures`); what is under way finishes, and the answer
            so far is ranked (and abstained on) as usual, with a note. None: no limit. 60 s: no solve of the
            generated development sets reached it (``benchmarks/solve_benchmark.py`` reports ``time_limited``),
            while a pseudo-hexagonal monoclinic crystal indexed as a 190-atom rhombohedral cell took 13.5 min
            without it.
    """

    samples: int = 20
    grid: int = 50
    max_rwp: float = MAX_RWP
    top_k: int = 5
    abstain: bool = True
    include_mean: bool = True
    min_distance: float = 0.7
    symprec: float = 0.2
    refine: RefineConfig = field(default_factory=lambda: RefineConfig(refine_profile=True))
    width_from_peaks: bool = True
    refine_top: int = 3
    screen_iter: int = 12
    n_z: int = 2
    n_z_averaged: int = 2
    max_candidates: int = 12
    rwp_tie: float = 0.02
    family_first: bool = True
    map_symmetry: bool = True
    symmetry_top: int = 3
    extinction_groups: int = 2
    modified_map: bool = True
    flipped_map: bool = True
    skip_p1_pairs: bool = True
    all_serving_models: bool = True
    alternate_samples: int = 5
    workers: int = 2
    recycle: int = 2
    recycle_above: float = 0.03
    recycle_rounds: int = 3
    recycle_gain: float = 0.9
    symmetry_tolerances: tuple[float, ...] = MISSED_SYMMETRY_TOLERANCES
    symmetry_tie: float = MISSED_SYMMETRY_TIE
    time_limit: float | None = 60.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.max_rwp) and self.max_rwp > 0):
            raise InputError(f"--max-rwp {self.max_rwp} must be a positive fraction (e.g. 0.35)")
        if not 1 <= int(self.top_k) <= 1000:
            raise InputError(f"top_k {self.top_k} is outside 1-1000")
        if not self.min_distance > 0:
            raise InputError(f"min_distance {self.min_distance} A must be positive")
        if self.max_candidates < 1:
            raise InputError(f"max_candidates {self.max_candidates} must be >= 1")
        if self.refine_top < 0:
            raise InputError(f"--refine-top {self.refine_top} must be 0 (refine all) or more")
        if self.extinction_groups < 0:
            raise InputError(f"extinction_groups {self.extinction_groups} must be 0 (off) or more")
        if self.alternate_samples < 1:
            raise InputError(f"alternate_samples {self.alternate_samples} must be at least 1")
        if self.workers < 1:
            raise InputError(f"workers {self.workers} must be at least 1")
        if self.recycle < 0 or not self.recycle_above >= 0:
            raise InputError(f"--recycle {self.recycle} and recycle_above {self.recycle_above} must be >= 0")
        if self.recycle_rounds < 1 or not 0 < self.recycle_gain <= 1:
            raise InputError(f"recycle_rounds {self.recycle_rounds} must be >= 1 and recycle_gain "
                             f"{self.recycle_gain} in (0, 1]")
        if not all(t > 0 for t in self.symmetry_tolerances) or not self.symmetry_tie >= 0:
            raise InputError(f"symmetry_tolerances {self.symmetry_tolerances} (A) and symmetry_tie "
                             f"{self.symmetry_tie} must be positive")
        if self.time_limit is not None and not self.time_limit > 0:
            raise InputError(f"--time-limit {self.time_limit} must be a positive number of seconds")
        if self.screen_iter < 1:
            raise InputError(f"screen_iter {self.screen_iter} must be at least 1")

    def deadline(self, start: float) -> float | None:
        """The ``time.perf_counter`` reading ``time_limit`` seconds after ``start`` (None: no limit)."""
        return None if self.time_limit is None else start + self.time_limit

    def rank_config(self) -> RankConfig:
        """The ranker's settings (:func:`powdersolve.solve.rank.rank_structures`) these imply."""
        return RankConfig(max_rwp=self.max_rwp, keep=self.top_k, refine=self.refine, abstain=self.abstain,
                          width_from_peaks=self.width_from_peaks, refine_top=self.refine_top,
                          screen_iter=self.screen_iter, max_candidates=self.max_candidates, rwp_tie=self.rwp_tie,
                          family_first=self.family_first, workers=self.workers)

