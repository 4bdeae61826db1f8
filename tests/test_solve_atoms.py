"""Density map -> atoms: exact CMED grids of known structures must give the same structures back."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from powdersolve.cell import metric_family
from powdersolve.density import density_grid
from powdersolve.errors import InputError
from powdersolve.maps.centring import detect_centring, shift_grid
from powdersolve.maps.formula_units import ranked_formula_units
from powdersolve.maps.peaks import ascent_targets, find_peaks, integrate_basins, merge_peaks, min_image_distances
from powdersolve.scattering import form_factor
from powdersolve.solve.atoms import density_to_structure, density_to_structures, symmetrise
from powdersolve.structures import Crystal, load_crystal

CASES = {
    "NaCl": ("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]], 225, 4),
    "CsCl": ("Pm-3m", Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]], 221, 1),
    "CaF2": ("Fm-3m", Lattice.cubic(5.46), ["Ca", "F"], [[0, 0, 0], [0.25, 0.25, 0.25]], 225, 4),
    "SrTiO3": ("Pm-3m", Lattice.cubic(3.905), ["Sr", "Ti", "O"], [[0, 0, 0], [0.5] * 3, [0.5, 0.5, 0]], 221, 1),
    "FeSi": ("P2_13", Lattice.cubic(4.49), ["Fe", "Si"], [[0.137] * 3, [0.842] * 3], 198, 4),
    "FeS2": ("Pa-3", Lattice.cubic(5.417), ["Fe", "S"], [[0, 0, 0], [0.385] * 3], 205, 4),
    "ZnO": ("P6_3mc", Lattice.hexagonal(3.25, 5.21), ["Zn", "O"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]], 186, 2),
}


def _structure(name: str) -> Structure:
    sg, lat, species, coords, _, _ = CASES[name]
    return Structure.from_spacegroup(sg, lat, species, coords)


def _composition(s: Structure) -> dict[str, float]:
    return {el.symbol: amt for el, amt in s.composition.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_exact_cmed_round_trip(name: str) -> None:
    s = _structure(name)
    c = Crystal.from_structure(s)
    res = density_to_structure(density_grid(c), c.lattice, _composition(s))
    assert StructureMatcher().fit(s, res.structure)
    assert res.spacegroup == CASES[name][4]
    assert res.z_formula_units == CASES[name][5]
    assert res.inferred_species_note == ""
    # The grid integral is F(000) = sum of IT92 f(0), which are within 0.1% of the atomic numbers.
    f000 = float(np.sum(form_factor(c.numbers, np.zeros(1))[:, 0] * c.occupancy))
    assert res.total_electrons == pytest.approx(f000, rel=1e-6)
    assert res.total_electrons == pytest.approx(c.n_electrons, rel=1e-3)


@pytest.mark.parametrize("fname", ["trigonal/SiO2_154.cif", "trigonal/Ni3S2_155.cif", "trigonal/GeTe_160.cif"])
def test_real_trigonal_round_trip(real_dir, fname: str) -> None:
    c = load_crystal(real_dir / fname)
    s = c.to_structure()
    res = density_to_structure(density_grid(c), c.lattice, _composition(s))
    assert StructureMatcher().fit(s, res.structure)
    assert res.spacegroup == c.spacegroup


def test_subvoxel_peak_positions() -> None:
    # Voxels are 0.09 A; the log-quadratic fit must place Gaussian-like atoms far better than that.
    s = _structure("FeSi")
    c = Crystal.from_structure(s)
    _, frac, height = find_peaks(density_grid(c))
    d = min_image_distances(frac[: len(s)], c.frac, c.lattice)
    assert d.min(axis=1).max() < 0.01


def test_formula_units_from_unreduced_formula() -> None:
    s = _structure("CaF2")
    c = Crystal.from_structure(s)
    res = density_to_structure(density_grid(c), c.lattice, {"Ca": 2, "F": 4})
    assert res.z_formula_units == 4
    assert res.structure.composition.reduced_formula == "CaF2"


def test_elements_only_composition_infers_ratios() -> None:
    s = _structure("SrTiO3")
    c = Crystal.from_structure(s)
    res = density_to_structure(density_grid(c), c.lattice, {"Sr": 1, "Ti": 1, "O": 1}, ratios_known=False)
    assert StructureMatcher().fit(s, res.structure)
    assert "given elements" in res.inferred_species_note


def test_no_composition_infers_species_and_says_so() -> None:
    s = _structure("NaCl")
    c = Crystal.from_structure(s)
    res = density_to_structure(density_grid(c), c.lattice, None)
    assert StructureMatcher().fit(s, res.structure)
    assert "Na" in res.inferred_species_note and "Cl" in res.inferred_species_note
    assert "common elements" in res.inferred_species_note
    # Electron counts of the two basins are near Z (11, 17): the partition is physical.
    el = np.sort(np.unique(np.round(res.peaks.electrons, 3)))
    assert abs(el[0] - 11) < 1.0 and abs(el[-1] - 17) < 1.0


def test_empty_map_is_an_input_error() -> None:
    with pytest.raises(InputError):
        density_to_structure(np.zeros((20, 20, 20)), np.eye(3) * 5, {"Na": 1})


def test_bader_basins_hold_the_atoms_electrons_on_a_skewed_cell() -> None:
    """Steepest-ascent basins on a hexagonal cell: each atom's basin holds about its Z, all add to F(000)."""
    s = _structure("ZnO")
    c = Crystal.from_structure(s)
    grid = density_grid(c)
    idx, frac, height = find_peaks(grid)
    label = merge_peaks(frac, height, c.lattice, 0.7)
    electrons = integrate_basins(grid, idx, label, s.volume / grid.size, c.lattice)
    assert electrons.sum() == pytest.approx(grid.sum() * s.volume / grid.size, rel=1e-9)
    assert sorted(np.round(electrons).astype(int).tolist()) == pytest.approx([8, 8, 30, 30], abs=1.5)


