"""Training settings: :class:`TrainConfig`, the learning-rate schedule, the named model configs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from powdersolve.errors import InputError
from powdersolve.model import CONFIGS, ModelConfig


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


def model_config_by_name(name: str, system: str) -> ModelConfig:
    """A named model config ('paper', 'cpu', 'tiny') for a crystal system."""
    if name not in CONFIGS:
        raise InputError(f"unknown config '{name}'; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name](system)
