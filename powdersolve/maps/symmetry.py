"""Space-group search in a density map, and symmetry averaging of the map.

A map predicted for a crystal of known cell but unknown space group can itself say which
symmetry operations it obeys: for an operation (R, tau) of a group in its standard setting and a
map whose origin is shifted by t from the standard one, rho(R x + tau + (I - R) t) = rho(x). For
every rotation R of the cell's holohedry the correlation C_R(s) between rho(x) and rho(R x + s),
for all translations s of a grid, is one FFT; scoring a group at an origin t is then a lookup of
C_R at s = tau + (I - R) t for each of its operations. Every group of the cell's crystal family is
scored at every origin of a grid of 1/48 cell steps (all space-group translations are multiples
of 1/48 in the standard settings, 1/3 and 1/8 included).

Averaging a map over a group it nearly obeys keeps its symmetric part and divides the error that
breaks the symmetry by up to the group order; atoms read from the averaged map lie on the group's
orbits, so spglib finds the group and the refinement has few free parameters. This is the map
counterpart of reading a space group from systematic absences, and is how the candidates of a
trigonal cell, whose predicted maps are too noisy for the atoms alone to show their symmetry, get
their Wyckoff positions.

Grids are fractional: voxel [i, j, k] at (i/N0, j/N1, k/N2) of the cell's a, b, c.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import spglib
from scipy.optimize import minimize

from powdersolve.cell import metric_family
from powdersolve.errors import InputError
from powdersolve.maps.centring import shifted_maps
from powdersolve.maps.peaks import quadratic_maximum

#: Steps per cell axis of the origin search: every standard-setting translation is a multiple of 1/48.
SEARCH_GRID = 48

#: Space-group numbers whose lattice metric is that of each cell family ('hexagonal' holds the trigonal
#: groups too: their cells, rhombohedral ones in hexagonal axes included, have the hexagonal metric).
FAMILY_GROUPS = {"cubic": tuple(range(195, 231)), "hexagonal": tuple(range(143, 195)),
                 "tetragonal": tuple(range(75, 143)), "orthorhombic": tuple(range(16, 75)),
                 "monoclinic": tuple(range(3, 16)), "triclinic": (1, 2)}


@dataclass(frozen=True)
class MapSymmetry:
    """How well a map obeys one space group.

    Attributes:
        number: international space-group number (standard setting; hexagonal axes for R groups).
        symbol: Hermann-Mauguin symbol.
        order: number of operations in the conventional cell (centring translations included).
        origin: fractional shift t of the map's origin from the group's standard origin.
        cc_mean: mean over the non-identity operations of the map's Pearson correlation with its image,
            at the nearest search-grid origin.
        cc_min: the lowest of those correlations (the operation the map obeys least).
    """

    number: int
    symbol: str
    order: int
    origin: tuple[float, float, float]
    cc_mean: float
    cc_min: float


@cache
def _hall_numbers() -> dict[int, int]:
    """Space-group number -> spglib Hall number of its standard setting (hexagonal axes for R groups)."""
    out: dict[int, int] = {}
    for hall in range(1, 531):
        t = spglib.get_spacegroup_type(hall)
        if t is None or t.number in out:
            continue
        if t.choice == "R":  # the rhombohedral-axes choice of an R group; the H one comes first
            continue
        out[t.number] = hall
    return out


@cache
def group_operations(number: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Operations (R (n, 3, 3) int, tau (n, 3) fractional in [0, 1)) and symbol of a space group.

    The standard setting of the International Tables as spglib lists it: first origin choice,
    hexagonal axes for the rhombohedral groups.
    """
    hall = _hall_numbers().get(int(number))
    if hall is None:
        raise InputError(f"space group {number} is not in 1-230")
    ops = spglib.get_symmetry_from_database(hall)
    rot = np.asarray(ops["rotations"], dtype=np.int64)
    tau = np.mod(np.asarray(ops["translations"], dtype=np.float64), 1.0)
    return rot, tau, str(spglib.get_spacegroup_type(hall).international_short)


