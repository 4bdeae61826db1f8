"""Least-squares refinement of a trial cell with a 2-theta zero shift, and its figures of merit.

Refinement alternates assigning each observed line to its nearest calculated line and a linear
least-squares fit of the metric parameters (and of the zero shift, linearised) weighted so that
residuals are in 2-theta degrees. Figures of merit:

- de Wolff ``M20 = Q20 / (2 <|dQ|> N20)``: Q20 the Q of the 20th line (the last if fewer), <|dQ|>
  the mean Q discrepancy of the indexed ones among them (floored at ``EPS_FLOOR`` x the tolerance),
  N20 the distinct calculated lines up to Q20. Lines left unindexed are excluded from <|dQ|> and
  reported (as programs usually do).
- Smith-Snyder ``F_N = N / (<|d2th|> N_poss)`` over the first N = min(30, n) lines, in 1/deg.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powdersolve.indexing.metric import calc_lines, nearest
from powdersolve.indexing.observations import Observed, dq_dtt, tt_from_q

#: Floor of the mean 2-theta discrepancy in M20, as a fraction of the line tolerance.
EPS_FLOOR = 0.1


@dataclass(frozen=True)
class Fit:
    """A refined cell: system parameters ``p`` (1/A^2), zero shift (deg) and its figures of merit."""

    system: str
    centring: str
    p: np.ndarray
    zero: float
    m20: float
    f_n: float
    n_indexed: int
    n_unindexed20: int  # among the first 20 lines, weak ones (Observed.weak) not counted
    n_lines: int
    hkl: np.ndarray  # (n_lines, 3) indices assigned to each line; 0 0 0 for an unindexed one


def refine(system: str, centring: str, p: np.ndarray, obs: Observed, n_iter: int = 5,
           max_unindexed: int = 3) -> tuple[np.ndarray, float] | None:
    """Refined (p, zero) or None when the trial is degenerate or leaves too many lines unindexed."""
    z = 0.0
    n_par = p.size
    for it in range(n_iter):
        q = obs.q(z)
        calc = calc_lines(system, centring, p, float(q[-1]) * 1.02 + 1e-6)
        if calc is None or calc[0].size == 0:
            return None
        cq, cx, _ = calc
        j = nearest(cq, q)
        g = dq_dtt(obs.tt - z, obs.wavelength)
        # The first pass tolerates the unfitted zero shift.
        tol = obs.tol + (obs.max_zero if it == 0 else 0.0)
        ok = np.abs(q - cq[j]) <= g * tol
        if it == 0 and (~ok & obs.counted()).sum() > max_unindexed + 2:
            return None
        x = cx[j[ok]]
        fit_zero = obs.max_zero > 0 and ok.sum() > n_par + 2
        if ok.sum() < n_par + 1 or np.linalg.matrix_rank(x) < n_par:
            return None
        w = 1 / g[ok]  # residuals in 2-theta degrees
        if fit_zero:
            # Q(2th - z - dz) ~ Q(2th - z) - g dz = X p: linear in (p, dz)
            sol = np.linalg.lstsq(np.column_stack([x, g[ok]]) * w[:, None], q[ok] * w, rcond=None)[0]
            p_new, dz = sol[:n_par], sol[n_par]
            z = float(np.clip(z + dz, -obs.max_zero, obs.max_zero))
        else:
            p_new = np.linalg.lstsq(x * w[:, None], q[ok] * w, rcond=None)[0]
        if not np.all(np.isfinite(p_new)):
            return None
        p = p_new
    return p, z


def figures(system: str, centring: str, p: np.ndarray, z: float, obs: Observed) -> Fit | None:
    """Figures of merit and line assignment of a refined cell; None if it predicts no lines."""
    q = obs.q(z)
    m = min(20, q.size)
    q20 = q[m - 1]
    calc = calc_lines(system, centring, p, max(float(q[-1]), q20) * 1.02 + 1e-6)
    if calc is None or calc[0].size == 0:
        return None
    cq, _, chkl = calc
    j = nearest(cq, q)
    dq = np.abs(q - cq[j])
    g = dq_dtt(obs.tt - z, obs.wavelength)
    ok = dq <= g * obs.tol
    first = ok[:m]
    eps = float(np.mean(dq[:m][first])) if first.any() else float(np.inf)
    # Discrepancies below the measurement precision carry no information: floor them, so that cells
    # fitting within it tie on <|dQ|> and differ by N20 (and the caller's preference for symmetry).
    eps = max(eps, EPS_FLOOR * obs.tol * float(np.mean(g[:m])))
    # Lines closer than a thousandth of the tolerance cannot be told apart: count them once.
    sep = 1e-3 * float(np.median(g)) * obs.tol
    upto = cq[cq <= q20 * (1 + 1e-9)]
    n20 = int(1 + np.sum(np.diff(upto) > sep)) if upto.size else 1
    m20 = q20 / (2 * max(eps, 1e-9 * q20) * n20)
    k = min(30, q.size)
    ctt = tt_from_q(cq, obs.wavelength)
    tt = obs.tt - z
    d_tt = float(np.mean(np.abs(tt[:k] - ctt[nearest(ctt, tt[:k])])))
    n_poss = int(np.sum(cq <= q[k - 1] * (1 + 1e-9)))
    f_n = k / (max(d_tt, 1e-6) * max(n_poss, 1))
    hkl = np.where(ok[:, None], chkl[j], 0)
    return Fit(system, centring, np.asarray(p, dtype=np.float64), float(z), float(m20), float(f_n),
               int(ok.sum()), int((~first & obs.counted()[:m]).sum()), int(q.size), hkl)
