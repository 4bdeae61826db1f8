"""Structure solution end to end: pattern -> density samples -> atoms -> refined, ranked candidates.

:func:`solve` runs :func:`powdersolve.predict.predict` with every latent sample kept, reads atoms from
the posterior-mean map and from each sample map (:func:`powdersolve.solve.atoms.density_to_structure`),
merges identical structures (pymatgen StructureMatcher) so each distinct candidate is refined once,
refines and ranks them by Rwp against the preprocessed pattern (as :func:`powdersolve.solve.rank.rank_candidates`)
and abstains with :class:`~powdersolve.errors.NoSolutionError` when the best Rwp is above the threshold.

The observed profile is the preprocessed one (range cut, K-alpha2 stripped, background removed): the
refinement models a single wavelength, which after stripping is K-alpha1. Rwp is therefore a
background-subtracted Rwp with unit weights (the processed values are not counts any more), which is
stricter than the conventional one computed with the background included.

:func:`solve_from_grids` does the same from given density grids (e.g. the exact CMED: the "oracle"
ceiling of the density -> structure stage) without a model. :func:`write_solve_outputs` writes
candidates/rank_XX.cif, refined.cif, solution.json, fit.png and the density maps atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from powdersolve.composition import parse_composition
from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import InputError, ModificationError, NoSolutionError
from powdersolve.fileio import atomic_output_dir, atomic_write_text
from powdersolve.formats import Pattern, read_pattern
from powdersolve.formats.maps import write_ccp4
from powdersolve.modification import ModificationConfig
from powdersolve.predict import PredictConfig, Prediction, modify_prediction, predict, save_npy
from powdersolve.solve.atoms import FAMILY_SYSTEMS, density_to_structures, lattice_family
from powdersolve.solve.mapsymmetry import group_operations, plausible_groups_of, symmetrise_map
from powdersolve.solve.origin import align_to_map
from powdersolve.solve.rank import (
    Candidate,
    DistinctStructures,
    RankConfig,
    _spacegroup,
    drop_duplicates,
    write_solutions,
)
from powdersolve.solve.refine import RefineConfig, RefineResult, plot_fit, refine
from powdersolve.structures.crystal import Crystal
from powdersolve.structures.io import crystal_system

Progress = Callable[[str], None]

#: Default abstain threshold on the background-subtracted, unit-weight Rwp (fraction). The exact
#: structure refined against simulated measured-like Cu patterns (Caglioti widths, K-alpha2 stripped,
#: SNIP background, Poisson noise) reaches ~0.05-0.15 with the profile refined; wrong structures in the
#: right cell leave most peak intensity unexplained (> 0.4).
DEFAULT_MAX_RWP = 0.35


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
            refinement (``screen_iter`` L-BFGS iterations per stage, profile fixed) and only the
            best ``refine_top`` by screening Rwp are fully refined; 0 refines every one fully.
        screen_iter: L-BFGS iterations per stage of the screening refinement.
        n_z: each map is read for this many of its most plausible formula-unit counts Z.
        n_z_averaged: the same for the symmetry-averaged maps. 2: with 1 (session 9) one of 24
            generated cubic crystals (PtRh, Fm-3m) lost its match, because its right Z came second.
        max_candidates: most distinct structures refined; those read from the most maps go first.
        rwp_tie: refined fits within this relative Rwp of the best count as equally good, and the
            most symmetric of them ranks first (:func:`prefer_symmetry`).
        family_first: acceptable fits with the symmetry of the cell's metric family rank first
            (:func:`family_first`). On 24 generated trigonal crystals it raised top-1 matches from
            3 to 4 and broke none.
        map_symmetry: for a cubic or hexagonal cell, search the first map (the posterior mean) for the
            space groups it obeys (:func:`powdersolve.solve.mapsymmetry.search_space_groups`), and
            also read atoms from it averaged over each of the ``symmetry_top`` most symmetric
            plausible groups; those candidates are refined first.
        symmetry_top: plausible groups whose averaged maps are read.
        modified_map: also read atoms from the density-modified mean map (the measured peaks'
            magnitudes with the map's phases, error-reduction cycles, then cycles averaged over the most
            symmetric space group the map obeys unless ``map_symmetry`` is off;
            :mod:`powdersolve.modification`), at that group's standard origin, with the group's orbits;
            its candidates are refined before all others. On 24 generated trigonal crystals it raised
            top-1 matches from 18 to 20 and on 24 cubic ones kept 22, breaking none (session 17).
        skip_p1_pairs: when reading candidates, two structures that spglib could only place in P1
            are merged only when one is a copy of the other (:func:`powdersolve.solve.rank.same_sites`),
            without StructureMatcher, which took a quarter of the solve time, mostly on such pairs.
            The shipped models' cells (cubic, hexagonal) are never P1; refined fits are still merged
            with the full matcher.
    """

    samples: int = 20
    grid: int = 50
    max_rwp: float = DEFAULT_MAX_RWP
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
    modified_map: bool = True
    skip_p1_pairs: bool = True

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
        if self.screen_iter < 1:
            raise InputError(f"screen_iter {self.screen_iter} must be at least 1")


