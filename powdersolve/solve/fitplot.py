"""Rietveld-style figure of a profile fit: observed, calculated, difference and reflection ticks."""

from __future__ import annotations

import os

import numpy as np

from powdersolve.fileio import atomic_path


def plot_fit(two_theta: np.ndarray, obs: np.ndarray, calc: np.ndarray, ticks: np.ndarray,
             path: str | os.PathLike, title: str = "") -> None:
    """Rietveld plot: observed (points), calculated (line), difference (offset below) and reflection ticks.

    ``two_theta`` and ``ticks`` in degrees. Written atomically; the format comes from the file suffix
    (png, pdf, svg).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tt = np.asarray(two_theta)
    obs, calc = np.asarray(obs), np.asarray(calc)
    fig = Figure(figsize=(9, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    span = max(float(np.max(obs) - np.min(obs)), 1e-12)
    diff = obs - calc
    off = float(np.min(np.minimum(obs, calc))) - 0.08 * span - float(np.max(diff))
    ax.plot(tt, obs, ".", ms=2.5, color="tab:red", label="observed")
    ax.plot(tt, calc, "-", lw=0.9, color="k", label="calculated")
    ax.plot(tt, diff + off, "-", lw=0.8, color="tab:blue", label="obs - calc")
    tick_y = off - 0.06 * span
    ax.plot(np.asarray(ticks), np.full(len(ticks), tick_y), "|", ms=8, color="tab:green", label="reflections")
    ax.set_xlabel("2θ (degrees)")
    ax.set_ylabel("intensity")
    ax.set_xlim(tt.min(), tt.max())
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt)
