"""Training: a step lowers the loss, checkpoints resume exactly (also after SIGKILL), DDP on 2 CPU processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from safetensors.torch import load_file

from powdersolve.dataset import SHARD_PATTERN, load_dataset, shard_arrays
from powdersolve.model import build_model, tiny_config
from powdersolve.structures import Crystal
from powdersolve.train import LossModule, TrainConfig, TrainingSet, lr_at, train


def _crystals() -> list[Crystal]:
    out = []
    for a in np.linspace(4.0, 6.5, 8):
        for pair, sg, pos in (
            (("Na", "Cl"), "Fm-3m", [[0, 0, 0], [0.5, 0.5, 0.5]]),
            (("Cs", "Br"), "Pm-3m", [[0, 0, 0], [0.5, 0.5, 0.5]]),
            (("Ca", "F"), "Fm-3m", [[0, 0, 0], [0.25, 0.25, 0.25]]),
        ):
            s = Structure.from_spacegroup(sg, Lattice.cubic(a), list(pair), pos)
            c = Crystal.from_structure(s, 225 if sg == "Fm-3m" else 221)
            out.append(Crystal(c.lattice, c.frac, c.numbers, c.occupancy, f"{c.formula}{a:.2f}", c.spacegroup))
    return out


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    arrays = shard_arrays(_crystals(), "test")
    arrays["split"] = np.array(["train"] * 18 + ["val"] * 6, dtype=np.str_)
    with open(d / SHARD_PATTERN.format(0), "wb") as fh:
        np.savez(fh, **arrays)
    return d


def _tcfg(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=6, val_every=1, val_grid=8, val_max=4, shift_grid=6, ckpt_every=2,
                points_side=3, threads=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("arch", ["fourier", "fourier-amp", "query"])
def test_a_step_lowers_the_loss(tiny_data: Path, arch: str) -> None:
    torch.manual_seed(0)
    mcfg = tiny_config("fourier", amplitudes=True) if arch == "fourier-amp" else tiny_config(arch)
    tcfg = _tcfg(loss="l1" if arch == "query" else "l2", kl_weight=0.0)
    ts = TrainingSet(load_dataset(tiny_data, "train"), mcfg, tcfg)
    model = build_model(mcfg)
    if mcfg.amplitudes:
        model.decoder.set_output_scale(ts.dc, ts.coef, ts.full_amp)
    loss_fn = LossModule(model, tcfg)
    batch = ts.batch(np.arange(6), np.random.default_rng(0), augment=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    # Train mode throughout: BatchNorm uses batch statistics, so before and after are one function.
    first = float(loss_fn(batch, torch.Generator().manual_seed(0))[0])
    for _ in range(3):
        loss = loss_fn(batch, gen)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = float(loss_fn(batch, torch.Generator().manual_seed(0))[0])
    assert after < first


def test_multiple_hypotheses_take_the_best_draw(tiny_data: Path) -> None:
    """The best-of-K term is at most the posterior mean's own error and at most every single draw's."""
    torch.manual_seed(0)
    mcfg = tiny_config("fourier", amplitudes=True)
    tcfg = _tcfg(kl_weight=0.0, shift_grid=0, hypotheses=4)
    ts = TrainingSet(load_dataset(tiny_data, "train"), mcfg, tcfg)
    model = build_model(mcfg)
    model.decoder.set_output_scale(ts.dc, ts.coef, ts.full_amp)
    model.eval()
    batch = ts.batch(np.arange(6), np.random.default_rng(0), augment=False)
    with torch.no_grad():
        _, best, _ = LossModule(model, tcfg)(batch, torch.Generator().manual_seed(1))
        draws, _ = model.encode_draws(batch["xrd"], batch["comp"], 4, torch.Generator().manual_seed(1))
        assert torch.equal(draws[0], model.encode(batch["xrd"], batch["comp"], sample=False)[0])
        singles = []
        for cond in draws:
            dc, coef = model.decoder(cond, {k: batch[k] for k in ("amp", "mask", "logv")})
            per = ((dc - batch["dc"]) ** 2 + 2 * ((coef - batch["coef"]).abs() ** 2).sum(-1))
            singles.append(per)
    per_crystal_best = torch.stack(singles).min(0).values.mean()
    assert float(best) == pytest.approx(float(per_crystal_best), rel=1e-4)
    assert float(best) <= float(singles[0].mean()) + 1e-6
    assert len({round(float(s.mean()), 6) for s in singles}) > 1  # the draws differ


@pytest.mark.parametrize("arch", ["fourier", "query"])
def test_inversion_augmentation_trains_chiral_crystals_on_their_enantiomorph(tmp_path: Path, arch: str) -> None:
    """invert=1: a chiral crystal's target is its inverse; an achiral one's stays as stored."""
    from powdersolve.density import density_at
    from powdersolve.inputs import fourier_targets

    crystals = []
    # FeSi type, P2_13 (chiral), and zinc blende, F-43m (acentric, achiral); one record per formula + group.
    for a, metal, anion in ((4.4, "Fe", "S"), (4.6, "Co", "Se")):
        s = Structure.from_spacegroup("P2_13", Lattice.cubic(a), [metal, "Si"], [[0.137] * 3, [0.842] * 3])
        crystals.append(Crystal.from_structure(s, 198))
        s = Structure.from_spacegroup("F-43m", Lattice.cubic(a + 1), ["Zn", anion], [[0, 0, 0], [0.25, 0.25, 0.25]])
        crystals.append(Crystal.from_structure(s, 216))
    arrays = shard_arrays(crystals, "test")
    arrays["split"] = np.array(["train"] * 4, dtype=np.str_)
    with open(tmp_path / SHARD_PATTERN.format(0), "wb") as fh:
        np.savez(fh, **arrays)
    records = load_dataset(tmp_path, "train")
    mcfg = tiny_config(arch)
    idx = np.arange(len(records))
    chiral = [r.crystal.spacegroup == 198 for r in records]
    assert sum(chiral) == 2
    want_crystals = [Crystal(r.crystal.lattice, -r.crystal.frac % 1.0, r.crystal.numbers, r.crystal.occupancy,
                             r.crystal.formula, r.crystal.spacegroup) if c else r.crystal
                     for r, c in zip(records, chiral)]
    inv = TrainingSet(records, mcfg, _tcfg(invert=1.0)).batch(idx, np.random.default_rng(0))
    plain = TrainingSet(records, mcfg, _tcfg(invert=1.0)).batch(idx, np.random.default_rng(0), augment=False)
    if arch == "fourier":
        want = np.stack([fourier_targets(c, mcfg)[1] for c in want_crystals])
        np.testing.assert_allclose(inv["coef"].numpy(), want, atol=1e-5)
        stored = np.stack([fourier_targets(r.crystal, mcfg)[1] for r in records])
        np.testing.assert_allclose(plain["coef"].numpy(), stored, atol=1e-5)  # no augmentation, no inversion
        assert np.abs(want - stored).max() > 1e-3  # the two hands differ
    else:
        want = np.stack([density_at(c, p.numpy().astype(np.float64), mcfg.b_iso)
                         for c, p in zip(want_crystals, inv["points"])])
        np.testing.assert_allclose(inv["rho"].numpy(), want, rtol=1e-4, atol=1e-4)


def test_chiral_groups_are_the_groups_of_proper_operations() -> None:
    from pymatgen.symmetry.groups import SpaceGroup

    from powdersolve.structures import is_chiral

    for n in range(1, 231):
        proper = all(np.linalg.det(op.rotation_matrix) > 0 for op in SpaceGroup.from_int_number(n).symmetry_ops)
        assert is_chiral(n) == proper, n


def test_hypotheses_need_the_fourier_decoder(tiny_data: Path, tmp_path: Path) -> None:
    from powdersolve.errors import InputError

    with pytest.raises(InputError, match="fourier"):
        train(load_dataset(tiny_data, "train"), load_dataset(tiny_data, "val"), tiny_config("query"),
              _tcfg(hypotheses=2), tmp_path / "run", progress=False)


def test_lr_schedule_restarts() -> None:
    cfg = TrainConfig(epochs=15, lr=1e-3, eta_min=1e-6, t0_frac=1 / 15, t_mult=2)
    assert lr_at(0, 10, cfg) == pytest.approx(1e-3)
    assert lr_at(9, 10, cfg) < 1e-4
    assert lr_at(10, 10, cfg) == pytest.approx(1e-3)  # restart after the first period


def test_resume_gives_the_same_weights(tiny_data: Path, tmp_path: Path) -> None:
    tr, va = load_dataset(tiny_data, "train"), load_dataset(tiny_data, "val")
    mcfg = tiny_config()
    train(tr, va, mcfg, _tcfg(epochs=4), tmp_path / "full", progress=False)
    train(tr, va, mcfg, _tcfg(epochs=4), tmp_path / "part", progress=False, stop_at=5)
    train(tr, va, mcfg, _tcfg(epochs=4), tmp_path / "part", resume=True, progress=False)
    a = load_file(str(tmp_path / "full" / "last.safetensors"))
    b = load_file(str(tmp_path / "part" / "last.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def _cli(*args: str, cwd: Path) -> list[str]:
    return [sys.executable, "-m", "powdersolve", *args]


def test_sigkill_then_resume(tiny_data: Path, tmp_path: Path) -> None:
    common = ["train", "--data", str(tiny_data), "--config", "tiny", "--epochs", "6", "--batch-size", "6",
              "--threads", "1", "--val-every", "1", "--shift-grid", "6"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    ref = subprocess.run(_cli(*common, "--out", str(tmp_path / "ref"), cwd=tmp_path), env=env,
                         capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-500:]
    run = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*common, "--out", str(run), cwd=tmp_path), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "checkpoint" / "state.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = subprocess.run(_cli(*common, "--out", str(run), "--resume", cwd=tmp_path), env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-500:]
    a = load_file(str(tmp_path / "ref" / "last.safetensors"))
    b = load_file(str(run / "last.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_existing_run_needs_resume(tiny_data: Path, tmp_path: Path) -> None:
    args = ["train", "--data", str(tiny_data), "--config", "tiny", "--epochs", "1", "--batch-size", "6",
            "--out", str(tmp_path / "r"), "--threads", "1"]
    assert subprocess.run(_cli(*args, cwd=tmp_path), capture_output=True).returncode == 0
    second = subprocess.run(_cli(*args, cwd=tmp_path), capture_output=True, text=True)
    assert second.returncode == 2
    assert "--resume" in second.stderr and "Traceback" not in second.stderr


def test_model_is_selected_on_the_val_split_of_val_data(tiny_data: Path, tmp_path: Path) -> None:
    other = tmp_path / "selection"
    other.mkdir()
    arrays = shard_arrays(_crystals()[:10], "test")
    arrays["split"] = np.array(["val"] * 10, dtype=np.str_)
    with open(other / SHARD_PATTERN.format(0), "wb") as fh:
        np.savez(fh, **arrays)
    args = ["train", "--data", str(tiny_data), "--val-data", str(other), "--val-max", "3", "--config", "tiny",
            "--epochs", "1", "--batch-size", "6", "--out", str(tmp_path / "r"), "--threads", "1"]
    res = subprocess.run(_cli(*args, cwd=tmp_path), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-500:]
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["n_val"] == 10 and run["n_train"] == 18
    assert run["train_config"]["val_max"] == 3 and ";val:" in run["data_hash"]


def test_ddp_two_cpu_processes(tiny_data: Path, tmp_path: Path) -> None:
    """torchrun with 2 gloo processes trains and gives the same result as 1 process on the same global batch."""
    args = ["train", "--data", str(tiny_data), "--config", "tiny", "--epochs", "2", "--batch-size", "6",
            "--threads", "1", "--augment", "paper"]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    # --standalone: a free local port, so no other job on the machine can hold the rendezvous port.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "powdersolve", *args, "--out", str(tmp_path / "ddp")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-800:]
    assert (tmp_path / "ddp" / "last.safetensors").exists()
    log = (tmp_path / "ddp" / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 2 * 3  # header + 2 epochs x (18 // 6) steps
