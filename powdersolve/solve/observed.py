"""The observed profile that candidate structures are refined against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powdersolve.predict import Prediction


@dataclass(frozen=True)
class Observed:
    """The profile the candidates are refined against.

    Attributes:
        two_theta: (n,) degrees; counts: (n,) processed intensities (background removed).
        wavelength: Angstrom, K-alpha1 after stripping, else the file's / argument's.
        source: the pattern file; fwhm: median FWHM of the picked peaks (deg) or None.
        sigma: (n,) standard uncertainties of ``counts``, or None for unit weights.
    """

    two_theta: np.ndarray
    counts: np.ndarray
    wavelength: float
    source: str
    fwhm: float | None = None
    sigma: np.ndarray | None = None

    def thinned(self, points_per_fwhm: float) -> Observed:
        """Every k-th point, k the step that leaves about ``points_per_fwhm`` points across the median FWHM
        (rounded: picked FWHMs scatter around the true width); itself when that is every point or the FWHM
        is unknown.

        A screening fit only has to rank candidates, and a peak sampled a few times per FWHM still
        carries its integrated intensity and position.
        """
        if self.fwhm is None or not np.isfinite(self.fwhm) or len(self.two_theta) < 2:
            return self
        step = float(np.median(np.diff(self.two_theta)))
        k = round(self.fwhm / (points_per_fwhm * step)) if step > 0 else 1
        if k <= 1:
            return self
        sigma = None if self.sigma is None else self.sigma[::k]
        return Observed(self.two_theta[::k], self.counts[::k], self.wavelength, self.source, self.fwhm, sigma)

    def without(self, excluded: np.ndarray | None) -> Observed:
        """The profile less the points where ``excluded`` (n,) is True (excluded regions); itself for None."""
        if excluded is None or not np.any(excluded):
            return self
        keep = ~np.asarray(excluded, dtype=bool)
        sigma = None if self.sigma is None else self.sigma[keep]
        return Observed(self.two_theta[keep], self.counts[keep], self.wavelength, self.source, self.fwhm, sigma)


def observed_from_prediction(pred: Prediction) -> Observed:
    """The profile ``pred`` was made from: preprocessed exactly as the model saw it, at its effective wavelength."""
    tt, y = pred.processed
    fwhm = float(np.median(pred.peaks.fwhm)) if len(pred.peaks) else None
    return Observed(np.asarray(tt, np.float64), np.asarray(y, np.float64), float(pred.wavelength.effective),
                    pred.source, fwhm).without(pred.excluded)
