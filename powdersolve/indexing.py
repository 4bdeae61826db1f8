"""Classical indexing of a powder pattern: unit cell from peak positions (cubic; hexagonal setting).

Work is done in s = 1/d^2 (1/Angstrom^2), where every lattice is linear in its metric parameters:

- cubic: s = N / a^2 with N = h^2 + k^2 + l^2 restricted by the centring (P any sum of three
  squares, I even N, F all-odd or all-even h, k, l);
- hexagonal setting: s = (4/3) H / a^2 + l^2 / c^2 with H = h^2 + hk + k^2; 'P' allows every
  (H, l) ('hexagonal' family, also trigonal-P groups), 'R' the obverse rhombohedral condition
  -h + k + l = 3n, which in (H, l) reads "H divisible by 3 exactly when l is" ('trigonal').

Trial cells come from assigning the first lines to low indices (cubic: one line fixes a;
hexagonal: one line fixes a or c, a second the other), are screened by how many lines they
index, refined by weighted linear least squares (optionally with a zero shift of 2-theta,
linearised), and ranked by de Wolff's M20 = s_20 / (2 <|ds|> N_20): s_20 is s of the 20th
observed line (the last one if fewer), <|ds|> the mean distance of those lines to their nearest
calculated line, N_20 the number of distinct calculated lines up to s_20. An M20 below
:data:`M20_THRESHOLD` = 10 (de Wolff's rule of thumb for a "probably correct" cell) is refused
by :func:`best_cell`. Smith-Snyder F_N (N = 30 or all lines) is reported alongside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from powdersolve.diffraction.sticks import WAVELENGTHS
from powdersolve.errors import InputError

#: de Wolff M20 below which :func:`best_cell` refuses the cell.
M20_THRESHOLD = 10.0
#: Wavelength (Angstrom) used to express 2-theta tolerances when only d-spacings are given.
REFERENCE_WAVELENGTH = WAVELENGTHS["CuKa1"]
#: Fewest peak positions indexing accepts.
MIN_LINES = 5
SYSTEMS = ("cubic", "hexagonal")
#: Ranking weight of an acceptable cubic solution's M20 against hexagonal/trigonal ones (fewer parameters).
CUBIC_PREFERENCE = 3.0
_CENTRINGS = {"cubic": ("P", "I", "F"), "hexagonal": ("P", "R")}
# c/a of a rhombohedral (hexagonal-setting) lattice that is metrically cubic (P, F, I cubic).
_CUBIC_R_RATIOS = np.sqrt([1.5, 6.0, 0.375])


@dataclass(frozen=True)
class CellSolution:
    """One indexing solution.

    Attributes:
        system: 'cubic', 'hexagonal' (P hexagonal lattice) or 'trigonal' (R lattice, hexagonal setting).
        a, b, c: cell edges (Angstrom); alpha, beta, gamma: angles (deg).
        centring: 'P', 'I', 'F' (cubic) or 'P', 'R' (hexagonal setting, obverse).
        m20: de Wolff figure of merit over the first 20 lines (or all if fewer).
        n_indexed: observed lines within the tolerance of a calculated line.
        zero_shift: 2-theta zero shift (deg) with 2th_true = 2th_measured - zero_shift; 0 when not fitted.
        n_lines: observed lines given.
        f_n: Smith-Snyder F_N in 2-theta (1/deg) over the first 30 lines (or all).
    """

    system: str
    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float
    centring: str
    m20: float
    n_indexed: int
    zero_shift: float
    n_lines: int = 0
    f_n: float = 0.0

    @property
    def volume(self) -> float:
        """Cell volume in Angstrom^3."""
        if self.system == "cubic":
            return self.a**3
        return float(np.sqrt(3) / 2 * self.a**2 * self.c)

    def lattice(self) -> np.ndarray:
        """(3, 3) lattice rows a, b, c in Angstrom (hexagonal: a along x, gamma = 120 deg)."""
        if self.system == "cubic":
            return np.eye(3) * self.a
        return np.array([[self.a, 0, 0], [-self.a / 2, self.a * np.sqrt(3) / 2, 0], [0, 0, self.c]])


# ----------------------------------------------------------------------------------------- index sets


def _three_squares(n: np.ndarray) -> np.ndarray:
    """True where n >= 1 is a sum of three squares (Legendre: not 4^a (8b + 7))."""
    m = n.copy()
    for _ in range(int(np.log2(max(int(n.max(initial=1)), 1)) // 2) + 1):
        m = np.where((m % 4 == 0) & (m > 0), m // 4, m)
    return (m % 8 != 7) & (n > 0)


def _cubic_n(centring: str, n_max: float) -> np.ndarray:
    """Allowed N = h^2 + k^2 + l^2 <= n_max of a cubic lattice, ascending."""
    n = np.arange(1, int(n_max) + 1)
    rep = _three_squares(n)
    if centring == "P":
        ok = rep
    elif centring == "I":
        ok = rep & (n % 2 == 0)
    else:  # F: h, k, l all odd (N = 3 mod 8) or all even (N = 4 M, M a sum of three squares)
        ok = (n % 8 == 3) | ((n % 4 == 0) & _three_squares(np.maximum(n // 4, 1)) & (n >= 4))
    return n[ok]


def _loeschian(h_max: float) -> np.ndarray:
    """Distinct H = h^2 + hk + k^2 <= h_max (including 0), ascending."""
    r = int(np.sqrt(max(h_max, 0))) + 2
    h, k = np.meshgrid(np.arange(r), np.arange(r), indexing="ij")
    v = (h * h + h * k + k * k).ravel()
    return np.unique(v[v <= h_max])


def _hex_sets(centring: str, h_max: float) -> dict[str, np.ndarray]:
    """Allowed H for l = 0, l = 3n > 0 and l != 3n (obverse R condition for 'R')."""
    lo = _loeschian(h_max)
    if centring == "P":
        return {"zero": lo[lo > 0], "three": lo, "other": lo}
    div = lo[lo % 3 == 0]
    return {"zero": div[div > 0], "three": div, "other": lo[lo % 3 != 0]}


def _calc_lines(system: str, centring: str, p: np.ndarray, s_max: float,
                limit: int = 50000) -> tuple[np.ndarray, np.ndarray] | None:
    """Distinct calculated s <= s_max (ascending) and one design row X (s = X @ p) each; None if too many."""
    if system == "cubic":
        n_max = s_max / p[0]
        if n_max > limit:
            return None
        n = _cubic_n(centring, n_max).astype(np.float64)
        return n * p[0], n[:, None]
    h_max, l_max = s_max / p[0], int(np.sqrt(s_max / p[1]))
    if h_max * l_max > limit:
        return None
    sets = _hex_sets(centring, h_max)
    rows = []
    for l in range(l_max + 1):
        hs = sets["zero"] if l == 0 else sets["three"] if l % 3 == 0 else sets["other"]
        rows.append(np.stack([hs, np.full(hs.shape, l * l)], axis=1))
    x = np.concatenate(rows).astype(np.float64)
    s = x @ p
    keep = s <= s_max
    s, x = s[keep], x[keep]
    order = np.argsort(s, kind="stable")
    s, x = s[order], x[order]
    distinct = np.concatenate([[True], np.diff(s) > 1e-9 * s[1:]]) if s.size else np.zeros(0, bool)
    return s[distinct], x[distinct]


def _nearest(sorted_vals: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of ``sorted_vals`` to each x."""
    i = np.clip(np.searchsorted(sorted_vals, x), 1, max(sorted_vals.size - 1, 1))
    lo = np.clip(i - 1, 0, sorted_vals.size - 1)
    i = np.clip(i, 0, sorted_vals.size - 1)
    return np.where(np.abs(x - sorted_vals[lo]) <= np.abs(sorted_vals[i] - x), lo, i)


