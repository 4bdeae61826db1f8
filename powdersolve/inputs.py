"""What a model sees and what it is trained to output, built from a crystal or a measured pattern.

One place decides how a pattern, a composition and a target density become tensors, so that
training, evaluation and prediction cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powdersolve.cell import Composition
from powdersolve.composition import encode
from powdersolve.diffraction.encoding import QAxis, encode_q, encode_two_theta
from powdersolve.diffraction.peaks import MERGE_TOL_Q, merge_tolerance, peak_membership, reflections_per_peak
from powdersolve.diffraction.sticks import Sticks, sticks
from powdersolve.model import ModelConfig, half_space_hkl
from powdersolve.scattering import reflection_q, structure_factors
from powdersolve.structures.crystal import Crystal


def composition_amounts(crystal: Crystal) -> dict[int, float]:
    """Atoms per cell by atomic number (occupancy-weighted)."""
    out: dict[int, float] = {}
    for z, o in zip(crystal.numbers.tolist(), crystal.occupancy.tolist()):
        out[z] = out.get(z, 0.0) + o
    return out


def composition_input(cfg: ModelConfig, amounts: dict, kind: str | None = None,
                      rng: np.random.Generator | None = None) -> np.ndarray:
    """Composition vector (119,) float32 in the model's encoding (or ``kind``)."""
    return encode(amounts, kind or cfg.composition, rng=rng)


def xrd_input_from_sticks(cfg: ModelConfig, q: np.ndarray, intensity: np.ndarray, q_limit: float | None = None,
                          xrd_paper: np.ndarray | None = None) -> np.ndarray:
    """Encoded pattern (C, bins) float32 for the model's input axis.

    For ``xrd_input='q'``: sticks/peaks (Q in 1/A, |F|^2-like intensity without Lorentz factor).
    For ``xrd_input='paper'``: ``xrd_paper`` (precomputed channels) is used when given.
    """
    if cfg.xrd_input == "q":
        return encode_q(q, intensity, QAxis(cfg.q_max, cfg.xrd_bins), q_limit)
    if xrd_paper is not None:
        return np.asarray(xrd_paper, dtype=np.float32).reshape(cfg.xrd_channels, cfg.xrd_bins)
    s = Sticks(np.asarray(q), np.asarray(intensity), np.zeros((len(q), 3), int), np.ones(len(q), int))
    return np.stack([encode_two_theta(s, lam, cfg.xrd_bins) for lam in cfg.wavelengths])


def paper_channels(crystal: Crystal, cfg: ModelConfig, b_iso: float = 0.0) -> np.ndarray:
    """Paper encoding of a crystal (thermal factor ``b_iso``, A^2) for every wavelength channel of ``cfg`` (C, bins)."""
    q_max = 4 * np.pi / min(cfg.wavelengths) + 0.01
    s = sticks(crystal, q_max=q_max, b_iso=b_iso)
    return np.stack([encode_two_theta(s, lam, cfg.xrd_bins) for lam in cfg.wavelengths])


def fourier_targets(crystal: Crystal, cfg: ModelConfig) -> tuple[float, np.ndarray]:
    """Target of the fourier decoder: DC term and half-space coefficients F(h)/V (e/A^3, complex64)."""
    hkl = half_space_hkl(cfg.hkl_box)
    f = structure_factors(crystal, np.vstack([np.zeros((1, 3), int), hkl]), cfg.b_iso) / crystal.volume
    return float(f[0].real), f[1:].astype(np.complex64)


# ----------------------------------------------------------------------------- indexed amplitudes


@dataclass(frozen=True)
class ReflectionTable:
    """Where the decoder's Miller indices fall on the Q axis for one cell.

    Attributes:
        q_box: (M,) Q = 2 pi / d (1/A) of each half-space box index of the decoder.
        q_all: sorted Q (1/A) of every lattice reflection (full sphere, no (0,0,0)) up to ``q_max``;
            counts how many reflections share a powder peak.
    """

    q_box: np.ndarray
    q_all: np.ndarray


