"""Le Bail intensity extraction: per-reflection intensities of a powder pattern from its cell alone.

Given the cell, the lattice centring (or a space group) and the wavelength, every allowed reflection
gets a free intensity. The profile (cell, zero shift, TCH widths of
:class:`powdersolve.diffraction.peakshape.PeakProfile`, Chebyshev background) is refined first by
variable projection (Pawley: at every step the intensities and background are the linear least-squares
solution), which converges from a cell a little off. The intensities are then Le Bail (1988)
iterations at that profile, which share the observed counts at each point among the reflections there
in proportion to their current calculated contributions,

    I_k <- I_k * sum_i phi_ik (y_i - b_i) / ycalc_peaks_i  /  sum_i phi_ik,

with phi_ik the reflection's peak function per unit intensity (line weights x Lorentz-polarisation x
unit-area profile): always positive, and overlapped intensity split by the current estimates. Large
cells (more than ``LeBailConfig.max_pawley`` reflections) use the classic alternation of Le Bail
iterations and profile refinement at fixed intensities instead. Reflections whose d-spacings coincide
for every metric of the crystal system (e.g. cubic 333 and 511) cannot be told apart by any powder
fit and are one entry.

Units: 2-theta in degrees, d in Angstrom, intensities in the pattern's counts x degrees divided by the
Lorentz-polarisation factor (so intensity x LP(2-theta) is the integrated area of the K-alpha1 peak;
proportional to multiplicity x |F|^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pymatgen.core import Lattice

from powdersolve.diffraction.leastsq import linear_fit, minimise, pattern_arrays, single_threaded_torch
from powdersolve.diffraction.peakshape import PeakProfile, ProfileStart, chebyshev_basis
from powdersolve.diffraction.refinable_cell import RefinableCell
from powdersolve.diffraction.reflections import distinct_reflections, system_of_cell
from powdersolve.errors import InputError
from powdersolve.structures.io import crystal_system

_DT = torch.float64


@dataclass(frozen=True)
class LeBailConfig:
    """Settings of :func:`le_bail`.

    Attributes:
        iterations: Le Bail intensity iterations after the profile refinement (per cycle when alternating).
        max_pawley: up to this many reflections the profile is refined by variable projection (Pawley,
            robust from a cell a little off, cost ~ reflections^2); above, it is refined so on the scan up to
            the first ``max_pawley`` reflections, then ``cycles`` alternations of Le Bail iterations and
            profile refinement at fixed intensities (positions only in the first third) run on the whole
            scan (0: alternation only).
        fwhm: starting FWHM (degrees) at low angle; eta: its starting Lorentz fraction.
        zero_shift: starting zero shift (degrees 2-theta), e.g. the indexer's.
        background_terms: Chebyshev background terms.
        refine_cell, refine_zero, refine_profile: what the profile refinement moves (profile: U, V, W, X, Y).
        lambda2: K-alpha2 wavelength (A) to model the doublet with ``kalpha2_ratio``; None: one line.
        max_iter: L-BFGS iterations per profile refinement stage (positions, then widths).
        ridge: relative ridge on the Pawley normal equations of the profile refinement.
        overlap: reflections closer than this many FWHM share an overlap group.
        window_fwhm: peaks are evaluated within this many widest FWHM.
    """

    iterations: int = 20
    max_pawley: int = 100
    cycles: int = 6
    fwhm: float = 0.1
    eta: float = 0.5
    zero_shift: float = 0.0
    background_terms: int = 8
    refine_cell: bool = True
    refine_zero: bool = True
    refine_profile: bool = True
    lambda2: float | None = None
    kalpha2_ratio: float = 0.5
    max_iter: int = 60
    ridge: float = 1e-8
    overlap: float = 0.5
    window_fwhm: float = 15.0

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise InputError("Le Bail needs at least one intensity iteration")
        if not (np.isfinite(self.fwhm) and 0.001 <= self.fwhm <= 5.0):
            raise InputError(f"starting FWHM {self.fwhm} deg is outside 0.001-5 deg")


@dataclass(frozen=True)
class LeBailReflection:
    """One extracted reflection (or set of reflections with d equal for every metric of the system).

    Attributes:
        hkl: Miller indices of a representative; d: spacing (A); two_theta: K-alpha1 position
            (degrees, zero shift included).
        multiplicity: reflections (Friedel mates included) sharing this entry.
        intensity: extracted intensity (counts x degrees / LP); esd: its standard uncertainty from
            counting statistics of the points it was extracted from.
        overlap_group: reflections closer than ``LeBailConfig.overlap`` FWHM share a group number;
            only the sum over a group is determined by the data.
    """

    hkl: tuple[int, int, int]
    d: float
    two_theta: float
    multiplicity: int
    intensity: float
    esd: float
    overlap_group: int


@dataclass(frozen=True)
class LeBailResult:
    """Extracted intensities and the fit.

    Attributes:
        reflections: in increasing 2-theta.
        rwp: weighted-profile R (fraction) of the whole pattern; rwp_net: the same with the
            background subtracted from the observed counts in the denominator (harder to make small).
        cell: refined (a, b, c, alpha, beta, gamma) in A and degrees.
        zero_shift: degrees 2-theta; uvw: Gaussian Caglioti (deg^2); xy: Lorentzian X, Y (deg).
        calc, background: on the observed grid.
    """

    reflections: list[LeBailReflection]
    rwp: float
    rwp_net: float
    cell: tuple[float, float, float, float, float, float]
    zero_shift: float
    uvw: tuple[float, float, float]
    xy: tuple[float, float]
    calc: np.ndarray
    background: np.ndarray


def _background_fit(peaks: torch.Tensor, obs: torch.Tensor, weight: torch.Tensor, basis: torch.Tensor,
                    with_scale: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted least squares of obs on [peaks (if with_scale)] + background basis: (calc, background)."""
    cols = [peaks[:, None] / torch.clamp(peaks.detach().max(), min=1e-300)] if with_scale else []
    design = torch.cat(cols + [basis], dim=1)
    coef = linear_fit(design, obs if with_scale else obs - peaks, weight)
    bkg = basis @ coef[len(cols):]
    return design @ coef + (0 if with_scale else peaks), bkg


