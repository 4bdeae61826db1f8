"""Scores of a predicted CMED grid against the true one: map correlation, 3-D SSIM and PSNR.

Two protocols:

- the paper's (:func:`paper_scores`): SSIM and PSNR (scikit-image defaults, data_range from the
  truth) maximised independently over the 24 proper rotations of the cube and the latent samples,
  no origin shifts. A constant map passes this SSIM when densities are sharp, so it is reported
  for comparison only;
- ours (:func:`map_correlation_batch`): the Pearson map correlation maximised over the 24
  rotations, the samples and every integer origin shift (one batched FFT cross-correlation).
  A constant map scores 0.

Rotations act on the grid indices exactly as compositions of ``np.rot90`` do (index i -> N-1-i on
a flipped axis), i.e. about the grid centre. All grids are cubes (N, N, N), axes (a, b, c).
Densities are in e/A^3; every score is dimensionless except PSNR (dB).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch

from powdersolve.errors import InputError

#: scikit-image structural_similarity defaults (uniform window, sample covariance).
SSIM_WIN = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03

ArrayLike = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class Rotation:
    """A proper rotation of the cube acting on grid indices.

    ``rotate(g, r)`` transposes the three grid axes by ``perm`` and then reverses the axes whose
    sign is -1: output index j (centred) = ``matrix`` @ input index i (centred).
    """

    perm: tuple[int, int, int]
    signs: tuple[int, int, int]

    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) signed permutation matrix, det +1."""
        m = np.zeros((3, 3), dtype=np.int64)
        for d in range(3):
            m[d, self.perm[d]] = self.signs[d]
        return m

    def compose(self, first: Rotation) -> Rotation:
        """The rotation ``self`` applied after ``first`` (matrix ``self.matrix @ first.matrix``)."""
        perm = tuple(first.perm[self.perm[d]] for d in range(3))
        signs = tuple(self.signs[d] * first.signs[self.perm[d]] for d in range(3))
        return Rotation(perm, signs)  # type: ignore[arg-type]

    def inverse(self) -> Rotation:
        """The rotation undoing ``self``."""
        m = self.matrix.T
        return _from_matrix(m)


def _from_matrix(m: np.ndarray) -> Rotation:
    perm = tuple(int(np.flatnonzero(m[d])[0]) for d in range(3))
    signs = tuple(int(m[d, perm[d]]) for d in range(3))
    return Rotation(perm, signs)  # type: ignore[arg-type]


