"""Trial cells from the first observed lines, and their fast screening by the lines they index.

Two generators, both in Q = 1/d^2 (1/A^2):

- :func:`assignment_trials` (one- and two-parameter systems: cubic, tetragonal, hexagonal,
  rhombohedral): every choice of n of the first lines assigned to every n-tuple of low-index
  reflections the centring allows gives an n x n linear system for the metric (trial and error as
  in TREOR, exhaustive at low index).
- :func:`reduced_basis_trials` (any lattice, as a primitive triclinic cell): in a reduced reciprocal
  basis a*, b*, c* are the three shortest independent reciprocal vectors, so A = Q(100),
  B = Q(010), C = Q(001) are among the first lines (or a quarter of one when a screw axis or glide
  removes the odd orders), and the cross terms follow from lines at Q(110)/Q(1-10) etc.:
  ``D = +-(Q(110) - A - B)``, likewise E, F; 0 is always tried (orthogonal axes). Lattice symmetry
  and centring are recovered afterwards from the refined primitive cell.

:func:`screen` counts, for a batch of trials, the first lines each indexes within tolerance, with
one sort per trial and one batched search (rows offset so that a single ``searchsorted`` serves all).
"""

from __future__ import annotations

import itertools

import numpy as np

from powdersolve.indexing.metric import allowed, design, metric_from_p6, param_map


def _low_rows(system: str, centring: str, max_index: int, max_l: int, n_rows: int) -> np.ndarray:
    """Distinct design rows (in the system's parameters) of the lowest-index allowed reflections.

    l runs to ``max_l`` and weighs a quarter in the ordering: layered cells (long c, e.g. 9R) show
    high-l lines among their first ones.
    """
    r = np.arange(-max_index, max_index + 1)
    hkl = np.array(list(itertools.product(r, r, np.arange(-max_l, max_l + 1))))
    hkl = hkl[np.any(hkl != 0, axis=1) & allowed(hkl, centring)]
    x = design(hkl) @ param_map(system)
    size = x[:, 0] + (x[:, 1] / 4 if x.shape[1] > 1 else 0)
    order = np.lexsort((np.abs(hkl).sum(axis=1), size))
    _, first = np.unique(np.round(x[order], 9), axis=0, return_index=True)
    rows = x[order][np.sort(first)]
    return rows[:n_rows]


def assignment_trials(system: str, centring: str, q: np.ndarray, n_first: int = 6, n_rows: int = 36,
                      max_index: int = 3, max_l: int = 9) -> np.ndarray:
    """(T, n) trial parameters: n of the first ``n_first`` lines assigned to n low-index reflections."""
    if param_map(system).shape[1] == 1:
        n_rows, max_l = 14, max_index + 1
    rows = _low_rows(system, centring, max_index if max_l > max_index + 1 else max_l, max_l, n_rows)
    n = rows.shape[1]
    if q.size < n:  # too few lines to fix the metric (e.g. all but one set aside as a standard's)
        return np.zeros((0, n))
    lines = np.array(list(itertools.combinations(range(min(n_first, q.size)), n)))
    tuples = np.array(list(itertools.permutations(range(len(rows)), n)))
    mats = rows[tuples]  # (R, n, n)
    det = np.linalg.det(mats)
    mats = mats[np.abs(det) > 1e-9]
    rhs = q[lines]  # (L, n)
    sol = np.linalg.solve(mats[None, :, :, :], rhs[:, None, :, None].repeat(len(mats), axis=1))[..., 0]
    trials = sol.reshape(-1, n)
    trials = trials[np.all(trials > 0, axis=1)]
    if trials.size == 0:
        return trials
    keys = np.unique(np.round(np.log(trials) * 2000), axis=0)
    return np.exp(keys / 2000)


def _axial_choices(q: np.ndarray, first: int, minus: tuple[float, ...] = ()) -> np.ndarray:
    """Candidate Q(100)-type values: a line, a quarter of one (odd orders extinct), or a line minus a
    given axial value (Q(110) - A when the two axes are orthogonal and 100/010 are extinct)."""
    v = [q[:first], q[:first] / 4] + [q[:first] - m for m in minus]
    v = np.concatenate(v)
    return np.unique(np.round(v[v > 0], 12))


