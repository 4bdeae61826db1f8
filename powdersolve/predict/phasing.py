"""A density map without any network: charge flipping of the pattern's peaks from random phases.

For cells no shipped model serves (today monoclinic and triclinic), and as a network-free reference for
any cell. The pattern is read, preprocessed and its peaks picked as :func:`powdersolve.predict.predict`
does; the cell is given or indexed over all seven crystal systems; ``starts`` random-phase starts are
flipped (:mod:`powdersolve.maps.flipping`) and the one with the lowest flip R factor is kept (no truth is
used). Without a formula and Z the electron count is unknown, so the map is on a relative scale: zero
mean, unit standard deviation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from powdersolve.cell import Cell
from powdersolve.errors import InputError
from powdersolve.fileio import atomic_output_dir, atomic_write_text
from powdersolve.formats import Pattern
from powdersolve.formats.maps import write_map
from powdersolve.indexing import CellSolution
from powdersolve.maps.flipping import FlipConfig, FlipResult, charge_flip, random_phase_map
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.plots import plot_slices
from powdersolve.predict.config import PredictConfig
from powdersolve.predict.steps import PEAK_TOL_Q, index, indexing_summary, preprocess_pattern, read

#: Most random starts one call flips.
MAX_STARTS = 20
#: The default settings (one shared, immutable instance).
DEFAULT_CONFIG = PredictConfig()


@dataclass(frozen=True)
class PhasedMap:
    """The kept charge-flipped map of a pattern and how it was found.

    Attributes:
        grid: (N, N, N) float32 density on a relative scale (zero mean, unit standard deviation), voxel
            [i, j, k] at fractional (i/N, j/N, k/N) of ``cell``.
        cell: the cell; cell_source: 'given' or 'indexed'; indexing: the indexed cell's figures or None.
        r_factors: flip R factor of every start; kept: the index of the start kept (lowest R).
        peaks: the measured peaks flipped (Q, intensity, the measured range's upper edge).
        flip: the flipping settings; source: the pattern file; processing: what was done, one line each.
    """

    grid: np.ndarray
    cell: Cell
    cell_source: str
    indexing: dict | None
    r_factors: list[float]
    kept: int
    peaks: MeasuredPeaks
    flip: FlipConfig
    source: str
    processing: list[str]

    def summary(self) -> dict:
        """JSON-ready description (everything but the grid)."""
        a, b, c, al, be, ga = self.cell
        return {"input": {"pattern": self.source},
                "cell": {"a": a, "b": b, "c": c, "alpha": al, "beta": be, "gamma": ga, "source": self.cell_source,
                         "indexing": self.indexing},
                "density": {"file": "density_flipped.*", "grid": list(self.grid.shape),
                            "scale": "relative: zero mean, unit standard deviation (no formula and Z)",
                            "axes": "a, b, c; voxel [i, j, k] at fractional (i/N, j/N, k/N); C order"},
                "flipping": {"starts": len(self.r_factors), "r_factors": self.r_factors, "kept": self.kept,
                             "rule": "lowest flip R (no truth used)", "cycles": self.flip.cycles,
                             "delta_sigma": self.flip.delta, "reshare_every": self.flip.reshare_every(self.cell.matrix),
                             "polish_cycles": self.flip.polish, "peaks": int(self.peaks.q.size),
                             "q_limit_inv_A": self.peaks.q_limit, "b_iso_A2": self.flip.b_iso},
                "processing": self.processing}

    def write(self, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        """density_flipped.ccp4 / .npy, slices.png and summary.json in ``out_dir``, which appears whole."""
        out = Path(out_dir)
        with atomic_output_dir(out, overwrite=overwrite) as stage:
            write_map(stage / "density_flipped.ccp4", self.grid, self.cell, comment="(charge flipped, relative)")
            write_map(stage / "density_flipped.npy", self.grid, self.cell)
            plot_slices(self.grid, stage / "slices.png", title="charge-flipped density (relative scale)")
            atomic_write_text(stage / "summary.json", json.dumps(self.summary(), indent=2) + "\n")
        return out


def phase_pattern(pattern: str | os.PathLike | Pattern, config: PredictConfig = DEFAULT_CONFIG,
                  starts: int = 3, indexed: CellSolution | None = None) -> PhasedMap:
    """Charge flipping of ``pattern``'s peaks from ``starts`` random-phase starts (seeded by ``config.seed``),
    the lowest flip R kept.

    ``config`` supplies the cell (None: ``indexed``, or indexed here over all seven systems), the wavelength,
    the preprocessing, the grid and the flipping settings (``config.flip``; the shipped ones when None); its
    model settings are not used.

    Raises:
        InputError: unreadable pattern, no wavelength, too few peaks, no cell, ``starts`` out of range, or
            no measured peak on a reflection of the cell.
    """
    if not 1 <= starts <= MAX_STARTS:
        raise InputError(f"--starts {starts} is outside 1-{MAX_STARTS}; 3 is the tested setting")
    pat, lam, lam_source = read(pattern, config)
    source = str(pat.source)
    processed = preprocess_pattern(pat, lam, lam_source, config)
    log = list(processed.log)
    if config.cell is not None:
        cell, cell_source, indexing = Cell.of(config.cell), "given", None
    else:
        sol = indexed or index(pat, lam, source, known_phases=config.known_phases)[0]
        cell, cell_source, indexing = sol.cell, "indexed", indexing_summary(sol)
        log.append(f"indexed: {sol.system} {sol.centring} {' '.join(f'{v:.4f}' for v in sol.cell)}, "
                   f"M20={sol.m20:.1f}")
    peaks = processed.measured_peaks()
    flip = replace(config.flip or FlipConfig(), tol=PEAK_TOL_Q)
    rng = np.random.default_rng(config.seed)
    runs: list[FlipResult] = [charge_flip(random_phase_map(config.grid, rng), cell.matrix, peaks, flip)
                              for _ in range(starts)]
    kept = int(np.argmin([r.r_factor for r in runs]))
    grid = runs[kept].grid
    grid = (grid - grid.mean()) / max(float(grid.std()), 1e-30)
    log.append(f"charge flipping from {starts} random-phase starts, {flip.cycles} cycles (+{flip.polish} of "
               f"positivity) each, {peaks.q.size} peaks; kept start {kept} (flip R {runs[kept].r_factor:.3f})")
    return PhasedMap(grid.astype(np.float32), cell, cell_source, indexing, [r.r_factor for r in runs], kept,
                     peaks, flip, source, log)
