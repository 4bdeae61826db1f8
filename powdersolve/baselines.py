"""Null baselines every model score is printed beside.

- ``mean``: the constant map at the true mean density (knows only the electron count and volume);
- ``random_atoms``: the true composition, cell and occupancies with atoms at uniformly random
  fractional positions (knows everything but the positions), best of the same number of samples
  the model draws.

A model that does not beat both has learnt nothing about the structure.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from powdersolve.density import DEFAULT_B, DensityConfig, density_grid
from powdersolve.structures.crystal import Crystal

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


def baseline_grids(crystal: Crystal, truth: np.ndarray, cfg: DensityConfig, seed: int,
                   samples: int = DEFAULT_SAMPLES) -> dict[str, list[np.ndarray]]:
    """The null baselines of one crystal as name -> list of candidate grids (scored best-of-list).

    Args:
        crystal: the true crystal.
        truth: its true grid (only its mean is used).
        cfg: the density settings of the truth (B and grid).
        seed: seeds the random positions; the same seed gives the same grids.
        samples: random-atom draws, the model's number of samples so both are best of N.
    """
    rng = np.random.default_rng(seed)
    return {
        "mean": [mean_baseline(truth)],
        "random_atoms": [random_atoms_baseline(crystal, cfg.grid, cfg.b_iso, rng) for _ in range(samples)],
    }
