"""The result of a structure solution: :class:`SolveResult` and its output folder."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import InputError
from powdersolve.fileio import atomic_output_dir, atomic_write_text
from powdersolve.formats.maps import write_map
from powdersolve.predict import Prediction
from powdersolve.solve.candidate import Candidate, write_solutions
from powdersolve.solve.config import SolveConfig
from powdersolve.solve.observed import Observed
from powdersolve.solve.origin import align_to_map
from powdersolve.solve.refine import plot_fit
from powdersolve.structures.crystal import Crystal

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SolveResult:
    """Ranked, refined candidates.

    Attributes:
        candidates: distinct refined candidates, best (lowest Rwp) first.
        origins: per candidate, the maps it was read from ('mean', 'sample 3', ...).
        observed: the profile refined against.
        prediction: the model's prediction (None for :func:`solve_from_grids`).
        composition: the composition text given, or None.
        species_note: how species were chosen when the composition was partial or missing ('' otherwise).
        notes: anything else worth telling (maps without atoms, overlaps).
        n_maps: maps read; n_distinct: distinct structures refined.
        timings: seconds per step.
    """

    candidates: list[Candidate]
    origins: list[list[str]]
    observed: Observed
    prediction: Prediction | None
    composition: str | None
    species_note: str
    notes: list[str]
    n_maps: int
    n_distinct: int
    timings: dict[str, float]
    config: SolveConfig

    @property
    def best(self) -> Candidate:
        """The top-ranked candidate."""
        return self.candidates[0]

    def solved_density(self, rank: int = 1, grid: int | None = None, b_iso: float = 8.0) -> np.ndarray:
        """CMED (e/A^3, B = ``b_iso`` A^2) of the candidate of this rank on the N^3 fractional grid.

        With a prediction the structure is first moved to the origin and hand of the network's mean map
        (:func:`powdersolve.solve.origin.align_to_map`), so the two maps overlay; N defaults to the
        prediction's grid (else ``config.grid``).
        """
        if not 1 <= rank <= len(self.candidates):
            raise InputError(f"rank {rank} is outside 1-{len(self.candidates)}")
        structure = self.candidates[rank - 1].result.structure
        pred = self.prediction
        n = grid or (pred.mean.shape[0] if pred is not None else self.config.grid)
        if pred is not None:
            structure = align_to_map(structure, pred.mean, b_iso)
        return density_grid(Crystal.from_structure(structure, 1), DensityConfig(b_iso=b_iso, grid=n))

    def summary(self) -> dict:
        """JSON-ready description: candidates (formula, space group, Rwp, GoF, atoms), inputs, cell, timings."""
        cands = []
        for k, (c, org) in enumerate(zip(self.candidates, self.origins), start=1):
            cands.append(dict(rank=k, **c.summary(), from_maps=org, cif=f"candidates/rank_{k:02d}.cif"))
        pred = self.prediction
        cell = None
        if pred is not None:
            a, b, c, al, be, ga = pred.cell
            cell = {"a": a, "b": b, "c": c, "alpha": al, "beta": be, "gamma": ga, "source": pred.cell_source,
                    "indexing": pred.indexing, "system": pred.system}
        return {
            "candidates": cands,
            "inputs": {"pattern": self.observed.source, "composition": self.composition,
                       "wavelength_A": (pred.wavelength.summary() if pred is not None
                                        else {"effective": self.observed.wavelength}),
                       "samples": self.config.samples, "grid": self.config.grid},
            "cell": cell,
            "model": None if pred is None else {key: pred.model.get(key) for key in ("weights", "sha256", "system")},
            "abstain": {"max_rwp": self.config.max_rwp, "best_rwp": round(self.best.result.rwp, 6),
                        "rwp_definition": "background-subtracted profile, unit weights, fraction"},
            "maps_read": self.n_maps, "distinct_structures_refined": self.n_distinct,
            "species_note": self.species_note, "notes": self.notes,
            "processing": None if pred is None else pred.processing,
            "modification": None if pred is None else pred.modification,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }


def write_solve_outputs(result: SolveResult, out_dir: str | os.PathLike, overwrite: bool = False,
                        progress: Progress | None = None) -> Path:
    """Write the solution into ``out_dir``, which appears (or is replaced) only when every file is written.

    Files: candidates/rank_01.cif ..., refined.cif (= rank 1), solution.json, fit.png (observed,
    calculated, difference, reflection ticks of rank 1) and, when a model predicted, density/ (the
    prediction's maps, figures and summary.json) and density_solved.ccp4 / .npy, the density of rank 1
    at the origin of the network's map (:meth:`SolveResult.solved_density`).
    """
    out = Path(out_dir)
    t0 = time.perf_counter()
    with atomic_output_dir(out, overwrite=overwrite) as stage:
        summary = result.summary()
        paths = write_solutions(result.candidates, stage)
        shutil.copyfile(paths[0], stage / "refined.cif")
        best = result.best
        obs = result.observed
        plot_fit(obs.two_theta, obs.counts, best.result.calc, best.result.ticks, stage / "fit.png",
                 title=f"{best.formula} {best.spacegroup_symbol}: Rwp {100 * best.result.rwp:.1f}%")
        if result.prediction is not None:
            result.prediction.write(stage / "density", progress=progress)
            solved = result.solved_density()
            write_map(stage / "density_solved.ccp4", solved, result.prediction.cell)
            write_map(stage / "density_solved.npy", solved, result.prediction.cell)
        # write_solutions' solution.json lists the candidates only; replace it with the full summary.
        summary["timings_s"]["write"] = round(time.perf_counter() - t0, 4)
        summary["files"] = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        atomic_write_text(stage / "solution.json", json.dumps(summary, indent=2, default=_json_default) + "\n")
    return out


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
