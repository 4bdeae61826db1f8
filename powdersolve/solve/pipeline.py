"""Structure solution end to end: pattern -> density samples -> atoms -> refined, ranked candidates.

:func:`solve` runs :func:`powdersolve.predict.predict` with every latent sample kept (and its mean
map density-modified, :func:`powdersolve.predict.modify_prediction`), reads atoms from the
posterior-mean map, from its symmetry-averaged and modified versions and from each sample map
(:mod:`powdersolve.solve.reading`), and refines and ranks the distinct candidates by Rwp against the
preprocessed pattern (:mod:`powdersolve.solve.rank`), abstaining with
:class:`~powdersolve.errors.NoSolutionError` when the best Rwp is above the threshold. Where another
shipped model serves the same lattice (hexagonal axes) and the first model's best fit is not in its own
crystal system, that model's maps are read too and both rankings merged
(:func:`powdersolve.solve.rank.merge_rankings`). Where the best fit is still rough, the measured peaks are
charge-flipped from the best candidates' own phases and atoms read from those maps are ranked in too
(:mod:`powdersolve.solve.recycling`); only then does the solver abstain.

The observed profile is the preprocessed one (range cut, K-alpha2 stripped, background removed): the
refinement models a single wavelength, which after stripping is K-alpha1. Rwp is therefore a
background-subtracted Rwp with unit weights (the processed values are not counts any more), which is
stricter than the conventional one computed with the background included.

:func:`solve_from_grids` does the same from given density grids (e.g. the exact CMED: the "oracle"
ceiling of the density -> structure stage) without a model; :func:`solve_from_structures` refines
given structures. :func:`powdersolve.solve.result.write_solve_outputs` writes the output folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from pymatgen.core import Structure

from powdersolve.cell import metric_family
from powdersolve.errors import ModificationError, NoSolutionError
from powdersolve.formats import Pattern
from powdersolve.indexing.extinction import ExtinctionClass, cell_space_group_candidates
from powdersolve.maps.flipping import FlipConfig
from powdersolve.maps.modification import ModificationConfig
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.predict import PredictConfig, Prediction, flip_prediction, modify_prediction, predict
from powdersolve.predict.phasing import phase_pattern
from powdersolve.predict.postprocess import measured_peaks
from powdersolve.predict.steps import NoModelError, preprocess_pattern, read
from powdersolve.solve.config import SolveConfig
from powdersolve.solve.from_maps import solve_maps
from powdersolve.solve.missed_symmetry import with_missed_symmetry
from powdersolve.solve.observed import Observed, observed_from_prediction
from powdersolve.solve.rank import Ranking, abstain_if_poor, deadline_passed, merge_rankings, rank_structures
from powdersolve.solve.reading import PriorityMap
from powdersolve.solve.recycling import recycle
from powdersolve.solve.result import Progress, SolveResult, write_solve_outputs
from powdersolve.structures.io import crystal_system
from powdersolve.weights import SERVING_MODELS, available_systems

#: The default settings (one shared, immutable instance).
DEFAULT_CONFIG = SolveConfig()
#: Random-phase starts charge-flipped where no shipped model serves the cell (the lowest flip R is read).
NETWORK_FREE_STARTS = 3

__all__ = ["Observed", "SolveConfig", "SolveResult", "observed_profile", "solve", "solve_from_grids",
           "solve_from_structures", "write_solve_outputs"]


def observed_profile(pattern: str | os.PathLike | Pattern, config: PredictConfig | None = None) -> Observed:
    """Read and preprocess ``pattern`` with predict's own steps (:func:`powdersolve.predict.steps.read`,
    :func:`~powdersolve.predict.steps.preprocess_pattern`), so wavelength and K-alpha2 are decided once."""
    config = config or PredictConfig()
    pat, lam, lam_source = read(pattern, config)
    processed = preprocess_pattern(pat, lam, lam_source, config)
    fwhm = float(np.median(processed.peaks.fwhm)) if len(processed.peaks) else None
    return Observed(processed.two_theta, processed.counts, processed.wavelength.effective, str(pat.source),
                    fwhm).without(processed.excluded)


def solve(pattern: str | os.PathLike | Pattern, config: SolveConfig = DEFAULT_CONFIG,
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
    deadline = config.deadline(t0)
    pcfg = replace(predict_config or PredictConfig(), samples=config.samples, grid=config.grid, keep_samples=True)
    # The solver wants the modified map where its group's orbits are read: the group's standard origin.
    modifying = (replace(pcfg.modify or ModificationConfig(), symmetry=config.map_symmetry, origin="standard")
                 if config.modified_map else pcfg.modify)
    flipping = FlipConfig() if config.flipped_map else None
    try:
        pred = _prediction(pattern, pcfg, modifying, flipping, say, progress)
    except NoModelError as exc:
        if not config.flipped_map:
            raise
        return _solve_without_network(pattern, pcfg, config, exc, say, deadline)
    timings["predict"] = time.perf_counter() - t0
    # Abstention waits for the recycled candidates (_finished decides it).
    first_pass = replace(config, abstain=False)
    others = _other_serving_models(pred, pcfg, config)
    if not others:
        result = _solve_prediction(pred, pcfg.composition, first_pass, say, timings, deadline=deadline)
    else:
        result = _solve_staged(pattern, pred, others, pcfg, first_pass, modifying, flipping, say, progress, timings,
                               deadline)
    return replace(_finished(result, measured_peaks(pred), pcfg.composition, pred.lattice, config, say, deadline),
                   prediction=pred)


def _solve_staged(pattern: str | os.PathLike | Pattern, pred: Prediction, others: list[str], pcfg: PredictConfig,
                  config: SolveConfig, modifying: ModificationConfig | None, flipping: FlipConfig | None,
                  say: Progress, progress: Progress | None, timings: dict[str, float], deadline: float | None
                  ) -> SolveResult:
    """Candidates from ``pred`` and, where its answer is not one of its own crystal system, from the ``others``
    models that serve the lattice (none begun after ``deadline``), ranked together (``config`` does not
    abstain: the caller decides)."""
    results = [_solve_prediction_or_none(pred, pcfg.composition, config, say, timings, deadline=deadline)]
    if not _own_answer(results[0], pred.system, config.max_rwp):
        for system in others:
            if deadline_passed(deadline):
                late = f"the {system} model not asked: the time limit ({config.time_limit:g} s) was reached"
                say(late)
                if results[0] is not None:
                    results[0] = replace(results[0], notes=[*results[0].notes, late])
                break
            say(f"{_verdict(results[0], pred.system)}: also predicting with the {system} model, which serves "
                "the same lattice")
            t0 = time.perf_counter()
            alternate = replace(pcfg, system=system, cell=pred.cell,
                                samples=min(config.alternate_samples, pcfg.samples))
            other = _prediction(pattern, alternate, modifying, flipping, say, progress)
            timings["predict"] += time.perf_counter() - t0
            results.append(_solve_prediction_or_none(other, pcfg.composition, config, say, timings,
                                                     tag=f"{system} model ", deadline=deadline))
    return _merge_results([r for r in results if r is not None], config, pred)


def solve_from_grids(pattern: str | os.PathLike | Pattern, grids: Sequence[np.ndarray] | np.ndarray,
                     lattice: np.ndarray, composition: str | None, config: SolveConfig = DEFAULT_CONFIG,
                     predict_config: PredictConfig | None = None, progress: Progress | None = None,
                     labels: Sequence[str] | None = None, deadline: float | None = None) -> SolveResult:
    """:func:`solve` from given density grids (e.g. the exact CMED) in the cell ``lattice`` (rows, A); no model.

    ``predict_config`` supplies the preprocessing and the wavelength when the file has none. ``deadline``
    (``time.perf_counter``): by default ``config.time_limit`` seconds from now.
    """
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if deadline is None:
        deadline = config.deadline(t0)
    observed = observed_profile(pattern, predict_config)
    timings["preprocess"] = time.perf_counter() - t0
    labels = list(labels) if labels is not None else [f"map {i}" for i in range(len(grids))]
    return solve_maps(list(grids), labels, np.asarray(lattice, np.float64), composition, observed, config, say,
                      timings, deadline=deadline)


def _solve_without_network(pattern: str | os.PathLike | Pattern, pcfg: PredictConfig, config: SolveConfig,
                           reason: NoModelError, say: Progress, deadline: float | None) -> SolveResult:
    """No shipped model serves the cell: atoms from the map charge flipping finds from random phases alone
    (:func:`powdersolve.predict.phasing.phase_pattern`, the lowest flip R of :data:`NETWORK_FREE_STARTS`), in
    the cell given or already indexed."""
    say(f"{str(reason).split(';')[0]}; solving from the charge-flipped map alone (no network)")
    t0 = time.perf_counter()
    phased = phase_pattern(pattern, replace(pcfg, flip=FlipConfig()), starts=NETWORK_FREE_STARTS,
                           indexed=reason.indexed)
    flip_s = time.perf_counter() - t0
    result = solve_from_grids(pattern, [phased.grid], phased.cell.matrix, pcfg.composition,
                              replace(config, abstain=False), pcfg, say, labels=["charge-flipped map (no network)"],
                              deadline=deadline)
    result = _finished(result, phased.peaks, pcfg.composition, phased.cell.matrix, config, say, deadline)
    note = (f"no shipped model serves the cell: atoms read from the map charge flipping found from random phases "
            f"({phased.cell_source} cell; flip R {phased.r_factors[phased.kept]:.3f})")
    return replace(result, notes=[note, *result.notes], timings={"flip": flip_s, **result.timings})


def solve_from_structures(pattern: str | os.PathLike | Pattern, structures: Sequence[Structure],
                          config: SolveConfig = DEFAULT_CONFIG, predict_config: PredictConfig | None = None,
                          ) -> SolveResult:
    """Refine and rank given starting structures against ``pattern`` (e.g. a no-model control)."""
    t0 = time.perf_counter()
    observed = observed_profile(pattern, predict_config)
    timings = {"preprocess": time.perf_counter() - t0}
    t0 = time.perf_counter()
    family = metric_family(structures[0].lattice.matrix) if structures else None
    ranking = rank_structures(structures, [[f"input {i}"] for i in range(len(structures))], observed,
                              config.rank_config(), family)
    timings["refine_rank"] = time.perf_counter() - t0
    return SolveResult(ranking.candidates, ranking.origins, observed, None, None, "", ranking.notes, len(structures),
                       len(structures), timings, config)


def _solve_prediction(pred: Prediction, composition: str | None, config: SolveConfig, say: Progress,
                      timings: dict[str, float], tag: str = "", deadline: float | None = None) -> SolveResult:
    """Candidates from one prediction's maps (mean, samples, density-modified mean, charge-flipped mean),
    refined and ranked; ``tag`` prefixes their labels (the model they came from). The first map is searched
    for its space group: the charge-flipped mean where it departs from the mean map, else the mean."""
    assert pred.samples is not None  # keep_samples=True
    grids = ([pred.mean] if config.include_mean else []) + list(pred.samples)
    labels = ([f"{tag}mean"] if config.include_mean else []) + [f"{tag}sample {i}" for i in range(len(pred.samples))]
    if _flipped_departs(pred):
        grids, labels = [pred.flipped, *grids], [f"{tag}charge-flipped mean", *labels]
    first = _modified_first(pred, tag) if config.modified_map else []
    return solve_maps(grids, labels, pred.lattice, composition, observed_from_prediction(pred), config, say,
                      timings, first, _extinctions(pred), deadline)


def _solve_prediction_or_none(pred: Prediction, composition: str | None, config: SolveConfig, say: Progress,
                              timings: dict[str, float], tag: str = "", deadline: float | None = None
                              ) -> SolveResult | None:
    """:func:`_solve_prediction`, or None when its maps gave no refinable candidate (another model may)."""
    try:
        return _solve_prediction(pred, composition, config, say, timings, tag, deadline)
    except NoSolutionError as exc:
        say(str(exc))
        return None


def _own_answer(result: SolveResult | None, model_system: str, max_rwp: float) -> bool:
    """Whether a model's best fit is acceptable (Rwp <= ``max_rwp``) and has a space group of the model's
    own crystal system: then no other model serving the lattice is asked. A hexagonal model whose best
    fit is trigonal (or lower) defers to the trigonal model's reading, and vice versa."""
    if result is None or not result.candidates:
        return False
    best = result.best
    return best.result.rwp <= max_rwp and crystal_system(max(best.spacegroup, 1)) == model_system