def le_bail(two_theta: np.ndarray, intensity: np.ndarray, wavelength: float,
            cell: tuple[float, float, float, float, float, float] | np.ndarray,
            centring_or_spacegroup: str | int = "P", sigma: np.ndarray | None = None,
            config: LeBailConfig | None = None) -> LeBailResult:
    """Le Bail fit of a pattern: per-reflection intensities, refined cell and profile, and the Rwp.

    Args:
        two_theta: (n,) degrees, increasing. intensity: (n,) counts (or any linear unit).
        wavelength: Angstrom (K-alpha1 when ``config.lambda2`` models the doublet).
        cell: a, b, c (A), alpha, beta, gamma (degrees), conventional setting of the centring.
        centring_or_spacegroup: 'P', 'A', 'B', 'C', 'I', 'F', 'R' or a space-group number.
        sigma: (n,) standard uncertainties; default sqrt(counts) for counts, else unit weights.
        config: :class:`LeBailConfig`.
    """
    cfg = config or LeBailConfig()
    tt, y, sig = pattern_arrays(two_theta, intensity, sigma, min_points=20)
    if not np.all(np.diff(tt) > 0):
        raise InputError("Le Bail needs increasing 2-theta; sort the pattern")
    params = np.asarray(cell, dtype=np.float64).ravel()
    if params.shape != (6,) or not np.all(np.isfinite(params)) or np.any(params[:3] <= 0):
        raise InputError("cell must be six finite numbers: a b c (A) alpha beta gamma (degrees)")
    with single_threaded_torch():
        return _le_bail(tt, y, sig, float(wavelength), params, centring_or_spacegroup, cfg)


