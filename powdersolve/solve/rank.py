"""Rank candidate structures by how well they refine against the pattern, and write the solutions.

Candidates (e.g. one per latent sample of the model) are refined one by one, duplicates are
removed with pymatgen's StructureMatcher (the better-fitting copy is kept), the rest are sorted by
Rwp, and the solver abstains when even the best one fits too badly.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure
from pymatgen.io.cif import CifWriter
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from powdersolve.errors import NoSolutionError, OutputError
from powdersolve.fileio import atomic_write_text
from powdersolve.solve.refine import RefineConfig, RefineResult, refine


@dataclass(frozen=True)
class RankConfig:
    """Ranking and abstention settings.

    Attributes:
        max_rwp: abstain when the best refined Rwp is above this (fraction). 0.35 because a correct
            structure refined with this module's simple model (one B, Chebyshev background, pseudo-Voigt)
            reaches Rwp ~0.05-0.25 on simulated and typical laboratory data (the ~0.12 of the tests
            is Poisson noise at ~100 counts), whereas a wrong structure in the right cell leaves most
            intensity unexplained and stays at 0.4-0.8 (a wrong-species test gives ~0.5); 0.35 sits
            between, erring towards returning a roughly right solution rather than nothing.
        keep: most candidates written.
        symprec: tolerance (A) of the space group written in the CIF and reported.
        refine: settings of each refinement.
    """

    max_rwp: float = 0.35
    keep: int = 5
    symprec: float = 0.1
    refine: RefineConfig = field(default_factory=RefineConfig)


@dataclass(frozen=True)
class Candidate:
    """One refined, distinct candidate.

    Attributes:
        result: its refinement.
        source: index of the input candidate it came from.
        formula: reduced formula.
        spacegroup: international number; spacegroup_symbol: Hermann-Mauguin symbol.
        n_atoms: atoms in the refined conventional cell.
        screened_only: True when only the short screening refinement ran (it ranked below the
            candidates that were fully refined).
    """

    result: RefineResult
    source: int
    formula: str
    spacegroup: int
    spacegroup_symbol: str
    n_atoms: int
    screened_only: bool = False

    def summary(self) -> dict[str, object]:
        """JSON-ready description (R factors as fractions)."""
        r = self.result
        return {
            "formula": self.formula, "spacegroup": self.spacegroup, "spacegroup_symbol": self.spacegroup_symbol,
            "rwp": round(r.rwp, 6), "rp": round(r.rp, 6), "gof": round(r.gof, 6), "n_atoms": self.n_atoms,
            "zero_shift_deg": round(r.zero_shift, 6), "b_iso": round(r.b_iso, 4), "source_candidate": self.source,
            "refinement": "screening" if self.screened_only else "full",
            "lattice_abc": [round(x, 6) for x in r.structure.lattice.abc],
            "lattice_angles": [round(x, 4) for x in r.structure.lattice.angles],
        }


def _spacegroup(structure: Structure, symprec: float) -> tuple[int, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sga = SpacegroupAnalyzer(structure, symprec=symprec)
            return int(sga.get_space_group_number()), str(sga.get_space_group_symbol())
    except Exception:
        return 1, "P1"


class DistinctStructures:
    """Structures kept one per StructureMatcher (defaults) class of the same formula and size.

    Each structure is reduced (primitive, Niggli) once when added, as StructureMatcher would reduce
    it on every comparison; comparing the pre-reduced forms gives the same answers several times
    faster (pymatgen's own cache of reduced forms compares whole structures to find them).
    """

    def __init__(self) -> None:
        self.matcher = StructureMatcher()
        self.reduced: list[Structure] = []

    @staticmethod
    def _reduce(s: Structure) -> Structure:
        return s.get_primitive_structure().get_reduced_structure()

    def index(self, s: Structure) -> int | None:
        """Index of the kept structure ``s`` matches, or None (then ``s`` is kept, at the next index)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            red = self._reduce(s)
            formula = s.composition.reduced_formula
            for i, t in enumerate(self.reduced):
                if (len(t) == len(red) and t.composition.reduced_formula == formula
                        and self.matcher.fit(t, red, skip_structure_reduction=True)):
                    return i
        self.reduced.append(red)
        return None


def drop_duplicates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """``candidates`` without StructureMatcher (defaults) duplicates of the same formula; the first
    of each is kept, so pass them best first."""
    seen = DistinctStructures()
    return [c for c in candidates if seen.index(c.result.structure) is None]


def rank_candidates(structures: Sequence[Structure], two_theta: np.ndarray, observed: np.ndarray,
                    wavelength: float, sigma: np.ndarray | None = None, config: RankConfig | None = None,
                    *, source: str = "pattern", abstain: bool = True) -> list[Candidate]:
    """Refine, deduplicate and rank candidates by Rwp (best first).

    Raises :class:`NoSolutionError` when there is no candidate or (with ``abstain``) the best Rwp
    is above ``config.max_rwp``; ``source`` names the pattern in that message.
    """
    cfg = config or RankConfig()
    if not structures:
        raise NoSolutionError(f"{source}: no candidate structure to refine; sample more candidates")
    refined: list[Candidate] = []
    for i, s in enumerate(structures):
        res = refine(s, two_theta, observed, wavelength, sigma, cfg.refine)
        if not (np.isfinite(res.rwp) and np.all(np.isfinite(res.structure.lattice.matrix))
                and np.all(np.isfinite(res.structure.frac_coords))):
            continue  # a diverged fit: spglib crashes on NaN cells, and it is no candidate anyway
        sg, sym = _spacegroup(res.structure, cfg.symprec)
        refined.append(Candidate(res, i, res.structure.composition.reduced_formula, sg, sym, len(res.structure)))
    if not refined:
        raise NoSolutionError(f"{source}: every candidate's refinement diverged; no structure written")
    refined.sort(key=lambda c: c.result.rwp)
    distinct = drop_duplicates(refined)
    best = distinct[0].result.rwp
    if abstain and not best <= cfg.max_rwp:
        raise NoSolutionError(
            f"{source}: best of {len(distinct)} candidates has Rwp {best:.3f}, above the abstain threshold "
            f"{cfg.max_rwp:.2f}; no structure written (check composition and wavelength, or sample more candidates)")
    return distinct[: cfg.keep]


def cif_text(structure: Structure, symprec: float = 0.1) -> str:
    """CIF of ``structure`` with its symmetry (spglib at ``symprec`` A), or in P1 when spglib cannot
    determine one (near-overlapping atoms of a poor candidate)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return str(CifWriter(structure, symprec=symprec))
    except Exception:  # pymatgen raises SymmetryUndeterminedError, spglib a plain error
        return str(CifWriter(structure))


def write_solutions(candidates: Sequence[Candidate], directory: str | Path, symprec: float = 0.1,
                    extra: dict[str, object] | None = None) -> list[Path]:
    """Write candidates/rank_01.cif ... and solution.json into ``directory``; returns the CIF paths.

    Each file is written atomically; wrap the call in :func:`powdersolve.fileio.atomic_output_dir`
    to make the whole directory appear at once. CIFs carry the symmetry (CifWriter with ``symprec``).
    """
    out = Path(directory)
    paths = []
    try:
        for k, c in enumerate(candidates, start=1):
            path = out / "candidates" / f"rank_{k:02d}.cif"
            text = cif_text(c.result.structure, symprec)
            atomic_write_text(path, text)
            paths.append(path)
        doc = {"candidates": [dict(rank=k, cif=str(p.relative_to(out)), **c.summary())
                              for k, (c, p) in enumerate(zip(candidates, paths), start=1)]}
        if extra:
            doc.update(extra)
        atomic_write_text(out / "solution.json", json.dumps(doc, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"{out}: cannot write solutions ({exc.strerror}); choose another --out") from exc
    return paths
