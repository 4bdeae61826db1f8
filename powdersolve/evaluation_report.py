"""Summaries of an evaluation's per-crystal rows: means over crystals of the posterior mean (the primary
score) and of the best of N samples (an oracle pick, labelled so), each baseline's, per crystal system and
per space group.

A row (one crystal) holds ``cc``, ``ssim``, ``psnr``, ``ssim_aligned`` (best over samples) and the same
with ``_posterior_mean`` (sample 0), for the raw maps and with ``_<step>`` for each post-processing step.
"""

from __future__ import annotations

import numpy as np

from powdersolve.baselines import BASELINE_KNOWS
from powdersolve.metrics import CrystalScore

#: Post-processing steps that read the true cell content (formula and Z) of the crystal.
TRUE_Z_TREATMENTS = {"absolute": True, "absolute_map": False, "modified": True, "modified_symmetric": True,
                     "sharpened": False, "flipped": False, "flipped_checked": False}
ORACLE_NOTE = ("*_best_of_n_oracle (and the older cc_mean, ssim_mean, psnr_mean) is the best of the N samples "
               "picked against the truth, which no user can do; *_posterior_mean scores sample 0, the map a "
               "user gets")


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def summarise(rows: list[dict], base: list[tuple[str, str, CrystalScore]], treatments: list[str],
              symmetrise: bool = False) -> dict:
    """Means over crystals: posterior mean (primary), oracle best of N, and each baseline's."""
    out: dict = {"n": len(rows)}
    keys = ["cc", "ssim", "psnr", "ssim_aligned"] + [f"{k}_{t}" for t in treatments
                                                     for k in ("cc", "ssim", "ssim_aligned", "psnr")]
    if symmetrise:
        keys += ["cc_symmetrised", "ssim_symmetrised"]
    for k in keys:
        out[f"{k}_posterior_mean"] = _mean(rows, f"{k}_posterior_mean")
        out[f"{k}_best_of_n_oracle"] = out[f"{k}_mean"] = _mean(rows, k)
    for k in ("cc", "ssim", "psnr"):
        out[f"{k}_posterior_mean_median"] = float(np.median([r[f"{k}_posterior_mean"] for r in rows]))
        out[f"{k}_median"] = float(np.median([r[k] for r in rows]))
    out["cc_std"] = float(np.std([r["cc"] for r in rows]))
    out["cc_posterior_mean_std"] = float(np.std([r["cc_posterior_mean"] for r in rows]))
    out["cc_with_inversion_mean"] = _mean(rows, "cc_with_inversion")
    out["cc_with_inversion_posterior_mean"] = _mean(rows, "cc_with_inversion_posterior_mean")
    if symmetrise:
        out["cc_symmetrised_with_inversion_mean"] = _mean(rows, "cc_symmetrised_with_inversion")
    out["baselines"] = {name: _baseline_summary(name, [s for _, n, s in base if n == name])
                        for name in dict.fromkeys(n for _, n, _ in base)}
    return out


def _baseline_summary(name: str, scores: list[CrystalScore]) -> dict:
    """Means over crystals of one baseline: ``cc_mean`` over its best candidate (random atoms: best of N
    draws; the deterministic baselines have one), ``cc_single_mean`` over its first, and what it knows."""
    root = next((b for b in BASELINE_KNOWS if name == b or name.startswith(f"{b}_")), name)
    knows, true_z = BASELINE_KNOWS.get(root, ("another model's maps from the same inputs", False))
    treated_with_true_z = any(name.endswith(f"_{t}") and z for t, z in TRUE_Z_TREATMENTS.items())
    return {"n": len(scores), "cc_mean": float(np.mean([s.cc for s in scores])),
            "cc_single_mean": float(np.mean([s.cc_posterior_mean for s in scores])),
            "ssim_mean": float(np.mean([s.ssim for s in scores])),
            "psnr_mean": float(np.mean([s.psnr for s in scores])),
            "ssim_aligned_mean": float(np.mean([s.ssim_aligned for s in scores])), "knows": knows,
            "uses_true_z": true_z or treated_with_true_z}


def per_spacegroup(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for sg in sorted({r["spacegroup"] for r in rows}):
        sel = [r for r in rows if r["spacegroup"] == sg]
        out[str(sg)] = {"n": len(sel), "cc_posterior_mean": _mean(sel, "cc_posterior_mean"),
                        "cc_mean": _mean(sel, "cc"), "ssim_mean": _mean(sel, "ssim")}
    return out


def per_system(rows: list[dict], base: list[tuple[str, str, CrystalScore]], treatments: list[str],
               symmetrise: bool = False) -> dict[str, dict]:
    out = {}
    for system in dict.fromkeys(r["system"] for r in rows):
        sel = [r for r in rows if r["system"] == system]
        # A system's crystals may be scored by more than one model (trigonal P and R lattices).
        out[system] = {"model_system": ", ".join(dict.fromkeys(r["model_system"] for r in sel)),
                       "weights": ", ".join(dict.fromkeys(r["weights"] for r in sel)),
                       **summarise(sel, [b for b in base if b[0] == system], treatments, symmetrise)}
    return out