def _le_bail(tt: np.ndarray, y: np.ndarray, sig: np.ndarray, wavelength: float, params: np.ndarray,
             centring_or_spacegroup: str | int, cfg: LeBailConfig) -> LeBailResult:
    lengths, angles = params[:3], params[3:]
    system = crystal_system(centring_or_spacegroup) if not isinstance(centring_or_spacegroup, str) \
        else system_of_cell(lengths, angles)
    cellp = RefinableCell(lengths, angles, system)
    lines = ((wavelength, 1.0),) + (((cfg.lambda2, cfg.kalpha2_ratio),) if cfg.lambda2 else ())
    start = ProfileStart.from_pseudo_voigt(cfg.fwhm**2, cfg.eta, zero=cfg.zero_shift, lines=lines,
                                           window_fwhm=cfg.window_fwhm)
    peak = PeakProfile(tt, start)
    hkl, mult, _ = distinct_reflections(cellp, Lattice.from_parameters(*params), wavelength,
                                (float(tt.min()), float(tt.max())), centring_or_spacegroup)
    obs, weight = torch.as_tensor(y), torch.as_tensor(1.0 / sig**2)
    basis = chebyshev_basis(tt, cfg.background_terms)
    for p in list(cellp.parameters()) + list(peak.parameters()):
        p.requires_grad_(False)
    n, n_refl = len(tt), len(hkl)
    if n_refl <= cfg.max_pawley:
        inten = _pawley_profile(cellp, peak, hkl, obs, weight, basis, cfg)
        inten = _le_bail_cycles(cellp, peak, hkl, inten, obs, weight, basis, cfg.iterations)
    else:
        if cfg.max_pawley > 0:
            _low_angle_profile(cellp, peak, hkl, tt, obs, weight, start, cfg)
        inten = _alternating_profile(cellp, peak, hkl, obs, weight, basis, cfg)
    with torch.no_grad():
        q2 = cellp.q2(hkl)
        idx, vals, pos = peak.peaks(q2)
        ypk = _peak_sum(idx, vals, inten, n)
        calc, bkg = _background_fit(ypk, obs, weight, basis, with_scale=False)
        # d I_k / d y_i = I_k phi_ik / (ycalc_peaks_i sum_i phi_ik): propagate counting errors.
        norm = torch.clamp(vals.sum(dim=1), min=1e-300)
        share = vals * inten[:, None] / torch.clamp(ypk, min=1e-300)[idx] / norm[:, None]
        esd = torch.sqrt(torch.sum(share**2 * torch.as_tensor(sig**2)[idx], dim=1))
        fwhm, _ = peak.width(torch.asin(torch.clamp(torch.sqrt(q2) * wavelength / 2, max=1 - 1e-12)))
    return _result(tt, y, sig, calc.numpy(), bkg.numpy(), hkl.numpy(), mult, q2.numpy(), pos.numpy(),
                   inten.numpy(), esd.numpy(), fwhm.numpy(), cellp, peak, cfg)


def _stages(cellp: RefinableCell, peak: PeakProfile, cfg: LeBailConfig) -> list[list[torch.nn.Parameter]]:
    """Parameters of the two refinement stages: positions (cell, zero), then positions and widths."""
    pos = [p for p, on in ((cellp.p_len, cfg.refine_cell), (cellp.p_ang, cfg.refine_cell),
                           (peak.p_zero, cfg.refine_zero)) if on and p.numel() > 0]
    widths = [peak.p_gauss, peak.p_lorentz] if cfg.refine_profile else []
    return [pos, pos + widths]