def _cross_choices(qa: float, qb: float, q: np.ndarray, tol: float) -> np.ndarray:
    """Candidate cross terms D of two axes (Q(100) = qa, Q(010) = qb): 0, and +-D from lines taken as
    Q(mn0) = m^2 qa + n^2 qb + mn D for (m, n) in (1, 1), (1, 2), (2, 1), with |D| <= min(qa, qb)."""
    out = [np.zeros(1)]
    bound = min(qa, qb) * 1.02 + tol
    for m, n in ((1, 1), (1, 2), (2, 1)):
        base = m * m * qa + n * n * qb
        d = (q - base) / (m * n)
        d = d[np.abs(d) <= bound]
        out += [d, -d]
    return np.unique(np.round(np.concatenate(out), 12))


def _zone_trials(qa: np.ndarray, qb: np.ndarray, d: np.ndarray, q_max: float) -> np.ndarray:
    """(T, 6) trials of the zone (A, B, D) alone: C far beyond ``q_max`` so that only hk0 count."""
    n = len(qa)
    return np.column_stack([qa, qb, np.full(n, 1e3 * q_max), d, np.zeros(n), np.zeros(n)])


def _best_zones(q: np.ndarray, tol: np.ndarray, pairs: list[tuple[float, float]], keep: int
                ) -> list[tuple[float, float, float, int]]:
    """The ``keep`` zones (A, B, D) over all axis pairs and cross terms that index most lines."""
    rows = [(a, b, d) for a, b in pairs for d in _cross_choices(a, b, q, float(tol.max()))]
    if not rows:
        return []
    arr = np.array(rows)
    counts = screen("triclinic", "P", _zone_trials(arr[:, 0], arr[:, 1], arr[:, 2], float(q[-1])), q, tol)
    area = np.sqrt(np.maximum(arr[:, 0] * arr[:, 1] - arr[:, 2] ** 2 / 4, 1e-300))
    # A zone's lines are spread evenly in Q (pi / (2 S) per unit Q for reciprocal cell area S), so a
    # small zone indexes lines by chance: rank by the count above that chance.
    chance = np.minimum(1.0, np.pi * tol[None, :] / area[:, None]).sum(axis=1)
    order = np.argsort(-(counts - chance), kind="stable")[:keep]
    return [(float(arr[i, 0]), float(arr[i, 1]), float(arr[i, 2]), int(counts[i])) for i in order]


def _cross_window(qa: float, qb: float, q: np.ndarray, tol: float, cap: int) -> np.ndarray:
    """Cross terms D of a reduced basis (|D| <= min(A, B)) from lines taken as Q(110)/Q(1-10), the
    ``cap`` smallest |D|; both signs, and 0."""
    d = qa + qb - q[(q >= max(qa, qb) - tol) & (q <= qa + qb + tol)]
    d = d[np.abs(d) <= min(qa, qb) * 1.02 + tol]
    d = d[np.argsort(np.abs(d))][:cap]
    return np.unique(np.round(np.concatenate([[0.0], d, -d]), 12))