@dataclass(frozen=True)
class Observed:
    """The profile the candidates are refined against.

    Attributes:
        two_theta: (n,) degrees; counts: (n,) processed intensities (background removed).
        wavelength: Angstrom, K-alpha1 after stripping, else the file's / argument's.
        source: the pattern file; fwhm: median FWHM of the picked peaks (deg) or None.
    """

    two_theta: np.ndarray
    counts: np.ndarray
    wavelength: float
    source: str
    fwhm: float | None = None


@dataclass
class SolveResult:
    """Ranked, refined candidates.

    Attributes:
        candidates: distinct refined candidates, best (lowest Rwp) first.
        origins: per candidate, the maps it was read from ('mean', 'sample 3', ...).
        observed: the profile refined against.
        prediction: the model's prediction (None for :func:`solve_from_grids`).
        composition: the composition text given, or None.
        species_note: how species were chosen when the composition was partial or missing ('' otherwise).
        notes: anything else worth telling (maps without atoms, overlaps).
        n_maps: maps read; n_distinct: distinct structures refined.
        timings: seconds per step.
    """

    candidates: list[Candidate]
    origins: list[list[str]]
    observed: Observed
    prediction: Prediction | None
    composition: str | None
    species_note: str
    notes: list[str]
    n_maps: int
    n_distinct: int
    timings: dict[str, float]
    config: SolveConfig

    @property
    def best(self) -> Candidate:
        """The top-ranked candidate."""
        return self.candidates[0]

    def solved_density(self, rank: int = 1, grid: int | None = None, b_iso: float = 8.0) -> np.ndarray:
        """CMED (e/A^3, B = ``b_iso`` A^2) of the candidate of this rank on the N^3 fractional grid.

        With a prediction the structure is first moved to the origin and hand of the network's mean map
        (:func:`powdersolve.solve.origin.align_to_map`), so the two maps overlay; N defaults to the
        prediction's grid (else ``config.grid``).
        """
        if not 1 <= rank <= len(self.candidates):
            raise InputError(f"rank {rank} is outside 1-{len(self.candidates)}")
        structure = self.candidates[rank - 1].result.structure
        pred = self.prediction
        n = grid or (pred.mean.shape[0] if pred is not None else self.config.grid)
        if pred is not None:
            structure = align_to_map(structure, pred.mean, b_iso)
        return density_grid(Crystal.from_structure(structure, 1), DensityConfig(b_iso=b_iso, grid=n))

    def summary(self) -> dict:
        """JSON-ready description: candidates (formula, space group, Rwp, GoF, atoms), inputs, cell, timings."""
        cands = []
        for k, (c, org) in enumerate(zip(self.candidates, self.origins), start=1):
            cands.append(dict(rank=k, **c.summary(), from_maps=org, cif=f"candidates/rank_{k:02d}.cif"))
        pred = self.prediction
        cell = None
        if pred is not None:
            a, b, c, al, be, ga = pred.cell
            cell = {"a": a, "b": b, "c": c, "alpha": al, "beta": be, "gamma": ga, "source": pred.cell_source,
                    "indexing": pred.indexing, "system": pred.system}
        return {
            "candidates": cands,
            "inputs": {"pattern": self.observed.source, "composition": self.composition,
                       "wavelength_A": pred.wavelength if pred is not None else {"effective": self.observed.wavelength},
                       "samples": self.config.samples, "grid": self.config.grid},
            "cell": cell,
            "model": None if pred is None else {key: pred.model.get(key) for key in ("weights", "sha256", "system")},
            "abstain": {"max_rwp": self.config.max_rwp, "best_rwp": round(self.best.result.rwp, 6),
                        "rwp_definition": "background-subtracted profile, unit weights, fraction"},
            "maps_read": self.n_maps, "distinct_structures_refined": self.n_distinct,
            "species_note": self.species_note, "notes": self.notes,
            "processing": None if pred is None else pred.processing,
            "modification": None if pred is None else pred.modification,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }


# ------------------------------------------------------------------------------------------- pieces


def observed_profile(pattern: str | os.PathLike | Pattern, config: PredictConfig | None = None) -> Observed:
    """Read and preprocess ``pattern`` exactly as :func:`powdersolve.predict.predict` does (no model needed)."""
    config = config or PredictConfig()
    from powdersolve.diffraction.peaks import find_peaks
    from powdersolve.preprocess import PreprocessConfig, doublet_for, preprocess

    pat = pattern if isinstance(pattern, Pattern) else read_pattern(pattern, config.format)
    if pat.wavelength is not None:
        lam = float(pat.wavelength)
    elif config.wavelength is not None:
        lam = float(config.wavelength)
    else:
        raise InputError(f"{pat.source}: the file does not state its wavelength; pass --wavelength")
    strip = config.strip_kalpha2
    if strip:
        try:
            doublet_for(lam)
        except InputError:
            strip = False
    pcfg = PreprocessConfig(min_two_theta=config.min_two_theta, zero_shift=config.zero_shift, strip_kalpha2=strip,
                            background="snip" if config.background else None)
    tt, y, _ = preprocess(pat.two_theta, pat.counts, lam, pcfg)
    lam_eff = doublet_for(lam)[0] if strip else lam
    peaks = find_peaks(tt, y)
    fwhm = float(np.median(peaks.fwhm)) if len(peaks) else None
    return Observed(tt, y, lam_eff, str(pat.source), fwhm)


def _observed_from_prediction(pred: Prediction) -> Observed:
    tt, y = pred.processed
    fwhm = float(np.median(pred.peaks.fwhm)) if len(pred.peaks) else None
    return Observed(np.asarray(tt, np.float64), np.asarray(y, np.float64), float(pred.wavelength["effective"]),
                    pred.source, fwhm)


def composition_for_atoms(text: str | None) -> tuple[dict[str, float] | None, bool]:
    """(element -> amount or None, ratios_known) for :func:`density_to_structure` from the user's text."""
    if not text:
        return None, False
    parsed = parse_composition(text)
    return dict(parsed.amounts), bool(parsed.ratios_known)