# ----------------------------------------------------------------------------------- geometry helpers


def _s_from_tt(tt: np.ndarray, wavelength: float) -> np.ndarray:
    """s = 1/d^2 (1/A^2) from 2-theta (deg)."""
    return (2 * np.sin(np.radians(tt) / 2) / wavelength) ** 2


def _ds_dtt(tt: np.ndarray, wavelength: float) -> np.ndarray:
    """ds/d(2-theta) in 1/A^2 per degree."""
    return 2 * np.sin(np.radians(tt)) / wavelength**2 * np.pi / 180


def _tt_from_s(s: np.ndarray, wavelength: float) -> np.ndarray:
    """2-theta (deg) from s; 180 beyond the Ewald limit."""
    return np.degrees(2 * np.arcsin(np.clip(np.sqrt(s) * wavelength / 2, 0, 1)))


def _cell_params(system: str, p: np.ndarray) -> tuple[float, float]:
    """(a, c) in Angstrom from the metric parameters."""
    if system == "cubic":
        a = 1 / np.sqrt(p[0])
        return float(a), float(a)
    return float(np.sqrt(4 / (3 * p[0]))), float(1 / np.sqrt(p[1]))


# ------------------------------------------------------------------------------------- refinement


@dataclass(frozen=True)
class _Obs:
    """Observed lines: 2-theta (deg, ascending) at a wavelength, with tolerance and zero-fit settings."""

    tt: np.ndarray
    wavelength: float
    tol: float
    max_zero: float