def _low_angle_profile(cellp: RefinableCell, peak: PeakProfile, hkl: torch.Tensor, tt: np.ndarray,
                       obs: torch.Tensor, weight: torch.Tensor, start: ProfileStart, cfg: LeBailConfig) -> None:
    """Pawley profile from the scan up to the first ``max_pawley`` reflections, copied into ``peak``.

    The low-angle part fixes the cell, zero shift and U..Y about as well as the whole scan at a fraction
    of the cost; Le Bail cycles over the whole scan then start from positions that are right.
    """
    with torch.no_grad():
        pos = peak.positions(cellp.q2(hkl))[0][0].numpy()
    m = int(np.searchsorted(tt, np.sort(pos)[cfg.max_pawley]))
    if m <= 20:
        return
    part = PeakProfile(tt[:m], start)
    inside = torch.as_tensor(np.flatnonzero(pos < tt[m - 1]))
    _pawley_profile(cellp, part, hkl[inside], obs[:m], weight[:m], chebyshev_basis(tt[:m], cfg.background_terms),
                    cfg)
    peak.load_state_dict(part.state_dict())


def _peak_sum(idx: torch.Tensor, vals: torch.Tensor, inten: torch.Tensor, n: int) -> torch.Tensor:
    """Counts on the n-point grid of windowed peaks (idx, vals per unit intensity) with intensities ``inten``."""
    return torch.zeros(n, dtype=_DT).index_add(0, idx.reshape(-1), (vals * inten[:, None]).reshape(-1))


def _pawley_profile(cellp: RefinableCell, peak: PeakProfile, hkl: torch.Tensor, obs: torch.Tensor,
                    weight: torch.Tensor, basis: torch.Tensor, cfg: LeBailConfig) -> torch.Tensor:
    """Refine the profile by variable projection (Pawley); return positive starting intensities.

    Intensities and background are re-solved by least squares at every step, so positions and widths
    never fit intensities shared out at wrong positions (the trap of alternating Le Bail and profile
    cycles from a cell a little off). Costs reflections^2 x points per step: for small cells.
    """
    n, n_refl = len(obs), len(hkl)
    rows = torch.arange(n_refl)
    denom = torch.sum(weight * obs**2)

    def pawley() -> tuple[torch.Tensor, torch.Tensor]:
        idx, vals, _ = peak.peaks(cellp.q2(hkl))
        cols = rows[:, None].expand_as(idx).reshape(-1)
        phi = torch.zeros(n, n_refl, dtype=_DT).index_put((idx.reshape(-1), cols), vals.reshape(-1), accumulate=True)
        design = torch.cat([phi, basis], dim=1)
        # A relative ridge keeps nearly coincident reflections (a singular pair) from blowing up.
        coef = linear_fit(design, obs, weight, cfg.ridge)
        return design @ coef, coef[:n_refl]

    for active in _stages(cellp, peak, cfg):
        if active:
            minimise(active, lambda: torch.sum(weight * (obs - pawley()[0]) ** 2) / denom, cfg.max_iter)
    with torch.no_grad():
        # A nearly coincident pair gets a + and a - from the least squares: start both at the pair's mean.
        return _positive_start(pawley()[1], peak, cellp.q2(hkl), cfg.overlap)


def _alternating_profile(cellp: RefinableCell, peak: PeakProfile, hkl: torch.Tensor, obs: torch.Tensor,
                         weight: torch.Tensor, basis: torch.Tensor, cfg: LeBailConfig) -> torch.Tensor:
    """Classic Le Bail: cycles of intensity iterations and profile refinement at fixed intensities."""
    inten = torch.ones(len(hkl), dtype=_DT) * max(float(obs.max() - obs.min()), 1.0) * 1e-3
    denom = torch.sum(weight * obs**2)

    def loss(fixed: torch.Tensor) -> torch.Tensor:
        calc = _background_fit(peak.render(cellp.q2(hkl), fixed)[0], obs, weight, basis, with_scale=True)[0]
        return torch.sum(weight * (obs - calc) ** 2) / denom

    stages = _stages(cellp, peak, cfg)
    for cycle in range(cfg.cycles):
        inten = _le_bail_cycles(cellp, peak, hkl, inten, obs, weight, basis, cfg.iterations)
        active = stages[0] if cycle < cfg.cycles // 3 else stages[1]
        if active:
            minimise(active, lambda fixed=inten: loss(fixed), cfg.max_iter)
    return _le_bail_cycles(cellp, peak, hkl, inten, obs, weight, basis, cfg.iterations)


