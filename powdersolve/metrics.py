"""Scores of a predicted CMED grid against the true one: map correlation, 3-D SSIM and PSNR.

Two protocols:

- the paper's (:func:`paper_scores`): SSIM and PSNR (scikit-image defaults, data_range from the
  truth) maximised independently over the lattice's rotations and the latent samples, no origin
  shifts. A constant map passes this SSIM when densities are sharp, so it is reported for
  comparison only;
- ours (:func:`map_correlation_batch`): the Pearson map correlation maximised over the lattice's
  rotations, the samples and every integer origin shift (one batched FFT cross-correlation).
  A constant map scores 0.

Which rotations: those of the crystal's lattice family (:func:`powdersolve.rotations.lattice_rotations`:
24 cubic, 12 hexagonal and trigonal, 8 tetragonal, 4 orthorhombic, 2 monoclinic, 1 triclinic), the
re-labellings of the axes that leave the cell's metric unchanged. Functions that take ``rotations``
default to the 24 of the cube (the cubic models' protocol). All grids are cubes (N, N, N), axes (a, b, c).
Densities are in e/A^3; every score is dimensionless except PSNR (dB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch

from powdersolve.errors import InputError
from powdersolve.rotations import (  # noqa: F401  (re-exported: callers import them from here)
    FAMILY_OF_SYSTEM,
    GridRotation,
    LatticeRotation,
    Rotation,
    align,
    cube_rotations,
    lattice_rotations,
    rotate,
    rotations_or_cube,
)

#: scikit-image structural_similarity defaults (uniform window, sample covariance).
SSIM_WIN = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03

ArrayLike = np.ndarray | torch.Tensor


def _as_tensor(x: ArrayLike, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.detach().to(device="cpu", dtype=dtype)


def _check_cubes(preds: torch.Tensor, truth: torch.Tensor, batched: bool) -> None:
    n = truth.shape[-1]
    want = 4 if batched else 3
    if truth.ndim != 3 or truth.shape != (n, n, n):
        raise InputError(f"truth grid has shape {tuple(truth.shape)}; expected a cube (N, N, N)")
    if preds.ndim != want or tuple(preds.shape[-3:]) != (n, n, n):
        lead = "(S, " if batched else "("
        raise InputError(f"prediction has shape {tuple(preds.shape)}; expected {lead}{n}, {n}, {n})")


# ---------------------------------------------------------------------------------------------
# Map correlation over rotations and origin shifts


class CorrelationMatch(NamedTuple):
    """Best Pearson map correlation and where it was found."""

    cc: float
    sample: int
    rotation: int
    shift: tuple[int, int, int]


def map_correlation_per_sample(preds: ArrayLike, truth: ArrayLike, rotations: Sequence[GridRotation] | None = None
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best correlation of each sample over the rotations and all N^3 integer shifts.

    Args:
        preds: (S, N, N, N) predicted grids.
        truth: (N, N, N) true grid.
        rotations: the lattice's rotations (:func:`lattice_rotations`); default the cube's 24.

    Returns:
        cc (S,) float64 in [-1, 1] (0 for a constant map), rotation index (S,), shift (S, 3).
    """
    p = _as_tensor(preds)
    t = _as_tensor(truth)
    _check_cubes(p, t, batched=True)
    n = t.shape[-1]
    # Zero variance is tested exactly: x - x.mean() of a constant map is rounding noise, not 0.
    t_const = bool(t.max() == t.min())
    t = t - t.mean()
    t_norm = float(torch.linalg.vector_norm(t))
    # Mean removal in float64, then float32 FFTs: the correlation needs ~1e-6, not 1e-15.
    t_hat = torch.fft.rfftn(t.float(), dim=(-3, -2, -1))
    cc = np.zeros(len(p))
    best_rot = np.zeros(len(p), dtype=np.int64)
    best_shift = np.zeros((len(p), 3), dtype=np.int64)
    for s in range(len(p)):
        if t_const or bool(p[s].max() == p[s].min()):
            continue
        x = p[s] - p[s].mean()
        x_norm = float(torch.linalg.vector_norm(x))
        stack = _rotation_stack(x.float(), rotations)
        # c[k] = sum_x a(x - k) b(x) = irfft(conj(A) B)[k]: a rolled by k overlays b.
        xc = torch.fft.irfftn(torch.conj(torch.fft.rfftn(stack, dim=(-3, -2, -1))) * t_hat,
                              s=(n, n, n), dim=(-3, -2, -1))
        flat = int(torch.argmax(xc.reshape(-1)))
        r, k = divmod(flat, n**3)
        cc[s] = float(xc.reshape(-1)[flat]) / (x_norm * t_norm)
        best_rot[s] = r
        best_shift[s] = np.unravel_index(k, (n, n, n))
    return np.clip(cc, -1.0, 1.0), best_rot, best_shift