def reduced_basis_trials(q: np.ndarray, tol: np.ndarray, n_pool: int = 10, cap: int = 5) -> list[np.ndarray]:
    """Trial primitive cells as (T, 6) arrays of (A, B, C, D, E, F), one array per (A, B) choice.

    A <= B <= C are lines or quarters of lines among the first ``n_pool`` (B also a line minus A).
    As no lattice line lies below A, none but the h00 row below B and none but the hk0 zone below C,
    A is at most the second line, B the fourth and C the ninth. D, E, F come from lines in the windows
    of the (110)-type reflections (the ``cap`` smallest), or 0.
    """
    out = []
    tmax = float(tol.max())
    slack = 1 + 1e-6
    pool = _axial_choices(q, n_pool)
    lines = q[:n_pool]
    cap_a, cap_b, cap_c = (float(q[min(i, q.size - 1)]) * slack + tmax for i in (1, 3, 8))
    for a in pool[pool <= cap_a]:
        ax_b = _axial_choices(q, n_pool, (a,))
        for b in ax_b[(ax_b >= a / slack) & (ax_b <= cap_b)]:
            ds = _cross_window(a, b, q, tmax, cap)
            rows = []
            for c in pool[(pool >= b / slack) & (pool <= cap_c)]:
                es = _cross_window(a, c, q, tmax, cap)
                fs = _cross_window(b, c, q, tmax, cap)
                dd, ee, ff = np.meshgrid(ds, es[es >= 0], fs, indexing="ij")
                n = dd.size
                rows.append(np.column_stack([np.full(n, a), np.full(n, b), np.full(n, c), dd.ravel(), ee.ravel(),
                                             ff.ravel()]))
            if rows:
                # Axes read directly off lines are likelier than quarters or differences: those first.
                derived = sum(not np.any(np.abs(lines - v) <= tmax) for v in (a, b))
                out.append((derived, np.concatenate(rows)))
    out.sort(key=lambda x: x[0])
    return [t for _, t in out]


#: Largest (trials x reflections) block screened at once (memory ~ 8 bytes each, twice).
MAX_ELEMENTS = 2e7


