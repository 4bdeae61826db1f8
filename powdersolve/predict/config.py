"""Settings of a prediction: :class:`PredictConfig`, checked once at the boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from powdersolve.cell import Cell, Composition
from powdersolve.density import MAX_GRID
from powdersolve.errors import InputError
from powdersolve.maps.flipping import FlipConfig
from powdersolve.maps.modification import ModificationConfig
from powdersolve.structures.crystal import Crystal
from powdersolve.weights import SERVING_MODELS

#: Values of ``system``: 'auto' or a model's crystal system.
SYSTEMS = ("auto", *SERVING_MODELS)
MIN_GRID = 8
MAX_SAMPLES = 1000


@dataclass(frozen=True)
class PredictConfig:
    """Settings of :func:`predict`.

    Attributes:
        samples: latent samples drawn (>= 1); sample 0 is the posterior mean.
        grid: grid points per cell axis (8-128).
        seed: seeds the latent samples.
        system: the model's crystal system, or 'auto': the shipped model that serves the lattice
            (:func:`powdersolve.weights.serving_model`) of the given cell's metric, or of the best cell
            indexed from the pattern. Ignored in favour of the model's own system when ``weights`` is
            given and ``system`` is 'auto'.
        background: remove the background (SNIP) before peak picking.
        strip_kalpha2: Rachinger K-alpha2 stripping (skipped, and logged, for a non-K-alpha wavelength).
        min_two_theta: drop points below this 2-theta (deg); None keeps all.
        zero_shift: instrument zero shift (deg) subtracted from 2-theta.
        composition: formula ('CaF2'), element list ('Ca,F') or None.
        cell: the :class:`~powdersolve.cell.Cell` (six numbers a, b, c in Angstrom, alpha, beta, gamma in
            degrees are checked into one), or None to index the pattern.
        wavelength: Angstrom; used when the file does not state one (the file's value wins otherwise).
        weights: a .safetensors model; None uses the shipped model of the system.
        format: pattern file format (see :data:`powdersolve.formats.READERS`); None guesses.
        keep_samples: keep every sample grid in the result (memory: samples x grid^3 float32).
        symmetrise: also average the mean map over the most symmetric space group it plausibly obeys,
            found in the map itself (cubic and hexagonal cells; see :mod:`powdersolve.maps.symmetry`).
        modify: also density-modify the mean map: the measured peaks' magnitudes with the map's phases,
            then error-reduction cycles (:mod:`powdersolve.maps.modification`); None skips it.
        flip: also charge-flip the measured peaks' magnitudes from the mean map's phases
            (:mod:`powdersolve.maps.flipping`; on by default: 0.2-0.4 s for a 5-8 A cell, about 1.5 s where the
            cell needs the whole 50^3 grid); None skips it.
        formula_units: formula units of ``composition`` per cell (Z), which puts the magnitudes of
            ``modify`` on the Wilson scale; None scales them to the map instead.
        absolute_scale: with a composition with ratios, put every sample on the absolute scale of the
            cell content (:mod:`powdersolve.maps.scale`: mean F(000)/V, variance shrunk to at most the
            atoms', or set to it where the sample's own mean is far off). Without ``formula_units`` Z is
            read from the posterior-mean map's peaks, and used only when it is clear
            (:func:`powdersolve.maps.scale.read_formula_units`); otherwise, and without a composition
            with ratios, the network's own scale is kept (and logged).
        known_phases: known second phases in the sample (internal standards, impurities), as crystals
            (:func:`powdersolve.diffraction.known_phases.known_phase`): peaks at their lines are left out of
            indexing and the maps, and the points around them out of the fits.
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
    cell: Cell | tuple[float, float, float, float, float, float] | None = None
    wavelength: float | None = None
    weights: Path | None = None
    format: str | None = None
    keep_samples: bool = False
    symmetrise: bool = False
    modify: ModificationConfig | None = None
    flip: FlipConfig | None = field(default_factory=FlipConfig)
    formula_units: int | None = None
    absolute_scale: bool = True
    known_phases: tuple[Crystal, ...] = ()

    def __post_init__(self) -> None:
        if self.formula_units is not None and self.formula_units < 1:
            raise InputError(f"--formula-units {self.formula_units}: give a whole number >= 1")
        if (self.modify is not None and self.modify.histogram != "none"
                and (self.composition is None or self.formula_units is None
                     or not Composition.parse(self.composition).ratios_known)):
            raise InputError("histogram matching (--modify-histogram) needs the atoms per cell: give --composition "
                             "with ratios and --formula-units")
        if not MIN_GRID <= int(self.grid) <= MAX_GRID:
            raise InputError(f"--grid {self.grid} is outside {MIN_GRID}-{MAX_GRID}; 50 matches the models")
        if not 1 <= int(self.samples) <= MAX_SAMPLES:
            raise InputError(f"--samples {self.samples} is outside 1-{MAX_SAMPLES}; the default is 20")
        if self.system not in SYSTEMS:
            raise InputError(f"--system '{self.system}' is not one of {', '.join(SYSTEMS)}")
        if self.cell is not None:
            object.__setattr__(self, "cell", Cell.of(self.cell))
        if not all(isinstance(c, Crystal) for c in self.known_phases):
            raise InputError("known_phases: give crystals (powdersolve.diffraction.known_phases.known_phase)")
        object.__setattr__(self, "known_phases", tuple(self.known_phases))
