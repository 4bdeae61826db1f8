"""The measured powder pattern every reader returns, and the checks every reader applies.

Readers parse a file into plain arrays and hand them to :func:`make_pattern`, which is the one
place that decides what a usable pattern is: finite, non-negative, not all zero, 2-theta strictly
increasing inside (0, 180) degrees, at most :data:`MAX_POINTS` points, a plausible wavelength.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from powdersolve.errors import InputError
from powdersolve.fileio import check_input_file

#: Refuse patterns longer than this: no diffractometer scan has 10^7 steps, a file that does is hostile.
MAX_POINTS = 10_000_000
#: Fewer points than this cannot hold a diffraction pattern.
MIN_POINTS = 10
#: Plausible X-ray / neutron wavelengths in Angstrom (same window as parse_wavelength).
WAVELENGTH_RANGE = (0.1, 5.0)

_WAVELENGTH_RE = re.compile(
    r"(?:wave\s*length|wavelength|lambda|lam1|alpha1|\u03bb)\s*(?:\(\s*(?:a|\u00c5|angstrom)\s*\))?\s*[:=;,\t]?\s*"
    r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(nm|a\b|\u00c5|angstrom)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Pattern:
    """A measured 1-D powder pattern.

    Attributes:
        two_theta: (n,) scattering angles in degrees, float64, strictly increasing in (0, 180).
        counts: (n,) intensities (counts or counts/s as the file gives them), float64, >= 0.
        sigma: (n,) standard uncertainties of ``counts`` or None when the file gives none.
        wavelength: Angstrom, or None when the file does not say.
        source: the file read.
        format: reader name ('xy', 'gsas', 'xrdml', 'bruker_raw', 'pdcif').
        metadata: anything else the file says (counting time, sample name, ...), plain values.
    """

    two_theta: np.ndarray
    counts: np.ndarray
    sigma: np.ndarray | None
    wavelength: float | None
    source: Path
    format: str
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.two_theta.size)

    @property
    def step(self) -> float:
        """Median 2-theta step in degrees."""
        return float(np.median(np.diff(self.two_theta)))


def check_wavelength(value: float | None, path: Path, what: str = "wavelength") -> float | None:
    """Return ``value`` (Angstrom) after checking it is physical; None passes through."""
    if value is None:
        return None
    lam = float(value)
    lo, hi = WAVELENGTH_RANGE
    if not np.isfinite(lam) or not (lo <= lam <= hi):
        raise InputError(f"{path}: {what} {value} A is outside {lo}-{hi} A; fix the file or pass --wavelength")
    return lam


def wavelength_from_text(text: str) -> float | None:
    """First 'wavelength = 1.5406' / 'lambda: 0.1 nm' style value in free text, in Angstrom, or None."""
    m = _WAVELENGTH_RE.search(text)
    if m is None:
        return None
    value = float(m.group(1))
    unit = (m.group(2) or "").lower()
    return value * 10.0 if unit == "nm" else value


def make_pattern(
    two_theta: np.ndarray,
    counts: np.ndarray,
    sigma: np.ndarray | None,
    wavelength: float | None,
    path: Path,
    fmt: str,
    metadata: dict | None = None,
) -> Pattern:
    """Validate reader output and build a :class:`Pattern`.

    A strictly descending scan is reversed (some instruments scan high to low); any other
    disorder or a repeated angle is refused because the x column is then not an angle scan.
    """
    x = np.asarray(two_theta, dtype=np.float64).ravel()
    y = np.asarray(counts, dtype=np.float64).ravel()
    s = None if sigma is None else np.asarray(sigma, dtype=np.float64).ravel()
    n = x.size
    if n == 0:
        raise InputError(f"{path}: no data points found; check the file format")
    if n > MAX_POINTS:
        raise InputError(f"{path}: {n} points is above the {MAX_POINTS} limit; rebin the pattern")
    if y.size != n or (s is not None and s.size != n):
        raise InputError(f"{path}: 2-theta and intensity columns differ in length; the file is truncated")
    if n < MIN_POINTS:
        raise InputError(f"{path}: only {n} data points; give a full pattern (>= {MIN_POINTS} points)")
    for name, arr in (("2-theta", x), ("intensity", y), ("sigma", s)):
        if arr is not None and not np.all(np.isfinite(arr)):
            bad = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise InputError(f"{path}: {name} value {arr[bad]} at point {bad + 1} is not finite; remove it")
    if np.any(y < 0):
        bad = int(np.flatnonzero(y < 0)[0])
        raise InputError(
            f"{path}: negative intensity {y[bad]:g} at 2-theta {x[bad]:g}; give raw, not background-subtracted, counts"
        )
    if not np.any(y > 0):
        raise InputError(f"{path}: all intensities are zero; the scan recorded nothing")
    if s is not None and np.any(s < 0):
        raise InputError(f"{path}: negative sigma values; the third column must be standard uncertainties")
    d = np.diff(x)
    if np.all(d < 0):
        x, y = x[::-1].copy(), y[::-1].copy()
        s = None if s is None else s[::-1].copy()
        d = np.diff(x)
    if np.any(d == 0):
        bad = int(np.flatnonzero(d == 0)[0])
        raise InputError(f"{path}: 2-theta {x[bad]:g} appears twice; merge or remove duplicated points")
    if np.any(d < 0):
        bad = int(np.flatnonzero(d < 0)[0])
        raise InputError(
            f"{path}: 2-theta is not sorted (goes from {x[bad]:g} to {x[bad + 1]:g}); sort the scan by angle"
        )
    if x[0] <= 0 or x[-1] >= 180:
        raise InputError(
            f"{path}: 2-theta runs {x[0]:g}-{x[-1]:g} deg, outside (0, 180); is the first column 2-theta in degrees?"
        )
    lam = check_wavelength(wavelength, path)
    return Pattern(x, y, s, lam, Path(path), fmt, dict(metadata or {}))


def read_text_file(path: str | Path) -> tuple[Path, str]:
    """Checked path and its decoded text; refuses binary content (NUL bytes)."""
    p = check_input_file(path)
    raw = p.read_bytes()
    if b"\x00" in raw[:65536]:
        raise InputError(f"{p}: is a binary file, expected text; export the pattern as .xy or pass --format")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Instrument software writes Windows-1252 / Latin-1 headers (degree sign, Angstrom sign).
        text = raw.decode("latin-1")
    if not text.strip():
        raise InputError(f"{p}: holds only white space; give a non-empty pattern file")
    return p, text
