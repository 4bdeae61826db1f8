"""`evaluate`: the posterior mean beside the oracle pick, baselines scored by the same code, each crystal
by its own system's model, CLI round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from powdersolve.diffraction.peaks import merge_tolerance
from powdersolve.errors import InputError
from powdersolve.evaluate import EvalConfig, evaluate, model_inputs
from powdersolve.inputs import sample_grids
from powdersolve.maps.flipping import FlipConfig
from powdersolve.maps.modification import ModificationConfig
from powdersolve.model import build_model, tiny_config, with_overrides
from powdersolve.structures import lattice_system, load_crystal
from powdersolve.weights import WEIGHTS_DIR, load_model, save_model, serving_model


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("w")
    torch.manual_seed(0)
    return save_model(build_model(tiny_config()), d / "tiny.safetensors", {"note": "untrained"})


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory) -> Path:
    """Another untrained cubic model (other initial weights): its maps differ from ``tiny_weights``'."""
    torch.manual_seed(1)
    return save_model(build_model(tiny_config()), tmp_path_factory.mktemp("o") / "other.safetensors")


@pytest.fixture(scope="module")
def two_cifs(real_dir: Path, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cifs")
    for name in ("CaF2_225.cif", "Al_225.cif"):
        (d / name).write_bytes((real_dir / "cubic" / name).read_bytes())
    return d


@pytest.fixture(scope="module")
def mixed_cifs(real_dir: Path, tmp_path_factory) -> Path:
    """One cubic, one hexagonal and one tetragonal crystal."""
    d = tmp_path_factory.mktemp("mixed")
    for system, name in (("cubic", "Al_225.cif"), ("hexagonal", "Be_194.cif"), ("tetragonal", "Hg_139.cif")):
        (d / name).write_bytes((real_dir / system / name).read_bytes())
    return d


def test_report_fields_baselines_and_the_posterior_mean(tiny_weights: Path, two_cifs: Path, tmp_path: Path) -> None:
    rep = evaluate(tiny_weights, two_cifs, EvalConfig(grid=16, samples=2), save_grids=tmp_path, progress=False)
    for key in ("n", "cc_posterior_mean", "cc_best_of_n_oracle", "cc_mean", "cc_median", "ssim_posterior_mean",
                "ssim_best_of_n_oracle", "psnr_posterior_mean", "psnr_best_of_n_oracle", "baselines",
                "per_system", "per_spacegroup", "per_crystal", "skipped", "protocol"):
        assert key in rep
    assert rep["n"] == 2 and rep["skipped"] == [] and set(rep["per_system"]) == {"cubic"}
    assert rep["cc_mean"] == rep["cc_best_of_n_oracle"] >= rep["cc_posterior_mean"]
    assert "oracle" in rep["protocol"]["oracle_note"]
    for row in rep["per_crystal"]:
        assert -1.0 <= row["cc_posterior_mean"] <= row["cc"] <= 1.0 and row["spacegroup"] == 225
        assert row["system"] == row["model_system"] == "cubic" and row["rotations"] == 24
    base = rep["baselines"]
    assert set(base) == {"mean", "random_atoms", "zero_phase", "patterson"}
    assert base["mean"]["cc_mean"] == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < base["random_atoms"]["cc_single_mean"] <= base["random_atoms"]["cc_mean"] <= 1.0
    assert all(b["uses_true_z"] for b in base.values())
    # fcc Al sits on the origin's inversion centre with every phase 0: the zero-phase map is the structure.
    al = next(r for r in rep["per_crystal"] if r["file"] == "Al_225.cif")
    assert al["zero_phase_cc"] > 0.97 > al["random_atoms_cc"]
    p = rep["protocol"]
    assert p["weights_sha256"] and p["rotations"] == {"cubic": 24}
    assert p["merge_tolerance_q"] == {str(tiny_weights): merge_tolerance(tiny_config().q_max, tiny_config().xrd_bins)}
    # The saved prediction is the posterior mean (sample 0), the map a user gets.
    model = load_model(tiny_weights)[0]
    crystal = load_crystal(two_cifs / "CaF2_225.cif")
    sample0 = sample_grids(model, model_inputs(model, crystal), 1, 16, 0)[0]
    np.testing.assert_allclose(np.load(tmp_path / "CaF2_225_pred.npy"), sample0, atol=1e-4)  # float32, batch of 2
    assert (tmp_path / "CaF2_225_gt.npy").exists()


def test_an_extra_model_is_scored_as_if_it_were_the_model(tiny_weights: Path, other_weights: Path,
                                                          two_cifs: Path) -> None:
    """The extra-model path gives what evaluating that model on its own gives, post-processing included."""
    cfg = EvalConfig(grid=12, samples=2, sharpen=(1.5, 2.0), absolute=True, modify=ModificationConfig(cycles=2))
    rep = evaluate(tiny_weights, two_cifs, cfg, extra_models={"other": other_weights}, progress=False)
    alone = evaluate(other_weights, two_cifs, replace(cfg, baselines=False), progress=False)
    assert abs(rep["cc_mean"] - alone["cc_mean"]) > 1e-4  # two different models
    other = rep["baselines"]["other"]
    assert other["cc_mean"] == pytest.approx(alone["cc_best_of_n_oracle"], abs=1e-9)
    assert other["cc_single_mean"] == pytest.approx(alone["cc_posterior_mean"], abs=1e-9)
    assert not other["uses_true_z"]
    for t in ("sharpened", "absolute", "modified"):
        assert rep["baselines"][f"other_{t}"]["ssim_mean"] == pytest.approx(alone[f"ssim_{t}_mean"], abs=1e-9)
        assert f"random_atoms_{t}" in rep["baselines"]
    assert rep["protocol"]["uses_true_z"] == {"sharpened": False, "absolute": True, "modified": True}
    assert rep["baselines"]["other_absolute"]["uses_true_z"] and not rep["baselines"]["other_sharpened"]["uses_true_z"]
    # Moving and shrinking a map leaves its correlation with the truth alone.
    assert rep["cc_absolute_posterior_mean"] == pytest.approx(rep["cc_posterior_mean"], abs=1e-6)
    # The pattern's magnitudes move even an untrained model's map towards the truth.
    assert rep["cc_modified_mean"] > rep["cc_mean"]


def test_each_crystal_is_scored_by_the_model_of_its_system(tiny_weights: Path, mixed_cifs: Path,
                                                          tmp_path: Path) -> None:
    cfg = EvalConfig(grid=12, samples=1, baselines=False)
    rep = evaluate(tiny_weights, mixed_cifs, cfg, progress=False)
    assert rep["n"] == 1 and rep["per_crystal"][0]["file"] == "Al_225.cif"
    skipped = {s["system"]: s["reason"] for s in rep["skipped"]}
    assert set(skipped) == {"hexagonal", "tetragonal"} and "no model serves a hexagonal lattice" in skipped["hexagonal"]
    trigonal = save_model(build_model(with_overrides(tiny_config(), system="trigonal")), tmp_path / "t.safetensors")
    rep = evaluate(trigonal, mixed_cifs, cfg, progress=False)
    row = rep["per_crystal"][0]
    assert rep["n"] == 1 and row["file"] == "Be_194.cif"
    # Hexagonal crystals go to the trigonal model, reported under their own system, over hexagonal rotations.
    assert (row["system"], row["model_system"], row["rotations"]) == ("hexagonal", "trigonal", 12)
    assert rep["per_system"]["hexagonal"]["model_system"] == "trigonal"
    assert {s["system"] for s in rep["skipped"]} == {"cubic", "tetragonal"}
    with pytest.raises(InputError, match="no structure has a model"):
        evaluate(trigonal, mixed_cifs, replace(cfg, system="tetragonal"), progress=False)


@pytest.mark.needs_data(WEIGHTS_DIR / "cubic.safetensors", WEIGHTS_DIR / "trigonal.safetensors")
def test_without_weights_each_crystal_gets_the_shipped_model_its_lattice_selects(mixed_cifs: Path) -> None:
    rep = evaluate(None, mixed_cifs, EvalConfig(grid=12, samples=1, baselines=False), progress=False)
    expected = {f.name: serving_model(lattice_system(int(f.stem.rsplit("_", 1)[1]))) for f in mixed_cifs.iterdir()}
    scored = {row["file"]: Path(row["weights"]).stem for row in rep["per_crystal"]}
    assert scored == {f: m for f, m in expected.items() if m is not None}
    assert {s["file"] for s in rep["skipped"]} == {f for f, m in expected.items() if m is None}
    assert all("no model serves" in s["reason"] for s in rep["skipped"])
    assert {"Al_225.cif", "Be_194.cif"} <= set(scored)


def test_absolute_scale_with_z_from_the_map_is_scored_for_every_model(tiny_weights: Path, other_weights: Path,
                                                                      two_cifs: Path) -> None:
    """Every model and baseline gets the step; untrained models' maps make no Z clear and keep their scale."""
    rep = evaluate(tiny_weights, two_cifs, EvalConfig(grid=24, samples=2, absolute_map=True),
                   extra_models={"other": other_weights}, progress=False)
    assert {"random_atoms_absolute_map", "other_absolute_map"} <= set(rep["baselines"])
    assert rep["cc_absolute_map_mean"] == pytest.approx(rep["cc_mean"], abs=1e-6)
    assert rep["ssim_absolute_map_mean"] == pytest.approx(rep["ssim_mean"], abs=1e-6)
    other = rep["baselines"]
    assert other["other_absolute_map"]["ssim_mean"] == pytest.approx(other["other"]["ssim_mean"], abs=1e-6)
    assert rep["protocol"]["uses_true_z"] == {"absolute_map": False}


def test_absolute_scale_of_a_query_model_uses_the_whole_grid(two_cifs: Path, tmp_path: Path) -> None:
    """The paper's query decoder is not band-limited: its maps are scaled over every grid index."""
    torch.manual_seed(0)  # an untrained map's ripple can be so small that float32 rounding moves its CC
    weights = save_model(build_model(tiny_config(arch="query")), tmp_path / "q.safetensors", {"note": "untrained"})
    rep = evaluate(weights, two_cifs, EvalConfig(grid=12, samples=1, baselines=False, absolute=True), progress=False)
    assert rep["n"] == 2 and rep["cc_absolute_mean"] == pytest.approx(rep["cc_mean"], abs=1e-5)  # float32 maps


def test_symmetry_constrained_modification_is_scored_beside_the_plain_one(tiny_weights: Path, two_cifs: Path) -> None:
    cfg = EvalConfig(grid=12, samples=1, modify=ModificationConfig(cycles=2, symmetry=True))
    rep = evaluate(tiny_weights, two_cifs, cfg, progress=False)
    for key in ("cc_modified_mean", "cc_modified_symmetric_mean", "ssim_modified_symmetric_mean"):
        assert key in rep
    assert {"random_atoms_modified", "random_atoms_modified_symmetric"} <= set(rep["baselines"])
    assert all(-1 <= r["cc_modified_symmetric"] <= 1 for r in rep["per_crystal"])


def test_charge_flipping_is_scored_with_its_own_nulls(tiny_weights: Path, two_cifs: Path) -> None:
    """The flipped maps and the maps the flipping prefers, beside zero-phase and random-atom starts flipped
    the same way; none of them reads the cell content. The untrained model's maps are repaired."""
    cfg = EvalConfig(grid=16, samples=1, flip=FlipConfig(cycles=60))
    rep = evaluate(tiny_weights, two_cifs, cfg, progress=False)
    for key in ("cc_flipped_posterior_mean", "cc_flipped_checked_posterior_mean"):
        assert key in rep
    assert {"zero_phase_flipped", "random_atoms_flipped", "zero_phase_flipped_checked"} <= set(rep["baselines"])
    assert rep["protocol"]["uses_true_z"] == {"flipped": False, "flipped_checked": False}
    assert rep["cc_flipped_posterior_mean"] > rep["cc_posterior_mean"] + 0.2
    for r in rep["per_crystal"]:
        assert r["cc_flipped_checked_posterior_mean"] in (r["cc_posterior_mean"], r["cc_flipped_posterior_mean"])


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
