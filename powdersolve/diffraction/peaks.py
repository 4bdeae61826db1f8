"""Peak picking on a measured (or profile) pattern, and conversion of the peaks to model units.

:func:`find_peaks` removes a smooth background (grey opening of the lightly smoothed pattern),
finds maxima whose prominence exceeds a multiple of the noise (:func:`scipy.signal.find_peaks`),
and fits pseudo-Voigt peaks (overlapping ones jointly, with a local constant offset) to get
positions, widths and integrated intensities including the Lorentzian tails.
:func:`peaks_to_q_intensity` turns them into the wavelength-free (Q, intensity without LP) that
:func:`powdersolve.diffraction.encoding.encode_q` takes.

A K-alpha2 doublet is not stripped: measure with K-alpha1 only or strip it first, otherwise each
reflection appears as two peaks at high angle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize, signal

from powdersolve.diffraction.encoding import QAxis
from powdersolve.diffraction.profile import pseudo_voigt
from powdersolve.diffraction.sticks import lorentz_polarization, q_from_two_theta
from powdersolve.errors import InputError


@dataclass(frozen=True)
class PeakList:
    """Picked peaks, sorted by 2-theta.

    Attributes:
        two_theta: fitted centres (degrees).
        height: fitted maximum above the background (counts).
        integrated_intensity: fitted area above the background (counts x degrees), LP included.
        fwhm: fitted full width at half maximum (degrees).
    """

    two_theta: np.ndarray
    height: np.ndarray
    integrated_intensity: np.ndarray
    fwhm: np.ndarray

    def __len__(self) -> int:
        return len(self.two_theta)


def estimate_background(two_theta: np.ndarray, counts: np.ndarray, window_deg: float = 3.0) -> np.ndarray:
    """Smooth background (counts) under the peaks: opening of the smoothed pattern over ``window_deg``."""
    step = float(np.median(np.diff(two_theta)))
    n = max(3, int(round(window_deg / step)) | 1)
    smooth = ndimage.uniform_filter1d(counts, size=5, mode="nearest")
    opened = ndimage.grey_opening(smooth, size=n, mode="nearest")
    return ndimage.uniform_filter1d(opened, size=n, mode="nearest")


def noise_sigma(counts: np.ndarray) -> float:
    """Robust point-to-point noise (counts): MAD of first differences / sqrt(2)."""
    return float(1.4826 * np.median(np.abs(np.diff(counts))) / np.sqrt(2))


_LN2 = float(np.log(2.0))
_GAUSS = float(np.sqrt(4 * np.log(2) / np.pi))  # unit-area Gaussian of FWHM 1 at its centre


def _pv_height(area: np.ndarray, fwhm: np.ndarray, eta: np.ndarray) -> np.ndarray:
    return area * pseudo_voigt(np.zeros_like(area), fwhm, eta)


def group_residual(p: np.ndarray, x: np.ndarray, y: np.ndarray, scale: float) -> np.ndarray:
    """(model - y) / ``scale`` of k pseudo-Voigts plus a constant on ``x`` (deg); ``p`` = (areas, centres (deg),
    FWHMs (deg), etas, offset), 4k + 1 values."""
    k = (len(p) - 1) // 4
    a, c, w, e = p[:k], p[k:2 * k], p[2 * k:3 * k], p[3 * k:4 * k]
    return (a @ pseudo_voigt(x[None, :] - c[:, None], w[:, None], e[:, None]) + p[-1] - y) / scale


def group_jacobian(p: np.ndarray, x: np.ndarray, y: np.ndarray, scale: float) -> np.ndarray:
    """(len(x), 4k + 1) analytic Jacobian of :func:`group_residual` (a finite-difference one costs 4k + 1
    pattern evaluations per step); ``y`` is unused."""
    k = (len(p) - 1) // 4
    a, c, w, e = (v[:, None] for v in (p[:k], p[k:2 * k], p[2 * k:3 * k], p[3 * k:4 * k]))
    dx = x[None, :] - c
    z2 = (2.0 * dx / w) ** 2
    gauss = _GAUSS / w * np.exp(-_LN2 * z2)
    lorentz = 2.0 / (np.pi * w) / (1.0 + z2)
    dz2_dx = 8.0 * dx / w**2
    d_dx = -(e * lorentz / (1.0 + z2) + (1.0 - e) * _LN2 * gauss) * dz2_dx
    d_dw = (-e * lorentz * (1.0 - z2) / (1.0 + z2) + (1.0 - e) * gauss * (2.0 * _LN2 * z2 - 1.0)) / w
    cols = [e * lorentz + (1.0 - e) * gauss, -a * d_dx, a * d_dw, a * (lorentz - gauss), np.ones((1, x.size))]
    return np.concatenate(cols, axis=0).T / scale


def _fit_group(x: np.ndarray, y: np.ndarray, centre: np.ndarray, height: np.ndarray,
               fwhm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Jointly fit pseudo-Voigts + constant offset; returns (centre, area, fwhm, eta)."""
    k = len(centre)
    area0 = height * fwhm * 1.3
    p0 = np.concatenate([area0, centre, fwhm, np.full(k, 0.5), [0.0]])
    lo = np.concatenate([np.zeros(k), centre - fwhm, fwhm * 0.2, np.zeros(k), [-np.inf]])
    hi = np.concatenate([area0 * 10 + 1e-12, centre + fwhm, fwhm * 5, np.ones(k), [np.inf]])
    scale = max(float(np.abs(y).max()), 1e-300)

    try:
        res = optimize.least_squares(group_residual, p0, jac=group_jacobian, bounds=(lo, hi), x_scale="jac",
                                     max_nfev=200 * k, args=(x, y, scale))
        p = res.x
    except (ValueError, np.linalg.LinAlgError):  # degenerate window: keep the starting estimate
        p = p0
    return p[k:2 * k], p[:k], p[2 * k:3 * k], p[3 * k:4 * k]


