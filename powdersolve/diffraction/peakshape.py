"""Refinable powder peak profile (torch, float64): what turns reflections into counts on a 2-theta grid.

All angles are degrees of 2-theta unless a name says theta; widths are FWHM in degrees 2-theta.

- Widths: Gaussian FWHM from Caglioti, H_G^2 = U tan^2 th + V tan th + W (degrees^2); Lorentzian FWHM
  H_L = X / cos th + Y tan th (degrees; X: crystallite size, Y: microstrain), combined into one
  pseudo-Voigt by Thompson, Cox & Hastings (1987) (:func:`tch`).
- Asymmetry: Berar & Baldinozzi (1993) multiplier 1 + (P1 Fa + P2 Fb) / tan th + (P3 Fa + P4 Fb) / tan 2th
  with z = (2th - 2th_k) / H, Fa = 2 z exp(-z^2), Fb = 2 (2 z^2 - 3) Fa. Fa and Fb are odd in z, so the
  peak area is unchanged; it is cheap and smooth, where Finger-Cox-Jephcoat needs a convolution per peak.
- Positions: 2th_obs = 2th + zero + displacement * cos th (sample displacement s on a goniometer of
  radius R shifts by -2 s cos th / R radians; ``displacement`` is that coefficient in degrees).
- Emission lines: each reflection is drawn once per line (K-alpha1 and, optionally, K-alpha2 with
  weight ``ratio``), each at its own 2-theta and with its own Lorentz-polarisation factor.
- Preferred orientation: March-Dollase (:func:`march_dollase`), applied by the caller per reflection.
- Background: Chebyshev polynomial over the scan mapped to [-1, 1] (:func:`chebyshev_basis`).

:class:`PeakProfile` holds the refinable parameters and evaluates peaks only inside a window of
``window_fwhm`` widest FWHM around each one, so the cost is reflections x window, not x points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from powdersolve.diffraction.peak_sum import windowed_sum

_DT = torch.float64
ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)
_LN2 = float(np.log(2.0))
#: Parameter scales: one unit of each stored parameter is a comparable change of the pattern.
_SCALE_ZERO = 0.05  # degrees 2-theta
_SCALE_WIDTH2 = 0.01  # degrees^2 (U, V, W)
_SCALE_WIDTH = 0.05  # degrees (X, Y)
_SCALE_ASYM = 0.01  # dimensionless (P1..P4)


def tch(h_g: ArrayT, h_l: ArrayT) -> tuple[ArrayT, ArrayT]:
    """Thompson-Cox-Hastings pseudo-Voigt FWHM (same unit as the inputs) and Lorentz fraction eta.

    Works on torch tensors (differentiable) and numpy arrays alike.
    """
    h = (h_g**5 + 2.69269 * h_g**4 * h_l + 2.42843 * h_g**3 * h_l**2 + 4.47163 * h_g**2 * h_l**3
         + 0.07842 * h_g * h_l**4 + h_l**5) ** 0.2
    r = h_l / h
    return h, (1.36603 * r - 0.47719 * r**2 + 0.11116 * r**3).clip(0.0, 1.0)


def split_tch(fwhm: ArrayT | float, eta: ArrayT | float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`tch` (Ida, Ando & Toraya 2000): (H_G, H_L) of a pseudo-Voigt of ``fwhm`` and ``eta``."""
    e = np.clip(np.asarray(eta, dtype=np.float64), 0.0, 1.0)
    h_l = fwhm * (0.72928 * e + 0.19289 * e**2 + 0.07783 * e**3)
    h_g = fwhm * np.sqrt(np.clip(1 - 0.74417 * e - 0.24781 * e**2 - 0.00810 * e**3, 0.0, None))
    return h_g, h_l


