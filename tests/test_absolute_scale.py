"""Absolute scale from the cell's content: the expected mean and variance are those of the true CMED,
a map on the wrong scale is put back on the truth, its shape is kept, and impossible contents are refused."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import InputError
from powdersolve.maps.scale import (
    MAX_Z_COST,
    absolute_scale,
    absolute_scale_from_map,
    expected_moments,
    formula_units_from_map,
    grid_hkl,
    read_formula_units,
)
from powdersolve.metrics import map_correlation
from powdersolve.model import ModelConfig, model_band
from powdersolve.structures import Crystal

N = 32


def _crystal(group: str, a: float, species: list[str], coords: list[list[float]], number: int) -> Crystal:
    return Crystal.from_structure(Structure.from_spacegroup(group, Lattice.cubic(a), species, coords), number)


CRYSTALS = {
    "Au (fcc, 4 atoms, all centring-related)": _crystal("Fm-3m", 4.08, ["Au"], [[0, 0, 0]], 225),
    "Ne (light, large cell)": _crystal("Fm-3m", 4.46, ["Ne"], [[0, 0, 0]], 225),
    "NaCl": _crystal("Fm-3m", 5.64, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]], 225),
    "CsCl": _crystal("Pm-3m", 4.12, ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]], 221),
}


@pytest.mark.parametrize("name", list(CRYSTALS))
def test_expected_moments_are_those_of_the_true_density(name: str) -> None:
    c = CRYSTALS[name]
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    mean, var = expected_moments(c.lattice, c.numbers, c.occupancy, 8.0, grid_hkl(N))
    assert mean == pytest.approx(truth.mean(), rel=1e-6)  # F(000)/V exactly
    assert var == pytest.approx(truth.var(), rel=0.02)  # atoms >= 2.8 A apart barely overlap at B = 8


def test_wilson_without_the_000_term_is_too_high_for_a_centred_cell() -> None:
    """Why the (000) term is counted: Wilson's sum over h != 0 alone overestimates small centred cells."""
    c = CRYSTALS["Au (fcc, 4 atoms, all centring-related)"]
    hkl = grid_hkl(N)
    _, var = expected_moments(c.lattice, c.numbers, c.occupancy, 8.0, hkl)
    wilson = var + (np.sum(c.numbers) ** 2 - np.sum(c.numbers.astype(float) ** 2)) / c.volume**2
    assert wilson > 1.05 * density_grid(c, DensityConfig(b_iso=8.0, grid=N)).var()


def test_a_map_on_the_wrong_scale_is_put_back_on_the_truth() -> None:
    c = CRYSTALS["NaCl"]
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    wrong = np.stack([5.7 * truth + 1.0, 0.3 * truth - 0.2]).astype(np.float32)
    fixed = absolute_scale(wrong, c.lattice, c.numbers, c.occupancy, 8.0, stretch=True)
    assert fixed.dtype == np.float32 and fixed.shape == wrong.shape
    np.testing.assert_allclose(fixed, np.stack([truth, truth]), atol=0.01 * truth.max())
    assert map_correlation(fixed[0], truth) == pytest.approx(map_correlation(wrong[0], truth), abs=1e-6)


def test_a_band_limited_map_gets_the_variance_of_its_band() -> None:
    c = CRYSTALS["NaCl"]
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    coef = np.fft.fftn(truth)
    f = np.rint(np.fft.fftfreq(N) * N)
    h = np.stack(np.meshgrid(f, f, f, indexing="ij"), -1)
    band = np.abs(h).max(-1) <= 4
    limited = np.fft.ifftn(np.where(band, coef, 0)).real
    fixed = absolute_scale(2 * limited, c.lattice, c.numbers, c.occupancy, 8.0, box=(4, 4, 4))  # shrunk
    np.testing.assert_allclose(fixed, limited, atol=0.02 * limited.max())  # d_min 1.4 A: interatomic terms ~3%


def test_a_constant_map_gets_the_mean_only() -> None:
    c = CRYSTALS["CsCl"]
    out = absolute_scale(np.full((1, N, N, N), 3.0), c.lattice, c.numbers, c.occupancy, 8.0)
    assert np.allclose(out, expected_moments(c.lattice, c.numbers, None, 8.0, grid_hkl(N))[0])
    assert np.allclose(out, np.sum(c.numbers) / c.volume, rtol=1e-3)  # f(0) = Z


def test_too_many_atoms_for_the_cell_are_refused() -> None:
    c = CRYSTALS["Au (fcc, 4 atoms, all centring-related)"]
    with pytest.raises(InputError, match="cannot fit"):
        expected_moments(c.lattice, np.full(400, 79), None, 8.0, grid_hkl(N))
    with pytest.raises(InputError, match="composition"):
        expected_moments(c.lattice, np.zeros(0, dtype=int), None, 8.0, grid_hkl(N))
    with pytest.raises(InputError, match="grids"):
        absolute_scale(np.zeros((N, N)), c.lattice, c.numbers, None, 8.0)


def test_the_model_band_is_the_fourier_box() -> None:
    assert model_band(ModelConfig(arch="fourier", hkl_box=(6, 6, 5))) == (6, 6, 5)
    assert model_band(ModelConfig(arch="mlp")) is None
    assert len(grid_hkl(8)) == 8**3 - 1 and len(grid_hkl(8, (1, 1, 1))) == 26


