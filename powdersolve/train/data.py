"""Training data: records turned into model inputs and targets, batched and augmented per step."""

from __future__ import annotations

import numpy as np
import torch

from powdersolve.density import density_at, stratified_points
from powdersolve.diffraction.augment import Augment, augment_sticks, shift_and_noise
from powdersolve.errors import InputError
from powdersolve.inputs import (
    box_amplitudes,
    composition_amounts,
    composition_input,
    fourier_targets,
    pattern_input,
    reflection_table,
    xrd_input_from_sticks,
)
from powdersolve.model import ModelConfig
from powdersolve.structures import is_chiral
from powdersolve.train.config import TrainConfig


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
            c = composition_input(mcfg, self.amounts[i], rng=rng)
            q, inten, q_limit = r.q, r.intensity, mcfg.q_max
            if augment and mcfg.xrd_input == "q":
                q, inten, q_limit = augment_sticks(q, inten, self.aug, rng, mcfg.q_max)
            table = self.tables[i] if mcfg.amplitudes else None
            inputs = pattern_input(mcfg, q, inten, q_limit, c, r.crystal.lattice, table=table)
            x = inputs.xrd
            if mcfg.xrd_input == "paper" and getattr(r, "xrd_paper", None) is not None:
                x = xrd_input_from_sticks(mcfg, q, inten, xrd_paper=r.xrd_paper)
            xs.append(shift_and_noise(x, self.aug, rng) if augment else x)
            cs.append(c)
            if inputs.aux is not None:
                amps.append(inputs.aux["amp"])
                masks.append(inputs.aux["mask"])
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