def fourier_resample(grid: np.ndarray, n: int) -> np.ndarray:
    """The periodic map on an n^3 grid: Fourier coefficients kept up to the smaller grid's Nyquist limit."""
    grid = np.asarray(grid, dtype=np.float64)
    spec = np.fft.fftn(grid)
    out = np.zeros((n, n, n), dtype=np.complex128)
    keep = [min(s, n) for s in grid.shape]
    idx_src = [np.fft.fftfreq(k, 1.0 / k).astype(int) for k in keep]
    sel_src = np.ix_(*[np.mod(i, s) for i, s in zip(idx_src, grid.shape)])
    sel_dst = np.ix_(*[np.mod(i, n) for i in idx_src])
    out[sel_dst] = spec[sel_src]
    return np.real(np.fft.ifftn(out)) * (n**3 / grid.size)


def _rotated(grid: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """g(x) = grid(R x) for voxel x (R an integer matrix acting on fractional coordinates)."""
    rot = np.asarray(rot)
    if np.all(np.abs(rot).sum(axis=1) == 1) and np.all(np.abs(rot).sum(axis=0) == 1):
        # A signed permutation (every cubic rotation): axis flips and a transpose, no gather.
        perm = np.argmax(np.abs(rot), axis=1)
        out = grid
        for i, j in enumerate(perm):
            if rot[i, j] < 0:  # x_j -> -x_j (mod N): voxel 0 stays, the rest reverse
                out = np.roll(np.flip(out, axis=i), 1, axis=i)
        return np.transpose(out, np.argsort(perm)) if not np.array_equal(perm, np.arange(3)) else out
    axes = [np.arange(n).reshape([-1 if k == a else 1 for k in range(3)]) for a, n in enumerate(grid.shape)]
    src = [np.mod(sum(int(rot[i, j]) * axes[j] for j in range(3)), grid.shape[i]) for i in range(3)]
    return grid[src[0], src[1], src[2]]


def _check_grid(grid: np.ndarray, family: str) -> None:
    shape = grid.shape
    if grid.ndim != 3 or shape[0] != shape[1] or (family == "cubic" and shape[1] != shape[2]):
        raise InputError(f"a {family} map needs equal grid steps along the axes its rotations mix; got {shape}")


def rotation_correlations(grid: np.ndarray, rotations: np.ndarray) -> dict[bytes, np.ndarray]:
    """C_R(u) = sum_x rho(x) rho(R x + R u) / sum_x rho(x)^2 (rho mean-removed) for every grid vector u.

    Keyed by ``R.tobytes()``. C_R at a translation s is read at u = R^-1 s; one FFT per rotation.
    """
    centred = grid - grid.mean()
    norm = float(np.sum(centred**2))
    spec_conj = np.conj(np.fft.rfftn(centred))
    out: dict[bytes, np.ndarray] = {}
    for rot in rotations:
        key = np.asarray(rot, dtype=np.int64).tobytes()
        if key in out:
            continue
        g = _rotated(centred, rot)
        out[key] = np.fft.irfftn(spec_conj * np.fft.rfftn(g), s=grid.shape, axes=(0, 1, 2)) / max(norm, 1e-300)
    return out


def _op_scores(corr: dict[bytes, np.ndarray], rot: np.ndarray, tau: np.ndarray, origins: np.ndarray, m: int,
               cache: dict | None = None) -> np.ndarray:
    """(n_ops, T) correlations of the map with each operation's image, for T origins (3, T) in grid steps.

    ``cache`` (keyed by operation) shares the rows between groups scored on the same origins: the
    groups of a crystal family have most of their operations in common.
    """
    eye = np.eye(3, dtype=np.int64)
    rows = []
    for r, t in zip(rot, tau):
        shift = np.round(t * m).astype(np.int64) % m
        if np.array_equal(r, eye) and not np.any(shift):
            continue  # the identity
        key = (np.asarray(r, dtype=np.int64).tobytes(), shift.tobytes())
        if cache is not None and key in cache:
            rows.append(cache[key])
            continue
        s = shift[:, None] + (eye - r) @ origins
        u = np.mod(np.rint(np.linalg.inv(r)).astype(np.int64) @ s, m)
        row = corr[np.asarray(r, dtype=np.int64).tobytes()][u[0], u[1], u[2]]
        if cache is not None:
            cache[key] = row
        rows.append(row)
    return np.array(rows) if rows else np.ones((1, origins.shape[1]))


def _fourier_terms(spec: np.ndarray, max_terms: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The strongest non-zero coefficients of a map's FFT ``spec``.

    Returns (k (n, 3) integer frequencies, F_k (n,), sum over every k != 0 of |F_k|^2).
    """
    power = np.abs(spec) ** 2
    power.flat[0] = 0.0
    total = float(power.sum())
    flat = power.ravel()
    keep = np.argpartition(flat, -min(max_terms, flat.size - 1))[-min(max_terms, flat.size - 1):]
    keep = keep[np.argsort(flat[keep])[::-1]]
    idx = np.array(np.unravel_index(keep, spec.shape)).T
    freqs = np.where(idx > np.array(spec.shape) // 2, idx - np.array(spec.shape), idx)
    return freqs, spec.ravel()[keep], total


def _map_terms(grid: np.ndarray, max_terms: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, float]]:
    """The map's FFT and its strongest terms, shared by the origin refinements of all groups."""
    spec = np.fft.fftn(grid)
    return spec, _fourier_terms(spec, max_terms)


def refine_origin(grid: np.ndarray, number: int, origin: np.ndarray, max_terms: int = 2000,
                  _terms: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The origin maximising the mean operation correlation, off the search grid; and those correlations.

    In Fourier terms (numpy's convention, F_k = sum_x rho(x) e^(-2 pi i k.x)) the correlation of rho
    with rho(R x + s) is sum_k F_k conj(F_(R^T k)) e^(2 pi i k.s) / sum_k |F_k|^2 (k != 0), so the
    mean over a group's operations at origin t, s = tau + (I - R) t, is a trigonometric sum in t
    with an exact gradient. Uses the ``max_terms`` strongest coefficients (a band-limited map has
    few). Returns (origin (3,) fractional in [0, 1), correlation per non-identity operation).
    """
    grid = np.asarray(grid, dtype=np.float64)
    shape = np.array(grid.shape)
    spec, (k, fk, total) = _terms if _terms is not None else _map_terms(grid, max_terms)
    rot, tau, _ = group_operations(number)
    eye = np.eye(3, dtype=np.int64)
    ops = [(r, t) for r, t in zip(rot, tau) if not (np.array_equal(r, eye) and not np.any(np.abs(t) > 1e-9))]
    if not ops:
        return np.mod(np.asarray(origin, float), 1.0), np.ones(1)
    rots = np.array([r for r, _ in ops], dtype=np.int64)  # (n_ops, 3, 3)
    taus = np.array([t for _, t in ops], dtype=np.float64)
    kf = k.astype(np.float64)  # float products use BLAS; the values stay small exact integers
    rk = np.mod(np.rint(kf @ rots).astype(np.int64), shape)  # R^T k, as grid indices: (n_ops, n_k, 3)
    coeff_a = (fk * np.conj(spec[rk[..., 0], rk[..., 1], rk[..., 2]]) / max(total, 1e-300)
               * np.exp(2j * np.pi * (taus @ k.T)))  # (n_ops, n_k)
    freq_a = kf @ (eye - rots)  # (I - R)^T k: (n_ops, n_k, 3)
    # Operations sharing a rotation (centring translations) share their frequencies: the mean needs one
    # summed row per rotation, a 2-4x smaller sum for centred groups.
    _, rows, row_of = np.unique(rots.reshape(len(ops), 9), axis=0, return_index=True, return_inverse=True)
    coeff_r = np.zeros((len(rows), coeff_a.shape[1]), dtype=complex)
    np.add.at(coeff_r, row_of.ravel(), coeff_a)
    freq_r = freq_a[rows]

    def per_op(t: np.ndarray) -> np.ndarray:
        return np.real(np.sum(coeff_a * np.exp(2j * np.pi * (freq_a @ t)), axis=1))

    def loss(t: np.ndarray) -> tuple[float, np.ndarray]:
        terms = coeff_r * np.exp(2j * np.pi * (freq_r @ t))
        value = np.real(terms.sum()) / len(ops)
        grad = np.real(np.einsum("ok,okd->d", terms * 2j * np.pi, freq_r)) / len(ops)
        return -float(value), -grad

    start = np.asarray(origin, dtype=np.float64)
    best = minimize(loss, start, jac=True, method="L-BFGS-B",
                    bounds=[(v - 2.0 / n, v + 2.0 / n) for v, n in zip(start, shape)])
    t = best.x if -best.fun >= -loss(start)[0] else start
    return np.mod(t, 1.0), per_op(t)


def search_space_groups(grid: np.ndarray, family: str, groups: tuple[int, ...] | None = None,
                        search_grid: int = SEARCH_GRID, refine: bool = True, refine_slack: float = 0.3
                        ) -> list[MapSymmetry]:
    """Every space group of the cell ``family`` ('cubic' or 'hexagonal') scored on the map, at its best origin.

    The origin is found on a 1/(search_grid/2) grid, refined to the neighbouring 1/search_grid points
    and then between them (quadratic fit), maximising the mean correlation over the group's operations.
    With ``refine``, groups whose ``cc_min`` is within ``refine_slack`` of the best get their origin and
    correlations exactly, off the grid (:func:`refine_origin`). Sorted by ``cc_min``,
    best first.
    """
    if family not in FAMILY_GROUPS:
        raise InputError(f"no space-group search for cell family {family!r}; use 'cubic' or 'hexagonal'")
    grid = np.asarray(grid, dtype=np.float64)
    _check_grid(grid, family)
    m = int(search_grid)
    small = fourier_resample(grid, m)
    numbers = groups or FAMILY_GROUPS[family]
    all_rot = np.concatenate([group_operations(n)[0] for n in numbers])
    corr = rotation_correlations(small, all_rot)
    coarse = np.indices((m // 2,) * 3).reshape(3, -1) * 2
    near = np.indices((3, 3, 3)).reshape(3, -1) - 1
    found = []
    cache: dict = {}
    for number in numbers:
        rot, tau, symbol = group_operations(number)
        mean = _op_scores(corr, rot, tau, coarse, m, cache).mean(axis=0)
        best = coarse[:, int(np.argmax(mean))]
        local = np.mod(best[:, None] + near, m)
        scores = _op_scores(corr, rot, tau, local, m)
        mean_local = scores.mean(axis=0)
        k = int(np.argmax(mean_local))
        # The best origin between grid points, from a quadratic through the 27 around the best one
        # (on long axes a 1/48 step is over half an Angstrom).
        centre = local[:, k]
        around = np.mod(centre[:, None] + near, m)
        vals = mean_local if k == 13 else _op_scores(corr, rot, tau, around, m).mean(axis=0)
        origin = np.mod((centre + quadratic_maximum(vals[None, :])[0]) / m, 1.0)
        cc_at = scores[:, k]
        found.append(MapSymmetry(int(number), symbol, len(rot), tuple(float(v) for v in origin),
                                 float(cc_at.mean()), float(cc_at.min())))
    if refine:
        # The grid origin can be half a step (> 0.3 A on a long axis) off, which lowers every
        # correlation; the groups that could be plausible get their origin and scores exactly.
        top = max(g.cc_min for g in found)
        terms = _map_terms(grid, 2000)
        exact = []
        for g in found:
            if g.cc_min >= top - refine_slack:
                origin, cc = refine_origin(grid, g.number, np.asarray(g.origin), _terms=terms)
                g = MapSymmetry(g.number, g.symbol, g.order, tuple(float(v) for v in origin),
                                float(cc.mean()), float(cc.min()))
            exact.append(g)
        found = exact
    return sorted(found, key=lambda g: -g.cc_min)


def plausible_groups(found: list[MapSymmetry], min_cc: float = 0.5, slack: float = 0.2, top: int = 3
                     ) -> list[MapSymmetry]:
    """The most symmetric groups a map plausibly obeys, most operations first.

    A subgroup of the true group scores as well as the group (its operations are a subset), so the
    weakest-operation correlation alone would pick the trivial groups; a group is plausible when its
    ``cc_min`` is at least ``min_cc`` and within ``slack`` of the best group's, and of the plausible
    ones the ``top`` with the most operations are returned (ties by ``cc_min``).
    """
    if not found:
        return []
    best = max(g.cc_min for g in found)
    ok = [g for g in found if g.cc_min >= max(min_cc, best - slack)]
    return sorted(ok, key=lambda g: (-g.order, -g.cc_min))[:top]


def plausible_groups_of(grid: np.ndarray, lattice: np.ndarray, top: int = 3) -> list[MapSymmetry]:
    """:func:`plausible_groups` of a map in the cell ``lattice`` (rows, A): empty unless the cell has a
    cubic or hexagonal metric (the families searched)."""
    family = metric_family(lattice)
    if family not in FAMILY_GROUPS or top < 1:
        return []
    return plausible_groups(search_space_groups(grid, family), top=top)


def symmetrise_map(grid: np.ndarray, number: int, origin: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 0.0)
                   ) -> np.ndarray:
    """The map averaged over a space group, moved to the group's standard origin.

    out(x) = mean over operations (R, tau) of rho(R x + tau + t): rho's origin is at ``origin`` = t
    (fractional) from the standard one, as :func:`search_space_groups` reports. Translations go
    through Fourier phases (exact for band-limited maps at any shift); rotations permute the grid.
    """
    grid = np.asarray(grid, dtype=np.float64)
    rot, tau, _ = group_operations(number)
    family = "cubic" if number >= 195 else "hexagonal"
    _check_grid(grid, family)
    t = np.asarray(origin, dtype=np.float64)
    shifts = np.mod(tau + t, 1.0)
    keys = [tuple(np.round(v * 1e6).astype(np.int64)) for v in shifts]
    distinct: dict[tuple, np.ndarray] = {}
    for key, v in zip(keys, shifts):
        distinct.setdefault(key, v)
    # h(y) = rho(y + shift): one inverse FFT per distinct translation.
    images = dict(zip(distinct, shifted_maps(np.fft.fftn(grid), [-v for v in distinct.values()])))
    by_rotation: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    for r, key in zip(rot, keys):
        # The operations sharing a rotation add their shifted maps before the (one) rotation.
        rkey = np.asarray(r, dtype=np.int64).tobytes()
        acc = by_rotation.get(rkey)
        by_rotation[rkey] = (r, images[key] + (acc[1] if acc is not None else 0.0))
    total = np.zeros_like(grid)
    for r, summed in by_rotation.values():
        total += _rotated(summed, r)
    return total / len(rot)


def symmetrise_found(grids: np.ndarray, lattice: np.ndarray) -> tuple[np.ndarray, list[MapSymmetry | None]]:
    """Each map (n, N, N, N) averaged over the first plausible space group it shows, at that group's
    standard origin, and the group (None where the cell has no cubic or hexagonal metric or no group is
    plausible: that map is returned as it is)."""
    out, found = [], []
    for g in np.asarray(grids, dtype=np.float64):
        best = plausible_groups_of(g, lattice, top=1)
        out.append(symmetrise_map(g, best[0].number, best[0].origin) if best else g)
        found.append(best[0] if best else None)
    return np.stack(out), found


def symmetrise_maps(grids: np.ndarray, numbers: list[int]) -> np.ndarray:
    """Maps (n, N, N, N) already at their groups' standard origins averaged over those groups (0: as they are)."""
    return np.stack([symmetrise_map(g, k) if k else g for g, k in zip(np.asarray(grids, dtype=np.float64), numbers)])


def from_standard_origin(grids: np.ndarray, groups: list[MapSymmetry | None]) -> np.ndarray:
    """Maps (n, N, N, N) that :func:`symmetrise_found` moved to their groups' standard origins, moved back
    to the origins of the maps it was given (a Fourier shift, exact for band-limited maps)."""
    out = []
    for g, grp in zip(np.asarray(grids, dtype=np.float64), groups):
        out.append(g if grp is None else shifted_maps(np.fft.fftn(g), [np.asarray(grp.origin)], grid=g)[0])
    return np.stack(out)
