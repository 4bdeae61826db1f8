"""The variational query-based multi-branch network (Guo et al.) and a Fourier-decoder variant.

Both architectures share the encoders: an XRD branch (1-D CNN over the binned pattern) and a
formula branch (MLP over the 119-element composition vector), each with a mean and a standard
deviation head, sampled once per crystal (``z = mu + eps * sigma``). They differ in the decoder:

- ``arch="query"`` (the paper): Gaussian Fourier features of a fractional query point, FiLM-modulated
  by the latent condition, then a skip-connected MLP regressor -> density at that point. The FiLM
  scale and bias are computed once per crystal and broadcast to its points (the paper's code
  recomputed them per point: same result, ~60% more FLOPs).
- ``arch="fourier"`` (ours, the CPU default): an MLP maps the latent condition to the density's
  Fourier coefficients on a fixed box of Miller indices |h| <= H (half-space; Friedel mates are
  conjugates). The density at any query point is the Fourier series, and the loss can be taken on
  the coefficients directly (Parseval: the coefficient L2 equals the map's mean-squared error).

Departure from the paper: sigma = softplus(raw) + 1e-4 instead of an unconstrained raw output,
which can be negative (the KL term then uses log(sigma^2) of a meaningless value).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from powdersolve.composition import N_ELEMENTS
from powdersolve.errors import InputError


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one model; stored beside the weights as JSON.

    Attributes:
        arch: 'query' (paper decoder) or 'fourier' (coefficient decoder).
        xrd_input: 'paper' (2-theta 0-180 deg channels at fixed wavelengths) or 'q' (Q axis +
            coverage mask, see :mod:`powdersolve.diffraction.encoding`).
        xrd_channels: channels of the XRD input (paper: wavelengths; q: 2).
        xrd_bins: length of the XRD input.
        xrd_encoder: 'dense' (the paper's DenseNet-style CNN) or 'strided' (a cheaper CNN).
        xrd_growth: channels added per dense layer (paper: 8).
        composition: composition encoding used in training ('fractions', 'presence', 'drop', 'none').
        use_xrd / use_formula: ablation switches (a disabled branch contributes a zero latent).
        latent: latent width per branch.
        hidden: decoder width.
        film_width: width of the FiLM MLPs (query decoder).
        n_fourier: number of Gaussian Fourier features per sin/cos (query decoder).
        fourier_sigma: std of the Fourier feature matrix (paper: 3).
        regressor_blocks: skip blocks of the query regressor (paper: 3).
        decoder_layers: hidden layers of the coefficient decoder.
        hkl_box: largest |h|, |k|, |l| of predicted coefficients (fourier decoder).
        amplitudes: (fourier decoder) also read the observed amplitude of every box index, from the
            pattern's peaks indexed with the cell, and predict phases and a scale: the coefficient is
            scale * amplitude * u_h. Needs the cell at prediction time (given or indexed).
        b_iso: B (A^2) of the target density; recorded so predictions match their training target.
        q_max: upper edge of the Q axis (1/A) for xrd_input='q'.
        wavelengths: wavelengths (A) of the 2-theta channels for xrd_input='paper'.
        system: crystal system the model was trained on.
    """

    arch: str = "fourier"
    xrd_input: str = "q"
    xrd_channels: int = 2
    xrd_bins: int = 1024
    xrd_encoder: str = "strided"
    xrd_growth: int = 8
    composition: str = "fractions"
    use_xrd: bool = True
    use_formula: bool = True
    latent: int = 256
    hidden: int = 512
    film_width: int = 1024
    n_fourier: int = 128
    fourier_sigma: float = 3.0
    regressor_blocks: int = 3
    decoder_layers: int = 3
    hkl_box: tuple[int, int, int] = (8, 8, 8)
    amplitudes: bool = False
    b_iso: float = 8.0
    q_max: float = 8.0
    wavelengths: tuple[float, ...] = (0.71073,)
    system: str = "cubic"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hkl_box"] = list(self.hkl_box)
        d["wavelengths"] = list(self.wavelengths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "hkl_box" in known:
            known["hkl_box"] = tuple(int(x) for x in known["hkl_box"])
        if "wavelengths" in known:
            known["wavelengths"] = tuple(float(x) for x in known["wavelengths"])
        cfg = cls(**known)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.arch not in ("query", "fourier"):
            raise InputError(f"unknown model arch '{self.arch}' (query or fourier)")
        if self.xrd_input not in ("paper", "q"):
            raise InputError(f"unknown xrd_input '{self.xrd_input}' (paper or q)")
        if self.xrd_encoder not in ("dense", "strided"):
            raise InputError(f"unknown xrd_encoder '{self.xrd_encoder}' (dense or strided)")
        if not (self.use_xrd or self.use_formula):
            raise InputError("a model needs at least one of the XRD and formula branches")


def paper_config(system: str = "cubic", wavelengths: tuple[float, ...] = (0.71073,)) -> ModelConfig:
    """The paper's sizes: about 14.8 M parameters, query decoder, Mo 2-theta input."""
    return ModelConfig(arch="query", xrd_input="paper", xrd_channels=len(wavelengths), xrd_encoder="dense",
                       latent=512, hidden=512, film_width=1024, composition="fractions",
                       wavelengths=wavelengths, system=system, extra={"separate_std": True})


def cpu_config(system: str = "cubic") -> ModelConfig:
    """The shipped default: Q-axis input, strided CNN, Fourier decoder reading indexed amplitudes."""
    box = (8, 8, 8) if system == "cubic" else (6, 6, 16)
    return ModelConfig(arch="fourier", xrd_input="q", xrd_channels=2, xrd_encoder="strided", latent=256,
                       hidden=512, decoder_layers=3, hkl_box=box, amplitudes=True, system=system)


def cpu_free_config(system: str = "cubic") -> ModelConfig:
    """The Fourier decoder without amplitude input (the paper's information: no cell given)."""
    return replace(cpu_config(system), amplitudes=False)


def tiny_config(arch: str = "fourier", amplitudes: bool = False) -> ModelConfig:
    """A few-thousand-parameter model for tests."""
    return ModelConfig(arch=arch, amplitudes=amplitudes, xrd_input="q", xrd_channels=2, xrd_bins=256,
                       xrd_encoder="strided", latent=16, hidden=32, film_width=32, n_fourier=16,
                       regressor_blocks=1, decoder_layers=1, hkl_box=(3, 3, 3), q_max=8.0)


CONFIGS = {
    "paper": paper_config,
    "cpu": cpu_config,
    "cpu-free": cpu_free_config,
    "tiny": lambda system="cubic": tiny_config(),
    "tiny-amp": lambda system="cubic": tiny_config(amplitudes=True),
}


def half_space_hkl(box: tuple[int, int, int]) -> np.ndarray:
    """Miller indices of one Friedel half of the box |h|<=H (first nonzero index positive), no (0,0,0).

    Shape (M, 3), int64, in a fixed order: the coefficient layout of the fourier decoder.
    """
    ranges = [np.arange(-b, b + 1) for b in box]
    hkl = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3)
    h, k, l = hkl.T
    keep = (h > 0) | ((h == 0) & (k > 0)) | ((h == 0) & (k == 0) & (l > 0))
    return hkl[keep].astype(np.int64)


