"""An independent powder-pattern simulator for benchmarks: pymatgen sticks, broadened here.

Nothing of powdersolve's own profile code is used, so a refinement that shares that code cannot fit
its own assumptions back (the inverse crime): pymatgen's XRDCalculator gives the reflections and their
intensities (Lorentz-polarisation and multiplicity included), this module a pseudo-Voigt of fixed
width, an optional K-alpha2 copy, a flat background and Poisson noise.
"""

from __future__ import annotations

import numpy as np
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Structure

#: Cu K-alpha1 and K-alpha2 wavelengths (Angstrom).
CU_KA1, CU_KA2 = 1.54056, 1.54439


def pseudo_voigt(x: np.ndarray, fwhm: float, eta: float) -> np.ndarray:
    """Unit-area pseudo-Voigt of full width ``fwhm`` (deg) and Lorentzian fraction ``eta`` at offsets ``x`` (deg)."""
    z2 = (2 * x / fwhm) ** 2
    lorentz = 2 / (np.pi * fwhm) / (1 + z2)
    gauss = np.sqrt(4 * np.log(2) / np.pi) / fwhm * np.exp(-np.log(2) * z2)
    return eta * lorentz + (1 - eta) * gauss


def independent_pattern(structure: Structure, *, kalpha2: bool = False, seed: int = 0, lo: float = 5.0,
                        hi: float = 120.0, step: float = 0.01, fwhm: float = 0.08, eta: float = 0.5,
                        background: float = 0.01, peak_counts: float = 1e5
                        ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(2-theta deg, Poisson counts, K-alpha1 sticks (2-theta, intensity)) of ``structure`` for Cu K-alpha1.

    The strongest point is scaled to ``peak_counts`` before a flat background of ``background`` x
    ``peak_counts`` is added; ``kalpha2`` adds the K-alpha2 copy at half intensity.
    """
    tt = np.arange(lo, hi + step / 2, step)
    y = np.zeros_like(tt)
    first = None
    for lam, weight in ((CU_KA1, 1.0), (CU_KA2, 0.5))[: 2 if kalpha2 else 1]:
        pat = XRDCalculator(wavelength=lam).get_pattern(structure, scaled=False, two_theta_range=(lo - 1, hi + 1))
        pos, inten = np.asarray(pat.x, dtype=float), np.asarray(pat.y, dtype=float)
        first = first or (pos, inten)
        for c, a in zip(pos, inten):
            y += weight * a * pseudo_voigt(tt - c, fwhm, eta)
    y *= peak_counts / y.max()
    y += background * peak_counts
    return tt, np.random.default_rng(seed).poisson(y).astype(float), first
