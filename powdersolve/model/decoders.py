"""The decoders: the paper's query decoder and the Fourier-coefficient decoder, and the coefficient maths."""

from __future__ import annotations

import math

import torch
from torch import nn

from powdersolve.errors import InputError
from powdersolve.model.config import ModelConfig, half_space_hkl


def _mlp_bn(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    return nn.Sequential(*layers)


class QueryDecoder(nn.Module):
    """The paper's decoder: Fourier position features, FiLM, skip-connected regressor."""

    def __init__(self, cfg: ModelConfig, cond: int):
        super().__init__()
        h = cfg.hidden
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("freqs", torch.randn(cfg.n_fourier, 3, generator=gen) * cfg.fourier_sigma)
        self.pos = nn.Sequential(nn.Linear(2 * cfg.n_fourier, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Linear(h, h))
        fw = cfg.film_width
        self.film_scale = _mlp_bn([cond, fw, fw, fw, h])
        self.film_bias = _mlp_bn([cond, fw, fw, fw, h])
        self.trunk = _mlp_bn([h] * 5)
        self.blocks = nn.ModuleList([_mlp_bn([2 * h, h, h, h, h]) for _ in range(cfg.regressor_blocks)])
        self.out = nn.Linear(h, 1)

    def film(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-crystal FiLM scale and bias, (B, hidden) each."""
        return self.film_scale(c), self.film_bias(c)

    def forward(self, film: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Density at fractional points ``x`` (B, P, 3) -> (B, P)."""
        b, p, _ = x.shape
        proj = 2 * math.pi * (x - 0.5) @ self.freqs.T
        pe = self.pos(torch.cat([proj.sin(), proj.cos()], -1).reshape(b * p, -1)).reshape(b, p, -1)
        scale, bias = film
        h_in = (scale[:, None, :] * pe + bias[:, None, :]).reshape(b * p, -1)
        h = self.trunk(h_in)
        for block in self.blocks:
            h = block(torch.cat([h, h_in], -1))
        return self.out(h).reshape(b, p)


class FourierDecoder(nn.Module):
    """Latent condition -> density Fourier coefficients on a half-space box of Miller indices.

    With ``cfg.amplitudes`` the decoder also reads ``aux`` = {amp (B, M), mask (B, M), logv (B,)}: the
    observed amplitudes of its box indices (see :func:`powdersolve.inputs.box_amplitudes`), where
    they were measured, and the log cell volume; it then predicts a complex factor u_h per index and
    an overall scale s, and C_h = s * base_h * u_h with base_h the observed amplitude where measured
    and the training RMS amplitude elsewhere. Otherwise it predicts C_h directly.
    """

    def __init__(self, cfg: ModelConfig, cond: int):
        super().__init__()
        hkl = half_space_hkl(cfg.hkl_box)
        self.register_buffer("hkl", torch.as_tensor(hkl, dtype=torch.float32))
        self.n_coef = len(hkl)
        self.amplitudes = cfg.amplitudes
        width = cond
        if self.amplitudes:
            self.amp_in = nn.Sequential(nn.Linear(2 * self.n_coef + 1, cfg.hidden), nn.LayerNorm(cfg.hidden),
                                        nn.GELU())
            width = cond + cfg.hidden
        sizes = [width] + [cfg.hidden] * cfg.decoder_layers
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.GELU()]
        self.net = nn.Sequential(*layers)
        self.out = nn.Linear(sizes[-1], 2 * self.n_coef + 1 + int(self.amplitudes))
        # Per-output scale (e/A^3), set from the training targets by `set_output_scale`: the low orders
        # of heavy-atom cells are hundreds of times larger than the high orders, and scaling lets every
        # output weight live at the same O(1/sqrt(width)) size, which Adam's fixed step length needs.
        self.register_buffer("scale", torch.ones(2 * self.n_coef + 1))
        # Amplitude mode: RMS normalised amplitude per index (used where unmeasured) and mean log scale.
        self.register_buffer("tau", torch.ones(self.n_coef))
        self.register_buffer("log_s0", torch.zeros(()))

    def set_output_scale(self, dc: torch.Tensor, coef: torch.Tensor, amp: torch.Tensor | None = None) -> None:
        """Set output scales from training targets dc (N,), coef (N, M) complex and full-range amp (N, M)."""
        rms_dc = dc.float().pow(2).mean().sqrt()
        rms = (coef.abs().float().pow(2).mean(0) / 2).sqrt().clamp_min(1e-6)
        self.scale.copy_(torch.cat([rms_dc[None], rms, rms]))
        if amp is not None:
            a = amp.float()
            s_true = (coef.abs().float() * a).sum(-1) / a.pow(2).sum(-1).clamp_min(1e-12)
            self.log_s0.copy_(torch.log(s_true.clamp_min(1e-8)).mean())
            self.tau.copy_(a.pow(2).mean(0).sqrt().clamp_min(1e-4))

    def forward(self, c: torch.Tensor, aux: dict[str, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (dc (B,), coefficients (B, M) complex) in e/A^3."""
        if not self.amplitudes:
            o = self.out(self.net(c)) * self.scale
            return o[:, 0], torch.complex(o[:, 1 : 1 + self.n_coef], o[:, 1 + self.n_coef :])
        if aux is None:
            raise InputError("this model reads indexed amplitudes: give the cell (or let the pattern be indexed)")
        amp, mask, logv = aux["amp"], aux["mask"], aux["logv"]
        feats = self.amp_in(torch.cat([amp, mask, (logv[:, None] - 6.0)], -1))
        o = self.out(self.net(torch.cat([c, feats], -1)))
        m = self.n_coef
        dc = o[:, 0] * self.scale[0]
        s = torch.exp((o[:, 1] + self.log_s0).clamp(max=30.0))
        base = mask * amp + (1 - mask) * self.tau
        u = torch.complex(o[:, 2 : 2 + m], o[:, 2 + m :])
        return dc, (s[:, None] * base).to(u.dtype) * u

    def evaluate(self, dc: torch.Tensor, coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Fourier series rho(x) = C0 + 2 Re sum_h C_h exp(-2 pi i h.x) at points x (B, P, 3) -> (B, P)."""
        phase = -2 * math.pi * (x @ self.hkl.T)  # (B, P, M)
        val = coef.real[:, None, :] * torch.cos(phase) - coef.imag[:, None, :] * torch.sin(phase)
        return dc[:, None] + 2 * val.sum(-1)


def coefficients_to_grid(dc: torch.Tensor, coef: torch.Tensor, hkl: torch.Tensor, n: int) -> torch.Tensor:
    """Half-space Fourier coefficients -> real density grid (B, n, n, n), voxel i at i/n.

    Indices beyond the grid's Nyquist limit alias (fold modulo n), as exact sampling requires.
    """
    b = dc.shape[0]
    full = torch.zeros(b, n, n, n, dtype=coef.dtype, device=coef.device)
    idx = torch.remainder(hkl, n)
    nidx = torch.remainder(-hkl, n)
    flat = (idx[:, 0] * n + idx[:, 1]) * n + idx[:, 2]
    nflat = (nidx[:, 0] * n + nidx[:, 1]) * n + nidx[:, 2]
    full = full.reshape(b, -1)
    full = full.index_add(1, flat, coef).index_add(1, nflat, coef.conj())
    full[:, 0] += dc.to(coef.dtype)
    # rho(x) = sum_h C_h exp(-2 pi i h.x): the forward FFT's sign.
    return torch.fft.fftn(full.reshape(b, n, n, n), dim=(1, 2, 3)).real


def shift_invariant_l2(dc: torch.Tensor, coef: torch.Tensor, dc_t: torch.Tensor, coef_t: torch.Tensor,
                       hkl: torch.Tensor, n: int = 0) -> torch.Tensor:
    """Mean-squared map error (e/A^3)^2 minimised over origin shifts t on an n^3 grid of shifts.

    By Parseval, |rho_p - rho_t(x - t)|^2 averaged over the cell = |dC0|^2 + 2 sum_h |C_h - T_h e^{-2pi i h.t}|^2;
    the cross term over all t is one FFT. ``n = 0`` means no shift search (plain coefficient L2).
    Returns one value per crystal (B,).
    """
    power = (dc - dc_t) ** 2 + 2 * (coef.abs() ** 2 + coef_t.abs() ** 2).sum(-1)
    if n == 0:
        return power - 4 * (coef * coef_t.conj()).real.sum(-1)
    cross = coefficients_to_grid(torch.zeros_like(dc), coef * coef_t.conj(), hkl, n)  # (B, n, n, n)
    best = cross.reshape(cross.shape[0], -1).max(-1).values
    return power - 2 * best
