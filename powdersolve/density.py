"""CMED: the independent-atom electron density of the cell on fractional coordinates (e/A^3).

The density is the procrystal (sum of neutral IT92 atoms, occupancy-weighted) convolved with an
overall isotropic Debye-Waller factor ``B`` (default 8 A^2, a ~1 A map: B ~ 8 d_min^2). Why blur:
at B ~ 0.5 A^2 heavy-atom cores are needle-sharp, a 50^3 grid aliases them, and the paper's SSIM
is blind (a constant map scores 0.94). At B = 8 A^2 the map is band-limited on a 50^3 grid.

The structure factors of this density are exactly :func:`powdersolve.scattering.structure_factors`
with the same ``B``, so the density and the pattern come from one table.

Two exact evaluators:

- :func:`density_grid`: voxel [i, j, k] at (i/N, j/N, k/N), from structure factors folded onto
  the N^3 FFT grid (aliases included, so the samples are exact for any cell shape);
- :func:`density_at`: real-space sum of analytic Gaussians over periodic images at arbitrary
  fractional points (used to train without storing grids).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powdersolve.errors import InputError
from powdersolve.scattering import form_factor_coefficients, hkl_sphere, structure_factors
from powdersolve.structures.crystal import Crystal

DEFAULT_B = 8.0
DEFAULT_GRID = 50
MAX_GRID = 128


@dataclass(frozen=True)
class DensityConfig:
    """Settings of the CMED target.

    Attributes:
        b_iso: overall isotropic B in Angstrom^2 (> 0).
        grid: grid points per axis N.
        tol: relative size of the neglected Fourier / real-space tails.
    """

    b_iso: float = DEFAULT_B
    grid: int = DEFAULT_GRID
    tol: float = 1e-9

    def __post_init__(self) -> None:
        if not (0.05 <= self.b_iso <= 200):
            raise InputError(f"B = {self.b_iso} A^2 is outside 0.05-200 A^2")
        if not (4 <= self.grid <= MAX_GRID):
            raise InputError(f"grid {self.grid} is outside 4-{MAX_GRID}")


def fourier_cutoff(b_iso: float, tol: float = 1e-9) -> float:
    """Reciprocal radius q_max (1/A) beyond which exp(-B q^2 / 4) < ``tol``."""
    return float(np.sqrt(4.0 * np.log(1.0 / tol) / b_iso))


def density_grid(crystal: Crystal, config: DensityConfig | None = None) -> np.ndarray:
    """CMED on the N^3 fractional grid, float64 e/A^3, axes (a, b, c), voxel i at i/N."""
    cfg = config or DensityConfig()
    n = cfg.grid
    hkl = hkl_sphere(crystal.reciprocal, fourier_cutoff(cfg.b_iso, cfg.tol))
    f = structure_factors(crystal, hkl, cfg.b_iso)
    coeffs = np.zeros((n, n, n), dtype=np.complex128)
    idx = np.mod(hkl, n)
    np.add.at(coeffs, (idx[:, 0], idx[:, 1], idx[:, 2]), f)
    # rho(x) = (1/V) sum_h F_h exp(-2 pi i h.x); numpy's forward FFT has exactly this sign.
    return np.fft.fftn(coeffs).real / crystal.volume


def grid_coefficients(grid: np.ndarray, volume: float) -> np.ndarray:
    """Fourier coefficients of a grid scaled to structure-factor units (electrons), index h mod N."""
    return np.fft.ifftn(grid) * volume


def grid_q(n: int, lattice: np.ndarray) -> np.ndarray:
    """Q = 2 pi |h a* + k b* + l c*| (1/A) of every coefficient of an n^3 FFT of a fractional grid
    (numpy order, h = fftfreq * n, as in :func:`grid_coefficients`); ``lattice``: row vectors in A."""
    f = np.fft.fftfreq(n) * n
    hkl = np.stack(np.meshgrid(f, f, f, indexing="ij"), -1)
    recip = np.linalg.inv(np.asarray(lattice, dtype=np.float64)).T
    return 2 * np.pi * np.linalg.norm(hkl @ recip, axis=-1)


def density_at(crystal: Crystal, points: np.ndarray, b_iso: float = DEFAULT_B, tol: float = 1e-9,
               chunk: int = 2_000_000) -> np.ndarray:
    """CMED (e/A^3) at fractional ``points`` (P, 3), by summing analytic Gaussians over images.

    Each IT92 term a exp(-b s^2) blurred by B is, in real space,
    a (4 pi / b')^(3/2) exp(-4 pi^2 r^2 / b') with b' = b + B; the constant c becomes a Gaussian
    of width B.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    a, b, c = form_factor_coefficients(crystal.numbers)
    amp = np.concatenate([a, c[:, None]], axis=1) * crystal.occupancy[:, None]  # (n, 5)
    bp = np.concatenate([b, np.zeros_like(c)[:, None]], axis=1) + b_iso  # (n, 5)
    norm = amp * (4.0 * np.pi / bp) ** 1.5
    # Each Gaussian has fallen below tol of its own peak at r_cut.
    r_cut = float(np.sqrt(bp.max() * np.log(1.0 / tol) / (4 * np.pi**2)))
    lim = np.floor(r_cut * np.linalg.norm(crystal.reciprocal, axis=1) + 0.5).astype(int)
    shifts = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in lim], indexing="ij"), -1)
    shifts = shifts.reshape(-1, 3).astype(np.float64)
    out = np.zeros(len(points))
    n_atoms = len(crystal.numbers)
    step = max(1, chunk // max(1, n_atoms * len(shifts)))
    for start in range(0, len(points), step):
        p = points[start:start + step]
        d = p[:, None, :] - crystal.frac[None, :, :]
        d -= np.round(d)
        d = d[:, :, None, :] + shifts[None, None, :, :]  # (P, n, S, 3)
        r2 = np.sum((d @ crystal.lattice) ** 2, axis=-1)  # (P, n, S)
        g = np.exp(-4.0 * np.pi**2 * r2[..., None] / bp[None, :, None, :])  # (P, n, S, 5)
        out[start:start + step] = np.einsum("pnsk,nk->p", g, norm)
    return out


def stratified_points(n_side: int, rng: np.random.Generator) -> np.ndarray:
    """One uniformly jittered point in each cell of an n_side^3 stratification of [0, 1)^3."""
    base = np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return (base + rng.random(base.shape)) / n_side