def _verdict(result: SolveResult | None, model_system: str) -> str:
    """Why another model is asked, in words."""
    if result is None or not result.candidates:
        return f"the {model_system} model's maps gave no refinable candidate"
    best = result.best
    return (f"the {model_system} model's best fit is {best.spacegroup_symbol} "
            f"({crystal_system(max(best.spacegroup, 1))}) at Rwp {best.result.rwp:.3f}")


def _merge_results(results: Sequence[SolveResult], config: SolveConfig, pred: Prediction) -> SolveResult:
    """One result from the staged results of several models on one pattern: candidates ranked together
    (:func:`powdersolve.solve.rank.merge_rankings`), abstaining per ``config``."""
    if not results:
        raise NoSolutionError(f"no solution: no model's maps gave a refinable candidate for {pred.source}; "
                              "check the composition and cell")
    first = results[0]
    ranking = merge_rankings([Ranking(r.candidates, r.origins, r.notes) for r in results], config.rank_config(),
                             metric_family(pred.lattice), first.observed.source)
    return SolveResult(ranking.candidates, ranking.origins, first.observed, None, first.composition,
                       first.species_note, ranking.notes, sum(r.n_maps for r in results),
                       sum(r.n_distinct for r in results), first.timings, config)


def _prediction(pattern: str | os.PathLike | Pattern, pcfg: PredictConfig, modifying: ModificationConfig | None,
                flipping: FlipConfig | None, say: Progress, progress: Progress | None) -> Prediction:
    """:func:`predict` on the network's own scale, then the density-modified mean map when ``modifying`` and
    the charge-flipped one when ``flipping``."""
    # Atoms are read scale-free, and the solve benchmarks were measured on the network's own scale;
    # the absolute scale (an affine change of each map) would move the basins' electron counts.
    pred = predict(pattern, replace(pcfg, modify=None, flip=None, absolute_scale=False), progress=progress)
    # The modified and flipped maps are extra candidate sources; without them the solve still stands.
    if modifying is not None:
        try:
            pred = modify_prediction(pred, modifying, pcfg.composition, pcfg.formula_units)
        except ModificationError as exc:
            say(f"{exc}; solving without the modified map")
    if flipping is not None:
        pred = flip_prediction(pred, flipping)
    return pred


