"""Peak positions for indexing from a measured pattern: range cut, optional K-alpha2 stripping, peak fit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powdersolve.diffraction.peaks import PeakList, find_peaks
from powdersolve.errors import InputError
from powdersolve.preprocess import PreprocessConfig, doublet_for, preprocess


@dataclass(frozen=True)
class PickedPeaks:
    """Peaks picked for indexing.

    Attributes:
        peaks: fitted peaks (2-theta in deg, intensities in counts).
        wavelength: wavelength (A) the peak positions refer to (K-alpha1 after stripping).
        log: one line per processing step.
        standards: common standards whose strong lines are among the peaks
            (:func:`powdersolve.diffraction.known_phases.standards_present`; set by ``index_counts``).
    """

    peaks: PeakList
    wavelength: float
    log: tuple[str, ...]
    standards: tuple[str, ...] = ()


def kalpha2_companions(peaks: PeakList, lambda1: float, lambda2: float, max_ratio: float = 0.75) -> np.ndarray:
    """(n,) bool: peaks sitting where the K-alpha2 line of a stronger peak falls (within half its
    FWHM, at least 0.02 deg) and weaker than ``max_ratio`` of it - a doublet partner or a stripping
    residue, not a reflection."""
    tt = np.asarray(peaks.two_theta, dtype=np.float64)
    pos2 = np.degrees(2 * np.arcsin(np.clip(np.sin(np.radians(tt) / 2) * lambda2 / lambda1, -1, 1)))
    win = np.maximum(0.5 * np.asarray(peaks.fwhm), 0.02)
    near = np.abs(tt[None, :] - pos2[:, None]) <= win[:, None]  # [i, j]: j at i's K-alpha2 place
    weaker = peaks.height[None, :] < max_ratio * peaks.height[:, None]
    np.fill_diagonal(near, False)
    return np.any(near & weaker, axis=0)


def pick_peaks(two_theta: np.ndarray, counts: np.ndarray, wavelength: float, strip_kalpha2: bool = False,
               min_two_theta: float = 5.0) -> PickedPeaks:
    """Peaks of a pattern (2-theta deg, counts) for indexing.

    When ``wavelength`` (A) is a K-alpha line (K-alpha1, K-alpha2 or their mean), peaks at the
    K-alpha2 place of a stronger one are dropped and the positions are referred to K-alpha1
    (resolved doublets peak there; unresolved ones lie within the line tolerance of it).
    ``strip_kalpha2`` applies Rachinger stripping first (its residues are dropped the same way).
    """
    log: list[str] = []
    try:
        l1, l2 = doublet_for(wavelength)
    except InputError:
        l1 = l2 = 0.0
        if strip_kalpha2:
            log.append(f"K-alpha2 stripping skipped: {wavelength} A is no K-alpha line")
        strip_kalpha2 = False
    cfg = PreprocessConfig(min_two_theta=min_two_theta, strip_kalpha2=strip_kalpha2, background=None)
    tt, y, steps = preprocess(two_theta, counts, wavelength, cfg)
    peaks = find_peaks(tt, y)
    log = steps + log + [f"{len(peaks)} peaks picked"]
    if l2 > 0 and len(peaks):
        drop = kalpha2_companions(peaks, l1, l2)
        if drop.any():
            keep = ~drop
            peaks = PeakList(peaks.two_theta[keep], peaks.height[keep], peaks.integrated_intensity[keep],
                             peaks.fwhm[keep])
            log.append(f"{int(drop.sum())} peaks dropped as K-alpha2 partners or stripping residues")
        log.append(f"peak positions referred to K-alpha1, {l1} A")
    return PickedPeaks(peaks, float(l1 if l2 > 0 else wavelength), tuple(log))
