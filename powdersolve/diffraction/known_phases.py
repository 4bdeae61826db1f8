"""Lines of a known second phase in a pattern (an internal standard or an impurity the user names).

A laboratory sample often holds a phase whose structure is known: silicon or LaB6 mixed in as an internal
standard, or a starting material left over. Its lines are not the unknown's: indexing would have to explain
them, the maps would take them as reflections, and the fit would leave them as misfit. As Rietveld programs'
excluded regions do, the peaks at the known phase's line positions are dropped from the picked peaks and the
points around them from the profile the candidates are refined against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import spglib
from pymatgen.core import Lattice, Structure

from powdersolve.diffraction.peaks import PeakList
from powdersolve.diffraction.sticks import q_from_two_theta, sticks, to_two_theta
from powdersolve.errors import InputError
from powdersolve.structures.crystal import Crystal
from powdersolve.structures.io import load_crystal

#: Common internal standards by name: (spglib Hall number of the setting, lattice (A, deg), species, fractional
#: coordinates of the asymmetric unit). Cells at room temperature (Si: NIST SRM 640, Fd-3m origin choice 2;
#: LaB6: SRM 660; Al2O3: SRM 676 corundum, R-3c hexagonal axes; CeO2: SRM 674).
STANDARDS: dict[str, tuple[int, tuple[float, ...], list[str], list[list[float]]]] = {
    "Si": (526, (5.43119, 5.43119, 5.43119, 90, 90, 90), ["Si"], [[0.125, 0.125, 0.125]]),
    "LaB6": (517, (4.15689, 4.15689, 4.15689, 90, 90, 90), ["La", "B"], [[0, 0, 0], [0.1975, 0.5, 0.5]]),
    "Al2O3": (460, (4.75925, 4.75925, 12.99180, 90, 90, 120), ["Al", "O"], [[0, 0, 0.35216], [0.30624, 0, 0.25]]),
    "CeO2": (523, (5.41129, 5.41129, 5.41129, 90, 90, 90), ["Ce", "O"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    "ZnO": (480, (3.24982, 3.24982, 5.20661, 90, 90, 120), ["Zn", "O"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.3819]]),
}
#: Lines weaker than this fraction of the phase's strongest (LP included) are not left out: they do not show.
MIN_LINE = 0.01
#: A picked peak within this many of its FWHM of a known line is the known phase's.
PEAK_WIDTHS = 0.5
#: Profile points within this many median FWHM of a known line are left out of the fits.
REGION_WIDTHS = 1.5
#: Largest 2-theta zero shift (deg) between a pattern's peaks and a known phase's calculated lines; a
#: laboratory scan is often a few hundredths of a degree off, as much as half a peak width.
MAX_SHIFT = 0.1


def known_phase(spec: str) -> Crystal:
    """The crystal of a standard's name (:data:`STANDARDS`, case-insensitive) or of a structure file (CIF).

    Raises:
        InputError: neither a standard's name nor a readable structure file.
    """
    names = {name.lower(): name for name in STANDARDS}
    if spec.lower() in names:
        hall, cell, species, coords = STANDARDS[names[spec.lower()]]
        return _expanded(hall, cell, species, coords)
    if not Path(spec).is_file():
        raise InputError(f"known phase '{spec}' is neither a standard ({', '.join(STANDARDS)}) nor a structure file")
    return load_crystal(spec)


def _expanded(hall: int, cell: tuple[float, ...], species: list[str], coords: list[list[float]]) -> Crystal:
    """The full cell of an asymmetric unit under the operations of a setting (spglib's database: microseconds,
    where building pymatgen's space-group object takes a third of a second)."""
    ops = spglib.get_symmetry_from_database(hall)
    sites: list[tuple[str, np.ndarray]] = []
    for element, xyz in zip(species, coords, strict=True):
        images = np.mod(np.einsum("nij,j->ni", ops["rotations"], np.asarray(xyz)) + ops["translations"], 1.0)
        unique: list[np.ndarray] = []
        for x in images:
            if not any(np.allclose(np.abs(((x - u) + 0.5) % 1.0 - 0.5), 0.0, atol=1e-4) for u in unique):
                unique.append(x)
        sites += [(element, u) for u in unique]
    structure = Structure(Lattice.from_parameters(*cell), [s for s, _ in sites], [x for _, x in sites])
    return Crystal.from_structure(structure, int(spglib.get_spacegroup_type(hall).number))


@dataclass(frozen=True)
class KnownLines:
    """2-theta positions (deg) of the known phases' visible lines at one wavelength, and what is left out.

    Attributes:
        two_theta: (m,) line positions (deg), sorted.
        names: the phases' formulas, for messages.
    """

    two_theta: np.ndarray
    names: tuple[str, ...]

    @classmethod
    def of(cls, crystals: tuple[Crystal, ...], wavelength: float, two_theta_max: float,
           peaks: PeakList | None = None) -> KnownLines:
        """The lines of ``crystals`` up to ``two_theta_max`` (deg) at ``wavelength`` (A) with at least
        :data:`MIN_LINE` of their phase's strongest line's intensity (LP included); with ``peaks``, moved
        by the pattern's zero shift (:func:`zero_offset`, from each phase's lines of at least
        :data:`STRONG_LINE` of its strongest)."""
        lines = []
        q_max = float(q_from_two_theta(min(two_theta_max + 1.0, 179.0), wavelength))
        for crystal in crystals:
            tt, inten = to_two_theta(sticks(crystal, q_max=q_max), wavelength)
            if len(tt):
                shift = 0.0 if peaks is None else zero_offset(tt[inten >= STRONG_LINE * inten.max()], peaks)
                lines.append(tt[inten >= MIN_LINE * inten.max()] + shift)
        found = np.sort(np.concatenate(lines)) if lines else np.zeros(0)
        return cls(found, tuple(c.formula for c in crystals))

    def __len__(self) -> int:
        return len(self.two_theta)

    def peaks_of(self, peaks: PeakList) -> np.ndarray:
        """(n,) bool: picked peaks whose centre lies within :data:`PEAK_WIDTHS` of their FWHM of a known line."""
        return self._near(peaks.two_theta, PEAK_WIDTHS * np.asarray(peaks.fwhm, dtype=np.float64))

    def region(self, two_theta: np.ndarray, fwhm: float) -> np.ndarray:
        """(n,) bool: profile points (deg) within :data:`REGION_WIDTHS` x ``fwhm`` (deg) of a known line."""
        return self._near(two_theta, np.full(np.shape(two_theta), REGION_WIDTHS * fwhm))

    def without(self, peaks: PeakList) -> PeakList:
        """``peaks`` less those of the known phases."""
        keep = ~self.peaks_of(peaks)
        return PeakList(peaks.two_theta[keep], peaks.height[keep], peaks.integrated_intensity[keep],
                        peaks.fwhm[keep])

    def _near(self, two_theta: np.ndarray, half_width: np.ndarray) -> np.ndarray:
        tt = np.asarray(two_theta, dtype=np.float64)
        if not len(self.two_theta) or not tt.size:
            return np.zeros(tt.shape, dtype=bool)
        i = np.clip(np.searchsorted(self.two_theta, tt), 1, len(self.two_theta)) - 1
        nearest = np.minimum(np.abs(tt - self.two_theta[i]),
                             np.abs(tt - self.two_theta[np.minimum(i + 1, len(self.two_theta) - 1)]))
        return nearest <= half_width


#: A standard counts as present when each of its lines of at least this fraction of its strongest is a picked peak.
STRONG_LINE = 0.1
#: ... and it has at least this many such lines in the range (fewer coincide by chance too easily).
MIN_STRONG_LINES = 4
#: ... all but this many of them, when it has at least ``MIN_STRONG_LINES + 2``: a line of the standard
#: beside a stronger line of the sample is often not picked.
MAX_UNSEEN = 1


def zero_offset(lines: np.ndarray, peaks: PeakList) -> float:
    """The 2-theta offset (deg) of ``peaks`` from calculated ``lines`` (deg): the median, over the lines with a
    peak within :data:`MAX_SHIFT` plus half that peak's FWHM, of the nearest peak's position less the line's;
    0 when no line has one."""
    tt = np.asarray(peaks.two_theta, dtype=np.float64)
    lines = np.asarray(lines, dtype=np.float64)
    if not tt.size or not lines.size:
        return 0.0
    nearest = np.abs(tt[None, :] - lines[:, None]).argmin(axis=1)
    offset = tt[nearest] - lines
    close = np.abs(offset) <= MAX_SHIFT + PEAK_WIDTHS * np.asarray(peaks.fwhm, dtype=np.float64)[nearest]
    return float(np.clip(np.median(offset[close]), -MAX_SHIFT, MAX_SHIFT)) if close.any() else 0.0


def standards_present(peaks: PeakList, wavelength: float, two_theta_max: float) -> tuple[str, ...]:
    """The standards of :data:`STANDARDS` whose every strong line up to ``two_theta_max`` (deg) at
    ``wavelength`` (A), moved by the pattern's zero shift (:func:`zero_offset`), lies within half a FWHM of a
    picked peak (all but :data:`MAX_UNSEEN` of six or more), beside at least :data:`MIN_STRONG_LINES`
    peaks that are none of its lines: a sign that the sample holds one. Indexing lets a cell leave its lines
    unindexed; nothing is removed without the user's word (a sample's own lines can fall there)."""
    found: list[tuple[str, np.ndarray]] = []
    q_max = float(q_from_two_theta(min(two_theta_max, 179.0), wavelength))
    for name in STANDARDS:
        crystal = known_phase(name)
        tt, inten = to_two_theta(sticks(crystal, q_max=q_max), wavelength)
        strong = tt[inten >= STRONG_LINE * inten.max()] if len(tt) else tt
        if len(strong) < MIN_STRONG_LINES or not len(peaks):
            continue
        shift = zero_offset(strong, peaks)
        at_lines = KnownLines(np.sort(tt[inten >= MIN_LINE * inten.max()]) + shift, (crystal.formula,)).peaks_of(peaks)
        others = int((~at_lines).sum())
        half = PEAK_WIDTHS * float(np.median(peaks.fwhm))
        each_seen = np.abs(np.asarray(peaks.two_theta)[:, None] - (strong + shift)[None, :]).min(axis=0) <= half
        # A pattern all of whose peaks are the standard's is that compound, not a mixture.
        unseen = MAX_UNSEEN if len(strong) >= MIN_STRONG_LINES + 2 else 0
        if others >= MIN_STRONG_LINES and (~each_seen).sum() <= unseen:
            found.append((name, at_lines))
    # Two standards that explain every peak between them: one is the sample (the stronger), not a standard.
    inten = np.asarray(peaks.integrated_intensity, dtype=np.float64)
    sample = {a if inten[at_a].sum() >= inten[at_b].sum() else b
              for a, at_a in found for b, at_b in found if a != b and (at_a | at_b).all()}
    return tuple(name for name, _ in found if name not in sample)


def standards_hint(present: tuple[str, ...]) -> str:
    """One sentence naming the standards ``present`` (:func:`standards_present`) and the option, or '' for none."""
    if not present:
        return ""
    names = " or ".join(present)
    return (f"the strong lines of {names} are among the peaks: if the sample holds it (an internal standard or "
            f"impurity), name it with --known-phase {present[0]}")
