"""An independent powder simulator for tests: pymatgen XRDCalculator sticks broadened here.

Nothing here uses powdersolve's profile code, so a fit to these patterns tests our model against
what another simulator (and, by its recipe, an instrument) produces, not against itself.
"""

from __future__ import annotations

import numpy as np
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Lattice, Structure

CU_KA1, CU_KA2 = 1.54056, 1.54439


def rock_salt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.6395), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def bismuth() -> Structure:
    return Structure.from_spacegroup("R-3m", Lattice.hexagonal(4.535, 11.81), ["Bi"], [[0, 0, 0.2339]])


def pv(x: np.ndarray, fwhm: float, eta: float) -> np.ndarray:
    """Unit-area pseudo-Voigt (1/deg) at offsets x (deg)."""
    z2 = (2 * x / fwhm) ** 2
    gauss = np.sqrt(4 * np.log(2) / np.pi) / fwhm * np.exp(-np.log(2) * z2)
    return eta * 2 / (np.pi * fwhm) / (1 + z2) + (1 - eta) * gauss


def sticks(structure: Structure, wavelength: float = CU_KA1, lo: float = 5.0, hi: float = 120.0
           ) -> tuple[np.ndarray, np.ndarray, list]:
    """pymatgen's (2-theta deg, unscaled intensity with LP and multiplicity, hkl families)."""
    pat = XRDCalculator(wavelength=wavelength).get_pattern(structure, scaled=False, two_theta_range=(lo, hi))
    return np.asarray(pat.x), np.asarray(pat.y), list(pat.hkls)


def pattern(structure: Structure, lo: float = 5.0, hi: float = 120.0, step: float = 0.01, fwhm: float = 0.08,
            eta: float = 0.5, background: float = 0.01, peak_counts: float = 1e5, kalpha2: bool = False,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts: tallest peak ~``peak_counts``, flat background ``background`` x that; Cu K-alpha1 (+ alpha2)."""
    tt = np.arange(lo, hi + step / 2, step)
    y = np.zeros_like(tt)
    for lam, weight in ((CU_KA1, 1.0), (CU_KA2, 0.5))[: 2 if kalpha2 else 1]:
        pos, inten, _ = sticks(structure, lam, lo - 1, hi + 1)
        for c, a in zip(pos, inten):
            y += weight * a * pv(tt - c, fwhm, eta)
    y *= peak_counts / y.max()
    y += background * peak_counts
    return tt, np.random.default_rng(seed).poisson(y).astype(np.float64)
