"""Evaluation on real structure files: simulate each pattern and CMED with the model's own settings,
predict, and score with the map correlation (primary) and the paper's SSIM / PSNR protocol, beside
the null baselines scored by the identical code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from pymatgen.core import Element

from powdersolve.absolute_scale import absolute_scale, absolute_scale_from_map, model_band
from powdersolve.baselines import baseline_grids
from powdersolve.density import DensityConfig, density_grid
from powdersolve.diffraction.sticks import sticks
from powdersolve.errors import InputError
from powdersolve.inputs import (
    ModelInput,
    amplitude_aux,
    composition_amounts,
    composition_input,
    paper_channels,
    reflection_table,
    sample_grids,
    xrd_input_from_sticks,
)
from powdersolve.metrics import invert, map_correlation_per_sample, score_predictions
from powdersolve.model import CMEDNet
from powdersolve.modification import ModificationConfig, modify_density
from powdersolve.sharpen import sharpen_map
from powdersolve.structures import Crystal, crystal_system, iter_structure_files, load_crystal
from powdersolve.weights import load_model, weights_checksum


@dataclass(frozen=True)
class EvalConfig:
    """Settings of an evaluation.

    Attributes:
        grid: grid points per axis of truth and prediction.
        samples: latent samples per crystal (sample 0 is the posterior mean); scores are best over samples.
        seed: seeds latent samples and the random-atoms baseline.
        system: only structures of this crystal system (None = all).
        q_limit: measured range of the simulated pattern (1/A); None = the model's full axis.
        baselines: also score the mean and random-atoms baselines.
        composition: composition encoding to feed (None = the model's own).
        symmetrise: also score every sample averaged over the most symmetric space group it
            plausibly obeys, found in the map itself (no group is given); the random-atoms baseline
            gets the same treatment, so that the gain of averaging alone is measured beside.
        sharpen: (power, blur B in A^2): also score every sample after :func:`powdersolve.sharpen.sharpen_map`
            (post-processing); random atoms and the extra models get the same treatment.
        absolute: also score every sample put on the absolute scale of the true cell content
            (:func:`powdersolve.absolute_scale.absolute_scale`: mean F(000)/V, variance shrunk to at most
            the atoms', or set to it where the map's own mean is far off; no pattern is read); random
            atoms and the extra models get the same treatment.
        absolute_map: the same with the formula only, Z read from the first map's peaks where they make
            it clear, the map's own scale kept otherwise (what ``predict`` does without ``--formula-units``).
        modify: also score every sample after density modification with the pattern's magnitudes
            (:func:`powdersolve.modification.modify_density`; its B is set to the model's); random atoms
            and the extra models get the same treatment, so the gain of the magnitudes alone is measured.
            With ``modify.symmetry`` the maps are scored both without (``modified``) and with the space
            group found in each map (``modified_symmetric``).
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


def symmetry_averaged(grids: np.ndarray, lattice: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each grid averaged over the first plausible space group its own map shows, and that group's symbol
    ('none' where no group was searched or found)."""
    from powdersolve.solve.mapsymmetry import symmetrise_found

    averaged, found = symmetrise_found(grids, lattice)
    return averaged.astype(np.float32), [g.symbol if g else "none" for g in found]


def model_inputs(model: CMEDNet, crystal: Crystal, q_limit: float | None = None,
                 composition: str | None = None) -> ModelInput:
    """The model's inputs simulated from a crystal's stick pattern (cell known, as for indexed data)."""
    cfg = model.cfg
    s = sticks(crystal, q_max=cfg.q_max)
    if cfg.xrd_input == "paper":
        x = paper_channels(crystal, cfg)
    else:
        x = xrd_input_from_sticks(cfg, s.q, s.intensity, q_limit)
    c = composition_input(cfg, composition_amounts(crystal), composition, rng=np.random.default_rng(0))
    aux = None
    if cfg.amplitudes:
        table = reflection_table(crystal.lattice, cfg.hkl_box, cfg.q_max)
        aux = amplitude_aux(table, s.q, s.intensity, q_limit or cfg.q_max, cfg.b_iso, crystal.volume)
    return ModelInput(x, c, aux)


def _score_baseline(name: str, grids: np.ndarray, truth: np.ndarray, row: dict, base_rows: dict[str, list]) -> None:
    """Score a baseline's grids against the truth: the score goes to ``base_rows[name]`` (for the summary)
    and its CC and SSIM to the crystal's ``row``."""
    s = score_predictions(grids, truth)
    base_rows.setdefault(name, []).append(s)
    row[f"{name}_cc"], row[f"{name}_ssim"] = s.cc, s.ssim


def _treatments(cfg: EvalConfig, b_iso: float, q_limit: float) -> dict[str, Callable]:
    """Post-processing steps scored beside the raw maps: name -> fn(grids, crystal, sticks, band) -> grids,
    ``band`` being the Miller-index box the maps are limited to (None: the grid's)."""
    out: dict[str, Callable] = {}
    if cfg.sharpen:
        out["sharpened"] = lambda g, c, s, band: sharpen_map(g, c.lattice, *cfg.sharpen)
    if cfg.absolute:
        out["absolute"] = lambda g, c, s, band: absolute_scale(g, c.lattice, c.numbers, c.occupancy, b_iso, band)
    if cfg.absolute_map:
        out["absolute_map"] = lambda g, c, s, band: absolute_scale_from_map(g, c.lattice, cell_formula(c), b_iso,
                                                                            band)[0]
    if cfg.modify:
        for name, symmetry in (("modified", False), ("modified_symmetric", True)):
            if symmetry and not cfg.modify.symmetry:
                continue
            mcfg = replace(cfg.modify, b_iso=b_iso, symmetry=symmetry)
            out[name] = lambda g, c, s, band, m=mcfg: modify_density(g, c.lattice, s.q, s.intensity, q_limit,
                                                                       c.numbers, c.occupancy, m)
    return out


def cell_formula(crystal: Crystal) -> str:
    """The cell's content as a formula string, e.g. 'Ca4F8' (occupancy-weighted amounts)."""
    return "".join(f"{Element.from_Z(z).symbol}{amount:g}" for z, amount in composition_amounts(crystal).items())


def _summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "std": float("nan")}
    return {"mean": float(a.mean()), "median": float(np.median(a)), "std": float(a.std())}


def evaluate(weights: str | Path, structures: str | Path, cfg: EvalConfig = EvalConfig(),
             save_grids: str | Path | None = None, extra_models: dict[str, str | Path] | None = None,
             progress: bool = True) -> dict:
    """Score a model (and baselines, and ``extra_models`` such as the no-XRD ablation) on real structures.

    Returns the JSON-ready report (fields n, cc_mean, cc_median, ssim_mean, ssim_median, psnr_mean,
    baselines, per_spacegroup, per_crystal, protocol).
    """
    model, side = load_model(weights)
    others = {name: load_model(p)[0] for name, p in (extra_models or {}).items()}
    files = iter_structure_files(structures)
    crystals = []
    for f in files:
        c = load_crystal(f)
        if cfg.system and crystal_system(max(c.spacegroup, 1)) != cfg.system:
            continue
        crystals.append((f, c))
    if not crystals:
        raise InputError(f"{structures}: no {cfg.system or ''} structures to evaluate")
    dcfg = DensityConfig(b_iso=model.cfg.b_iso, grid=cfg.grid)
    rows, base_rows = [], {"mean": [], "random_atoms": [], **{k: [] for k in others}}
    iterator = crystals
    if progress:
        from tqdm import tqdm

        iterator = tqdm(crystals, desc="evaluate", unit="crystal")
    treatments = _treatments(cfg, model.cfg.b_iso, cfg.q_limit or model.cfg.q_max)
    t_pred = t_score = 0.0
    for f, c in iterator:
        truth = density_grid(c, dcfg)
        pattern = sticks(c, q_max=model.cfg.q_max) if cfg.modify else None  # only modification reads it
        t0 = time.perf_counter()
        preds = sample_grids(model, model_inputs(model, c, cfg.q_limit, cfg.composition), cfg.samples, cfg.grid,
                             cfg.seed)
        t1 = time.perf_counter()
        score = score_predictions(preds, truth)
        t_score += time.perf_counter() - t1
        t_pred += t1 - t0
        # Powder data cannot tell a structure from its inverse: report the CC allowing inversion beside.
        cc_inv = float(np.max(map_correlation_per_sample(invert(preds), truth)[0]))
        row = {"file": f.name, "formula": c.formula, "spacegroup": c.spacegroup, "natoms": int(len(c.numbers)),
               "cc": score.cc, "ssim": score.ssim, "psnr": score.psnr, "ssim_aligned": score.ssim_aligned,
               "cc_with_inversion": max(score.cc, cc_inv)}
        if cfg.symmetrise:
            averaged, groups = symmetry_averaged(preds, c.lattice)
            s = score_predictions(averaged, truth)
            inv = float(np.max(map_correlation_per_sample(invert(averaged), truth)[0]))
            row.update(cc_symmetrised=s.cc, ssim_symmetrised=s.ssim, symmetry_found=groups[s.best_sample_cc],
                       cc_symmetrised_with_inversion=max(s.cc, inv))
        for t, fn in treatments.items():
            s = score_predictions(fn(preds, c, pattern, model_band(model.cfg)), truth)
            row.update({f"cc_{t}": s.cc, f"ssim_{t}": s.ssim, f"ssim_aligned_{t}": s.ssim_aligned,
                        f"psnr_{t}": s.psnr})

        if cfg.baselines:
            for name, grid_list in baseline_grids(c, truth, dcfg, cfg.seed, cfg.samples).items():
                grids = np.stack(grid_list)
                _score_baseline(name, grids, truth, row, base_rows)
                if name != "random_atoms":
                    continue
                if cfg.symmetrise:
                    averaged = symmetry_averaged(grids, c.lattice)[0]
                    _score_baseline("random_atoms_symmetrised", averaged, truth, row, base_rows)
                for t, fn in treatments.items():
                    _score_baseline(f"random_atoms_{t}", fn(grids, c, pattern, None), truth, row, base_rows)
        for name, m in others.items():
            grids = sample_grids(m, model_inputs(m, c, cfg.q_limit), cfg.samples, cfg.grid, cfg.seed)
            _score_baseline(name, grids, truth, row, base_rows)
            for t, fn in treatments.items():
                _score_baseline(f"{name}_{t}", fn(grids, c, pattern, model_band(m.cfg)), truth, row, base_rows)
        rows.append(row)
        if save_grids:
            d = Path(save_grids)
            d.mkdir(parents=True, exist_ok=True)
            stem = f.stem
            np.save(d / f"{stem}_gt.npy", truth.astype(np.float32))
            np.save(d / f"{stem}_pred.npy", preds[score.best_sample_ssim].astype(np.float32))
    per_sg: dict[str, dict] = {}
    for sg in sorted({r["spacegroup"] for r in rows}):
        sel = [r for r in rows if r["spacegroup"] == sg]
        per_sg[str(sg)] = {"n": len(sel), "cc_mean": float(np.mean([r["cc"] for r in sel])),
                           "ssim_mean": float(np.mean([r["ssim"] for r in sel]))}
    cc = _summary([r["cc"] for r in rows])
    ssim = _summary([r["ssim"] for r in rows])
    psnr = _summary([r["psnr"] for r in rows])
    baselines = {name: {"cc_mean": float(np.mean([s.cc for s in v])), "ssim_mean": float(np.mean([s.ssim for s in v])),
                        "psnr_mean": float(np.mean([s.psnr for s in v])),
                        "ssim_aligned_mean": float(np.mean([s.ssim_aligned for s in v]))}
                 for name, v in base_rows.items() if v}
    return {
        "n": len(rows), "cc_mean": cc["mean"], "cc_median": cc["median"], "cc_std": cc["std"],
        "cc_with_inversion_mean": float(np.mean([r["cc_with_inversion"] for r in rows])),
        **({"cc_symmetrised_mean": float(np.mean([r["cc_symmetrised"] for r in rows])),
            "cc_symmetrised_with_inversion_mean": float(np.mean([r["cc_symmetrised_with_inversion"] for r in rows])),
            "ssim_symmetrised_mean": float(np.mean([r["ssim_symmetrised"] for r in rows]))} if cfg.symmetrise else {}),
        **{f"{k}_{t}_mean": float(np.mean([r[f"{k}_{t}"] for r in rows]))
           for t in treatments for k in ("cc", "ssim", "ssim_aligned", "psnr")},
        "ssim_mean": ssim["mean"], "ssim_median": ssim["median"], "ssim_std": ssim["std"],
        "ssim_aligned_mean": float(np.mean([r["ssim_aligned"] for r in rows])),
        "psnr_mean": psnr["mean"], "psnr_median": psnr["median"],
        "baselines": baselines, "per_spacegroup": per_sg, "per_crystal": rows,
        "protocol": {**asdict(cfg), "rotations": 24, "shifts": "all integer origin shifts (cc only)",
                     "B": model.cfg.b_iso, "xrd_input": model.cfg.xrd_input, "q_max": model.cfg.q_max,
                     "wavelengths": list(model.cfg.wavelengths), "weights": str(weights),
                     "weights_sha256": weights_checksum(weights), "model_config": model.cfg.to_dict(),
                     "training": side.get("metadata", {})},
        "timing": {"predict_s_per_crystal": t_pred / len(rows), "score_s_per_crystal": t_score / len(rows)},
    }
