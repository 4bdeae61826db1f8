"""Le Bail extraction on patterns from an independent simulator (pymatgen sticks broadened in tests/independent.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from independent import CU_KA1, CU_KA2, bismuth, pattern, rock_salt, sticks

from powdersolve.diffraction.lebail import LeBailConfig, le_bail
from powdersolve.diffraction.reflections import allowed, system_of_cell
from powdersolve.errors import InputError


def _lp(two_theta: np.ndarray) -> np.ndarray:
    th = np.radians(two_theta) / 2
    return (1 + np.cos(2 * th) ** 2) / (np.sin(th) ** 2 * np.cos(th))


def _compare(result, structure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Extracted area (intensity x LP) and pymatgen's intensity of the reflections alone in their group."""
    pos, ref, _ = sticks(structure)
    alone = Counter(r.overlap_group for r in result.reflections)
    got, want, esd = [], [], []
    for r in result.reflections:
        j = int(np.argmin(np.abs(pos - r.two_theta)))
        if alone[r.overlap_group] == 1 and abs(pos[j] - r.two_theta) < 0.02:
            got.append(r.intensity * _lp(np.array(r.two_theta)))
            want.append(ref[j])
            esd.append(r.esd / r.intensity)
    got, want = np.array(got), np.array(want)
    scale = np.sum(got * want) / np.sum(want**2)
    return got / scale, want, np.array(esd)


@pytest.fixture(scope="module")
def nacl_fit():
    tt, y = pattern(rock_salt())
    # Start 0.2% off the true cell, as an indexer would give it.
    return le_bail(tt, y, CU_KA1, (5.65, 5.65, 5.65, 90, 90, 90), "F")


def test_nacl_intensities_match_pymatgen(nacl_fit) -> None:
    res = nacl_fit
    assert res.cell[0] == pytest.approx(5.6395, abs=5e-4)
    # Poisson noise on ~1000 background counts: 1/sqrt(1000) ~ 0.03 is the floor.
    assert res.rwp < 0.032
    got, want, esd = _compare(res, rock_salt())
    strong = want > 0.05 * want.max()
    assert strong.sum() >= 8
    np.testing.assert_allclose(got[strong], want[strong], rtol=0.03)
    # Weak reflections agree within their counting error.
    assert np.all(np.abs(got / want - 1)[~strong] < 4 * esd[~strong] + 0.02)
    first = {r.hkl: r.multiplicity for r in res.reflections[:3]}
    assert first == {(1, 1, 1): 8, (2, 0, 0): 6, (2, 2, 0): 12}


def test_bismuth_rhombohedral_centring_and_doublet() -> None:
    tt, y = pattern(bismuth(), kalpha2=True, seed=3)
    res = le_bail(tt, y, CU_KA1, (4.54, 4.54, 11.80, 90, 90, 120), "R", config=LeBailConfig(lambda2=CU_KA2))
    assert res.cell[0] == pytest.approx(4.535, abs=1e-3) and res.cell[2] == pytest.approx(11.81, abs=3e-3)
    assert res.rwp < 0.035
    got, want, _ = _compare(res, bismuth())
    strong = want > 0.1 * want.max()
    np.testing.assert_allclose(got[strong], want[strong], rtol=0.04)
    # The same data without the doublet modelled fit far worse.
    assert le_bail(tt, y, CU_KA1, res.cell, "R").rwp > 1.5 * res.rwp


def test_wrong_cell_fits_worse(nacl_fit) -> None:
    tt, y = pattern(rock_salt())
    wrong = le_bail(tt, y, CU_KA1, (5.30, 5.30, 5.30, 90, 90, 90), "F")
    assert wrong.rwp > 3 * nacl_fit.rwp


def test_reflection_conditions() -> None:
    h = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [2, 0, 0], [2, 1, 0], [4, 0, 0], [2, 2, 0], [1, 0, 1]])
    f = allowed(h, "F")
    assert f.tolist() == [False, False, True, True, False, True, True, False]
    assert np.array_equal(allowed(h, 225), f)
    # Fd-3m: the d-glide also removes 200 (and keeps 400).
    assert allowed(h, 227).tolist() == [False, False, True, False, False, True, True, False]
    assert allowed(h, "I").tolist() == [False, True, False, True, False, True, True, True]
    assert allowed(np.array([[1, 0, 1], [0, 1, 2], [1, 0, 0], [0, 0, 3]]), "R").tolist() == [True, True, False, True]
    assert system_of_cell(np.array([4.5, 4.5, 11.8]), np.array([90, 90, 120])) == "hexagonal"
    assert system_of_cell(np.array([5.0, 6.0, 7.0]), np.array([90, 101, 90])) == "monoclinic"


def test_bad_input_is_an_input_error() -> None:
    tt = np.linspace(10, 80, 500)
    y = np.ones_like(tt)
    with pytest.raises(InputError, match="centring"):
        le_bail(tt, y, CU_KA1, (5, 5, 5, 90, 90, 90), "Q")
    with pytest.raises(InputError, match="six finite"):
        le_bail(tt, y, CU_KA1, (5, 5, 90, 90, 90), "P")
    with pytest.raises(InputError, match="increasing"):
        le_bail(tt[::-1], y, CU_KA1, (5, 5, 5, 90, 90, 90), "P")


def test_alternating_route_for_many_reflections(nacl_fit) -> None:
    """Above ``max_pawley`` reflections the classic alternation runs; from a close cell it agrees."""
    tt, y = pattern(rock_salt())
    res = le_bail(tt, y, CU_KA1, (5.641, 5.641, 5.641, 90, 90, 90), "F", config=LeBailConfig(max_pawley=0))
    assert res.rwp < 1.1 * nacl_fit.rwp
    got, want, _ = _compare(res, rock_salt())
    strong = want > 0.05 * want.max()
    np.testing.assert_allclose(got[strong], want[strong], rtol=0.03)


def test_low_angle_pawley_route_for_large_cells(nacl_fit) -> None:
    """More reflections than ``max_pawley``: the profile comes from the low-angle part, then Le Bail cycles."""
    tt, y = pattern(rock_salt())
    res = le_bail(tt, y, CU_KA1, (5.65, 5.65, 5.65, 90, 90, 90), "F", config=LeBailConfig(max_pawley=5))
    assert res.cell[0] == pytest.approx(5.6395, abs=5e-4)
    assert res.rwp < 1.1 * nacl_fit.rwp