def chance_matches(volume: np.ndarray, q: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Lines of ``q`` (1/A^2) a random cell of ``volume`` (A^3) indexes by chance within ``tol``.

    A cell predicts N(Q) = (2 pi / 3) V Q^(3/2) lines up to Q (half of the reciprocal points), so
    dN/dQ = pi V sqrt(Q).
    """
    dens = np.pi * volume[:, None] * np.sqrt(q)[None, :]
    return np.minimum(1.0, 2 * tol[None, :] * dens).sum(axis=1)


def screen(system: str, centring: str, trials: np.ndarray, q: np.ndarray, tol: np.ndarray,
           max_index: int = 16, chunk: int = 4000) -> np.ndarray:
    """Number of lines ``q`` (1/A^2, ascending) each trial (T, n) indexes within ``tol`` (1/A^2)."""
    out = np.zeros(len(trials), dtype=np.int64)
    if len(trials) == 0:
        return out
    mp = param_map(system)
    p6 = trials @ mp.T
    q_max = float(q[-1] + tol[-1])
    gs = metric_from_p6(p6)
    eig = np.linalg.eigvalsh(gs)
    ok = eig[:, 0] > 1e-6 * eig[:, 2]
    lim = np.zeros((len(trials), 3), dtype=np.int64)
    lim[ok] = np.minimum(np.floor(np.sqrt(q_max * np.einsum("tii->ti", np.linalg.inv(gs[ok])))), max_index)
    order = np.argsort(lim.prod(axis=1))
    order = order[ok[order]]
    big = 4 * q_max + 1
    c0 = 0
    while c0 < len(order):
        sel = order[c0:c0 + chunk]
        m = lim[sel].max(axis=0)
        hh, kk, ll = np.meshgrid(np.arange(0, m[0] + 1), np.arange(-m[1], m[1] + 1), np.arange(-m[2], m[2] + 1),
                                 indexing="ij")
        hkl = np.stack([hh.ravel(), kk.ravel(), ll.ravel()], axis=1)
        hkl = hkl[np.any(hkl != 0, axis=1) & allowed(hkl, centring)]
        # Reflections with the same design row have the same Q in every trial: keep one.
        x = np.unique(design(hkl) @ mp, axis=0)
        size = max(1, min(len(sel), int(MAX_ELEMENTS // max(len(x), 1))))
        sel = sel[:size]
        c0 += size
        calc = trials[sel] @ x.T  # (t, K)
        calc = np.sort(np.where((calc > 0) & (calc <= q_max), calc, big), axis=1)
        off = (np.arange(len(sel)) * 2 * big)[:, None]
        flat = (calc + off).ravel()
        query = (q[None, :] + off).ravel()
        i = np.clip(np.searchsorted(flat, query), 1, flat.size - 1)
        dist = np.minimum(np.abs(flat[i] - query), np.abs(flat[i - 1] - query)).reshape(len(sel), q.size)
        out[sel] = np.sum(dist <= tol[None, :], axis=1)
    return out


def _index_rows(system: str, centring: str, max_index: int, n_rows: int) -> np.ndarray:
    """(n_rows, n) distinct design rows of the lowest-index reflections the centring allows (by sum of
    |h|, then h^2 + k^2 + l^2) in the parameters of an orthorhombic or monoclinic (unique b) metric,
    one per Friedel/mirror class."""
    r = np.arange(-max_index, max_index + 1)
    hkl = np.array(list(itertools.product(r, r, r)))
    hkl = hkl[np.any(hkl != 0, axis=1) & allowed(hkl, centring)]
    order = np.lexsort(((hkl**2).sum(axis=1), np.abs(hkl).sum(axis=1)))
    x = (design(hkl) @ param_map(system))[order]
    _, first = np.unique(np.round(x, 9), axis=0, return_index=True)
    return x[np.sort(first)][:n_rows]


def _inverse_tuples(rows: np.ndarray) -> np.ndarray:
    """(R, n, n) inverses of every ordered n-tuple of ``rows`` that spans the parameters."""
    n = rows.shape[1]
    tuples = np.array(list(itertools.permutations(range(len(rows)), n)))
    mats = rows[tuples]
    det = np.linalg.det(mats)
    return np.linalg.inv(mats[np.abs(det) > 1e-9])


def _reduce_zone(trials: np.ndarray, n_iter: int = 12) -> np.ndarray:
    """Monoclinic trials (A, B, C, E) with their (a*, c*) zone Gauss-reduced: A <= C, 0 <= E <= A.

    Many assignments give the same lattice in other settings (c* -> c* - n a*); reducing them makes
    them one trial, so that the refined few are different lattices.
    """
    t = trials.copy()
    for _ in range(n_iter):
        n = np.round(t[:, 3] / (2 * t[:, 0]))
        t[:, 2] += n * n * t[:, 0] - n * t[:, 3]
        t[:, 3] -= 2 * n * t[:, 0]
        swap = t[:, 2] < t[:, 0]
        t[swap] = t[swap][:, [2, 1, 0, 3]]
        if not (swap.any() or np.any(n != 0)):
            break
    t[:, 3] = np.abs(t[:, 3])
    return t


def metric_trials(system: str, centring: str, q: np.ndarray, n_first: int = 7, n_rows: int = 20,
                  max_index: int = 2) -> np.ndarray:
    """(T, n) orthorhombic (A, B, C) or monoclinic (A, B, C, E) primitive trials: n of the first
    ``n_first`` lines assigned to every ordered n-tuple of the ``n_rows`` lowest-index reflections
    (trial and error as in TREOR/ITO, exhaustive at low index) the ``centring`` allows. Centred and
    extinct lattices are among the P trials when their first lines have low indices; F and I cells
    (first lines 111, 311, ...) need their own rows.

    The linear systems share their matrices, so each is inverted once and applied to all line
    choices. Trials equivalent by the metric's symmetry (axis order for orthorhombic; a <-> c and the
    sign of E for monoclinic) are merged.
    """
    rows = _index_rows(system, centring, max_index, n_rows)
    n = rows.shape[1]
    inv = _inverse_tuples(rows)
    lines = np.array(list(itertools.combinations(range(min(n_first, q.size)), n)))
    trials = np.einsum("rij,lj->lri", inv, q[lines]).reshape(-1, n)
    trials = trials[np.all(trials[:, :3] > 0, axis=1)]
    if system == "orthorhombic":
        trials = np.sort(trials, axis=1)
    else:
        trials = trials[4 * trials[:, 0] * trials[:, 2] > trials[:, 3] ** 2 * (1 + 1e-6)]
        trials = _reduce_zone(trials)
        # E ~ 0 is an orthorhombic cell: that search has it.
        trials = trials[trials[:, 3] > 1e-3 * np.sqrt(trials[:, 0] * trials[:, 2])]
    if trials.size == 0:
        return trials
    keys = np.round(np.log(np.abs(trials) + 1e-12) * 2000)
    _, first = np.unique(keys, axis=0, return_index=True)
    return trials[np.sort(first)]
