"""Prediction: from a measured powder pattern to the electron density (CMED) of its unit cell.

:func:`predict` runs the steps of :mod:`powdersolve.predict.steps` on one pattern file (or an already
read :class:`~powdersolve.formats.Pattern`):

1. read the pattern; the wavelength comes from the file, else from ``PredictConfig.wavelength``;
2. preprocess (:mod:`powdersolve.preprocess`: low-angle cut, zero shift, K-alpha2 stripping,
   background); after stripping the pattern is at K-alpha1;
3. pick and fit peaks, convert them to wavelength-free (Q = 2 pi / d in 1/A, intensity / LP);
4. choose the unit cell: given, or indexed for the model's crystal system (M20 reported);
5. encode the peaks on the model's input axis, masking Q beyond the measured range;
6. draw ``samples`` latent samples (:mod:`powdersolve.predict.sampling`) and reduce them to a mean map
   and a per-voxel standard deviation (e/A^3), on the absolute scale of the cell content where it is known;
7. optionally average the mean map over its space group, density-modify it and charge-flip it
   (:mod:`powdersolve.predict.postprocess`).

:meth:`~powdersolve.predict.result.Prediction.write` stores maps, figures and ``summary.json`` in an
output folder that appears atomically.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from powdersolve.errors import InputError
from powdersolve.formats import Pattern
from powdersolve.predict.config import PredictConfig
from powdersolve.predict.postprocess import flip_prediction, modify_prediction, symmetrise
from powdersolve.predict.result import Prediction
from powdersolve.predict.sampling import sample
from powdersolve.predict.steps import choose_cell, model_input, preprocess_pattern, read, resolve_model
from powdersolve.weights import load_model, weights_checksum

Progress = Callable[[str], None]
#: The default settings (one shared, immutable instance).
DEFAULT_CONFIG = PredictConfig()


class _Clock:
    """Seconds per step, each measured from the end of the previous one."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = now - self._t
        self._t = now


def predict(pattern: str | os.PathLike | Pattern, config: PredictConfig = DEFAULT_CONFIG,
            progress: Progress | None = None) -> Prediction:
    """Predict the electron density of the cell that diffracts ``pattern``.

    Args:
        pattern: a pattern file (any format :func:`powdersolve.formats.read_pattern` reads) or a Pattern.
        config: the settings; see :class:`PredictConfig`.
        progress: called with one-line messages for steps slower than about a second (e.g. click.echo to stderr).

    Returns:
        A :class:`Prediction` (maps in e/A^3 on fractional coordinates, cell in Angstrom/degrees).

    Raises:
        InputError: unreadable pattern, missing wavelength, no peaks, no cell (not given, indexing failed),
            bad weights or composition.
    """
    say = progress or (lambda _msg: None)
    clock = _Clock()
    pat, lam, lam_source = read(pattern, config)
    source = str(pat.source)
    clock.lap("read")
    processed = preprocess_pattern(pat, lam, lam_source, config)
    clock.lap("preprocess")
    if config.cell is None:
        say("indexing the pattern")
    system, wpath, sol = resolve_model(config, pat, lam, source)
    if sol is not None:
        clock.lap("index")
    say(f"loading model {wpath}")
    model, side = load_model(wpath)
    mcfg = model.cfg
    if config.weights is not None:
        if config.system not in ("auto", mcfg.system):
            raise InputError(f"{wpath}: the model was trained on {mcfg.system} crystals, not {config.system}; "
                             "drop --system or give matching weights")
        system = mcfg.system
    clock.lap("load_model")
    cell, cell_source, indexing = choose_cell(config, system, pat, processed, source, sol)
    if cell_source == "indexed" and sol is None:
        clock.lap("index")
    inputs, comp_info, coverage = model_input(mcfg, processed, cell, config.composition)
    clock.lap("encode")
    log = processed.log
    mean, std, samples, scale = sample(model, inputs, cell, config, log, say)
    clock.lap("sample")
    symmetrised, symmetry = symmetrise(mean, cell.matrix, log) if config.symmetrise else (None, None)
    if config.symmetrise:
        clock.lap("symmetrise")
    model_info = {"weights": str(wpath), "sha256": side.get("sha256") or weights_checksum(wpath),
                  "arch": mcfg.arch, "xrd_input": mcfg.xrd_input, "q_max": mcfg.q_max, "xrd_bins": mcfg.xrd_bins,
                  "composition": mcfg.composition, "b_iso_A2": mcfg.b_iso, "system": mcfg.system,
                  "metadata": side.get("metadata", {})}
    pred = Prediction(
        mean=mean, std=std, samples=samples, cell=cell, cell_source=cell_source, indexing=indexing,
        system=system, model_input=inputs.xrd, composition=comp_info, processing=log,
        wavelength=processed.wavelength, q_coverage=coverage, model=model_info, timings=clock.timings,
        source=source, raw=(pat.two_theta, pat.counts), processed=(processed.two_theta, processed.counts),
        peaks=processed.peaks, n_samples=int(config.samples), seed=int(config.seed), symmetrised=symmetrised,
        symmetry=symmetry, scale=scale, excluded=processed.excluded,
    )
    if config.modify is not None:
        pred = modify_prediction(pred, config.modify, config.composition, config.formula_units)
    if config.flip is not None:
        pred = flip_prediction(pred, config.flip)
    return pred