def reflection_table(lattice: np.ndarray, box: tuple[int, int, int], q_max: float) -> ReflectionTable:
    """Reflection positions of the decoder box and of all reflections to ``q_max`` (1/A) for a cell."""
    recip = np.linalg.inv(np.asarray(lattice, dtype=np.float64)).T
    q_box = 2 * np.pi * np.linalg.norm(half_space_hkl(box) @ recip, axis=1)
    return ReflectionTable(q_box, reflection_q(lattice, q_max))


def box_amplitudes(table: ReflectionTable, peak_q: np.ndarray, peak_i: np.ndarray, q_limit: float,
                   b_iso: float, tol: float = MERGE_TOL_Q) -> tuple[np.ndarray, np.ndarray]:
    """Observed structure-factor amplitudes on the decoder's box, from a powder peak list.

    Each peak's intensity (|F|^2-like, no Lorentz factor) is shared equally by the lattice
    reflections within ``tol`` (1/A) of it (exact for symmetry-equivalent reflections, the usual
    equipartition guess for accidental overlaps); a box index gets sqrt(intensity / count) of its
    peak, 0 when no peak is there (absent or too weak). Amplitudes are multiplied by the target's
    blur exp(-B (Q / 4 pi)^2) so that they track the target coefficients, then scaled to max 1.

    Returns (amplitudes (M,), mask (M,)), float32; mask is 1 where Q <= ``q_limit`` (measured).
    """
    q_box = table.q_box
    amp = np.zeros(len(q_box))
    peak_q = np.asarray(peak_q, dtype=np.float64)
    peak_i = np.asarray(peak_i, dtype=np.float64)
    ok = (peak_q <= q_limit + tol) & (peak_i > 0)
    peak_q, peak_i = peak_q[ok], peak_i[ok]
    if peak_q.size:
        count = reflections_per_peak(table.q_all, peak_q, tol)
        member = peak_membership(q_box, peak_q, tol)
        hit = member >= 0
        amp[hit] = np.sqrt(peak_i[member[hit]] / np.maximum(count[member[hit]], 1))
    amp *= np.exp(-b_iso * (q_box / (4 * np.pi)) ** 2)
    mask = (q_box <= q_limit).astype(np.float32)
    amp *= mask
    top = amp.max(initial=0.0)
    return (amp / top if top > 0 else amp).astype(np.float32), mask


def amplitude_aux(table: ReflectionTable, peak_q: np.ndarray, peak_i: np.ndarray, q_limit: float, b_iso: float,
                  volume: float, tol: float = MERGE_TOL_Q) -> dict[str, np.ndarray]:
    """The decoder's extra inputs for amplitude models: amplitudes, measured mask, log cell volume (A^3)."""
    amp, mask = box_amplitudes(table, peak_q, peak_i, q_limit, b_iso, tol)
    return {"amp": amp, "mask": mask, "logv": np.float32(np.log(volume))}


@dataclass(frozen=True)
class ModelInput:
    """Everything one prediction feeds the network: pattern (C, L), composition (119,), decoder extras."""

    xrd: np.ndarray
    comp: np.ndarray
    aux: dict[str, np.ndarray] | None = None


def sample_grids(model, inputs: ModelInput, samples: int, grid: int, seed: int = 0,
                 max_voxels: int = 4_000_000) -> np.ndarray:
    """(S, N, N, N) float32 density samples (e/A^3) for one input; sample 0 is the posterior mean."""
    return np.concatenate(list(iter_sample_grids(model, inputs, samples, grid, seed, max_voxels)))


def iter_sample_grids(model, inputs: ModelInput, samples: int, grid: int, seed: int = 0,
                      max_voxels: int = 4_000_000):
    """Yield chunks (s, N, N, N) of the density samples of :func:`sample_grids`, each at most
    ``max_voxels`` grid points, so a caller that reduces them keeps memory bounded."""
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    chunk = max(1, max_voxels // grid**3)
    x = torch.as_tensor(inputs.xrd, dtype=torch.float32)[None]
    c = torch.as_tensor(inputs.comp, dtype=torch.float32)[None]
    aux1 = None
    if inputs.aux is not None:  # scalars become (1,), vectors (1, M)
        aux1 = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32).reshape(1, -1).squeeze(-1)
                if np.ndim(v) == 0 else torch.as_tensor(v, dtype=torch.float32)[None] for k, v in inputs.aux.items()}
    with torch.no_grad():
        for start in range(0, samples, chunk):
            n = min(chunk, samples - start)
            cond, _ = model.encode(x.expand(n, -1, -1), c.expand(n, -1), sample=True, generator=gen)
            if start == 0:
                cond[0] = model.encode(x, c, sample=False)[0][0]
            aux = None if aux1 is None else {k: v.expand(n, *v.shape[1:]) for k, v in aux1.items()}
            yield model.grid(cond, grid, aux=aux).float().numpy()


