"""The training loss of a batch: reconstruction + KL, as a module so DDP all-reduces its gradients."""

from __future__ import annotations

import torch
from torch import nn

from powdersolve.model import CMEDNet, shift_invariant_l2
from powdersolve.train.config import TrainConfig
from powdersolve.train.data import aux_of


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
