"""Candidate deduplication: the copy check against StructureMatcher, the merging of noisy readings,
and the point-group order that ranks equally good fits."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.groups import PointGroup, SpaceGroup

from powdersolve.solve.candidate import DistinctStructures, same_sites
from powdersolve.solve.rank import point_group_order


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
