"""`evaluate`: report fields, baselines scored by the same code, CLI round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from powdersolve.evaluate import EvalConfig, evaluate
from powdersolve.model import build_model, tiny_config
from powdersolve.modification import ModificationConfig
from powdersolve.weights import load_model, save_model


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("w")
    return save_model(build_model(tiny_config()), d / "tiny.safetensors", {"note": "untrained"})


@pytest.fixture(scope="module")
def two_cifs(real_dir: Path, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cifs")
    for name in ("CaF2_225.cif", "Al_225.cif"):
        (d / name).write_bytes((real_dir / "cubic" / name).read_bytes())
    return d


def test_report_fields_and_baselines(tiny_weights: Path, two_cifs: Path, tmp_path: Path) -> None:
    rep = evaluate(tiny_weights, two_cifs, EvalConfig(grid=16, samples=2), save_grids=tmp_path, progress=False)
    for key in ("n", "cc_mean", "cc_median", "ssim_mean", "ssim_median", "psnr_mean", "baselines",
                "per_spacegroup", "per_crystal", "protocol"):
        assert key in rep
    assert rep["n"] == 2
    assert rep["baselines"]["mean"]["cc_mean"] == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < rep["baselines"]["random_atoms"]["cc_mean"] <= 1.0
    assert rep["protocol"]["weights_sha256"] and rep["protocol"]["rotations"] == 24
    assert (tmp_path / "CaF2_225_gt.npy").exists() and (tmp_path / "CaF2_225_pred.npy").exists()
    for row in rep["per_crystal"]:
        assert -1.0 <= row["cc"] <= 1.0 and row["spacegroup"] == 225


def test_compare_models_in_one_report(tiny_weights: Path, two_cifs: Path) -> None:
    rep = evaluate(tiny_weights, two_cifs, EvalConfig(grid=12, samples=1, baselines=False),
                   extra_models={"no-xrd": tiny_weights}, progress=False)
    assert rep["baselines"]["no-xrd"]["cc_mean"] == pytest.approx(rep["cc_mean"], abs=1e-6)


def test_sharpened_scores_beside_the_raw_ones(tiny_weights: Path, two_cifs: Path) -> None:
    rep = evaluate(tiny_weights, two_cifs, EvalConfig(grid=12, samples=2, sharpen=(1.5, 2.0)),
                   extra_models={"no-xrd": tiny_weights}, progress=False)
    for key in ("cc_sharpened_mean", "ssim_sharpened_mean", "ssim_aligned_sharpened_mean", "psnr_sharpened_mean"):
        assert key in rep
    assert {"random_atoms_sharpened", "no-xrd_sharpened"} <= set(rep["baselines"])
    assert rep["baselines"]["no-xrd_sharpened"]["ssim_mean"] == pytest.approx(rep["ssim_sharpened_mean"], abs=1e-6)


def test_absolute_scale_scores_beside_the_raw_ones(tiny_weights: Path, two_cifs: Path) -> None:
    rep = evaluate(tiny_weights, two_cifs, EvalConfig(grid=12, samples=2, absolute=True),
                   extra_models={"no-xrd": tiny_weights}, progress=False)
    assert {"random_atoms_absolute", "no-xrd_absolute"} <= set(rep["baselines"])
    assert rep["baselines"]["no-xrd_absolute"]["ssim_mean"] == pytest.approx(rep["ssim_absolute_mean"], abs=1e-6)
    # Moving and shrinking a map leaves its correlation with the truth alone.
    assert rep["cc_absolute_mean"] == pytest.approx(rep["cc_mean"], abs=1e-6)


def test_absolute_scale_with_z_from_the_map_is_scored_for_every_model(tiny_weights: Path, two_cifs: Path) -> None:
    """Every model and baseline gets the step; the untrained model's maps make no Z clear and keep their scale."""
    rep = evaluate(tiny_weights, two_cifs, EvalConfig(grid=24, samples=2, absolute_map=True),
                   extra_models={"no-xrd": tiny_weights}, progress=False)
    assert {"random_atoms_absolute_map", "no-xrd_absolute_map"} <= set(rep["baselines"])
    assert rep["cc_absolute_map_mean"] == pytest.approx(rep["cc_mean"], abs=1e-6)
    assert rep["ssim_absolute_map_mean"] == pytest.approx(rep["ssim_mean"], abs=1e-6)


def test_absolute_scale_of_a_query_model_uses_the_whole_grid(two_cifs: Path, tmp_path: Path) -> None:
    """The paper's query decoder is not band-limited: its maps are scaled over every grid index."""
    import torch

    torch.manual_seed(0)  # an untrained map's ripple can be so small that float32 rounding moves its CC
    weights = save_model(build_model(tiny_config(arch="query")), tmp_path / "q.safetensors", {"note": "untrained"})
    rep = evaluate(weights, two_cifs, EvalConfig(grid=12, samples=1, baselines=False, absolute=True), progress=False)
    assert rep["n"] == 2 and rep["cc_absolute_mean"] == pytest.approx(rep["cc_mean"], abs=1e-5)  # float32 maps


