"""Map sharpening: electron count kept, the blur is the Debye-Waller factor, bad settings are refused."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import InputError
from powdersolve.maps.sharpen import gaussian_blur, sharpen_map
from powdersolve.structures import Crystal


def _crystal() -> Crystal:
    s = Structure.from_spacegroup("R-3m", Lattice.hexagonal(3.8, 10.5), ["Bi"], [[0, 0, 0.23]])
    return Crystal.from_structure(s, 166)


def test_blur_adds_to_the_debye_waller_factor() -> None:
    c = _crystal()
    b8 = density_grid(c, DensityConfig(b_iso=8.0, grid=36))
    b10 = density_grid(c, DensityConfig(b_iso=10.0, grid=36))
    blurred = gaussian_blur(b8, c.lattice, 2.0)
    assert np.abs(blurred - b10).max() < 1e-3 * b10.max()


def test_sharpening_keeps_electrons_and_is_batched() -> None:
    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=24))
    rng = np.random.default_rng(0)
    noisy = np.stack([truth + rng.normal(0, 0.05 * truth.max(), truth.shape) for _ in range(2)])
    out = sharpen_map(noisy, c.lattice, 1.5, 2.0)
    assert out.shape == noisy.shape
    assert np.allclose(out.mean(axis=(1, 2, 3)), noisy.mean(axis=(1, 2, 3)), rtol=1e-9)
    assert np.allclose(out[1], sharpen_map(noisy[1], c.lattice, 1.5, 2.0))
    # power 1 without blur is clipping negative density at a kept electron count
    clipped = sharpen_map(noisy[0], c.lattice, 1.0, 0.0)
    assert clipped.min() >= 0
    assert np.allclose(clipped, np.maximum(noisy[0], 0) * noisy[0].mean() / np.maximum(noisy[0], 0).mean())


def test_sharpening_a_broadened_map_brings_it_closer_to_the_truth() -> None:
    c = _crystal()
    truth = density_grid(c, DensityConfig(b_iso=8.0, grid=36))
    broad = density_grid(c, DensityConfig(b_iso=14.0, grid=36))
    out = sharpen_map(broad, c.lattice, 1.5, 2.0)
    assert np.abs(out - truth).mean() < np.abs(broad - truth).mean()


@pytest.mark.parametrize("power, b", [(0.5, 2.0), (1.5, -1.0)])
def test_bad_settings_are_refused(power: float, b: float) -> None:
    with pytest.raises(InputError):
        sharpen_map(np.ones((4, 4, 4)), np.eye(3) * 4, power, b)
