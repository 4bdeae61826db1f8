"""Preprocessing of a measured powder pattern before peak picking and the model.

Each step is a pure function on ``(two_theta, counts)`` (2-theta in degrees, counts in any
linear unit) and can be switched off in :class:`PreprocessConfig`:

1. :func:`cut_range` - drop the low-angle region (air scatter, beam stop; default 2-theta < 5 deg);
2. :func:`shift_zero` - remove a known instrument zero shift (``2th_true = 2th_measured - zero``);
3. :func:`strip_kalpha2` - Rachinger K-alpha2 stripping, leaving the K-alpha1-only pattern; done only
   when :func:`has_kalpha2` finds a doublet in the data (stripping a K-alpha1-only scan digs a negative
   ghost of half of every peak 0.1-0.5 deg above it, which the background step then turns into humps);
4. :func:`remove_background` - SNIP or arPLS baseline (pybaselines when installed, else SNIP in numpy).

:func:`to_q` and :func:`coverage` relate the result to the model's wavelength-free Q axis
(Q = 4 pi sin(theta) / lambda = 2 pi / d, 1/Angstrom). :func:`plot_processing` draws raw,
processed and model-input patterns for the user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from powdersolve.diffraction.sticks import DOUBLETS, q_from_two_theta
from powdersolve.errors import InputError
from powdersolve.fileio import atomic_path

#: Background methods :func:`remove_background` accepts.
BACKGROUND_METHODS = ("snip", "arpls")


@dataclass(frozen=True)
class PreprocessConfig:
    """Switches and parameters of :func:`preprocess`.

    Attributes:
        min_two_theta: drop points below this 2-theta (deg); None keeps all.
        max_two_theta: drop points above this 2-theta (deg); None keeps all.
        zero_shift: instrument zero shift (deg) subtracted from 2-theta; 0 disables.
        strip_kalpha2: apply Rachinger K-alpha2 stripping (when ``kalpha2_check`` finds a doublet).
        kalpha2_check: strip only when :func:`has_kalpha2` sees K-alpha2 in the data; False strips always.
        doublet: anode of the doublet ('Cu', 'Mo', 'Co', 'Cr', 'Fe', 'Ag'); None infers it from
            the wavelength (must be that anode's K-alpha, K-alpha1 or K-alpha2 value).
        kalpha2_ratio: I(K-alpha2)/I(K-alpha1), 0.5 for all usual anodes.
        background: 'snip', 'arpls' or None (no background removal).
        background_window: SNIP half-window / arPLS smoothness scale in degrees 2-theta; should
            be a few peak widths so peaks are not eaten.
    """

    min_two_theta: float | None = 5.0
    max_two_theta: float | None = None
    zero_shift: float = 0.0
    strip_kalpha2: bool = False
    kalpha2_check: bool = True
    doublet: str | None = None
    kalpha2_ratio: float = 0.5
    background: str | None = "snip"
    background_window: float = 1.5


def _check(two_theta: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated float copies, sorted by 2-theta."""
    tt = np.asarray(two_theta, dtype=np.float64).ravel()
    y = np.asarray(counts, dtype=np.float64).ravel()
    if tt.shape != y.shape:
        raise InputError(f"2-theta ({tt.size}) and counts ({y.size}) differ in length; give one count per angle")
    if tt.size < 3:
        raise InputError(f"pattern has {tt.size} points; give a measured scan with at least 3 points")
    if not (np.all(np.isfinite(tt)) and np.all(np.isfinite(y))):
        raise InputError("pattern holds NaN or infinite values; remove them from the data file")
    order = np.argsort(tt, kind="stable")
    return tt[order], y[order]


def cut_range(two_theta: np.ndarray, counts: np.ndarray, min_two_theta: float | None = 5.0,
              max_two_theta: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Keep points with ``min_two_theta <= 2-theta <= max_two_theta`` (deg; None = open end)."""
    tt, y = np.asarray(two_theta, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    keep = np.ones(tt.shape, dtype=bool)
    if min_two_theta is not None:
        keep &= tt >= min_two_theta
    if max_two_theta is not None:
        keep &= tt <= max_two_theta
    if keep.sum() < 3:
        raise InputError(f"fewer than 3 points lie in 2-theta {min_two_theta}-{max_two_theta} deg; "
                         "lower --min-two-theta or check the angle column")
    return tt[keep], y[keep]


def shift_zero(two_theta: np.ndarray, zero_shift: float) -> np.ndarray:
    """Corrected 2-theta (deg): ``2th - zero_shift``, the convention of ``CellSolution.zero_shift``."""
    return np.asarray(two_theta, dtype=np.float64) - float(zero_shift)


def doublet_for(wavelength: float, doublet: str | None = None, tol: float = 2e-3) -> tuple[float, float]:
    """(lambda1, lambda2) in Angstrom for a named anode or the anode whose K-alpha line is ``wavelength``."""
    if doublet is not None:
        key = doublet.strip().capitalize()[:2]
        if key not in DOUBLETS:
            raise InputError(f"unknown K-alpha doublet '{doublet}'; give one of {', '.join(sorted(DOUBLETS))}")
        l1, l2, _ = DOUBLETS[key]
        return l1, l2
    for l1, l2, r in DOUBLETS.values():
        mean = (l1 + r * l2) / (1 + r)
        if min(abs(wavelength - l1), abs(wavelength - l2), abs(wavelength - mean)) < tol:
            return l1, l2
    raise InputError(f"wavelength {wavelength} A is no K-alpha line; name the anode (--doublet Cu) "
                     "or switch K-alpha2 stripping off")


def strip_kalpha2(two_theta: np.ndarray, counts: np.ndarray, lambda1: float, lambda2: float,
                  ratio: float = 0.5) -> np.ndarray:
    """Rachinger K-alpha2 stripping: counts of the K-alpha1-only pattern.

    The K-alpha2 copy of a K-alpha1 feature at 2th' appears at 2th with
    sin(th) = (lambda2/lambda1) sin(th'), so walking up in angle
    ``I1(2th) = I(2th) - ratio * I1(2th')`` with ``sin th' = (lambda1/lambda2) sin th``;
    ``I1(2th')`` is linearly interpolated from values already stripped. ``two_theta`` (deg) must
    be ascending; wavelengths in Angstrom.
    """
    tt, y = np.asarray(two_theta, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    if lambda2 <= lambda1:
        raise InputError(f"K-alpha2 wavelength {lambda2} A must exceed K-alpha1 {lambda1} A")
    src = np.degrees(2 * np.arcsin(np.sin(np.radians(tt) / 2) * lambda1 / lambda2))
    # Grid interval holding each source angle: tt[j] <= src < tt[j + 1] with j + 1 <= i since src < 2th.
    j = np.searchsorted(tt, src, side="right") - 1
    w = (src - tt[np.clip(j, 0, None)]) / np.diff(tt, append=np.inf)[np.clip(j, 0, None)]
    out = y.copy()
    for i in range(tt.size):  # recursive by nature: each point needs already-stripped lower angles
        ji, wi = j[i], w[i]
        if ji < 0:
            continue  # source below the scan: nothing known to strip
        if ji + 1 == i:
            # Shift under one step: the interpolation involves the point being solved for.
            out[i] = (y[i] - ratio * (1 - wi) * out[ji]) / (1 + ratio * wi)
        else:
            out[i] = y[i] - ratio * ((1 - wi) * out[ji] + wi * out[ji + 1])
    return out


def has_kalpha2(two_theta: np.ndarray, counts: np.ndarray, lambda1: float, lambda2: float,
                ratio: float = 0.5, max_ghost: float = 0.01) -> bool:
    """Whether the pattern holds a K-alpha2 component that :func:`strip_kalpha2` may remove.

    Stripping removes ``ratio`` times each feature from where its K-alpha2 copy would be. When the
    scan has no K-alpha2 (a monochromated K-alpha1 source, or a simulated pattern), that leaves a
    negative ghost of every peak; when it has one, only noise goes below zero. The test strips the
    background-free counts and compares the area more than 3 sigma (Poisson, sqrt counts) below zero
    with the peak area more than 3 sigma above it: above ``max_ghost`` the data have no doublet.
    ``two_theta`` (deg, ascending); wavelengths in Angstrom.
    """
    tt, y = np.asarray(two_theta, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    signal = y - estimate_background(tt, y, "snip", 1.5)
    sigma = np.sqrt(np.maximum(np.abs(y), 1.0))
    peaks = float(np.sum(np.clip(signal - 3 * sigma, 0, None)))
    if peaks <= 0:
        return False  # nothing above the noise: stripping cannot help
    stripped = strip_kalpha2(tt, signal, lambda1, lambda2, ratio)
    ghost = float(np.sum(np.clip(-stripped - 3 * sigma, 0, None)))
    return ghost <= max_ghost * peaks


def _snip_numpy(y: np.ndarray, half_window: int) -> np.ndarray:
    """SNIP baseline (Ryan et al. 1988) with the LLS transform and increasing windows."""
    v = np.log(np.log(np.sqrt(np.clip(y, 0, None) + 1) + 1) + 1)
    m = int(max(1, half_window))
    v = np.pad(v, m, mode="edge")
    for p in range(1, m + 1):
        mid = 0.5 * (v[: -2 * p] + v[2 * p:])
        v[p:-p] = np.minimum(v[p:-p], mid)
    v = v[m:-m]
    return (np.exp(np.exp(v) - 1) - 1) ** 2 - 1


def estimate_background(two_theta: np.ndarray, counts: np.ndarray, method: str = "snip",
                        window: float = 1.5) -> np.ndarray:
    """Background (same units as ``counts``) under the peaks.

    ``window`` (deg 2-theta) is the SNIP half-window or, for arPLS, the length over which the
    baseline may bend (lam = (window_points / 8)^4, tuned on simulated patterns). Uses
    pybaselines when installed; SNIP falls back to a numpy implementation.
    """
    tt, y = np.asarray(two_theta, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    if method not in BACKGROUND_METHODS:
        raise InputError(f"unknown background method '{method}'; give one of {', '.join(BACKGROUND_METHODS)}")
    step = float(np.median(np.diff(tt)))
    half = int(np.clip(round(window / max(step, 1e-9)), 1, max(1, (tt.size - 1) // 2)))
    try:
        from pybaselines import Baseline
    except ImportError:  # optional dependency
        Baseline = None
    if method == "arpls":
        if Baseline is None:
            raise InputError("background 'arpls' needs pybaselines (pip install pybaselines); use 'snip'")
        bg, _ = Baseline(tt).arpls(y, lam=(half / 8.0) ** 4)
        return np.asarray(bg)
    if Baseline is None:
        return _snip_numpy(y, half)
    # Edge padding: pybaselines' default linear extrapolation over the last window runs steeply below
    # zero when a peak sits near the end of the scan (a -3000 count "background" at 115 deg for AlAs).
    bg, _ = Baseline(tt).snip(y, max_half_window=half, decreasing=True, smooth_half_window=0,
                              pad_kwargs={"mode": "edge"})
    return np.asarray(bg)


def remove_background(two_theta: np.ndarray, counts: np.ndarray, method: str = "snip",
                      window: float = 1.5) -> np.ndarray:
    """Counts minus :func:`estimate_background`, clipped at 0."""
    return np.clip(np.asarray(counts, dtype=np.float64) - estimate_background(two_theta, counts, method, window),
                   0, None)


def to_q(two_theta: np.ndarray, wavelength: float) -> np.ndarray:
    """Q = 4 pi sin(theta) / lambda (1/Angstrom, = 2 pi / d) from 2-theta (deg) and lambda (Angstrom)."""
    return q_from_two_theta(two_theta, wavelength)


def coverage(two_theta_range: tuple[float, float], wavelength: float) -> tuple[float, float]:
    """(q_min, q_max) in 1/Angstrom of the model's Q axis that a scan over ``two_theta_range`` (deg) reaches."""
    lo, hi = float(min(two_theta_range)), float(max(two_theta_range))
    lo, hi = max(lo, 0.0), min(hi, 180.0)
    q = to_q(np.array([lo, hi]), wavelength)
    return float(q[0]), float(q[1])


def effective_wavelength(wavelength: float, cfg: PreprocessConfig) -> float:
    """Wavelength (Angstrom) the preprocessed pattern is at: lambda1 after K-alpha2 stripping."""
    return doublet_for(wavelength, cfg.doublet)[0] if cfg.strip_kalpha2 else float(wavelength)


def preprocess(two_theta: np.ndarray, counts: np.ndarray, wavelength: float,
               cfg: PreprocessConfig = PreprocessConfig()) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Apply the enabled steps in order: range cut, zero shift, K-alpha2 stripping, background.

    Returns corrected 2-theta (deg), processed counts and one human-readable line per step.
    After K-alpha2 stripping the pattern is at :func:`effective_wavelength` (lambda1).
    """
    tt, y = _check(two_theta, counts)
    log: list[str] = []
    if cfg.min_two_theta is not None or cfg.max_two_theta is not None:
        n0 = tt.size
        tt, y = cut_range(tt, y, cfg.min_two_theta, cfg.max_two_theta)
        log.append(f"range cut {cfg.min_two_theta}-{cfg.max_two_theta} deg: dropped {n0 - tt.size} of {n0} points")
    if cfg.zero_shift:
        tt = shift_zero(tt, cfg.zero_shift)
        log.append(f"zero shift: subtracted {cfg.zero_shift:+.4f} deg from 2-theta")
    if cfg.strip_kalpha2:
        l1, l2 = doublet_for(wavelength, cfg.doublet)
        if cfg.kalpha2_check and not has_kalpha2(tt, y, l1, l2, cfg.kalpha2_ratio):
            log.append(f"K-alpha2 not stripped: the data show no doublet (stripping would leave negative ghosts); "
                       f"pattern taken at lambda1={l1} A")
        else:
            y = strip_kalpha2(tt, y, l1, l2, cfg.kalpha2_ratio)
            log.append(f"K-alpha2 stripped (Rachinger, lambda1={l1} A, lambda2={l2} A, ratio={cfg.kalpha2_ratio}); "
                       f"pattern now at lambda1")
    if cfg.background is not None:
        bg = estimate_background(tt, y, cfg.background, cfg.background_window)
        y = np.clip(y - bg, 0, None)
        log.append(f"background removed ({cfg.background}, window {cfg.background_window} deg, "
                   f"mean {float(np.mean(bg)):.4g} counts)")
    return tt, y, log


def plot_processing(raw: tuple[np.ndarray, np.ndarray], processed: tuple[np.ndarray, np.ndarray],
                    model_input: np.ndarray | tuple[np.ndarray, np.ndarray] | None,
                    path: str | os.PathLike, q_max: float = 8.0) -> None:
    """Write a three-panel figure (raw, processed, model input) to ``path`` atomically.

    ``raw`` and ``processed`` are (2-theta deg, counts). ``model_input`` is the (2, bins) array of
    :func:`powdersolve.diffraction.encode_q` on an axis ending at ``q_max`` (1/A), or (Q, value), or None.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 3 if model_input is not None else 2
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.4 * n), constrained_layout=True)
    axes[0].plot(raw[0], raw[1], lw=0.7, color="0.3")
    axes[0].set(title="raw pattern", xlabel="2-theta (deg)", ylabel="counts")
    axes[1].plot(processed[0], processed[1], lw=0.7, color="C0")
    axes[1].set(title="processed", xlabel="2-theta (deg)", ylabel="counts")
    if model_input is not None:
        if isinstance(model_input, tuple):
            q, val, mask = np.asarray(model_input[0]), np.asarray(model_input[1]), None
        else:
            arr = np.asarray(model_input)
            bins = arr.shape[-1]
            q = (np.arange(bins) + 0.5) * q_max / bins
            val = arr[0] if arr.ndim == 2 else arr
            mask = arr[1] if arr.ndim == 2 and arr.shape[0] > 1 else None
        axes[2].vlines(q, 0, val, lw=0.8, color="C3")
        if mask is not None:
            axes[2].fill_between(q, 0, 1.05, where=mask < 0.5, color="0.85", step="mid", label="not measured")
            axes[2].legend(loc="upper right", fontsize=8)
        axes[2].set(title="model input", xlabel="Q = 2 pi / d (1/A)", ylabel="sqrt intensity")
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=110)
    plt.close(fig)
