"""A refined candidate structure: its record, distinctness (StructureMatcher) and CIF output."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure
from pymatgen.io.cif import CifWriter
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from powdersolve.errors import OutputError
from powdersolve.fileio import atomic_write_text
from powdersolve.solve.refine import RefineResult


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


def spacegroup_of(structure: Structure, symprec: float) -> tuple[int, str]:
    """(international number, Hermann-Mauguin symbol) by spglib at ``symprec`` (A); (1, 'P1') when it gives up."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sga = SpacegroupAnalyzer(structure, symprec=symprec)
            return int(sga.get_space_group_number()), str(sga.get_space_group_symbol())
    except Exception:
        return 1, "P1"


def candidate_of(res: RefineResult, source: int, screened_only: bool = False, symprec: float = 0.1) -> Candidate:
    """The candidate of a refinement, in the standard conventional cell of the symmetry it refined to."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            std = SpacegroupAnalyzer(res.structure, symprec=symprec).get_refined_structure()
        # A candidate refined in a larger setting (e.g. hexagonal axes of a rhombohedral subgroup)
        # is reported in the standard conventional cell of the symmetry it refined to.
        if len(std) < len(res.structure):
            res = replace(res, structure=std)
    except Exception:  # spglib gives up on some near-degenerate inputs: keep the refined cell
        pass
    sg, sym = spacegroup_of(res.structure, symprec)
    return Candidate(res, source, res.structure.composition.reduced_formula, sg, sym, len(res.structure), screened_only)


def same_sites(a: Structure, b: Structure, tol: float = 0.05) -> bool:
    """Whether ``b`` is ``a`` up to a translation and the order of its sites, in nearly the same cell.

    True when the lattices agree to 0.1% and one translation brings every site of ``b`` within
    ``tol`` (A) of a site of ``a`` of the same species. Such structures are the same by any reading
    (StructureMatcher's default site tolerance is 0.3 (V/n)^(1/3), about 0.5 A); the check costs
    microseconds where the matcher costs ~20 ms, and maps sampled from one posterior often give
    exactly such copies.
    """
    n = len(a)
    if n != len(b) or n == 0 or not np.allclose(a.lattice.matrix, b.lattice.matrix, rtol=1e-3, atol=1e-3):
        return False
    sa = np.array([str(x) for x in a.species])
    sb = np.array([str(x) for x in b.species])
    if sorted(sa) != sorted(sb):
        return False
    # Every translation taking a site of b's rarest species onto a site of that species in a.
    kinds, counts = np.unique(sb, return_counts=True)
    rare = kinds[np.argmin(counts)]
    fa, fb = a.frac_coords, b.frac_coords
    shifts = fa[sa == rare] - fb[np.flatnonzero(sb == rare)[0]]
    d = fa[None, None, :, :] - fb[None, :, None, :] - shifts[:, None, None, :]  # (shift, site of b, site of a, 3)
    d -= np.round(d)
    cart = d @ a.lattice.matrix
    dist = np.linalg.norm(cart, axis=-1)
    dist[:, sb[:, None] != sa[None, :]] = np.inf
    nearest = dist.argmin(axis=2)  # (shift, site of b)
    for k in np.argsort(dist.min(axis=2).max(axis=1))[:3]:
        # That shift came from one pair of sites; the mean of the nearest-site offsets corrects it.
        offsets = cart[k, np.arange(n), nearest[k]]
        if np.all(np.linalg.norm(offsets - offsets.mean(axis=0), axis=1) <= tol):
            return True
    return False


class DistinctStructures:
    """Structures kept one per StructureMatcher (defaults) class of the same formula and size.

    A structure that is a copy of a kept one (:func:`same_sites`) is matched without the matcher.
    Otherwise each structure is reduced (primitive, Niggli) once, when first compared, as
    StructureMatcher would reduce it on every comparison; comparing the pre-reduced forms gives the
    same answers several times faster (pymatgen's own cache of reduced forms compares whole
    structures to find them).
    """

    def __init__(self) -> None:
        self.matcher = StructureMatcher()
        self.kept: list[Structure] = []
        self.noisy: list[bool] = []
        self._reduced: dict[int, Structure] = {}

    @staticmethod
    def _reduce(s: Structure) -> Structure:
        return s.get_primitive_structure().get_reduced_structure()

    def _reduced_kept(self, i: int) -> Structure:
        if i not in self._reduced:
            self._reduced[i] = self._reduce(self.kept[i])
        return self._reduced[i]

    def index(self, s: Structure, noisy: bool = False) -> int | None:
        """Index of the kept structure ``s`` matches, or None (then ``s`` is kept, at the next index).

        Two ``noisy`` structures (e.g. P1 readings of a map) are not compared by the matcher, on which
        such pairs are slowest and rarely match; copies (:func:`same_sites`) always match.
        """
        formula = s.composition.reduced_formula
        same_formula = [i for i, t in enumerate(self.kept) if t.composition.reduced_formula == formula]
        for i in same_formula:
            if same_sites(self.kept[i], s):
                return i
        compare = [i for i in same_formula if not (noisy and self.noisy[i])]
        red = None
        if compare:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                red = self._reduce(s)
                for i in compare:
                    t = self._reduced_kept(i)
                    if len(t) == len(red) and self.matcher.fit(t, red, skip_structure_reduction=True):
                        return i
        self.kept.append(s)
        self.noisy.append(noisy)
        if red is not None:
            self._reduced[len(self.kept) - 1] = red
        return None


def drop_duplicates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """``candidates`` without StructureMatcher (defaults) duplicates of the same formula; the first
    of each is kept, so pass them best first."""
    seen = DistinctStructures()
    return [c for c in candidates if seen.index(c.result.structure) is None]


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