# ----------------------------------------------------------------------------- a measured pattern


def choose_composition(cfg_model: ModelConfig, text: str | None) -> tuple[np.ndarray, dict]:
    """Composition vector (119,) in the encoding matching what the user gave, and a dict saying which and why.

    A full formula uses the model's training encoding ('fractions'); elements only use 'presence';
    nothing uses 'none'. Any mismatch with the training encoding is stated in the reason.
    """
    trained = cfg_model.composition
    if not cfg_model.use_formula or trained == "none":
        enc, why = "none", "the model has no composition input"
        amounts: dict = {}
    elif text is None:
        enc, why, amounts = "none", "no composition given", {}
    else:
        parsed = Composition.parse(text)
        amounts = parsed.amounts
        if parsed.ratios_known and trained == "fractions":
            enc, why = "fractions", "full formula given"
        elif parsed.ratios_known:
            enc, why = "presence", f"full formula given; the model was trained with '{trained}' (elements only)"
        else:
            enc, why = "presence", "elements only given (no ratios)"
    if enc != trained and trained != "drop":
        why += f"; note the model was trained with '{trained}' composition vectors"
    vec = composition_input(cfg_model, amounts, enc)
    info = {"text": text, "elements": list(amounts), "encoding": enc, "reason": why, "model_trained_with": trained}
    return vec, info


def pattern_input(cfg: ModelConfig, peak_q: np.ndarray, peak_i: np.ndarray, q_limit: float, comp: np.ndarray,
                  lattice: np.ndarray | None = None, tol: float | None = None,
                  table: ReflectionTable | None = None) -> ModelInput:
    """The model input of a pattern: its peaks (Q in 1/A, intensity / LP) up to ``q_limit`` (1/A,
    masked above), the composition vector and, with the cell ``lattice`` (rows, A) for an amplitude
    model, the indexed amplitudes of its decoder box.

    The one builder of model input: prediction (measured peaks), evaluation and simulation (a
    crystal's sticks, :func:`crystal_input`) and training (augmented sticks) all call it. Peaks and
    reflections are matched within ``tol`` (1/A; default :func:`merge_tolerance` of the model's Q
    axis). ``table`` is the cell's :func:`reflection_table`, when the caller has it cached.
    """
    xrd = xrd_input_from_sticks(cfg, peak_q, peak_i, q_limit=q_limit)
    aux = None
    if cfg.amplitudes and lattice is not None:
        table = table or reflection_table(lattice, cfg.hkl_box, cfg.q_max)
        tol = merge_tolerance(cfg.q_max, cfg.xrd_bins) if tol is None else tol
        aux = amplitude_aux(table, peak_q, peak_i, q_limit, cfg.b_iso, abs(np.linalg.det(lattice)), tol=tol)
    return ModelInput(xrd, comp, aux)


def crystal_input(cfg: ModelConfig, crystal: Crystal, q_limit: float | None = None, composition: str | None = None,
                  b_iso: float = 0.0) -> ModelInput:
    """The model input of a known crystal: its stick pattern (thermal factor ``b_iso``, A^2) to
    ``q_limit`` (1/A; default the model's Q range), its composition (encoding ``composition``, default
    the model's) and its true cell. For the paper's 2-theta input the precomputed channels are used."""
    q_limit = cfg.q_max if q_limit is None else min(float(q_limit), cfg.q_max)
    s = sticks(crystal, q_max=cfg.q_max, b_iso=b_iso)
    comp = composition_input(cfg, composition_amounts(crystal), composition, rng=np.random.default_rng(0))
    inputs = pattern_input(cfg, s.q, s.intensity, q_limit, comp, crystal.lattice)
    if cfg.xrd_input == "paper":
        return ModelInput(paper_channels(crystal, cfg, b_iso), comp, inputs.aux)
    return inputs
