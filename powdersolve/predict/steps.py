"""The steps of a prediction, each a function: read -> preprocess -> peaks -> cell -> input -> sample.

:func:`powdersolve.predict.predict` runs them in order; :mod:`powdersolve.solve` reuses them, so the
wavelength, the K-alpha2 decision and the model input are decided in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from powdersolve.cell import Cell
from powdersolve.diffraction.known_phases import KnownLines, standards_hint, standards_present
from powdersolve.diffraction.peaks import MERGE_TOL_Q, PeakList, find_peaks, peaks_to_q_intensity
from powdersolve.diffraction.sticks import q_from_two_theta
from powdersolve.errors import InputError
from powdersolve.formats import Pattern, read_pattern
from powdersolve.indexing import M20_THRESHOLD, CellSolution, IndexConfig, index_counts
from powdersolve.inputs import ModelInput, choose_composition, pattern_input
from powdersolve.maps.peak_sharing import MeasuredPeaks
from powdersolve.model import ModelConfig
from powdersolve.predict.config import PredictConfig
from powdersolve.predict.result import Wavelength
from powdersolve.preprocess import PreprocessConfig, doublet_for, preprocess
from powdersolve.structures.crystal import Crystal
from powdersolve.weights import available_systems, served_lattices, serving_model, shipped_weights


class NoModelError(InputError):
    """No shipped model serves the cell's crystal system (the network-free path may: ``powdersolve flip``).

    Attributes:
        indexed: the indexed cell that no model serves, when the cell was indexed (so it is not indexed again).
    """

    def __init__(self, message: str, indexed: CellSolution | None = None) -> None:
        super().__init__(message)
        self.indexed = indexed


#: Largest distance (1/A) between a picked peak and a reflection of the cell for them to be matched.
PEAK_TOL_Q = MERGE_TOL_Q


def picked_peaks(peaks: PeakList, two_theta: np.ndarray, wavelength: float) -> MeasuredPeaks:
    """The picked ``peaks`` within the measured range ``two_theta`` (deg) as Q (1/A) and |F|^2-like intensity
    (Lorentz-polarisation divided out) at ``wavelength`` (A), with the range's upper edge in Q."""
    q_max = float(q_from_two_theta(np.max(two_theta), wavelength))
    q, inten = peaks_to_q_intensity(peaks, wavelength)
    keep = q <= q_max
    return MeasuredPeaks(q[keep], inten[keep], q_max)


@dataclass(frozen=True)
class Processed:
    """A pattern after :func:`preprocess_pattern`.

    Attributes:
        two_theta, counts: (n,) degrees and processed intensities (range cut, K-alpha2 stripped, background off).
        wavelength: as read, and effective (K-alpha1 after stripping).
        peaks: the picked, fitted peaks (less those of known phases); log: what was done, one line each.
        excluded: (n,) bool, the points near lines of known phases, left out of the fits; None when none is given.
    """

    two_theta: np.ndarray
    counts: np.ndarray
    wavelength: Wavelength
    peaks: PeakList
    log: list[str]
    excluded: np.ndarray | None = None

    @property
    def q_max(self) -> float:
        """Largest measured Q (1/A) at the effective wavelength."""
        return float(q_from_two_theta(self.two_theta.max(), self.wavelength.effective))

    def peaks_q_intensity(self) -> tuple[np.ndarray, np.ndarray]:
        """The picked peaks within the measured range as (Q in 1/A, intensity / LP)."""
        picked = picked_peaks(self.peaks, self.two_theta, self.wavelength.effective)
        return picked.q, picked.intensity

    def measured_peaks(self) -> MeasuredPeaks:
        """The picked peaks within the measured range, and its upper edge."""
        return picked_peaks(self.peaks, self.two_theta, self.wavelength.effective)


def read(pattern: str | os.PathLike | Pattern, config: PredictConfig) -> tuple[Pattern, float, str]:
    """The pattern, its wavelength (A) and where that came from ('file' wins over 'argument')."""
    pat = pattern if isinstance(pattern, Pattern) else read_pattern(pattern, config.format)
    if pat.wavelength is not None:
        return pat, float(pat.wavelength), "file"
    if config.wavelength is not None:
        return pat, float(config.wavelength), "argument"
    raise InputError(f"{pat.source}: the file does not state its wavelength; pass --wavelength")


