"""Density modification: a predicted map's phases with the pattern's amplitudes.

A powder pattern measures, for each distinct d-spacing, the sum of |F(h)|^2 over the reflections
there; it says nothing of their phases. The network's map is the other way round: its phases are
mostly right (a map correlation of 0.9-0.99), but the L2 loss shrinks the coefficients it is unsure
of, so peaks are low and a ripple fills the background. Giving the map's Fourier coefficients the
observed magnitudes, keeping the map's phases, is the crystallographer's "Fo map with model phases".
A few cycles of error reduction (Fienup 1982: density >= 0 in real space, observed magnitudes in
reciprocal space) then let the phases of weak reflections follow the strong ones.

Conventions: grids are (..., N, N, N) on fractional coordinates of a cell with row-vector lattice
(A); Q = 2 pi / d (1/A); peak intensities are |F|^2-like sums without Lorentz factor, on any scale
(the scale is found, see :func:`modify_density`); densities are e/A^3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import InputError
from powdersolve.maps.peak_sharing import MeasuredPeaks, peaks_on_grid, shared_magnitudes
from powdersolve.maps.symmetry import from_standard_origin, symmetrise_found, symmetrise_maps
from powdersolve.scattering import wilson_sum
from powdersolve.structures.crystal import Crystal


@dataclass(frozen=True)
class ModificationConfig:
    """Settings of :func:`modify_density`.

    Attributes:
        cycles: error-reduction cycles after the first amplitude substitution (0 = Fo map only).
        scale: how the relative peak intensities are put on the map's absolute scale: ``"wilson"``
            (from the composition: the sum of f^2 over the measured reflections, Wilson 1942) or
            ``"model"`` (least squares against the map's own coefficients, peak by peak).
        tol: a grid reflection belongs to a peak within this distance in Q (1/A).
        b_iso: Debye-Waller B (A^2) of the map; observed magnitudes (of point-like atoms at rest)
            are damped by exp(-B s^2 / 4) to match it.
        final: return the last map with the observed magnitudes (``"amplitudes"``) or its non-negative
            part (``"density"``, the default: better paper SSIM on generated validation crystals).
        b_work: B (A^2) of the magnitudes during the cycles, None = ``b_iso``; the measured
            reflections of a sharper working map (smaller B) are blurred back to ``b_iso`` at the end.
        symmetry: after the cycles, find the most symmetric space group each map plausibly obeys
            (:mod:`powdersolve.maps.symmetry`; no group is given), move the map to that group's
            standard origin and run ``cycles`` more with the map averaged over the group in each one.
        origin: with ``symmetry``, where the returned map lies: ``"map"`` (the input map's origin, the
            network's convention) or ``"standard"`` (the group's standard origin, first ITA choice).
        histogram: histogram matching (Zhang & Main 1990) against the density values the composition
            and cell lead one to expect (:func:`reference_histogram`): ``"none"``, ``"final"`` (the
            returned map only) or ``"cycles"`` (the real-space step of every cycle, and the final map).
    """

    cycles: int = 10
    scale: str = "wilson"
    final: str = "density"
    b_work: float | None = None
    tol: float = 2e-3
    b_iso: float = 8.0
    symmetry: bool = False
    origin: str = "map"
    histogram: str = "none"

    def __post_init__(self) -> None:
        if self.cycles < 0:
            raise InputError(f"density modification needs cycles >= 0 (got {self.cycles})")
        if self.scale not in ("wilson", "model"):
            raise InputError(f"density modification scale must be 'wilson' or 'model' (got {self.scale!r})")
        if self.final not in ("amplitudes", "density"):
            raise InputError(f"density modification final must be 'amplitudes' or 'density' (got {self.final!r})")
        if self.origin not in ("map", "standard"):
            raise InputError(f"density modification origin must be 'map' or 'standard' (got {self.origin!r})")
        if self.histogram not in ("none", "final", "cycles"):
            raise InputError(f"density modification histogram must be 'none', 'final' or 'cycles' "
                             f"(got {self.histogram!r})")
        if self.b_work is not None and not 0 <= self.b_work <= self.b_iso:
            raise InputError(f"density modification needs 0 <= b_work <= b_iso (got {self.b_work}, {self.b_iso})")


def spread_positions(lattice: np.ndarray, count: int, min_distance: float, rng: np.random.Generator,
                     tries: int = 200) -> np.ndarray:
    """``count`` uniformly random fractional positions (count, 3) in the cell (row vectors, A), each at
    least ``min_distance`` (A) from the others' periodic images where that can be had: after ``tries``
    rejected draws for one position the distance is relaxed by 10%."""
    lattice = np.asarray(lattice, dtype=np.float64)
    out = np.zeros((0, 3))
    d2 = min_distance**2
    for _ in range(count):
        while True:
            cand = rng.random((tries, 3))
            if len(out) == 0:
                out = cand[:1]
                break
            diff = cand[:, None, :] - out[None, :, :]
            diff -= np.round(diff)  # nearest image; exact for cells that are not very oblique
            ok = np.flatnonzero((np.sum((diff @ lattice) ** 2, axis=-1) >= d2).all(axis=1))
            if len(ok):
                out = np.vstack([out, cand[ok[0]]])
                break
            d2 *= 0.81
    return out


def reference_histogram(lattice: np.ndarray, numbers: np.ndarray, occupancy: np.ndarray | None, n: int, b_iso: float,
                        draws: int = 3, min_distance: float = 1.8, seed: int = 0) -> np.ndarray:
    """The sorted voxel values (n^3,) (e/A^3) expected of the CMED of these atoms in this cell.

    A map's histogram depends mostly on what atoms there are, the cell volume and B, little on where the
    atoms sit, as long as they do not overlap; so it is the mean over ``draws`` of the sorted CMED of the
    atoms placed at random, ``min_distance`` (A) apart (Zhang & Main 1990 take it from similar structures).

    Args:
        lattice: (3, 3) row-vector cell (A).
        numbers, occupancy: atomic numbers and occupancies of the atoms in the cell.
        n: grid points per axis.
        b_iso: B of the map (A^2).
        draws: random placements averaged.
        min_distance: closest approach of two atoms (A), relaxed where the cell is too full.
        seed: seeds the placements, so the reference is reproducible.
    """
    numbers = np.asarray(numbers)
    if len(numbers) == 0:
        raise InputError("histogram matching needs the atoms per cell; give the composition")
    rng = np.random.default_rng(seed)
    cfg = DensityConfig(b_iso=b_iso, grid=n)
    occ = np.ones(len(numbers)) if occupancy is None else np.asarray(occupancy, dtype=np.float64)
    ref = np.zeros(n**3)
    for _ in range(draws):
        crystal = Crystal(lattice=np.asarray(lattice, dtype=np.float64),
                          frac=spread_positions(lattice, len(numbers), min_distance, rng), numbers=numbers,
                          occupancy=occ)
        ref += np.sort(density_grid(crystal, cfg).ravel())
    return ref / draws


def match_histogram(grids: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Maps (..., N, N, N) whose voxel values are ``reference`` (sorted, (N^3,)) in the order of the input's:
    the k-th lowest voxel of each map gets the k-th lowest reference value."""
    g = np.asarray(grids)
    flat = g.reshape(-1, g.shape[-1] ** 3)
    out = np.empty_like(flat, dtype=np.float64)
    np.put_along_axis(out, np.argsort(flat, axis=1, kind="stable"),
                      np.broadcast_to(reference, flat.shape), axis=1)
    return out.reshape(g.shape)


def modify_density(grids: np.ndarray, lattice: np.ndarray, peaks: MeasuredPeaks,
                   numbers: np.ndarray | None, occupancy: np.ndarray | None = None,
                   cfg: ModificationConfig = ModificationConfig(), electrons: float | None = None) -> np.ndarray:
    """Maps (..., N, N, N) (e/A^3) with the observed Fourier magnitudes and refined phases.

    :func:`modify_density_symmetric` has the arguments and the steps; this returns its maps only
    (averaged over the groups found when ``cfg.symmetry``).
    """
    return _modify(grids, lattice, peaks, numbers, occupancy, cfg, electrons)[0]


def modify_density_symmetric(grids: np.ndarray, lattice: np.ndarray, peaks: MeasuredPeaks,
                             numbers: np.ndarray | None, occupancy: np.ndarray | None = None,
                             cfg: ModificationConfig = ModificationConfig(), electrons: float | None = None
                             ) -> tuple[np.ndarray, list]:
    """Maps (..., N, N, N) (e/A^3) with the observed Fourier magnitudes and refined phases, constrained in
    the later cycles by the space group each map shows (``cfg.symmetry`` is implied); and those groups.

    Every grid reflection with Q <= ``peaks.q_limit`` gets its magnitude from its peak: the peak's intensity
    is shared among the reflections there in proportion to the map's own |F|^2 (equally where the map
    has none), a reflection with no peak gets 0 (absent or too weak to see). The share of a peak
    that falls outside the grid (reflections beyond its Nyquist index) is dropped. Reflections
    beyond ``peaks.q_limit`` keep the map's coefficients, and F(000) is the electron count of the
    composition (``numbers``, ``occupancy``). The magnitudes are damped by ``cfg.b_iso``.

    Steps: ``cfg.cycles`` error-reduction cycles (density >= 0, observed magnitudes); the most symmetric
    space group each map plausibly obeys is found (:func:`powdersolve.maps.symmetry.symmetrise_found`)
    and the map averaged over it at its standard origin; the magnitudes are shared again by the averaged
    map's |F|^2 (symmetry mates under one peak then get equal shares); ``cfg.cycles`` more cycles average
    over the group in each real-space step; the map is clipped at 0 (``cfg.final == "density"``) and moved
    back to the input's origin (``cfg.origin == "map"``). ``cfg.histogram`` adds histogram matching to the
    real-space steps or to the returned map.

    Args:
        grids: predicted maps (e/A^3), any leading shape.
        lattice: (3, 3) row-vector cell (A).
        peaks: the measured peaks (positions, |F|^2-like intensities on any scale, the measured range).
        numbers, occupancy: atomic numbers and occupancies of the atoms in the cell; may be None
            with ``cfg.scale == "model"`` and ``electrons`` given (composition unknown).
        cfg: cycles, scale, tolerance and B.
        electrons: F(000), electrons per cell; None sums ``numbers`` weighted by ``occupancy``.

    Returns:
        the maps, and per map (leading axes flattened) the :class:`~powdersolve.maps.symmetry.MapSymmetry`
        it was averaged over (its origin: the shift from the input map's origin to the group's standard
        one, where the returned map lies), or None where no group was plausible.
    """
    return _modify(grids, lattice, peaks, numbers, occupancy, replace(cfg, symmetry=True),
                   electrons)


@dataclass(frozen=True)
class _Measured:
    """The measured peaks on a map's reciprocal grid (numpy FFT layout, (N, N, N) arrays).

    Attributes:
        measured: coefficients inside the measured Q range; hit: those on a measured peak;
        idx: the peak of each coefficient (0 where none); on_grid: per peak, the grid's coefficients under it;
        peak_on_grid: per peak, the part of its intensity the grid holds; s2: (sin theta / lambda)^2 (1/A^2);
        to_fft: numpy FFT coefficient of a map in e/A^3 per electron of F(h);
        wilson_k: the Wilson scale of the magnitudes (None unless ``scale='wilson'``); electrons: F(000).
    """

    measured: np.ndarray
    hit: np.ndarray
    idx: np.ndarray
    on_grid: np.ndarray
    peak_on_grid: np.ndarray
    s2: np.ndarray
    to_fft: float
    wilson_k: float | None
    electrons: float


def _measured_on_grid(n: int, lattice: np.ndarray, peaks: MeasuredPeaks, numbers: np.ndarray,
                      occupancy: np.ndarray, cfg: ModificationConfig,
                      electrons: float | None) -> _Measured:
    """Where the measured peaks fall on the N^3 reciprocal grid, and the scale of their magnitudes."""
    volume = abs(float(np.linalg.det(np.asarray(lattice, dtype=np.float64))))
    grid = peaks_on_grid(n, lattice, peaks, cfg.tol, "density modification")
    hit = grid.member >= 0
    wilson_k = None
    if cfg.scale == "wilson":
        wilson_k = np.sqrt(wilson_sum(numbers, occupancy, grid.q[grid.measured])
                           / max(float(grid.peak_on_grid.sum()), 1e-300))
    if electrons is None:
        electrons = float(np.dot(occupancy, np.asarray(numbers, dtype=np.float64)))
    return _Measured(grid.measured, hit, np.where(hit, grid.member, 0), grid.on_grid, grid.peak_on_grid,
                     (grid.q / (4 * np.pi)) ** 2, n**3 / volume, wilson_k, electrons)


_AXES = (-3, -2, -1)


def _observed(c: np.ndarray, m: _Measured, cfg: ModificationConfig, b_work: float) -> np.ndarray:
    """The observed magnitudes (numpy FFT units, damped by B): each peak's intensity shared by the
    map's own |F|^2 (equally where the map has none), on the Wilson scale or fitted to the map."""
    mag = shared_magnitudes(np.abs(c) ** 2, m.idx, m.hit.astype(np.float64), m.on_grid, m.peak_on_grid)
    if cfg.scale == "wilson":
        k = np.full(c.shape[:-3], m.wilson_k)
    else:  # least squares of the map's |F| (its damping undone) on the observed ones
        model = np.abs(c) / m.to_fft / np.maximum(np.exp(-cfg.b_iso * m.s2), 1e-300) * m.hit
        k = (model * mag).sum(axis=_AXES) / np.maximum((mag**2).sum(axis=_AXES), 1e-300)
    return mag * k[..., None, None, None] * np.exp(-b_work * m.s2) * m.to_fft


def _impose(c: np.ndarray, mag: np.ndarray, m: _Measured) -> np.ndarray:
    out = np.where(m.measured, mag * np.exp(1j * np.angle(c)), c)
    out[..., 0, 0, 0] = m.electrons * m.to_fft
    return out


def _cycles(c: np.ndarray, mag: np.ndarray, m: _Measured, cfg: ModificationConfig, work_reference: np.ndarray | None,
            project: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """``cfg.cycles`` error-reduction cycles: positivity (and ``project``, and the histogram) in real
    space, the observed magnitudes and F(000) in reciprocal space."""
    c = _impose(c, mag, m)
    for _ in range(cfg.cycles):
        rho = np.maximum(np.fft.ifftn(c, axes=_AXES).real, 0.0)
        rho = rho if project is None else project(rho)
        if cfg.histogram == "cycles":
            rho = match_histogram(rho, work_reference)
        c = _impose(np.fft.fftn(rho, axes=_AXES), mag, m)
    return c


def _modify(grids: np.ndarray, lattice: np.ndarray, peaks: MeasuredPeaks,
            numbers: np.ndarray | None, occupancy: np.ndarray | None, cfg: ModificationConfig,
            electrons: float | None) -> tuple[np.ndarray, list | None]:
    g = np.asarray(grids, dtype=np.float64)
    n = g.shape[-1]
    if g.ndim < 3 or g.shape[-3:] != (n, n, n):
        raise InputError(f"density modification needs cubic grids (..., N, N, N), got {g.shape}")
    if numbers is None and (cfg.scale == "wilson" or electrons is None):
        raise InputError("density modification needs the atoms per cell for the Wilson scale or F(000); "
                         "give the composition")
    numbers = np.zeros(0, dtype=int) if numbers is None else np.asarray(numbers)
    occupancy = np.ones(len(numbers)) if occupancy is None else np.asarray(occupancy, dtype=np.float64)
    m = _measured_on_grid(n, lattice, peaks, numbers, occupancy, cfg, electrons)
    b_work = cfg.b_iso if cfg.b_work is None else cfg.b_work
    reference = work_reference = None
    if cfg.histogram != "none":
        reference = reference_histogram(lattice, numbers, occupancy, n, cfg.b_iso)
    if cfg.histogram == "cycles":
        work_reference = (reference if b_work == cfg.b_iso
                          else reference_histogram(lattice, numbers, occupancy, n, b_work))
    coef = np.fft.fftn(g, axes=_AXES)
    coef = _cycles(coef, _observed(coef, m, cfg, b_work), m, cfg, work_reference)
    groups = None
    if cfg.symmetry:
        # Averaged over the group each map shows and moved to its standard origin; symmetry mates under
        # one peak then share it equally, so the magnitudes are taken again from the averaged map.
        flat = np.maximum(np.fft.ifftn(coef, axes=_AXES).real, 0.0).reshape(-1, n, n, n)
        averaged, groups = symmetrise_found(flat, lattice)
        found = [0 if grp is None else grp.number for grp in groups]
        coef = np.fft.fftn(averaged.reshape(g.shape), axes=_AXES)
        coef = _cycles(coef, _observed(coef, m, cfg, b_work), m, cfg, work_reference,
                       lambda r: symmetrise_maps(r.reshape(-1, n, n, n), found).reshape(r.shape))
    rho = np.fft.ifftn(coef, axes=_AXES).real
    if cfg.final == "density":
        rho = np.maximum(rho, 0.0)
    if cfg.symmetry and cfg.origin == "map":
        rho = from_standard_origin(rho.reshape(-1, n, n, n), groups).reshape(g.shape)
        if cfg.final == "density":  # an off-grid shift of the clipped map rings a little
            rho = np.maximum(rho, 0.0)
    if b_work < cfg.b_iso:  # back to the map's B; unmeasured coefficients never left it
        c = np.fft.fftn(rho, axes=_AXES)
        rho = np.fft.ifftn(np.where(m.measured, c * np.exp(-(cfg.b_iso - b_work) * m.s2), c), axes=_AXES).real
    if cfg.histogram != "none":
        rho = match_histogram(rho, reference)
    return rho, groups