def cube_rotations() -> list[Rotation]:
    """The 24 proper rotations of the cube (signed axis permutations with det +1), identity first."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            r = Rotation(perm, signs)  # type: ignore[arg-type]
            if round(np.linalg.det(r.matrix)) == 1:
                out.append(r)
    # permutations() and product() start with the identity, so out[0] is the identity.
    return out


def rotate(grid: ArrayLike, r: Rotation) -> ArrayLike:
    """Rotate the last three (cubic) axes of a numpy array or torch tensor by ``r``."""
    lead = grid.ndim - 3
    axes = tuple(range(lead)) + tuple(lead + p for p in r.perm)
    flips = tuple(lead + d for d in range(3) if r.signs[d] < 0)
    if isinstance(grid, torch.Tensor):
        out = grid.permute(axes)
        return out.flip(flips) if flips else out
    out = np.transpose(grid, axes)
    return np.flip(out, flips) if flips else out


def align(pred: ArrayLike, rotation: int | Rotation, shift: tuple[int, int, int]) -> ArrayLike:
    """The prediction rotated then rolled by ``shift`` voxels, as matched by :func:`map_correlation_batch`.

    ``align(pred, r, s)[x] = rotate(pred, r)[x - s]`` (periodic), so it overlays the truth.
    """
    r = cube_rotations()[rotation] if isinstance(rotation, int) else rotation
    out = rotate(pred, r)
    dims = (-3, -2, -1)
    if isinstance(out, torch.Tensor):
        return torch.roll(out, tuple(int(s) for s in shift), dims)
    return np.roll(out, tuple(int(s) for s in shift), dims)


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


def map_correlation_per_sample(preds: ArrayLike, truth: ArrayLike
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best correlation of each sample over the 24 rotations and all N^3 integer shifts.

    Args:
        preds: (S, N, N, N) predicted grids.
        truth: (N, N, N) true grid.

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
        stack = _rotation_stack(x.float())
        # c[k] = sum_x a(x - k) b(x) = irfft(conj(A) B)[k]: a rolled by k overlays b.
        xc = torch.fft.irfftn(torch.conj(torch.fft.rfftn(stack, dim=(-3, -2, -1))) * t_hat,
                              s=(n, n, n), dim=(-3, -2, -1))
        flat = int(torch.argmax(xc.reshape(-1)))
        r, k = divmod(flat, n**3)
        cc[s] = float(xc.reshape(-1)[flat]) / (x_norm * t_norm)
        best_rot[s] = r
        best_shift[s] = np.unravel_index(k, (n, n, n))
    return np.clip(cc, -1.0, 1.0), best_rot, best_shift


def map_correlation_batch(preds: ArrayLike, truth: ArrayLike) -> CorrelationMatch:
    """Best Pearson map correlation over samples, the 24 rotations and all integer origin shifts.

    ``align(preds[sample], rotation, shift)`` is the overlaid prediction.
    """
    cc, rot, shift = map_correlation_per_sample(preds, truth)
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


def map_correlation(pred: ArrayLike, truth: ArrayLike) -> float:
    """Pearson correlation of one grid with the truth, maximised over 24 rotations and all shifts."""
    p = _as_tensor(pred)
    return map_correlation_batch(p[None], truth).cc


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


def _rotation_stack(x: torch.Tensor) -> torch.Tensor:
    """(24, N, N, N) copies of ``x`` under every cube rotation.

    numpy flips are views, so the stack costs one copy (torch.flip would copy once more).
    """
    xn = x.numpy()
    return torch.from_numpy(np.stack([rotate(xn, r) for r in cube_rotations()]))


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


def paper_scores_per_rotation(preds: ArrayLike, truth: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """SSIM and PSNR of every sample under every rotation, no shifts: two (S, 24) arrays.

    Window means and variances commute with the rotations (the window is a cube and the kept
    interior is centred), so only the cross term is filtered once per rotation.
    """
    p = _as_tensor(preds)
    t = _as_tensor(truth)
    _check_cubes(p, t, batched=True)
    if t.shape[-1] < SSIM_WIN:
        raise InputError(f"grid {t.shape[-1]} is smaller than the {SSIM_WIN}-voxel SSIM window")
    rots = cube_rotations()
    dr = data_range_of(t)
    uy, vy = _window_stats(t)
    ssim = np.zeros((len(p), len(rots)))
    mse = np.zeros((len(p), len(rots)))
    tn = t.numpy()
    for s in range(len(p)):
        ux, vx = _window_stats(p[s])
        stack = np.stack([rotate(p[s].numpy(), r) for r in rots])  # numpy: flips are views, one copy
        diff = stack - tn
        mse[s] = np.einsum("rijk,rijk->r", diff, diff) / tn.size
        uxy = _box_valid(torch.from_numpy(np.multiply(stack, tn, out=stack)))
        ssim[s] = _ssim_from_stats(_rotation_stack(ux), _rotation_stack(vx), uy, vy, uxy, dr).numpy()
    with np.errstate(divide="ignore"):
        return ssim, 10.0 * np.log10(dr**2 / mse)


def paper_scores(preds: ArrayLike, truth: ArrayLike) -> dict[str, float]:
    """The paper's protocol: best SSIM and best PSNR, each maximised over 24 rotations x S samples."""
    ssim, ps = paper_scores_per_rotation(preds, truth)
    return {"ssim": float(ssim.max()), "psnr": float(ps.max())}


@dataclass(frozen=True)
class CrystalScore:
    """All scores of the S samples predicted for one crystal.

    Attributes:
        cc: best map correlation (rotations, shifts, samples).
        ssim: best SSIM (rotations, samples; paper protocol).
        psnr: best PSNR in dB (rotations, samples; maximised independently of SSIM).
        best_sample_cc, rotation_cc, shift_cc: where the best correlation was found.
        best_sample_ssim, rotation_ssim: where the best SSIM was found.
        per_sample_cc, per_sample_ssim: each sample's best over rotations (and shifts for cc).
        ssim_aligned: SSIM of the best-correlated sample placed where the correlation put it (its
            rotation and origin shift): the SSIM with the origin convention taken out, which the
            paper's protocol (no shifts) leaves in.
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
    ssim_aligned: float

    def as_dict(self) -> dict:
        """JSON-ready plain types."""
        return asdict(self)


def score_predictions(preds: ArrayLike, truth: ArrayLike) -> CrystalScore:
    """Map correlation, SSIM and PSNR of (S, N, N, N) samples against the (N, N, N) truth."""
    cc, rot, shift = map_correlation_per_sample(preds, truth)
    ssim, ps = paper_scores_per_rotation(preds, truth)
    s_cc = int(np.argmax(cc))
    s_ssim, r_ssim = (int(v) for v in np.unravel_index(int(np.argmax(ssim)), ssim.shape))
    aligned = align(preds[s_cc], int(rot[s_cc]), tuple(int(v) for v in shift[s_cc]))
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
        ssim_aligned=float(ssim3d(aligned[None], truth)[0]),
    )
