"""Training: the paper's recipe (L1/L2 + KL, Adam, cosine warm restarts), checkpoints, exact resume, DDP.

- :mod:`~powdersolve.train.config`: :class:`TrainConfig`, the learning-rate schedule, named model configs;
- :mod:`~powdersolve.train.data`: :class:`TrainingSet`, records as model inputs and targets;
- :mod:`~powdersolve.train.loss`: :class:`LossModule`, reconstruction + KL;
- :mod:`~powdersolve.train.checkpoint`: checkpoints with checksums;
- :mod:`~powdersolve.train.loop`: :func:`train`, the loop (exactly resumable).
"""

from powdersolve.train.config import TrainConfig, lr_at, model_config_by_name
from powdersolve.train.data import TrainingSet, aux_of
from powdersolve.train.loop import train, validate
from powdersolve.train.loss import LossModule

__all__ = ["LossModule", "TrainConfig", "TrainingSet", "aux_of", "lr_at", "model_config_by_name", "train", "validate"]