def pseudo_voigt(dx: torch.Tensor, fwhm: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """Unit-area pseudo-Voigt (1/degree) at offsets ``dx`` (degrees) from the centre; arrays broadcast."""
    z2 = (2.0 * dx / fwhm) ** 2
    gauss = (2 * np.sqrt(_LN2 / np.pi)) * torch.exp(-_LN2 * z2)
    lorentz = (2 / np.pi) / (1 + z2)
    return (eta * lorentz + (1 - eta) * gauss) / fwhm


def asymmetry(dx: torch.Tensor, fwhm: torch.Tensor, theta: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Berar-Baldinozzi multiplier of a peak (dimensionless) at offsets ``dx`` (deg), Bragg angle theta (rad).

    ``p`` = (P1, P2, P3, P4); all zero gives 1 everywhere.
    """
    z = dx / fwhm
    fa = 2 * z * torch.exp(-z * z)
    fb = 2 * (2 * z * z - 3) * fa
    return 1 + (p[0] * fa + p[1] * fb) / torch.tan(theta) + (p[2] * fa + p[3] * fb) / torch.tan(2 * theta)


def march_dollase(cos2_alpha: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """March-Dollase weight of a reflection whose normal makes angle alpha with the preferred axis.

    ``r`` = 1 is a random powder; r < 1 platelets lying on the axis, r > 1 needles. Averaged over a
    reflection's symmetry equivalents it keeps the total intensity of a random powder.
    """
    return (r * r * cos2_alpha + (1 - cos2_alpha) / r) ** -1.5


def lorentz_polarization(theta: torch.Tensor) -> torch.Tensor:
    """Unpolarised Lorentz-polarisation factor (1 + cos^2 2th) / (sin^2 th cos th), theta in radians."""
    return (1 + torch.cos(2 * theta) ** 2) / (torch.sin(theta) ** 2 * torch.cos(theta))


def chebyshev_basis(two_theta: np.ndarray, n_terms: int) -> torch.Tensor:
    """(n, n_terms) Chebyshev polynomials T_0..T_{n-1} of the scan mapped to [-1, 1]."""
    x = np.asarray(two_theta, dtype=np.float64)
    xs = 2 * (x - x.min()) / max(np.ptp(x), 1e-12) - 1
    return torch.as_tensor(np.polynomial.chebyshev.chebvander(xs, max(n_terms - 1, 0))[:, :n_terms])


@dataclass(frozen=True)
class ProfileStart:
    """Starting values of a :class:`PeakProfile`.

    Attributes:
        u, v, w: Gaussian Caglioti coefficients (degrees^2).
        x, y: Lorentzian X / cos th + Y tan th (degrees).
        zero: zero shift (degrees 2-theta); displacement: cos th coefficient (degrees 2-theta).
        asym: Berar-Baldinozzi (P1, P2, P3, P4).
        lines: (wavelength A, weight) of each emission line; the first is the reference.
        window_fwhm: peaks are evaluated within this many widest FWHM (0: everywhere).
    """

    u: float = 0.0
    v: float = 0.0
    w: float = 0.01
    x: float = 0.0
    y: float = 0.0
    zero: float = 0.0
    displacement: float = 0.0
    asym: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    lines: tuple[tuple[float, float], ...] = ((1.54056, 1.0),)
    window_fwhm: float = 15.0

    @classmethod
    def from_pseudo_voigt(cls, fwhm2: float, eta: float, **kwargs: object) -> ProfileStart:
        """Start that reproduces a constant-width pseudo-Voigt: W = H_G^2 and X = H_L at low angle."""
        h_g, h_l = split_tch(float(np.sqrt(max(fwhm2, 1e-12))), eta)
        return cls(w=max(float(h_g) ** 2, 1e-8), x=float(h_l), **kwargs)  # type: ignore[arg-type]


def _frozen(values: list[float], scale: float) -> torch.nn.Parameter:
    """A scaled parameter that moves only once a fit switches its gradient on."""
    return torch.nn.Parameter(torch.tensor(values, dtype=_DT) / scale, requires_grad=False)


class PeakProfile(torch.nn.Module):
    """Refinable peak shape and positions on a fixed, increasing 2-theta grid (degrees).

    Parameters are stored scaled (module constants). :meth:`peaks` gives each reflection's windowed
    contribution per unit intensity; :meth:`render` sums them with intensities.
    """

    def __init__(self, two_theta: np.ndarray, start: ProfileStart = ProfileStart()) -> None:
        super().__init__()
        self.tt = torch.as_tensor(np.asarray(two_theta, dtype=np.float64))
        steps = np.diff(np.asarray(two_theta, dtype=np.float64))
        # Windows are counted in points: a strictly increasing grid is required, its smallest step used.
        self._step = float(steps.min()) if len(steps) and steps.min() > 0 else 0.0
        self.lines = tuple((float(lam), float(wt)) for lam, wt in start.lines)
        self.window_fwhm = float(start.window_fwhm)
        self.p_zero = _frozen([start.zero], _SCALE_ZERO)
        self.p_disp = _frozen([start.displacement], _SCALE_ZERO)
        self.p_gauss = _frozen([start.u, start.v, start.w], _SCALE_WIDTH2)
        self.p_lorentz = _frozen([start.x, start.y], _SCALE_WIDTH)
        self.p_asym = _frozen(list(start.asym), _SCALE_ASYM)

    @property
    def wavelength(self) -> float:
        """Reference (first line) wavelength in Angstrom."""
        return self.lines[0][0]

    def zero(self) -> torch.Tensor:
        return _SCALE_ZERO * self.p_zero[0]

    def displacement(self) -> torch.Tensor:
        return _SCALE_ZERO * self.p_disp[0]

    def set_zero(self, value: float) -> None:
        """Set the zero shift (degrees 2-theta) without recording a gradient."""
        with torch.no_grad():
            self.p_zero.fill_(value / _SCALE_ZERO)

    def uvw(self) -> torch.Tensor:
        return _SCALE_WIDTH2 * self.p_gauss

    def xy(self) -> torch.Tensor:
        return _SCALE_WIDTH * self.p_lorentz

    def asym(self) -> torch.Tensor:
        return _SCALE_ASYM * self.p_asym

    def width(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """TCH FWHM (degrees) and eta at Bragg angles ``theta`` (radians)."""
        u, v, w = self.uvw()
        x, y = self.xy()
        tan = torch.tan(theta)
        h_g = torch.sqrt(torch.clamp(u * tan**2 + v * tan + w, min=1e-8))
        h_l = torch.clamp(x / torch.cos(theta) + y * tan, min=0.0)
        return tch(h_g, h_l)

    def positions(self, q2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per reflection and line: observed 2-theta (deg), Bragg theta (rad), line weight x LP.

        ``q2`` = 1/d^2 (1/A^2). Shapes (lines, reflections); reflections beyond 2-theta = 180 get weight 0.
        """
        lam = torch.tensor([lam for lam, _ in self.lines], dtype=_DT)[:, None]
        wt = torch.tensor([wt for _, wt in self.lines], dtype=_DT)[:, None]
        sin_th = torch.sqrt(q2)[None, :] * lam / 2
        ok = sin_th < 1.0
        theta = torch.asin(torch.clamp(sin_th, 1e-9, 1.0 - 1e-12))
        pos = torch.rad2deg(2 * theta) + self.zero() + self.displacement() * torch.cos(theta)
        return pos, theta, torch.where(ok, wt * lorentz_polarization(theta), torch.zeros_like(theta))

    def peaks(self, q2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Windowed peak functions per unit intensity: (idx, values, 2-theta of the first line).

        ``idx`` and ``values`` are (reflections, lines x window): grid indices and counts per unit
        intensity (line weight x LP x unit-area profile, 1/degree). Without a window the window is the grid.
        """
        pos, theta, weight = self.positions(q2)
        fwhm, eta = self.width(theta)
        n = len(self.tt)
        half = self._window_half(pos[0], fwhm[0])
        if half is None:
            idx = torch.arange(n).expand(pos.shape[0], pos.shape[1], n)
        else:
            with torch.no_grad():
                centre = torch.searchsorted(self.tt, pos.detach().contiguous())
                idx = centre[..., None] + torch.arange(-half, half + 1)
            inside = (idx >= 0) & (idx < n)
            idx = idx.clamp(0, n - 1)
        dx = self.tt[idx] - pos[..., None]
        shape = pseudo_voigt(dx, fwhm[..., None], eta[..., None])
        if self._asymmetric():
            shape = shape * asymmetry(dx, fwhm[..., None], theta[..., None], self.asym())
        vals = shape * weight[..., None]
        if half is not None:
            vals = vals * inside
        # (lines, refl, window) -> (refl, lines * window)
        return idx.permute(1, 0, 2).reshape(pos.shape[1], -1), vals.permute(1, 0, 2).reshape(pos.shape[1], -1), pos[0]

    def render(self, q2: torch.Tensor, intensity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Counts on the grid of reflections at ``q2`` (1/A^2) with ``intensity`` each, and their 2-theta."""
        pos, theta, weight = self.positions(q2)
        fwhm, eta = self.width(theta)
        half = self._window_half(pos[0], fwhm[0])
        y = windowed_sum(self.tt, pos, fwhm, eta, weight, theta, self.asym(), intensity,
                         len(self.tt) if half is None else half, self._asymmetric())
        return y, pos[0]

    def _asymmetric(self) -> bool:
        """Whether the asymmetry is evaluated: non-zero or refining."""
        return bool(torch.any(self.p_asym != 0)) or self.p_asym.requires_grad

    def _window_half(self, pos: torch.Tensor, fwhm: torch.Tensor) -> int | None:
        """Half-window in points, or None when the dense evaluation is as cheap (or windowing is off)."""
        if self.window_fwhm <= 0 or self._step <= 0:
            return None
        with torch.no_grad():
            in_range = (pos >= self.tt[0] - 5) & (pos <= self.tt[-1] + 5)
            widest = float(fwhm[in_range].max()) if bool(in_range.any()) else float(fwhm.max())
        half = int(np.ceil(self.window_fwhm * widest / self._step))
        return None if 2 * half + 1 >= len(self.tt) else half
