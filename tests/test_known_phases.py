"""A known second phase (internal standard or impurity): its lines left out of indexing, the peaks and the fits.
Patterns from the independent test simulator (pymatgen sticks broadened in the test)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from independent import CU_KA1, pv, sticks
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from powdersolve.diffraction.known_phases import STANDARDS, KnownLines, known_phase, zero_offset
from powdersolve.diffraction.peaks import PeakList
from powdersolve.errors import InputError
from powdersolve.formats.pattern import make_pattern
from powdersolve.indexing import IndexConfig, index_counts
from powdersolve.predict import PredictConfig
from powdersolve.solve.config import SolveConfig
from powdersolve.solve.pipeline import observed_profile, solve

TUNGSTEN = Structure.from_spacegroup("Im-3m", Lattice.cubic(3.1652), ["W"], [[0, 0, 0]])
SILICON = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43119), ["Si"], [[0, 0, 0]])  # 8a, origin choice 1


def _two_phase(main: Structure, minor: Structure, fraction: float, hi: float = 120.0, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts of ``main`` with ``minor`` whose strongest peak is ``fraction`` of ``main``'s."""
    tt = np.arange(5.0, hi + 0.005, 0.01)
    profiles = []
    for s in (main, minor):
        pos, inten, _ = sticks(s, CU_KA1, 4.0, hi + 1)
        y = sum(a * pv(tt - c, 0.08, 0.5) for c, a in zip(pos, inten))
        profiles.append(y / y.max())
    y = 1e5 * (profiles[0] + fraction * profiles[1]) + 1000.0
    return tt, np.random.default_rng(seed).poisson(y).astype(np.float64)


def test_standard_lines_are_pymatgens_lines() -> None:
    silicon = known_phase("si")
    assert silicon.formula == "Si" and silicon.spacegroup == 227
    lines = KnownLines.of((silicon,), CU_KA1, 120.0)
    pos, inten, _ = sticks(SILICON, CU_KA1, 5.0, 120.0)
    strong = pos[inten >= 0.01 * inten.max()]
    assert len(lines) == len(strong)
    assert np.abs(lines.two_theta - np.sort(strong)).max() < 0.01
    assert all(len(KnownLines.of((known_phase(name),), CU_KA1, 90.0)) > 3 for name in STANDARDS)


def test_a_known_phase_from_a_file_and_a_bad_name(tmp_path) -> None:
    path = tmp_path / "si.cif"
    SILICON.to(filename=str(path))
    assert known_phase(str(path)).spacegroup == 227
    with pytest.raises(InputError, match="neither a standard"):
        known_phase("unobtainium")
    with pytest.raises(InputError):
        PredictConfig(known_phases=("Si",))


def test_peaks_and_points_near_known_lines() -> None:
    lines = KnownLines(np.array([28.44, 47.30]), ("Si",))
    peaks = PeakList(np.array([28.46, 30.0, 47.5]), np.ones(3), np.ones(3), np.array([0.08, 0.08, 0.08]))
    assert lines.peaks_of(peaks).tolist() == [True, False, False]
    assert len(lines.without(peaks)) == 2
    tt = np.array([28.0, 28.40, 28.55, 29.0])
    assert lines.region(tt, 0.08).tolist() == [False, True, True, False]
    assert not KnownLines(np.zeros(0), ()).region(tt, 0.08).any()


def test_the_zero_offset_of_a_pattern_from_known_lines() -> None:
    lines = np.array([28.44, 47.30, 56.12, 69.13])
    fwhm = np.full(5, 0.08)
    shifted = PeakList(np.array([28.49, 40.0, 47.35, 56.17, 69.18]), np.ones(5), np.ones(5), fwhm)
    assert zero_offset(lines, shifted) == pytest.approx(0.05)
    far = PeakList(np.array([28.74, 40.0, 47.6, 56.42, 69.43]), np.ones(5), np.ones(5), fwhm)
    assert zero_offset(lines, far) == 0.0  # 0.3 deg off: no line has a peak near enough
    assert zero_offset(lines, PeakList(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))) == 0.0
    silicon = (known_phase("Si"),)
    moved = KnownLines.of(silicon, CU_KA1, 120.0, shifted)
    assert moved.two_theta[0] == pytest.approx(KnownLines.of(silicon, CU_KA1, 120.0).two_theta[0] + 0.05, abs=0.005)
    assert moved.peaks_of(shifted).tolist() == [True, False, True, True, True]


@pytest.mark.parametrize("fraction", [0.03, 0.3])
def test_a_few_line_sample_beside_a_standard_indexes_named_or_not(fraction: float) -> None:
    """bcc W has 6 lines to 120 deg, Si brings 8-9. Named, the Si lines go; unnamed, the standard is
    recognised and its lines may stay unindexed (they outnumber W's, strong ones too at 30%). Without that
    a monoclinic cell indexing most lines of both phases leads."""
    tt, counts = _two_phase(TUNGSTEN, SILICON, fraction)
    config = IndexConfig(zero_range=0.1)
    named, sols = index_counts(tt, counts, CU_KA1, config, known_phases=(known_phase("Si"),))
    assert any("left out" in line for line in named.log)
    unnamed, found = index_counts(tt, counts, CU_KA1, config)
    assert unnamed.standards == ("Si",)
    for top in (sols[0], found[0]):
        assert top.system == "cubic" and top.centring == "I"
        assert top.a == pytest.approx(3.1652, abs=0.003)
    assert found[0].n_lines - found[0].n_indexed >= 6
    _, found = index_counts(tt, counts, CU_KA1, replace(config, weak_line=0.0))
    assert found[0].system != "cubic"