def map_correlation_batch(preds: ArrayLike, truth: ArrayLike,
                          rotations: Sequence[GridRotation] | None = None) -> CorrelationMatch:
    """Best Pearson map correlation over samples, the rotations (default the cube's 24) and all integer
    origin shifts.

    ``align(preds[sample], rotation, shift, rotations)`` is the overlaid prediction.
    """
    cc, rot, shift = map_correlation_per_sample(preds, truth, rotations)
    s = int(np.argmax(cc))
    return CorrelationMatch(float(cc[s]), s, int(rot[s]), tuple(int(v) for v in shift[s]))  # type: ignore[arg-type]


def invert(grids: np.ndarray) -> np.ndarray:
    """Maps inverted through the origin, rho(x) -> rho(-x), on the last three (grid) axes.

    Voxel i goes to (-i) mod N, so the origin voxel stays in place. A powder pattern is the same for
    a structure and its inverse (Friedel's law), so for chiral structures the inverted map is an
    equally valid answer (the enantiomorph).
    """
    g = np.asarray(grids)
    axes = (-3, -2, -1)
    return np.roll(np.flip(g, axis=axes), 1, axis=axes)


def map_correlation(pred: ArrayLike, truth: ArrayLike, rotations: Sequence[GridRotation] | None = None) -> float:
    """Pearson correlation of one grid with the truth, maximised over the rotations (default the cube's 24)
    and all shifts."""
    p = _as_tensor(pred)
    return map_correlation_batch(p[None], truth, rotations).cc


# ---------------------------------------------------------------------------------------------
# SSIM and PSNR exactly as scikit-image computes them


def data_range_of(truth: ArrayLike) -> float:
    """The paper's (and skimage's) data_range: truth.max() - truth.min() in e/A^3."""
    t = _as_tensor(truth)
    return float(t.max() - t.min())


def _box_valid(x: torch.Tensor, w: int = SSIM_WIN) -> torch.Tensor:
    """Mean over every w^3 window lying fully inside the last three axes (float64).

    These are exactly the voxels skimage keeps after cropping (w - 1) / 2 from each face, so the
    boundary mode of its uniform_filter never matters.
    """
    for dim in (x.ndim - 1, x.ndim - 2, x.ndim - 3):
        x = x.unfold(dim, w, 1).sum(-1)
    return x.div_(w**3)


def _rotation_stack(x: torch.Tensor, rotations: Sequence[GridRotation] | None = None) -> torch.Tensor:
    """(R, N, N, N) copies of ``x`` under every rotation (default the cube's 24).

    numpy flips are views, so the stack costs one copy (torch.flip would copy once more).
    """
    xn = x.numpy()
    return torch.from_numpy(np.stack([rotate(xn, r) for r in rotations_or_cube(rotations)]))


def _ssim_from_stats(ux: torch.Tensor, vx: torch.Tensor, uy: torch.Tensor, vy: torch.Tensor,
                     uxy: torch.Tensor, data_range: float) -> torch.Tensor:
    """Mean SSIM over the valid region from window statistics (vx, vy already sample variances).

    Consumes (overwrites) ``uxy`` and ``vx``: in-place arithmetic halves the time on 24 x 44^3 maps.
    """
    cov_norm = SSIM_WIN**3 / (SSIM_WIN**3 - 1)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    uxuy = ux * uy
    a2 = uxy.sub_(uxuy).mul_(2 * cov_norm).add_(c2)  # 2 vxy + C2
    num = uxuy.mul_(2).add_(c1).mul_(a2)  # (2 ux uy + C1)(2 vxy + C2)
    b1 = (ux * ux).add_(uy * uy).add_(c1)
    den = b1.mul_(vx.add_(vy).add_(c2))
    return num.div_(den).mean(dim=(-3, -2, -1))


