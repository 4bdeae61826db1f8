"""Missed symmetry: a candidate in a subgroup (atoms a little off) is searched at coarser tolerances and the
most symmetric version that refines as well replaces it. Patterns from the independent test simulator."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from independent import pattern
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from powdersolve.errors import InputError
from powdersolve.solve.config import SolveConfig
from powdersolve.solve.missed_symmetry import symmetric_versions, with_missed_symmetry
from powdersolve.solve.observed import Observed
from powdersolve.solve.rank import RankConfig, Ranking, rank_structures
from powdersolve.solve.refine import RefineConfig

RUTILE = Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"],
                                   [[0, 0, 0], [0.3048, 0.3048, 0]])


def _displaced(structure: Structure, shift: float = 0.12, seed: int = 0) -> Structure:
    """``structure`` with every atom moved ``shift`` A in a random direction (P1)."""
    d = np.random.default_rng(seed).normal(size=(len(structure), 3))
    d *= shift / np.linalg.norm(d, axis=1, keepdims=True)
    return Structure(structure.lattice, structure.species, structure.cart_coords + d, coords_are_cartesian=True)


def test_versions_of_a_displaced_cell_reach_its_group_and_keep_its_formula() -> None:
    versions = symmetric_versions(_displaced(RUTILE), 0.05, (0.1, 0.2, 0.3, 0.5))
    assert versions and versions[-1].spacegroup == 136
    assert [v.operations for v in versions] == sorted(v.operations for v in versions)
    assert all(v.structure.composition.reduced_formula == "TiO2" for v in versions)
    assert symmetric_versions(RUTILE, 0.05, (0.1, 0.2, 0.3, 0.5)) == []  # nothing above its own group


def test_the_best_candidate_takes_the_group_it_missed() -> None:
    tt, counts = pattern(RUTILE, hi=90.0, step=0.02)
    obs = Observed(tt, counts - counts.min(), 1.54056, "TiO2.xy", fwhm=0.08)
    config = RankConfig(abstain=False, width_from_peaks=True, rwp_tie=0.02,
                        refine=RefineConfig(max_iter=40, refine_profile=True))
    # The candidate as read from a map: its atoms fixed 0.12 A off, so spglib sees P1.
    rough = rank_structures([_displaced(RUTILE)], [["sample 0"]], obs,
                            replace(config, refine=replace(config.refine, refine_coords=False)))
    assert rough.candidates[0].spacegroup == 1
    out = with_missed_symmetry(rough, obs, config, (0.2, 0.3, 0.5), tie=0.02)
    best = out.candidates[0]
    assert best.spacegroup == 136 and best.result.rwp < rough.candidates[0].result.rwp
    assert StructureMatcher().fit(best.result.structure, RUTILE)
    assert out.origins[0] == ["sample 0", "symmetry P4_2/mnm imposed"]
    assert any("has the symmetry of P4_2/mnm" in n for n in out.notes)
    exact = rank_structures([RUTILE], [["mean"]], obs, config)
    assert with_missed_symmetry(exact, obs, config, (0.2, 0.3, 0.5), tie=0.02) == exact
    # A lower candidate that is the same structure as the symmetric version is dropped.
    both = Ranking([*rough.candidates, *exact.candidates], [*rough.origins, *exact.origins], [])
    assert len(with_missed_symmetry(both, obs, config, (0.2, 0.3, 0.5), tie=0.02).candidates) == 1


def test_an_empty_ranking_and_bad_settings() -> None:
    empty = Ranking([], [], [])
    obs = Observed(np.linspace(10, 80, 100), np.ones(100), 1.54, "x.xy")
    assert with_missed_symmetry(empty, obs, RankConfig(), (0.3,), tie=0.02) is empty
    for bad in ({"symmetry_tolerances": (0.3, -0.1)}, {"symmetry_tie": -0.1}, {"symmetry_tie": float("nan")}):
        with pytest.raises(InputError):
            SolveConfig(**bad)