def preprocess_pattern(pat: Pattern, lam: float, lam_source: str, config: PredictConfig) -> Processed:
    """Preprocess (:mod:`powdersolve.preprocess`) and pick peaks; K-alpha2 is stripped only for a K-alpha line."""
    strip = config.strip_kalpha2
    notes: list[str] = []
    if strip:
        try:
            doublet_for(lam)
        except InputError:
            strip = False
            notes.append(f"K-alpha2 stripping skipped: {lam} A is no K-alpha line (monochromatic beam assumed)")
    pcfg = PreprocessConfig(min_two_theta=config.min_two_theta, zero_shift=config.zero_shift, strip_kalpha2=strip,
                            background="snip" if config.background else None)
    tt, counts, steps = preprocess(pat.two_theta, pat.counts, lam, pcfg)
    log = steps + notes
    wavelength = Wavelength(lam, lam_source, doublet_for(lam)[0] if strip else lam)
    peaks = find_peaks(tt, counts)
    excluded = None
    if config.known_phases and len(peaks):
        lines = KnownLines.of(config.known_phases, wavelength.effective, float(tt.max()), peaks)
        found = len(peaks)
        peaks = lines.without(peaks)
        fwhm = float(np.median(peaks.fwhm)) if len(peaks) else 0.1
        excluded = lines.region(tt, fwhm)
        log.append(f"{found - len(peaks)} peaks at lines of the known phases ({', '.join(lines.names)}) left out, "
                   f"and {int(excluded.sum())} points around their lines left out of the fits")
    elif len(peaks) and (present := standards_present(peaks, wavelength.effective, float(tt.max()))):
        log.append(standards_hint(present))
    if len(peaks) < 2:
        raise InputError(f"{pat.source}: only {len(peaks)} diffraction peak(s) found; is this a crystalline powder "
                         "pattern with the right columns?")
    log.append(f"{len(peaks)} peaks picked and fitted (pseudo-Voigt), intensities divided by Lorentz-polarisation")
    return Processed(tt, counts, wavelength, peaks, log, excluded)


#: Largest 2-theta zero shift (deg) fitted while indexing.
INDEX_ZERO_RANGE = 0.1


def index(pat: Pattern, wavelength: float, source: str, systems: tuple[str, ...] | None = None,
          known_phases: tuple[Crystal, ...] = ()) -> list[CellSolution]:
    """Cells of the raw pattern with M20 >= :data:`~powdersolve.indexing.M20_THRESHOLD`, best first.

    Peaks are picked on the pattern as read (:func:`powdersolve.indexing.pattern.pick_peaks`: K-alpha2
    partners dropped, positions referred to K-alpha1), because Rachinger stripping leaves residues that
    read as lines. ``systems`` None searches all seven crystal systems.
    """
    config = IndexConfig(zero_range=INDEX_ZERO_RANGE) if systems is None else \
        IndexConfig(systems=systems, zero_range=INDEX_ZERO_RANGE)
    picked, found = index_counts(pat.two_theta, pat.counts, wavelength, config, known_phases=known_phases)
    sols = [s for s in found if s.m20 >= M20_THRESHOLD]
    if not sols:
        where = "any crystal system" if systems is None else f"a {' or '.join(systems)} cell"
        hint = standards_hint(picked.standards)  # found while indexing; () when phases were named
        raise InputError(f"{source}: no cell of {where} indexes the {len(picked.peaks)} peaks with M20 >= "
                         f"{M20_THRESHOLD:g}; check the wavelength, or give --cell" + (f"; {hint}" if hint else ""))
    return sols


def _model_for_indexed(sols: list[CellSolution], have: list[str], source: str) -> tuple[str, CellSolution]:
    """(model system, cell) for the best indexed cell; a cell no shipped model serves is refused, never
    sent to another system's model."""
    top = sols[0]
    system = serving_model(top.system, have)
    if system is None:
        cell = " ".join(f"{v:.4f}" for v in top.cell)
        raise NoModelError(f"{source}: the pattern indexes as {top.system} {top.centring} ({cell}; M20 "
                         f"{top.m20:.1f}), and no shipped model serves {top.system} cells (shipped: "
                         f"{', '.join(have) or 'none'}); `powdersolve index` lists every candidate, "
                         "`powdersolve flip` phases the pattern without a network", indexed=top)
    return system, top