# ----------------------------------------------------------------------------- encoders


class _DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, length: int):
        super().__init__()
        self.conv = nn.Conv1d(c_in, growth, 3, padding=1)
        self.norm = nn.LayerNorm([growth, length])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, F.relu(self.norm(self.conv(x)))], dim=1)


class DenseXRDEncoder(nn.Module):
    """The paper's DenseNet-style 1-D CNN: (B, C, L) -> (B, out)."""

    def __init__(self, channels: int, length: int, growth: int, out: int):
        super().__init__()
        c = 8 * channels
        self.stem = nn.Sequential(nn.Conv1d(channels, c, 3, padding=1), nn.LayerNorm([c, length]), nn.ReLU())
        block1 = []
        for _ in range(4):
            block1.append(_DenseLayer(c, growth, length))
            c += growth
        self.block1 = nn.Sequential(*block1)
        self.transition = nn.Sequential(nn.Conv1d(c, c // 2, 1), nn.AvgPool1d(2))
        c //= 2
        block2 = []
        for _ in range(4):
            block2.append(_DenseLayer(c, growth, length // 2))
            c += growth
        self.block2 = nn.Sequential(*block2)
        self.head = nn.Conv1d(c, 1, 1)
        self.fc = nn.Linear(length // 2, out)
        self.bn = nn.BatchNorm1d(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.transition(self.block1(self.stem(x))))
        return self.bn(self.fc(self.head(x).flatten(1)))


class StridedXRDEncoder(nn.Module):
    """A cheaper CNN: five stride-2 convolutions, then a linear layer over the flattened map."""

    def __init__(self, channels: int, length: int, out: int, width: int = 32):
        super().__init__()
        layers, c = [], channels
        widths = [width, width, 2 * width, 2 * width, 4 * width]
        for w in widths:
            layers += [nn.Conv1d(c, w, 7, stride=2, padding=3), nn.GroupNorm(4, w), nn.GELU()]
            c = w
        self.net = nn.Sequential(*layers)
        self.fc = nn.Linear(c * (length // 2 ** len(widths)), out)
        self.norm = nn.LayerNorm(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc(self.net(x).flatten(1)))


class FormulaEncoder(nn.Module):
    """The paper's formula branch: Linear(119, n)+BN, then 2 x [ReLU, Linear, BN]."""

    def __init__(self, out: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(N_ELEMENTS, out), nn.BatchNorm1d(out),
            nn.ReLU(), nn.Linear(out, out), nn.BatchNorm1d(out),
            nn.ReLU(), nn.Linear(out, out), nn.BatchNorm1d(out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class VariationalBranch(nn.Module):
    """Mean and std encoders of one input; ``separate`` copies the whole encoder as the paper does."""

    def __init__(self, make: callable, width: int, separate: bool):
        super().__init__()
        self.mu = make()
        self.separate = separate
        self.sigma = make() if separate else nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.mu(x)
        raw = self.sigma(x) if self.separate else self.sigma(mu)
        return mu, F.softplus(raw) + 1e-4


def _mlp_bn(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- decoders


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


# ----------------------------------------------------------------------------- the network


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


def build_model(cfg: ModelConfig) -> CMEDNet:
    """Construct a network from its config."""
    return CMEDNet(cfg)


def with_overrides(cfg: ModelConfig, **kw) -> ModelConfig:
    """A copy of ``cfg`` with fields replaced (ablation switches, system)."""
    out = replace(cfg, **kw)
    out.validate()
    return out
