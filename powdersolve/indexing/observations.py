"""Observed peak positions for indexing: validation and the 2-theta / Q = 1/d^2 conversions.

Q here is 1/d^2 (1/Angstrom^2), not the 2 pi / d of the rest of the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from powdersolve.diffraction.sticks import WAVELENGTHS
from powdersolve.errors import InputError

#: Wavelength (Angstrom) used to express 2-theta tolerances when only d-spacings are given.
REFERENCE_WAVELENGTH = WAVELENGTHS["CuKa1"]
#: Fewest peak positions indexing accepts for a search of every crystal system.
MIN_LINES = 5
#: Fewest it accepts at all: with fewer than ``MIN_LINES`` only a cubic cell (one metric parameter and a zero
#: shift against four positions) is searched. Small cubic cells give so few lines: diamond (a = 3.57 A) has
#: four below 2-theta 120 deg with Cu K-alpha.
MIN_LINES_CUBIC = 4


def q_from_tt(tt: np.ndarray, wavelength: float) -> np.ndarray:
    """Q = 1/d^2 (1/A^2) from 2-theta (deg)."""
    return (2 * np.sin(np.radians(tt) / 2) / wavelength) ** 2


def dq_dtt(tt: np.ndarray, wavelength: float) -> np.ndarray:
    """dQ/d(2-theta) in 1/A^2 per degree."""
    return 2 * np.sin(np.radians(tt)) / wavelength**2 * np.pi / 180


def tt_from_q(q: np.ndarray, wavelength: float) -> np.ndarray:
    """2-theta (deg) from Q = 1/d^2; 180 beyond the Ewald limit."""
    return np.degrees(2 * np.arcsin(np.clip(np.sqrt(q) * wavelength / 2, 0, 1)))


@dataclass(frozen=True)
class Observed:
    """Observed lines: 2-theta (deg, ascending) at a wavelength (A), with the line tolerance (deg)
    and the largest zero shift (deg) fitted. ``weak`` (n,) bool marks lines that may be a second phase's:
    faint enough to be a minor impurity's, or ``foreign`` (n,) bool, at a line of a standard the pattern
    seems to hold (None: intensities unknown, every line counts)."""

    tt: np.ndarray
    wavelength: float
    tol: float
    max_zero: float
    weak: np.ndarray | None = None
    foreign: np.ndarray | None = None

    def counted(self) -> np.ndarray:
        """(n,) bool: the lines a candidate must index, all but its allowed few (the not-weak ones)."""
        return np.ones(self.tt.size, dtype=bool) if self.weak is None else ~self.weak

    def capped(self) -> np.ndarray:
        """(n,) bool: the lines whose share of those a candidate leaves unindexed is capped (all but the
        ``foreign`` ones: a standard's lines may outnumber a few-line sample's)."""
        return np.ones(self.tt.size, dtype=bool) if self.foreign is None else ~self.foreign

    def q(self, zero: float = 0.0) -> np.ndarray:
        """Q (1/A^2) of the lines after removing a zero shift (deg)."""
        return q_from_tt(self.tt - zero, self.wavelength)

    def tol_q(self, extra: float = 0.0) -> np.ndarray:
        """Line tolerance in Q (1/A^2), widened by ``extra`` deg."""
        return dq_dtt(self.tt, self.wavelength) * (self.tol + extra)


def observations(d_spacings: Sequence[float] | np.ndarray | None, two_theta: Sequence[float] | np.ndarray | None,
                 wavelength: float | None, tol: float, zero_range: float, max_lines: int,
                 intensity: Sequence[float] | np.ndarray | None = None, weak_line: float = 0.0,
                 foreign: Sequence[bool] | np.ndarray | None = None) -> Observed:
    """Validated :class:`Observed` lines from either d-spacings (A) or 2-theta (deg) with the wavelength (A).

    With ``intensity`` (one per 2-theta) and ``weak_line`` > 0, lines of at most ``weak_line`` times the
    strongest line's intensity are marked weak (:attr:`Observed.weak`), and so are the lines ``foreign``
    marks (one bool per 2-theta: at a line of a standard the pattern seems to hold, whatever their intensity).
    """
    if (d_spacings is None) == (two_theta is None):
        raise InputError("give either d-spacings or 2-theta peak positions (with the wavelength) to index")
    if two_theta is not None:
        if wavelength is None:
            raise InputError("2-theta peak positions need the wavelength; pass --wavelength")
        tt = np.asarray(two_theta, dtype=np.float64).ravel()
        lam = float(wavelength)
        if not (np.isfinite(lam) and lam > 0):
            raise InputError(f"wavelength {wavelength} must be a positive number of Angstrom")
    else:
        d = np.asarray(d_spacings, dtype=np.float64).ravel()
        if np.any(~np.isfinite(d)) or np.any(d <= 0):
            raise InputError("d-spacings must be positive finite numbers (Angstrom)")
        lam = REFERENCE_WAVELENGTH
        d = d[d > lam / 2]  # lines beyond the reference Ewald sphere cannot be expressed in 2-theta
        tt = np.degrees(2 * np.arcsin(lam / (2 * d)))
        zero_range = 0.0  # a zero shift has no meaning without measured angles
    if np.any(~np.isfinite(tt)) or np.any(tt <= 0) or np.any(tt >= 180):
        raise InputError("2-theta peak positions must lie in (0, 180) deg")
    tt, first = np.unique(np.round(tt, 6), return_index=True)
    tt, first = tt[:max_lines], first[:max_lines]
    weak = at_standard = None
    if intensity is not None and two_theta is not None and weak_line > 0:
        inten = np.asarray(intensity, dtype=np.float64).ravel()
        if inten.shape != np.asarray(two_theta).ravel().shape or not np.all(np.isfinite(inten)):
            raise InputError("give one finite intensity per peak position")
        weak = inten[first] <= weak_line * max(float(inten.max()), 1e-300)
        if foreign is not None:
            at_standard = np.asarray(foreign, dtype=bool).ravel()[first]
            weak |= at_standard
    if tt.size < MIN_LINES_CUBIC:
        raise InputError(f"only {tt.size} peak positions; indexing needs at least {MIN_LINES_CUBIC} (a cubic cell) "
                         f"or {MIN_LINES} (any cell); give --cell")
    return Observed(tt=tt, wavelength=lam, tol=float(tol), max_zero=float(zero_range), weak=weak,
                    foreign=at_standard)
