"""Invariants of the CMED target and the structure factors behind it."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from powdersolve.density import DensityConfig, density_at, density_grid, grid_coefficients
from powdersolve.errors import InputError
from powdersolve.scattering import hkl_sphere, structure_factors
from powdersolve.structures import Crystal, load_crystal


def _rocksalt(a: float = 5.64) -> Crystal:
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return Crystal.from_structure(s, 225)


def _oblique() -> Crystal:
    lat = Lattice.from_parameters(3.1, 3.4, 5.2, 70, 100, 115)
    s = Structure(lat, ["Si", "O", "O"], [[0.1, 0.2, 0.3], [0.6, 0.1, 0.9], [0.35, 0.7, 0.5]])
    return Crystal.from_structure(s, 1)


@pytest.mark.parametrize("crystal", [_rocksalt(), _oblique()], ids=["rocksalt", "oblique"])
def test_grid_integrates_to_electron_count(crystal: Crystal) -> None:
    g = density_grid(crystal, DensityConfig(grid=40))
    total = g.sum() * crystal.volume / g.size
    assert total == pytest.approx(crystal.n_electrons, rel=0.01)


def test_grid_fourier_coefficients_equal_structure_factors() -> None:
    c = _rocksalt()
    g = density_grid(c, DensityConfig(grid=50))
    coeffs = grid_coefficients(g, c.volume)
    hkl = hkl_sphere(c.reciprocal, 1.2)
    f = structure_factors(c, hkl, 8.0)
    idx = np.mod(hkl, 50)
    got = coeffs[idx[:, 0], idx[:, 1], idx[:, 2]]
    big = np.abs(f) > 1e-3 * np.abs(f).max()
    np.testing.assert_allclose(got[big], f[big], rtol=1e-3, atol=1e-6 * np.abs(f).max())


@pytest.mark.parametrize("crystal", [_rocksalt(), _oblique()], ids=["rocksalt", "oblique"])
def test_point_evaluator_equals_grid(crystal: Crystal) -> None:
    n = 24
    g = density_grid(crystal, DensityConfig(grid=n))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, n, size=(64, 3))
    pts = density_at(crystal, idx / n)
    np.testing.assert_allclose(pts, g[idx[:, 0], idx[:, 1], idx[:, 2]], rtol=1e-6, atol=1e-8 * g.max())


def test_origin_shift_shifts_the_map() -> None:
    c = _rocksalt()
    shifted = Crystal(c.lattice, (c.frac + 0.5) % 1.0, c.numbers, c.occupancy)
    g1 = density_grid(c, DensityConfig(grid=20))
    g2 = density_grid(shifted, DensityConfig(grid=20))
    np.testing.assert_allclose(np.roll(g1, (10, 10, 10), axis=(0, 1, 2)), g2, atol=1e-9 * g1.max())


def test_partial_occupancy_weights_electrons() -> None:
    s = Structure(Lattice.cubic(4.0), [{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]])
    c = Crystal.from_structure(s, 221)
    assert c.n_electrons == pytest.approx(27.0)
    g = density_grid(c, DensityConfig(grid=20))
    assert g.sum() * c.volume / g.size == pytest.approx(27.0, rel=0.01)


def test_benchmark_maps_have_no_ringing(real_dir) -> None:
    for cif in sorted((real_dir / "cubic").glob("*.cif"))[:12]:
        c = load_crystal(cif)
        g = density_grid(c)
        assert g.min() > -1e-3 * g.max(), cif.name


def test_bad_config_is_an_input_error() -> None:
    with pytest.raises(InputError):
        DensityConfig(grid=1000)
    with pytest.raises(InputError):
        DensityConfig(b_iso=0.0)
