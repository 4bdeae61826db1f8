"""Training checkpoints: weights, optimiser moments and run state, written atomically with checksums."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from powdersolve.errors import InputError
from powdersolve.fileio import atomic_path, atomic_write_text, sha256_file
from powdersolve.model import CMEDNet


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
