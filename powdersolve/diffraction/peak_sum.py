"""Windowed peaks summed onto a 2-theta grid, with the gradient of that sum, in one compiled pass (numba).

A calculated powder pattern is y_j = sum over reflections r and emission lines l of
I_r w_lr S(2th_j - pos_lr; H_lr, eta_lr, theta_lr), where S is the unit-area pseudo-Voigt (1/degree) times
the Berar-Baldinozzi asymmetry (the shapes of :mod:`powdersolve.diffraction.peakshape`), evaluated only within
``half`` grid points of each peak's position. Written as torch operations on (reflections x window) arrays,
a refinement spends most of its time building those arrays and their backward pass (about 40 ms an
evaluation for 600 reflections x 330 points). Here one loop computes the sum, and one loop every partial
derivative it needs, without intermediate arrays; :func:`windowed_sum` joins them to autograd. The
results equal the array formulation's to rounding (tests/test_peak_sum.py).

Units: 2-theta, positions and FWHM in degrees; theta in radians; intensities and weights in any unit.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch.autograd.function import FunctionCtx, once_differentiable

_LN2 = math.log(2.0)
_C_GAUSS = 2.0 * math.sqrt(_LN2 / math.pi)  # unit-area Gaussian of FWHM 1 at its centre
_C_LORENTZ = 2.0 / math.pi  # unit-area Lorentzian of FWHM 1 at its centre


@numba.njit(cache=True, nogil=True)
def _window(tt: np.ndarray, position: float, half: int) -> tuple[int, int]:
    """Grid indices [lo, hi) within ``half`` points of the first grid point at or above ``position``."""
    centre = np.searchsorted(tt, position)
    return max(centre - half, 0), min(centre + half + 1, tt.size)


@numba.njit(cache=True, nogil=True)
def _render(tt: np.ndarray, pos: np.ndarray, fwhm: np.ndarray, eta: np.ndarray, weight: np.ndarray,
            theta: np.ndarray, asym: np.ndarray, inten: np.ndarray, half: int, use_asym: bool, out: np.ndarray) -> None:
    """Adds the windowed peaks to ``out`` (see :func:`windowed_sum`)."""
    n_lines, n_refl = pos.shape
    for line in range(n_lines):
        for r in range(n_refl):
            amp = weight[line, r] * inten[r]
            if amp == 0.0:
                continue
            p, h, e = pos[line, r], fwhm[line, r], eta[line, r]
            ca = cb = 0.0
            if use_asym:
                ta, t2 = 1.0 / math.tan(theta[line, r]), 1.0 / math.tan(2.0 * theta[line, r])
                ca, cb = asym[0] * ta + asym[2] * t2, asym[1] * ta + asym[3] * t2
            lo, hi = _window(tt, p, half)
            for j in range(lo, hi):
                dx = tt[j] - p
                z2 = (2.0 * dx / h) ** 2
                s = (e * _C_LORENTZ / (1.0 + z2) + (1.0 - e) * _C_GAUSS * math.exp(-_LN2 * z2)) / h
                if use_asym:
                    z = dx / h
                    fa = 2.0 * z * math.exp(-z * z)
                    s *= 1.0 + ca * fa + cb * 2.0 * (2.0 * z * z - 3.0) * fa
                out[j] += amp * s


@numba.njit(cache=True, nogil=True)
def _gradients(tt: np.ndarray, pos: np.ndarray, fwhm: np.ndarray, eta: np.ndarray, weight: np.ndarray,
               theta: np.ndarray, asym: np.ndarray, inten: np.ndarray, half: int, use_asym: bool, gy: np.ndarray,
               g_pos: np.ndarray, g_fwhm: np.ndarray, g_eta: np.ndarray, g_weight: np.ndarray, g_theta: np.ndarray,
               g_asym: np.ndarray, g_inten: np.ndarray) -> None:
    """Fills the ``g_*`` arrays (zeroed by the caller) with the gradient of sum(gy * pattern) by each input."""
    n_lines, n_refl = pos.shape
    for line in range(n_lines):
        for r in range(n_refl):
            p, h, e, th = pos[line, r], fwhm[line, r], eta[line, r], theta[line, r]
            ta = t2 = dta = dt2 = ca = cb = 0.0
            if use_asym:
                ta, t2 = 1.0 / math.tan(th), 1.0 / math.tan(2.0 * th)
                dta, dt2 = -1.0 / math.sin(th) ** 2, -2.0 / math.sin(2.0 * th) ** 2  # d/dtheta of ta, t2
                ca, cb = asym[0] * ta + asym[2] * t2, asym[1] * ta + asym[3] * t2
            s_sum = s_dx = s_h = s_e = s_th = s_a0 = s_a1 = 0.0
            lo, hi = _window(tt, p, half)
            for j in range(lo, hi):
                g = gy[j]
                dx = tt[j] - p
                z2 = (2.0 * dx / h) ** 2
                lor = _C_LORENTZ / (1.0 + z2)
                gau = _C_GAUSS * math.exp(-_LN2 * z2)
                f = e * lor + (1.0 - e) * gau
                df_dz2 = -e * lor * lor / _C_LORENTZ - (1.0 - e) * _LN2 * gau
                pv = f / h
                dpv_dx = df_dz2 * 8.0 * dx / (h * h * h)
                dpv_dh = -f / (h * h) - df_dz2 * 2.0 * z2 / (h * h)
                dpv_de = (lor - gau) / h
                if use_asym:
                    z = dx / h
                    ez = math.exp(-z * z)
                    fa = 2.0 * z * ez
                    fb = 2.0 * (2.0 * z * z - 3.0) * fa
                    dfa = 2.0 * ez * (1.0 - 2.0 * z * z)
                    dfb = 2.0 * (4.0 * z * fa + (2.0 * z * z - 3.0) * dfa)
                    a = 1.0 + ca * fa + cb * fb
                    da_dz = ca * dfa + cb * dfb
                    s_dx += g * (dpv_dx * a + pv * da_dz / h)
                    s_h += g * (dpv_dh * a - pv * da_dz * z / h)
                    s_e += g * dpv_de * a
                    s_sum += g * pv * a
                    gpv = g * pv
                    s_th += gpv * (fa * (asym[0] * dta + asym[2] * dt2) + fb * (asym[1] * dta + asym[3] * dt2))
                    s_a0 += gpv * fa
                    s_a1 += gpv * fb
                else:
                    s_dx += g * dpv_dx
                    s_h += g * dpv_dh
                    s_e += g * dpv_de
                    s_sum += g * pv
            amp = weight[line, r] * inten[r]
            g_pos[line, r] = -amp * s_dx
            g_fwhm[line, r] = amp * s_h
            g_eta[line, r] = amp * s_e
            g_weight[line, r] = inten[r] * s_sum
            g_inten[r] += weight[line, r] * s_sum
            if use_asym:
                g_theta[line, r] = amp * s_th
                g_asym[0] += amp * s_a0 * ta
                g_asym[1] += amp * s_a1 * ta
                g_asym[2] += amp * s_a0 * t2
                g_asym[3] += amp * s_a1 * t2


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).contiguous().numpy()


class _WindowedSum(torch.autograd.Function):
    """The autograd node of :func:`windowed_sum`: the compiled sum forward, its compiled gradient backward."""

    @staticmethod
    def forward(ctx: FunctionCtx, tt: torch.Tensor, pos: torch.Tensor, fwhm: torch.Tensor, eta: torch.Tensor,
                weight: torch.Tensor, theta: torch.Tensor, asym: torch.Tensor, inten: torch.Tensor, half: int,
                use_asym: bool) -> torch.Tensor:
        arrays = [_np(t) for t in (tt, pos, fwhm, eta, weight, theta, asym, inten)]
        out = np.zeros(arrays[0].size)
        _render(*arrays, int(half), bool(use_asym), out)
        ctx.arrays, ctx.half, ctx.use_asym = arrays, int(half), bool(use_asym)
        return torch.from_numpy(out)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, gy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        tt, pos, fwhm, eta, weight, theta, asym, inten = ctx.arrays
        grads = [np.zeros_like(pos) for _ in range(5)] + [np.zeros(4), np.zeros_like(inten)]
        _gradients(tt, pos, fwhm, eta, weight, theta, asym, inten, ctx.half, ctx.use_asym, _np(gy), *grads)
        g_pos, g_fwhm, g_eta, g_weight, g_theta, g_asym, g_inten = (torch.from_numpy(g) for g in grads)
        return None, g_pos, g_fwhm, g_eta, g_weight, g_theta, g_asym, g_inten, None, None


def windowed_sum(two_theta: torch.Tensor, pos: torch.Tensor, fwhm: torch.Tensor, eta: torch.Tensor,
                 weight: torch.Tensor, theta: torch.Tensor, asym: torch.Tensor, intensity: torch.Tensor,
                 half: int, use_asym: bool) -> torch.Tensor:
    """Pattern (n,) on the grid ``two_theta`` (n,) deg, increasing: sum of I_r w_lr S over reflections and lines.

    Args:
        pos, fwhm, eta, weight, theta: (lines, reflections) observed positions (deg), TCH FWHM (deg), Lorentz
            fractions, line weight x Lorentz-polarisation factor, and Bragg angles (rad).
        asym: (4,) Berar-Baldinozzi P1..P4, used when ``use_asym``.
        intensity: (reflections,) intensities.
        half: each peak is evaluated at the grid points within ``half`` points of the first point at or above
            its position (``len(two_theta)`` or more: everywhere).

    Differentiable (first order) in every tensor argument but ``two_theta``; float64.
    """
    return _WindowedSum.apply(two_theta, pos, fwhm, eta, weight, theta, asym, intensity, half, use_asym)