def test_fourier_shift_matches_integer_roll_and_composes() -> None:
    rng = np.random.default_rng(0)
    grid = rng.random((12, 12, 12))
    assert np.allclose(shift_grid(grid, (0.25, 0.5, 0.0)), np.roll(grid, (3, 6, 0), axis=(0, 1, 2)))
    third = shift_grid(shift_grid(shift_grid(grid, (1 / 3, 0, 0)), (1 / 3, 0, 0)), (1 / 3, 0, 0))
    assert np.allclose(third, grid)


def test_centring_detected_and_imposed() -> None:
    nacl = Crystal.from_structure(_structure("NaCl"))
    name, averaged = detect_centring(density_grid(nacl), "cubic")
    assert name == "F"
    assert np.allclose(averaged, density_grid(nacl), atol=1e-9)
    cscl = Crystal.from_structure(_structure("CsCl"))
    assert detect_centring(density_grid(cscl), "cubic")[0] == "P"
    assert detect_centring(density_grid(nacl), None)[0] == "P"


def test_formula_units_respect_centring_and_cell_volume() -> None:
    # Eight equal peaks: Z = 8 of an element fits best; a cap of 4 atoms or multiples of 3 exclude it.
    electrons = np.full(8, 6.0)
    comp = Structure(Lattice.cubic(3.57), ["C"], [[0, 0, 0]]).composition
    assert ranked_formula_units(electrons, comp)[0][0] == 8
    assert ranked_formula_units(electrons, comp, max_atoms=4)[0][0] <= 4
    assert all(z % 3 == 0 for z, _, _ in ranked_formula_units(electrons, comp, multiple=3))


def test_background_ripples_are_not_missing_atoms_with_a_ghost_fraction() -> None:
    """Four gold atoms and 40 ripples of 2 electrons each (a mis-scaled map's background): counted in full the
    ripples make every Z a poor fit; below half a gold atom they are ignored and Z = 4 fits exactly."""
    electrons = np.concatenate([np.full(4, 80.0), np.full(40, 2.0)])
    comp = Structure(Lattice.cubic(4.08), ["Au"], [[0, 0, 0]]).composition
    assert ranked_formula_units(electrons, comp)[0][2] > 0.2
    z, _, cost = ranked_formula_units(electrons, comp, ghost_fraction=0.5)[0]
    assert z == 4 and cost < 1e-9
    # A real atom left out is still counted: three of the four atoms cost a whole atom.
    assert ranked_formula_units(electrons, comp, ghost_fraction=0.5, max_atoms=3)[0][2] >= 1 / 3 - 1e-9


