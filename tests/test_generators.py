"""Generators: determinism, filters (system, distance, exclusion), exclusion list and split stability."""

from __future__ import annotations

import numpy as np
import pytest
import spglib

from powdersolve.errors import InputError
from powdersolve.structures import load_crystal
from powdersolve.structures.exclusion import build_exclusion_list, exclusion_set, is_excluded
from powdersolve.structures.generators import (
    distances_ok,
    generate,
    parse_system,
    random_composition,
    split_of,
)


def _same(a, b) -> bool:
    return (a.formula, a.spacegroup) == (b.formula, b.spacegroup) and all(
        np.array_equal(x, y) for x, y in [(a.lattice, b.lattice), (a.frac, b.frac), (a.numbers, b.numbers)])


@pytest.fixture(scope="module", params=[("prototypes", "cubic"), ("random", "trigonal")])
def batch(request):
    kind, system = request.param
    return kind, system, generate(kind, system, 4, [7, 1])


def test_deterministic(batch):
    kind, system, crystals = batch
    again = generate(kind, system, 4, [7, 1])
    assert all(_same(a, b) for a, b in zip(crystals, again))
    other = generate(kind, system, 4, [8, 1])
    assert not all(_same(a, b) for a, b in zip(crystals, other))


def test_filters_hold(batch):
    kind, system, crystals = batch
    lo, hi = {"cubic": (195, 230), "trigonal": (143, 167)}[system]
    for c in crystals:
        sg = spglib.get_symmetry_dataset((c.lattice, c.frac, c.numbers), symprec=0.1).number
        assert lo <= sg <= hi and sg == c.spacegroup
        assert len(c.numbers) <= 60
        assert distances_ok(c, 1.0, 0.6)
        d = c.to_structure().distance_matrix + np.eye(len(c.numbers)) * 99
        assert d.min() >= 1.0
        assert not is_excluded(c.formula, c.spacegroup)


def test_space_group_list_filter():
    for c in generate("random", "225,221", 3, 3):
        assert c.spacegroup in (221, 225)


def test_random_composition_charge_balanced():
    from pymatgen.core import Composition

    rng = np.random.default_rng(0)
    comps = [random_composition(rng) for _ in range(40)]
    ionic = [c for c in comps if any(el in ("O", "F", "Cl", "S", "N", "Se", "Br", "I") for el in c)]
    assert len(ionic) > 10
    balanced = sum(bool(Composition(c).oxi_state_guesses(max_sites=-1)) for c in ionic[:10])
    assert balanced >= 8
    assert all(1 <= len(c) <= 4 for c in comps)


def test_exclusion_list_matches_real(real_dir, cubic_cif):
    assert is_excluded("CaF2", 225) and is_excluded("Ca2F4", 225)
    assert not is_excluded("CaF2", 221)
    c = load_crystal(cubic_cif)
    assert c.key in exclusion_set()
    rebuilt = build_exclusion_list(real_dir)
    assert set(rebuilt) == set(exclusion_set())


def test_files_generator_excludes_benchmark(real_dir):
    with pytest.raises(InputError, match="exclusion"):
        generate("files:" + str(real_dir / "cubic"), "cubic", 1, 0)  # every file is excluded -> none left


def test_split_stable_and_balanced():
    assert split_of("NaCl", 225) == split_of("NaCl", 225)
    splits = [split_of(f"A{i}B", 225) for i in range(2000)]
    frac = {s: splits.count(s) / 2000 for s in ("train", "val", "test")}
    assert 0.76 < frac["train"] < 0.84 and 0.07 < frac["val"] < 0.13
    assert split_of("NaCl", 225, (1.0, 0.0, 0.0)) == "train"


@pytest.mark.parametrize("bad", ["cubicc", "0", "231", ""])
def test_bad_system(bad):
    with pytest.raises(InputError):
        parse_system(bad)


def test_bad_generator():
    with pytest.raises(InputError):
        generate("nope", "cubic", 1, 0)
    with pytest.raises(InputError):
        generate("random", "cubic", 0, 0)


def _trigonal_template(formula: str, spacegroup: int):
    from powdersolve.structures.generators.prototypes import _templates

    return next(c for c, sg, _ in _templates(parse_system("trigonal"), 20)
                if c.composition.reduced_formula == formula and sg == spacegroup)


@pytest.mark.parametrize("formula, spacegroup", [("Se", 152), ("As", 166), ("Sm", 166)])
def test_perturbation_keeps_space_group_and_moves_free_coordinates(formula, spacegroup):
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from powdersolve.structures.generators import perturb_symmetric

    s = _trigonal_template(formula, spacegroup)
    moved = [perturb_symmetric(s, np.random.default_rng(k), 0.3) for k in range(4)]
    for m in moved:
        assert len(m) == len(s)
        assert SpacegroupAnalyzer(m, symprec=1e-3).get_space_group_number() == spacegroup
        # Each atom moved at most the amount (the nearest old site of the same orbit is within it).
        d = m.lattice.get_all_distances(m.frac_coords, s.frac_coords)
        assert d.min(axis=1).max() <= 0.3 + 1e-6
    assert max(np.abs(m.frac_coords - s.frac_coords).max() for m in moved) > 1e-3  # not a fixed point
    again = perturb_symmetric(s, np.random.default_rng(0), 0.3)
    assert np.allclose(again.frac_coords, moved[0].frac_coords)


