"""Seeded, pure augmentations of model inputs.

Two levels:

- on encoded inputs (any ``(..., C, bins)`` array): the paper's integer bin shift in [-3, 3] with zero
  fill and Gaussian noise (sigma 1e-3) followed by ReLU;
- on stick lists before encoding (wavelength-free Q in 1/Angstrom, intensity without Lorentz factor):
  random upper-Q truncation (the measured range), multiplicative lognormal intensity jitter
  (preferred-orientation-like), a random thermal factor exp(-B Q^2 / (8 pi^2)) (= exp(-2 B s^2),
  s = Q / (4 pi)), dropping peaks below a detection threshold, and small peak-position jitter.

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
class Augmenter:
    """Composable augmentations; zero / None settings switch one off.

    Attributes:
        shift_max: largest bin shift of :meth:`encoded` (paper: 3).
        noise_sigma: Gaussian noise of :meth:`encoded` before the ReLU (paper: 1e-3).
        channels: channels :meth:`encoded` touches (None = all; (0,) keeps the Q-encoding mask intact).
        q_limit_range: (low, high) 1/A of the uniformly drawn measured upper Q, or None for no truncation.
            4-8 1/A covers Cu scans to about 60-120 deg 2-theta.
        intensity_sigma: sigma of the multiplicative lognormal intensity jitter (0 = off).
        b_range: (low, high) A^2 of the uniformly drawn overall B, or None.
        detect_range: (low, high) relative detection threshold, drawn log-uniformly; sticks weaker than
            threshold x strongest are dropped; None = keep all.
        q_jitter: sigma (1/A) of independent Gaussian position jitter per stick (0 = off).
    """

    shift_max: int = 3
    noise_sigma: float = 1e-3
    channels: tuple[int, ...] | None = None
    q_limit_range: tuple[float, float] | None = (4.0, 8.0)
    intensity_sigma: float = 0.2
    b_range: tuple[float, float] | None = (0.0, 3.0)
    detect_range: tuple[float, float] | None = (1e-4, 1e-2)
    q_jitter: float = 0.002

    def sticks(self, q: np.ndarray, intensity: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float | None]:
        """Augmented (q 1/A, intensity, q_limit 1/A or None) of a stick list; q stays sorted."""
        q = np.asarray(q, dtype=np.float64)
        inten = np.asarray(intensity, dtype=np.float64)
        q_limit = None if self.q_limit_range is None else float(rng.uniform(*self.q_limit_range))
        if self.b_range is not None:
            inten = inten * thermal_factor(q, float(rng.uniform(*self.b_range)))
        if self.intensity_sigma > 0:
            inten = inten * rng.lognormal(0.0, self.intensity_sigma, size=inten.shape)
        if self.q_jitter > 0:
            q = np.abs(q + rng.normal(0.0, self.q_jitter, size=q.shape))
            order = np.argsort(q, kind="stable")
            q, inten = q[order], inten[order]
        keep = np.ones(q.shape, dtype=bool) if q_limit is None else q <= q_limit
        if self.detect_range is not None and keep.any():
            lo, hi = np.log(self.detect_range[0]), np.log(self.detect_range[1])
            threshold = float(np.exp(rng.uniform(lo, hi)))
            keep &= inten >= threshold * inten[keep].max()
        return q[keep], inten[keep], q_limit

    def encoded(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The paper's augmentation of an encoded input (..., C, bins): bin shift, then noise + ReLU."""
        x = shift_bins(x, rng, self.shift_max, self.channels)
        return gaussian_noise_relu(x, rng, self.noise_sigma, self.channels)
