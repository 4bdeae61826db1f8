"""Space-group search in density maps: exact CMED maps, moved to a random origin, must show their group."""

from __future__ import annotations

import numpy as np
import pytest
import spglib
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from powdersolve.cell import metric_family
from powdersolve.density import density_grid
from powdersolve.errors import InputError
from powdersolve.maps.centring import shift_grid
from powdersolve.maps.symmetry import (
    FAMILY_GROUPS,
    fourier_resample,
    group_operations,
    plausible_groups,
    search_space_groups,
    symmetrise_map,
)
from powdersolve.solve.atoms import density_to_structure
from powdersolve.solve.reading import symmetrised_maps
from powdersolve.structures import Crystal

CASES = {
    # name: (symbol, lattice, species, coords, expected group)
    "quartz": ("P3_221", Lattice.hexagonal(4.91, 5.40), ["Si", "O"],
               [[0.470, 0, 1 / 6], [0.414, 0.268, 0.286]], 154),
    # A 50-voxel axis samples B = 8 A^2 maps without aliasing up to c ~ 15 A; longer axes alias.
    "Bi": ("R-3m", Lattice.hexagonal(4.546, 11.862), ["Bi"], [[0, 0, 0.2339]], 166),
    "FeS2": ("Pa-3", Lattice.cubic(5.417), ["Fe", "S"], [[0, 0, 0], [0.385] * 3], 205),
    "FeSi": ("P2_13", Lattice.cubic(4.49), ["Fe", "Si"], [[0.137] * 3, [0.842] * 3], 198),
    "rutile": ("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"], [[0, 0, 0], [0.3048, 0.3048, 0]], 136),
    "alpha-U": ("Cmcm", Lattice.orthorhombic(2.854, 5.869, 4.955), ["U"], [[0, 0.1025, 0.25]], 63),
}


def _case(name: str) -> tuple[Structure, Crystal, int]:
    symbol, lat, species, coords, number = CASES[name]
    s = Structure.from_spacegroup(symbol, lat, species, coords)
    return s, Crystal.from_structure(s), number


def test_operations_are_the_groups_own() -> None:
    for number in (148, 154, 166, 194, 205, 227, 230):
        rot, tau, symbol = group_operations(number)
        assert spglib.get_spacegroup_type_from_symmetry(rot, tau).number == number
    assert len(group_operations(166)[0]) == 36  # R-3m in hexagonal axes: 12 x 3 lattice points
    with pytest.raises(InputError):
        group_operations(231)


def test_fourier_resample_keeps_a_band_limited_map() -> None:
    _, c, _ = _case("FeS2")
    g50 = density_grid(c)
    up = fourier_resample(fourier_resample(g50, 48), 50)
    assert np.corrcoef(up.ravel(), g50.ravel())[0, 1] > 0.999
    assert fourier_resample(g50, 48).mean() == pytest.approx(g50.mean(), rel=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_exact_map_at_a_random_origin_shows_its_group(name: str) -> None:
    s, c, number = _case(name)
    family = metric_family(c.lattice)
    shift = np.random.default_rng(number).random(3)
    grid = shift_grid(density_grid(c), shift)
    found = search_space_groups(grid, family)
    best = plausible_groups(found)[0]
    assert best.number == number and best.cc_min > 0.999
    # Averaging over the found group at the found origin is the map moved to the standard origin.
    averaged = symmetrise_map(grid, best.number, best.origin)
    moved = shift_grid(grid, -np.asarray(best.origin))
    assert np.corrcoef(averaged.ravel(), moved.ravel())[0, 1] > 0.99
    # A group the structure does not have scores clearly worse at its best origin.
    wrong = {154: 166, 166: 191, 205: 225, 198: 221, 136: 123, 63: 65}[number]
    assert next(g for g in found if g.number == wrong).cc_min < best.cc_min - 0.1


def test_averaging_removes_symmetry_breaking_noise_and_atoms_follow() -> None:
    s, c, number = _case("quartz")
    truth = density_grid(c)
    rng = np.random.default_rng(1)
    # Smooth noise (Fourier components below 6 per axis), like a model's error: it breaks the symmetry.
    low = (np.abs(np.fft.fftfreq(50, 1 / 50)) < 6).astype(float)
    noise = np.real(np.fft.ifftn(np.fft.fftn(rng.normal(size=truth.shape)) * np.einsum("i,j,k->ijk", low, low, low)))
    noisy = truth + 0.25 * truth.std() / noise.std() * noise
    best = plausible_groups(search_space_groups(noisy, "hexagonal"))[0]
    assert best.number == number
    averaged = symmetrise_map(noisy, best.number, best.origin)
    truth_moved = shift_grid(truth, -np.asarray(best.origin))
    cc = lambda a, b: np.corrcoef(a.ravel(), b.ravel())[0, 1]  # noqa: E731
    assert cc(averaged, truth_moved) > cc(noisy, truth)
    res = density_to_structure(averaged, c.lattice, {"Si": 1, "O": 2})
    assert res.spacegroup == number
    assert StructureMatcher().fit(s, res.structure)


def test_pipeline_reads_symmetrised_maps_in_the_groups_of_the_cells_metric() -> None:
    _, c, _ = _case("quartz")
    maps, labels, groups = symmetrised_maps(density_grid(c), c.lattice, "mean", top=2)
    assert len(maps) == 2 and "P3_221" in labels[0] and labels[0].startswith("mean averaged over")
    assert groups[0] == 154
    triclinic = Lattice.from_parameters(5, 6, 7, 80, 100, 110).matrix
    assert set(symmetrised_maps(density_grid(c), triclinic, "mean")[2]) <= {1, 2}


def test_every_space_group_belongs_to_one_metric_family() -> None:
    numbers = sorted(n for groups in FAMILY_GROUPS.values() for n in groups)
    assert numbers == list(range(1, 231))


def test_unequal_grid_steps_along_mixed_axes_are_refused() -> None:
    with pytest.raises(InputError):
        search_space_groups(np.zeros((20, 24, 30)), "hexagonal")
