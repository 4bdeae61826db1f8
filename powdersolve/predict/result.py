"""The result of a prediction: :class:`Prediction` (maps, cell, how they were made) and its output folder."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from powdersolve.cell import Cell
from powdersolve.diffraction.peaks import PeakList, peaks_to_q_intensity
from powdersolve.errors import InputError
from powdersolve.fileio import atomic_output_dir, atomic_write_text
from powdersolve.formats.maps import write_map
from powdersolve.maps.symmetry import MapSymmetry
from powdersolve.plots import plot_isosurface, plot_slices
from powdersolve.preprocess import plot_processing
from powdersolve.structures.crystal import Crystal

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Wavelength:
    """The wavelength of a pattern.

    Attributes:
        value: Angstrom, as read; source: 'file' or 'argument';
        effective: Angstrom, after K-alpha2 stripping (K-alpha1), else ``value``.
    """

    value: float
    source: str
    effective: float

    def summary(self) -> dict:
        """JSON-ready fields."""
        return {"value": self.value, "source": self.source, "effective": self.effective}


@dataclass(frozen=True)
class Prediction:
    """The result of :func:`predict`.

    Attributes:
        mean: (N, N, N) float32 mean density over samples, e/A^3; voxel [i, j, k] at (i/N, j/N, k/N).
        std: (N, N, N) float32 per-voxel standard deviation over samples (>= 0), e/A^3.
        samples: (S, N, N, N) float32 sample grids, or None when not kept.
        cell: the unit cell (Angstrom / degrees); ``lattice`` is its (3, 3) row matrix in Angstrom.
        cell_source: 'given' or 'indexed'.
        indexing: indexing details (system, centring, M20, lines indexed) or None.
        system: crystal system of the model used.
        model_input: (C, bins) float32 array fed to the model.
        composition: text, encoding used, why, and the model's training encoding.
        processing: human-readable log of every step.
        wavelength: the wavelength read, where from, and the effective one after K-alpha2 stripping (A).
        q_coverage: measured Q range vs the model's Q axis (1/A).
        model: weights path, SHA-256, architecture and training settings.
        timings: seconds per step.
        source: the pattern file.
        raw: (2-theta deg, counts) as read; processed: after preprocessing.
        peaks: the picked peaks.
        symmetrised, symmetry: the mean map averaged over the space group it shows, and how (or None).
        modified, modification: the density-modified mean map, and how (or None); modified_group: the
            space group it was averaged over (None when none was, or none was plausible).
        flipped, flipping: the mean map's phases refined by charge flipping of the measured magnitudes, and
            how (or None).
        scale: how the samples were scaled (absolute or the network's own).
        excluded: (n,) bool over ``processed``: points near lines of known phases, left out of fits (or None).
    """

    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray | None
    cell: Cell
    cell_source: str
    indexing: dict | None
    system: str
    model_input: np.ndarray
    composition: dict
    processing: list[str]
    wavelength: Wavelength
    q_coverage: dict
    model: dict
    timings: dict
    source: str
    raw: tuple[np.ndarray, np.ndarray]
    processed: tuple[np.ndarray, np.ndarray]
    peaks: PeakList
    n_samples: int = 0
    seed: int = 0
    extra: dict = field(default_factory=dict)
    symmetrised: np.ndarray | None = None
    symmetry: dict | None = None
    modified: np.ndarray | None = None
    modification: dict | None = None
    scale: dict | None = None
    modified_group: MapSymmetry | None = None
    flipped: np.ndarray | None = None
    flipping: dict | None = None
    excluded: np.ndarray | None = None

    @property
    def lattice(self) -> np.ndarray:
        """(3, 3) rows a, b, c in Angstrom."""
        return self.cell.matrix

    @property
    def volume(self) -> float:
        """Cell volume in Angstrom^3."""
        return float(abs(np.linalg.det(self.lattice)))

    def crystal(self) -> Crystal:
        """The cell as an atom-less :class:`Crystal` (positions are what the map is for)."""
        return Crystal(lattice=self.lattice, frac=np.zeros((0, 3)), numbers=np.zeros(0, dtype=np.int64),
                       occupancy=np.zeros(0), formula=self.composition.get("text") or "", spacegroup=1)

    def summary(self) -> dict:
        """JSON-ready description of the prediction (everything but the grids)."""
        a, b, c, al, be, ga = self.cell
        return {
            "input": {"pattern": self.source, "points": int(self.raw[0].size),
                      "two_theta_range_deg": [float(self.raw[0].min()), float(self.raw[0].max())]},
            "wavelength": self.wavelength.summary(),
            "processing": self.processing,
            "peaks": {"count": len(self.peaks), "two_theta_deg": np.round(self.peaks.two_theta, 4).tolist()},
            "cell": {"a": a, "b": b, "c": c, "alpha": al, "beta": be, "gamma": ga, "source": self.cell_source,
                     "indexing": self.indexing, "lattice_A": self.lattice.tolist(), "volume_A3": self.volume},
            "system": self.system,
            "composition": self.composition,
            "model": self.model,
            "q_coverage": self.q_coverage,
            "sampling": {"samples": self.n_samples, "seed": self.seed,
                         "sample_0": "posterior mean (latent = mu)", "others": "latent = mu + eps * sigma"},
            "density": {"grid": list(self.mean.shape), "units": "e/A^3",
                        "axes": "a, b, c; voxel [i, j, k] at fractional (i/N, j/N, k/N); C order",
                        "mean_e_per_A3": float(self.mean.mean()),
                        "integrated_electrons": float(self.mean.astype(np.float64).mean() * self.volume),
                        "mean_std_e_per_A3": float(self.std.mean()), "scale": self.scale},
            "symmetry": self.symmetry,
            "modification": self.modification,
            "flipping": self.flipping,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def write(self, out_dir: str | os.PathLike, overwrite: bool = False, save_samples: bool = False,
              progress: Progress | None = None) -> Path:
        """Write every output into ``out_dir``, which appears (or is replaced) only when all succeeded.

        Files: density.ccp4 / .cube / CHGCAR / .npy (mean), density_std.ccp4 / .npy, samples/ (when
        ``save_samples`` and samples were kept), density_symmetrised.ccp4 / .npy (when symmetrised),
        density_modified.ccp4 / .npy (when density-modified), density_flipped.ccp4 / .npy (when charge-flipped),
        slices.png, isosurface.png, pattern.png, summary.json.
        """
        say = progress or (lambda _msg: None)
        if save_samples and self.samples is None:
            raise InputError("samples were not kept; predict with keep_samples=True (--save-samples)")
        out = Path(out_dir)
        t0 = time.perf_counter()
        with atomic_output_dir(out, overwrite=overwrite) as stage:
            say(f"writing maps to {out}")
            for name, grid, cell in self._maps(save_samples):
                (stage / name).parent.mkdir(exist_ok=True)
                write_map(stage / name, grid, cell, comment="(predicted mean)")
            say("drawing figures")
            name = self.composition.get("text") or Path(self.source).name
            plot_slices(self.mean, stage / "slices.png", title=f"{name}: predicted CMED (e/A^3)")
            plot_isosurface(self.mean, self.lattice, stage / "isosurface.png", title=f"{name}: predicted CMED")
            if self.model.get("xrd_input") == "q":
                model_view: np.ndarray | tuple[np.ndarray, np.ndarray] = self.model_input
            else:  # the paper's 2-theta channels: show the peaks on Q instead
                q, inten = peaks_to_q_intensity(self.peaks, self.wavelength.effective)
                model_view = (q, np.sqrt(inten / max(inten.max(initial=0), 1e-300)))
            plot_processing(self.raw, self.processed, model_view, stage / "pattern.png",
                            q_max=float(self.model.get("q_max", 8.0)))
            summary = self.summary()
            summary["timings_s"]["write"] = round(time.perf_counter() - t0, 4)
            summary["files"] = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
            atomic_write_text(stage / "summary.json", json.dumps(summary, indent=2) + "\n")
        return out

    def _maps(self, save_samples: bool) -> list[tuple[str, np.ndarray, Cell | Crystal]]:
        """(file name, grid, cell) of every map :meth:`write` writes, in order."""
        crystal = self.crystal()
        maps = [("density.ccp4", self.mean, self.cell), ("density_std.ccp4", self.std, self.cell),
                ("density.cube", self.mean, crystal), ("CHGCAR", self.mean, crystal),
                ("density.npy", self.mean, self.cell), ("density_std.npy", self.std, self.cell)]
        for name, grid in (("symmetrised", self.symmetrised), ("modified", self.modified),
                           ("flipped", self.flipped)):
            if grid is not None:
                maps += [(f"density_{name}.ccp4", grid, self.cell), (f"density_{name}.npy", grid, self.cell)]
        if save_samples and self.samples is not None:
            maps += [(f"samples/sample_{i:03d}.npy", s, self.cell) for i, s in enumerate(self.samples)]
        return maps