def _refine(system: str, centring: str, p: np.ndarray, obs: _Obs, loose: float,
            n_iter: int = 4) -> tuple[np.ndarray, float] | None:
    """Iteratively assign lines and solve weighted least squares for (p, zero); None if degenerate."""
    z = 0.0
    n_par = p.size
    for it in range(n_iter):
        tt = obs.tt - z
        s = _s_from_tt(tt, obs.wavelength)
        g = _ds_dtt(tt, obs.wavelength)
        calc = _calc_lines(system, centring, p, s[-1] * 1.02 + 1e-6)
        if calc is None or calc[0].size == 0:
            return None
        cs, cx = calc
        j = _nearest(cs, s)
        tol = obs.tol + (loose if it == 0 else 0.0)
        ok = np.abs(s - cs[j]) <= g * tol
        x = cx[j[ok]]
        if ok.sum() < n_par + 1 + (obs.max_zero > 0) or np.linalg.matrix_rank(x) < n_par:
            return None
        w = 1 / g[ok]  # weights make residuals 2-theta degrees
        if obs.max_zero > 0:
            # s(2th - z - dz) ~ s(2th - z) - g dz = X p: linear in (p, dz)
            design = np.column_stack([x, g[ok]])
            sol = np.linalg.lstsq(design * w[:, None], s[ok] * w, rcond=None)[0]
            p_new, dz = sol[:n_par], sol[n_par]
            z = float(np.clip(z + dz, -obs.max_zero, obs.max_zero))
        else:
            p_new = np.linalg.lstsq(x * w[:, None], s[ok] * w, rcond=None)[0]
        if np.any(p_new <= 0) or not np.all(np.isfinite(p_new)):
            return None
        p = p_new
    return p, z


def _figures(system: str, centring: str, p: np.ndarray, z: float, obs: _Obs) -> tuple[float, float, int] | None:
    """(M20, F_N, n_indexed) of a refined cell."""
    tt = obs.tt - z
    s = _s_from_tt(tt, obs.wavelength)
    m = min(20, s.size)
    s20 = s[m - 1]
    calc = _calc_lines(system, centring, p, max(s[-1], s20) * 1.02 + 1e-6)
    if calc is None or calc[0].size == 0:
        return None
    cs, _ = calc
    j = _nearest(cs, s)
    eps = float(np.mean(np.abs(s[:m] - cs[j[:m]])))
    n20 = int(np.sum(cs <= s20 * (1 + 1e-9)))
    m20 = s20 / (2 * max(eps, 1e-9 * s20) * max(n20, 1))
    # Smith-Snyder F_N in 2-theta
    k = min(30, s.size)
    ctt = _tt_from_s(cs, obs.wavelength)
    d_tt = float(np.mean(np.abs(tt[:k] - ctt[_nearest(ctt, tt[:k])])))
    n_poss = int(np.sum(cs <= s[k - 1] * (1 + 1e-9)))
    f_n = k / (max(d_tt, 1e-6) * max(n_poss, 1))
    g = _ds_dtt(tt, obs.wavelength)
    n_ok = int(np.sum(np.abs(s - cs[j]) <= g * obs.tol))
    return float(m20), float(f_n), n_ok


# ------------------------------------------------------------------------------------ trial cells


def _cubic_trials(centring: str, s: np.ndarray, n_first: int = 5, n_low: int = 14,
                  a_max: float = 40.0) -> np.ndarray:
    """Trial p = [1/a^2] from the first lines assigned to the lowest allowed N."""
    ns = _cubic_n(centring, 200)[:n_low].astype(np.float64)
    p = (s[:n_first, None] / ns[None, :]).ravel()
    p = p[p >= 1 / a_max**2]
    keys = np.unique(np.round(np.log(p) * 2000))
    return np.exp(keys / 2000)[:, None]


