"""Missed symmetry: the best candidate described in a subgroup of its space group, found and imposed.

Atoms read from a map, and a fit in a low group, sit a few tenths of an Angstrom off the positions a
higher group fixes, so spglib at the reporting tolerance finds only a subgroup (alpha-Mn, I-43m, comes out
of a P1 map in P1; TiO2, C2/m, in Cm). As PLATON's ADDSYM does for a single-crystal model, the refined
structure is searched again at coarser tolerances, each higher group found is imposed (its symmetrised
conventional cell) and refined against the pattern, and the most symmetric version that fits as well as
the candidate (Rwp at most :data:`MISSED_SYMMETRY_TIE` relative above it) takes its place: a subgroup
description of one structure has more free parameters and always fits at least as well, the more so when
the profile model does not quite match the instrument (:func:`~powdersolve.solve.rank.prefer_symmetry`
applies the same rule, with a tighter tie, between distinct candidates).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from powdersolve.diffraction.leastsq import single_threaded_torch
from powdersolve.solve.candidate import Candidate, candidate_of, drop_duplicates
from powdersolve.solve.observed import Observed
from powdersolve.solve.rank import RankConfig, Ranking, refine_safely, refine_settings

#: spglib tolerances (A) at which the best refined candidate is searched for symmetry it missed.
MISSED_SYMMETRY_TOLERANCES = (0.2, 0.3, 0.5)
#: Relative Rwp a symmetric version may lose against the candidate and still replace it: a fit in P1 has
#: three free coordinates per atom and takes up some of the misfit of the profile model.
MISSED_SYMMETRY_TIE = 0.1
#: A symmetric version keeps the candidate's atoms per volume to this fraction (spglib at a coarse
#: tolerance can merge neighbouring atoms, or pick another cell).
_SAME_DENSITY = 0.02


@dataclass(frozen=True)
class SymmetricVersion:
    """A structure in a space group spglib finds for it at a coarse tolerance.

    Attributes:
        spacegroup: international number; symbol: Hermann-Mauguin symbol.
        tolerance: the spglib tolerance (A) that found it.
        operations: symmetry operations of that group within the structure's own cell (centring
            translations included), the measure of "more symmetric".
        structure: the symmetrised conventional cell, atoms moved onto the group's positions.
    """

    spacegroup: int
    symbol: str
    tolerance: float
    operations: int
    structure: Structure


def _symmetry(structure: Structure, tolerance: float) -> SymmetricVersion | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sga = SpacegroupAnalyzer(structure, symprec=tolerance)
            return SymmetricVersion(int(sga.get_space_group_number()), str(sga.get_space_group_symbol()),
                                    tolerance, len(sga.get_symmetry_operations()), sga.get_refined_structure())
    except Exception:  # spglib gives up on some near-degenerate inputs
        return None


def symmetric_versions(structure: Structure, symprec: float,
                       tolerances: Sequence[float] = MISSED_SYMMETRY_TOLERANCES) -> list[SymmetricVersion]:
    """The space groups of ``structure`` at ``tolerances`` (A) with more operations in its cell than at
    ``symprec`` (A), each once (at the lowest tolerance that finds it), least symmetric first; only those
    whose symmetrised cell keeps the reduced formula and the atoms per volume."""
    own = _symmetry(structure, symprec)
    floor = own.operations if own is not None else 1
    formula = structure.composition.reduced_formula
    density = len(structure) / structure.volume
    found: dict[int, SymmetricVersion] = {}
    for tol in sorted(t for t in tolerances if t > symprec):
        version = _symmetry(structure, tol)
        if version is None or version.operations <= floor or version.spacegroup in found:
            continue
        s = version.structure
        if (s.composition.reduced_formula == formula
                and abs(len(s) / s.volume - density) <= _SAME_DENSITY * density):
            found[version.spacegroup] = version
    return sorted(found.values(), key=lambda v: v.operations)


def with_missed_symmetry(ranking: Ranking, observed: Observed, config: RankConfig,
                         tolerances: Sequence[float] = MISSED_SYMMETRY_TOLERANCES,
                         tie: float = MISSED_SYMMETRY_TIE) -> Ranking:
    """``ranking`` with its best candidate replaced by its most symmetric version (:func:`symmetric_versions`)
    that, refined against ``observed`` (``config``'s full refinement), keeps the imposed group and has an Rwp
    at most ``1 + tie`` times the candidate's; unchanged when there is none (or the best was only screened).
    The ranking's order stays; a lower candidate that is the same structure as the new best is dropped."""
    if not ranking.candidates or ranking.candidates[0].screened_only:
        return ranking
    best = ranking.candidates[0]
    versions = symmetric_versions(best.result.structure, config.symprec, tolerances)
    if not versions:
        return ranking
    settings = refine_settings(config, observed)
    with ThreadPoolExecutor(max_workers=max(1, config.workers)) as pool, single_threaded_torch():
        fits = list(pool.map(lambda v: refine_safely(v.structure, observed, settings), versions))
    limit = best.result.rwp * (1 + tie)
    kept: list[tuple[SymmetricVersion, Candidate]] = []
    for version, fit in zip(versions, fits, strict=True):
        if fit is None or not fit.rwp <= limit:
            continue
        candidate = candidate_of(fit, best.source, symprec=config.symprec)
        if candidate.spacegroup == version.spacegroup:
            kept.append((version, candidate))
    if not kept:
        return ranking
    version, candidate = kept[-1]
    note = (f"the best candidate ({best.spacegroup_symbol}, Rwp {best.result.rwp:.4f}) has the symmetry of "
            f"{version.symbol} at {version.tolerance:g} A: refined in it, Rwp {candidate.result.rwp:.4f}")
    origins = [[*ranking.origins[0], f"symmetry {version.symbol} imposed"], *ranking.origins[1:]]
    listed = [candidate, *ranking.candidates[1:]]
    # A lower candidate may be the same structure as the symmetric version: the first of each is kept.
    kept = {id(c) for c in drop_duplicates(listed)}
    pairs = [(c, o) for c, o in zip(listed, origins, strict=True) if id(c) in kept]
    return replace(ranking, candidates=[c for c, _ in pairs], origins=[o for _, o in pairs],
                   notes=[*ranking.notes, note])
