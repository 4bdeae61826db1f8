"""Stick patterns against pymatgen's XRDCalculator, and wavelength independence of the Q encoding."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Lattice, Structure

from powdersolve.diffraction.encoding import encode_q
from powdersolve.diffraction.sticks import WAVELENGTHS, q_from_two_theta, sticks, to_two_theta
from powdersolve.structures import Crystal, load_crystal

REFERENCE = ["cubic/CaF2_225", "trigonal/Ni3S2_155", "trigonal/As_166", "hexagonal/Zn_194",
             "monoclinic/TiO2_12", "triclinic/AlH2PbO2F3_2"]


def _disordered() -> Crystal:
    """Partially occupied rock salt-like cell (Fe/Ni mixed site, half-empty O site)."""
    s = Structure(Lattice.cubic(4.2), [{"Fe": 0.5, "Ni": 0.5}, {"O": 0.5}], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return Crystal.from_structure(s, 221)


def _compare(crystal: Crystal, lo: float = 5.0, hi: float = 90.0) -> None:
    calc = XRDCalculator("CuKa")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = calc.get_pattern(crystal.to_structure(), scaled=False, two_theta_range=(lo, hi))
    lam = calc.wavelength
    s = sticks(crystal, q_max=float(q_from_two_theta(hi + 0.5, lam)))
    tt, inten = to_two_theta(s, lam)
    ok = (tt >= lo) & (tt <= hi)
    tt, inten = tt[ok], inten[ok]
    # Every reference peak is one of our sticks, at the same angle.
    nearest = np.abs(tt[None, :] - np.asarray(ref.x)[:, None]).argmin(axis=1)
    np.testing.assert_allclose(tt[nearest], ref.x, atol=1e-6)
    assert len(np.unique(nearest)) == len(ref.x)
    # pymatgen drops only very weak peaks (and uses another form-factor table).
    missing = np.setdiff1d(np.arange(len(tt)), nearest)
    assert np.all(inten[missing] < 1e-3 * inten.max())
    assert np.corrcoef(inten[nearest], ref.y)[0, 1] > 0.99


@pytest.mark.parametrize("name", REFERENCE)
def test_sticks_match_pymatgen(real_dir, name: str) -> None:
    _compare(load_crystal(real_dir / f"{name}.cif"))


def test_partially_occupied_sticks_match_pymatgen() -> None:
    _compare(_disordered(), 5.0, 120.0)


def test_sticks_are_sorted_and_merged(real_dir) -> None:
    s = sticks(load_crystal(real_dir / "cubic" / "CaF2_225.cif"), q_max=6.0)
    assert np.all(np.diff(s.q) > 0)
    assert np.all(s.q <= 6.0)
    # (111) of fluorite: 8 equivalent reflections merged into one stick.
    assert s.multiplicity[0] == 8


def test_cu_and_mo_give_the_same_q_input(real_dir) -> None:
    """Sticks measured at Cu and at Mo, converted back to Q, encode identically."""
    s = sticks(load_crystal(real_dir / "trigonal" / "As_166.cif"), q_max=7.5)
    encoded = []
    for name in ("CuKa1", "MoKa1"):
        lam = WAVELENGTHS[name]
        tt, inten_lp = to_two_theta(s, lam)
        _, inten = to_two_theta(s, lam, lorentz=False)
        q = q_from_two_theta(tt, lam)
        np.testing.assert_allclose(inten_lp / inten, (1 + np.cos(np.radians(tt)) ** 2)
                                   / (np.sin(np.radians(tt / 2)) ** 2 * np.cos(np.radians(tt / 2))))
        encoded.append(encode_q(q, inten, q_limit=float(q_from_two_theta(150.0, WAVELENGTHS["CuKa1"]))))
    np.testing.assert_allclose(encoded[0], encoded[1], atol=1e-6)
