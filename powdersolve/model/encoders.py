"""The encoders: XRD branch (1-D CNN over the binned pattern), formula branch, variational heads."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from powdersolve.composition import N_ELEMENTS


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