def resolve_model(config: PredictConfig, pat: Pattern, wavelength: float, source: str
                  ) -> tuple[str, Path, CellSolution | None]:
    """(system, weights path, indexed cell or None) from the config, the given cell or indexing."""
    if config.weights is not None:
        return config.system, Path(config.weights), None
    if config.system != "auto":
        return config.system, shipped_weights(config.system), None
    have = available_systems()
    if not have:
        raise InputError("no shipped model is installed; pass --weights")
    if config.cell is not None:
        family = Cell.of(config.cell).family
        system = serving_model(family, have)
        if system is None:
            cell_text = " ".join(f"{v:g}" for v in config.cell)
            raise NoModelError(f"--cell {cell_text} has a {family} metric, and no shipped model serves {family} "
                               f"cells (shipped: {', '.join(have)}); check the cell, or phase the pattern without "
                               "a network with `powdersolve flip`")
        return system, shipped_weights(system), None
    system, sol = _model_for_indexed(index(pat, wavelength, source, known_phases=config.known_phases), have, source)
    return system, shipped_weights(system), sol


def indexing_summary(sol: CellSolution) -> dict:
    """JSON-ready figures of an indexed cell (system, centring, M20, F_N, lines indexed, zero shift in deg)."""
    return {"system": sol.system, "centring": sol.centring, "m20": float(sol.m20), "f_n": float(sol.f_n),
            "n_indexed": int(sol.n_indexed), "n_lines": int(sol.n_lines), "zero_shift_deg": sol.zero_shift}


def choose_cell(config: PredictConfig, system: str, pat: Pattern, processed: Processed, source: str,
                sol: CellSolution | None) -> tuple[Cell, str, dict | None]:
    """(cell, 'given' or 'indexed', indexing details or None); a given cell must be of the model's system."""
    if config.cell is not None:
        cell = Cell.of(config.cell)
        if cell.family not in served_lattices(system):
            raise InputError(f"--cell {' '.join(f'{v:g}' for v in cell)} has a {cell.family} metric; the {system} "
                             f"model serves {' and '.join(served_lattices(system))} cells (conventional standard "
                             "setting); check the cell or --system")
        return cell, "given", None
    sol = sol or index(pat, processed.wavelength.value, source, served_lattices(system), config.known_phases)[0]
    indexing = indexing_summary(sol)
    processed.log.append(f"indexed: {sol.system} {sol.centring} a={sol.a:.4f} c={sol.c:.4f} A, M20={sol.m20:.1f}")
    if sol.system != system:
        processed.log.append(f"a {sol.system} {sol.centring} lattice goes to the {system} model, for want of a "
                             f"shipped {sol.system} model")
    return sol.cell, "indexed", indexing


def model_input(mcfg: ModelConfig, processed: Processed, cell: Cell, composition: str | None
                ) -> tuple[ModelInput, dict, dict]:
    """What the model is fed (:func:`powdersolve.inputs.pattern_input`), the composition choice and the Q coverage."""
    q_lo = float(q_from_two_theta(processed.two_theta.min(), processed.wavelength.effective))
    q_hi = processed.q_max
    q_peaks, i_peaks = processed.peaks_q_intensity()
    comp, comp_info = choose_composition(mcfg, composition)
    inputs = pattern_input(mcfg, q_peaks, i_peaks, q_hi, comp, cell.matrix if mcfg.amplitudes else None, PEAK_TOL_Q)
    model_q_max = float(mcfg.q_max) if mcfg.xrd_input == "q" else float(4 * np.pi / min(mcfg.wavelengths))
    coverage = {"measured_q_min": q_lo, "measured_q_max": q_hi, "model_q_max": model_q_max,
                "fraction_of_model_axis": min(q_hi, model_q_max) / model_q_max,
                "d_min_A": 2 * np.pi / q_hi, "note": "model input masked above measured_q_max"}
    processed.log.append(f"model input: Q {q_lo:.2f}-{q_hi:.2f} 1/A measured of the model's 0-{model_q_max:.2f} 1/A "
                         f"({100 * coverage['fraction_of_model_axis']:.0f}%), rest masked")
    if inputs.aux is not None:
        processed.log.append(f"indexed amplitudes: {int((inputs.aux['amp'] > 0).sum())} of {inputs.aux['amp'].size} "
                             f"decoder reflections observed (peaks matched within {PEAK_TOL_Q} 1/A, intensity shared "
                             "among overlaps)")
    return inputs, comp_info, coverage