def _window_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cov_norm = SSIM_WIN**3 / (SSIM_WIN**3 - 1)
    u = _box_valid(x)
    return u, cov_norm * (_box_valid(x * x) - u * u)


def ssim3d(pred_batch: ArrayLike, truth: ArrayLike, data_range: float | None = None) -> np.ndarray:
    """3-D SSIM of each prediction against the truth, equal to skimage's structural_similarity.

    Same as ``skimage.metrics.structural_similarity(truth, pred, data_range=truth.max() - truth.min())``
    (7-voxel uniform window, K1 0.01, K2 0.03, sample covariance, mean over the cropped interior).

    Args:
        pred_batch: (B, N, N, N) predictions.
        truth: (N, N, N) true grid.
        data_range: e/A^3; default truth.max() - truth.min().

    Returns:
        (B,) float64 SSIM.
    """
    p = _as_tensor(pred_batch)
    t = _as_tensor(truth)
    _check_cubes(p, t, batched=True)
    if t.shape[-1] < SSIM_WIN:
        raise InputError(f"grid {t.shape[-1]} is smaller than the {SSIM_WIN}-voxel SSIM window")
    dr = data_range_of(t) if data_range is None else float(data_range)
    ux, vx = _window_stats(p)
    uy, vy = _window_stats(t)
    return _ssim_from_stats(ux, vx, uy, vy, _box_valid(p * t), dr).numpy()


