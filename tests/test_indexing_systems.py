"""Indexing of all seven crystal systems and extinction classes, on peaks from an independent simulator.

Peak lists come from pymatgen's XRDCalculator (Cu K-alpha1 sticks, 5-120 deg): sticks closer than
0.05 deg merge, lines under 1 % of the strongest and the two weakest of the rest are dropped, one
spurious line is added, positions get 0.01 deg noise and a 0.03 deg zero shift.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from powdersolve.cli import main
from powdersolve.indexing import IndexConfig, index_pattern
from powdersolve.indexing.extinction import space_group_candidates, systematically_absent
from powdersolve.indexing.reduction import niggli, same_lattice
from powdersolve.indexing.search import INDEX2

CU = 1.540562

STRUCTURES = {
    "cubic": (Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [.5, .5, .5]]),
              "cubic"),
    "hexagonal": (Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(3.21, 5.21), ["Mg"], [[1 / 3, 2 / 3, .25]]),
                  "hexagonal"),
    "trigonal": (Structure.from_spacegroup("R-3m", Lattice.hexagonal(4.54, 11.86), ["Bi"], [[0, 0, .2339]]),
                 "trigonal"),
    "tetragonal": (Structure.from_spacegroup("I4/mmm", Lattice.tetragonal(3.9, 12.7), ["Ba", "Ti", "O"],
                                             [[0, 0, .35], [0, 0, 0], [0, .5, .25]]), "tetragonal"),
    "orthorhombic": (Structure.from_spacegroup("Pnma", Lattice.orthorhombic(5.5, 7.7, 5.4), ["Ca", "Ti", "O", "O"],
                                               [[.03, .25, .99], [0, 0, .5], [.48, .25, .08], [.29, .04, .71]]),
                     "orthorhombic"),
    "monoclinic": (Structure.from_spacegroup("C2/m", Lattice.monoclinic(9.7, 3.5, 6.3, 107), ["Al", "O"],
                                             [[.09, 0, .2], [.16, 0, .6]]), "monoclinic"),
    # Glide and screw extinctions: some axial and cross lines are absent (001, 010, 101, 10-1 for P2_1/c).
    "monoclinic_p21c": (Structure.from_spacegroup("P2_1/c", Lattice.monoclinic(6.8, 5.9, 9.4, 111.5),
                                                  ["Zn", "O"], [[.21, .37, .08], [.33, .12, .41]]), "monoclinic"),
    "orthorhombic_cmcm": (Structure.from_spacegroup("Cmcm", Lattice.orthorhombic(3.9, 10.6, 7.4), ["Ba", "O"],
                                                    [[0, .36, .25], [0, .08, .06]]), "orthorhombic"),
    "triclinic": (Structure.from_spacegroup("P-1", Lattice.from_parameters(5.1, 6.3, 7.2, 82, 97, 104),
                                            ["K", "Cl", "O"], [[.1, .2, .3], [.6, .7, .2], [.3, .9, .8]]),
                  "triclinic"),
}


def peak_list(structure: Structure, seed: int = 0, zero: float = 0.03, spurious: bool = True) -> np.ndarray:
    """2-theta (deg) a peak picker would report for the structure, with the defects described above."""
    pat = XRDCalculator(wavelength="CuKa1").get_pattern(structure, two_theta_range=(5, 120))
    tt, y = np.asarray(pat.x), np.asarray(pat.y)
    group = np.concatenate([[0], np.cumsum(np.diff(tt) > 0.05)])
    inten = np.bincount(group, y)
    pos = np.bincount(group, y * tt) / inten
    keep = inten > 0.01 * inten.max()
    pos, inten = pos[keep][:30], inten[keep][:30]
    pos = np.delete(pos, np.argsort(inten)[:2])
    rng = np.random.default_rng(seed)
    if spurious:
        pos = np.sort(np.append(pos, rng.uniform(pos[1], pos[min(8, pos.size - 1)])))
    return pos + rng.normal(0, 0.01, pos.size) + zero


def primitive_niggli(structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    return niggli(SpacegroupAnalyzer(structure).get_primitive_standard_structure().lattice.matrix)


# A budget far above what these searches need: a loaded machine must not cut a search short and change its answer.
CONFIG = IndexConfig(zero_range=0.1, time_budget_s=30.0, max_lines=24)
_CACHE: dict[str, list] = {}


def solutions(name: str) -> list:
    if name not in _CACHE:
        _CACHE[name] = index_pattern(two_theta=peak_list(STRUCTURES[name][0]), wavelength=CU, config=CONFIG)
    return _CACHE[name]


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_right_cell_top1(name: str) -> None:
    structure, system = STRUCTURES[name]
    top = solutions(name)[0]
    assert same_lattice(niggli(top.lattice(), top.centring), primitive_niggli(structure))
    assert top.system == system
    assert abs(top.zero_shift - 0.03) < 0.02
    assert top.n_indexed >= top.n_lines - 2  # the spurious line, perhaps one more


def _top_numbers(name: str) -> set[int]:
    top = solutions(name)[0]
    classes = space_group_candidates(top, peak_list(STRUCTURES[name][0]), CU)
    return {g.number for g in classes[0].groups}


def test_extinction_glide_and_screw_case() -> None:
    assert 62 in _top_numbers("orthorhombic")  # Pnma, in whatever axis setting the cell came out


def test_extinction_centred_cases() -> None:
    assert 139 in _top_numbers("tetragonal")  # I4/mmm
    assert 12 in _top_numbers("monoclinic")  # C2/m ranks above C2/c: its h0l, l odd lines are seen


def test_absences_match_p21c_conditions() -> None:
    import spglib

    ops = spglib.get_symmetry_from_database(81)  # P 1 2_1/c 1
    r = np.arange(-3, 4)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    absent = systematically_absent(hkl, ops["rotations"], ops["translations"])
    h, k, l = hkl.T
    expect = ((h == 0) & (l == 0) & (k % 2 == 1)) | ((k == 0) & (l % 2 == 1))
    assert np.array_equal(absent, expect)


def _write_pattern(path: Path, structure: Structure) -> None:
    """A profile broadened here (pseudo-Voigt FWHM 0.08 deg, eta 0.5), flat background, Poisson noise."""
    pat = XRDCalculator(wavelength="CuKa1").get_pattern(structure, two_theta_range=(5, 120))
    grid = np.arange(5, 120, 0.01)
    y = np.zeros_like(grid)
    s = 0.08 / (2 * np.sqrt(2 * np.log(2)))
    for x0, h in zip(pat.x, pat.y):
        d = grid - x0
        lor = (0.04 / np.pi) / (d**2 + 0.04**2)
        y += h * (0.5 * lor + 0.5 * np.exp(-d**2 / (2 * s * s)) / (s * np.sqrt(2 * np.pi)))
    y = 1e4 * y / y.max() + 100
    y = np.random.default_rng(1).poisson(y)
    path.write_text("\n".join(f"{a:.3f} {b}" for a, b in zip(grid, y)) + "\n")


def test_cli_index_writes_ranked_json(tmp_path: Path) -> None:
    pattern = tmp_path / "nacl.xy"
    _write_pattern(pattern, STRUCTURES["cubic"][0])
    out = tmp_path / "cells.json"
    assert main(["index", str(pattern), "--wavelength", "CuKa1", "--json", str(out), "--top", "3"]) == 0
    cands = json.loads(out.read_text())["candidates"]
    assert cands and cands[0]["system"] == "cubic" and cands[0]["centring"] == "F"
    assert cands[0]["a"] == pytest.approx(5.64, rel=2e-3)
    keys = {"a", "b", "c", "alpha", "beta", "gamma", "system", "centring", "m20", "f_n", "zero_shift",
            "n_indexed", "n_lines", "volume", "space_groups", "rwp_lebail"}
    assert keys <= set(cands[0])
    assert any("225" in g for g in cands[0]["space_groups"][0]["groups"])  # Fm-3m
    # The Le Bail check of the right cell reaches this pattern's Poisson noise, the expected Rwp
    # sqrt(N / sum(counts)); a candidate beyond --lebail (default 2) is left unchecked.
    counts = np.loadtxt(pattern)[:, 1]
    expected = np.sqrt(counts.size / counts.sum())
    assert cands[0]["rwp_lebail"] is not None and cands[0]["rwp_lebail"] < 1.2 * expected
    assert cands[2]["rwp_lebail"] is None


def test_cli_bad_input_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.xy"
    bad.write_text("not a pattern\n")
    assert main(["index", str(bad), "--wavelength", "CuKa1"]) == 2
    assert main(["index", str(tmp_path / "missing.xy")]) == 2
    assert main(["index", str(bad), "--systems", "cubic,quasicrystal"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("powdersolve: error:") for line in err)


def superstructure(abc: tuple[float, float, float], beta: float, coords: list[list[float]], shift: float = 0.15
                   ) -> tuple[Structure, Structure]:
    """A P2_1/c Zn-O subcell (edges A, beta deg, fractional coordinates) and its superstructure: a doubled,
    the Zn atoms of one half moved ``shift`` A along +b and of the other along -b, so that the lines
    the doubling adds are weak."""
    sub = Structure.from_spacegroup("P2_1/c", Lattice.monoclinic(*abc, beta), ["Zn", "O"], coords)
    sup = sub * (2, 1, 1)
    for i, site in enumerate(sup):
        if site.specie.symbol == "Zn":
            sup.translate_sites([i], [0, shift if site.frac_coords[0] % 1 < 0.5 else -shift, 0],
                                frac_coords=False)
    return sub, sup


def test_superstructure_beats_its_subcell_that_leaves_lines_unexplained() -> None:
    # The subcell indexes all lines but two weak ones of the doubling (and the spurious line) with
    # about twice the M20 of the right cell; the right cell, its supercell, explains them.
    sub, sup = superstructure((7.368, 5.123, 6.985), 100.54, [[0.513, 0.136, 0.689], [0.842, 0.426, 0.957]])
    sols = index_pattern(two_theta=peak_list(sup), wavelength=CU, config=CONFIG)
    top = sols[0]
    assert top.system == "monoclinic"
    assert same_lattice(niggli(top.lattice(), top.centring), primitive_niggli(sup))
    subcells = [s for s in sols if same_lattice(niggli(s.lattice(), s.centring), primitive_niggli(sub))]
    assert subcells and subcells[0].m20 > 1.5 * top.m20
    assert subcells[0].n_indexed >= subcells[0].n_lines - 3 and subcells[0].n_indexed < top.n_indexed


def test_supercell_indexing_only_the_stray_line_does_not_displace_the_right_cell() -> None:
    # A supercell of the right cell indexes the spurious line by chance (and has a comparable score):
    # one line above chance is no evidence for it.
    _, sup = superstructure((5.481, 7.462, 5.456), 111.41, [[0.87, 0.391, 0.438], [0.373, 0.107, 0.479]])
    top = index_pattern(two_theta=peak_list(sup), wavelength=CU, config=CONFIG)[0]
    assert same_lattice(niggli(top.lattice(), top.centring), primitive_niggli(sup))


def test_index2_transforms_are_the_seven_supercells_and_seven_subcells() -> None:
    sup = [t for t in INDEX2 if np.linalg.det(t) > 1]
    sub = [t for t in INDEX2 if np.linalg.det(t) < 1]
    assert len(sup) == len(sub) == 7
    assert all(np.isclose(np.linalg.det(t), 2) and np.allclose(t, np.round(t)) for t in sup)
    # A subcell's lattice contains the parent's: the parent's rows are integer combinations of its own.
    assert all(np.isclose(np.linalg.det(t), 0.5) and np.allclose(np.linalg.inv(t), np.round(np.linalg.inv(t)))
               for t in sub)
    # Different lattices: no supercell's rows are integer combinations of another's.
    for i, a in enumerate(sup):
        for b in sup[i + 1:]:
            m = a @ np.linalg.inv(b)
            assert not np.allclose(m, np.round(m))
