"""`powdersolve predict`: pattern file -> density maps, with a tiny untrained model (fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gemmi
import independent
import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from powdersolve.cell import Cell
from powdersolve.cli import main
from powdersolve.diffraction.profile import ProfileConfig, profile_pattern
from powdersolve.diffraction.sticks import WAVELENGTHS, q_from_two_theta, sticks
from powdersolve.errors import InputError
from powdersolve.inputs import choose_composition
from powdersolve.model import build_model, tiny_config, with_overrides
from powdersolve.plots import isosurface
from powdersolve.predict import PredictConfig, predict, steps
from powdersolve.structures import load_crystal
from powdersolve.weights import WEIGHTS_DIR, save_model

ROOT = Path(__file__).resolve().parents[1]
CAF2_A = 5.4626  # CaF2 cell edge of the benchmark CIF (checked against the file below)


def write_xy(path: Path, cif: Path, line: str = "CuKa1", lo: float = 10.0, hi: float = 100.0, step: float = 0.02,
             state_wavelength: bool = True, seed: int = 0) -> Path:
    """A measured-like pattern: profile with K-alpha2, background and Poisson noise, as .xy."""
    crystal = load_crystal(cif)
    lam = WAVELENGTHS[line]
    s = sticks(crystal, q_max=float(q_from_two_theta(min(hi + 5, 179), lam)) * 1.01, b_iso=1.0)
    cfg = ProfileConfig(u=0.004, w=0.002, eta0=0.4, kalpha2=True, background=(300.0, -80.0, 30.0),
                        background_inverse=500.0, scale=20000.0, noise=True)
    tt = np.arange(lo, hi, step)
    y = profile_pattern(s, lam, tt, cfg, np.random.default_rng(seed))
    head = f"# simulated {crystal.formula}\n" + (f"# wavelength = {lam}\n" if state_wavelength else "")
    path.write_text(head + "\n".join(f"{a:.4f} {b:.1f}" for a, b in zip(tt, y)) + "\n")
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    return save_model(build_model(tiny_config()), tmp_path_factory.mktemp("w") / "m.safetensors")


@pytest.fixture(scope="module")
def cu_xy(tmp_path_factory: pytest.TempPathFactory, cubic_cif: Path) -> Path:
    return write_xy(tmp_path_factory.mktemp("p") / "caf2_cu.xy", cubic_cif)


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["predict", *[str(a) for a in args]])
    return code, capsys.readouterr().err


def test_predict_cli_writes_every_output(tmp_path: Path, cu_xy: Path, weights: Path, cubic_cif: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    a = load_crystal(cubic_cif).cell_parameters[0]
    assert abs(a - CAF2_A) < 0.01
    out = tmp_path / "run"
    code, err = run_cli([cu_xy, "--weights", weights, "--cell", f"{a} {a} {a} 90 90 90", "--composition", "CaF2",
                         "--grid", 16, "--samples", 5, "--save-samples", "--out", out], capsys)
    assert code == 0, err
    for name in ("density.ccp4", "density.cube", "CHGCAR", "density.npy", "density_std.ccp4", "density_std.npy",
                 "slices.png", "isosurface.png", "pattern.png", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "samples").glob("*.npy"))) == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind
    mean, std = np.load(out / "density.npy"), np.load(out / "density_std.npy")
    assert mean.shape == std.shape == (16, 16, 16)
    assert np.all(std >= 0) and np.all(np.isfinite(mean))
    samples = np.stack([np.load(p) for p in sorted((out / "samples").glob("*.npy"))])
    np.testing.assert_allclose(samples.mean(0), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(samples.std(0), std, rtol=1e-3, atol=1e-5)
    m = gemmi.read_ccp4_map(str(out / "density.ccp4"))
    assert m.grid.unit_cell.a == pytest.approx(a, rel=1e-5) and m.grid.unit_cell.gamma == pytest.approx(90)
    np.testing.assert_allclose(np.array(m.grid, copy=False), mean, rtol=1e-6)
    # CHGCAR: values are rho * V with a fastest.
    lines = (out / "CHGCAR").read_text().splitlines()
    dims = [int(v) for v in lines[lines.index("Direct") + 2].split()]
    vals = np.array(" ".join(lines[lines.index("Direct") + 3:]).split(), dtype=float)
    np.testing.assert_allclose(vals.reshape(dims[::-1]).transpose(2, 1, 0), mean * a**3, rtol=1e-5, atol=1e-6)
    s = json.loads((out / "summary.json").read_text())
    assert s["cell"]["source"] == "given" and s["cell"]["a"] == pytest.approx(a)
    assert s["wavelength"]["source"] == "file" and s["wavelength"]["effective"] == pytest.approx(WAVELENGTHS["CuKa1"])
    assert s["composition"]["encoding"] == "fractions"
    assert s["model"]["sha256"] and len(s["model"]["sha256"]) == 64
    assert 0 < s["q_coverage"]["fraction_of_model_axis"] <= 1
    assert s["q_coverage"]["measured_q_max"] == pytest.approx(q_from_two_theta(100 - 0.02, WAVELENGTHS["CuKa1"]),
                                                              abs=1e-3)
    assert any("K-alpha2" in step for step in s["processing"])
    assert {"read", "preprocess", "sample", "write"} <= set(s["timings_s"])
    assert s["sampling"]["samples"] == 5


def test_wavelength_conversion_cu_vs_mo(tmp_path: Path, cubic_cif: Path, weights: Path) -> None:
    """The same crystal measured at Cu and Mo gives the same wavelength-free model input."""
    cu = write_xy(tmp_path / "cu.xy", cubic_cif, "CuKa1", 10, 100, 0.02)
    mo = write_xy(tmp_path / "mo.xy", cubic_cif, "MoKa1", 5, 44, 0.01, seed=1)
    cfg = PredictConfig(samples=1, grid=8, weights=weights, cell=(CAF2_A,) * 3 + (90.0,) * 3)
    in_cu, in_mo = predict(cu, cfg).model_input, predict(mo, cfg).model_input
    assert in_mo[1].sum() > in_cu[1].sum()  # the Mo scan reaches higher Q: its mask is wider
    common = (in_cu[1] > 0) & (in_mo[1] > 0)
    x_cu, x_mo = in_cu[0] * common, in_mo[0] * common
    strong_cu, strong_mo = np.flatnonzero(x_cu > 0.2), np.flatnonzero(x_mo > 0.2)
    assert len(strong_cu) >= 5
    # Every strong peak bin of one has a strong peak within one bin in the other.
    dist = np.abs(strong_cu[:, None] - np.flatnonzero(x_mo > 0.05)[None, :]).min(1)
    assert dist.max() <= 1, (strong_cu, strong_mo)
    dist = np.abs(strong_mo[:, None] - np.flatnonzero(x_cu > 0.05)[None, :]).min(1)
    assert dist.max() <= 1, (strong_cu, strong_mo)


def test_missing_wavelength_exit_2(tmp_path: Path, cubic_cif: Path, weights: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    xy = write_xy(tmp_path / "nolam.xy", cubic_cif, state_wavelength=False, step=0.05)
    code, err = run_cli([xy, "--weights", weights, "--cell", CAF2_A, "--out", tmp_path / "o"], capsys)
    assert code == 2
    assert "does not state its wavelength; pass --wavelength" in err.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()
    # Given on the command line it works, and the summary says where it came from.
    code, err = run_cli([xy, "--weights", weights, "--cell", CAF2_A, "--wavelength", "CuKa1", "--grid", 8,
                         "--samples", 2, "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["wavelength"]["source"] == "argument"


@pytest.mark.parametrize(("text", "encoding"), [("CaF2", "fractions"), ("Ca,F", "presence"), (None, "none")])
def test_composition_encoding(text: str | None, encoding: str) -> None:
    vec, info = choose_composition(tiny_config(), text)
    assert info["encoding"] == encoding and info["reason"]
    if encoding == "fractions":
        assert vec[20] == pytest.approx(1 / 3) and vec[9] == pytest.approx(2 / 3)
    elif encoding == "presence":
        assert vec[20] == vec[9] == 1 and vec.sum() == 2
    else:
        assert not vec.any()


def test_composition_for_presence_trained_model() -> None:
    _, info = choose_composition(with_overrides(tiny_config(), composition="presence"), "CaF2")
    assert info["encoding"] == "presence" and "trained" in info["reason"]
    _, info = choose_composition(with_overrides(tiny_config(), use_formula=False), "CaF2")
    assert info["encoding"] == "none"


def test_parse_cell() -> None:
    assert Cell.parse("5.46") == (5.46, 5.46, 5.46, 90.0, 90.0, 90.0)
    assert Cell.parse("4.9, 4.9, 5.4, 90, 90, 120") == (4.9, 4.9, 5.4, 90.0, 90.0, 120.0)
    for bad in ("5 5", "a b c 90 90 90", "5 5 5 90 90 200", "5 5 5 10 10 170", "-5 5 5 90 90 90"):
        with pytest.raises(InputError):
            Cell.parse(bad)


@pytest.mark.parametrize("args", [["--cell", "5.4 5.4"], ["--cell", "5 6 7 90 90 90"], ["--grid", 4],
                                  ["--grid", 200], ["--samples", 0], ["--composition", "Xx2"],
                                  ["--modify", -1], ["--flip", -1], ["--formula-units", 0], ["--modify-symmetry"],
                                  ["--modify-histogram", "final"], ["--modify", 2, "--modify-histogram", "cycles"],
                                  ["--modify", 2, "--modify-histogram", "most"],
                                  ["--modify", 2, "--modify-histogram", "final", "--composition", "Ca,F",
                                   "--formula-units", 4]])
def test_bad_arguments_exit_2(tmp_path: Path, cu_xy: Path, weights: Path, args: list,
                              capsys: pytest.CaptureFixture) -> None:
    full = [cu_xy, "--weights", weights, "--out", tmp_path / "o", *args]
    if "--cell" not in args:
        full += ["--cell", CAF2_A]
    code, err = run_cli(full, capsys)
    assert code == 2, err
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert len(errors) == 1 and err.strip().splitlines()[-1].startswith("powdersolve: error:")
    assert not (tmp_path / "o").exists()


def test_existing_output_refused(tmp_path: Path, cu_xy: Path, weights: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = [cu_xy, "--weights", weights, "--cell", CAF2_A, "--grid", 8, "--samples", 2, "--out", out]
    code, err = run_cli(args, capsys)
    assert code == 4 and "--overwrite" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    code, err = run_cli([*args, "--overwrite"], capsys)
    assert code == 0, err
    assert (out / "density.npy").exists() and not (out / "keep.txt").exists()


def test_predict_is_seeded(cu_xy: Path, weights: Path) -> None:
    cfg = PredictConfig(samples=3, grid=8, seed=7, weights=weights, cell=(CAF2_A,) * 3 + (90.0,) * 3)
    a, b = predict(cu_xy, cfg), predict(cu_xy, cfg)
    np.testing.assert_array_equal(a.mean, b.mean)
    # Sample 0 alone is the posterior mean: deterministic, zero spread.
    one = predict(cu_xy, PredictConfig(samples=1, grid=8, weights=weights, cell=cfg.cell))
    assert one.std.max() == 0


def test_isosurface_inside_cell() -> None:
    x = np.arange(12) / 12
    g = np.exp(-20 * ((x[:, None, None] - 0.5) ** 2 + (x[None, :, None] - 0.5) ** 2 + (x[None, None, :] - 0.5) ** 2))
    lat = np.array([[4.0, 0, 0], [-2.0, 3.4641, 0], [0, 0, 6.0]])
    verts, faces, level = isosurface(g, lat)
    frac = verts @ np.linalg.inv(lat)
    assert len(faces) and np.all(frac > -1e-9) and np.all(frac < 1 + 1e-9)
    assert abs(frac.mean(0) - 0.5).max() < 0.05


def test_cli_subprocess_indexes_the_cell(tmp_path: Path, cu_xy: Path, weights: Path) -> None:
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, "-m", "powdersolve", "predict", str(cu_xy), "--weights", str(weights),
                           "--composition", "Ca,F", "--grid", "8", "--samples", "2", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["cell"]["source"] == "indexed" and s["cell"]["indexing"]["m20"] >= 10
    assert s["cell"]["a"] == pytest.approx(CAF2_A, rel=2e-3)
    assert s["composition"]["encoding"] == "presence"


# ---------------------------------------------------------------------------------- acceptance (shipped model)


def xrayutilities_xy(path: Path, cif: Path, seed: int = 0) -> Path:
    """Cu K-alpha1/2 pattern 10-110 deg from xrayutilities' fundamental-parameters model, with noise."""
    import xrayutilities as xu

    mat = xu.materials.Crystal.fromCIF(str(cif))
    tt = np.arange(10, 110, 0.02)
    settings = {"emission": {"emiss_wavelengths": (1.5405929e-10, 1.5444274e-10), "emiss_intensities": (1.0, 0.5)}}
    model = xu.simpack.PowderModel(xu.simpack.Powder(mat, 1), I0=1e5, fpsettings=settings)
    try:
        y = model.simulate(tt)
    finally:
        model.close()
    rng = np.random.default_rng(seed)
    y = 2e4 * y / y.max() + 200 + 3000 / tt
    y = rng.poisson(y).astype(float)
    path.write_text("# wavelength = 1.5405929\n" + "\n".join(f"{a:.4f} {b:.1f}" for a, b in zip(tt, y)) + "\n")
    return path