def _hex_trials(s: np.ndarray, n_first: int = 7, a_max: float = 40.0, c_max: float = 120.0,
                a_min: float = 1.5, c_min: float = 1.5) -> np.ndarray:
    """Trial p = [4/(3a^2), 1/c^2] from every pair of the first lines assigned to low (H, l).

    Pairs rather than "one hk0 line, one 00l line" because layered cells (e.g. 9R) often show
    neither among their first lines.
    """
    hh, ll = np.meshgrid([0.0, 1, 3, 4, 7], np.arange(6.0), indexing="ij")
    types = np.stack([hh.ravel(), ll.ravel() ** 2], axis=1)[1:]  # drop (0, 0)
    i, j = np.triu_indices(min(n_first, s.size), k=1)
    ti, tj = np.meshgrid(np.arange(len(types)), np.arange(len(types)), indexing="ij")
    xi, xj = types[ti.ravel()], types[tj.ravel()]  # (K, 2) rows of the 2x2 systems
    det = xi[:, 0] * xj[:, 1] - xi[:, 1] * xj[:, 0]
    keep = det != 0
    xi, xj, det = xi[keep], xj[keep], det[keep]
    si, sj = s[i][:, None], s[j][:, None]
    # Cramer's rule for [xi; xj] @ [A, C] = [si, sj]
    a = (si * xj[None, :, 1] - sj * xi[None, :, 1]) / det[None, :]
    c = (xi[None, :, 0] * sj - xj[None, :, 0] * si) / det[None, :]
    t = np.stack([a.ravel(), c.ravel()], axis=1)
    lo = np.array([4 / (3 * a_max**2), 1 / c_max**2])
    hi = np.array([4 / (3 * a_min**2), 1 / c_min**2])
    t = t[np.all((t >= lo) & (t <= hi), axis=1)]
    keys = np.unique(np.round(np.log(t) * 2000), axis=0)
    return np.exp(keys / 2000)


def _hex_screen(centring: str, trials: np.ndarray, s: np.ndarray, tol_s: np.ndarray,
                chunk: int = 1500) -> np.ndarray:
    """Number of lines each trial (A, C) indexes within ``tol_s`` (vectorised over trials, lines, l)."""
    s_max = float(s[-1]) * 1.01
    sets = _hex_sets(centring, s_max / trials[:, 0].min())
    out = np.zeros(len(trials), dtype=np.int64)
    # Chunks of similar c keep the l range (the costly axis) short for most trials.
    by_c = np.argsort(trials[:, 1])[::-1]
    for c0 in range(0, len(trials), chunk):
        sel = by_c[c0:c0 + chunk]
        a = trials[sel, 0][:, None, None]
        c = trials[sel, 1][:, None, None]
        ls = np.arange(int(np.sqrt(s_max / c.min())) + 1)
        groups = {"zero": ls[ls == 0], "three": ls[(ls % 3 == 0) & (ls > 0)], "other": ls[ls % 3 != 0]}
        best = np.full((a.shape[0], s.size), np.inf)
        for key, lv in groups.items():
            hs = sets[key].astype(np.float64)
            if lv.size == 0 or hs.size == 0:
                continue
            r = s[None, :, None] - c * (lv.astype(np.float64) ** 2)[None, None, :]  # (T, n, L)
            hn = hs[_nearest(hs, r / a)]
            best = np.minimum(best, np.abs(r - a * hn).min(axis=2))
        out[sel] = np.sum(best <= tol_s[None, :], axis=1)
    return out


# --------------------------------------------------------------------------------------- public API


def _observations(d_spacings: Sequence[float] | np.ndarray | None, two_theta: Sequence[float] | np.ndarray | None,
                  wavelength: float | None, tol: float, zero_range: float, max_lines: int) -> _Obs:
    if (d_spacings is None) == (two_theta is None):
        raise InputError("give either d-spacings or 2-theta peak positions (with the wavelength) to index")
    if two_theta is not None:
        if wavelength is None:
            raise InputError("2-theta peak positions need the wavelength; pass --wavelength")
        tt = np.asarray(two_theta, dtype=np.float64).ravel()
        lam = float(wavelength)
    else:
        d = np.asarray(d_spacings, dtype=np.float64).ravel()
        if np.any(~np.isfinite(d)) or np.any(d <= 0):
            raise InputError("d-spacings must be positive finite numbers (Angstrom)")
        lam = REFERENCE_WAVELENGTH
        d = d[d > lam / 2]  # lines beyond the reference Ewald sphere cannot be expressed in 2-theta
        tt = np.degrees(2 * np.arcsin(lam / (2 * d)))
        zero_range = 0.0  # a zero shift has no meaning without measured angles
    if np.any(~np.isfinite(tt)) or np.any(tt <= 0) or np.any(tt >= 180):
        raise InputError("2-theta peak positions must lie in (0, 180) deg")
    tt = np.unique(np.round(tt, 6))[:max_lines]
    if tt.size < MIN_LINES:
        raise InputError(f"only {tt.size} peak positions; indexing needs at least {MIN_LINES}; give --cell")
    return _Obs(tt=tt, wavelength=lam, tol=float(tol), max_zero=float(zero_range))