def test_a_map_with_the_right_mean_is_shrunk_never_stretched() -> None:
    c = CRYSTALS["NaCl"]
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    mean = truth.mean()
    both = np.stack([mean + 3 * (truth - mean), mean + 0.5 * (truth - mean)]) + 0.1  # mean off by 16%: < 1.35
    out = absolute_scale(both, c.lattice, c.numbers, c.occupancy, 8.0)
    np.testing.assert_allclose(out[0], truth, atol=0.01 * truth.max())  # too much variance: shrunk onto the truth
    np.testing.assert_allclose(out[1], mean + 0.5 * (truth - mean), atol=0.01 * truth.max())  # too little: kept


@pytest.mark.parametrize(("name", "formula", "z"), [("Au (fcc, 4 atoms, all centring-related)", "Au", 4),
                                                    ("NaCl", "NaCl", 4), ("CsCl", "CsCl", 1)])
def test_z_is_read_from_the_map_whatever_its_electron_scale(name: str, formula: str, z: int) -> None:
    """The count is scale-free: the network's 5.7-fold over-scaled neon map must still give its Z."""
    c = CRYSTALS[name]
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    for factor in (1.0, 5.7, 0.4):
        found, candidates = formula_units_from_map(truth * factor, c.lattice, Composition(formula))
        assert found == z and candidates[0][0] == z and candidates[0][1] <= MAX_Z_COST


def test_an_unclear_z_is_not_guessed() -> None:
    """A gold map with a ghost at the body centre, 40% of the atom's height: one atom and a ghost, or two
    atoms, fit about equally badly, so no Z is read (the network's scale is kept)."""
    lattice = np.eye(3) * 4.0
    x = np.arange(N) / N
    axes = np.meshgrid(x, x, x, indexing="ij")

    def atom(centre: float) -> np.ndarray:
        d2 = sum((((v - centre + 0.5) % 1.0 - 0.5) * 4.0) ** 2 for v in axes)  # A^2, minimum image
        return np.exp(-d2 / 0.5)

    found, candidates = formula_units_from_map(atom(0.0) + 0.4 * atom(0.5), lattice, Composition("Au"))
    assert found is None and [z for z, _ in candidates][:2] in ([1, 2], [2, 1])


def test_a_map_on_the_wrong_scale_is_put_back_with_z_read_from_it() -> None:
    """NaCl's map with 5.7 times its electrons, the formula given without Z, comes back on the truth."""
    from powdersolve.evaluate import cell_formula

    c = CRYSTALS["NaCl"]
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    assert cell_formula(c) == "Na4Cl4"
    scaled, z = absolute_scale_from_map(truth[None] * 5.7, c.lattice, "NaCl", 8.0)
    assert z == 4
    assert scaled[0].mean() == pytest.approx(truth.mean(), rel=1e-6)
    assert np.abs(scaled[0] - truth).max() < 0.02 * truth.max()


def test_a_z_that_overfills_the_cell_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clear Z whose atoms cannot fit the cell (here 400 NaCl in a 5.64 A cube) is refused, not an error."""
    import powdersolve.maps.scale as module

    c = CRYSTALS["NaCl"]
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    monkeypatch.setattr(module, "formula_units_from_map", lambda *_: (400, [(400, 0.1), (4, 0.5)]))
    assert read_formula_units(truth, c.lattice, "Na2Cl2", 8.0) == ("NaCl", None, [(400, 0.1), (4, 0.5)], "overfills")
    grids, z = absolute_scale_from_map(truth[None], c.lattice, "NaCl", 8.0)
    assert z is None and np.array_equal(grids[0], truth)


def test_a_map_off_by_more_than_the_factor_is_stretched_too() -> None:
    """A half-scale map (the network's scale wrong for the whole composition) is stretched back onto the truth
    with ``stretch_beyond``; a map whose mean is close keeps shrink-only's rule and its own, lower variance."""
    c = CRYSTALS["NaCl"]
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=N))
    mean, var = expected_moments(c.lattice, c.numbers, c.occupancy, 8.0, grid_hkl(N))
    half, close = truth * 0.5, truth.mean() + (truth - truth.mean()) * 0.5
    back = absolute_scale(np.stack([half, close]), c.lattice, c.numbers, c.occupancy, 8.0, stretch_beyond=1.2)
    assert back[0].mean() == pytest.approx(mean, rel=1e-6) and back[0].var() == pytest.approx(var, rel=1e-6)
    assert np.abs(back[0] - truth).max() < 0.02 * truth.max()
    assert back[1].var() == pytest.approx(close.var(), rel=1e-6)  # mean right: not stretched
    default = absolute_scale(half, c.lattice, c.numbers, c.occupancy, 8.0)  # off by 2 > STRETCH_BEYOND
    assert default.var() == pytest.approx(var, rel=1e-6)
    shrunk = absolute_scale(half, c.lattice, c.numbers, c.occupancy, 8.0, stretch_beyond=None)
    assert shrunk.var() == pytest.approx(half.var(), rel=1e-6)
