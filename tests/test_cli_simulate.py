"""`powdersolve simulate` and `powdersolve density`: outputs, and one-line failures that leave no files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from powdersolve.cli import main
from powdersolve.diffraction.encoding import QAxis, encode_q
from powdersolve.diffraction.sticks import WAVELENGTHS, q_from_two_theta, sticks, to_two_theta
from powdersolve.structures import load_crystal

EXE = Path(sys.executable).parent / "powdersolve"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _read_xy(path: Path) -> np.ndarray:
    return np.loadtxt(path, ndmin=2)


def test_simulate_subprocess_profile_and_model_input(tmp_path: Path, cubic_cif: Path) -> None:
    r = _run(["simulate", str(cubic_cif), "--wavelength", "CuKa1", "--two-theta", "10", "80", "--step", "0.05",
              "--noise", "--seed", "3", "--out", "p.xy", "--npy", "p.npy"], tmp_path)
    assert r.returncode == 0, r.stderr
    xy = _read_xy(tmp_path / "p.xy")
    np.testing.assert_allclose(xy[:, 0], 10 + 0.05 * np.arange(1401), atol=1e-6)
    assert np.all(xy[:, 1] == np.round(xy[:, 1]))  # Poisson counts
    header = [ln for ln in (tmp_path / "p.xy").read_text().splitlines() if ln.startswith("#")]
    assert any("wavelength = 1.540560 A" in ln for ln in header)
    x = np.load(tmp_path / "p.npy")
    lam = WAVELENGTHS["CuKa1"]
    q_limit = float(q_from_two_theta(80.0, lam))
    s = sticks(load_crystal(cubic_cif), q_max=q_limit)
    np.testing.assert_allclose(x, encode_q(s.q, s.intensity, QAxis(), q_limit), atol=1e-7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npy", "p.xy"]


def test_simulate_all_real_structures_as_sticks(tmp_path: Path, real_dir: Path, capsys) -> None:
    files = sorted(real_dir.rglob("*.cif"))
    assert len(files) > 50
    for i, cif in enumerate(files):
        out = tmp_path / f"{i}.xy"
        code = main(["simulate", str(cif), "--wavelength", "CuKa", "--sticks", "--two-theta", "5", "120",
                     "--out", str(out)])
        assert code == 0, (cif, capsys.readouterr().err)
        xy = _read_xy(out)
        assert len(xy) > 0 and np.all((xy[:, 0] >= 5) & (xy[:, 0] <= 120)), cif
        assert np.all(np.diff(xy[:, 0]) > 0) and xy[:, 1].max() == pytest.approx(10000.0), cif


def test_simulate_sticks_are_the_lp_sticks(tmp_path: Path, cubic_cif: Path) -> None:
    assert main(["simulate", str(cubic_cif), "--wavelength", "0.71073", "--sticks", "--out",
                 str(tmp_path / "s.xy"), "--npy", str(tmp_path / "s.npy"), "--encoding", "paper"]) == 0
    xy = _read_xy(tmp_path / "s.xy")
    s = sticks(load_crystal(cubic_cif), q_max=float(q_from_two_theta(90.0, 0.71073)))
    tt, inten = to_two_theta(s, 0.71073)
    ok = (tt >= 5) & (tt <= 90)
    np.testing.assert_allclose(xy[:, 0], tt[ok], atol=1e-5)
    np.testing.assert_allclose(xy[:, 1], inten[ok] / inten[ok].max() * 1e4, rtol=1e-5)
    assert np.load(tmp_path / "s.npy").shape == (1024,)


def test_density_writes_grid_and_sidecar(tmp_path: Path, cubic_cif: Path) -> None:
    r = _run(["density", str(cubic_cif), "--grid", "24", "--b", "6", "--out", "rho.npy"], tmp_path)
    assert r.returncode == 0, r.stderr
    rho = np.load(tmp_path / "rho.npy")
    meta = json.loads((tmp_path / "rho.json").read_text())
    assert rho.dtype == np.float32 and rho.shape == (24, 24, 24) and rho.flags.c_contiguous
    assert meta["units"] == "e/A^3" and meta["b_iso_A2"] == 6.0 and meta["grid"] == [24, 24, 24]
    assert meta["electrons_per_cell"] == pytest.approx(152.0)  # CaF2, Z = 4
    assert meta["integrated_electrons"] == pytest.approx(rho.mean() * meta["volume_A3"], rel=1e-5)
    assert meta["integrated_electrons"] == pytest.approx(152.0, rel=0.01)
    assert meta["spacegroup"] == 225 and meta["cell"]["a"] == pytest.approx(5.4631, abs=1e-3)
    # A second run refuses to overwrite; --overwrite replaces.
    assert main(["density", str(cubic_cif), "--grid", "8", "--out", str(tmp_path / "rho.npy")]) == 4
    assert np.load(tmp_path / "rho.npy").shape == (24, 24, 24)
    assert main(["density", str(cubic_cif), "--grid", "8", "--out", str(tmp_path / "rho.npy"), "--overwrite"]) == 0
    assert np.load(tmp_path / "rho.npy").shape == (8, 8, 8)


def _bad_inputs(tmp: Path, good: Path) -> dict[str, list[str]]:
    (tmp / "empty.cif").write_text("")
    (tmp / "garbage.cif").write_bytes(b"this is not a CIF\n\x01\x02 loop_ _x\n")
    (tmp / "binary.cif").write_bytes(b"\x00\x01\x02" * 100)
    (tmp / "unknown.cif").write_text(
        "data_x\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n"
        "_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
        "_atom_site_fract_z\nXx1 Xx 0 0 0\n")
    g = str(good)
    sim = ["simulate", "--wavelength", "CuKa"]
    return {
        "missing": [*sim, str(tmp / "nope.cif")],
        "empty": [*sim, str(tmp / "empty.cif")],
        "garbage": [*sim, str(tmp / "garbage.cif")],
        "binary": [*sim, str(tmp / "binary.cif")],
        "directory": [*sim, str(tmp)],
        "unknown-element": [*sim, str(tmp / "unknown.cif")],
        "step-zero": [*sim, g, "--step", "0"],
        "step-negative": [*sim, g, "--step", "-0.1"],
        "range-above-180": [*sim, g, "--two-theta", "10", "185"],
        "range-zero": [*sim, g, "--two-theta", "0", "90"],
        "range-reversed": [*sim, g, "--two-theta", "90", "10"],
        "bad-wavelength": ["simulate", g, "--wavelength", "XyKa"],
        "no-wavelength": ["simulate", g],
        "bad-size": [*sim, g, "--size", "0"],
        "bad-background": [*sim, g, "--background", "1,a"],
        "density-grid-small": ["density", g, "--grid", "2"],
        "density-grid-large": ["density", g, "--grid", "100000"],
        "density-b-negative": ["density", g, "--b", "-1"],
        "density-unknown": ["density", str(tmp / "unknown.cif")],
        "density-garbage": ["density", str(tmp / "garbage.cif")],
    }


CASE_IDS = ["missing", "empty", "garbage", "binary", "directory", "unknown-element", "step-zero", "step-negative",
            "range-above-180", "range-zero", "range-reversed", "bad-wavelength", "no-wavelength", "bad-size",
            "bad-background", "density-grid-small", "density-grid-large", "density-b-negative", "density-unknown",
            "density-garbage"]


@pytest.mark.parametrize("case", CASE_IDS)
def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path: Path, cubic_cif: Path, case: str, capsys) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    args = _bad_inputs(inputs, cubic_cif)[case]
    out = tmp_path / "out"
    ext = ".npy" if args[0] == "density" else ".xy"
    before = set(inputs.iterdir())
    code = main([*args, "--out", str(out / f"result{ext}")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("powdersolve: error:"), err
    assert not out.exists() or not any(out.iterdir())
    assert set(inputs.iterdir()) == before


@pytest.mark.parametrize("case", ["garbage", "step-zero"])
def test_bad_input_subprocess(tmp_path: Path, cubic_cif: Path, case: str) -> None:
    args = _bad_inputs(tmp_path, cubic_cif)[case]
    r = _run([*args, "--out", "x.xy"], tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "x.xy").exists()


def test_unwritable_output_is_an_output_error(tmp_path: Path, cubic_cif: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["simulate", str(cubic_cif), "--wavelength", "CuKa", "--sticks", "--out", str(blocker / "a.xy")])
    assert code == 4, capsys.readouterr().err
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))
