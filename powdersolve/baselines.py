"""Null baselines every model score is printed beside.

- ``mean``: the constant map at the true mean density (knows only the electron count and volume);
- ``random_atoms``: the true composition, cell and occupancies with atoms at uniformly random
  fractional positions (knows everything but the positions), best of the same number of samples
  the model draws;
- ``zero_phase``: the Fourier map of the model's own input amplitudes (the pattern's intensities
  shared among the decoder's reflections) with every phase 0, on the decoder's Miller indices;
  no network. Where the atoms sit on special positions at the origin's inversion centre most
  phases are 0, so this is the bar a network must clear on such crystals;
- ``patterson``: the same with the squared amplitudes, the Patterson map (the density's
  autocorrelation; its peaks are interatomic vectors, with the heaviest atom at the origin the
  structure itself).

The two Fourier baselines are put on the true mean and spread (e/A^3) of the density for SSIM and
PSNR; their map correlation does not depend on that. A model that does not beat them all has learnt
nothing about the structure the pattern does not already show.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from powdersolve.density import DEFAULT_B, DensityConfig, density_grid
from powdersolve.model import coefficients_to_grid
from powdersolve.structures.crystal import Crystal

#: What each baseline is given besides the cell, and whether that includes the true Z (the cell content).
BASELINE_KNOWS = {
    "mean": ("the true mean density F(000)/V", True),
    "random_atoms": ("the true cell content (formula and Z) at random positions", True),
    "zero_phase": ("the model's input amplitudes, phases 0; true mean and spread for SSIM/PSNR", True),
    "patterson": ("the squared input amplitudes, phases 0; true mean and spread for SSIM/PSNR", True),
}

#: Latent samples drawn per crystal in the paper's protocol (and random-atom draws here).
DEFAULT_SAMPLES = 5


def mean_baseline(truth: np.ndarray) -> np.ndarray:
    """The constant grid at the true mean density (e/A^3), same shape as ``truth``."""
    truth = np.asarray(truth, dtype=np.float64)
    return np.full_like(truth, truth.mean())


def random_atoms_crystal(crystal: Crystal, rng: np.random.Generator) -> Crystal:
    """The same cell, species and occupancies with every site at a uniformly random fractional position."""
    return replace(crystal, frac=rng.random(crystal.frac.shape), spacegroup=1)


def random_atoms_baseline(crystal: Crystal, grid: int, b_iso: float = DEFAULT_B,
                          rng: np.random.Generator | None = None) -> np.ndarray:
    """CMED (e/A^3, (grid,)*3) of the crystal's atoms placed at uniformly random positions.

    Args:
        crystal: the true crystal (cell, species and occupancies are kept).
        grid: grid points per axis N.
        b_iso: overall isotropic B in A^2, as for the truth.
        rng: source of the positions; pass a seeded generator for reproducible baselines.
    """
    rng = rng if rng is not None else np.random.default_rng()
    return density_grid(random_atoms_crystal(crystal, rng), DensityConfig(b_iso=b_iso, grid=grid))


@dataclass(frozen=True)
class InputAmplitudes:
    """A model's input amplitudes: what the pattern says of |F| on the decoder's reflections.

    Attributes:
        hkl: (M, 3) int Miller indices, one Friedel half (the decoder's layout).
        amp: (M,) relative amplitudes (0 where unmeasured or absent), on any common scale.
    """

    hkl: np.ndarray
    amp: np.ndarray


def _on_truth_scale(grid: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``grid`` moved and stretched onto the truth's mean and standard deviation (e/A^3); the mean map
    when ``grid`` is flat (no amplitude was measured)."""
    sd = float(grid.std())
    if sd == 0.0:
        return mean_baseline(truth)
    return (grid - grid.mean()) * (float(truth.std()) / sd) + float(truth.mean())


def fourier_map(hkl: np.ndarray, coefficients: np.ndarray, grid: int) -> np.ndarray:
    """rho(x) = 2 sum_h C_h cos(2 pi h.x) of real half-space coefficients on the (grid,)*3 fractional grid."""
    coef = torch.as_tensor(np.asarray(coefficients, dtype=np.float64)).to(torch.complex128)[None]
    out = coefficients_to_grid(torch.zeros(1, dtype=torch.float64), coef, torch.as_tensor(hkl).long(), grid)
    return out[0].numpy()


def zero_phase_baseline(amplitudes: InputAmplitudes, truth: np.ndarray) -> np.ndarray:
    """The Fourier map of the input amplitudes with every phase 0, on the truth's grid mean and spread."""
    return _on_truth_scale(fourier_map(amplitudes.hkl, amplitudes.amp, truth.shape[-1]), truth)


def patterson_baseline(amplitudes: InputAmplitudes, truth: np.ndarray) -> np.ndarray:
    """The Patterson map (squared input amplitudes, phases 0), on the truth's grid mean and spread."""
    return _on_truth_scale(fourier_map(amplitudes.hkl, amplitudes.amp**2, truth.shape[-1]), truth)


def baseline_grids(crystal: Crystal, truth: np.ndarray, cfg: DensityConfig, seed: int,
                   samples: int = DEFAULT_SAMPLES, amplitudes: InputAmplitudes | None = None
                   ) -> dict[str, list[np.ndarray]]:
    """The null baselines of one crystal as name -> list of candidate grids (the first is the one a
    user would get; the best over the list is the oracle pick).

    Args:
        crystal: the true crystal.
        truth: its true grid (its mean, and for the Fourier baselines its spread, are used).
        cfg: the density settings of the truth (B and grid).
        seed: seeds the random positions; the same seed gives the same grids.
        samples: random-atom draws, the model's number of samples so both are best of N.
        amplitudes: the model's input amplitudes; adds ``zero_phase`` and ``patterson``.
    """
    rng = np.random.default_rng(seed)
    out = {
        "mean": [mean_baseline(truth)],
        "random_atoms": [random_atoms_baseline(crystal, cfg.grid, cfg.b_iso, rng) for _ in range(samples)],
    }
    if amplitudes is not None:
        out["zero_phase"] = [zero_phase_baseline(amplitudes, truth)]
        out["patterson"] = [patterson_baseline(amplitudes, truth)]
    return out
