"""Powder diffraction: stick patterns, model encodings, profiles and augmentations."""

from powdersolve.diffraction.encoding import QAxis, encode_q, encode_sticks_q, encode_two_theta
from powdersolve.diffraction.sticks import (
    DOUBLETS,
    WAVELENGTHS,
    Sticks,
    lorentz_polarization,
    parse_wavelength,
    q_from_two_theta,
    sticks,
    to_two_theta,
    two_theta_from_q,
)

__all__ = [
    "DOUBLETS",
    "QAxis",
    "Sticks",
    "WAVELENGTHS",
    "encode_q",
    "encode_sticks_q",
    "encode_two_theta",
    "lorentz_polarization",
    "parse_wavelength",
    "q_from_two_theta",
    "sticks",
    "to_two_theta",
    "two_theta_from_q",
]
