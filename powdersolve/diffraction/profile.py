"""Realistic powder profiles: sticks broadened into a measured-looking pattern on any 2-theta grid.

Each stick becomes a pseudo-Voigt peak of unit area times its Lorentz-polarised intensity, so the
integrated intensity of a peak (counts x degrees) equals the LP-weighted stick intensity
(:func:`powdersolve.diffraction.sticks.to_two_theta`), times ``ProfileConfig.scale`` when set.

Widths (FWHM, degrees 2-theta):

- instrument: Caglioti H^2 = U tan^2(theta) + V tan(theta) + W with mixing
  eta = eta0 + eta1 * 2theta(deg), split into Gaussian and Lorentzian parts (Ida et al. 1988 inverse);
- crystallite size (Scherrer, K = 0.9): a Lorentzian of FWHM K lambda / (L cos theta) radians;
- the parts are recombined by the Thompson-Cox-Hastings (1987) pseudo-Voigt approximation
  (:func:`powdersolve.diffraction.peakshape.tch`, shared with the refinable profile).

This module simulates (numpy, seeded); :mod:`powdersolve.diffraction.peakshape` is the refinable
(torch) profile that :mod:`powdersolve.solve.refine` and :mod:`powdersolve.diffraction.lebail` fit with.

Optional K-alpha2 (DOUBLETS in :mod:`~powdersolve.diffraction.sticks`), zero shift, background
(Chebyshev polynomial over the grid plus an a / 2-theta low-angle term and a broad amorphous hump)
and Poisson counting noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev

from powdersolve.diffraction.peakshape import split_tch, tch
from powdersolve.diffraction.sticks import DOUBLETS, Sticks, lorentz_polarization, two_theta_from_q
from powdersolve.errors import InputError

SCHERRER_K = 0.9
#: Smallest crystallite size accepted (Angstrom); below this a "crystal" has no Bragg peaks.
MIN_SIZE = 5.0
#: Peak x grid elements evaluated at once (bounds memory to ~100 MB of float64 temporaries).
_CHUNK = 2_000_000


@dataclass(frozen=True)
class ProfileConfig:
    """Settings of a simulated measurement.

    Attributes:
        u, v, w: Caglioti coefficients (degrees^2) of the instrumental FWHM.
        eta0, eta1: pseudo-Voigt Lorentzian fraction of the instrument, eta0 + eta1 * 2theta (deg), clipped to [0, 1].
        size: crystallite size in Angstrom for Scherrer broadening (K = 0.9); None = no size broadening.
        kalpha2: add the K-alpha2 line (intensity ``ratio`` of K-alpha1).
        lambda2: K-alpha2 wavelength (Angstrom); None = looked up in DOUBLETS from the wavelength,
            which may be the K-alpha1 or the weighted K-alpha line (then K-alpha1 is used as line 1).
        ratio: I(K-alpha2) / I(K-alpha1).
        background: Chebyshev coefficients (counts) over the grid mapped to [-1, 1].
        background_inverse: coefficient a of an a / 2theta(deg) low-angle background (counts x degrees).
        hump: (height counts, centre deg, FWHM deg) of a Gaussian amorphous hump, or None.
        scale: if set, peaks are scaled so the tallest noiseless peak maximum is ``scale`` counts;
            None keeps the stick units (electrons^2 x LP, integrated over degrees).
        noise: draw Poisson counts from the expected pattern (needs an rng).
        zero_shift: instrument zero error in degrees; peaks appear at 2theta + zero_shift.
    """

    u: float = 0.0
    v: float = 0.0
    w: float = 0.003
    eta0: float = 0.5
    eta1: float = 0.0
    size: float | None = None
    kalpha2: bool = False
    lambda2: float | None = None
    ratio: float = 0.5
    background: tuple[float, ...] = ()
    background_inverse: float = 0.0
    hump: tuple[float, float, float] | None = None
    scale: float | None = None
    noise: bool = False
    zero_shift: float = 0.0

    def __post_init__(self) -> None:
        if self.size is not None and not (np.isfinite(self.size) and self.size >= MIN_SIZE):
            raise InputError(f"crystallite size {self.size} A is below {MIN_SIZE} A; give a size in Angstrom")
        if not (0.0 <= self.ratio <= 1.0):
            raise InputError(f"K-alpha2/K-alpha1 ratio {self.ratio} is outside 0-1")
        if self.scale is not None and not (np.isfinite(self.scale) and self.scale > 0):
            raise InputError(f"peak count scale {self.scale} must be positive")
        if not (np.isfinite(self.zero_shift) and abs(self.zero_shift) <= 5.0):
            raise InputError(f"zero shift {self.zero_shift} deg is outside -5..5 deg")
        if self.hump is not None and (len(self.hump) != 3 or self.hump[2] <= 0):
            raise InputError("hump must be (height counts, centre deg, FWHM deg > 0)")
        values = (self.u, self.v, self.w, self.eta0, self.eta1, self.background_inverse, *self.background)
        if not all(np.isfinite(values)):
            raise InputError("profile parameters must be finite numbers")


def _lines(wavelength: float, config: ProfileConfig) -> list[tuple[float, float]]:
    """(wavelength A, weight) of each emission line; weights sum to 1."""
    if not config.kalpha2:
        return [(wavelength, 1.0)]
    lam1, lam2 = wavelength, config.lambda2
    if lam2 is None:
        for l1, l2, _ in DOUBLETS.values():
            mean = (2 * l1 + l2) / 3
            if abs(wavelength - l1) < 2e-4 or abs(wavelength - mean) < 5e-4:
                lam1, lam2 = l1, l2
                break
        else:
            raise InputError(f"no K-alpha doublet is known for {wavelength} A; give lambda2 or turn K-alpha2 off")
    w1 = 1.0 / (1.0 + config.ratio)
    return [(lam1, w1), (float(lam2), 1.0 - w1)]


def peak_shape(two_theta: np.ndarray, wavelength: float, config: ProfileConfig) -> tuple[np.ndarray, np.ndarray]:
    """Total FWHM (degrees 2-theta) and Lorentzian fraction eta of peaks at ``two_theta`` (degrees).

    Raises :class:`InputError` when U, V, W give a non-positive width inside the range.
    """
    tt = np.asarray(two_theta, dtype=np.float64)
    th = np.radians(tt) / 2
    tan = np.tan(th)
    h2 = config.u * tan**2 + config.v * tan + config.w
    if np.any(h2 <= 0):
        raise InputError(f"Caglioti U={config.u}, V={config.v}, W={config.w} give a width <= 0 in the range")
    h_inst = np.sqrt(h2)
    eta_inst = np.clip(config.eta0 + config.eta1 * tt, 0.0, 1.0)
    if config.size is None:
        return h_inst, eta_inst
    # Split the instrumental pseudo-Voigt into G and L widths, add the size Lorentzian, recombine (TCH).
    h_g, h_l = split_tch(h_inst, eta_inst)
    h_l = h_l + np.degrees(SCHERRER_K * wavelength / (config.size * np.cos(th)))
    return tch(h_g, h_l)


def pseudo_voigt(x: np.ndarray, fwhm: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Unit-area pseudo-Voigt (1/degree) at offsets ``x`` (degrees); arrays broadcast."""
    z2 = (2.0 * x / fwhm) ** 2
    gauss = np.sqrt(4 * np.log(2) / np.pi) / fwhm * np.exp(-np.log(2) * z2)
    lorentz = 2.0 / (np.pi * fwhm) / (1.0 + z2)
    return eta * lorentz + (1.0 - eta) * gauss


