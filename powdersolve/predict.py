"""Prediction: from a measured powder pattern to the electron density (CMED) of its unit cell.

:func:`predict` runs the whole chain on one pattern file (or an already read
:class:`~powdersolve.formats.Pattern`):

1. read the pattern; the wavelength comes from the file, else from ``PredictConfig.wavelength``;
2. preprocess (:mod:`powdersolve.preprocess`: low-angle cut, zero shift, K-alpha2 stripping,
   background); after stripping the pattern is at K-alpha1;
3. pick and fit peaks, convert them to wavelength-free (Q = 2 pi / d in 1/A, intensity / LP);
4. encode them on the model's input axis, masking Q beyond the measured range;
5. choose the unit cell: given, or indexed for the model's crystal system (M20 reported);
6. draw ``samples`` latent samples (sample 0 is the posterior mean, the rest random with a
   seeded generator), decode each to a grid in fractional coordinates, in bounded-memory chunks,
   and reduce them to a mean map and a per-voxel standard deviation (e/A^3); with the composition
   and the formula units per cell (given, or read from the posterior-mean map's peaks when they make
   it clear), each sample is first put on the absolute scale of the cell content
   (:mod:`powdersolve.absolute_scale`).

:meth:`Prediction.write` stores maps (CCP4, cube, CHGCAR, .npy), figures and ``summary.json``
in an output folder that appears atomically.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice

from powdersolve._callable import make_module_callable
from powdersolve.absolute_scale import STRETCH_BEYOND, absolute_scale, cell_atoms, model_band, read_formula_units
from powdersolve.composition import parse_composition
from powdersolve.density import MAX_GRID
from powdersolve.diffraction.peaks import PeakList, find_peaks, peaks_to_q_intensity
from powdersolve.diffraction.sticks import q_from_two_theta
from powdersolve.errors import InputError
from powdersolve.fileio import atomic_output_dir, atomic_path, atomic_write_text
from powdersolve.formats import Pattern, read_pattern, write_ccp4, write_chgcar, write_cube
from powdersolve.inputs import (
    ModelInput,
    amplitude_aux,
    composition_input,
    iter_sample_grids,
    reflection_table,
    xrd_input_from_sticks,
)
from powdersolve.model import ModelConfig
from powdersolve.modification import ModificationConfig, modify_density, modify_density_symmetric
from powdersolve.preprocess import PreprocessConfig, doublet_for, preprocess
from powdersolve.structures.crystal import Crystal
from powdersolve.weights import available_systems, load_model, shipped_weights, weights_checksum

SYSTEMS = ("cubic", "trigonal", "auto")
MIN_GRID = 8
MAX_SAMPLES = 1000
#: Voxels decoded at once (samples x grid^3); bounds the decoder's temporaries to ~100 MB.
CHUNK_VOXELS = 4_000_000
#: Largest distance (1/A) between a picked peak and a reflection of the cell for them to be matched.
PEAK_TOL_Q = 0.01
#: Relative / absolute (deg) tolerance for a cell to count as metrically cubic or hexagonal.
_CELL_TOL = 1e-3

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PredictConfig:
    """Settings of :func:`predict`.

    Attributes:
        samples: latent samples drawn (>= 1); sample 0 is the posterior mean.
        grid: grid points per cell axis (8-128).
        seed: seeds the latent samples.
        system: 'cubic', 'trigonal' or 'auto' (cubic when cubic indexing succeeds, else trigonal;
            with a given cell, the cell's metric decides). Ignored in favour of the model's own
            system when ``weights`` is given and ``system`` is 'auto'.
        background: remove the background (SNIP) before peak picking.
        strip_kalpha2: Rachinger K-alpha2 stripping (skipped, and logged, for a non-K-alpha wavelength).
        min_two_theta: drop points below this 2-theta (deg); None keeps all.
        zero_shift: instrument zero shift (deg) subtracted from 2-theta.
        composition: formula ('CaF2'), element list ('Ca,F') or None.
        cell: (a, b, c, alpha, beta, gamma) in Angstrom / degrees, or None to index the pattern.
        wavelength: Angstrom; used when the file does not state one (the file's value wins otherwise).
        weights: a .safetensors model; None uses the shipped model of the system.
        format: pattern file format (see :data:`powdersolve.formats.READERS`); None guesses.
        keep_samples: keep every sample grid in the result (memory: samples x grid^3 float32).
        symmetrise: also average the mean map over the most symmetric space group it plausibly obeys,
            found in the map itself (cubic and hexagonal cells; see :mod:`powdersolve.solve.mapsymmetry`).
        modify: also density-modify the mean map: the measured peaks' magnitudes with the map's phases,
            then error-reduction cycles (:mod:`powdersolve.modification`); None skips it.
        formula_units: formula units of ``composition`` per cell (Z), which puts the magnitudes of
            ``modify`` on the Wilson scale; None scales them to the map instead.
        absolute_scale: with a composition with ratios, put every sample on the absolute scale of the
            cell content (:mod:`powdersolve.absolute_scale`: mean F(000)/V, variance shrunk to at most the
            atoms', or set to it where the sample's own mean is far off). Without ``formula_units`` Z is
            read from the posterior-mean map's peaks, and used only when it is clear
            (:func:`powdersolve.absolute_scale.read_formula_units`); otherwise, and without a composition
            with ratios, the network's own scale is kept (and logged).
    """

    samples: int = 20
    grid: int = 50
    seed: int = 0
    system: str = "auto"
    background: bool = True
    strip_kalpha2: bool = True
    min_two_theta: float | None = 5.0
    zero_shift: float = 0.0
    composition: str | None = None
    cell: tuple[float, float, float, float, float, float] | None = None
    wavelength: float | None = None
    weights: Path | None = None
    format: str | None = None
    keep_samples: bool = False
    symmetrise: bool = False
    modify: ModificationConfig | None = None
    formula_units: int | None = None
    absolute_scale: bool = True

    def __post_init__(self) -> None:
        if self.formula_units is not None and self.formula_units < 1:
            raise InputError(f"--formula-units {self.formula_units}: give a whole number >= 1")
        if (self.modify is not None and self.modify.histogram != "none"
                and (self.composition is None or self.formula_units is None
                     or not parse_composition(self.composition).ratios_known)):
            raise InputError("histogram matching (--modify-histogram) needs the atoms per cell: give --composition "
                             "with ratios and --formula-units")
        if not MIN_GRID <= int(self.grid) <= MAX_GRID:
            raise InputError(f"--grid {self.grid} is outside {MIN_GRID}-{MAX_GRID}; 50 matches the models")
        if not 1 <= int(self.samples) <= MAX_SAMPLES:
            raise InputError(f"--samples {self.samples} is outside 1-{MAX_SAMPLES}; the default is 20")
        if self.system not in SYSTEMS:
            raise InputError(f"--system '{self.system}' is not one of {', '.join(SYSTEMS)}")
        if self.cell is not None:
            check_cell(self.cell)


def parse_cell(text: str) -> tuple[float, float, float, float, float, float]:
    """Cell from "a b c alpha beta gamma" (Angstrom, degrees; spaces or commas) or "a" (cubic)."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"--cell '{text}' must be numbers: 'a b c alpha beta gamma' or 'a' for cubic") from None
    if len(values) == 1:
        values = values * 3 + [90.0, 90.0, 90.0]
    if len(values) != 6:
        raise InputError(f"--cell '{text}' has {len(values)} numbers; give 'a b c alpha beta gamma' or 'a'")
    return check_cell(tuple(values))  # type: ignore[arg-type]


def check_cell(cell: tuple[float, ...]) -> tuple[float, float, float, float, float, float]:
    """Validated (a, b, c, alpha, beta, gamma): edges 0.5-200 A, angles in (0, 180) deg, a real cell."""
    vals = tuple(float(v) for v in cell)
    if len(vals) != 6 or not all(np.isfinite(vals)):
        raise InputError(f"cell {cell} must be six finite numbers a b c alpha beta gamma")
    if not all(0.5 <= v <= 200 for v in vals[:3]):
        raise InputError(f"cell edges {vals[:3]} must lie in 0.5-200 A")
    if not all(0 < v < 180 for v in vals[3:]):
        raise InputError(f"cell angles {vals[3:]} must lie strictly between 0 and 180 deg")
    al, be, ga = np.radians(vals[3:])
    g = 1 - np.cos(al) ** 2 - np.cos(be) ** 2 - np.cos(ga) ** 2 + 2 * np.cos(al) * np.cos(be) * np.cos(ga)
    if g <= 1e-6:
        raise InputError(f"cell angles {vals[3:]} do not form a cell (zero or negative volume)")
    return vals  # type: ignore[return-value]


def cell_system(cell: tuple[float, ...]) -> str | None:
    """'cubic', 'trigonal' (hexagonal setting: a = b, 90, 90, 120) or None for any other metric."""
    a, b, c, al, be, ga = cell

    def same(x: float, y: float) -> bool:
        return abs(x - y) <= _CELL_TOL * max(x, y)

    right = all(abs(v - 90) < 0.01 for v in (al, be))
    if same(a, b) and same(b, c) and right and abs(ga - 90) < 0.01:
        return "cubic"
    if same(a, b) and right and abs(ga - 120) < 0.01:
        return "trigonal"
    return None


def lattice_matrix(cell: tuple[float, ...]) -> np.ndarray:
    """(3, 3) rows a, b, c in Angstrom, pymatgen's standard orientation (a along x for right angles)."""
    return np.asarray(Lattice.from_parameters(*cell).matrix, dtype=np.float64)


@dataclass
class Prediction:
    """The result of :func:`predict`.

    Attributes:
        mean: (N, N, N) float32 mean density over samples, e/A^3; voxel [i, j, k] at (i/N, j/N, k/N).
        std: (N, N, N) float32 per-voxel standard deviation over samples (>= 0), e/A^3.
        samples: (S, N, N, N) float32 sample grids, or None when not kept.
        cell: (a, b, c, alpha, beta, gamma) Angstrom / degrees.
        lattice: (3, 3) rows a, b, c in Angstrom.
        cell_source: 'given' or 'indexed'.
        indexing: indexing details (system, centring, M20, lines indexed) or None.
        system: crystal system of the model used.
        model_input: (C, bins) float32 array fed to the model.
        composition: text, encoding used, why, and the model's training encoding.
        processing: human-readable log of every step.
        wavelength: dict with 'value' (A), 'source' ('file' or 'argument') and 'effective' (A, after stripping).
        q_coverage: measured Q range vs the model's Q axis (1/A).
        model: weights path, SHA-256, architecture and training settings.
        timings: seconds per step.
        source: the pattern file.
        raw: (2-theta deg, counts) as read; processed: after preprocessing.
        peaks: the picked peaks.
    """

    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray | None
    cell: tuple[float, float, float, float, float, float]
    lattice: np.ndarray
    cell_source: str
    indexing: dict | None
    system: str
    model_input: np.ndarray
    composition: dict
    processing: list[str]
    wavelength: dict
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
            "wavelength": self.wavelength,
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
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def write(self, out_dir: str | os.PathLike, overwrite: bool = False, save_samples: bool = False,
              progress: Progress | None = None) -> Path:
        """Write every output into ``out_dir``, which appears (or is replaced) only when all succeeded.

        Files: density.ccp4 / .cube / CHGCAR / .npy (mean), density_std.ccp4 / .npy, samples/ (when
        ``save_samples`` and samples were kept), density_symmetrised.ccp4 / .npy (when symmetrised),
        density_modified.ccp4 / .npy (when density-modified), slices.png, isosurface.png, pattern.png, summary.json.
        """
        from powdersolve.plots import plot_isosurface, plot_slices
        from powdersolve.preprocess import plot_processing

        say = progress or (lambda _msg: None)
        if save_samples and self.samples is None:
            raise InputError("samples were not kept; predict with keep_samples=True (--save-samples)")
        out = Path(out_dir)
        t0 = time.perf_counter()
        with atomic_output_dir(out, overwrite=overwrite) as stage:
            say(f"writing maps to {out}")
            crystal = self.crystal()
            write_ccp4(stage / "density.ccp4", self.mean, self.cell)
            write_ccp4(stage / "density_std.ccp4", self.std, self.cell)
            write_cube(stage / "density.cube", self.mean, crystal, comment="(predicted mean)")
            write_chgcar(stage / "CHGCAR", self.mean, crystal)
            save_npy(stage / "density.npy", self.mean)
            save_npy(stage / "density_std.npy", self.std)
            if self.symmetrised is not None:
                write_ccp4(stage / "density_symmetrised.ccp4", self.symmetrised, self.cell)
                save_npy(stage / "density_symmetrised.npy", self.symmetrised)
            if self.modified is not None:
                write_ccp4(stage / "density_modified.ccp4", self.modified, self.cell)
                save_npy(stage / "density_modified.npy", self.modified)
            if save_samples and self.samples is not None:
                (stage / "samples").mkdir()
                for i, s in enumerate(self.samples):
                    save_npy(stage / "samples" / f"sample_{i:03d}.npy", s)
            say("drawing figures")
            name = self.composition.get("text") or Path(self.source).name
            plot_slices(self.mean, stage / "slices.png", title=f"{name}: predicted CMED (e/A^3)")
            plot_isosurface(self.mean, self.lattice, stage / "isosurface.png", title=f"{name}: predicted CMED")
            if self.model.get("xrd_input") == "q":
                model_view: np.ndarray | tuple[np.ndarray, np.ndarray] = self.model_input
            else:  # the paper's 2-theta channels: show the peaks on Q instead
                q, inten = peaks_to_q_intensity(self.peaks, self.wavelength["effective"])
                model_view = (q, np.sqrt(inten / max(inten.max(initial=0), 1e-300)))
            plot_processing(self.raw, self.processed, model_view, stage / "pattern.png",
                            q_max=float(self.model.get("q_max", 8.0)))
            summary = self.summary()
            summary["timings_s"]["write"] = round(time.perf_counter() - t0, 4)
            summary["files"] = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
            atomic_write_text(stage / "summary.json", json.dumps(summary, indent=2) + "\n")
        return out


def save_npy(path: Path, grid: np.ndarray) -> None:
    """Write a float32 .npy atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(grid, dtype=np.float32))


# --------------------------------------------------------------------------------------- the pipeline


def _wavelength(pattern: Pattern, given: float | None) -> tuple[float, str]:
    if pattern.wavelength is not None:
        return float(pattern.wavelength), "file"
    if given is not None:
        return float(given), "argument"
    raise InputError(f"{pattern.source}: the file does not state its wavelength; pass --wavelength")


def choose_composition(cfg_model: ModelConfig, text: str | None) -> tuple[np.ndarray, dict]:
    """Composition vector (119,) in the encoding matching what the user gave, and a dict saying which and why.

    A full formula uses the model's training encoding ('fractions'); elements only use 'presence';
    nothing uses 'none'. Any mismatch with the training encoding is stated in the reason.
    """
    trained = cfg_model.composition
    if not cfg_model.use_formula or trained == "none":
        enc, why = "none", "the model has no composition input"
        amounts: dict = {}
    elif text is None:
        enc, why, amounts = "none", "no composition given", {}
    else:
        parsed = parse_composition(text)
        amounts = parsed.amounts
        if parsed.ratios_known and trained == "fractions":
            enc, why = "fractions", "full formula given"
        elif parsed.ratios_known:
            enc, why = "presence", f"full formula given; the model was trained with '{trained}' (elements only)"
        else:
            enc, why = "presence", "elements only given (no ratios)"
    if enc != trained and trained != "drop":
        why += f"; note the model was trained with '{trained}' composition vectors"
    vec = composition_input(cfg_model, amounts, enc)
    info = {"text": text, "elements": list(amounts), "encoding": enc, "reason": why, "model_trained_with": trained}
    return vec, info


def _index(peaks: PeakList, wavelength: float, system: str, source: str):
    from powdersolve.indexing import best_cell

    systems = ("cubic",) if system == "cubic" else ("hexagonal",)
    return best_cell(two_theta=peaks.two_theta, wavelength=wavelength, systems=systems, source=source)


def _resolve_model(config: PredictConfig, peaks: PeakList, wavelength: float, source: str
                   ) -> tuple[str, Path, object]:
    """(system, weights path, CellSolution or None) from the config, the given cell or indexing."""
    if config.weights is not None:
        path = Path(config.weights)
        return config.system, path, None
    system, sol = config.system, None
    if system == "auto":
        have = available_systems()
        if not have:
            raise InputError("no shipped model is installed; pass --weights")
        if config.cell is not None:
            system = cell_system(config.cell) or ""
            if system not in have:
                raise InputError(f"--cell {config.cell} is not a {' or '.join(have)} cell; give a matching cell "
                                 "or --system")
        else:
            system = ""
            for cand in [s for s in ("cubic", "trigonal") if s in have]:
                try:
                    sol = _index(peaks, wavelength, cand, source)
                    system = cand
                    break
                except InputError:
                    continue
            if not system:
                raise InputError(f"{source}: neither a cubic nor a trigonal cell indexes the peaks; give --cell "
                                 "and --system")
    return system, shipped_weights(system), sol


def _mean_std(chunks, keep: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Mean and std over sample grids streamed in chunks (Chan's pairwise update), keeping them if asked."""
    mean = m2 = None
    n = 0
    kept = [] if keep else None
    for g in chunks:
        g = g.astype(np.float64)
        b = g.shape[0]
        bm, bm2 = g.mean(0), ((g - g.mean(0)) ** 2).sum(0)
        if mean is None:
            mean, m2 = np.zeros_like(bm), np.zeros_like(bm)
        delta = bm - mean
        mean += delta * (b / (n + b))
        m2 += bm2 + delta**2 * (n * b / (n + b))
        n += b
        if kept is not None:
            kept.append(g.astype(np.float32))
    std = np.sqrt(np.maximum(m2 / n, 0.0))
    return mean.astype(np.float32), std.astype(np.float32), (np.concatenate(kept) if kept is not None else None)


def predict(pattern: str | os.PathLike | Pattern, config: PredictConfig = PredictConfig(),
            progress: Progress | None = None) -> Prediction:
    """Predict the electron density of the cell that diffracts ``pattern``.

    Args:
        pattern: a pattern file (any format :func:`powdersolve.formats.read_pattern` reads) or a Pattern.
        config: the settings; see :class:`PredictConfig`.
        progress: called with one-line messages for steps slower than about a second (e.g. click.echo to stderr).

    Returns:
        A :class:`Prediction` (maps in e/A^3 on fractional coordinates, cell in Angstrom/degrees).

    Raises:
        InputError: unreadable pattern, missing wavelength, no peaks, no cell (not given, indexing failed),
            bad weights or composition.
    """
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = now - t
        t = now

    pat = pattern if isinstance(pattern, Pattern) else read_pattern(pattern, config.format)
    source = str(pat.source)
    lam, lam_source = _wavelength(pat, config.wavelength)
    lap("read")

    # ---- preprocessing
    strip = config.strip_kalpha2
    log: list[str] = []
    if strip:
        try:
            doublet_for(lam)
        except InputError:
            strip = False
            log.append(f"K-alpha2 stripping skipped: {lam} A is no K-alpha line (monochromatic beam assumed)")
    pcfg = PreprocessConfig(min_two_theta=config.min_two_theta, zero_shift=config.zero_shift, strip_kalpha2=strip,
                            background="snip" if config.background else None)
    tt, counts, steps = preprocess(pat.two_theta, pat.counts, lam, pcfg)
    log = steps + log
    lam_eff = doublet_for(lam)[0] if strip else lam
    peaks = find_peaks(tt, counts)
    if len(peaks) < 2:
        raise InputError(f"{source}: only {len(peaks)} diffraction peak(s) found; is this a crystalline powder "
                         "pattern with the right columns?")
    log.append(f"{len(peaks)} peaks picked and fitted (pseudo-Voigt), intensities divided by Lorentz-polarisation")
    q_peaks, i_peaks = peaks_to_q_intensity(peaks, lam_eff)
    lap("preprocess")

    # ---- model and cell
    system, wpath, sol = _resolve_model(config, peaks, lam_eff, source)
    say(f"loading model {wpath}")
    model, side = load_model(wpath)
    mcfg = model.cfg
    if config.weights is not None:
        if config.system not in ("auto", mcfg.system):
            raise InputError(f"{wpath}: the model was trained on {mcfg.system} crystals, not {config.system}; "
                             "drop --system or give matching weights")
        system = mcfg.system
    lap("load_model")
    if config.cell is not None:
        cell, cell_source, indexing = tuple(config.cell), "given", None
        metric = cell_system(cell)
        if metric != system:
            raise InputError(f"--cell {' '.join(f'{v:g}' for v in cell)} is not a {system} cell "
                             f"({'a = b, gamma = 120' if system == 'trigonal' else 'a = b = c, 90 deg'}) "
                             "as the model needs; check the cell or --system")
    else:
        say("indexing the pattern")
        sol = sol or _index(peaks, lam_eff, system, source)
        cell = (sol.a, sol.b, sol.c, sol.alpha, sol.beta, sol.gamma)
        cell_source = "indexed"
        indexing = {"system": sol.system, "centring": sol.centring, "m20": float(sol.m20), "f_n": float(sol.f_n),
                    "n_indexed": int(sol.n_indexed), "n_lines": int(sol.n_lines), "zero_shift_deg": sol.zero_shift}
        log.append(f"indexed: {sol.system} {sol.centring} a={sol.a:.4f} c={sol.c:.4f} A, M20={sol.m20:.1f}")
        lap("index")
    lattice = lattice_matrix(cell)

    # ---- model input
    q_lo = float(q_from_two_theta(tt.min(), lam_eff))
    q_hi = float(q_from_two_theta(tt.max(), lam_eff))
    keep = q_peaks <= q_hi
    xrd = xrd_input_from_sticks(mcfg, q_peaks[keep], i_peaks[keep], q_limit=q_hi)
    comp, comp_info = choose_composition(mcfg, config.composition)
    model_q_max = float(mcfg.q_max) if mcfg.xrd_input == "q" else float(4 * np.pi / min(mcfg.wavelengths))
    coverage = {"measured_q_min": q_lo, "measured_q_max": q_hi, "model_q_max": model_q_max,
                "fraction_of_model_axis": min(q_hi, model_q_max) / model_q_max,
                "d_min_A": 2 * np.pi / q_hi, "note": "model input masked above measured_q_max"}
    log.append(f"model input: Q {q_lo:.2f}-{q_hi:.2f} 1/A measured of the model's 0-{model_q_max:.2f} 1/A "
               f"({100 * coverage['fraction_of_model_axis']:.0f}%), rest masked")
    lap("encode")

    aux = None
    if mcfg.amplitudes:
        table = reflection_table(lattice, mcfg.hkl_box, mcfg.q_max)
        aux = amplitude_aux(table, q_peaks[keep], i_peaks[keep], q_hi, mcfg.b_iso, abs(np.linalg.det(lattice)),
                            tol=PEAK_TOL_Q)
        log.append(f"indexed amplitudes: {int((aux['amp'] > 0).sum())} of {aux['amp'].size} decoder reflections "
                   f"observed (peaks matched within {PEAK_TOL_Q} 1/A, intensity shared among overlaps)")

    # ---- sampling
    say(f"drawing {config.samples} samples on a {config.grid}^3 grid")
    chunks = iter_sample_grids(model, ModelInput(xrd, comp, aux), config.samples, config.grid, config.seed,
                               CHUNK_VOXELS)
    formula, z_cell, z_source, z_note = config.composition, config.formula_units, "given", {}
    if config.absolute_scale and z_cell is None and cell_atoms(formula, 1) is not None:
        say("reading Z from the posterior-mean map")
        head = next(chunks)  # sample 0 is the posterior mean; the chunk is scaled with the rest below
        chunks = itertools.chain([head], chunks)
        formula, z_cell, z_note = _formula_units_of_map(head[0], lattice, formula, mcfg, log)
        z_source = "read from the map's peaks"
    atoms = cell_atoms(formula, z_cell)
    if config.absolute_scale and atoms is not None:
        band = model_band(mcfg)
        chunks = (absolute_scale(g, lattice, *atoms, mcfg.b_iso, band) for g in chunks)
        scale = {"kind": "absolute", "formula": formula, "formula_units_per_cell": z_cell,
                 "formula_units_source": z_source, **z_note,
                 "note": "each sample's mean set to F(000)/V and any variance above the one the cell's atoms imply "
                         f"shrunk onto it (set onto it where the sample's own mean was off by over "
                         f"{STRETCH_BEYOND:g}x)"}
        log.append(f"absolute scale: every sample put on the mean, and at most the variance, of "
                   f"{formula} x {z_cell} per cell")
    else:
        scale = {"kind": "network", **z_note,
                 "note": "the network's own electron scale (give --composition with ratios, and --formula-units "
                         "where the map does not make Z clear, for the absolute scale)"}
    mean, std, samples = _mean_std(chunks, config.keep_samples)
    lap("sample")
    symmetrised, symmetry = (_symmetrise(mean, lattice, log) if config.symmetrise else (None, None))
    if config.symmetrise:
        lap("symmetrise")
    model_info = {"weights": str(wpath), "sha256": side.get("sha256") or weights_checksum(wpath),
                  "arch": mcfg.arch, "xrd_input": mcfg.xrd_input, "q_max": mcfg.q_max, "xrd_bins": mcfg.xrd_bins,
                  "composition": mcfg.composition, "b_iso_A2": mcfg.b_iso, "system": mcfg.system,
                  "metadata": side.get("metadata", {})}
    pred = Prediction(
        mean=mean, std=std, samples=samples, cell=cell, lattice=lattice, cell_source=cell_source, indexing=indexing,
        system=system, model_input=xrd, composition=comp_info, processing=log,
        wavelength={"value": lam, "source": lam_source, "effective": lam_eff}, q_coverage=coverage,
        model=model_info, timings=timings, source=source, raw=(pat.two_theta, pat.counts), processed=(tt, counts),
        peaks=peaks, n_samples=int(config.samples), seed=int(config.seed), symmetrised=symmetrised,
        symmetry=symmetry, scale=scale,
    )
    if config.modify is not None:
        modify_prediction(pred, config.modify, config.composition, config.formula_units)
    return pred


def _formula_units_of_map(mean_map: np.ndarray, lattice: np.ndarray, formula: str, mcfg: ModelConfig,
                          log: list[str]) -> tuple[str, int | None, dict]:
    """(reduced formula, Z or None, summary fields) read from the posterior-mean map; the step is logged."""
    reduced, z, candidates, verdict = read_formula_units(mean_map, lattice, formula, mcfg.b_iso, model_band(mcfg))
    note = {"formula_units_candidates": [{"Z": zc, "cost": round(c, 4)} for zc, c in candidates]}
    if verdict == "clear":
        log.append(f"Z = {z} x {reduced} per cell read from the posterior-mean map's peaks "
                   f"(electrons misplaced {candidates[0][1]:.2f} of the formula's)")
    elif verdict == "overfills":
        log.append(f"Z = {candidates[0][0]} x {reduced} read from the map's peaks cannot fit the cell; not used")
    else:
        log.append("Z not clear from the map's peaks (" + ", ".join(f"Z={zc}: {c:.2f}" for zc, c in candidates)
                   + "); the network's electron scale kept")
    return reduced, z, note


def modify_prediction(pred: Prediction, cfg: ModificationConfig, composition: str | None = None,
                      formula_units: int | None = None) -> Prediction:
    """Density-modify ``pred``'s mean map with its measured peaks (in place; ``pred`` is returned).

    Sets ``pred.modified`` (N, N, N) e/A^3 and ``pred.modification`` (how), logs the step and times it;
    the magnitudes are damped to the model's B. ``composition`` and ``formula_units`` put them on the
    Wilson scale (see :class:`PredictConfig`). Raises :class:`~powdersolve.errors.ModificationError`,
    leaving ``pred`` as it was, when no measured peak falls on a reflection of the cell.
    """
    t0 = time.perf_counter()
    lam = pred.wavelength["effective"]
    q_peaks, i_peaks = peaks_to_q_intensity(pred.peaks, lam)
    q_hi = float(q_from_two_theta(pred.processed[0].max(), lam))
    keep = q_peaks <= q_hi
    log: list[str] = []
    modified, modification = _modify(pred.mean, pred.lattice, q_peaks[keep], i_peaks[keep], q_hi, composition,
                                     formula_units, replace(cfg, b_iso=pred.model["b_iso_A2"], tol=PEAK_TOL_Q), log)
    pred.modified, pred.modification = modified, modification
    pred.processing.extend(log)
    pred.timings["modify"] = time.perf_counter() - t0
    return pred


def _modify(mean: np.ndarray, lattice: np.ndarray, peak_q: np.ndarray, peak_i: np.ndarray, q_limit: float,
            composition: str | None, formula_units: int | None, cfg: ModificationConfig,
            log: list[str]) -> tuple[np.ndarray, dict]:
    """The mean map density-modified with the measured peaks, and how.

    With a formula and Z the magnitudes get the Wilson scale and F(000) the cell's electron count.
    Otherwise they are scaled to the map's own coefficients (``scale='model'``) and F(000) is the
    map's electron count: the network's electron count is off by 10-30% on generated crystals, too
    far to guess Z from.
    """
    volume = abs(float(np.linalg.det(lattice)))
    electrons_map = float(mean.astype(np.float64).mean() * volume)
    atoms = cell_atoms(composition, formula_units)
    info: dict = {"cycles": cfg.cycles, "b_work_A2": cfg.b_work, "final": cfg.final, "peaks": int(peak_q.size),
                  "symmetry_constrained": cfg.symmetry, "histogram_matching": cfg.histogram}
    if atoms is not None:
        numbers, occupancy = atoms
        electrons = None
        info.update(scale="wilson", formula_units_per_cell=formula_units)
    else:
        cfg = replace(cfg, scale="model")
        numbers, occupancy, electrons = None, None, electrons_map
        info.update(scale="model", note="no formula and Z: magnitudes scaled to the map, F(000) from the map")
    how = f"density modification: {peak_q.size} peaks' magnitudes with the map's phases, {cfg.cycles} cycles, " \
          f"{info['scale']} scale"
    if not cfg.symmetry:
        grids = modify_density(mean[None], lattice, peak_q, peak_i, q_limit, numbers, occupancy, cfg, electrons)
        log.append(how)
        return grids[0].astype(np.float32), info
    grids, (group,) = modify_density_symmetric(mean[None], lattice, peak_q, peak_i, q_limit, numbers, occupancy,
                                               cfg, electrons)
    if group is None:
        info["symmetry"] = {"group": None, "reason": "no plausible space group in the modified map (cc_min < 0.5)"}
    else:
        info["symmetry"] = {"group": group.symbol, "number": group.number, "origin_shift_frac": list(group.origin),
                            "cc_min": group.cc_min, "cc_mean": group.cc_mean,
                            "note": ("the modified map lies at density.*'s origin; the group's standard origin is "
                                     "at origin_shift_frac" if cfg.origin == "map" else
                                     "the modified map lies at this group's standard origin, shifted by "
                                     "origin_shift_frac from density.*")}
    log.append(f"{how}, then {cfg.cycles} more averaged over "
               f"{'no group (none plausible)' if group is None else group.symbol}")
    return grids[0].astype(np.float32), info


def _symmetrise(mean: np.ndarray, lattice: np.ndarray, log: list[str]) -> tuple[np.ndarray | None, dict]:
    """The mean map averaged over the first plausible space group it shows, and what was found."""
    from powdersolve.solve.atoms import lattice_family
    from powdersolve.solve.mapsymmetry import FAMILY_GROUPS, plausible_groups_of, symmetrise_map

    if lattice_family(lattice) not in FAMILY_GROUPS:
        log.append("symmetrise: the cell has neither a cubic nor a hexagonal metric; no space-group search")
        return None, {"group": None, "reason": "cell metric is neither cubic nor hexagonal"}
    groups = plausible_groups_of(mean, lattice)
    if not groups:
        log.append("symmetrise: the map obeys no space group of its cell family well enough (cc_min < 0.5)")
        return None, {"group": None, "reason": "no plausible space group"}
    best = groups[0]
    log.append(f"symmetrise: mean map averaged over {best.symbol} (No. {best.number}; weakest operation "
               f"correlation {best.cc_min:.2f}), moved to that group's standard origin")
    info = {"group": best.symbol, "number": best.number, "origin_shift_frac": list(best.origin),
            "cc_min": best.cc_min, "cc_mean": best.cc_mean,
            "plausible": [{"group": g.symbol, "number": g.number, "cc_min": g.cc_min} for g in groups],
            "note": "averaged map is in the group's standard origin (fractional shift above from the mean map's)"}
    return symmetrise_map(mean, best.number, best.origin).astype(np.float32), info


make_module_callable(__name__, predict)