def _le_bail_cycles(cellp: RefinableCell, peak: PeakProfile, hkl: torch.Tensor, inten: torch.Tensor,
                    obs: torch.Tensor, weight: torch.Tensor, basis: torch.Tensor, iterations: int) -> torch.Tensor:
    """Le Bail iterations at a fixed profile: each point's net counts shared in proportion to the peaks there."""
    n = len(obs)
    with torch.no_grad():
        idx, vals, _ = peak.peaks(cellp.q2(hkl))
        norm = torch.clamp(vals.sum(dim=1), min=1e-300)
        for _ in range(iterations):
            ypk = _peak_sum(idx, vals, inten, n)
            _, bkg = _background_fit(ypk, obs, weight, basis, with_scale=False)
            # Net counts are shared unclipped: clipping each point at zero would add the positive half
            # of the background noise under every peak window to its intensity.
            ratio = (obs - bkg) / torch.clamp(ypk, min=1e-12 * float(ypk.max()) + 1e-300)
            inten = inten * (vals * ratio[idx]).sum(dim=1) / norm
            inten = torch.clamp(inten, min=1e-9 * float(inten.max()))
    return inten


def _positive_start(inten: torch.Tensor, peak: PeakProfile, q2: torch.Tensor, overlap: float) -> torch.Tensor:
    """Positive starting intensities: each overlap group's (clipped) total shared equally by its members."""
    pos, theta, _ = peak.positions(q2)
    fwhm, _ = peak.width(theta[0])
    order = torch.argsort(pos[0])
    gap = torch.diff(pos[0][order]) > overlap * fwhm[order][1:]
    group = torch.zeros(len(q2), dtype=torch.long)
    group[order] = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(gap.long(), 0)])
    total = torch.zeros(int(group.max()) + 1, dtype=_DT).index_add(0, group, inten)
    count = torch.bincount(group).to(_DT)
    start = torch.where(inten > 0, inten, torch.zeros_like(inten))
    mixed = torch.zeros_like(total).index_add(0, group, (inten <= 0).to(_DT)) > 0
    start = torch.where(mixed[group], torch.clamp(total[group], min=0.0) / count[group], start)
    return torch.clamp(start, min=1e-6 * float(start.max()))


def _result(tt: np.ndarray, y: np.ndarray, sig: np.ndarray, calc: np.ndarray, bkg: np.ndarray, hkl: np.ndarray,
            mult: np.ndarray, q2: np.ndarray, pos: np.ndarray, inten: np.ndarray, esd: np.ndarray,
            fwhm: np.ndarray, cellp: RefinableCell, peak: PeakProfile, cfg: LeBailConfig) -> LeBailResult:
    w = 1.0 / sig**2
    resid = np.sum(w * (y - calc) ** 2)
    rwp = float(np.sqrt(resid / max(np.sum(w * y**2), 1e-300)))
    rwp_net = float(np.sqrt(resid / max(np.sum(w * (y - bkg) ** 2), 1e-300)))
    inside = (pos >= tt.min()) & (pos <= tt.max())
    order = np.argsort(pos)
    order = order[inside[order]]
    gap = np.diff(pos[order]) > cfg.overlap * fwhm[order][1:]
    groups = np.concatenate([[0], np.cumsum(gap)]) if len(order) else np.zeros(0, dtype=int)
    refl = [LeBailReflection(tuple(int(v) for v in hkl[k]), float(1 / np.sqrt(q2[k])), float(pos[k]), int(mult[k]),
                             float(inten[k]), float(esd[k]), int(g)) for k, g in zip(order, groups)]
    with torch.no_grad():
        lengths, angles = cellp.lattice_parameters()
        uvw, xy = peak.uvw().tolist(), peak.xy().tolist()
    return LeBailResult(refl, rwp, rwp_net, tuple(lengths.tolist() + angles.tolist()),  # type: ignore[arg-type]
                        float(peak.zero()), tuple(uvw), tuple(xy), calc, bkg)  # type: ignore[arg-type]