def test_density_modified_scores_beside_the_raw_ones(tiny_weights: Path, two_cifs: Path) -> None:
    rep = evaluate(tiny_weights, two_cifs, EvalConfig(grid=12, samples=2, modify=ModificationConfig(cycles=2)),
                   extra_models={"no-xrd": tiny_weights}, progress=False)
    for key in ("cc_modified_mean", "ssim_modified_mean", "ssim_aligned_modified_mean", "psnr_modified_mean"):
        assert key in rep
    assert {"random_atoms_modified", "no-xrd_modified"} <= set(rep["baselines"])
    assert rep["baselines"]["no-xrd_modified"]["cc_mean"] == pytest.approx(rep["cc_modified_mean"], abs=1e-6)
    # The pattern's magnitudes move even an untrained model's map towards the truth.
    assert rep["cc_modified_mean"] > rep["cc_mean"]


def test_symmetry_constrained_modification_is_scored_beside_the_plain_one(tiny_weights: Path, two_cifs: Path) -> None:
    cfg = EvalConfig(grid=12, samples=1, modify=ModificationConfig(cycles=2, symmetry=True))
    rep = evaluate(tiny_weights, two_cifs, cfg, progress=False)
    for key in ("cc_modified_mean", "cc_modified_symmetric_mean", "ssim_modified_symmetric_mean"):
        assert key in rep
    assert {"random_atoms_modified", "random_atoms_modified_symmetric"} <= set(rep["baselines"])
    assert all(-1 <= r["cc_modified_symmetric"] <= 1 for r in rep["per_crystal"])


def test_cli_writes_json(tiny_weights: Path, two_cifs: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = subprocess.run([sys.executable, "-m", "powdersolve", "evaluate", "--weights", str(tiny_weights),
                          "--structures", str(two_cifs), "--grid", "12", "--samples", "1", "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-400:]
    assert json.loads(out.read_text())["n"] == 2
    assert "map CC" in res.stdout


def test_weights_round_trip(tiny_weights: Path) -> None:
    model, side = load_model(tiny_weights)
    assert side["metadata"]["note"] == "untrained"
    assert model.cfg == tiny_config()


def test_symmetry_averaging_is_scored_with_its_own_null(tiny_weights: Path, two_cifs: Path) -> None:
    rep = evaluate(tiny_weights, two_cifs, EvalConfig(grid=24, samples=1, symmetrise=True), progress=False)
    assert -1.0 <= rep["cc_symmetrised_mean"] <= 1.0
    assert "random_atoms_symmetrised" in rep["baselines"]
    for row in rep["per_crystal"]:
        assert row["symmetry_found"] and row["cc_symmetrised_with_inversion"] >= row["cc_symmetrised"]


def test_averaging_an_exact_map_keeps_it(real_dir: Path) -> None:

    from powdersolve.density import density_grid
    from powdersolve.evaluate import symmetry_averaged
    from powdersolve.metrics import map_correlation
    from powdersolve.structures import load_crystal

    c = load_crystal(real_dir / "cubic" / "CaF2_225.cif")
    truth = density_grid(c)
    averaged, groups = symmetry_averaged(truth[None], c.lattice)
    assert groups == ["Fm-3m"]
    assert map_correlation(averaged[0], truth) > 0.999


def test_cli_refuses_a_bad_sharpen_setting(tiny_weights: Path, two_cifs: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "powdersolve", "evaluate", "--weights", str(tiny_weights),
                          "--structures", str(two_cifs), "--sharpen", "1.5"], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 2
    assert "--sharpen" in res.stderr and "Traceback" not in res.stderr


def test_histogram_matched_modification_is_recorded_and_scored(tiny_weights: Path, two_cifs: Path) -> None:
    cfg = EvalConfig(grid=12, samples=1, modify=ModificationConfig(cycles=1, histogram="final"))
    rep = evaluate(tiny_weights, two_cifs, cfg, progress=False)
    assert rep["protocol"]["modify"]["histogram"] == "final"
    assert all(-1 <= r["cc_modified"] <= 1 for r in rep["per_crystal"])
    res = subprocess.run([sys.executable, "-m", "powdersolve", "evaluate", "--weights", str(tiny_weights),
                          "--structures", str(two_cifs), "--modify-histogram", "final"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2
    assert "--modify-histogram needs --modify" in res.stderr and "Traceback" not in res.stderr
