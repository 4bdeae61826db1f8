"""Training: the paper's recipe (L1/L2 + KL, Adam, cosine warm restarts), checkpoints, exact resume, DDP.

One loop serves both decoders:

- ``arch='query'``: ``points_side**3`` stratified jittered query points per crystal with their exact
  density (the paper: 1000 points, L1 loss);
- ``arch='fourier'``: the coefficient loss, the map's mean-squared error by Parseval, minimised over
  origin shifts on a ``shift_grid**3`` grid (a crystal's origin is a convention the pattern cannot
  see), so no query points are needed at all.

Every random draw of a step comes from a generator seeded by (seed, epoch, step), so a run killed
and resumed from a checkpoint takes exactly the steps an uninterrupted run takes.
Data-parallel: launched under ``torchrun`` (WORLD_SIZE > 1) each process takes a strided share of
every batch and gradients are all-reduced (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from powdersolve.density import DensityConfig, density_grid
from powdersolve.errors import InputError
from powdersolve.fileio import atomic_write_text
from powdersolve.metrics import map_correlation
from powdersolve.model import CMEDNet, ModelConfig, build_model
from powdersolve.train.checkpoint import load_checkpoint, save_checkpoint
from powdersolve.train.config import TrainConfig, lr_at
from powdersolve.train.data import TrainingSet, aux_of
from powdersolve.train.loss import LossModule
from powdersolve.weights import load_model, save_model


def _rank_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@torch.no_grad()
def validate(model: CMEDNet, val: TrainingSet, tcfg: TrainConfig) -> float:
    """Mean map correlation (best over origin shifts, posterior mean) on up to ``val_max`` crystals."""
    model.eval()
    n = min(len(val), tcfg.val_max)
    idx = np.arange(n)
    rng = np.random.default_rng(0)
    b = val.batch(idx, rng, augment=False)
    cond, _ = model.encode(b["xrd"], b["comp"], sample=False)
    grids = model.grid(cond, tcfg.val_grid, aux=aux_of(b)).numpy()
    ccs = []
    for i in idx:
        truth = density_grid(val.records[i].crystal, DensityConfig(model.cfg.b_iso, tcfg.val_grid))
        ccs.append(map_correlation(grids[i], truth))
    model.train()
    return float(np.mean(ccs))


@dataclass
class _Run:
    """One training run: what it trains, on what, where it writes, and its state (step, best, wall, history)."""

    model: CMEDNet
    opt: torch.optim.Optimizer
    loss_fn: nn.Module
    train_set: TrainingSet
    val_set: TrainingSet | None
    tcfg: TrainConfig
    run_dir: Path
    meta: dict
    state: dict
    device: str
    rank: int
    world: int

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.train_set) // self.tcfg.batch_size)

    @property
    def total(self) -> int:
        return self.steps_per_epoch * self.tcfg.epochs


def train(records_train: list, records_val: list, model_cfg: ModelConfig, tcfg: TrainConfig, run_dir: str | Path,
          resume: bool = False, device: str = "cpu", data_hash: str = "", progress: bool = True,
          stop_at: int | None = None, init: str | Path | None = None) -> dict:
    """Train a model; writes ``run_dir/{checkpoint/, best.safetensors, last.safetensors, log.csv}``.

    ``init`` warm-starts from a weights file of the same architecture (ignored on resume).
    ``stop_at`` ends the run early after that global step (a checkpoint is written there), e.g. to
    time-box a session; ``resume`` continues it with the same schedule.

    Returns a summary dict (steps, wall time, best validation map correlation).
    """
    run = _start(records_train, records_val, model_cfg, tcfg, Path(run_dir), resume, device, data_hash, init)
    state = run.state
    bar = None
    if progress and run.rank == 0:
        bar = tqdm(total=run.total, initial=state["step"], desc="train", unit="step", dynamic_ncols=True)
    t_start = time.time() - state["wall"]
    run.model.train()
    end = run.total if stop_at is None else min(run.total, stop_at)
    while state["step"] < end:
        scalars, row = _step(run, t_start)
        if run.rank == 0:
            _log_row(run.run_dir / "log.csv", row)
            end_of_epoch = state["step"] % run.steps_per_epoch == 0
            if state["step"] % tcfg.ckpt_every == 0 or end_of_epoch or state["step"] in (run.total, end):
                save_checkpoint(run.run_dir, run.model, run.opt, dict(state, meta=run.meta))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{scalars['loss']:.4g}", val=row["val_cc"] or "-")
    if bar is not None:
        bar.close()
    if run.rank == 0:
        save_model(run.model, run.run_dir / "last.safetensors", _card(run.meta, state))
        if run.val_set is None or state["best_val"] < 0:
            save_model(run.model, run.run_dir / "best.safetensors", _card(run.meta, state))
    if run.world > 1:
        torch.distributed.barrier()
    return {"steps": state["step"], "wall_s": state["wall"], "best_val_cc": state["best_val"]}


def _start(records_train: list, records_val: list, model_cfg: ModelConfig, tcfg: TrainConfig, run_dir: Path,
           resume: bool, device: str, data_hash: str, init: str | Path | None) -> _Run:
    """Check the settings, set up torch (threads, seed, process group), build or restore the model and optimiser."""
    if tcfg.hypotheses > 1 and model_cfg.arch != "fourier":
        raise InputError("--hypotheses needs the fourier decoder (the query decoder trains on one draw)")
    rank, world = _rank_world()
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        torch.distributed.init_process_group(backend)
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    torch.manual_seed(tcfg.seed)
    if run_dir.exists() and (run_dir / "checkpoint" / "state.json").exists() and not resume:
        raise InputError(f"{run_dir}: already holds a run; pass --resume to continue it or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)

    train_set = TrainingSet(records_train, model_cfg, tcfg)
    val_set = TrainingSet(records_val, model_cfg, tcfg) if records_val else None
    model = build_model(model_cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr)
    loss_fn: nn.Module = LossModule(model, tcfg)
    if world > 1:
        loss_fn = nn.parallel.DistributedDataParallel(loss_fn)
    state = {"step": 0, "best_val": -1.0, "wall": 0.0, "history": []}
    if model_cfg.arch == "fourier" and init is None and not resume:
        model.decoder.set_output_scale(train_set.dc, train_set.coef,
                                       train_set.full_amp if model_cfg.amplitudes else None)
    if init is not None and not resume:
        model.load_state_dict(load_model(init)[0].state_dict())
    if resume and (run_dir / "checkpoint" / "state.json").exists():
        state = load_checkpoint(run_dir, model, opt)
        state.pop("optimizer", None)
        state.pop("sha256", None)
    meta = {"model_config": model_cfg.to_dict(), "train_config": asdict(tcfg), "data_hash": data_hash,
            "n_train": len(train_set), "n_val": len(val_set) if val_set else 0, "world_size": world}
    if rank == 0:
        atomic_write_text(run_dir / "run.json", json.dumps(meta, indent=1, sort_keys=True))
    return _Run(model, opt, loss_fn, train_set, val_set, tcfg, run_dir, meta, state, device, rank, world)


def _step(run: _Run, t_start: float) -> tuple[dict[str, float], dict]:
    """One optimiser step (and, at the end of a validation epoch, validation); the losses and the log row."""
    tcfg, state = run.tcfg, run.state
    step = state["step"]
    epoch, k = divmod(step, run.steps_per_epoch)
    order = np.random.default_rng([tcfg.seed, epoch]).permutation(len(run.train_set))
    idx = order[k * tcfg.batch_size:(k + 1) * tcfg.batch_size][run.rank::run.world]
    rng = np.random.default_rng([tcfg.seed, epoch, k, run.rank])
    batch = {n: v.to(run.device) for n, v in run.train_set.batch(idx, rng).items()}
    gen = torch.Generator(device=run.device).manual_seed(int(rng.integers(2**62)))
    for g in run.opt.param_groups:
        g["lr"] = lr_at(step, run.steps_per_epoch, tcfg)
    loss, rec, kl = run.loss_fn(batch, gen)
    scalars = {"loss": loss.item(), "rec": rec.item(), "kl": kl.item()}
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    state["step"] = step + 1
    state["wall"] = time.time() - t_start
    end_of_epoch = state["step"] % run.steps_per_epoch == 0
    row = {"step": state["step"], "epoch": epoch, "lr": run.opt.param_groups[0]["lr"], **scalars,
           "val_cc": "", "wall_s": round(state["wall"], 2)}
    validating = (end_of_epoch and run.val_set is not None
                  and ((epoch + 1) % tcfg.val_every == 0 or state["step"] == run.total))
    if validating and run.rank == 0:
        cc = validate(run.model, run.val_set, tcfg)
        row["val_cc"] = round(cc, 4)
        state["history"].append([state["step"], cc])
        if cc > state["best_val"]:
            state["best_val"] = cc
            save_model(run.model, run.run_dir / "best.safetensors", {**_card(run.meta, state), "val_cc": cc})
    return scalars, row


def _log_row(log_path: Path, row: dict) -> None:
    """Append ``row`` to the CSV log (header first)."""
    new = not log_path.exists()
    with open(log_path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def _card(meta: dict, state: dict) -> dict:
    return {"data_hash": meta["data_hash"], "steps": state["step"], "wall_s": round(state["wall"], 1),
            "n_train": meta["n_train"], "train_config": meta["train_config"]}
