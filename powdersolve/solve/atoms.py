"""From a CMED density grid (+ cell + composition) to atoms: species, Z and symmetry.

The map's peaks and the electrons in each come from :mod:`powdersolve.maps.peaks` (with the lattice
centring the map obeys, :mod:`powdersolve.maps.centring`); the number of formula units Z and the
species from :mod:`powdersolve.maps.formula_units` (or, for a map averaged over a space group, whole
orbits from :mod:`powdersolve.solve.wyckoff`). Here they become a structure: space group from spglib
(pymatgen SpacegroupAnalyzer) and the symmetrised conventional cell, which snaps atoms onto their
special positions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Lattice, Structure
from pymatgen.core.periodic_table import Element
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from powdersolve.cell import FAMILY_SYSTEMS, Composition, metric_family
from powdersolve.errors import InputError
from powdersolve.maps.formula_units import MIN_VOLUME_PER_ATOM, assign_species, ranked_formula_units
from powdersolve.maps.peaks import map_peaks
from powdersolve.solve.wyckoff import orbit_choices, peak_orbits

#: Elements considered when no composition is given: Z 1-83 plus Th and U, without noble gases and
#: the radioactive Tc and Pm, which almost never appear in solved inorganic powders.
COMMON_Z = np.array([z for z in range(1, 84) if z not in (2, 10, 18, 36, 54, 43, 61)] + [90, 92])


@dataclass(frozen=True)
class PeakTable:
    """Density maxima after merging, in the input cell.

    Attributes:
        frac: (n, 3) fractional positions in [0, 1).
        height: (n,) density at the peak (e/A^3).
        electrons: (n,) electrons integrated over the peak's basin.
        species: (n,) element symbol assigned to each peak, '' for a dropped peak.
    """

    frac: np.ndarray
    height: np.ndarray
    electrons: np.ndarray
    species: np.ndarray

    def __len__(self) -> int:
        return len(self.height)


@dataclass(frozen=True)
class AtomsResult:
    """Atoms read from a density map.

    Attributes:
        structure: symmetrised conventional cell (pymatgen), atoms on special positions.
        spacegroup: international space-group number found by spglib (1 when detection failed).
        spacegroup_symbol: Hermann-Mauguin symbol.
        z_formula_units: formula units in ``structure`` (per reduced formula of the composition used).
        peaks: the peak table in the input cell.
        total_electrons: integrated density of the input cell (electrons).
        inferred_species_note: how species were chosen (empty when the full composition fixed them).
    """

    structure: Structure
    spacegroup: int
    spacegroup_symbol: str
    z_formula_units: int
    peaks: PeakTable
    total_electrons: float
    inferred_species_note: str = ""
    notes: list[str] = field(default_factory=list)


def _nearest_z(electrons: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    return allowed[np.argmin(np.abs(electrons[:, None] - allowed[None, :]), axis=1)]


_ESCALATION = (1.0, 1.5, 2.0, 3.0)


# Tried after the raised ones: atoms read as whole orbits are symmetric to ~0.01 A, and a coarse
# tolerance can take a pseudo-symmetric structure (distorted rock salt) to a group of another cell.
_LOWERED = (0.5, 0.25, 0.05)


def symmetrise(structure: Structure, symprec: float, family: str | None = None
               ) -> tuple[int, str, Structure, str]:
    """Space group and symmetrised conventional cell of atoms read from a map.

    Atoms from a predicted map sit a few tenths of an Angstrom off their ideal positions, so at the
    base tolerance spglib often finds a subgroup (or P1) of the true group. When the cell's metric
    ``family`` ('cubic' or 'hexagonal') is given and the symmetry found at ``symprec`` (A) is not of
    that family, the tolerance is raised (1.5, 2, 3 x) and then lowered (0.5, 0.25, 0.05 x) until it
    is, keeping the stoichiometry and the cell (a conventional cell larger than the metric's one is
    a wrong, merged lattice). When no tolerance gives it, the first result that keeps the cell and
    stoichiometry is returned, else the structure in P1. Returns (number, symbol, structure, note).
    """
    wanted = FAMILY_SYSTEMS.get(family or "", ())
    first: tuple[int, str, Structure] | None = None
    formula = structure.composition.reduced_formula
    for factor in _ESCALATION + _LOWERED if wanted else (1.0,):
        tol = symprec * factor
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sga = SpacegroupAnalyzer(structure, symprec=tol)
                refined = sga.get_refined_structure()
                found = (int(sga.get_space_group_number()), str(sga.get_space_group_symbol()), refined)
                system = sga.get_crystal_system()
        except Exception:  # spglib gives up on some near-degenerate inputs
            continue
        same_cell = abs(refined.volume - structure.volume) <= 0.02 * structure.volume
        same = same_cell and refined.composition.reduced_formula == formula
        if first is None and (same or not wanted):
            first = found
        if not wanted or (system in wanted and same):
            note = "" if factor == 1.0 else f"space group found at a {'raised' if factor > 1 else 'lowered'} " \
                                            f"spglib tolerance ({tol:.2g} A)"
            return (*found, note)
    if first is None:
        return 1, "P1", structure.copy(), "no symmetry keeps the given cell and composition; structure kept in P1"
    return (*first, "")


def density_to_structure(
    grid: np.ndarray,
    lattice: np.ndarray,
    composition: dict[str, float] | None,
    *,
    ratios_known: bool = True,
    min_distance: float = 0.7,
    symprec: float = 0.2,
    rel_threshold: float = 0.02,
    escalate: bool = True,
    centre: bool = True,
) -> AtomsResult:
    """Read atoms from a CMED map and return the symmetrised structure (the best Z only).

    Args:
        grid: (N0, N1, N2) density in e/A^3, voxel [i, j, k] at fractional (i/N0, j/N1, k/N2).
        lattice: (3, 3) row vectors a, b, c in Angstrom.
        composition: element -> amount (any multiple of the formula), or None when unknown.
        ratios_known: False when ``composition`` lists the elements only (amounts ignored).
        min_distance: maxima closer than this (Angstrom) are one atom.
        symprec: spglib tolerance (Angstrom) for the space group and snapping to special positions.
        rel_threshold: maxima below this fraction of the highest one are ignored.
        escalate: when the cell's metric is cubic or hexagonal and the atoms at ``symprec`` do not
            show that crystal family, retry at 1.5, 2 and 3 x ``symprec`` (see :func:`symmetrise`).
        centre: impose a lattice centring the map obeys (see :func:`density_to_structures`).
    """
    return density_to_structures(grid, lattice, composition, ratios_known=ratios_known, min_distance=min_distance,
                                 symprec=symprec, rel_threshold=rel_threshold, escalate=escalate, n_z=1,
                                 centre=centre)[0]


@dataclass(frozen=True)
class _Reading:
    """One way of reading atoms off the map's peaks.

    Attributes:
        species: (n,) element per position ('' for none); positions: (n, 3) fractional.
        z: formula units, or 0 when they are to be read from the final structure.
        notes: what is worth telling about this reading; peak_species: (peaks,) element per map peak.
    """

    species: np.ndarray
    z: int
    notes: list[str]
    positions: np.ndarray
    peak_species: np.ndarray


def density_to_structures(
    grid: np.ndarray,
    lattice: np.ndarray,
    composition: dict[str, float] | None,
    *,
    ratios_known: bool = True,
    min_distance: float = 0.7,
    symprec: float = 0.2,
    rel_threshold: float = 0.02,
    escalate: bool = True,
    n_z: int = 2,
    centre: bool = True,
    spacegroup: int | None = None,
) -> list[AtomsResult]:
    """:func:`density_to_structure` for the ``n_z`` best numbers of formula units (full composition only).

    A predicted map's spurious or missing peaks can make a wrong Z fit the electron counts slightly
    better than the right one; reading the map once per plausible Z lets the refinement against the
    pattern decide. Results come best Z first; without the ratios there is one result.
    With ``centre`` (and ``escalate``) a lattice centring the map obeys
    (:func:`powdersolve.maps.centring.detect_centring`) is imposed on the map by averaging, and Z is
    restricted to counts the centring allows.
    ``spacegroup``: the map is averaged over this group in its standard setting
    (:func:`powdersolve.maps.symmetry.symmetrise_map`); atoms are then read as whole orbits of
    it (:mod:`powdersolve.solve.wyckoff`), falling back to single peaks when no orbit choice fits.
    """
    grid = np.asarray(grid, dtype=np.float64)
    lattice = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
    volume = abs(float(np.linalg.det(lattice)))
    if volume < 1.0:
        raise InputError(f"cell volume {volume:.3g} A^3 is not physical; check the lattice")
    family = metric_family(lattice) if escalate else None
    grid, multiple, kfrac, kheight, electrons = map_peaks(grid, lattice, family if centre else None,
                                                          min_distance, rel_threshold)
    total = float(grid.sum() * volume / grid.size)
    comp = Composition.of(composition).pymatgen() if composition else None
    max_atoms = int(volume / MIN_VOLUME_PER_ATOM)
    readings: list[_Reading] = []
    note = ""
    if comp is not None and ratios_known and spacegroup is not None:
        readings = _orbit_readings(kfrac, electrons, spacegroup, lattice, comp, n_z, multiple, max_atoms)
    if comp is not None and ratios_known and not readings:
        readings = _formula_readings(kfrac, electrons, comp, n_z, multiple, max_atoms)
    elif not readings:
        reading, note = _inferred_reading(kfrac, electrons, comp)
        readings = [reading]
    results = []
    for r in readings:
        peaks = PeakTable(frac=kfrac, height=kheight, electrons=electrons, species=r.peak_species.astype(str))
        res = _structure_of(r, lattice, symprec, family, peaks, total, note)
        if res is not None:
            results.append(res)
    if not results:
        raise InputError("no density peak could be assigned to an atom; the map is empty or the composition wrong")
    return results


def _orbit_readings(kfrac: np.ndarray, electrons: np.ndarray, spacegroup: int, lattice: np.ndarray,
                    comp, n_z: int, multiple: int, max_atoms: int) -> list[_Reading]:
    """Readings of whole orbits of ``spacegroup`` (:mod:`powdersolve.solve.wyckoff`), best Z first."""
    orbits = peak_orbits(kfrac, electrons, spacegroup, lattice)
    readings = []
    for z_fu, pos, names, per_orbit in orbit_choices(orbits, comp, n_z=max(1, n_z), multiple=multiple,
                                                     max_atoms=max_atoms):
        on_peak = np.full(len(electrons), "", dtype=object)
        for orbit, el in zip(orbits, per_orbit):
            on_peak[list(orbit.peaks)] = el or ""
        readings.append(_Reading(np.array(names, dtype=object), z_fu, [], pos, on_peak))
    return readings


def _formula_readings(kfrac: np.ndarray, electrons: np.ndarray, comp, n_z: int, multiple: int,
                      max_atoms: int) -> list[_Reading]:
    """Readings of single peaks for the ``n_z`` best numbers of formula units of ``comp``."""
    reduced, _ = comp.get_reduced_composition_and_factor()
    readings = []
    for z_fu, scale, _cost in ranked_formula_units(electrons, reduced, multiple=multiple,
                                                   max_atoms=max_atoms)[: max(1, n_z)]:
        counts = {el.symbol: int(round(z_fu * amt)) for el, amt in reduced.items()}
        slots = np.concatenate([np.full(n, Element(el).Z) for el, n in counts.items()])
        slot_sym = np.concatenate([np.full(n, el, dtype=object) for el, n in counts.items()])
        pick = assign_species(electrons * scale, slots)
        species = np.where(pick >= 0, slot_sym[np.maximum(pick, 0)], "").astype(object)
        notes = []
        if len(slots) > len(electrons):
            notes.append(f"{len(slots) - len(electrons)} atoms of Z={z_fu} x {reduced.formula} had no density peak "
                         "(overlap?)")
        readings.append(_Reading(species, z_fu, notes, kfrac, species))
    return readings


def _inferred_reading(kfrac: np.ndarray, electrons: np.ndarray, comp) -> tuple[_Reading, str]:
    """Species by the nearest atomic number to each peak's electrons (no ratios), and how they were chosen."""
    allowed = np.array(sorted(Element(e.symbol).Z for e in comp)) if comp is not None else COMMON_Z
    zs = _nearest_z(electrons, allowed)
    # A peak far lighter than the lightest allowed element is noise or a ghost, not an atom.
    keep = electrons >= 0.5 * allowed.min()
    species = np.where(keep, [Element.from_Z(int(z)).symbol for z in zs], "").astype(object)
    how = "among the given elements" if comp is not None else "among common elements (Z 1-83, Th, U)"
    inferred = sorted({s for s in species if s}, key=lambda s: Element(s).Z)
    note = (f"species {', '.join(inferred)} inferred from integrated electrons per peak "
            f"(nearest atomic number {how}); no ratios were used")
    return _Reading(species, 0, [], kfrac, species), note


def _structure_of(reading: _Reading, lattice: np.ndarray, symprec: float, family: str | None, peaks: PeakTable,
                  total: float, note: str) -> AtomsResult | None:
    """The symmetrised structure of one reading, or None when it places no atom."""
    atoms = reading.species != ""
    if not atoms.any():
        return None
    notes = reading.notes
    s = Structure(Lattice(lattice), list(reading.species[atoms]), reading.positions[atoms])
    sg, symbol, s_out, sym_note = symmetrise(s, symprec, family)
    if sym_note:
        notes.append(sym_note)
    if reading.z == 0:
        z_fu = int(s_out.composition.get_reduced_composition_and_factor()[1])
    else:
        z_fu = int(round(reading.z * len(s_out) / max(1, int(atoms.sum()))))
    return AtomsResult(s_out, sg, symbol, z_fu, peaks, total, note, notes)
