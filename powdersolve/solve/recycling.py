"""Fourier recycling: a candidate's own phases, refined by charge flipping of the measured peaks.

A candidate that fits the pattern roughly has its heavy atoms about right, and those carry most of each
reflection's phase: its structure factors phase the measured peaks better than the map it was read from.
Charge flipping of the measured magnitudes started from the candidate's density
(:func:`powdersolve.maps.flipping.charge_flip`) keeps what is right and moves what is not, the way a
crystallographer completes a partial structure from Fourier maps; atoms read from that map are refined and
ranked with the first candidates (:func:`powdersolve.solve.pipeline.solve`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powdersolve.density import DensityConfig, density_grid
from powdersolve.maps.flipping import FlipConfig, charge_flip
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.predict.steps import PEAK_TOL_Q
from powdersolve.solve.candidate import Candidate
from powdersolve.structures.crystal import Crystal

#: The shipped flipping on picked peaks (matched to reflections as predict matches them).
RECYCLING_FLIP = FlipConfig(tol=PEAK_TOL_Q)


@dataclass(frozen=True)
class RecycledMap:
    """A map phased from a candidate.

    Attributes:
        grid: (N, N, N) density (e/A^3 on the candidate's scale) on fractional coordinates of ``lattice``.
        lattice: (3, 3) row-vector cell of the candidate (A): its refined, conventional cell.
        label: where the map came from, for the candidates' origins.
    """

    grid: np.ndarray
    lattice: np.ndarray
    label: str


def recycled_map(candidate: Candidate, rank: int, peaks: MeasuredPeaks, grid: int,
                 flip: FlipConfig = RECYCLING_FLIP) -> RecycledMap:
    """The measured peaks charge-flipped from the phases of ``candidate``'s refined structure (its CMED at
    ``flip.b_iso``), on an (``grid``,)*3 map of its cell; ``rank`` (1-based) names it in the label.

    Raises:
        ModificationError: no measured peak falls on a reflection of the candidate's cell.
    """
    crystal = Crystal.from_structure(candidate.result.structure, candidate.spacegroup)
    start = density_grid(crystal, DensityConfig(b_iso=flip.b_iso, grid=grid))
    flipped = charge_flip(start, crystal.lattice, peaks, flip)
    label = f"recycled from candidate {rank} ({candidate.spacegroup_symbol})"
    return RecycledMap(flipped.grid, np.asarray(crystal.lattice, dtype=np.float64), label)
