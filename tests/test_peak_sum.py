"""The fused windowed peak sum against the same peaks built as torch arrays (``PeakProfile.peaks``): values and
the gradient of every profile parameter, reflection position and intensity."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from powdersolve.diffraction.peakshape import PeakProfile, ProfileStart

T = torch.as_tensor


def _array_sum(prof: PeakProfile, q2: torch.Tensor, inten: torch.Tensor) -> torch.Tensor:
    """The pattern as index_add of the (reflections x window) arrays: autograd differentiates it op by op."""
    idx, vals, _ = prof.peaks(q2)
    flat = (vals * inten[:, None]).reshape(-1)
    return torch.zeros(len(prof.tt), dtype=torch.float64).index_add(0, idx.reshape(-1), flat)


def _profile(window: float, asym: tuple[float, ...]) -> PeakProfile:
    tt = np.arange(10.0, 80.0, 0.01)
    start = ProfileStart(u=0.01, v=-0.004, w=0.004, x=0.03, y=0.01, zero=0.02, displacement=-0.03, asym=asym,
                         lines=((1.54056, 1.0), (1.54439, 0.5)), window_fwhm=window)
    prof = PeakProfile(tt, start)
    for p in prof.parameters():
        p.requires_grad_(True)
    return prof


@pytest.mark.parametrize("window", [15.0, 4.0, 0.0])
@pytest.mark.parametrize("asym", [(0.0, 0.0, 0.0, 0.0), (0.3, -0.2, 0.1, 0.05)])
def test_fused_sum_equals_the_array_sum_with_its_gradients(window: float, asym: tuple[float, ...]) -> None:
    rng = np.random.default_rng(3)
    # Reflections inside the scan, at its edges (half a window outside) and beyond 2-theta = 180 (weight 0).
    d = np.concatenate([rng.uniform(1.2, 6.0, 40), [8.9, 8.7, 1.17, 0.7]])
    probe = T(rng.normal(size=7000))
    results = []
    for fused in (True, False):
        prof = _profile(window, asym)
        d2 = T(1 / d**2).clone().requires_grad_(True)
        inten = T(np.linspace(1.0, 90.0, d.size)).clone()
        inten.requires_grad_(True)
        y = prof.render(d2, inten)[0] if fused else _array_sum(prof, d2, inten)
        (y * probe).sum().backward()
        grads = [p.grad.clone() for p in prof.parameters()] + [d2.grad.clone(), inten.grad.clone()]
        results.append((y.detach(), grads))
    (y_fused, g_fused), (y_array, g_array) = results
    np.testing.assert_allclose(y_fused.numpy(), y_array.numpy(), rtol=1e-12, atol=1e-12 * float(y_array.abs().max()))
    for a, b in zip(g_fused, g_array, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-9 * float(b.abs().max() + 1e-30))


def test_fused_sum_runs_in_threads() -> None:
    """Refinements run in worker threads (the kernel releases the interpreter): the same pattern in each."""
    prof = _profile(15.0, (0.1, 0.0, 0.0, 0.0))
    q2 = T(1 / np.linspace(1.3, 5.0, 30) ** 2)
    with torch.no_grad():
        ref = prof.render(q2, T(np.ones(30)))[0]
        with ThreadPoolExecutor(2) as pool:
            outs = list(pool.map(lambda _: prof.render(q2, T(np.ones(30)))[0], range(4)))
    for out in outs:
        assert torch.equal(out, ref)