def _other_serving_models(pred: Prediction, pcfg: PredictConfig, config: SolveConfig) -> list[str]:
    """Shipped models besides ``pred``'s that serve its lattice (:data:`powdersolve.weights.SERVING_MODELS`:
    the hexagonal and trigonal models both serve hexagonal axes), when the model was picked automatically
    and ``config.all_serving_models`` is on."""
    if not config.all_serving_models or pcfg.weights is not None or pcfg.system != "auto":
        return []
    lattice = (pred.indexing or {}).get("system") or pred.cell.family
    have = available_systems()
    return [m for m in SERVING_MODELS.get(lattice, ()) if m != pred.system and m in have]


def _modified_first(pred: Prediction, tag: str = "") -> list[PriorityMap]:
    """The prediction's density-modified map, to read before all others (empty when there is none);
    ``tag`` prefixes its label (the model it came from)."""
    if pred.modified is None:
        return []
    group = pred.modified_group
    label = f"{tag}modified mean" + (f" averaged over {group.symbol}" if group is not None else "")
    return [PriorityMap(pred.modified, label, group.number if group is not None else None)]


def _flipped_departs(pred: Prediction) -> bool:
    """Whether the prediction has a charge-flipped map that departs from its mean map (one that confirms the
    mean map would give the mean map's atoms again)."""
    return pred.flipped is not None and not (pred.flipping or {}).get("confirms_mean", True)


