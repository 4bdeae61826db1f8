"""Candidate deduplication: the copy check against StructureMatcher, the merging of noisy readings,
the point-group order that ranks equally good fits, merged rankings and threaded refinement."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.groups import PointGroup, SpaceGroup

from powdersolve.errors import NoSolutionError
from powdersolve.solve.candidate import Candidate, DistinctStructures, candidate_of, same_sites
from powdersolve.solve.observed import Observed
from powdersolve.solve.rank import RankConfig, Ranking, merge_rankings, point_group_order, rank_structures
from powdersolve.solve.refine import RefineConfig, RefineResult


@pytest.fixture()
def spinel_like() -> Structure:
    """A 14-site, two-species cell without symmetry-fixed coordinates (seeded random positions)."""
    rng = np.random.default_rng(3)
    return Structure(Lattice.cubic(6.0), ["Mg"] * 4 + ["O"] * 10, rng.random((14, 3)))


def _copy(s: Structure, shift: np.ndarray, jitter_a: float, seed: int) -> Structure:
    """``s`` translated, its sites reversed and each moved by ``jitter_a`` (A) in a random direction."""
    rng = np.random.default_rng(seed)
    step = rng.normal(size=(len(s), 3))
    step *= jitter_a / np.linalg.norm(step, axis=1, keepdims=True)
    frac = s.frac_coords + shift + s.lattice.get_fractional_coords(step)
    return Structure(s.lattice, list(s.species)[::-1], (frac % 1.0)[::-1])


def test_same_sites_finds_translated_permuted_copies_and_the_matcher_agrees(spinel_like: Structure) -> None:
    copy = _copy(spinel_like, np.array([0.31, 0.77, 0.05]), 0.03, seed=1)
    assert same_sites(spinel_like, copy)
    assert StructureMatcher().fit(spinel_like, copy)


def test_same_sites_refuses_moved_swapped_or_recelled_structures(spinel_like: Structure) -> None:
    assert not same_sites(spinel_like, _copy(spinel_like, np.zeros(3), 0.2, seed=2))
    swapped = spinel_like.copy()
    swapped.replace(0, "O")
    swapped.replace(4, "Mg")
    assert not same_sites(spinel_like, swapped)
    bigger = Structure(Lattice.cubic(6.1), spinel_like.species, spinel_like.frac_coords)
    assert not same_sites(spinel_like, bigger)
    assert not same_sites(spinel_like, Structure(spinel_like.lattice, spinel_like.species[:-1],
                                                 spinel_like.frac_coords[:-1]))


def test_distinct_structures_merges_near_duplicates_but_not_two_noisy_ones(spinel_like: Structure) -> None:
    near = _copy(spinel_like, np.array([0.5, 0.0, 0.25]), 0.15, seed=4)  # a near-duplicate, not a copy
    assert StructureMatcher().fit(spinel_like, near) and not same_sites(spinel_like, near)
    copy = _copy(spinel_like, np.array([0.1, 0.2, 0.3]), 0.0, seed=5)

    plain = DistinctStructures()
    assert plain.index(spinel_like) is None and plain.index(near) == 0

    one_noisy = DistinctStructures()
    assert one_noisy.index(spinel_like) is None and one_noisy.index(near, noisy=True) == 0

    both_noisy = DistinctStructures()
    assert both_noisy.index(spinel_like, noisy=True) is None
    assert both_noisy.index(near, noisy=True) is None  # the matcher is not asked
    assert both_noisy.index(copy, noisy=True) == 0  # copies always match


@pytest.mark.parametrize("number", [1, 2, 10, 47, 75, 123, 143, 148, 166, 191, 195, 221, 229, 230])
def test_point_group_order_equals_pymatgen(number: int) -> None:
    expected = len(PointGroup(SpaceGroup.from_int_number(number).point_group).symmetry_ops)
    assert point_group_order(number) == expected


def _candidate(structure: Structure, rwp: float, screened_only: bool = False) -> Candidate:
    """A candidate with a stand-in refinement record (only the structure and Rwp matter to the ranking)."""
    res = RefineResult(structure, 0.0, 1.0, 1.0, rwp, rwp, 1.0, np.zeros(1), np.zeros(1), np.zeros(1))
    return candidate_of(res, 0, screened_only=screened_only)


def test_merged_rankings_rank_together_drop_duplicates_and_renumber() -> None:
    """Two models' rankings of one pattern: one list by Rwp, the worse copy of a structure both read
    dropped, each candidate keeping its own origins, sources renumbered; abstention on the merged best."""
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cscl = Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    first = Ranking([_candidate(nacl, 0.05), _candidate(cscl, 0.40, screened_only=True)],
                    [["mean"], ["sample 1"]], ["a"])
    second = Ranking([_candidate(nacl.copy(), 0.03), _candidate(cscl, 0.20)],
                     [["trigonal model mean"], ["trigonal model sample 0"]], ["b"])
    merged = merge_rankings([first, second], RankConfig(max_rwp=0.35), "cubic", "x.xy")
    assert [round(c.result.rwp, 2) for c in merged.candidates] == [0.03, 0.20]
    assert merged.origins == [["trigonal model mean"], ["trigonal model sample 0"]]
    assert len({c.source for c in merged.candidates}) == 2 and merged.notes == ["a", "b"]
    with pytest.raises(NoSolutionError, match="threshold"):
        merge_rankings([first, second], RankConfig(max_rwp=0.02), "cubic", "x.xy")


def test_thinned_profile_keeps_a_few_points_per_fwhm() -> None:
    tt = np.arange(5.0, 120.0, 0.01)
    obs = Observed(tt, np.ones_like(tt), 1.54, "x.xy", fwhm=0.08)
    assert np.allclose(np.diff(obs.thinned(4.0).two_theta), 0.02)
    assert obs.thinned(8.0) is obs  # already at 8 points per FWHM
    assert Observed(tt, np.ones_like(tt), 1.54, "x.xy").thinned(4.0).two_theta.size == tt.size  # FWHM unknown


def test_ranking_does_not_depend_on_the_number_of_refinement_threads() -> None:
    """Screening and full refinements in threads give the same ranked fits as one at a time."""
    from independent import pattern

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    tt, counts = pattern(nacl, hi=80.0, step=0.02)
    obs = Observed(tt, counts - counts.min(), 1.5406, "NaCl.xy", fwhm=0.08)
    starts = [nacl, Structure(nacl.lattice, ["Na", "Cl"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
              Structure(nacl.lattice, ["Cl", "Na"], [[0, 0, 0], [0.5, 0.5, 0.5]])]
    origins = [[f"map {i}"] for i in range(3)]
    cfg = RankConfig(refine_top=2, screen_iter=5, abstain=False, width_from_peaks=True,
                     refine=RefineConfig(max_iter=30, refine_profile=True))
    one = rank_structures(starts, origins, obs, replace(cfg, workers=1))
    two = rank_structures(starts, origins, obs, replace(cfg, workers=2))
    assert [c.result.rwp for c in one.candidates] == [c.result.rwp for c in two.candidates]
    assert one.candidates[0].spacegroup == 225 and len(one.candidates) >= 2


def test_after_the_deadline_only_the_first_candidate_is_screened_and_refined() -> None:
    """A ranking begun after its deadline still ranks something: the first candidate (the highest priority
    reading) is screened and fully refined; the others are not begun, and a note says why."""
    from independent import pattern

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    tt, counts = pattern(nacl, hi=80.0, step=0.02)
    obs = Observed(tt, counts - counts.min(), 1.5406, "NaCl.xy", fwhm=0.08)
    starts = [nacl, Structure(nacl.lattice, ["Na", "Cl"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
              Structure(nacl.lattice, ["Cl", "Na"], [[0, 0, 0], [0.5, 0.5, 0.5]])]
    cfg = RankConfig(refine_top=1, screen_iter=5, abstain=False, refine=RefineConfig(max_iter=30))
    late = rank_structures(starts, [[f"map {i}"] for i in range(3)], obs, cfg, deadline=time.perf_counter() - 1.0)
    assert len(late.candidates) == 1 and not late.candidates[0].screened_only
    assert late.candidates[0].spacegroup == 225
    assert any("2 of 3 candidates not screened: the time limit" in n for n in late.notes)
    in_time = rank_structures(starts, [[f"map {i}"] for i in range(3)], obs, cfg, deadline=time.perf_counter() + 600)
    assert len(in_time.candidates) == 2  # the swapped reading is rock salt again, merged
    assert not any("time limit" in n for n in in_time.notes)


def test_a_candidate_too_large_to_refine_is_dropped_and_the_others_ranked() -> None:
    """A reading in a huge cell exceeds the refinement's memory guard; it is dropped with a note instead
    of ending the whole solve."""
    from independent import pattern

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    tt, counts = pattern(nacl, hi=80.0, step=0.02)
    obs = Observed(tt, counts - counts.min(), 1.5406, "NaCl.xy", fwhm=0.08)
    rng = np.random.default_rng(0)
    huge = Structure(Lattice.from_parameters(17.0, 17.5, 18.0, 80, 85, 95), ["Na", "Cl"] * 20, rng.random((40, 3)))
    cfg = RankConfig(abstain=False, refine=RefineConfig(max_iter=10, max_profile_elements=500_000))
    ranking = rank_structures([huge, nacl], [["sample 0"], ["mean"]], obs, cfg)
    assert [c.formula for c in ranking.candidates] == ["NaCl"]
    assert any("too large" in n for n in ranking.notes)
