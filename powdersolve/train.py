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
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from powdersolve.density import DensityConfig, density_at, density_grid, stratified_points
from powdersolve.diffraction.augment import Augment, augment_sticks, shift_and_noise
from powdersolve.diffraction.encoding import QAxis, encode_q
from powdersolve.errors import InputError
from powdersolve.fileio import atomic_path, atomic_write_text, sha256_file
from powdersolve.inputs import (
    augmented_xrd,
    box_amplitudes,
    composition_amounts,
    composition_input,
    fourier_targets,
    reflection_table,
    xrd_input_from_sticks,
)
from powdersolve.model import CONFIGS, CMEDNet, ModelConfig, build_model, shift_invariant_l2
from powdersolve.structures import is_chiral
from powdersolve.weights import save_model


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training job (the paper's values unless noted).

    Attributes:
        epochs: passes over the training set.
        batch_size: crystals per step (global, over all processes).
        lr / eta_min: Adam learning rate and the cosine floor.
        t0_frac / t_mult: first cosine period as a fraction of the run (paper: 100 of 1500 epochs) and
            its growth factor.
        kl_weight: weight of the KL term (paper 0.05).
        loss: 'l1' (paper, query points), 'l2' (map mean-squared error; for the fourier decoder from the
            coefficients by Parseval) or 'rel_l2' (fourier: the l2 divided by each crystal's map variance).
        points_side: query points per crystal = points_side^3 (paper 10).
        shift_grid: origin-shift search grid of the coefficient loss (0 = none).
        hypotheses: latent draws per crystal (fourier decoder). With more than 1, the reconstruction term is
            the smallest over the draws, draw 0 being the posterior mean (a multiple-hypothesis loss): a
            crystal whose pattern leaves phases open is then not pulled to the shrunken average of its
            answers, and the latent samples learn distinct answers that best-of-N scoring and the solver
            can use. 1 = the paper's single draw.
        invert: probability that a chiral training crystal's (Sohncke group's) target is its inverse
            rho(-x), the enantiomorph. A powder pattern cannot tell a structure from its inverse (Friedel's
            law), so the stored hand of a chiral crystal is an arbitrary label; with ``hypotheses`` > 1 the
            draws can learn both hands instead of one. Achiral crystals are never inverted: their inverse
            is a rotated copy (which the scores allow for), and the stored orientation is a convention
            the network can learn (0 = targets as stored).
        val_every: epochs between validations; val_grid / val_max: grid and number of crystals.
        ckpt_every: steps between checkpoints (plus one at every epoch end).
        augment: stick-pattern augmentations; 'paper' for the paper's only.
        seed: seeds every random draw.
        threads: torch threads per process (0 = torch default).
    """

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    eta_min: float = 1e-6
    t0_frac: float = 100 / 1500
    t_mult: float = 2.0
    kl_weight: float = 0.05
    loss: str = "l2"
    points_side: int = 10
    shift_grid: int = 0
    hypotheses: int = 1
    invert: float = 0.0
    val_every: int = 5
    val_grid: int = 24
    val_max: int = 64
    ckpt_every: int = 200
    augment: str = "realistic"
    seed: int = 0
    threads: int = 0
    extra: dict = field(default_factory=dict)


def lr_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Cosine annealing with warm restarts, as a pure function of the step."""
    t = step / max(1, steps_per_epoch) / max(1, cfg.epochs)  # run fraction
    period = cfg.t0_frac
    while t >= period and period > 0:
        t -= period
        period *= cfg.t_mult
    if period <= 0:
        return cfg.lr
    return cfg.eta_min + (cfg.lr - cfg.eta_min) * 0.5 * (1 + math.cos(math.pi * min(1.0, t / period)))


class TrainingSet:
    """Records of a dataset turned into model inputs and targets (targets computed once)."""

    def __init__(self, records: list, model_cfg: ModelConfig, train_cfg: TrainConfig):
        if not records:
            raise InputError("the training set is empty; build data with `powdersolve data build`")
        self.records = records
        self.mcfg = model_cfg
        self.tcfg = train_cfg
        self.aug = Augment.paper() if train_cfg.augment == "paper" else Augment()
        self.amounts = [composition_amounts(r.crystal) for r in records]
        self.chiral = np.array([is_chiral(r.crystal.spacegroup) for r in records], dtype=bool)
        if model_cfg.arch == "fourier":
            tg = [fourier_targets(r.crystal, model_cfg) for r in records]
            self.dc = torch.tensor([t[0] for t in tg], dtype=torch.float32)
            self.coef = torch.from_numpy(np.stack([t[1] for t in tg]))
        if model_cfg.amplitudes:
            self.tables = [reflection_table(r.crystal.lattice, model_cfg.hkl_box, model_cfg.q_max) for r in records]
            self.logv = torch.tensor([np.log(r.crystal.volume) for r in records], dtype=torch.float32)
            self.full_amp = torch.from_numpy(np.stack([
                box_amplitudes(t, r.q, r.intensity, model_cfg.q_max, model_cfg.b_iso)[0]
                for t, r in zip(self.tables, records)]))

    def __len__(self) -> int:
        return len(self.records)

    def batch(self, idx: np.ndarray, rng: np.random.Generator, augment: bool = True) -> dict[str, torch.Tensor]:
        """Inputs and targets of the crystals ``idx``."""
        xs, cs, amps, masks = [], [], [], []
        mcfg = self.mcfg
        for i in idx:
            r = self.records[i]
            paper = getattr(r, "xrd_paper", None)
            q, inten, q_limit = r.q, r.intensity, mcfg.q_max
            if augment and mcfg.xrd_input == "q":
                q, inten, q_limit = augment_sticks(q, inten, self.aug, rng, mcfg.q_max)
                x = encode_q(q, inten, QAxis(mcfg.q_max, mcfg.xrd_bins), q_limit)
                xs.append(shift_and_noise(x, self.aug, rng))
            elif augment:
                xs.append(augmented_xrd(mcfg, q, inten, self.aug, rng, paper))
            else:
                xs.append(xrd_input_from_sticks(mcfg, q, inten, xrd_paper=paper))
            if mcfg.amplitudes:
                a, m = box_amplitudes(self.tables[i], q, inten, q_limit, mcfg.b_iso)
                amps.append(a)
                masks.append(m)
            cs.append(composition_input(mcfg, self.amounts[i], rng=rng))
        out = {"xrd": torch.from_numpy(np.stack(xs)), "comp": torch.from_numpy(np.stack(cs))}
        if mcfg.amplitudes:
            out["amp"], out["mask"] = torch.from_numpy(np.stack(amps)), torch.from_numpy(np.stack(masks))
            out["logv"] = self.logv[torch.as_tensor(idx, dtype=torch.long)]
        # Drawn only when used, so runs without inversion keep their random streams.
        flip = np.zeros(len(idx), bool)
        if augment and self.tcfg.invert > 0:
            flip = (rng.random(len(idx)) < self.tcfg.invert) & self.chiral[idx]
        if self.mcfg.arch == "fourier":
            t = torch.as_tensor(idx, dtype=torch.long)
            coef = self.coef[t]
            # rho(-x) has coefficients F(-h) = conj F(h) on the half space.
            out["dc"], out["coef"] = self.dc[t], torch.where(torch.from_numpy(flip)[:, None], coef.conj(), coef)
        else:
            side = self.tcfg.points_side
            pts = np.stack([stratified_points(side, rng) for _ in idx])
            rho = np.stack([density_at(self.records[i].crystal, np.where(f, -p % 1.0, p), self.mcfg.b_iso)
                            for i, p, f in zip(idx, pts, flip)])
            out["points"] = torch.from_numpy(pts.astype(np.float32))
            out["rho"] = torch.from_numpy(rho.astype(np.float32))
        return out


def aux_of(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """The decoder's extra inputs (indexed amplitudes) of a batch, if it has them."""
    return {k: batch[k] for k in ("amp", "mask", "logv")} if "amp" in batch else None


class LossModule(nn.Module):
    """Reconstruction + KL loss of a batch as a module, so DDP all-reduces every gradient it touches."""

    def __init__(self, net: CMEDNet, tcfg: TrainConfig):
        super().__init__()
        self.net = net
        self.tcfg = tcfg

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (loss, reconstruction term, KL term)."""
        net, tcfg = self.net, self.tcfg
        if net.cfg.arch == "fourier":
            k = tcfg.hypotheses
            if k > 1:
                draws, kl = net.encode_draws(batch["xrd"], batch["comp"], k, generator)
                cond = draws.reshape(-1, draws.shape[-1])
            else:
                cond, kl = net.encode(batch["xrd"], batch["comp"], True, generator)

            def rep(t: torch.Tensor) -> torch.Tensor:
                """``t`` stacked once per draw along the batch axis, matching ``cond``."""
                return t.repeat(k, *([1] * (t.dim() - 1))) if k > 1 else t

            aux = aux_of(batch)
            dc, coef = net.decoder(cond, None if aux is None else {name: rep(v) for name, v in aux.items()})
            coef_t = rep(batch["coef"])
            per = shift_invariant_l2(dc, coef, rep(batch["dc"]), coef_t, net.decoder.hkl.long(), tcfg.shift_grid)
            if tcfg.loss == "rel_l2":
                # Each crystal's error relative to its own map variance: every crystal counts alike, as in
                # the per-crystal map correlation, instead of heavy-atom cells dominating.
                per = per / (2 * (coef_t.abs() ** 2).sum(-1) + 1e-6)
            rec = per.reshape(k, -1).min(0).values.mean() if k > 1 else per.mean()
        else:
            cond, kl = net.encode(batch["xrd"], batch["comp"], True, generator)
            diff = net.density_at(cond, batch["points"]) - batch["rho"]
            rec = diff.abs().mean() if tcfg.loss == "l1" else (diff**2).mean()
        return rec + tcfg.kl_weight * kl, rec, kl


def _rank_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(run_dir: Path, model: CMEDNet, opt: torch.optim.Optimizer, state: dict) -> None:
    """Write weights, optimiser moments and the JSON state atomically; state.json last, with checksums."""
    ckpt = run_dir / "checkpoint"
    ckpt.mkdir(parents=True, exist_ok=True)
    with atomic_path(ckpt / "model.safetensors") as tmp:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    opt_tensors, opt_meta = {}, {"param_groups": opt.state_dict()["param_groups"], "state": {}}
    for pid, st in opt.state_dict()["state"].items():
        opt_meta["state"][str(pid)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                opt_tensors[f"{pid}.{k}"] = v.detach().contiguous()
            else:
                opt_meta["state"][str(pid)][k] = v
    with atomic_path(ckpt / "optim.safetensors") as tmp:
        save_file(opt_tensors, str(tmp))
    full = dict(state, optimizer=opt_meta,
                sha256={"model": sha256_file(ckpt / "model.safetensors"),
                        "optim": sha256_file(ckpt / "optim.safetensors")})
    atomic_write_text(ckpt / "state.json", json.dumps(full, indent=1, sort_keys=True))


def load_checkpoint(run_dir: Path, model: CMEDNet, opt: torch.optim.Optimizer) -> dict:
    """Restore model and optimiser from ``run_dir/checkpoint``, verifying checksums; returns the state."""
    ckpt = run_dir / "checkpoint"
    if not (ckpt / "state.json").exists():
        raise InputError(f"{run_dir}: no checkpoint to resume from; run without --resume")
    state = json.loads((ckpt / "state.json").read_text())
    for name in ("model", "optim"):
        if sha256_file(ckpt / f"{name}.safetensors") != state["sha256"][name]:
            raise InputError(f"{ckpt}/{name}.safetensors: checksum mismatch; the checkpoint is corrupt")
    model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    tensors = load_file(str(ckpt / "optim.safetensors"))
    meta = state["optimizer"]
    opt_state = {"param_groups": meta["param_groups"], "state": {}}
    for pid, st in meta["state"].items():
        entry = dict(st)
        for k in list(tensors):
            p, _, name = k.partition(".")
            if p == pid:
                entry[name] = tensors[k]
        opt_state["state"][int(pid)] = entry
    opt.load_state_dict(opt_state)
    return state


# ----------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(model: CMEDNet, val: TrainingSet, tcfg: TrainConfig) -> float:
    """Mean map correlation (best over origin shifts, posterior mean) on up to ``val_max`` crystals."""
    from powdersolve.metrics import map_correlation

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


# ----------------------------------------------------------------------------- the loop


def train(records_train: list, records_val: list, model_cfg: ModelConfig, tcfg: TrainConfig, run_dir: str | Path,
          resume: bool = False, device: str = "cpu", data_hash: str = "", progress: bool = True,
          stop_at: int | None = None, init: str | Path | None = None) -> dict:
    """Train a model; writes ``run_dir/{checkpoint/, best.safetensors, last.safetensors, log.csv}``.

    ``init`` warm-starts from a weights file of the same architecture (ignored on resume).
    ``stop_at`` ends the run early after that global step (a checkpoint is written there), e.g. to
    time-box a session; ``resume`` continues it with the same schedule.

    Returns a summary dict (steps, wall time, best validation map correlation).
    """
    run_dir = Path(run_dir)
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

    steps_per_epoch = max(1, len(train_set) // tcfg.batch_size)
    total = steps_per_epoch * tcfg.epochs
    state = {"step": 0, "best_val": -1.0, "wall": 0.0, "history": []}
    if model_cfg.arch == "fourier" and init is None and not resume:
        model.decoder.set_output_scale(train_set.dc, train_set.coef,
                                       train_set.full_amp if model_cfg.amplitudes else None)
    if init is not None and not resume:
        from powdersolve.weights import load_model

        model.load_state_dict(load_model(init)[0].state_dict())
    if resume and (run_dir / "checkpoint" / "state.json").exists():
        state = load_checkpoint(run_dir, model, opt)
        state.pop("optimizer", None)
        state.pop("sha256", None)
    meta = {"model_config": model_cfg.to_dict(), "train_config": asdict(tcfg), "data_hash": data_hash,
            "n_train": len(train_set), "n_val": len(val_set) if val_set else 0, "world_size": world}
    if rank == 0:
        atomic_write_text(run_dir / "run.json", json.dumps(meta, indent=1, sort_keys=True))
    log_path = run_dir / "log.csv"
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=state["step"], desc="train", unit="step", dynamic_ncols=True)
    t_start = time.time() - state["wall"]
    model.train()
    end = total if stop_at is None else min(total, stop_at)
    while state["step"] < end:
        step = state["step"]
        epoch, k = divmod(step, steps_per_epoch)
        order = np.random.default_rng([tcfg.seed, epoch]).permutation(len(train_set))
        idx = order[k * tcfg.batch_size:(k + 1) * tcfg.batch_size][rank::world]
        rng = np.random.default_rng([tcfg.seed, epoch, k, rank])
        batch = {n: v.to(device) for n, v in train_set.batch(idx, rng).items()}
        gen = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps_per_epoch, tcfg)
        loss, rec, kl = loss_fn(batch, gen)
        scalars = {"loss": loss.item(), "rec": rec.item(), "kl": kl.item()}
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] = step + 1
        state["wall"] = time.time() - t_start
        end_of_epoch = state["step"] % steps_per_epoch == 0
        row = {"step": state["step"], "epoch": epoch, "lr": opt.param_groups[0]["lr"], **scalars,
               "val_cc": "", "wall_s": round(state["wall"], 2)}
        if end_of_epoch and val_set is not None and ((epoch + 1) % tcfg.val_every == 0 or state["step"] == total):
            if rank == 0:
                cc = validate(model, val_set, tcfg)
                row["val_cc"] = round(cc, 4)
                state["history"].append([state["step"], cc])
                if cc > state["best_val"]:
                    state["best_val"] = cc
                    save_model(model, run_dir / "best.safetensors", {**_card(meta, state), "val_cc": cc})
        if rank == 0:
            new = not log_path.exists()
            with open(log_path, "a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(row))
                if new:
                    w.writeheader()
                w.writerow(row)
            if state["step"] % tcfg.ckpt_every == 0 or end_of_epoch or state["step"] in (total, end):
                save_checkpoint(run_dir, model, opt, dict(state, meta=meta))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{scalars['loss']:.4g}", val=row["val_cc"] or "-")
    if bar is not None:
        bar.close()
    if rank == 0:
        save_model(model, run_dir / "last.safetensors", _card(meta, state))
        if val_set is None or state["best_val"] < 0:
            save_model(model, run_dir / "best.safetensors", _card(meta, state))
    if world > 1:
        torch.distributed.barrier()
    return {"steps": state["step"], "wall_s": state["wall"], "best_val_cc": state["best_val"]}


def _card(meta: dict, state: dict) -> dict:
    return {"data_hash": meta["data_hash"], "steps": state["step"], "wall_s": round(state["wall"], 1),
            "n_train": meta["n_train"], "train_config": meta["train_config"]}


def model_config_by_name(name: str, system: str) -> ModelConfig:
    """A named model config ('paper', 'cpu', 'tiny') for a crystal system."""
    if name not in CONFIGS:
        raise InputError(f"unknown config '{name}'; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name](system)