def _extinctions(pred: Prediction) -> list[ExtinctionClass]:
    """The best extinction classes of the prediction's cell from its picked peaks (lattice centring from
    indexing when the cell was indexed, else every centring of the cell's family)."""
    indexing = pred.indexing or {}
    return cell_space_group_candidates(pred.cell, pred.peaks.two_theta, pred.wavelength.effective,
                                       centring=indexing.get("centring"),
                                       zero_shift=float(indexing.get("zero_shift_deg") or 0.0))


def _finished(result: SolveResult, peaks: MeasuredPeaks, composition: str | None, lattice: np.ndarray,
              config: SolveConfig, say: Progress, deadline: float | None) -> SolveResult:
    """``result`` with the candidates of its recycled maps ranked in where its best Rwp is above
    ``config.recycle_above`` (:mod:`powdersolve.solve.recycling`; none begun after ``deadline``, a
    ``time.perf_counter`` reading) and its best candidate in any higher symmetry it missed
    (:mod:`powdersolve.solve.missed_symmetry`); abstains per ``config``."""
    if config.recycle and result.best.result.rwp > config.recycle_above:
        result = recycle(result, peaks, composition, lattice, config, say, deadline)
    if config.symmetry_tolerances:
        t0 = time.perf_counter()
        say(f"searching the best candidate ({result.best.spacegroup_symbol}) for symmetry it missed")
        ranking = with_missed_symmetry(Ranking(result.candidates, result.origins, result.notes), result.observed,
                                       config.rank_config(), config.symmetry_tolerances,
                                       config.symmetry_tie)
        result = replace(result, candidates=ranking.candidates, origins=ranking.origins, notes=ranking.notes,
                         timings={**result.timings, "missed_symmetry": time.perf_counter() - t0})
    abstain_if_poor(result.best.result.rwp, result.n_distinct, result.observed.source, config.rank_config())
    return replace(result, config=config)