def candidates_from_grids(grids: Sequence[np.ndarray] | np.ndarray, lattice: np.ndarray,
                          composition: dict[str, float] | None, *, ratios_known: bool = True,
                          labels: Sequence[str] | None = None, min_distance: float = 0.7, symprec: float = 0.2,
                          n_z: int = 2, n_z_averaged: int = 2, n_first: int = 0,
                          spacegroups: Sequence[int | None] | None = None,
                          skip_p1_pairs: bool = False
                          ) -> tuple[list[Structure], list[list[str]], str, list[str], int]:
    """Distinct structures read from density grids (e/A^3, fractional axes) in the cell ``lattice`` (rows, A).

    Each map is read for its ``n_z`` (averaged maps: ``n_z_averaged``) most plausible numbers of formula units.
    Returns (structures, the labels of the maps each came from, species note, notes, how many come
    first because they were read from the first ``n_first`` maps). Maps that give no
    atom are skipped with a note; identical structures (StructureMatcher, same formula) are merged,
    first occurrence kept, so the refinement runs once per distinct structure. Structures are ordered
    by the number of maps that gave them (consensus first), except that those read from the first
    ``n_first`` maps (symmetry-averaged ones) come before all others. ``spacegroups``: per map, the
    group it was averaged over (its atoms are read as whole orbits), or None.
    ``skip_p1_pairs``: see :class:`SolveConfig`.
    """
    labels = list(labels) if labels is not None else [f"map {i}" for i in range(len(grids))]
    seen = DistinctStructures()
    structures: list[Structure] = []
    origins: list[list[str]] = []
    species_note = ""
    notes: list[str] = []
    failed: list[str] = []
    priority: list[bool] = []
    for m, (grid, label) in enumerate(zip(grids, labels)):
        try:
            group = spacegroups[m] if spacegroups is not None else None
            results = density_to_structures(grid, lattice, composition, ratios_known=ratios_known,
                                            min_distance=min_distance, symprec=symprec,
                                            n_z=n_z if group is None else n_z_averaged, spacegroup=group)
        except InputError as exc:
            failed.append(f"{label} ({exc})")
            continue
        for k, res in enumerate(results):
            species_note = species_note or res.inferred_species_note
            notes += [n for n in res.notes if n not in notes]
            s = res.structure
            tag = label if k == 0 else f"{label} (Z={res.z_formula_units})"
            # A P1 reading is noise that no symmetry could place; the matcher, slowest on such pairs,
            # is not asked to merge two of them.
            same = seen.index(s, noisy=skip_p1_pairs and res.spacegroup == 1)
            if same is None:
                structures.append(s)
                origins.append([tag])
                priority.append(m < n_first)
            else:
                origins[same].append(tag)
                priority[same] |= m < n_first
    # Consensus first: a structure read from many samples is the likelier one to screen.
    order = sorted(range(len(structures)), key=lambda i: (not priority[i], -len(origins[i])))
    structures, origins = [structures[i] for i in order], [origins[i] for i in order]
    if failed:
        more = "; ..." if len(failed) > 3 else ""
        notes.append(f"{len(failed)} map(s) gave no atoms: " + "; ".join(failed[:3]) + more)
    return structures, origins, species_note, notes, sum(priority)


def symmetrised_maps(grid: np.ndarray, lattice: np.ndarray, label: str, top: int = 3
                     ) -> tuple[list[np.ndarray], list[str], list[int]]:
    """``grid`` averaged over each of the ``top`` most symmetric space groups it plausibly obeys.

    Only for cells of the cubic or hexagonal metric (others return nothing). Labels say the group
    and its correlation, e.g. 'mean averaged over P3_121 (cc_min 0.83)'; the groups' numbers come
    third. The averaged maps are in each group's standard origin.
    """
    grid = np.asarray(grid, dtype=np.float64)
    try:
        found = plausible_groups_of(grid, lattice, top)
    except InputError:  # a grid whose steps differ along axes the group's rotations mix
        return [], [], []
    maps = [symmetrise_map(grid, g.number, g.origin) for g in found]
    labels = [f"{label} averaged over {g.symbol} (cc_min {g.cc_min:.2f})" for g in found]
    return maps, labels, [g.number for g in found]


