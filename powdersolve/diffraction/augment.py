"""Seeded, pure augmentations of model inputs.

Two levels, both configured by one :class:`Augment`:

- on stick lists before encoding (wavelength-free Q in 1/Angstrom, intensity without Lorentz factor):
  a random thermal factor exp(-B Q^2 / (8 pi^2)) (= exp(-2 B s^2), s = Q / (4 pi)), multiplicative
  lognormal intensity jitter (preferred-orientation-like), random upper-Q truncation (the measured
  range) and dropping peaks below a detection threshold (:func:`augment_sticks`);
- on encoded inputs (any ``(..., C, bins)`` array): the paper's integer bin shift with zero fill and
  Gaussian noise (sigma 1e-3) followed by ReLU (:func:`shift_and_noise`).

Every function takes the numpy Generator explicitly and never modifies its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def shift_bins(x: np.ndarray, rng: np.random.Generator, max_shift: int = 3,
               channels: tuple[int, ...] | None = None) -> np.ndarray:
    """Shift each selected channel of ``x`` (..., C, bins) by its own integer in [-max_shift, max_shift], zero fill.

    A 1-D ``x`` is one channel.
    """
    x = np.asarray(x)
    if x.ndim == 1:
        return shift_bins(x[None], rng, max_shift, channels)[0]
    out = x.copy()
    if max_shift <= 0:
        return out
    sel = list(range(x.shape[-2])) if channels is None else list(channels)
    sub = x[..., sel, :]
    shifts = rng.integers(-max_shift, max_shift + 1, size=sub.shape[:-1])
    src = np.arange(x.shape[-1]) - shifts[..., None]
    valid = (src >= 0) & (src < x.shape[-1])
    moved = np.take_along_axis(sub, np.clip(src, 0, x.shape[-1] - 1), axis=-1)
    out[..., sel, :] = np.where(valid, moved, 0)
    return out


def gaussian_noise_relu(x: np.ndarray, rng: np.random.Generator, sigma: float = 1e-3,
                        channels: tuple[int, ...] | None = None) -> np.ndarray:
    """Add N(0, sigma^2) to the selected channels of ``x`` (..., C, bins), then clip at 0 (ReLU); 1-D = one channel."""
    x = np.asarray(x)
    if x.ndim == 1:
        return gaussian_noise_relu(x[None], rng, sigma, channels)[0]
    out = x.copy()
    if sigma <= 0:
        return out
    sel = list(range(x.shape[-2])) if channels is None else list(channels)
    sub = x[..., sel, :]
    out[..., sel, :] = np.maximum(sub + rng.normal(0.0, sigma, size=sub.shape).astype(x.dtype), 0)
    return out


def thermal_factor(q: np.ndarray, b_iso: float) -> np.ndarray:
    """Debye-Waller factor on |F|^2: exp(-B Q^2 / (8 pi^2)), Q in 1/Angstrom, B in Angstrom^2."""
    return np.exp(-b_iso * np.asarray(q) ** 2 / (8 * np.pi**2))


@dataclass(frozen=True)
class Augment:
    """Training augmentations of a stick pattern (all drawn per example from one Generator).

    Attributes:
        q_limit_range: upper Q limit (1/A) drawn uniformly in this range with probability
            ``p_truncate``, so lab scans (Cu to 90-120 deg: Q 5.8-7.1) are in distribution.
        p_truncate: probability of truncating.
        b_range: extra thermal B (A^2) applied to the intensities (:func:`thermal_factor`).
        intensity_sigma: lognormal multiplicative jitter of each stick (texture, extraction error).
        detect: sticks weaker than this fraction of the strongest are zeroed (detection limit).
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


def augment_sticks(q: np.ndarray, intensity: np.ndarray, aug: Augment, rng: np.random.Generator,
                   q_max: float) -> tuple[np.ndarray, np.ndarray, float]:
    """One random measured-like version of a stick pattern: (Q 1/A, intensity, measured Q limit 1/A).

    ``q_max`` is the limit when the draw does not truncate. Positions are unchanged; dropped sticks
    get zero intensity so the arrays keep their length. The inputs are not modified.
    """
    q = np.asarray(q, dtype=np.float64)
    inten = np.asarray(intensity, dtype=np.float64)
    if aug.b_range[1] > 0:
        inten = inten * thermal_factor(q, rng.uniform(*aug.b_range))
    if aug.intensity_sigma > 0:
        inten = inten * rng.lognormal(0.0, aug.intensity_sigma, inten.shape)
    q_limit = float(q_max)
    if rng.random() < aug.p_truncate:
        q_limit = float(rng.uniform(*aug.q_limit_range))
    if aug.detect > 0 and inten.size:
        inten = np.where(inten >= aug.detect * inten[q <= q_limit].max(initial=0.0), inten, 0.0)
    return q, inten, q_limit


def shift_and_noise(x: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """The paper's augmentation of an encoded (C, bins) pattern: bin shift with zero fill, noise, ReLU.

    The coverage-mask channel of the Q encoding (the second of two) is left untouched.
    """
    channels = (0,) if x.shape[0] == 2 else None
    x = shift_bins(x, rng, aug.bin_shift, channels)
    return gaussian_noise_relu(x, rng, aug.noise, channels)
