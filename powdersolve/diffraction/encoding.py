"""Model inputs: a stick pattern binned onto a fixed axis.

Two encodings:

- :func:`encode_two_theta` (the paper's): 2-theta 0-180 deg at one wavelength (Mo K-alpha by
  default), 1024 bins, bin value = strongest Lorentz-polarised stick in the bin, strongest = 1.
- :func:`encode_q` (the shipped models'): a wavelength-free axis Q = 2 pi / d in
  (0, q_max], intensities without the Lorentz factor summed per bin, sqrt-compressed so
  the values scale like |F|, strongest = 1, plus a mask channel that is 1 where the
  measurement reached (Q <= ``q_limit``). A lab Cu scan to 90 deg fills Q <= 5.77 1/A.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powdersolve.diffraction.sticks import Sticks, to_two_theta
from powdersolve.errors import InputError

MO_KA = 0.71073


@dataclass(frozen=True)
class QAxis:
    """Binning of the wavelength-free model input.

    Attributes:
        q_max: upper edge of the axis (1/Angstrom, Q = 2 pi / d).
        bins: number of bins over (0, q_max].
        compress: 'sqrt' (|F|-like) or 'linear' (|F|^2-like).
    """

    q_max: float = 8.0
    bins: int = 1024
    compress: str = "sqrt"

    @property
    def centres(self) -> np.ndarray:
        """Bin centres in 1/Angstrom."""
        w = self.q_max / self.bins
        return (np.arange(self.bins) + 0.5) * w


def _bin_index(x: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    return np.clip(((x - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1)


def encode_two_theta(
    s: Sticks, wavelength: float = MO_KA, bins: int = 1024, tt_range: tuple[float, float] = (0.0, 180.0)
) -> np.ndarray:
    """Paper encoding: float32 (bins,) max-in-bin of LP-weighted sticks, strongest = 1."""
    tt, inten = to_two_theta(s, wavelength)
    out = np.zeros(bins, dtype=np.float32)
    ok = (tt >= tt_range[0]) & (tt < tt_range[1])
    if ok.any():
        np.maximum.at(out, _bin_index(tt[ok], *tt_range, bins), inten[ok].astype(np.float32))
        out /= out.max()
    return out


def encode_q(q: np.ndarray, intensity: np.ndarray, axis: QAxis = QAxis(),
             q_limit: float | None = None) -> np.ndarray:
    """Wavelength-free encoding: float32 (2, bins) = [intensity channel, coverage mask].

    ``q`` (1/A) and ``intensity`` (no Lorentz factor) are peaks or sticks. Peaks above
    ``q_limit`` (the measured range) are dropped and the mask is 0 there.
    """
    if axis.compress not in ("sqrt", "linear"):
        raise InputError(f"unknown intensity compression '{axis.compress}'")
    q = np.asarray(q, dtype=np.float64)
    intensity = np.asarray(intensity, dtype=np.float64)
    q_limit = axis.q_max if q_limit is None else min(float(q_limit), axis.q_max)
    out = np.zeros((2, axis.bins), dtype=np.float32)
    ok = (q > 0) & (q <= q_limit) & np.isfinite(intensity) & (intensity > 0)
    if ok.any():
        idx = _bin_index(q[ok], 0.0, axis.q_max, axis.bins)
        acc = np.bincount(idx, weights=intensity[ok], minlength=axis.bins)
        acc /= acc.max()
        out[0] = np.sqrt(acc) if axis.compress == "sqrt" else acc
    out[1] = (axis.centres <= q_limit).astype(np.float32)
    return out


def encode_sticks_q(s: Sticks, axis: QAxis = QAxis(), q_limit: float | None = None) -> np.ndarray:
    """:func:`encode_q` applied to a stick pattern."""
    return encode_q(s.q, s.intensity, axis, q_limit)