def find_peaks(two_theta: np.ndarray, counts: np.ndarray, min_snr: float = 5.0, min_rel_height: float = 1e-3,
               background_window_deg: float = 3.0, fit_window_fwhm: float = 3.0,
               min_width_points: float = 2.0) -> PeakList:
    """Pick and fit the peaks of a pattern.

    Args:
        two_theta: increasing, evenly spaced 2-theta grid (degrees).
        counts: intensities on the grid (counts).
        min_snr: a peak's prominence must exceed ``min_snr`` x the robust noise sigma ...
        min_rel_height: ... and ``min_rel_height`` x the tallest background-subtracted point.
        background_window_deg: width of the background opening; wider than any peak.
        fit_window_fwhm: half-width of each fit window in FWHMs; overlapping windows are fitted together.
        min_width_points: smallest accepted FWHM in grid points (measured peaks span several points).
    """
    x = np.asarray(two_theta, dtype=np.float64)
    y = np.asarray(counts, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 8:
        raise InputError("pattern needs matching 2-theta and intensity columns with at least 8 points")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InputError("pattern holds non-finite values (NaN or inf); remove them")
    dx = np.diff(x)
    if np.any(dx <= 0):
        raise InputError("2-theta values must increase strictly; sort the pattern")
    net = y - estimate_background(x, y, background_window_deg)
    prominence = max(min_snr * noise_sigma(y), min_rel_height * max(float(net.max()), 0.0), 1e-300)
    # Light smoothing and a 2-point minimum width reject single-point counting spikes.
    smooth = ndimage.gaussian_filter1d(net, 1.0, mode="nearest")
    idx, props = signal.find_peaks(smooth, prominence=prominence, width=min_width_points)
    if len(idx) == 0:
        empty = np.zeros(0)
        return PeakList(empty, empty, empty, empty)
    step = float(np.median(dx))
    fwhm0 = np.maximum(props["widths"] * step, 2 * step)
    centre0, height0 = x[idx], net[idx]
    lo_edge, hi_edge = centre0 - fit_window_fwhm * fwhm0, centre0 + fit_window_fwhm * fwhm0
    # Overlapping fit windows form one group (fitted jointly).
    new_group = np.concatenate([[True], lo_edge[1:] > np.maximum.accumulate(hi_edge)[:-1]])
    gid = np.cumsum(new_group) - 1
    out = []
    for g in range(gid[-1] + 1):
        m = gid == g
        win = (x >= lo_edge[m].min()) & (x <= hi_edge[m].max())
        out.append(_fit_group(x[win], net[win], centre0[m], height0[m], fwhm0[m]))
    c, a, w, e = (np.concatenate(v) for v in zip(*out))
    order = np.argsort(c)
    c, a, w, e = c[order], a[order], w[order], e[order]
    return PeakList(two_theta=c, height=_pv_height(a, w, e), integrated_intensity=a, fwhm=w)


def peaks_to_q_intensity(peaks: PeakList, wavelength: float) -> tuple[np.ndarray, np.ndarray]:
    """Q (1/Angstrom) and integrated intensity with the Lorentz-polarisation factor divided out."""
    tt = np.asarray(peaks.two_theta, dtype=np.float64)
    return q_from_two_theta(tt, wavelength), np.asarray(peaks.integrated_intensity) / lorentz_polarization(tt)


def merge_tolerance(q_max: float = QAxis.q_max, bins: int = QAxis.bins) -> float:
    """Largest Q distance (1/A) at which a powder peak and a lattice reflection count as one line.

    Set by the resolution the pattern is read at: one bin of the model's Q axis (``bins`` bins over
    (0, ``q_max``], 1/A). Lines closer than a bin are one value in the encoded input, so the model
    cannot tell them apart and their intensity is shared. Training, evaluation and prediction all
    match peaks to reflections with this one tolerance.
    """
    if q_max <= 0 or bins < 1:
        raise InputError(f"a Q axis needs q_max > 0 and at least one bin (got {q_max}, {bins})")
    return float(q_max) / int(bins)


#: :func:`merge_tolerance` of the shipped models' axis (8 1/A in 1024 bins: 0.0078 1/A).
MERGE_TOL_Q = merge_tolerance()


def peak_membership(q: np.ndarray, peak_q: np.ndarray, tol: float) -> np.ndarray:
    """Index into ``peak_q`` of the peak each Q (1/A) lies under: the nearest within ``tol`` (1/A), -1 for
    none. Same shape as ``q``; ``peak_q`` need not be sorted."""
    peak_q = np.asarray(peak_q, dtype=np.float64)
    if peak_q.size == 0:
        return np.full(np.shape(q), -1)
    order = np.argsort(peak_q)
    sq = peak_q[order]
    pos = np.clip(np.searchsorted(sq, q), 1, len(sq)) - 1
    nxt = np.clip(pos + 1, 0, len(sq) - 1)
    nearest = np.where(np.abs(sq[nxt] - q) < np.abs(sq[pos] - q), nxt, pos)
    return np.where(np.abs(sq[nearest] - q) <= tol, order[nearest], -1)


def reflections_per_peak(q_all: np.ndarray, peak_q: np.ndarray, tol: float) -> np.ndarray:
    """How many reflections of the sorted ``q_all`` (1/A, e.g. :func:`powdersolve.scattering.reflection_q`)
    lie within ``tol`` (1/A) of each peak: the peak's multiplicity, exact ones and accidental overlaps."""
    return np.searchsorted(q_all, peak_q + tol, "right") - np.searchsorted(q_all, peak_q - tol, "left")
