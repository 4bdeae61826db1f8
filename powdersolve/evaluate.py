"""Evaluation on real structure files: simulate each pattern and CMED with the model's own settings,
predict, and score with the map correlation (primary) and the paper's SSIM / PSNR protocol, beside
the null baselines scored by the identical code.

The headline is the posterior mean (sample 0), the one map a user gets: ``cc_posterior_mean``. The
best of N samples, picked against the truth, is kept beside it as ``cc_best_of_n_oracle`` (and the
older name ``cc_mean``): no user can make that pick. Each crystal is scored by the model of its own
crystal system, over the rotations of its own lattice family (:func:`powdersolve.rotations.lattice_rotations`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from pymatgen.core import Element
from tqdm import tqdm

from powdersolve.baselines import InputAmplitudes, baseline_grids
from powdersolve.density import DensityConfig, density_grid
from powdersolve.diffraction.peaks import merge_tolerance
from powdersolve.diffraction.sticks import Sticks, sticks
from powdersolve.errors import InputError
from powdersolve.evaluation_report import ORACLE_NOTE, TRUE_Z_TREATMENTS, per_spacegroup, per_system, summarise
from powdersolve.inputs import (
    ModelInput,
    box_amplitudes,
    composition_amounts,
    crystal_input,
    reflection_table,
    sample_grids,
)
from powdersolve.maps.flipping import FlipConfig, charge_flip
from powdersolve.maps.modification import ModificationConfig, modify_density
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.maps.scale import absolute_scale, absolute_scale_from_map
from powdersolve.maps.sharpen import sharpen_map
from powdersolve.maps.symmetry import symmetrise_found
from powdersolve.metrics import CrystalScore, invert, lattice_rotations, map_correlation_per_sample, score_predictions
from powdersolve.model import CMEDNet, half_space_hkl, model_band
from powdersolve.structures import Crystal, crystal_system, iter_structure_files, lattice_system, load_crystal
from powdersolve.weights import available_systems, load_model, serving_model, shipped_weights, weights_checksum


@dataclass(frozen=True)
class EvalConfig:
    """Settings of an evaluation.

    Attributes:
        grid: grid points per axis of truth and prediction.
        samples: latent samples per crystal; sample 0 is the posterior mean (the primary score), the best
            over samples is reported beside it as an oracle pick.
        seed: seeds latent samples and the random-atoms baseline.
        system: only structures of this crystal system (None = all, each with its own system's model).
        q_limit: measured range of the simulated pattern (1/A); None = the model's full axis.
        baselines: also score the null baselines (:mod:`powdersolve.baselines`).
        composition: composition encoding to feed (None = the model's own).
        symmetrise: also score every sample averaged over the most symmetric space group its own map
            plausibly obeys (:func:`powdersolve.maps.symmetry.symmetrise_found`; no group is given).
        sharpen: (power, blur B in A^2): also score every sample sharpened
            (:func:`powdersolve.maps.sharpen.sharpen_map`).
        absolute: also score every sample on the absolute scale of the true cell content, true Z included
            (:func:`powdersolve.maps.scale.absolute_scale`).
        absolute_map: the same with the formula only, Z read from the first map's peaks (as ``predict`` does).
        modify: also score every sample after density modification with the pattern's magnitudes and the
            true cell content (:func:`powdersolve.maps.modification.modify_density`, B and merging tolerance
            the model's); with ``modify.symmetry`` also with the space group found in each map.
        flip: also score every sample after charge flipping of the pattern's magnitudes started from its
            phases (:func:`powdersolve.maps.flipping.charge_flip`, B and merging tolerance the model's;
            reads the pattern only, not the cell content).

    Every post-processing step is applied to random atoms, the zero-phase map and the extra models too, so
    the gain of the step alone is measured beside.
    """

    grid: int = 50
    samples: int = 5
    seed: int = 0
    system: str | None = None
    q_limit: float | None = None
    baselines: bool = True
    composition: str | None = None
    symmetrise: bool = False
    sharpen: tuple[float, float] | None = None
    absolute: bool = False
    absolute_map: bool = False
    modify: ModificationConfig | None = None
    flip: FlipConfig | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A model and where it came from."""

    model: CMEDNet
    weights: Path
    metadata: dict


@dataclass(frozen=True)
class Case:
    """One structure to score, the crystal system it is reported under and its lattice's system (which
    selects the model, :func:`powdersolve.weights.serving_model`, as for an indexed pattern)."""

    file: Path
    crystal: Crystal
    system: str
    lattice: str


def symmetry_averaged(grids: np.ndarray, lattice: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each grid averaged over the first plausible space group its own map shows, and that group's symbol
    ('none' where no group was searched or found)."""
    averaged, found = symmetrise_found(grids, lattice)
    return averaged.astype(np.float32), [g.symbol if g else "none" for g in found]


def input_amplitudes(model: CMEDNet, crystal: Crystal, pattern: Sticks, q_limit: float | None = None
                     ) -> InputAmplitudes:
    """The amplitudes the model reads for a crystal's pattern, on its decoder's Miller indices, matched to
    the pattern's peaks with the shared :func:`~powdersolve.diffraction.peaks.merge_tolerance`."""
    cfg = model.cfg
    table = reflection_table(crystal.lattice, cfg.hkl_box, cfg.q_max)
    amp, _ = box_amplitudes(table, pattern.q, pattern.intensity, q_limit or cfg.q_max, cfg.b_iso,
                            merge_tolerance(cfg.q_max, cfg.xrd_bins))
    return InputAmplitudes(half_space_hkl(cfg.hkl_box), amp)


def model_inputs(model: CMEDNet, crystal: Crystal, q_limit: float | None = None,
                 composition: str | None = None) -> ModelInput:
    """The model's inputs simulated from a crystal's stick pattern (cell known, as for indexed data):
    :func:`powdersolve.inputs.crystal_input`."""
    return crystal_input(model.cfg, crystal, q_limit, composition)


def cell_formula(crystal: Crystal) -> str:
    """The cell's content as a formula string, e.g. 'Ca4F8' (occupancy-weighted amounts)."""
    return "".join(f"{Element.from_Z(z).symbol}{amount:g}" for z, amount in composition_amounts(crystal).items())


# ----------------------------------------------------------------------------- which model scores what


def load_cases(structures: str | Path, system: str | None) -> list[Case]:
    """Every structure file (of crystal system ``system`` only, when given) with its systems."""
    cases = []
    for f in iter_structure_files(structures):
        c = load_crystal(f)
        s = crystal_system(max(c.spacegroup, 1))
        if system is None or s == system:
            cases.append(Case(f, c, s, lattice_system(max(c.spacegroup, 1))))
    if not cases:
        raise InputError(f"{structures}: no {system or ''} structures to evaluate")
    return cases


def assign_models(cases: list[Case], weights: str | Path | None
                  ) -> tuple[list[tuple[Case, LoadedModel]], list[dict]]:
    """Each case with the model its lattice selects (:func:`powdersolve.weights.serving_model`): among the
    shipped models when ``weights`` is None, else the given weights where they may serve that lattice.
    Cases without one are returned as skipped, with the reason."""
    given: LoadedModel | None = None
    if weights is not None:
        m, side = load_model(weights)
        given = LoadedModel(m, Path(weights), side.get("metadata", {}))
    have = [given.model.cfg.system] if given is not None else available_systems()
    models: dict[str, LoadedModel] = {} if given is None else {given.model.cfg.system: given}
    scored, skipped = [], []
    for case in cases:
        system = serving_model(case.lattice, have)
        if system is None:
            reason = (f"no model serves a {case.lattice} lattice ({case.system} crystal); "
                      f"{'given' if given else 'shipped'}: {', '.join(have) or 'none'}")
            skipped.append({"file": case.file.name, "system": case.system, "reason": reason})
            continue
        if system not in models:
            path = shipped_weights(system)
            m, side = load_model(path)
            models[system] = LoadedModel(m, path, side.get("metadata", {}))
        scored.append((case, models[system]))
    return scored, skipped


# ----------------------------------------------------------------------------- scoring one crystal


@dataclass(frozen=True)
class _Step:
    """A post-processing step scored beside the raw maps: ``apply(grids, crystal, sticks, band)`` gives a map
    set per name in ``outputs`` (``band``: the Miller-index box the maps are limited to, None: the grid's)."""

    outputs: tuple[str, ...]
    apply: Callable[..., dict[str, np.ndarray]]


def _treatments(cfg: EvalConfig, model: CMEDNet, q_limit: float) -> list[_Step]:
    """The post-processing steps of ``cfg`` (charge flipping gives two maps: flipped, and the one it prefers)."""
    b_iso = model.cfg.b_iso
    out: list[_Step] = []
    if cfg.sharpen:
        out.append(_Step(("sharpened",), lambda g, c, s, band: {"sharpened": sharpen_map(g, c.lattice, *cfg.sharpen)}))
    if cfg.absolute:
        out.append(_Step(("absolute",), lambda g, c, s, band: {
            "absolute": absolute_scale(g, c.lattice, c.numbers, c.occupancy, b_iso, band)}))
    if cfg.absolute_map:
        out.append(_Step(("absolute_map",), lambda g, c, s, band: {
            "absolute_map": absolute_scale_from_map(g, c.lattice, cell_formula(c), b_iso, band)[0]}))
    if cfg.modify:
        tol = merge_tolerance(model.cfg.q_max, model.cfg.xrd_bins)
        for name, symmetry in (("modified", False), ("modified_symmetric", True)):
            if symmetry and not cfg.modify.symmetry:
                continue
            mcfg = replace(cfg.modify, b_iso=b_iso, symmetry=symmetry, tol=tol)
            out.append(_Step((name,), lambda g, c, s, band, m=mcfg, k=name: {
                k: modify_density(g, c.lattice, MeasuredPeaks.from_sticks(s, q_limit), c.numbers, c.occupancy, m)}))
    if cfg.flip:
        fcfg = replace(cfg.flip, b_iso=b_iso, tol=merge_tolerance(model.cfg.q_max, model.cfg.xrd_bins))
        out.append(_Step(("flipped", "flipped_checked"),
                         lambda g, c, s, band: flipped_grids(g, c, s, q_limit, fcfg)))
    return out


def flipped_grids(grids: np.ndarray, crystal: Crystal, pattern: Sticks, q_limit: float, cfg: FlipConfig
                  ) -> dict[str, np.ndarray]:
    """Each (N, N, N) grid of ``grids`` (any leading shape) charge-flipped with the pattern's magnitudes
    (``flipped``), and the map the flipping prefers (``flipped_checked``: the grid itself where the flipped
    map confirms it, :class:`~powdersolve.maps.flipping.FlipResult`)."""
    n = grids.shape[-1]
    flat = np.asarray(grids).reshape(-1, n, n, n)
    peaks = MeasuredPeaks.from_sticks(pattern, q_limit)
    results = [charge_flip(g, crystal.lattice, peaks, cfg) for g in flat]
    return {"flipped": np.stack([r.grid for r in results]).reshape(np.shape(grids)),
            "flipped_checked": np.stack([r.preferred(g) for r, g in zip(results, flat, strict=True)]
                                        ).reshape(np.shape(grids))}


def _score_fields(score: CrystalScore, suffix: str = "") -> dict[str, float]:
    """A crystal's row entries for one set of maps: oracle (best of samples) and posterior-mean scores."""
    return {f"cc{suffix}": score.cc, f"cc{suffix}_posterior_mean": score.cc_posterior_mean,
            f"ssim{suffix}": score.ssim, f"ssim{suffix}_posterior_mean": score.ssim_posterior_mean,
            f"psnr{suffix}": score.psnr, f"psnr{suffix}_posterior_mean": score.psnr_posterior_mean,
            f"ssim_aligned{suffix}": score.ssim_aligned,
            f"ssim_aligned{suffix}_posterior_mean": score.ssim_aligned_posterior_mean}


def _model_maps_row(case: Case, preds: np.ndarray, truth: np.ndarray, cfg: EvalConfig, rotations: tuple,
                    treatments: list[_Step], band: tuple | None, pattern: Sticks) -> dict:
    """Scores of the model's maps of one crystal (raw, inverted, symmetrised, post-processed)."""
    score = score_predictions(preds, truth, rotations)
    # Powder data cannot tell a structure from its inverse: report the CC allowing inversion beside.
    cc_inv = map_correlation_per_sample(invert(preds), truth, rotations)[0]
    row = {"cc_with_inversion": max(score.cc, float(np.max(cc_inv))),
           "cc_with_inversion_posterior_mean": max(score.cc_posterior_mean, float(cc_inv[0])),
           **_score_fields(score)}
    if cfg.symmetrise:
        averaged, groups = symmetry_averaged(preds, case.crystal.lattice)
        s = score_predictions(averaged, truth, rotations)
        inv = float(np.max(map_correlation_per_sample(invert(averaged), truth, rotations)[0]))
        row.update(symmetry_found=groups[s.best_sample_cc], cc_symmetrised_with_inversion=max(s.cc, inv),
                   **_score_fields(s, "_symmetrised"))
    for step in treatments:
        for name, grids in step.apply(preds, case.crystal, pattern, band).items():
            row.update(_score_fields(score_predictions(grids, truth, rotations), f"_{name}"))
    return row


def _baseline_scores(case: Case, lm: LoadedModel, truth: np.ndarray, cfg: EvalConfig, rotations: tuple,
                     treatments: list[_Step], pattern: Sticks, others: dict[str, CMEDNet]
                     ) -> dict[str, CrystalScore]:
    """Scores of every null baseline and extra model on one crystal, by name."""
    c, out = case.crystal, {}
    dcfg = DensityConfig(b_iso=lm.model.cfg.b_iso, grid=cfg.grid)
    if cfg.baselines:
        amps = input_amplitudes(lm.model, c, pattern, cfg.q_limit)
        for name, grid_list in baseline_grids(c, truth, dcfg, cfg.seed, cfg.samples, amps).items():
            grids = np.stack(grid_list)
            out[name] = score_predictions(grids, truth, rotations)
            if name == "zero_phase":
                out.update(_treated_scores(name, grids, c, pattern, None, truth, rotations, treatments))
            if name != "random_atoms":
                continue
            if cfg.symmetrise:
                out["random_atoms_symmetrised"] = score_predictions(symmetry_averaged(grids, c.lattice)[0], truth,
                                                                    rotations)
            out.update(_treated_scores("random_atoms", grids, c, pattern, None, truth, rotations, treatments))
    for name, m in others.items():
        grids = sample_grids(m, model_inputs(m, c, cfg.q_limit), cfg.samples, cfg.grid, cfg.seed)
        out[name] = score_predictions(grids, truth, rotations)
        out.update(_treated_scores(name, grids, c, pattern, model_band(m.cfg), truth, rotations, treatments))
    return out


def _treated_scores(prefix: str, grids: np.ndarray, crystal: Crystal, pattern: Sticks, band: tuple | None,
                    truth: np.ndarray, rotations: tuple, treatments: list[_Step]) -> dict[str, CrystalScore]:
    """Scores of one baseline's maps after every post-processing step, as ``<prefix>_<map name>``."""
    return {f"{prefix}_{name}": score_predictions(out, truth, rotations)
            for step in treatments for name, out in step.apply(grids, crystal, pattern, band).items()}


def _protocol(cfg: EvalConfig, scored: list[tuple[Case, LoadedModel]], treatments: list[str]) -> dict:
    models = {str(lm.weights): lm for _, lm in scored}
    first = next(iter(models.values()))
    return {**asdict(cfg), "oracle_note": ORACLE_NOTE,
            "rotations": {c.system: len(lattice_rotations(c.system)) for c, _ in scored},
            "shifts": "all integer origin shifts (cc only)",
            "merge_tolerance_q": {w: merge_tolerance(lm.model.cfg.q_max, lm.model.cfg.xrd_bins)
                                  for w, lm in models.items()},
            "uses_true_z": {t: TRUE_Z_TREATMENTS[t] for t in treatments},
            "B": first.model.cfg.b_iso, "xrd_input": first.model.cfg.xrd_input, "q_max": first.model.cfg.q_max,
            "wavelengths": list(first.model.cfg.wavelengths), "weights": str(first.weights),
            "weights_sha256": weights_checksum(first.weights), "model_config": first.model.cfg.to_dict(),
            "training": first.metadata,
            "models": {w: {"system": lm.model.cfg.system, "sha256": weights_checksum(w)} for w, lm in models.items()}}


def _save_grids(folder: str | Path, stem: str, truth: np.ndarray, posterior_mean: np.ndarray) -> None:
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / f"{stem}_gt.npy", truth.astype(np.float32))
    np.save(d / f"{stem}_pred.npy", posterior_mean.astype(np.float32))


def evaluate(weights: str | Path | None, structures: str | Path, cfg: EvalConfig = EvalConfig(),
             save_grids: str | Path | None = None, extra_models: dict[str, str | Path] | None = None,
             progress: bool = True) -> dict:
    """Score models (and baselines, and ``extra_models`` such as the no-XRD ablation) on real structures.

    ``weights`` None: every crystal is scored by the shipped model of its system (hexagonal by the
    trigonal one, reported as hexagonal); given: the crystals of that model's system. Crystals without a
    model are listed under ``skipped`` with the reason. ``save_grids`` gets the truth and the posterior
    mean of each crystal. Returns the JSON-ready report: the summary over all crystals
    (:func:`powdersolve.evaluation_report.summarise`: ``cc_posterior_mean`` first), ``per_system``,
    ``per_spacegroup``, ``per_crystal``, ``skipped``, ``protocol``, ``timing``.
    """
    scored, skipped = assign_models(load_cases(structures, cfg.system), weights)
    if not scored:
        raise InputError(f"{structures}: no structure has a model to score it: "
                         + "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3]))
    others = {name: load_model(p)[0] for name, p in (extra_models or {}).items()}
    rows, base, t_pred, t_score = [], [], 0.0, 0.0
    treatments: list[str] = []
    for case, lm in tqdm(scored, desc="evaluate", unit="crystal", disable=not progress):
        model, c = lm.model, case.crystal
        rotations = lattice_rotations(case.system)
        steps = _treatments(cfg, model, cfg.q_limit or model.cfg.q_max)
        treatments = [name for step in steps for name in step.outputs]
        truth = density_grid(c, DensityConfig(b_iso=model.cfg.b_iso, grid=cfg.grid))
        pattern = sticks(c, q_max=model.cfg.q_max)
        t0 = time.perf_counter()
        preds = sample_grids(model, model_inputs(model, c, cfg.q_limit, cfg.composition), cfg.samples, cfg.grid,
                             cfg.seed)
        t1 = time.perf_counter()
        row = {"file": case.file.name, "formula": c.formula, "spacegroup": c.spacegroup, "system": case.system,
               "model_system": model.cfg.system, "weights": str(lm.weights), "natoms": int(len(c.numbers)),
               "rotations": len(rotations),
               **_model_maps_row(case, preds, truth, cfg, rotations, steps, model_band(model.cfg), pattern)}
        t_score += time.perf_counter() - t1
        t_pred += t1 - t0
        for name, s in _baseline_scores(case, lm, truth, cfg, rotations, steps, pattern, others).items():
            row[f"{name}_cc"], row[f"{name}_ssim"] = s.cc, s.ssim
            base.append((case.system, name, s))
        rows.append(row)
        if save_grids:
            _save_grids(save_grids, case.file.stem, truth, preds[0])
    return {**summarise(rows, base, treatments, cfg.symmetrise), "oracle_note": ORACLE_NOTE,
            "n_skipped": len(skipped), "skipped": skipped,
            "per_system": per_system(rows, base, treatments, cfg.symmetrise), "per_spacegroup": per_spacegroup(rows),
            "per_crystal": rows, "protocol": _protocol(cfg, scored, treatments),
            "timing": {"predict_s_per_crystal": t_pred / len(rows), "score_s_per_crystal": t_score / len(rows)}}