@pytest.mark.needs_data(WEIGHTS_DIR / "cubic.safetensors")
def test_acceptance_independent_simulator(tmp_path: Path, cubic_cif: Path, capsys: pytest.CaptureFixture) -> None:
    from powdersolve.baselines import random_atoms_baseline
    from powdersolve.density import DensityConfig, density_grid
    from powdersolve.metrics import map_correlation

    crystal = load_crystal(cubic_cif)
    xy = xrayutilities_xy(tmp_path / "caf2.xy", cubic_cif)
    a = crystal.cell_parameters[0]
    code, err = run_cli([xy, "--cell", f"{a}", "--composition", "CaF2", "--system", "cubic", "--grid", 32,
                         "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    pred = np.load(tmp_path / "o" / "density.npy")
    b_iso = json.loads((tmp_path / "o" / "summary.json").read_text())["model"]["b_iso_A2"]
    truth = density_grid(crystal, DensityConfig(b_iso=b_iso, grid=32))
    cc = map_correlation(pred, truth)
    rng = np.random.default_rng(0)
    base = max(map_correlation(random_atoms_baseline(crystal, 32, b_iso, rng), truth) for _ in range(5))
    assert cc > max(base + 0.2, 0.8), (cc, base)


def test_symmetrise_writes_the_map_averaged_over_the_group_it_shows(tmp_path: Path, cu_xy: Path, cubic_cif: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """Shipped cubic model on CaF2: the mean map shows Fm-3m; its average is as close to the truth."""
    from powdersolve.density import DensityConfig, density_grid
    from powdersolve.metrics import map_correlation

    crystal = load_crystal(cubic_cif)
    code, err = run_cli([cu_xy, "--cell", f"{crystal.cell_parameters[0]}", "--composition", "CaF2", "--system",
                         "cubic", "--grid", 24, "--samples", 3, "--symmetrise", "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["symmetry"]["group"] == "Fm-3m" and summary["symmetry"]["cc_min"] > 0.9
    truth = density_grid(crystal, DensityConfig(b_iso=summary["model"]["b_iso_A2"], grid=24))
    mean = np.load(tmp_path / "o" / "density.npy")
    averaged = np.load(tmp_path / "o" / "density_symmetrised.npy")
    assert map_correlation(averaged, truth) >= map_correlation(mean, truth) - 0.01
    assert (tmp_path / "o" / "density_symmetrised.ccp4").exists()


def test_modify_writes_a_map_with_the_measured_magnitudes(tmp_path: Path, cu_xy: Path, cubic_cif: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    """Shipped cubic model on CaF2: the density-modified map is on the Wilson scale, non-negative,
    holds the cell's electrons (plus the clipped ripple), and is as close to the truth as the mean map."""
    from powdersolve.density import DensityConfig, density_grid
    from powdersolve.metrics import map_correlation

    crystal = load_crystal(cubic_cif)
    code, err = run_cli([cu_xy, "--cell", f"{crystal.cell_parameters[0]}", "--composition", "CaF2", "--system",
                         "cubic", "--grid", 24, "--samples", 3, "--modify", 5, "--formula-units", 4,
                         "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["modification"]["scale"] == "wilson" and summary["modification"]["formula_units_per_cell"] == 4
    truth = density_grid(crystal, DensityConfig(b_iso=summary["model"]["b_iso_A2"], grid=24))
    mean = np.load(tmp_path / "o" / "density.npy")
    modified = np.load(tmp_path / "o" / "density_modified.npy")
    # F(000) is the cell's 152 electrons; the final clip of negative ripple adds a little.
    assert 152 <= modified.mean() * crystal.volume <= 152 * 1.05
    assert modified.min() >= 0
    assert map_correlation(modified, truth) >= map_correlation(mean, truth) - 0.005
    assert (tmp_path / "o" / "density_modified.ccp4").exists()


def test_modify_with_symmetry_finds_the_group(tmp_path: Path, cu_xy: Path, cubic_cif: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    """Shipped cubic model on CaF2: the symmetry-constrained modification finds Fm-3m in the map and
    writes a map that obeys it, at its standard origin, as close to the truth as the mean map."""
    from powdersolve.density import DensityConfig, density_grid
    from powdersolve.maps.symmetry import MapSymmetry, from_standard_origin, symmetrise_map
    from powdersolve.metrics import map_correlation

    crystal = load_crystal(cubic_cif)
    code, err = run_cli([cu_xy, "--cell", f"{crystal.cell_parameters[0]}", "--composition", "CaF2", "--system",
                         "cubic", "--grid", 24, "--samples", 3, "--modify", 5, "--modify-symmetry",
                         "--formula-units", 4, "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    info = json.loads((tmp_path / "o" / "summary.json").read_text())["modification"]
    assert info["symmetry_constrained"] and info["symmetry"]["number"] == 225
    modified = np.load(tmp_path / "o" / "density_modified.npy").astype(np.float64)
    # The map lies at the mean map's origin and obeys Fm-3m about the group origin found there.
    origin = info["symmetry"]["origin_shift_frac"]
    averaged = symmetrise_map(modified, 225, origin)
    found = MapSymmetry(225, "Fm-3m", 192, tuple(origin), 1.0, 1.0)
    assert np.allclose(from_standard_origin(averaged[None], [found])[0], modified, atol=2e-3 * modified.max())
    truth = density_grid(crystal, DensityConfig(b_iso=8.0, grid=24))
    mean = np.load(tmp_path / "o" / "density.npy")
    assert map_correlation(modified, truth) >= map_correlation(mean, truth) - 0.005


def test_the_maps_are_put_on_the_absolute_scale_of_the_cell_content(tmp_path: Path, cu_xy: Path, weights: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """With the formula and Z every sample holds the cell's electrons and at most the variance its atoms imply;
    without Z (an untrained model's map makes none clear), or with --no-absolute-scale, the network's own scale
    is kept and said so."""
    from powdersolve.maps.scale import expected_moments, grid_hkl
    from powdersolve.model import model_band
    from powdersolve.weights import load_model

    args = [cu_xy, "--weights", weights, "--cell", CAF2_A, "--grid", 16, "--samples", 2, "--save-samples",
            "--composition", "CaF2"]
    code, err = run_cli([*args, "--formula-units", 4, "--out", tmp_path / "abs"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "abs" / "summary.json").read_text())
    assert summary["density"]["scale"]["kind"] == "absolute"
    lattice = np.array(summary["cell"]["lattice_A"])
    model, _ = load_model(weights)
    mean, var = expected_moments(lattice, np.array([20] * 4 + [9] * 8), None, model.cfg.b_iso,
                                 grid_hkl(16, model_band(model.cfg)))
    assert summary["density"]["integrated_electrons"] == pytest.approx(152, rel=2e-3)
    for f in sorted((tmp_path / "abs" / "samples").glob("*.npy")):
        g = np.load(f).astype(np.float64)
        assert g.mean() == pytest.approx(mean, rel=1e-4) and g.var() <= var * (1 + 1e-3)  # shrunk, never stretched
    for extra, name in (([], "noz"), (["--formula-units", 4, "--no-absolute-scale"], "off")):
        code, err = run_cli([*args, *extra, "--out", tmp_path / name], capsys)
        assert code == 0, err
        kept = json.loads((tmp_path / name / "summary.json").read_text())["density"]
        assert kept["scale"]["kind"] == "network"
        assert kept["integrated_electrons"] != pytest.approx(152, rel=2e-3)  # an untrained model's own guess


EXAMPLE_XY = Path(__file__).resolve().parents[1] / "powdersolve" / "examples" / "CaF2_CuKa.xy"


@pytest.mark.needs_data(WEIGHTS_DIR / "cubic.safetensors")
@pytest.mark.parametrize("formula", ["CaF2", "Ca2F4"])
def test_z_is_read_from_the_shipped_models_map(tmp_path: Path, formula: str, capsys: pytest.CaptureFixture) -> None:
    """The formula without Z (written as any multiple): Z = 4 x CaF2 read from the posterior-mean map's peaks,
    so the maps hold the cell's 152 electrons."""
    code, err = run_cli([EXAMPLE_XY, "--composition", formula, "--samples", 1, "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    density = json.loads((tmp_path / "o" / "summary.json").read_text())["density"]
    scale = density["scale"]
    assert scale["kind"] == "absolute" and scale["formula"] == "CaF2" and scale["formula_units_per_cell"] == 4
    assert scale["formula_units_source"] == "read from the map's peaks"
    assert scale["formula_units_candidates"][0]["Z"] == 4
    assert density["integrated_electrons"] == pytest.approx(152, rel=2e-3)


def test_an_unclear_z_keeps_the_networks_scale(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """When the map does not make Z clear the network's scale is kept, and the candidates are reported."""
    from powdersolve.predict import sampling as predict_module

    candidates = [(4, 0.42), (8, 0.45)]
    monkeypatch.setattr(predict_module, "read_formula_units", lambda *_: ("CaF2", None, candidates, "unclear"))
    code, err = run_cli([EXAMPLE_XY, "--weights", weights, "--cell", CAF2_A, "--grid", 12, "--samples", 1,
                         "--composition", "CaF2", "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["density"]["scale"]["kind"] == "network"
    assert summary["density"]["scale"]["formula_units_candidates"] == [{"Z": 4, "cost": 0.42}, {"Z": 8, "cost": 0.45}]
    assert any("Z not clear" in line for line in summary["processing"])


def test_formula_units_the_cell_cannot_hold_are_refused(tmp_path: Path, cu_xy: Path, weights: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    code, err = run_cli([cu_xy, "--weights", weights, "--cell", CAF2_A, "--grid", 8, "--samples", 1,
                         "--composition", "CaF2", "--formula-units", 400, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "cannot fit" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_modify_without_a_formula_scales_to_the_map(tmp_path: Path, cu_xy: Path, weights: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    code, err = run_cli([cu_xy, "--weights", weights, "--cell", CAF2_A, "--grid", 16, "--samples", 1, "--modify", 2,
                         "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["modification"]["scale"] == "model"
    mean = np.load(tmp_path / "o" / "density.npy").astype(np.float64)
    modified = np.load(tmp_path / "o" / "density_modified.npy")
    # F(000) is the map's own electron count; clipping the negative part can only add to it.
    assert np.isfinite(modified).all() and modified.min() >= 0
    assert modified.mean() >= mean.mean() * (1 - 1e-5)


def test_modify_with_histogram_matching_has_the_expected_values(tmp_path: Path, cu_xy: Path, weights: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    """The matched map's values are those the formula, Z and cell lead one to expect, in the map's order."""
    from powdersolve.cell import Composition
    from powdersolve.maps.modification import reference_histogram

    code, err = run_cli([cu_xy, "--weights", weights, "--cell", CAF2_A, "--grid", 16, "--samples", 1, "--modify", 2,
                         "--modify-histogram", "cycles", "--composition", "CaF2", "--formula-units", 4,
                         "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    info = json.loads((tmp_path / "o" / "summary.json").read_text())["modification"]
    assert info["histogram_matching"] == "cycles" and info["scale"] == "wilson"
    modified = np.load(tmp_path / "o" / "density_modified.npy").astype(np.float64)
    a = float(CAF2_A)
    numbers = np.repeat(Composition.parse("CaF2").atomic_numbers(), [4, 8])
    ref = reference_histogram(np.diag([a, a, a]), numbers, np.ones(12), 16, 8.0)
    assert np.allclose(np.sort(modified.ravel()), ref, rtol=1e-5, atol=1e-5 * ref.max())


def test_an_indexed_cell_goes_to_its_systems_model_and_is_refused_without_one(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Rutile (tetragonal), simulated independently: indexing finds its system, the tetragonal model serves
    it, and where no model serves tetragonal cells predict stops there instead of using another model."""
    rutile = Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"],
                                       [[0, 0, 0], [0.3048, 0.3048, 0]])
    tt, counts = independent.pattern(rutile, hi=100.0)
    path = tmp_path / "rutile.xy"
    np.savetxt(path, np.column_stack([tt, counts]))
    config = PredictConfig(composition="TiO2", wavelength=independent.CU_KA1, samples=1, grid=16)
    result = predict(path, config)
    assert result.system == "tetragonal"
    assert np.allclose(result.cell[:3], (4.594, 4.594, 2.959), rtol=2e-3)
    monkeypatch.setattr(steps, "available_systems", lambda: ["cubic", "trigonal"])
    with pytest.raises(InputError, match=r"indexes as tetragonal P .*no shipped model serves tetragonal"):
        predict(path, config)


def test_flip_repairs_the_map_of_an_untrained_model(tmp_path: Path, cu_xy: Path, cubic_cif: Path, weights: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """An untrained model's map of CaF2 is noise; charge flipping of the measured peaks' magnitudes from its
    phases finds most of the structure, on the mean map's scale (same F(000)), and is preferred."""
    from powdersolve.density import DensityConfig, density_grid
    from powdersolve.metrics import map_correlation_per_sample

    crystal = load_crystal(cubic_cif)
    code, err = run_cli([cu_xy, "--weights", weights, "--cell", CAF2_A, "--grid", 24, "--samples", 1, "--flip", 100,
                         "--out", tmp_path / "o"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["flipping"]["cycles"] == 100 and 0 < summary["flipping"]["r_factor"] < 1
    assert summary["flipping"]["preferred_map"] == "density_flipped"
    truth = density_grid(crystal, DensityConfig(b_iso=summary["model"]["b_iso_A2"], grid=24))
    mean = np.load(tmp_path / "o" / "density.npy")
    flipped = np.load(tmp_path / "o" / "density_flipped.npy")
    # Flipping from noise-like phases may settle at another origin of the structure: scored over shifts.
    # (CaF2's light F atoms sit below the flipping threshold often enough to keep it short of 1.)
    cc = map_correlation_per_sample(np.stack([mean, flipped]), truth)[0]
    assert cc[0] < 0.5 and cc[1] > 0.7
    assert flipped.mean() == pytest.approx(mean.mean(), rel=1e-3)
    assert (tmp_path / "o" / "density_flipped.ccp4").exists()