def background(two_theta: np.ndarray, config: ProfileConfig) -> np.ndarray:
    """Background counts on the grid: Chebyshev polynomial + a / 2theta + amorphous hump."""
    tt = np.asarray(two_theta, dtype=np.float64)
    out = np.zeros_like(tt)
    if config.background:
        lo, hi = float(tt.min()), float(tt.max())
        x = (2 * tt - lo - hi) / (hi - lo) if hi > lo else np.zeros_like(tt)
        out += chebyshev.chebval(x, np.asarray(config.background, dtype=np.float64))
    if config.background_inverse:
        out += config.background_inverse / tt
    if config.hump is not None:
        height, centre, width = config.hump
        out += height * np.exp(-4 * np.log(2) * ((tt - centre) / width) ** 2)
    return out


def profile_pattern(
    sticks: Sticks,
    wavelength: float,
    two_theta: np.ndarray,
    config: ProfileConfig = ProfileConfig(),
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Expected (or, with ``config.noise``, Poisson-sampled) counts on ``two_theta`` (degrees, any grid).

    ``wavelength`` in Angstrom. Every stick contributes over the whole grid (no truncated tails),
    evaluated in chunks of peaks.
    """
    tt_grid = np.asarray(two_theta, dtype=np.float64)
    if tt_grid.ndim != 1 or not np.all(np.isfinite(tt_grid)) or np.any((tt_grid <= 0) | (tt_grid >= 180)):
        raise InputError("2-theta grid must be finite values inside (0, 180) degrees")
    if config.noise and rng is None:
        raise ValueError("Poisson noise needs a numpy Generator")
    centres, areas = [], []
    for lam, weight in _lines(wavelength, config):
        tt = two_theta_from_q(sticks.q, lam)
        ok = np.isfinite(tt) & (tt > 0) & (tt < 180)
        centres.append(tt[ok])
        areas.append(weight * sticks.intensity[ok] * lorentz_polarization(tt[ok]))
    centre = np.concatenate(centres) + config.zero_shift
    area = np.concatenate(areas)
    fwhm, eta = peak_shape(np.clip(centre, 1e-3, 180 - 1e-3), wavelength, config)
    peaks = np.zeros_like(tt_grid)
    step = max(1, _CHUNK // max(1, len(tt_grid)))
    for start in range(0, len(centre), step):
        sl = slice(start, start + step)
        shape = pseudo_voigt(tt_grid[None, :] - centre[sl, None], fwhm[sl, None], eta[sl, None])
        peaks += area[sl] @ shape
    if config.scale is not None and peaks.max() > 0:
        peaks *= config.scale / peaks.max()
    expected = peaks + background(tt_grid, config)
    if np.any(expected < 0):
        raise InputError("background is negative somewhere on the grid; check the background coefficients")
    if config.noise:
        return rng.poisson(expected).astype(np.float64)
    return expected
