"""An independent powder-pattern simulator for benchmarks: pymatgen sticks, broadened here.

Nothing of powdersolve's own profile code is used, so a refinement that shares that code cannot fit
its own assumptions back (the inverse crime): pymatgen's XRDCalculator gives the reflections and their
intensities (Lorentz-polarisation and multiplicity included), this module a pseudo-Voigt of fixed
width, an optional K-alpha2 copy, a flat background and Poisson noise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Lattice, Structure

#: Cu K-alpha1 and K-alpha2 wavelengths (Angstrom).
CU_KA1, CU_KA2 = 1.54056, 1.54439


def pseudo_voigt(x: np.ndarray, fwhm: float, eta: float) -> np.ndarray:
    """Unit-area pseudo-Voigt of full width ``fwhm`` (deg) and Lorentzian fraction ``eta`` at offsets ``x`` (deg)."""
    z2 = (2 * x / fwhm) ** 2
    lorentz = 2 / (np.pi * fwhm) / (1 + z2)
    gauss = np.sqrt(4 * np.log(2) / np.pi) / fwhm * np.exp(-np.log(2) * z2)
    return eta * lorentz + (1 - eta) * gauss


def _broadened(structure: Structure, tt: np.ndarray, lo: float, hi: float, kalpha2: bool,
               fwhm_at: Callable[[float], float], eta_at: Callable[[float], float], zero: float = 0.0
               ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """pymatgen's sticks of ``structure`` between ``lo`` - 1 and ``hi`` + 1 deg (Cu K-alpha1, and K-alpha2 at
    half intensity with ``kalpha2``) as unit-area pseudo-Voigts on ``tt`` (deg), each of FWHM
    ``fwhm_at(2-theta)`` and Lorentzian fraction ``eta_at(2-theta)``, shifted by ``zero`` (deg); and the
    K-alpha1 sticks (2-theta, intensity)."""
    y = np.zeros_like(tt)
    first = None
    for lam, weight in ((CU_KA1, 1.0), (CU_KA2, 0.5))[: 2 if kalpha2 else 1]:
        pat = XRDCalculator(wavelength=lam).get_pattern(structure, scaled=False, two_theta_range=(lo - 1, hi + 1))
        pos, inten = np.asarray(pat.x, dtype=float), np.asarray(pat.y, dtype=float)
        first = first or (pos, inten)
        for c, a in zip(pos, inten):
            y += weight * a * pseudo_voigt(tt - c - zero, fwhm_at(c), eta_at(c))
    return y, first


def independent_pattern(structure: Structure, *, kalpha2: bool = False, seed: int = 0, lo: float = 5.0,
                        hi: float = 120.0, step: float = 0.01, fwhm: float = 0.08, eta: float = 0.5,
                        background: float = 0.01, peak_counts: float = 1e5
                        ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(2-theta deg, Poisson counts, K-alpha1 sticks (2-theta, intensity)) of ``structure`` for Cu K-alpha1.

    The strongest point is scaled to ``peak_counts`` before a flat background of ``background`` x
    ``peak_counts`` is added; ``kalpha2`` adds the K-alpha2 copy at half intensity.
    """
    tt = np.arange(lo, hi + step / 2, step)
    y, first = _broadened(structure, tt, lo, hi, kalpha2, lambda _c: fwhm, lambda _c: eta)
    y *= peak_counts / y.max()
    y += background * peak_counts
    return tt, np.random.default_rng(seed).poisson(y).astype(float), first


def silicon() -> Structure:
    """Diamond-structure Si (a = 5.431 A): the impurity phase of :func:`lab_pattern`."""
    return Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.431), ["Si"], [[0, 0, 0]])


def lab_pattern(structure: Structure, *, seed: int = 0, lo: float = 5.0, hi: float = 120.0, step: float = 0.01,
                zero: float = 0.03, u: float = 0.01, w: float = 0.004, eta: tuple[float, float] = (0.3, 0.7),
                impurity: float = 0.0, background: float = 0.01, peak_counts: float = 1e5, kalpha2: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
    """(2-theta deg, Poisson counts) of ``structure`` as a laboratory Cu K-alpha diffractometer might record it.

    Unlike :func:`independent_pattern`: K-alpha1 + K-alpha2 (half intensity; ``kalpha2`` False: K-alpha1
    only); widths growing with angle, FWHM^2 = u tan^2 th + w (deg^2: 0.063 deg at low angle, 0.18 deg at
    120 deg); a Lorentzian fraction rising linearly from ``eta[0]`` to ``eta[1]`` over the scan; a zero
    error of ``zero`` deg (peaks appear there, as an uncorrected instrument shows them); a background
    falling from 3x to 1x ``background`` of the strongest point towards high angle; and optionally a
    silicon impurity whose strongest peak is ``impurity`` of the sample's.
    """
    tt = np.arange(lo, hi + step / 2, step)

    def fwhm_at(c: float) -> float:
        return float(np.sqrt(u * np.tan(np.radians(c / 2)) ** 2 + w))

    def eta_at(c: float) -> float:
        return float(np.clip(eta[0] + (eta[1] - eta[0]) * (c - lo) / (hi - lo), 0.0, 1.0))

    def phase(s: Structure) -> np.ndarray:
        y = _broadened(s, tt, lo, hi, kalpha2, fwhm_at, eta_at, zero)[0]
        return y / y.max()

    y = phase(structure)
    if impurity > 0:
        y += impurity * phase(silicon())
    y = y * peak_counts / y.max() + background * peak_counts * (1 + 2 * np.exp(-(tt - lo) / 20))
    return tt, np.random.default_rng(seed).poisson(y).astype(float)
