"""`powdersolve solve`: pattern -> ranked refined structures; oracle density path and the CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from powdersolve.cli import main
from powdersolve.density import DensityConfig, density_grid
from powdersolve.diffraction.profile import ProfileConfig, profile_pattern
from powdersolve.diffraction.sticks import WAVELENGTHS, q_from_two_theta, sticks
from powdersolve.errors import NoSolutionError
from powdersolve.model import build_model, tiny_config
from powdersolve.solve.config import SolveConfig
from powdersolve.solve.pipeline import solve_from_grids
from powdersolve.solve.result import write_solve_outputs
from powdersolve.structures import load_crystal
from powdersolve.weights import save_model


def write_xy(path: Path, cif: Path, lo: float = 10.0, hi: float = 80.0, step: float = 0.02, seed: int = 0) -> Path:
    """A measured-like Cu K-alpha pattern (K-alpha2, Caglioti widths, background, Poisson noise) as .xy."""
    crystal = load_crystal(cif)
    lam = WAVELENGTHS["CuKa1"]
    s = sticks(crystal, q_max=float(q_from_two_theta(min(hi + 5, 179), lam)) * 1.01, b_iso=1.0)
    cfg = ProfileConfig(u=0.004, w=0.002, eta0=0.4, kalpha2=True, background=(300.0, -80.0, 30.0),
                        background_inverse=500.0, scale=20000.0, noise=True)
    tt = np.arange(lo, hi, step)
    y = profile_pattern(s, lam, tt, cfg, np.random.default_rng(seed))
    path.write_text(f"# wavelength = {lam}\n" + "\n".join(f"{a:.4f} {b:.1f}" for a, b in zip(tt, y)) + "\n")
    return path


@pytest.fixture(scope="module")
def caf2_xy(tmp_path_factory: pytest.TempPathFactory, cubic_cif: Path) -> Path:
    return write_xy(tmp_path_factory.mktemp("p") / "caf2.xy", cubic_cif)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    return save_model(build_model(tiny_config()), tmp_path_factory.mktemp("w") / "m.safetensors")


@pytest.fixture(scope="module")
def oracle(caf2_xy: Path, cubic_cif: Path):
    """Solve from the exact CMED of CaF2 (the density -> structure ceiling), plus a shifted copy as a 2nd map."""
    crystal = load_crystal(cubic_cif)
    grid = density_grid(crystal, DensityConfig(b_iso=8.0, grid=32))
    shifted = np.roll(grid, (8, 8, 8), axis=(0, 1, 2))  # origin moved by (1/4, 1/4, 1/4): the same structure
    result = solve_from_grids(caf2_xy, [grid, shifted], crystal.lattice, "CaF2", SolveConfig(top_k=3),
                              labels=["exact", "shifted"])
    return crystal, result


def test_oracle_density_gives_the_true_structure(oracle) -> None:
    crystal, result = oracle
    best = result.best
    assert best.formula == "CaF2" and best.spacegroup == 225
    assert StructureMatcher().fit(best.result.structure, crystal.to_structure())
    assert best.result.rwp < 0.2  # noise + imperfect K-alpha2 stripping; a wrong structure stays > 0.35
    # the origin-shifted map, and the exact map averaged over each group it shows, are the same
    # structure: merged, not refined again
    assert result.n_distinct == 1 and {"exact", "shifted"} <= set(result.origins[0])
    assert any(o.startswith("exact averaged over Fm-3m") for o in result.origins[0])
    assert abs(best.result.structure.lattice.a - crystal.cell_parameters[0]) < 0.01


def test_outputs_are_complete_and_consistent(oracle, tmp_path: Path) -> None:
    crystal, result = oracle
    out = write_solve_outputs(result, tmp_path / "sol")
    for name in ("refined.cif", "candidates/rank_01.cif", "solution.json", "fit.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "refined.cif").read_text() == (out / "candidates/rank_01.cif").read_text()
    doc = json.loads((out / "solution.json").read_text())
    assert doc["candidates"][0]["formula"] == "CaF2"
    assert doc["candidates"][0]["rwp"] == pytest.approx(result.best.result.rwp, abs=1e-6)
    s = Structure.from_file(out / "refined.cif")
    assert StructureMatcher().fit(s, crystal.to_structure())
    assert [p.name for p in tmp_path.iterdir()] == ["sol"]  # no staging folder left


def test_abstains_above_threshold(caf2_xy: Path, cubic_cif: Path) -> None:
    crystal = load_crystal(cubic_cif)
    grid = density_grid(crystal, DensityConfig(b_iso=8.0, grid=24))
    with pytest.raises(NoSolutionError, match=r"^no solution: best Rwp \d\.\d+ > threshold 0\.001"):
        solve_from_grids(caf2_xy, [grid], crystal.lattice, "CaF2", SolveConfig(max_rwp=0.001))


def run_cli(args: list, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(["solve", *[str(a) for a in args]])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cli_abstains_cleanly_when_no_fit_is_good_enough(caf2_xy: Path, weights: Path, cubic_cif: Path,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An Rwp threshold no refinement can meet: exit 3, one error line, nothing written. (Exit 0 with the
    full output folder is asserted by the shipped-model run below.)"""
    a = load_crystal(cubic_cif).cell_parameters[0]
    out = tmp_path / "run"
    code, stdout, err = run_cli([caf2_xy, "--weights", weights, "--cell", a, "--composition", "CaF2",
                                 "--grid", 16, "--samples", 1, "--max-rwp", 0.001, "--out", out], capsys)
    assert code == 3, err
    errors = [line for line in err.splitlines() if "error" in line]  # the other lines are progress
    assert len(errors) == 1 and errors[0].startswith("powdersolve: error: no solution: best Rwp"), err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_cli_without_map_symmetry_skips_the_search(caf2_xy: Path, cubic_cif: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    a = load_crystal(cubic_cif).cell_parameters[0]
    out = tmp_path / "run"
    code, _, err = run_cli([caf2_xy, "--cell", a, "--composition", "CaF2", "--system", "cubic", "--grid", 24,
                            "--samples", 2, "--no-map-symmetry", "--out", out], capsys)
    assert code == 0, err
    doc = json.loads((out / "solution.json").read_text())
    assert "map_symmetry" not in doc["timings_s"]
    assert not any("averaged over" in m for c in doc["candidates"] for m in c["from_maps"])
    # The solved structure's density: every electron of the cell, overlaying the network's map.
    solved, mean = np.load(out / "density_solved.npy"), np.load(out / "density" / "density.npy")
    assert solved.shape == mean.shape == (24, 24, 24)
    assert solved.mean() * a**3 == pytest.approx(4 * (20 + 2 * 9), rel=1e-3)
    assert np.corrcoef(solved.ravel(), mean.ravel())[0, 1] > 0.8


@pytest.mark.parametrize("extra", [
    ["--cell", "abc"],
    ["--composition", "Xx2"],
    ["--max-rwp", "-1"],
    ["--grid", "2"],
    ["--wavelength", "banana"],
])
def test_cli_bad_inputs_exit_2(caf2_xy: Path, weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                               extra: list[str]) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli([caf2_xy, "--weights", weights, "--cell", "5.46", "--samples", 1, "--grid", 16,
                            "--out", out, *extra], capsys)
    assert code == 2, err
    assert len([line for line in err.splitlines() if "error" in line]) == 1 and not out.exists()


def test_cli_missing_pattern_exit_2(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli([tmp_path / "nope.xy", "--weights", weights, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "nope.xy" in err


def test_cli_help_documents_exit_codes(capsys: pytest.CaptureFixture) -> None:
    code, stdout, _ = run_cli(["--help"], capsys)
    assert code == 0
    assert "Exit codes" in stdout and "3  no solution" in stdout


def test_screening_refines_only_the_best_fully(caf2_xy: Path, cubic_cif: Path) -> None:
    """With more candidates than refine_top, the truth is fully refined and ranks first; the rest are screened."""
    from powdersolve.solve.pipeline import solve_from_structures

    truth = load_crystal(cubic_cif).to_structure()
    rng = np.random.default_rng(0)
    decoys = [Structure(truth.lattice, truth.species, rng.random((len(truth), 3))) for _ in range(3)]
    res = solve_from_structures(caf2_xy, [*decoys, truth], SolveConfig(refine_top=1, top_k=10, abstain=False))
    assert StructureMatcher().fit(res.best.result.structure, truth)
    assert not res.best.screened_only
    assert all(c.screened_only for c in res.candidates[1:])
    assert any("screened" in n for n in res.notes)


def test_equal_fits_rank_the_most_symmetric_first() -> None:
    from dataclasses import replace

    from powdersolve.solve.candidate import Candidate
    from powdersolve.solve.rank import point_group_order, prefer_symmetry
    from powdersolve.solve.refine import RefineResult

    assert point_group_order(225) == 48 and point_group_order(139) == 16 and point_group_order(1) == 1
    s = Structure.from_spacegroup("Fm-3m", np.eye(3) * 3.84, ["Ir"], [[0, 0, 0]])
    res = RefineResult(s, 0.0, 1.0, 0.5, 0.0462, 0.03, 1.0, np.zeros(3), np.zeros(3), np.zeros(0))
    low = Candidate(replace(res, rwp=0.04610), 0, "Ir", 139, "I4/mmm", 4)
    cubic = Candidate(res, 1, "Ir", 225, "Fm-3m", 4)
    worse = Candidate(replace(res, rwp=0.30), 2, "Ir", 229, "Im-3m", 2)
    ranked = prefer_symmetry([low, cubic, worse], 0.02)
    assert [c.spacegroup for c in ranked] == [225, 139, 229]
    assert prefer_symmetry([low, cubic, worse], 0.0)[0] is low


def test_family_first_puts_acceptable_in_family_fits_ahead_of_p1() -> None:
    from dataclasses import replace

    from powdersolve.solve.candidate import Candidate
    from powdersolve.solve.rank import family_first
    from powdersolve.solve.refine import RefineResult

    s = Structure.from_spacegroup("R-3m", Lattice.hexagonal(3.46, 6.7), ["Hg"], [[0, 0, 0]])
    res = RefineResult(s, 0.0, 1.0, 0.5, 0.05, 0.03, 1.0, np.zeros(3), np.zeros(3), np.zeros(0))
    p1 = Candidate(replace(res, rwp=0.04), 0, "Hg", 1, "P1", 3)
    r3m = Candidate(res, 1, "Hg", 166, "R-3m", 3)
    bad = Candidate(replace(res, rwp=0.6), 2, "Hg", 164, "P-3m1", 1)
    assert [c.spacegroup for c in family_first([p1, r3m, bad], "hexagonal", 0.35)] == [166, 1, 164]
    assert [c.spacegroup for c in family_first([p1, r3m, bad], None, 0.35)] == [1, 166, 164]
    assert family_first([p1, bad], "cubic", 0.35) == [p1, bad]
    # An in-family fit several times worse than the best, or only screened, is not promoted.
    poor = Candidate(replace(res, rwp=0.30), 3, "Hg", 164, "P-3m1", 1)
    assert family_first([p1, poor], "hexagonal", 0.35) == [p1, poor]
    screened = Candidate(res, 4, "Hg", 166, "R-3m", 3, screened_only=True)
    assert family_first([p1, screened], "hexagonal", 0.35) == [p1, screened]


def test_shipped_model_solves_the_bundled_example(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Acceptance: the bundled CaF2 scan, the shipped cubic model, cell indexed: Fm-3m CaF2, every output."""
    from powdersolve.structures import read_structure

    root = Path(__file__).resolve().parents[1] / "powdersolve" / "examples"
    out = tmp_path / "solved"
    code, _, err = run_cli([root / "CaF2_CuKa.xy", "--composition", "CaF2", "--samples", 8, "--out", out], capsys)
    assert code == 0, err
    truth = load_crystal(root / "CaF2_225.cif").to_structure()
    doc = json.loads((out / "solution.json").read_text())
    assert doc["candidates"][0]["spacegroup"] == 225 and doc["candidates"][0]["rwp"] < 0.15
    assert len(list((out / "candidates").glob("rank_*.cif"))) == len(doc["candidates"])
    assert StructureMatcher().fit(read_structure(out / "refined.cif"), truth)


def test_modified_map_is_read_first(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--modified-map: the density-modified mean map, at its group's standard origin, gives the solution.
    Without recycling: a recycled map may re-read the same structure at an Rwp 1e-4 lower, and that reading,
    not the modified map's, is then the one ranked (which of two equal readings wins depends on the last digits
    of the network's map, so on the machine)."""
    from powdersolve.structures import read_structure

    root = Path(__file__).resolve().parents[1] / "powdersolve" / "examples"
    out = tmp_path / "solved"
    code, _, err = run_cli([root / "CaF2_CuKa.xy", "--composition", "CaF2", "--samples", 2, "--modified-map",
                            "--recycle", 0, "--out", out], capsys)
    assert code == 0, err
    doc = json.loads((out / "solution.json").read_text())
    assert any(m.startswith("modified mean averaged over Fm-3m") for m in doc["candidates"][0]["from_maps"])
    assert doc["modification"]["symmetry"]["number"] == 225
    assert (out / "density" / "density_modified.ccp4").exists()
    truth = load_crystal(root / "CaF2_225.cif").to_structure()
    assert StructureMatcher().fit(read_structure(out / "refined.cif"), truth)


def test_solve_goes_on_without_the_modified_map_when_modification_has_nothing(monkeypatch: pytest.MonkeyPatch
                                                                               ) -> None:
    """A ModificationError (no measured peak on a reflection) drops the modified map, not the solve,
    and the network is sampled once."""
    from powdersolve.errors import ModificationError
    from powdersolve.predict import PredictConfig
    from powdersolve.solve import pipeline

    real_predict = pipeline.predict
    calls = []

    def counted_predict(pattern, config, progress=None):
        calls.append(config.modify)
        return real_predict(pattern, config, progress=progress)

    def no_peak_on_the_cell(pred, cfg, composition=None, formula_units=None):
        raise ModificationError("density modification: no peak falls on a reflection of the cell")

    monkeypatch.setattr(pipeline, "predict", counted_predict)
    monkeypatch.setattr(pipeline, "modify_prediction", no_peak_on_the_cell)
    example = Path(__file__).resolve().parents[1] / "powdersolve" / "examples" / "CaF2_CuKa.xy"
    result = pipeline.solve(example, SolveConfig(samples=2), PredictConfig(composition="CaF2"))
    assert calls == [None]
    assert result.prediction.modified is None and result.best.spacegroup == 225


@pytest.mark.parametrize("own", [True, False])
def test_hexagonal_axes_ask_the_other_model_when_the_first_answer_is_not_its_own(
        own: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hexagonal P lattice (where indexing cannot tell trigonal P groups from hexagonal ones) is read by the
    hexagonal model; when its best fit is not its own (here forced), the trigonal model also reads it in the
    same indexed cell and the candidates of both are ranked together."""
    from independent import pattern

    from powdersolve.formats import Pattern
    from powdersolve.predict import PredictConfig
    from powdersolve.solve import pipeline

    real_predict = pipeline.predict
    calls = []

    def counted_predict(pat, config, progress=None):
        calls.append((config.system, config.cell))
        return real_predict(pat, config, progress=progress)

    monkeypatch.setattr(pipeline, "predict", counted_predict)
    monkeypatch.setattr(pipeline, "_own_answer", lambda *_args: own)
    # CdI2-type (P-3m1): Cd at 1a, I at 2d.
    cdi2 = Structure.from_spacegroup("P-3m1", Lattice.hexagonal(4.24, 6.84), ["Cd", "I"],
                                     [[0, 0, 0], [1 / 3, 2 / 3, 0.25]])
    tt, counts = pattern(cdi2)
    pat = Pattern(tt, counts, None, WAVELENGTHS["CuKa1"], Path("CdI2.xy"), "xy")
    result = pipeline.solve(pat, SolveConfig(samples=2, grid=32, abstain=False), PredictConfig(composition="CdI2"))
    assert calls[0] == ("auto", None)
    assert result.prediction.system == "hexagonal"
    if own:
        assert len(calls) == 1
    else:
        assert len(calls) == 2 and calls[1][0] == "trigonal" and calls[1][1] == result.prediction.cell
        assert any(m.startswith("trigonal model") for origin in result.origins for m in origin)
    assert result.best.result.rwp < 0.1 and result.best.formula == "CdI2"
    assert len({c.source for c in result.candidates}) == len(result.candidates)  # renumbered, still distinct


def test_a_models_own_answer_is_an_acceptable_fit_in_its_own_crystal_system() -> None:
    """The staging rule: another serving model is asked unless the first model's best fit is acceptable and
    its space group belongs to that model's crystal system."""
    from types import SimpleNamespace

    from powdersolve.solve.pipeline import _own_answer

    def result(spacegroup: int, rwp: float) -> SimpleNamespace:
        best = SimpleNamespace(spacegroup=spacegroup, result=SimpleNamespace(rwp=rwp))
        return SimpleNamespace(candidates=[best], best=best)

    assert _own_answer(result(194, 0.05), "hexagonal", 0.35)
    assert not _own_answer(result(164, 0.05), "hexagonal", 0.35)  # P-3m1: trigonal, ask the trigonal model
    assert not _own_answer(result(194, 0.50), "hexagonal", 0.35)  # not acceptable
    assert _own_answer(result(166, 0.05), "trigonal", 0.35)
    assert not _own_answer(result(1, 0.05), "trigonal", 0.35)
    assert not _own_answer(None, "trigonal", 0.35)


def test_an_untrained_networks_map_is_repaired_by_charge_flipping(caf2_xy: Path, weights: Path, cubic_cif: Path,
                                                                   tmp_path: Path, capsys: pytest.CaptureFixture
                                                                   ) -> None:
    """An untrained model's mean map of CaF2 is noise; its charge-flipped map departs from it, is searched for
    its space group first, and gives the structure. Without it the same run finds nothing that fits (recycling
    off in both: it flips the measured peaks again from the candidates' phases and can find CaF2 by itself)."""
    from powdersolve.structures import read_structure

    crystal = load_crystal(cubic_cif)
    args = [caf2_xy, "--weights", weights, "--cell", crystal.cell_parameters[0], "--composition", "CaF2",
            "--grid", 24, "--samples", 1, "--no-modified-map", "--recycle", 0]
    code, _, err = run_cli([*args, "--out", tmp_path / "with"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "with" / "solution.json").read_text())
    assert doc["candidates"][0]["from_maps"][0].startswith("charge-flipped mean")
    assert StructureMatcher().fit(read_structure(tmp_path / "with" / "refined.cif"), crystal.to_structure())
    code, _, err = run_cli([*args, "--no-flipped-map", "--out", tmp_path / "without"], capsys)
    assert code == 3 or not StructureMatcher().fit(read_structure(tmp_path / "without" / "refined.cif"),
                                                   crystal.to_structure())