def psnr(pred_batch: ArrayLike, truth: ArrayLike, data_range: float | None = None) -> np.ndarray:
    """(B,) PSNR in dB, equal to skimage's peak_signal_noise_ratio(truth, pred, data_range=...).

    ``data_range`` defaults to truth.max() - truth.min(); an exact match gives +inf.
    """
    p = _as_tensor(pred_batch)
    t = _as_tensor(truth)
    _check_cubes(p, t, batched=True)
    dr = data_range_of(t) if data_range is None else float(data_range)
    mse = ((p - t) ** 2).mean(dim=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(dr**2 / mse.numpy())


def paper_scores_per_rotation(preds: ArrayLike, truth: ArrayLike, rotations: Sequence[GridRotation] | None = None
                              ) -> tuple[np.ndarray, np.ndarray]:
    """SSIM and PSNR of every sample under every rotation (default the cube's 24), no shifts: two (S, R) arrays.

    Window means and variances commute with the axis permutations and flips (the window is a cube and
    the kept interior is centred), so for those only the cross term is filtered once per rotation;
    the hexagonal rotations shear the window, so their maps are filtered whole.
    """
    p = _as_tensor(preds)
    t = _as_tensor(truth)
    _check_cubes(p, t, batched=True)
    if t.shape[-1] < SSIM_WIN:
        raise InputError(f"grid {t.shape[-1]} is smaller than the {SSIM_WIN}-voxel SSIM window")
    rots = rotations_or_cube(rotations)
    commute = all(isinstance(r, Rotation) for r in rots)
    dr = data_range_of(t)
    uy, vy = _window_stats(t)
    ssim = np.zeros((len(p), len(rots)))
    mse = np.zeros((len(p), len(rots)))
    tn = t.numpy()
    for s in range(len(p)):
        stack = np.stack([rotate(p[s].numpy(), r) for r in rots])  # numpy: flips are views, one copy
        diff = stack - tn
        mse[s] = np.einsum("rijk,rijk->r", diff, diff) / tn.size
        if commute:
            ux, vx = _window_stats(p[s])
            ux, vx = _rotation_stack(ux, rots), _rotation_stack(vx, rots)
        else:
            ux, vx = _window_stats(torch.from_numpy(stack))
        uxy = _box_valid(torch.from_numpy(np.multiply(stack, tn, out=stack)))
        ssim[s] = _ssim_from_stats(ux, vx, uy, vy, uxy, dr).numpy()
    with np.errstate(divide="ignore"):
        return ssim, 10.0 * np.log10(dr**2 / mse)


def paper_scores(preds: ArrayLike, truth: ArrayLike, rotations: Sequence[GridRotation] | None = None
                 ) -> dict[str, float]:
    """The paper's protocol: best SSIM and best PSNR, each maximised over the rotations (default the cube's
    24) x S samples."""
    ssim, ps = paper_scores_per_rotation(preds, truth, rotations)
    return {"ssim": float(ssim.max()), "psnr": float(ps.max())}


@dataclass(frozen=True)
class CrystalScore:
    """All scores of the S samples predicted for one crystal.

    Sample 0 is the posterior mean, the one answer a user gets without the truth; the best over
    samples (``cc``, ``ssim``, ``psnr``) is picked against the truth, an oracle no user has.

    Attributes:
        cc: best map correlation (rotations, shifts, samples): oracle pick.
        ssim: best SSIM (rotations, samples; paper protocol): oracle pick.
        psnr: best PSNR in dB (rotations, samples; maximised independently of SSIM): oracle pick.
        best_sample_cc, rotation_cc, shift_cc: where the best correlation was found.
        best_sample_ssim, rotation_ssim: where the best SSIM was found.
        per_sample_cc, per_sample_ssim, per_sample_psnr: each sample's best over rotations (and shifts
            for cc); element 0 is the posterior mean's.
        ssim_aligned: SSIM of the best-correlated sample placed where the correlation put it (its
            rotation and origin shift): the SSIM with the origin convention taken out, which the
            paper's protocol (no shifts) leaves in.
        ssim_aligned_posterior_mean: the same for sample 0.
    """

    cc: float
    ssim: float
    psnr: float
    best_sample_cc: int
    best_sample_ssim: int
    rotation_cc: int
    shift_cc: tuple[int, int, int]
    rotation_ssim: int
    per_sample_cc: tuple[float, ...]
    per_sample_ssim: tuple[float, ...]
    per_sample_psnr: tuple[float, ...]
    ssim_aligned: float
    ssim_aligned_posterior_mean: float

    @property
    def cc_posterior_mean(self) -> float:
        """Map correlation of sample 0 (the posterior mean)."""
        return self.per_sample_cc[0]

    @property
    def ssim_posterior_mean(self) -> float:
        """Paper-protocol SSIM of sample 0."""
        return self.per_sample_ssim[0]

    @property
    def psnr_posterior_mean(self) -> float:
        """Paper-protocol PSNR (dB) of sample 0."""
        return self.per_sample_psnr[0]

    def as_dict(self) -> dict:
        """JSON-ready plain types."""
        return asdict(self)


def score_predictions(preds: ArrayLike, truth: ArrayLike,
                      rotations: Sequence[GridRotation] | None = None) -> CrystalScore:
    """Map correlation, SSIM and PSNR of (S, N, N, N) samples against the (N, N, N) truth, over the
    lattice's rotations (:func:`lattice_rotations`; default the cube's 24)."""
    rots = rotations_or_cube(rotations)
    cc, rot, shift = map_correlation_per_sample(preds, truth, rots)
    ssim, ps = paper_scores_per_rotation(preds, truth, rots)
    s_cc = int(np.argmax(cc))
    s_ssim, r_ssim = (int(v) for v in np.unravel_index(int(np.argmax(ssim)), ssim.shape))
    p = _as_tensor(preds)
    picks = [0] if s_cc == 0 else [0, s_cc]
    aligned = [align(p[s], int(rot[s]), tuple(int(v) for v in shift[s]), rots) for s in picks]
    aligned_ssim = ssim3d(torch.stack(aligned), truth)
    return CrystalScore(
        cc=float(cc[s_cc]),
        ssim=float(ssim.max()),
        psnr=float(ps.max()),
        best_sample_cc=s_cc,
        best_sample_ssim=s_ssim,
        rotation_cc=int(rot[s_cc]),
        shift_cc=tuple(int(v) for v in shift[s_cc]),  # type: ignore[arg-type]
        rotation_ssim=r_ssim,
        per_sample_cc=tuple(float(v) for v in cc),
        per_sample_ssim=tuple(float(v) for v in ssim.max(axis=1)),
        per_sample_psnr=tuple(float(v) for v in ps.max(axis=1)),
        ssim_aligned=float(aligned_ssim[-1]),
        ssim_aligned_posterior_mean=float(aligned_ssim[0]),
    )
