"""Sampling step of a prediction: latent samples decoded to grids, put on the absolute scale, reduced."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np

from powdersolve.cell import Cell
from powdersolve.inputs import ModelInput, iter_sample_grids
from powdersolve.maps.scale import STRETCH_BEYOND, absolute_scale, cell_atoms, read_formula_units
from powdersolve.model import ModelConfig, model_band
from powdersolve.predict.config import PredictConfig

#: Voxels decoded at once (samples x grid^3); bounds the decoder's temporaries to ~100 MB.
CHUNK_VOXELS = 4_000_000

Progress = Callable[[str], None]


def sample(model, inputs: ModelInput, cell: Cell, config: PredictConfig, log: list[str], say: Progress
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """(mean, std, samples or None) over ``config.samples`` decoded grids (e/A^3), and their scale.

    Sample 0 is the posterior mean, the rest random with a seeded generator, decoded in bounded-memory
    chunks; with a formula with ratios and Z (given, or read from the posterior-mean map when clear)
    each sample is first put on the absolute scale of the cell content (:mod:`powdersolve.maps.scale`).
    """
    mcfg = model.cfg
    lattice = cell.matrix
    say(f"drawing {config.samples} samples on a {config.grid}^3 grid")
    chunks: Iterator[np.ndarray] = iter_sample_grids(model, inputs, config.samples, config.grid, config.seed,
                                                     CHUNK_VOXELS)
    formula, z_cell, z_source, z_note = config.composition, config.formula_units, "given", {}
    if config.absolute_scale and z_cell is None and cell_atoms(formula, 1) is not None:
        say("reading Z from the posterior-mean map")
        head = next(chunks)  # sample 0 is the posterior mean; the chunk is scaled with the rest below
        chunks = itertools.chain([head], chunks)
        formula, z_cell, z_note = _formula_units_of_map(head[0], lattice, formula, mcfg, log)
        z_source = "read from the map's peaks"
    atoms = cell_atoms(formula, z_cell)
    if config.absolute_scale and atoms is not None:
        band = model_band(mcfg)
        chunks = (absolute_scale(g, lattice, *atoms, mcfg.b_iso, band) for g in chunks)
        scale = {"kind": "absolute", "formula": formula, "formula_units_per_cell": z_cell,
                 "formula_units_source": z_source, **z_note,
                 "note": "each sample's mean set to F(000)/V and any variance above the one the cell's atoms imply "
                         f"shrunk onto it (set onto it where the sample's own mean was off by over "
                         f"{STRETCH_BEYOND:g}x)"}
        log.append(f"absolute scale: every sample put on the mean, and at most the variance, of "
                   f"{formula} x {z_cell} per cell")
    else:
        scale = {"kind": "network", **z_note,
                 "note": "the network's own electron scale (give --composition with ratios, and --formula-units "
                         "where the map does not make Z clear, for the absolute scale)"}
    mean, std, samples = mean_std(chunks, config.keep_samples)
    return mean, std, samples, scale


def _formula_units_of_map(mean_map: np.ndarray, lattice: np.ndarray, formula: str, mcfg: ModelConfig,
                          log: list[str]) -> tuple[str, int | None, dict]:
    """(reduced formula, Z or None, summary fields) read from the posterior-mean map; the step is logged."""
    reduced, z, candidates, verdict = read_formula_units(mean_map, lattice, formula, mcfg.b_iso, model_band(mcfg))
    note = {"formula_units_candidates": [{"Z": zc, "cost": round(c, 4)} for zc, c in candidates]}
    if verdict == "clear":
        log.append(f"Z = {z} x {reduced} per cell read from the posterior-mean map's peaks "
                   f"(electrons misplaced {candidates[0][1]:.2f} of the formula's)")
    elif verdict == "overfills":
        log.append(f"Z = {candidates[0][0]} x {reduced} read from the map's peaks cannot fit the cell; not used")
    else:
        log.append("Z not clear from the map's peaks (" + ", ".join(f"Z={zc}: {c:.2f}" for zc, c in candidates)
                   + "); the network's electron scale kept")
    return reduced, z, note


def mean_std(chunks, keep: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Mean and std over sample grids streamed in chunks (Chan's pairwise update), keeping them if asked."""
    mean = m2 = None
    n = 0
    kept = [] if keep else None
    for g in chunks:
        g = g.astype(np.float64)
        b = g.shape[0]
        bm, bm2 = g.mean(0), ((g - g.mean(0)) ** 2).sum(0)
        if mean is None:
            mean, m2 = np.zeros_like(bm), np.zeros_like(bm)
        delta = bm - mean
        mean += delta * (b / (n + b))
        m2 += bm2 + delta**2 * (n * b / (n + b))
        n += b
        if kept is not None:
            kept.append(g.astype(np.float32))
    std = np.sqrt(np.maximum(m2 / n, 0.0))
    return mean.astype(np.float32), std.astype(np.float32), (np.concatenate(kept) if kept is not None else None)