def test_group_swap_gives_elements_their_group_neighbours():
    from powdersolve.structures.generators.prototypes import _substitute

    s = _trigonal_template("As", 166)
    plain = {_substitute(s, (), np.random.default_rng(k)).composition.reduced_formula for k in range(30)}
    swapped = {_substitute(s, (), np.random.default_rng(k), group_swap=True).composition.reduced_formula
               for k in range(30)}
    assert plain == {"As"}
    assert len(swapped) > 1 and swapped <= {"N", "P", "As", "Sb", "Bi"}


def test_perturbed_prototypes_pass_the_filters():
    crystals = generate("prototypes", "trigonal", 6, [5, 0], max_atoms=20, perturb=0.3, group_swap=True)
    for c in crystals:
        sg = spglib.get_symmetry_dataset((c.lattice, c.frac, c.numbers), symprec=0.1).number
        assert sg == c.spacegroup and 143 <= sg <= 167
        assert distances_ok(c, 1.0, 0.6) and not is_excluded(c.formula, c.spacegroup)
    with pytest.raises(InputError):
        generate("prototypes", "trigonal", 1, 0, perturb=-0.1)


@pytest.fixture(scope="module")
def dimer_crystals():
    return generate("dimers", "orthorhombic", 4, [3, 0], max_atoms=40)


def test_dimer_crystals_hold_pairs_whose_partner_is_the_nearest_atom(dimer_crystals):
    from pymatgen.core import Element

    from powdersolve.structures.generators.dimers import DIMER_UNITS

    bonds = {}
    for u in DIMER_UNITS:
        bonds.setdefault(u.element, []).append(u.bond)
    for c in dimer_crystals:
        assert 16 <= c.spacegroup <= 74 and distances_ok(c, 1.0, 0.6) and not is_excluded(c.formula, c.spacegroup)
        d = c.to_structure().distance_matrix + np.eye(len(c.numbers)) * 99
        nearest = d.argmin(axis=1)
        paired = [i for i in range(len(c.numbers))
                  if c.numbers[nearest[i]] == c.numbers[i] and nearest[nearest[i]] == i
                  and any(abs(d[i, nearest[i]] - b) <= 0.031 * b
                          for b in bonds.get(Element.from_Z(int(c.numbers[i])).symbol, []))]
        # Every atom of the pair-forming element sits in a mutual nearest-neighbour pair of a dimer length.
        species = {int(c.numbers[i]) for i in paired}
        assert species, c.formula
        for z in species:
            assert all(i in paired for i in np.flatnonzero(c.numbers == z)), c.formula


def test_dimer_generator_is_deterministic(dimer_crystals):
    again = generate("dimers", "orthorhombic", 4, [3, 0], max_atoms=40)
    assert all(_same(a, b) for a, b in zip(dimer_crystals, again))


def test_dimer_orbit_pairs_swapped_by_site_symmetry():
    """On an inversion centre of P-1 the pair is one orbit of 2 atoms; on a general position of P1, two orbits."""
    from powdersolve.structures.generators.dimers import dimer_orbit

    lattice = np.diag([4.0, 5.0, 6.0])
    rng = np.random.default_rng(0)
    rot = np.array([np.eye(3), -np.eye(3)])
    trans = np.zeros((2, 3))
    (orbit,) = dimer_orbit(rot, trans, lattice, np.array([0.5, 0.5, 0.5]), 2.28, rng)
    assert len(orbit) == 2
    assert np.linalg.norm((orbit[0] - orbit[1]) @ lattice) == pytest.approx(2.28)
    assert np.allclose((orbit[0] + orbit[1]) / 2, 0.5)
    first, second = dimer_orbit(rot[:1], trans[:1], lattice, np.array([0.1, 0.2, 0.3]), 1.49, rng)
    assert len(first) == len(second) == 1
    assert np.linalg.norm((first[0] - second[0]) @ lattice) == pytest.approx(1.49)
    # A 3-fold axis alone reverses no direction: no pair can sit on it.
    c3 = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[0, -1, 0], [1, -1, 0], [0, 0, 1]],
                   [[-1, 1, 0], [-1, 0, 0], [0, 0, 1]]], dtype=float)
    hexagonal = np.array([[4.0, 0, 0], [-2.0, 2.0 * np.sqrt(3), 0], [0, 0, 5.0]])
    assert dimer_orbit(c3, np.zeros((3, 3)), hexagonal, np.zeros(3), 2.0, rng) == []
