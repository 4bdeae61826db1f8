"""Stick patterns: reflection positions and intensities of a crystal, wavelength-free and in 2-theta.

Intensities come from :func:`powdersolve.scattering.structure_factors` (the same table as the
density). A stick is one distinct d-spacing; its ``intensity`` is the sum of |F|^2 over every
reflection at that d (multiplicity times |F|^2 for symmetry-equivalent ones), in electrons^2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from powdersolve.errors import InputError
from powdersolve.scattering import hkl_sphere, structure_factors
from powdersolve.structures.crystal import Crystal

#: Named X-ray lines in Angstrom (K-alpha is the weighted K-alpha1/2 mean).
WAVELENGTHS: dict[str, float] = {
    "CuKa": 1.54184, "CuKa1": 1.54056, "CuKa2": 1.54439,
    "MoKa": 0.71073, "MoKa1": 0.70930, "MoKa2": 0.71359,
    "CoKa": 1.79026, "CoKa1": 1.78896, "CoKa2": 1.79285,
    "CrKa": 2.29100, "CrKa1": 2.28970, "CrKa2": 2.29361,
    "FeKa": 1.93735, "FeKa1": 1.93604, "FeKa2": 1.93998,
    "AgKa": 0.560885, "AgKa1": 0.559421, "AgKa2": 0.563813,
}
#: K-alpha doublets: line -> (lambda1, lambda2, I2/I1).
DOUBLETS: dict[str, tuple[float, float, float]] = {
    el: (WAVELENGTHS[f"{el}Ka1"], WAVELENGTHS[f"{el}Ka2"], 0.5) for el in ("Cu", "Mo", "Co", "Cr", "Fe", "Ag")
}


def parse_wavelength(value: str | float) -> float:
    """Wavelength in Angstrom from a float or a named line ('CuKa', 'Cu K-alpha1', 'MoKa1', 'Cu', ...)."""
    if isinstance(value, str):
        shown = " ".join(value.split())[:40]
        key = re.sub(r"[\s_]+", "", value)
        key = re.sub(r"(?<=[A-Za-z])-(?=[A-Za-z0-9])", "", key)  # 'K-alpha' but not '-1'
        key = key.replace("alpha", "a").replace("Alpha", "a").replace("KA", "Ka")
        if key in ("Cu", "Mo", "Co", "Cr", "Fe", "Ag"):
            key += "Ka"
        if key in WAVELENGTHS:
            return WAVELENGTHS[key]
        try:
            value = float(key)
        except ValueError:
            names = ", ".join(sorted(WAVELENGTHS))
            raise InputError(f"unknown wavelength '{shown}'; give Angstrom or one of {names}") from None
    lam = float(value)
    if not np.isfinite(lam) or not (0.1 <= lam <= 5.0):
        raise InputError(f"wavelength {lam:g} A is outside 0.1-5 A; give it in Angstrom")
    return lam


@dataclass(frozen=True)
class Sticks:
    """Reflections of one crystal, sorted by increasing Q.

    Attributes:
        q: scattering vector length Q = 2 pi / d (1/Angstrom).
        intensity: summed |F|^2 over all reflections at that d (electrons^2), no Lorentz factor.
        hkl: (m, 3) one representative Miller index per stick.
        multiplicity: number of reflections merged into each stick.
    """

    q: np.ndarray
    intensity: np.ndarray
    hkl: np.ndarray
    multiplicity: np.ndarray

    @property
    def d(self) -> np.ndarray:
        """d-spacings in Angstrom."""
        return 2 * np.pi / self.q


def sticks(crystal: Crystal, q_max: float = 8.0, b_iso: float = 0.0, rel_cut: float = 1e-7) -> Sticks:
    """Stick pattern up to ``q_max`` (Q = 2 pi/d, 1/Angstrom) with overall B ``b_iso`` (A^2).

    Reflections whose d agree to 1e-6 relative are merged; sticks weaker than ``rel_cut`` of
    the strongest (systematic absences) are dropped.
    """
    if q_max <= 0:
        raise InputError(f"q_max {q_max} must be positive")
    hkl = hkl_sphere(crystal.reciprocal, q_max / (2 * np.pi))
    hkl = hkl[np.any(hkl != 0, axis=1)]
    if len(hkl) == 0:
        empty = np.zeros(0)
        return Sticks(empty, empty, np.zeros((0, 3), dtype=int), np.zeros(0, dtype=int))
    q = 2 * np.pi * np.linalg.norm(hkl @ crystal.reciprocal, axis=1)
    inten = np.abs(structure_factors(crystal, hkl, b_iso)) ** 2
    order = np.argsort(q, kind="stable")
    q, inten, hkl = q[order], inten[order], hkl[order]
    new_group = np.concatenate([[True], np.diff(q) > 1e-6 * q[1:]])
    gid = np.cumsum(new_group) - 1
    q_g = q[new_group]
    i_g = np.bincount(gid, weights=inten)
    m_g = np.bincount(gid)
    # Representative index: the one with the largest h, k, l (pymatgen-like, positive first).
    rep = hkl[new_group]
    keep = i_g > rel_cut * max(i_g.max(), 1e-300)
    return Sticks(q_g[keep], i_g[keep], rep[keep], m_g[keep])


def lorentz_polarization(two_theta_deg: np.ndarray) -> np.ndarray:
    """Unpolarised Lorentz-polarisation factor (1 + cos^2 2th) / (sin^2 th cos th), as pymatgen."""
    th = np.radians(two_theta_deg) / 2
    return (1 + np.cos(2 * th) ** 2) / (np.sin(th) ** 2 * np.cos(th))


def to_two_theta(s: Sticks, wavelength: float, lorentz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Sticks at a wavelength (Angstrom): 2-theta (degrees) and intensity (with LP if ``lorentz``).

    Reflections beyond the Ewald limit (sin theta > 1) are dropped.
    """
    sin_th = s.q * wavelength / (4 * np.pi)
    ok = (sin_th < 1.0) & (sin_th > 0)
    tt = np.degrees(2 * np.arcsin(sin_th[ok]))
    inten = s.intensity[ok] * (lorentz_polarization(tt) if lorentz else 1.0)
    return tt, inten


def q_from_two_theta(two_theta_deg: np.ndarray, wavelength: float) -> np.ndarray:
    """Q = 4 pi sin(theta) / lambda (1/Angstrom) from 2-theta in degrees."""
    return 4 * np.pi * np.sin(np.radians(np.asarray(two_theta_deg)) / 2) / wavelength


def two_theta_from_q(q: np.ndarray, wavelength: float) -> np.ndarray:
    """2-theta in degrees from Q (1/Angstrom); NaN beyond the Ewald limit."""
    s = np.asarray(q) * wavelength / (4 * np.pi)
    with np.errstate(invalid="ignore"):
        return np.degrees(2 * np.arcsin(np.where(s <= 1, s, np.nan)))