def test_symmetry_tolerance_escalates_to_the_cell_family() -> None:
    """Atoms of rock salt displaced by ~0.1 A: P1 at 0.1 A, Fm-3m once the tolerance is raised."""
    s = _structure("NaCl")
    rng = np.random.default_rng(0)
    noisy = s.copy()
    for i in range(len(noisy)):
        noisy.translate_sites([i], rng.normal(0, 0.05, 3), frac_coords=False)
    assert metric_family(s.lattice.matrix) == "cubic"
    assert symmetrise(noisy, 0.1)[0] != 225
    sg, _, out, note = symmetrise(noisy, 0.1, "cubic")
    assert sg == 225 and "raised" in note
    assert StructureMatcher().fit(out, s)


def test_several_formula_units_read_from_one_map() -> None:
    s = _structure("CaF2")
    c = Crystal.from_structure(s)
    results = density_to_structures(density_grid(c), c.lattice, _composition(s), n_z=2, centre=False)
    assert len(results) == 2 and results[0].z_formula_units == 4
    assert StructureMatcher().fit(results[0].structure, s)


def test_pseudo_cubic_rock_salt_keeps_its_hexagonal_cell() -> None:
    """Rock salt stretched 3% along [111]: at 0.2 A spglib calls it Fm-3m in a larger cubic cell; the
    reading must keep the given hexagonal cell and report R-3m (found at a lowered tolerance)."""
    a = 4.2
    s = Structure.from_spacegroup("R-3m", Lattice.hexagonal(a, a * np.sqrt(6) * 1.03), ["Ge", "Te"],
                                  [[0, 0, 0], [0, 0, 0.5]])
    number, symbol, out, note = symmetrise(s, 0.2, "hexagonal")
    assert (number, symbol) == (166, "R-3m") and "lowered" in note
    assert abs(out.volume - s.volume) < 1e-6 * s.volume


def test_whole_voxel_shifts_are_rolls_equal_to_the_fourier_shift() -> None:
    from powdersolve.maps.centring import shifted_maps

    rng = np.random.default_rng(0)
    grid = rng.random((12, 12, 18))
    spec = np.fft.fftn(grid)
    shifts = [(0.5, 0.0, 0.5), (0.25, 0.5, 1 / 3), (2 / 3, 1 / 3, 1 / 3)]
    fourier = shifted_maps(spec, shifts)
    fast = shifted_maps(spec, shifts, grid)
    for a, b in zip(fourier, fast):
        np.testing.assert_allclose(b, a, atol=1e-12)
    np.testing.assert_array_equal(fast[0], np.roll(grid, (6, 0, 9), axis=(0, 1, 2)))


def test_min_image_distances_equal_pymatgens() -> None:
    """Against pymatgen's own minimum-image distances, in an oblique cell."""
    lattice = Lattice.from_parameters(5.1, 6.3, 7.2, 78.0, 101.0, 95.0)
    rng = np.random.default_rng(3)
    a, b = rng.random((40, 3)), rng.random((30, 3))
    assert np.allclose(min_image_distances(a, b, lattice.matrix), lattice.get_all_distances(a, b), atol=1e-9)


def test_every_ascent_ends_at_a_local_maximum_of_the_periodic_map() -> None:
    rng = np.random.default_rng(4)
    grid = np.fft.ifftn(np.fft.fftn(rng.random((20, 20, 20))) * np.exp(-0.05 * np.sum(
        np.stack(np.meshgrid(*[np.fft.fftfreq(20, 1 / 20)] * 3, indexing="ij")) ** 2, axis=0))).real
    ends = np.unique(ascent_targets(grid, Lattice.from_parameters(4, 5, 6, 80, 95, 100).matrix))
    neighbours = np.stack([np.roll(grid, (i, j, k), axis=(0, 1, 2)) for i in (-1, 0, 1) for j in (-1, 0, 1)
                           for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)])
    is_max = np.all(grid[None] >= neighbours, axis=0).ravel()
    assert len(ends) > 1 and np.all(is_max[ends])
    assert set(ends) == set(np.flatnonzero(is_max))