def _refine_config(config: SolveConfig, observed: Observed) -> RefineConfig:
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
    and B free.
    """
    tries = (config, replace(config, refine_profile=False),
             replace(config, refine_profile=False, refine_lattice=False, refine_coords=False))
    for cfg in tries:
        try:
            res = refine(structure, observed.two_theta, observed.counts, observed.wavelength, None, cfg)
        except InputError:
            raise
        except (ValueError, RuntimeError, np.linalg.LinAlgError):  # a singular or diverged fit
            continue
        if _finite(res):
            return res
    return None


def _candidate(res: RefineResult, source: int, screened_only: bool = False) -> Candidate:
    symprec = RankConfig().symprec
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            std = SpacegroupAnalyzer(res.structure, symprec=symprec).get_refined_structure()
        # A candidate refined in a larger setting (e.g. hexagonal axes of a rhombohedral subgroup)
        # is reported in the standard conventional cell of the symmetry it refined to.
        if len(std) < len(res.structure):
            res = replace(res, structure=std)
    except Exception:  # spglib gives up on some near-degenerate inputs: keep the refined cell
        pass
    sg, sym = _spacegroup(res.structure, symprec)
    return Candidate(res, source, res.structure.composition.reduced_formula, sg, sym, len(res.structure), screened_only)


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
                    config: SolveConfig, family: str | None = None, n_priority: int = 0
                    ) -> tuple[list[Candidate], list[list[str]], list[str]]:
    """Refine, deduplicate and rank ``structures`` against ``observed``; abstain (NoSolutionError) per ``config``.

    Like :func:`powdersolve.solve.rank.rank_candidates` (refine, sort by Rwp, drop StructureMatcher
    duplicates keeping the better fit), plus: at most ``config.max_candidates`` are refined; above
    ``config.refine_top`` all are screened and only the best fully refined; a diverged refinement is
    retried with fewer parameters and else dropped; equally good fits go most symmetric first and,
    with ``config.family_first``, in-family fits before the others. The first ``n_priority``
    structures (read from symmetry-averaged maps) are refined on top of ``config.max_candidates``
    others. Returns (candidates best first,
    at most ``config.top_k``; the map labels of each; notes).
    """
    if not structures:
        raise NoSolutionError(f"no solution: no density map of {observed.source} gave atoms; "
                              "check the composition and cell, or sample more candidates")
    rcfg = _refine_config(config, observed)
    notes: list[str] = []
    cap = config.max_candidates + n_priority
    if len(structures) > cap:
        notes.append(f"{len(structures) - cap} of {len(structures)} distinct candidates "
                     f"(read from the fewest maps) not refined: at most {cap} are")
        structures, origins = structures[:cap], origins[:cap]
    screened: dict[int, RefineResult] = {}
    as_screened: dict[int, Candidate] = {}  # spglib runs once per screened candidate

    def screened_candidate(i: int) -> Candidate:
        if i not in as_screened:
            as_screened[i] = _candidate(screened[i], i, screened_only=True)
        return as_screened[i]

    full = list(range(len(structures)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if config.refine_top and len(structures) > config.refine_top:
            # A short fit already separates the right structure (Rwp ~0.1) from wrong ones (> 0.3);
            # the full fit, ~10x the cost, is spent on the few best.
            quick = replace(rcfg, max_iter=config.screen_iter, refine_profile=False)
            for i, s in enumerate(structures):
                res = refine_safely(s, observed, quick)
                if res is not None:
                    screened[i] = res
            by_rwp = sorted(screened, key=lambda i: screened[i].rwp)
            full = by_rwp[: config.refine_top]
            if config.family_first and family in FAMILY_SYSTEMS:
                # The best in-family screened fit is also refined fully, so family_first can weigh it.
                best_in_family = next((i for i in by_rwp if in_family(screened_candidate(i), family)), None)
                if best_in_family is not None and best_in_family not in full:
                    full.append(best_in_family)
            notes.append(f"{len(structures)} candidates screened, the best {len(full)} fully refined")
        refined: list[Candidate] = []
        for i in full:
            res = refine_safely(structures[i], observed, rcfg)
            if res is None:
                notes.append(f"candidate from {', '.join(origins[i])} did not refine (diverged); dropped")
                continue
            refined.append(_candidate(res, i))
        rest = sorted((i for i in screened if i not in full), key=lambda i: screened[i].rwp)
        refined.sort(key=lambda c: c.result.rwp)
        # Screened-only candidates rank after the fully refined ones: their Rwp is not comparable.
        refined += [screened_candidate(i) for i in rest]
    distinct = drop_duplicates(refined)
    if not distinct:
        raise NoSolutionError(f"no solution: none of {len(structures)} candidates for {observed.source} could be "
                              "refined; check composition, cell and wavelength")
    distinct = prefer_symmetry(distinct, config.rwp_tie)
    if config.family_first:
        distinct = family_first(distinct, family, config.max_rwp)
    best = distinct[0].result.rwp
    if config.abstain and not best <= config.max_rwp:
        raise NoSolutionError(
            f"no solution: best Rwp {best:.3f} > threshold {config.max_rwp:.3f} for {observed.source} "
            f"({len(structures)} distinct candidates); check composition, cell and wavelength, or raise --max-rwp")
    ranked = distinct[: config.top_k]
    return ranked, [list(origins[c.source]) for c in ranked], notes


# ------------------------------------------------------------------------------------------ pipelines


def solve(pattern: str | os.PathLike | Pattern, config: SolveConfig = SolveConfig(),
          predict_config: PredictConfig | None = None, progress: Progress | None = None) -> SolveResult:
    """Solve the structure that diffracts ``pattern``: ranked, refined candidates.

    Args:
        pattern: a pattern file or a :class:`~powdersolve.formats.Pattern`.
        config: solve settings; its ``samples`` and ``grid`` override those of ``predict_config``.
        predict_config: composition, cell, wavelength, weights, preprocessing (see :class:`PredictConfig`).
        progress: called with one-line progress messages.

    Raises:
        InputError: bad pattern or options (exit 2). NoSolutionError: abstained (exit 3).
    """
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    pcfg = replace(predict_config or PredictConfig(), samples=config.samples, grid=config.grid, keep_samples=True)
    # Atoms are read scale-free, and the solve benchmarks were measured on the network's own scale;
    # the absolute scale (an affine change of each map) would move the basins' electron counts.
    pred = predict(pattern, replace(pcfg, modify=None, absolute_scale=False), progress=progress)
    # The solver wants the modified map where its group's orbits are read: the group's standard origin.
    modifying = (replace(pcfg.modify or ModificationConfig(), symmetry=config.map_symmetry, origin="standard")
                 if config.modified_map else pcfg.modify)
    if modifying is not None:
        try:
            modify_prediction(pred, modifying, pcfg.composition, pcfg.formula_units)
        except ModificationError as exc:
            # The modified map is an extra candidate source; without it the solve still stands.
            say(f"{exc}; solving without the modified map")
    timings["predict"] = time.perf_counter() - t0
    assert pred.samples is not None  # keep_samples=True
    grids = ([pred.mean] if config.include_mean else []) + list(pred.samples)
    labels = (["mean"] if config.include_mean else []) + [f"sample {i}" for i in range(len(pred.samples))]
    first = _modified_first(pred) if config.modified_map else []
    result = _solve_grids(grids, labels, pred.lattice, pcfg.composition, _observed_from_prediction(pred), config,
                          say, timings, first)
    result.prediction = pred
    return result


def solve_from_grids(pattern: str | os.PathLike | Pattern, grids: Sequence[np.ndarray] | np.ndarray,
                     lattice: np.ndarray, composition: str | None, config: SolveConfig = SolveConfig(),
                     predict_config: PredictConfig | None = None, progress: Progress | None = None,
                     labels: Sequence[str] | None = None) -> SolveResult:
    """:func:`solve` from given density grids (e.g. the exact CMED) in the cell ``lattice`` (rows, A); no model.

    ``predict_config`` supplies the preprocessing and the wavelength when the file has none.
    """
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    observed = observed_profile(pattern, predict_config)
    timings["preprocess"] = time.perf_counter() - t0
    labels = list(labels) if labels is not None else [f"map {i}" for i in range(len(grids))]
    return _solve_grids(list(grids), labels, np.asarray(lattice, np.float64), composition, observed, config, say,
                        timings)


def solve_from_structures(pattern: str | os.PathLike | Pattern, structures: Sequence[Structure],
                          config: SolveConfig = SolveConfig(), predict_config: PredictConfig | None = None,
                          ) -> SolveResult:
    """Refine and rank given starting structures against ``pattern`` (e.g. a no-model control)."""
    t0 = time.perf_counter()
    observed = observed_profile(pattern, predict_config)
    timings = {"preprocess": time.perf_counter() - t0}
    t0 = time.perf_counter()
    family = lattice_family(structures[0].lattice.matrix) if structures else None
    ranked, origins, notes = rank_structures(structures, [[f"input {i}"] for i in range(len(structures))], observed,
                                             config, family)
    timings["refine_rank"] = time.perf_counter() - t0
    return SolveResult(ranked, origins, observed, None, None, "", notes, len(structures), len(structures), timings,
                       config)


def _modified_first(pred: Prediction) -> list[tuple[np.ndarray, str, int | None]]:
    """The prediction's density-modified map as (grid, label, space group) to read before all others."""
    if pred.modified is None:
        return []
    found = (pred.modification or {}).get("symmetry") or {}
    number = found.get("number")
    label = "modified mean" + (f" averaged over {found['group']}" if number else "")
    return [(pred.modified, label, number)]


