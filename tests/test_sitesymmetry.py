"""Site symmetry: the stabiliser projector's trace counts a site's free coordinates, and it keeps
exactly the displacements that leave the site on its special position."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.symmetry.groups import SpaceGroup

from powdersolve.structures.sitesymmetry import site_projector, site_stabiliser

LATTICE = 5.0 * np.eye(3)


def _ops(symbol: str) -> tuple[np.ndarray, np.ndarray]:
    ops = SpaceGroup(symbol).symmetry_ops
    return np.array([o.rotation_matrix for o in ops]), np.array([o.translation_vector for o in ops])


@pytest.mark.parametrize("symbol, x, free, order", [
    ("Fm-3m", [0, 0, 0], 0, 48),  # 4a, m-3m
    ("Fm-3m", [0.25, 0.25, 0.25], 0, 24),  # 8c, -43m
    ("Fm-3m", [0.3, 0.3, 0.3], 1, 6),  # 32f, .3m: x, x, x
    ("Fm-3m", [0.3, 0.0, 0.0], 1, 8),  # 24e, 4m.m: x, 0, 0
    ("Fm-3m", [0.11, 0.23, 0.37], 3, 1),  # 192l, general
    ("P6_3/mmc", [1 / 3, 2 / 3, 0.25], 0, 12),  # 2c, -6m2
])
def test_trace_counts_the_free_coordinates(symbol: str, x: list[float], free: int, order: int) -> None:
    rot, trans = _ops(symbol)
    x = np.array(x, dtype=np.float64)
    assert site_stabiliser(rot, trans, x, LATTICE).sum() == order
    proj = site_projector(rot, trans, x, LATTICE)
    assert round(float(np.trace(proj))) == free
    np.testing.assert_allclose(proj @ proj, proj, atol=1e-12)  # a projector


def test_projected_displacements_keep_the_site_symmetry() -> None:
    rot, trans = _ops("Fm-3m")
    x = np.array([0.3, 0.3, 0.3])
    stab = site_stabiliser(rot, trans, x, LATTICE)
    moved = x + site_projector(rot, trans, x, LATTICE) @ np.array([0.02, -0.01, 0.05])
    np.testing.assert_allclose(moved - moved[0], 0, atol=1e-12)  # still x, x, x
    assert site_stabiliser(rot, trans, moved, LATTICE).sum() == stab.sum()
