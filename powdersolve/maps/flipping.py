"""Charge flipping: phases from the pattern's magnitudes, started from a map's phases.

Charge flipping (Oszlanyi & Suto 2004; for powder data Baerlocher, McCusker & Palatinus 2007) finds phases
that make a map with the observed magnitudes look like atoms: in real space every density below a small
threshold delta changes sign; in reciprocal space the measured coefficients get the observed magnitudes
and keep their phases, every other coefficient but F(000) is set to 0. At atomic resolution the iteration
settles on the structure from random phases for small cells; started from the network's phases it keeps
what the network got right and repairs what it did not (the network's L2 loss blurs crystals unlike its
training data).

Conventions: grids are (N, N, N) on fractional coordinates of a cell with row-vector lattice (A);
Q = 2 pi / d (1/A); peak intensities are |F|^2-like sums without Lorentz factor on any scale (the pattern's
magnitudes are used at B = 0, as measured from atoms at rest; the returned map is blurred to ``b_iso``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft

from powdersolve.errors import InputError
from powdersolve.maps.peak_sharing import MeasuredPeaks, peaks_on_grid, shared_magnitudes
from powdersolve.metrics import map_correlation_per_sample
from powdersolve.rotations import lattice_rotations

#: FFT axes of an (N, N, N) grid.
_AXES = (0, 1, 2)


@dataclass(frozen=True)
class FlipConfig:
    """Settings of :func:`charge_flip`.

    Attributes:
        cycles: flipping cycles.
        delta: the flipping threshold in standard deviations of the current map (Superflip's auto delta).
        reshare: every this many cycles, the intensity of a peak over several reflections is shared again in
            proportion to the current map's |F|^2 (0: the start map's shares throughout).
        reshare_large: ``reshare`` for cells of more than ``large_cell`` A^3, whose peaks hold more reflections:
            on 40 generated cells of 60-100 atoms (640-4240 A^3) resharing every 5 cycles rather than 20 raised the
            map correlation from 0.720 to 0.776; below about 1000 A^3 it gained nothing or lost (small cubic cells
            flipped from random phases: -0.03), docs/experiments/2026-12-07-large-cells.md.
        large_cell: the cell volume (A^3) above which ``reshare_large`` applies.
        polish: error-reduction cycles after the flipping (density >= 0 in real space, the same magnitudes):
            the flipping's fixed point lies near the structure, not on it.
        tol: a grid reflection belongs to a peak within this distance in Q (1/A).
        b_iso: Debye-Waller B (A^2) of the returned map.
        confirm: the start map stands when the flipped map agrees with it at least this well (map correlation
            over origin shifts): the flipping then confirmed its phases, and the flipping's fixed point lies
            a little off the structure (:attr:`FlipResult.preferred`).
        sampling: the iteration runs on the coarsest grid with at least this many points per d_min (the
            measured range's) along the cell's longest axis and every measured reflection inside its
            Nyquist limit, never finer than the start map's; None iterates on the start map's grid. The
            result is put back on the start map's grid exactly (its coefficients are band-limited).
        max_grid: the iteration grid may be finer than the start map's, up to this many points per axis (0: never
            finer), so that a long axis keeps ``sampling`` points per d_min; the result keeps the reflections the
            start map's grid holds. On 40 generated cells of 60-100 atoms, 128 moved the map correlation from 0.720
            to 0.743 at 2.5 times the cost (docs/experiments/2026-12-07-large-cells.md), so it is off by default.
    """

    cycles: int = 200
    delta: float = 1.1
    reshare: int = 20
    reshare_large: int = 5
    large_cell: float = 1000.0
    polish: int = 10
    tol: float = 2e-3
    b_iso: float = 8.0
    confirm: float = 0.85
    sampling: float | None = 4.0
    max_grid: int = 0

    def reshare_every(self, lattice: np.ndarray) -> int:
        """Cycles between reshares for the cell ``lattice`` (rows, A): ``reshare_large`` above ``large_cell``."""
        volume = abs(float(np.linalg.det(np.asarray(lattice, dtype=np.float64))))
        return self.reshare_large if volume > self.large_cell else self.reshare

    def __post_init__(self) -> None:
        if self.cycles < 1:
            raise InputError(f"charge flipping needs cycles >= 1 (got {self.cycles})")
        if not 0 < self.delta < 5:
            raise InputError(f"charge flipping needs 0 < delta < 5 standard deviations (got {self.delta})")
        if self.reshare < 0 or self.reshare_large < 0 or self.polish < 0:
            raise InputError(f"charge flipping needs reshare, reshare_large and polish >= 0 (got {self.reshare}, "
                             f"{self.reshare_large}, {self.polish})")
        if not -1 <= self.confirm <= 1:
            raise InputError(f"charge flipping needs -1 <= confirm <= 1 (got {self.confirm})")
        if self.large_cell < 0:
            raise InputError(f"charge flipping needs large_cell >= 0 A^3 (got {self.large_cell})")
        if self.max_grid < 0:
            raise InputError(f"charge flipping needs max_grid >= 0 points per axis (got {self.max_grid})")
        if self.sampling is not None and self.sampling < 2:
            raise InputError(f"charge flipping needs sampling >= 2 grid points per d_min or None (got {self.sampling})")
        if self.tol <= 0 or self.b_iso < 0:
            raise InputError(f"charge flipping needs tol > 0 and b_iso >= 0 (got {self.tol}, {self.b_iso})")


@dataclass(frozen=True)
class FlipResult:
    """A charge-flipped map.

    Attributes:
        grid: (N, N, N) density on the start map's scale (its F(000) and a least-squares scale of the
            measured coefficients to its own), e/A^3 where the start map is, blurred to ``b_iso``.
        r_factor: sum | |F_flipped| - |F_obs| | / sum |F_obs| over the measured reflections after the last
            flip, before the polishing (0.1-0.3 for a settled small structure; lower is a better fit, not a proof).
        agreement: map correlation of ``grid`` with the start map, maximised over integer origin shifts.
        confirmed: ``agreement`` >= the config's ``confirm``: the start map stands.
    """

    grid: np.ndarray
    r_factor: float
    agreement: float
    confirmed: bool

    def preferred(self, start: np.ndarray) -> np.ndarray:
        """The map to use: ``start`` when the flipping confirmed it, else the flipped map."""
        return np.asarray(start) if self.confirmed else self.grid


def random_phase_map(n: int, rng: np.random.Generator) -> np.ndarray:
    """A real (N, N, N) map whose Fourier coefficients have unit magnitude and uniformly random phases: the
    start of charge flipping without any prior phases (its shares of overlapped peaks are then equal)."""
    return fft.irfftn(np.exp(2j * np.pi * rng.random((n, n, n // 2 + 1))), s=(n, n, n), axes=_AXES)


def _half(a: np.ndarray) -> np.ndarray:
    """The rfftn half (N, N, N // 2 + 1) of a full-layout reciprocal array."""
    return a[..., : a.shape[-1] // 2 + 1]


def charge_flip(start: np.ndarray, lattice: np.ndarray, peaks: MeasuredPeaks, cfg: FlipConfig = FlipConfig()
                ) -> FlipResult:
    """Charge flipping of the pattern's magnitudes from the phases of the map ``start``.

    Each peak's intensity is shared among the grid reflections within ``cfg.tol`` of it in proportion to the
    start map's |F|^2 (equally for a map of equal magnitudes), and again by the current map's every
    ``cfg.reshare`` cycles (``cfg.reshare_large`` in a large cell: :meth:`FlipConfig.reshare_every`); the part
    of a peak whose reflections lie beyond the grid's Nyquist index is dropped. A reflection of the measured
    range (0 < Q <= ``peaks.q_limit``) under no peak is taken as absent (0).
    The flipped map's agreement with the start map says whether the start stands (``cfg.confirm``).

    Args:
        start: (N, N, N) map whose phases start the iteration (e.g. the network's posterior mean).
        lattice: (3, 3) row-vector cell (A).
        peaks: the measured peaks (positions, |F|^2-like intensities at B = 0, the measured range).
        cfg: cycles, threshold, sharing, tolerance, B of the result.

    Raises:
        InputError: a grid that is not (N, N, N) or not finite.
        ModificationError: no peak falls on a reflection of the cell.
    """
    g = np.asarray(start, dtype=np.float64)
    n = g.shape[-1]
    if g.shape != (n, n, n) or not np.isfinite(g).all():
        raise InputError(f"charge flipping needs one finite (N, N, N) grid, got shape {g.shape}")
    m = flip_grid_size(n, lattice, peaks.q_limit, cfg.sampling, cfg.max_grid)
    start_full = fft.rfftn(g, axes=_AXES)
    # The same band-limited map sampled on m^3 points: the start's coefficients cut to the smaller grid's band.
    band = _band(min(m, n), max(m, n))
    if m <= n:
        start_c = start_full[band] * (m / n) ** 3
    else:
        start_c = np.zeros((m, m, m // 2 + 1), dtype=start_full.dtype)
        start_c[band] = start_full * (m / n) ** 3
    on_grid = peaks_on_grid(m, lattice, peaks, cfg.tol, "charge flipping")
    peak_on_grid = on_grid.peak_on_grid
    q, member = _half(on_grid.q), _half(on_grid.member)
    hit = member >= 0
    idx = np.where(hit, member, 0)
    # A coefficient of the half layout stands for itself and its Friedel mate, except on the planes
    # l = 0 and l = M/2, which hold both explicitly.
    weight = np.full(q.shape, 2.0)
    weight[..., 0] = 1.0
    if m % 2 == 0:
        weight[..., -1] = 1.0
    weight *= hit

    c = start_c.copy()
    mag = shared_magnitudes(np.abs(c) ** 2, idx, weight, on_grid.on_grid, peak_on_grid)
    r_factor = 1.0
    total_cycles = cfg.cycles + cfg.polish
    reshare = cfg.reshare_every(lattice)
    for cycle in range(total_cycles + 1):
        if reshare and cycle and cycle % reshare == 0:
            mag = shared_magnitudes(np.abs(c) ** 2, idx, weight, on_grid.on_grid, peak_on_grid)
        amp = np.abs(c)
        scale = float((weight * amp * mag).sum() / max(float((weight * mag**2).sum()), 1e-300))
        if cycle == cfg.cycles:  # the flipping's figure of merit; error reduction drives any map's R to 0
            r_factor = float((weight * np.abs(amp - scale * mag)).sum() / max(scale * float((weight * mag).sum()),
                                                                               1e-300))
        f000 = c[0, 0, 0]
        c = np.where(hit, scale * mag * np.exp(1j * np.angle(c)), 0j)
        c[0, 0, 0] = f000
        if cycle == total_cycles:
            break
        rho = fft.irfftn(c, s=(m, m, m), axes=_AXES)
        if cycle < cfg.cycles:
            rho = np.where(rho < cfg.delta * rho.std(), -rho, rho)
        else:  # error reduction: the flipping's fixed point is near the structure, positivity's on it
            rho = np.maximum(rho, 0.0)
        c = fft.rfftn(rho, axes=_AXES)
    if m <= n:
        full = np.zeros_like(start_full)
        full[band] = _on_start_scale(c, start_c, hit, q, cfg.b_iso) * (n / m) ** 3
    else:  # the result on the start map's grid keeps the reflections that grid holds
        full = _on_start_scale(c[band], start_c[band], hit[band], q[band], cfg.b_iso) * (n / m) ** 3
    grid = fft.irfftn(full, s=(n, n, n), axes=_AXES)
    agreement = float(map_correlation_per_sample(grid[None], g, lattice_rotations("triclinic"))[0][0])
    return FlipResult(grid, r_factor, agreement, agreement >= cfg.confirm)


def _on_start_scale(c: np.ndarray, start_c: np.ndarray, hit: np.ndarray, q: np.ndarray, b_iso: float) -> np.ndarray:
    """The flipped coefficients blurred to ``b_iso``, least-squares scaled to the start map's measured
    coefficients, with the start map's F(000) (half layout)."""
    blurred = np.where(hit, c * np.exp(-b_iso * (q / (4 * np.pi)) ** 2), 0j)
    k = float((np.abs(blurred) * np.abs(start_c) * hit).sum() / max(float((np.abs(blurred[hit]) ** 2).sum()), 1e-300))
    out = blurred * k
    out[0, 0, 0] = start_c[0, 0, 0]
    return out


def flip_grid_size(n: int, lattice: np.ndarray, q_limit: float, sampling: float | None, max_grid: int = 0) -> int:
    """Points per axis of the grid the flipping iterates on: the smallest even FFT-friendly M with at least
    ``sampling`` points per d_min = 2 pi / ``q_limit`` (A) along the longest axis of ``lattice`` (rows, A) and
    every reflection with Q <= ``q_limit`` (1/A) below its Nyquist index, at most ``max(n, max_grid)``;
    ``n`` when ``sampling`` is None."""
    if sampling is None:
        return n
    d_min = 2 * np.pi / q_limit
    longest = float(np.linalg.norm(np.asarray(lattice, dtype=np.float64), axis=1).max())
    # |h| <= |a_i| / d for a reflection of spacing d: an upper bound on every measured index.
    need = max(sampling * longest / d_min, 2 * np.floor(longest / d_min) + 2)
    m = int(np.ceil(need))
    while (m := fft.next_fast_len(m)) % 2:
        m += 1
    return min(m, max(n, max_grid))


def _band(m: int, n: int) -> tuple[np.ndarray, ...]:
    """Indices of an (M, M, M // 2 + 1) half-layout spectrum inside an (N, N, N // 2 + 1) one (M <= N)."""
    rows = np.fft.fftfreq(m, 1.0 / m).astype(int) % n
    return np.ix_(rows, rows, np.arange(m // 2 + 1))