def _solve_grids(grids: list[np.ndarray], labels: list[str], lattice: np.ndarray, composition: str | None,
                 observed: Observed, config: SolveConfig, say: Progress, timings: dict[str, float],
                 first: Sequence[tuple[np.ndarray, str, int | None]] = ()) -> SolveResult:
    """Candidates from ``grids`` (the first one searched for its group) and ``first`` (read before all)."""
    t0 = time.perf_counter()
    comp, ratios_known = composition_for_atoms(composition)
    n_first = 0
    groups: list[int | None] = [None] * len(grids)
    if config.map_symmetry and grids:
        say("searching the first map for its space group")
        sym_maps, sym_labels, sym_groups = symmetrised_maps(grids[0], lattice, labels[0], config.symmetry_top)
        grids, labels, n_first = sym_maps + list(grids), sym_labels + list(labels), len(sym_maps)
        groups = list(sym_groups) + groups
        timings["map_symmetry"] = time.perf_counter() - t0
        t0 = time.perf_counter()
    if first:
        grids = [g for g, _, _ in first] + list(grids)
        labels = [label for _, label, _ in first] + list(labels)
        groups = [number for _, _, number in first] + groups
        n_first += len(first)
    say(f"reading atoms from {len(grids)} density maps")
    structures, origins, species_note, notes, n_priority = candidates_from_grids(
        grids, lattice, comp, ratios_known=ratios_known, labels=labels, min_distance=config.min_distance,
        symprec=config.symprec, n_z=config.n_z, n_z_averaged=config.n_z_averaged, n_first=n_first,
        spacegroups=groups, skip_p1_pairs=config.skip_p1_pairs)
    if not comp:
        species_note = species_note or "no composition given: species inferred from electrons per density peak"
    timings["atoms"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    say(f"refining {len(structures)} distinct candidate structures")
    ranked, ranked_origins, rank_notes = rank_structures(structures, origins, observed, config,
                                                         lattice_family(lattice), n_priority)
    notes += rank_notes
    timings["refine_rank"] = time.perf_counter() - t0
    return SolveResult(ranked, ranked_origins, observed, None, composition, species_note, notes, len(grids),
                       len(structures), timings, config)


# ------------------------------------------------------------------------------------------ outputs


def write_solve_outputs(result: SolveResult, out_dir: str | os.PathLike, overwrite: bool = False,
                        progress: Progress | None = None) -> Path:
    """Write the solution into ``out_dir``, which appears (or is replaced) only when every file is written.

    Files: candidates/rank_01.cif ..., refined.cif (= rank 1), solution.json, fit.png (observed,
    calculated, difference, reflection ticks of rank 1) and, when a model predicted, density/ (the
    prediction's maps, figures and summary.json) and density_solved.ccp4 / .npy, the density of rank 1
    at the origin of the network's map (:meth:`SolveResult.solved_density`).
    """
    out = Path(out_dir)
    t0 = time.perf_counter()
    with atomic_output_dir(out, overwrite=overwrite) as stage:
        summary = result.summary()
        paths = write_solutions(result.candidates, stage)
        shutil.copyfile(paths[0], stage / "refined.cif")
        best = result.best
        obs = result.observed
        plot_fit(obs.two_theta, obs.counts, best.result.calc, best.result.ticks, stage / "fit.png",
                 title=f"{best.formula} {best.spacegroup_symbol}: Rwp {100 * best.result.rwp:.1f}%")
        if result.prediction is not None:
            result.prediction.write(stage / "density", progress=progress)
            solved = result.solved_density()
            write_ccp4(stage / "density_solved.ccp4", solved, result.prediction.cell)
            save_npy(stage / "density_solved.npy", solved)
        # write_solutions' solution.json lists the candidates only; replace it with the full summary.
        summary["timings_s"]["write"] = round(time.perf_counter() - t0, 4)
        summary["files"] = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        atomic_write_text(stage / "solution.json", json.dumps(summary, indent=2, default=_json_default) + "\n")
    return out


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
