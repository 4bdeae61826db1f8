"""Moving a solved structure to the origin and hand of a map."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import InputError
from powdersolve.solve.origin import align_to_map, best_shift
from powdersolve.structures.crystal import Crystal

CFG = DensityConfig(b_iso=8.0, grid=24)


def _map(s: Structure) -> np.ndarray:
    return density_grid(Crystal.from_structure(s, 1), CFG)


def _moved(s: Structure, t) -> Structure:
    out = s.copy()
    out.translate_sites(list(range(len(out))), t, frac_coords=True, to_unit_cell=True)
    return out


def test_any_origin_is_moved_back_onto_the_map() -> None:
    gaas = Structure.from_spacegroup("F-43m", Lattice.cubic(5.65), ["Ga", "As"], [[0, 0, 0], [0.25] * 3])
    target = _map(gaas)
    moved = _moved(gaas, [0.37, 0.5, 0.111])  # not a multiple of the 1/48 search step
    t, cc = best_shift(target, _map(moved))
    assert cc == pytest.approx(1.0, abs=1e-6)
    # Any origin that maps the structure onto itself will do; the map must then be the target's.
    np.testing.assert_allclose(_map(align_to_map(moved, target)), target, atol=1e-4 * target.max())


def test_the_hand_of_the_map_is_taken() -> None:
    nisi = Structure.from_spacegroup("P2_13", Lattice.cubic(4.45), ["Ni", "Si"], [[0.14] * 3, [0.84] * 3])
    inverse = nisi.copy()
    for i, site in enumerate(nisi):
        inverse.replace(i, site.species, -site.frac_coords)
    target = _map(nisi)
    assert np.abs(_map(inverse) - target).max() > 0.1 * target.max()  # chiral: the inverse is another map
    np.testing.assert_allclose(_map(align_to_map(_moved(inverse, [0.2, 0.7, 0.4]), target)), target,
                               atol=1e-4 * target.max())
    kept = align_to_map(_moved(inverse, [0.2, 0.7, 0.4]), target, inversion=False)
    assert np.abs(_map(kept) - target).max() > 0.1 * target.max()


def test_grids_must_match() -> None:
    with pytest.raises(InputError):
        best_shift(np.zeros((8, 8, 8)), np.zeros((6, 6, 6)))