def index_pattern(d_spacings: Sequence[float] | np.ndarray | None = None, *,
                  two_theta: Sequence[float] | np.ndarray | None = None, wavelength: float | None = None,
                  systems: Sequence[str] = SYSTEMS, tol: float = 0.05, zero_range: float = 0.0,
                  max_lines: int = 30, n_keep: int = 10) -> list[CellSolution]:
    """Index peak positions; solutions ranked by M20 (best first).

    Args:
        d_spacings: observed d-spacings (Angstrom); or give ``two_theta`` (deg) and ``wavelength`` (Angstrom).
        systems: any of 'cubic', 'hexagonal' (the latter covers hexagonal P and rhombohedral R cells
            in the hexagonal setting).
        tol: 2-theta tolerance (deg) for a line to count as indexed; with d-spacings it is taken at
            Cu K-alpha1.
        zero_range: fit a 2-theta zero shift bounded by +-zero_range deg (0 = no zero fit; only with 2-theta).
        max_lines: use at most this many lowest-angle lines.
        n_keep: number of solutions returned.
    """
    bad = [s for s in systems if s not in SYSTEMS]
    if bad:
        raise InputError(f"cannot index crystal system(s) {', '.join(bad)}; choose from {', '.join(SYSTEMS)}")
    obs = _observations(d_spacings, two_theta, wavelength, tol, zero_range, max_lines)
    s = _s_from_tt(obs.tt, obs.wavelength)
    tol_loose = obs.tol + obs.max_zero
    tol_s = _ds_dtt(obs.tt, obs.wavelength) * tol_loose
    found: list[CellSolution] = []
    for system in systems:
        for centring in _CENTRINGS[system]:
            if system == "cubic":
                trials = _cubic_trials(centring, s)
            else:
                trials = _hex_trials(s)
                if len(trials) == 0:
                    continue
                score = _hex_screen(centring, trials, s, tol_s)
                vol = 1 / (trials[:, 0] * np.sqrt(trials[:, 1]))
                order = np.lexsort((vol, -score))[:60]
                trials = trials[order]
            for p0 in trials:
                ref = _refine(system, centring, p0, obs, loose=obs.max_zero)
                if ref is None:
                    continue
                p, z = ref
                fig = _figures(system, centring, p, z, obs)
                if fig is None:
                    continue
                a, c = _cell_params(system, p)
                if system == "hexagonal" and centring == "R" and "cubic" in systems and np.any(
                        np.abs(c / a / _CUBIC_R_RATIOS - 1) < 2e-3):
                    continue  # metrically cubic: the cubic search reports the same lattice
                label = system if centring == "P" or system == "cubic" else "trigonal"
                gamma = 90.0 if system == "cubic" else 120.0
                found.append(CellSolution(label, a, a, c, 90.0, 90.0, gamma, centring, fig[0], fig[2], z,
                                          int(obs.tt.size), fig[1]))
    # Occam factor: an acceptable cubic cell (one parameter, every line indexed, M20 above threshold) is
    # preferred unless a two-parameter cell is clearly better; with few lines a hexagonal cell can match a
    # cubic pattern better by chance, while on hexagonal patterns cubic cells stay far below the threshold.
    def rank(x: CellSolution) -> float:
        ok = x.system == "cubic" and x.m20 >= M20_THRESHOLD and x.n_indexed == x.n_lines
        return -x.m20 * (CUBIC_PREFERENCE if ok else 1.0)

    found.sort(key=rank)
    unique: list[CellSolution] = []
    for sol in found:
        if not any(u.system == sol.system and u.centring == sol.centring and abs(u.a / sol.a - 1) < 5e-4
                   and abs(u.c / sol.c - 1) < 5e-4 for u in unique):
            unique.append(sol)
        if len(unique) >= n_keep:
            break
    return unique


def best_cell(d_spacings: Sequence[float] | np.ndarray | None = None, *, source: str = "pattern",
              threshold: float = M20_THRESHOLD, **kwargs) -> CellSolution:
    """Highest-ranked :func:`index_pattern` solution with M20 >= ``threshold``.

    Raises InputError naming ``source`` when none reaches it. ``kwargs`` go to :func:`index_pattern`.
    """
    sols = index_pattern(d_spacings, **kwargs)
    for sol in sols:
        if sol.m20 >= threshold:
            return sol
    best_m20 = max((sol.m20 for sol in sols), default=0.0)
    raise InputError(f"{source}: no cell fits the peak positions (best M20 = {best_m20:.1f} < {threshold:g}); "
                     "give --cell")
