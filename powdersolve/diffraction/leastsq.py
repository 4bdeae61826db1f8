"""Least-squares building blocks shared by profile fits (Rietveld, Le Bail, Pawley): torch, float64."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from powdersolve.errors import InputError

_DT = torch.float64


def linear_fit(design: torch.Tensor, obs: torch.Tensor, weight: torch.Tensor, ridge: float = 0.0
               ) -> torch.Tensor:
    """Coefficients c minimising sum_i weight_i (obs_i - (design c)_i)^2 (+ ``ridge`` x diag of the normal matrix).

    Differentiable in ``design``: parameters that enter linearly (scale, background, Pawley
    intensities) are eliminated exactly at every evaluation (variable projection).
    """
    wd = design * weight[:, None]
    lhs = design.T @ wd
    lhs = lhs + torch.diag(ridge * torch.diagonal(lhs).detach() + 1e-12)
    return torch.linalg.solve(lhs, wd.T @ obs)


@contextmanager
def single_threaded_torch() -> Iterator[None]:
    """Run the block with one torch intra-op thread, then restore the caller's setting.

    The tensors of a profile fit are small (points x reflections, ~1e5): intra-op threads cost more than
    they save, by 20x on a busy machine. Nested uses keep the outermost caller's setting.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def minimise(params: list[torch.nn.Parameter], loss_fn: Callable[[], torch.Tensor], max_iter: int,
             tolerance_change: float = 1e-14) -> None:
    """L-BFGS with a strong-Wolfe line search on ``params`` (the others stay fixed); they are frozen after.

    Stops after ``max_iter`` iterations, or when an iteration changes the loss by less than ``tolerance_change``.
    """
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=tolerance_change, history_size=20)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)
    for p in params:
        p.requires_grad_(False)


def agreement(obs: np.ndarray, calc: np.ndarray, weight: np.ndarray, n_parameters: int) -> tuple[float, float, float]:
    """Rwp, Rp (fractions) and goodness of fit sqrt(chi^2 / (N - P)) of a fit with ``weight`` = 1 / sigma^2."""
    resid = obs - calc
    chi2 = float(np.sum(weight * resid**2))
    rwp = float(np.sqrt(chi2 / max(float(np.sum(weight * obs**2)), 1e-300)))
    rp = float(np.sum(np.abs(resid)) / max(float(np.sum(np.abs(obs))), 1e-300))
    return rwp, rp, float(np.sqrt(chi2 / max(len(obs) - n_parameters, 1)))


def pattern_arrays(two_theta: np.ndarray, observed: np.ndarray, sigma: np.ndarray | None = None,
                   min_points: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked float arrays (2-theta deg, intensities, standard uncertainties) of a pattern to fit.

    Default ``sigma``: sqrt(counts) for data that look like counts (non-negative integers), unit
    weights otherwise. Raises :class:`InputError` with the fix.
    """
    tt = np.asarray(two_theta, dtype=np.float64)
    obs = np.asarray(observed, dtype=np.float64)
    if tt.ndim != 1 or tt.shape != obs.shape or len(tt) < min_points:
        raise InputError(f"pattern needs matching 1-D 2-theta and intensity arrays of >= {min_points} points "
                         f"(got {tt.shape} and {obs.shape})")
    if not (np.all(np.isfinite(tt)) and np.all(np.isfinite(obs))):
        raise InputError("pattern holds NaN or infinite values; clean the data file")
    if tt.min() <= 0 or tt.max() >= 180:
        raise InputError(f"2-theta range {tt.min():g}-{tt.max():g} is outside (0, 180) degrees")
    if sigma is None:
        looks_counts = obs.min() >= 0 and obs.max() > 10 and np.allclose(obs, np.round(obs))
        return tt, obs, np.sqrt(np.maximum(obs, 1.0)) if looks_counts else np.ones_like(obs)
    sig = np.asarray(sigma, dtype=np.float64)
    if sig.shape != obs.shape or np.any(~(sig > 0)):
        raise InputError("sigma must be positive and have one value per pattern point")
    return tt, obs, sig