def test_impurity_lines_beside_a_cell_of_the_same_system() -> None:
    """A one-atom hexagonal P cell (a 2.967, c 2.670 A) with 3% Si: the strict search finds only large
    hexagonal cells indexing both phases at M20 ~5; the lenient search of that same family (allowed because
    the leader is unconvincing) puts the right cell first, leaving the Si lines unindexed."""
    crystal = Structure.from_spacegroup(191, Lattice.hexagonal(2.967, 2.670), ["Re"], [[0, 0, 0]])
    _, found = index_counts(*_two_phase(crystal, SILICON, 0.03), CU_KA1, IndexConfig(zero_range=0.1))
    top = found[0]
    assert (top.system, top.centring) == ("hexagonal", "P")
    assert top.a == pytest.approx(2.967, abs=0.003) and top.c == pytest.approx(2.670, abs=0.003)
    assert top.m20 > 100 and top.n_indexed < top.n_lines
    assert any(s.system == "hexagonal" and s.m20 < 20 and s.volume > 10 * top.volume for s in found[1:])


def test_beside_a_standard_the_cell_that_explains_the_samples_weak_lines_goes_first() -> None:
    """CsCl-type NaF (a 3.228 A) with 20% Si: its odd lines (h + k + l odd, from f_Na - f_F) are weak, so the
    body-centred cell of the same a, which leaves them and the Si lines unindexed, reaches twice the M20 of the
    primitive cell. Once Si is recognised, the cell that explains the sample's own lines goes first."""
    naf = Structure(Lattice.cubic(3.2282), ["Na", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    picked, found = index_counts(*_two_phase(naf, SILICON, 0.2, seed=1), CU_KA1, IndexConfig(zero_range=0.1))
    assert picked.standards == ("Si",)
    top = found[0]
    assert (top.system, top.centring) == ("cubic", "P")
    assert top.a == pytest.approx(3.2282, abs=0.003)


def test_a_standard_as_the_sample_beside_another_standard() -> None:
    """LaB6 as the sample with 3% Si: both standards' lines are among the peaks and explain every peak; the
    stronger (LaB6) is the sample and only Si is set aside (were both, no line would count and indexing
    would have nothing to work on). The cubic leader is a 4a supercell indexing Si lines too, at M20 36:
    a convincing cubic leader is not challenged (see strays.challengers)."""
    lab6 = Structure.from_spacegroup(221, Lattice.cubic(4.1569), ["La", "B"], [[0, 0, 0], [0.1975, 0.5, 0.5]])
    picked, found = index_counts(*_two_phase(lab6, SILICON, 0.03), CU_KA1, IndexConfig(zero_range=0.1))
    assert picked.standards == ("Si",)
    assert found[0].system == "cubic"
    assert found[0].a / 4.1569 == pytest.approx(round(found[0].a / 4.1569), abs=0.002)


def test_solve_with_a_named_standard_finds_the_sample_and_fits_without_its_lines() -> None:
    tt, counts = _two_phase(TUNGSTEN, SILICON, 0.03)
    pattern = make_pattern(tt, counts, None, CU_KA1, Path("W_Si.xy"), "xy")
    config = PredictConfig(composition="W", known_phases=(known_phase("Si"),))
    assert len(observed_profile(pattern, config).two_theta) < len(observed_profile(pattern, PredictConfig()).two_theta)
    result = solve(pattern, SolveConfig(samples=4, recycle=0), config)
    assert result.best.spacegroup == 229
    assert StructureMatcher().fit(result.best.result.structure, TUNGSTEN)


def test_the_lines_of_a_common_standard_are_pointed_out_never_removed() -> None:
    tt, counts = _two_phase(TUNGSTEN, SILICON, 0.03)
    picked, _ = index_counts(tt, counts, CU_KA1, IndexConfig(zero_range=0.1))
    assert any("--known-phase Si" in line for line in picked.log) and picked.standards == ("Si",)
    assert len(picked.peaks) >= 12  # W's 6 lines and Si's, all kept
    alone, _ = index_counts(*_two_phase(TUNGSTEN, SILICON, 0.0), CU_KA1, IndexConfig(zero_range=0.1))
    assert not any("--known-phase" in line for line in alone.log)


def test_an_unknown_known_phase_is_one_line_and_exit_2(capsys, tmp_path) -> None:
    from powdersolve.cli import main

    example = Path(__file__).resolve().parents[1] / "powdersolve" / "examples" / "CaF2_CuKa.xy"
    for command in ("index", "solve"):
        extra = ["--out", str(tmp_path / command)] if command == "solve" else []
        assert main([command, str(example), "--known-phase", "unobtainium", *extra]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and "neither a standard" in err[0]
        assert not (tmp_path / command).exists()
