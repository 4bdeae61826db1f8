"""Steps after sampling: the mean map averaged over the space group it shows, density-modified, and
charge-flipped."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from powdersolve.cell import metric_family
from powdersolve.errors import ModificationError
from powdersolve.maps.flipping import FlipConfig, charge_flip
from powdersolve.maps.modification import ModificationConfig, modify_density, modify_density_symmetric
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.maps.scale import cell_atoms
from powdersolve.maps.symmetry import FAMILY_GROUPS, MapSymmetry, plausible_groups_of, symmetrise_map
from powdersolve.predict.result import Prediction
from powdersolve.predict.steps import PEAK_TOL_Q, picked_peaks


def symmetrise(mean: np.ndarray, lattice: np.ndarray, log: list[str]) -> tuple[np.ndarray | None, dict]:
    """The mean map averaged over the first plausible space group it shows, and what was found."""
    if metric_family(lattice) not in FAMILY_GROUPS:
        log.append("symmetrise: the cell has neither a cubic nor a hexagonal metric; no space-group search")
        return None, {"group": None, "reason": "cell metric is neither cubic nor hexagonal"}
    groups = plausible_groups_of(mean, lattice)
    if not groups:
        log.append("symmetrise: the map obeys no space group of its cell family well enough (cc_min < 0.5)")
        return None, {"group": None, "reason": "no plausible space group"}
    best = groups[0]
    log.append(f"symmetrise: mean map averaged over {best.symbol} (No. {best.number}; weakest operation "
               f"correlation {best.cc_min:.2f}), moved to that group's standard origin")
    info = {"group": best.symbol, "number": best.number, "origin_shift_frac": list(best.origin),
            "cc_min": best.cc_min, "cc_mean": best.cc_mean,
            "plausible": [{"group": g.symbol, "number": g.number, "cc_min": g.cc_min} for g in groups],
            "note": "averaged map is in the group's standard origin (fractional shift above from the mean map's)"}
    return symmetrise_map(mean, best.number, best.origin).astype(np.float32), info


def modify_prediction(pred: Prediction, cfg: ModificationConfig, composition: str | None = None,
                      formula_units: int | None = None) -> Prediction:
    """``pred`` with its mean map density-modified with its measured peaks (a new Prediction; ``pred`` is kept).

    Sets ``modified`` (N, N, N) e/A^3, ``modification`` (how) and ``modified_group`` (the space group
    the modified map was averaged over, or None), logs the step and times it; the magnitudes are
    damped to the model's B. ``composition`` and ``formula_units`` put them on the Wilson scale (see
    :class:`PredictConfig`). Raises :class:`~powdersolve.errors.ModificationError` when no measured
    peak falls on a reflection of the cell.
    """
    t0 = time.perf_counter()
    log: list[str] = []
    modified, modification, group = _modify(pred.mean, pred.lattice, measured_peaks(pred), composition, formula_units,
                                            replace(cfg, b_iso=pred.model["b_iso_A2"], tol=PEAK_TOL_Q), log)
    return replace(pred, modified=modified, modification=modification, modified_group=group,
                   processing=[*pred.processing, *log], timings={**pred.timings, "modify": time.perf_counter() - t0})


def flip_prediction(pred: Prediction, cfg: FlipConfig) -> Prediction:
    """``pred`` with its mean map's phases refined by charge flipping of its measured peaks' magnitudes (a new
    Prediction; ``pred`` is kept).

    Sets ``flipped`` (N, N, N, on the mean map's scale, e/A^3 where it is) and ``flipping`` (how, the flip R
    factor, and which map to prefer), logs the step and times it. Where no measured peak falls on a
    reflection of the cell there is nothing to flip: ``flipping`` says so and ``flipped`` stays None.
    """
    t0 = time.perf_counter()
    peaks = measured_peaks(pred)
    cfg = replace(cfg, b_iso=pred.model["b_iso_A2"], tol=PEAK_TOL_Q)
    try:
        result = charge_flip(pred.mean, pred.lattice, peaks, cfg)
    except ModificationError as exc:
        return replace(pred, flipping={"skipped": str(exc)},
                       processing=[*pred.processing, f"charge flipping skipped: {exc}"])
    info = {"cycles": cfg.cycles, "delta_sigma": cfg.delta, "reshare_every": cfg.reshare_every(pred.lattice),
            "polish_cycles": cfg.polish, "peaks": int(peaks.q.size), "q_limit_inv_A": peaks.q_limit,
            "r_factor": result.r_factor, "start": "the mean map's phases", "agreement_with_mean": result.agreement,
            "confirms_mean": result.confirmed, "preferred_map": "density" if result.confirmed else "density_flipped",
            "note": (f"the flipped map agrees with the mean map at CC >= {cfg.confirm}: the mean map's phases stand"
                     if result.confirmed else
                     f"the flipped map departs from the mean map (CC {result.agreement:.2f} < {cfg.confirm}): "
                     "prefer density_flipped.*")}
    log = (f"charge flipping: {peaks.q.size} peaks' magnitudes from the mean map's phases, {cfg.cycles} cycles "
           f"(+{cfg.polish} of positivity), flip R {result.r_factor:.3f}, agreement with the mean map "
           f"{result.agreement:.2f}")
    return replace(pred, flipped=result.grid.astype(np.float32), flipping=info, processing=[*pred.processing, log],
                   timings={**pred.timings, "flip": time.perf_counter() - t0})


def measured_peaks(pred: Prediction) -> MeasuredPeaks:
    """The prediction's picked peaks as Q (1/A) and |F|^2-like intensity within the measured range, and its
    upper edge (1/A)."""
    return picked_peaks(pred.peaks, pred.processed[0], pred.wavelength.effective)


def _modify(mean: np.ndarray, lattice: np.ndarray, peaks: MeasuredPeaks, composition: str | None,
            formula_units: int | None, cfg: ModificationConfig,
            log: list[str]) -> tuple[np.ndarray, dict, MapSymmetry | None]:
    """The mean map density-modified with the measured peaks, and how.

    With a formula and Z the magnitudes get the Wilson scale and F(000) the cell's electron count.
    Otherwise they are scaled to the map's own coefficients (``scale='model'``) and F(000) is the
    map's electron count: the network's electron count is off by 10-30% on generated crystals, too
    far to guess Z from.
    """
    volume = abs(float(np.linalg.det(lattice)))
    electrons_map = float(mean.astype(np.float64).mean() * volume)
    atoms = cell_atoms(composition, formula_units)
    info: dict = {"cycles": cfg.cycles, "b_work_A2": cfg.b_work, "final": cfg.final, "peaks": int(peaks.q.size),
                  "symmetry_constrained": cfg.symmetry, "histogram_matching": cfg.histogram}
    if atoms is not None:
        numbers, occupancy = atoms
        electrons = None
        info.update(scale="wilson", formula_units_per_cell=formula_units)
    else:
        cfg = replace(cfg, scale="model")
        numbers, occupancy, electrons = None, None, electrons_map
        info.update(scale="model", note="no formula and Z: magnitudes scaled to the map, F(000) from the map")
    how = f"density modification: {peaks.q.size} peaks' magnitudes with the map's phases, {cfg.cycles} cycles, " \
          f"{info['scale']} scale"
    if not cfg.symmetry:
        grids = modify_density(mean[None], lattice, peaks, numbers, occupancy, cfg, electrons)
        log.append(how)
        return grids[0].astype(np.float32), info, None
    grids, (group,) = modify_density_symmetric(mean[None], lattice, peaks, numbers, occupancy, cfg, electrons)
    if group is None:
        info["symmetry"] = {"group": None, "reason": "no plausible space group in the modified map (cc_min < 0.5)"}
    else:
        info["symmetry"] = {"group": group.symbol, "number": group.number, "origin_shift_frac": list(group.origin),
                            "cc_min": group.cc_min, "cc_mean": group.cc_mean,
                            "note": ("the modified map lies at density.*'s origin; the group's standard origin is "
                                     "at origin_shift_frac" if cfg.origin == "map" else
                                     "the modified map lies at this group's standard origin, shifted by "
                                     "origin_shift_frac from density.*")}
    log.append(f"{how}, then {cfg.cycles} more averaged over "
               f"{'no group (none plausible)' if group is None else group.symbol}")
    return grids[0].astype(np.float32), info, group
