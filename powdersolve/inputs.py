"""What a model sees and what it is trained to output, built from a crystal or a measured pattern.

One place decides how a pattern, a composition and a target density become tensors, so that
training, evaluation and prediction cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powdersolve.composition import encode
from powdersolve.diffraction.encoding import QAxis, encode_q, encode_two_theta
from powdersolve.diffraction.sticks import Sticks, sticks
from powdersolve.model import ModelConfig, half_space_hkl
from powdersolve.scattering import structure_factors
from powdersolve.structures.crystal import Crystal


@dataclass(frozen=True)
class Augment:
    """Training augmentations of the stick pattern (all drawn per example from one Generator).

    Attributes:
        q_limit_range: upper Q limit (1/A) drawn uniformly in this range with probability
            ``p_truncate``, so lab scans (Cu to 90-120 deg: Q 5.8-7.1) are in distribution.
        p_truncate: probability of truncating.
        b_range: extra thermal B (A^2) applied to the intensities, exp(-B Q^2 / (8 pi^2)) on |F|^2.
        intensity_sigma: lognormal multiplicative jitter of each stick (texture, extraction error).
        detect: sticks weaker than this fraction of the strongest are dropped (detection limit).
        bin_shift: largest integer bin shift of the encoded pattern (zero fill).
        noise: Gaussian noise added to the encoded pattern, then ReLU.
    """

    q_limit_range: tuple[float, float] = (4.5, 8.0)
    p_truncate: float = 0.7
    b_range: tuple[float, float] = (0.0, 1.5)
    intensity_sigma: float = 0.15
    detect: float = 0.003
    bin_shift: int = 1
    noise: float = 1e-3

    @classmethod
    def paper(cls) -> Augment:
        """The paper's augmentation only: bin shift in [-3, 3] and noise 1e-3 + ReLU."""
        return cls(p_truncate=0.0, b_range=(0.0, 0.0), intensity_sigma=0.0, detect=0.0, bin_shift=3)


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


def shift_and_noise(x: np.ndarray, shift: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """The paper's augmentation on an encoded (C, L) pattern: integer roll with zero fill, noise, ReLU.

    The mask channel of the Q encoding (last channel when C == 2) is left untouched.
    """
    out = x.copy()
    chans = out[:1] if out.shape[0] == 2 else out
    if shift:
        s = int(rng.integers(-shift, shift + 1))
        chans[:] = np.roll(chans, s, axis=-1)
        if s > 0:
            chans[..., :s] = 0
        elif s < 0:
            chans[..., s:] = 0
    if noise:
        chans[:] = np.maximum(chans + rng.normal(0, noise, chans.shape).astype(np.float32), 0)
    return out


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


def paper_channels(crystal: Crystal, cfg: ModelConfig) -> np.ndarray:
    """Paper encoding of a crystal for every wavelength channel of ``cfg`` (C, bins)."""
    q_max = 4 * np.pi / min(cfg.wavelengths) + 0.01
    s = sticks(crystal, q_max=q_max)
    return np.stack([encode_two_theta(s, lam, cfg.xrd_bins) for lam in cfg.wavelengths])


def augmented_xrd(cfg: ModelConfig, q: np.ndarray, intensity: np.ndarray, aug: Augment,
                  rng: np.random.Generator, xrd_paper: np.ndarray | None = None) -> np.ndarray:
    """One augmented training input from a stick pattern."""
    if cfg.xrd_input == "paper":
        x = xrd_input_from_sticks(cfg, q, intensity, xrd_paper=xrd_paper)
        return shift_and_noise(x, aug.bin_shift, aug.noise, rng)
    inten = np.asarray(intensity, dtype=np.float64)
    if aug.b_range[1] > 0:
        b = rng.uniform(*aug.b_range)
        inten = inten * np.exp(-b * q**2 / (8 * np.pi**2))
    if aug.intensity_sigma > 0:
        inten = inten * rng.lognormal(0.0, aug.intensity_sigma, inten.shape)
    q_limit = cfg.q_max
    if rng.random() < aug.p_truncate:
        q_limit = float(rng.uniform(*aug.q_limit_range))
    if aug.detect > 0 and inten.size:
        inten = np.where(inten >= aug.detect * inten[q <= q_limit].max(initial=0.0), inten, 0.0)
    x = encode_q(q, inten, QAxis(cfg.q_max, cfg.xrd_bins), q_limit)
    return shift_and_noise(x, aug.bin_shift, aug.noise, rng)


def fourier_targets(crystal: Crystal, cfg: ModelConfig) -> tuple[float, np.ndarray]:
    """Target of the fourier decoder: DC term and half-space coefficients F(h)/V (e/A^3, complex64)."""
    hkl = half_space_hkl(cfg.hkl_box)
    f = structure_factors(crystal, np.vstack([np.zeros((1, 3), int), hkl]), cfg.b_iso) / crystal.volume
    return float(f[0].real), f[1:].astype(np.complex64)
