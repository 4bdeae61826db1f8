"""The whole network, :class:`CMEDNet`: encoders, a sampled latent condition, a decoder."""

from __future__ import annotations

import torch
from torch import nn

from powdersolve.model.config import ModelConfig
from powdersolve.model.decoders import FourierDecoder, QueryDecoder, coefficients_to_grid
from powdersolve.model.encoders import DenseXRDEncoder, FormulaEncoder, StridedXRDEncoder, VariationalBranch


class CMEDNet(nn.Module):
    """Pattern + composition -> electron density of the cell in fractional coordinates (e/A^3)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        w = cfg.latent
        separate = bool(cfg.extra.get("separate_std", False))
        if cfg.xrd_encoder == "dense":
            def make_xrd() -> nn.Module:
                return DenseXRDEncoder(cfg.xrd_channels, cfg.xrd_bins, cfg.xrd_growth, w)
        else:
            def make_xrd() -> nn.Module:
                return StridedXRDEncoder(cfg.xrd_channels, cfg.xrd_bins, w)
        self.xrd = VariationalBranch(make_xrd, w, separate) if cfg.use_xrd else None
        self.formula = VariationalBranch(lambda: FormulaEncoder(w), w, separate) if cfg.use_formula else None
        cond = 2 * w
        self.decoder = QueryDecoder(cfg, cond) if cfg.arch == "query" else FourierDecoder(cfg, cond)

    def posterior(self, xrd: torch.Tensor, comp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean and std of the latent condition, each (B, 2*latent), and the KL term (scalar, summed over
        branches). A switched-off branch contributes zeros with zero std."""
        mus, sigmas, kl = [], [], xrd.new_zeros(())
        for branch, inp in ((self.xrd, xrd), (self.formula, comp)):
            if branch is None:
                mus.append(xrd.new_zeros(xrd.shape[0], self.cfg.latent))
                sigmas.append(xrd.new_zeros(xrd.shape[0], self.cfg.latent))
                continue
            mu, sigma = branch(inp)
            mus.append(mu)
            sigmas.append(sigma)
            kl = kl - torch.mean(1 + torch.log(sigma**2 + 1e-4) - mu**2 - sigma**2)
        return torch.cat(mus, -1), torch.cat(sigmas, -1), kl

    def encode(self, xrd: torch.Tensor, comp: torch.Tensor, sample: bool = True,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent condition (B, 2*latent) and the KL term (scalar, summed over branches)."""
        mu, sigma, kl = self.posterior(xrd, comp)
        if not sample:
            return mu, kl
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + eps * sigma, kl

    def encode_draws(self, xrd: torch.Tensor, comp: torch.Tensor, draws: int,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``draws`` latent conditions per crystal, (draws, B, 2*latent), draw 0 the posterior mean, and the
        KL term. The encoders run once; only the latent draws repeat."""
        mu, sigma, kl = self.posterior(xrd, comp)
        eps = torch.randn((draws - 1, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
        return torch.cat([mu[None], mu[None] + eps * sigma[None]]), kl

    def density_at(self, cond: torch.Tensor, x: torch.Tensor, chunk: int = 32768,
                   aux: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Density (e/A^3) at fractional points x (B, P, 3), evaluated in chunks of points."""
        if self.cfg.arch == "query":
            film = self.decoder.film(cond)
            return torch.cat([self.decoder(film, x[:, i : i + chunk]) for i in range(0, x.shape[1], chunk)], 1)
        dc, coef = self.decoder(cond, aux)
        return torch.cat([self.decoder.evaluate(dc, coef, x[:, i : i + chunk])
                          for i in range(0, x.shape[1], chunk)], 1)

    def grid(self, cond: torch.Tensor, n: int, chunk: int = 32768,
             aux: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Density on the n^3 fractional grid (voxel i at i/n), (B, n, n, n).

        ``aux`` carries the indexed amplitudes for models with ``cfg.amplitudes``.
        """
        if self.cfg.arch == "fourier":
            dc, coef = self.decoder(cond, aux)
            return coefficients_to_grid(dc, coef, self.decoder.hkl.long(), n)
        ax = torch.arange(n, dtype=cond.dtype, device=cond.device) / n
        pts = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(1, -1, 3)
        pts = pts.expand(cond.shape[0], -1, -1)
        return self.density_at(cond, pts, chunk).reshape(-1, n, n, n)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def build_model(cfg: ModelConfig) -> CMEDNet:
    """Construct a network from its config."""
    return CMEDNet(cfg)
