"""`powdersolve flip`: a density map without any network, by charge flipping of the picked peaks from random
phases; on a monoclinic crystal (no shipped model serves it) from an independently simulated pattern."""

from __future__ import annotations

import json
from pathlib import Path

import independent
import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from powdersolve.cli import main
from powdersolve.density import DensityConfig, density_grid
from powdersolve.metrics import lattice_rotations, map_correlation_per_sample
from powdersolve.structures import Crystal


def _monoclinic() -> Crystal:
    """A small P2_1/c crystal: 8 atoms on two general orbits."""
    s = Structure.from_spacegroup("P2_1/c", Lattice.monoclinic(5.2, 4.1, 6.3, 97.0), ["Zn", "S"],
                                  [[0.18, 0.12, 0.21], [0.33, 0.61, 0.08]])
    return Crystal.from_structure(s, 14)


@pytest.fixture(scope="module")
def mono_xy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Crystal, Path]:
    crystal = _monoclinic()
    tt, y = independent.pattern(crystal.to_structure())
    path = tmp_path_factory.mktemp("p") / "mono.xy"
    path.write_text(f"# wavelength = {independent.CU_KA1}\n" + "\n".join(f"{a:.4f} {b:.1f}" for a, b in zip(tt, y)))
    return crystal, path


def run_cli(args: list, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["flip", *[str(a) for a in args]])
    return code, capsys.readouterr().err


def test_flip_phases_a_monoclinic_pattern_without_a_network(mono_xy, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    crystal, xy = mono_xy
    cell = " ".join(f"{v:.5f}" for v in crystal.cell_parameters)
    code, err = run_cli([xy, "--cell", cell, "--grid", 32, "--starts", 2, "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["cell"]["source"] == "given" and summary["flipping"]["starts"] == 2
    r = summary["flipping"]["r_factors"]
    assert summary["flipping"]["kept"] == int(np.argmin(r))
    grid = np.load(tmp_path / "o" / "density_flipped.npy")
    assert grid.shape == (32, 32, 32)
    assert abs(float(grid.mean())) < 1e-4 and float(grid.std()) == pytest.approx(1.0, rel=1e-3)
    truth = density_grid(crystal, DensityConfig(b_iso=8.0, grid=32))
    cc = map_correlation_per_sample(grid[None], truth, lattice_rotations("monoclinic"))[0][0]
    assert cc > 0.85
    for name in ("density_flipped.ccp4", "slices.png"):
        assert (tmp_path / "o" / name).exists()


def test_predict_refuses_the_cell_and_names_flip(mono_xy, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    crystal, xy = mono_xy
    cell = " ".join(f"{v:.5f}" for v in crystal.cell_parameters)
    code = main(["predict", str(xy), "--cell", cell, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "powdersolve flip" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [["--starts", 0], ["--starts", 21], ["--cycles", 0], ["--grid", 4],
                                  ["--cell", "5 6"]])
def test_bad_arguments_exit_2_and_write_nothing(mono_xy, tmp_path: Path, args: list,
                                                capsys: pytest.CaptureFixture) -> None:
    _, xy = mono_xy
    code, err = run_cli([xy, "--out", tmp_path / "o", *args], capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_solve_reads_atoms_from_the_flipped_map_where_no_model_serves_the_cell(mono_xy, tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture
                                                                                ) -> None:
    """A monoclinic pattern, the formula only: no shipped model serves the cell, so `solve` reads atoms from
    the map charge flipping finds from random phases, and finds the structure; `--no-flipped-map` refuses."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from powdersolve.structures import read_structure

    crystal, xy = mono_xy
    code = main(["solve", str(xy), "--composition", "ZnS", "--grid", "32", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 0, err
    doc = json.loads((tmp_path / "o" / "solution.json").read_text())
    assert doc["notes"][0].startswith("no shipped model serves the cell")
    assert StructureMatcher().fit(read_structure(tmp_path / "o" / "refined.cif"), crystal.to_structure())
    code = main(["solve", str(xy), "--composition", "ZnS", "--no-flipped-map", "--out", str(tmp_path / "n")])
    assert code == 2 and "powdersolve flip" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()
