"""Rietveld-like refinement of a symmetrised structure against an observed powder pattern (torch, float64).

The structural part reuses the project's physics exactly: IT92 form factors
(:func:`powdersolve.scattering.form_factor_coefficients`), Miller indices from
:func:`powdersolve.scattering.hkl_sphere`, F(h) = sum_j occ_j f_j(s) exp(-B s^2) exp(2 pi i h.x_j) and
the unpolarised Lorentz-polarisation factor, so its sticks equal :func:`powdersolve.diffraction.sticks`
+ :func:`~powdersolve.diffraction.to_two_theta`. The profile (TCH pseudo-Voigt widths, asymmetry,
K-alpha doublet, zero shift and sample displacement) is :class:`powdersolve.diffraction.peakshape.PeakProfile`
and the cell :class:`powdersolve.diffraction.refinable_cell.RefinableCell`:

    y(2th) = scale * sum_k |F_k|^2 P_k sum_lines w LP Omega(2th - 2th_k,line) + Chebyshev background(2th)

with P_k the March-Dollase preferred-orientation weight (optional). Scale and background enter
linearly and are solved in closed form (weighted least squares) at every evaluation, so they never
need a starting value.

Refined (each optional): zero shift and sample displacement, lattice parameters tied by the crystal
system, atomic coordinates restricted to their site symmetry (:mod:`powdersolve.structures.orbits`),
one overall isotropic B (A^2), the profile widths (Gaussian U, V, W and Lorentzian X, Y), asymmetry
and the March-Dollase ratio.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from powdersolve.diffraction.leastsq import agreement, linear_fit, minimise, pattern_arrays, single_threaded_torch
from powdersolve.diffraction.peakshape import PeakProfile, ProfileStart, chebyshev_basis, march_dollase
from powdersolve.diffraction.refinable_cell import RefinableCell, metric
from powdersolve.diffraction.reflections import reflection_groups
from powdersolve.errors import TooLargeError
from powdersolve.scattering import form_factor_coefficients
from powdersolve.solve.fitplot import plot_fit as plot_fit  # re-exported: callers import it from here
from powdersolve.structures.io import crystal_system
from powdersolve.structures.orbits import site_constraints

_DT = torch.float64
#: Step sizes that make one unit of each scaled parameter a comparable change of the pattern.
_SCALE_XYZ = 5e-3  # fractional
_SCALE_B = 0.5  # A^2
_SCALE_PO = 0.05  # log of the March-Dollase ratio


@dataclass(frozen=True)
class RefineConfig:
    """Refinement settings.

    Attributes:
        u, v, w: starting Caglioti profile parameters (degrees^2 of 2-theta) of the whole peak.
        eta: starting Lorentzian fraction of the pseudo-Voigt (0 Gaussian, 1 Lorentzian). The start is
            split into Gaussian U, V, W and a Lorentzian X (Thompson-Cox-Hastings), which then refine.
        b_iso: starting overall isotropic B (A^2).
        background_terms: Chebyshev background terms (0 for none).
        refine_zero, refine_lattice, refine_coords, refine_b, refine_profile: which parameters move.
        refine_displacement: sample displacement (cos theta shift), with the zero shift.
        refine_asymmetry: Berar-Baldinozzi peak asymmetry, with the profile.
        lambda2: K-alpha2 wavelength (A) to model the doublet (intensity ``kalpha2_ratio``); None: one line.
        preferred_orientation: (h, k, l) of the March-Dollase axis whose ratio refines; None: random powder.
        keep_metric: the cell keeps every equality of its starting cell (equal lengths, angles at 60, 90 or
            120 degrees): a structure read in a lower space group than its lattice's (e.g. P1 in an indexed
            cubic cell) refines in that lattice's metric, which the pattern fixed, not in a split one; it
            also renders far fewer distinct reflections.
        zero_start: starting zero shift (degrees 2-theta), e.g. a screening fit's.
        zero_search: half-range (degrees) of the grid search for the zero shift around ``zero_start``
            before the gradient fit (0: start at ``zero_start``).
        max_iter: L-BFGS iterations per stage.
        tolerance: a stage stops when an iteration changes the loss (Rwp squared) by less than this;
            1e-9 is a relative change of ~1e-5 at Rwp 0.01. On 4 generated cubic solves it cut the
            loss evaluations by a quarter to a half and moved no ranking.
        symprec: spglib tolerance (A) to symmetrise the input and find its site symmetries.
        max_profile_elements: largest points x reflections matrix allowed (memory guard).
        window_fwhm: each peak is computed within this many FWHM of the widest peak (0: everywhere).
            At 15 the cut removes about 2% of the Lorentzian part of each peak.
        merge_equivalents: compute |F|^2 once per set of reflections the structure's symmetry makes equal
            (:func:`~powdersolve.diffraction.reflections.symmetry_equivalents`; not with preferred orientation,
            which tells them apart); False computes every reflection: the same pattern, slower.
    """

    u: float = 0.0
    v: float = 0.0
    w: float = 0.01
    eta: float = 0.5
    b_iso: float = 1.0
    background_terms: int = 4
    refine_zero: bool = True
    refine_lattice: bool = True
    refine_coords: bool = True
    refine_b: bool = True
    refine_profile: bool = False
    refine_displacement: bool = False
    refine_asymmetry: bool = False
    lambda2: float | None = None
    kalpha2_ratio: float = 0.5
    preferred_orientation: tuple[int, int, int] | None = None
    keep_metric: bool = True
    zero_start: float = 0.0
    zero_search: float = 0.3
    max_iter: int = 100
    tolerance: float = 1e-9
    symprec: float = 0.1
    max_profile_elements: int = 40_000_000
    window_fwhm: float = 15.0
    merge_equivalents: bool = True

    def profile_start(self, wavelength: float) -> ProfileStart:
        """The :class:`ProfileStart` these settings describe at ``wavelength`` (A)."""
        lines = ((float(wavelength), 1.0),)
        if self.lambda2 is not None:
            lines += ((float(self.lambda2), float(self.kalpha2_ratio)),)
        # The low-angle width sqrt(W) is split into Gaussian and Lorentzian parts; U and V scale the
        # Gaussian part as W does, X (constant in cos theta near the start) takes the Lorentzian share.
        g = ProfileStart.from_pseudo_voigt(self.w, self.eta)
        frac = g.w / max(self.w, 1e-12)
        return ProfileStart(u=self.u * frac, v=self.v * frac, w=g.w, x=g.x, zero=self.zero_start, lines=lines,
                            window_fwhm=self.window_fwhm)


@dataclass(frozen=True)
class RefineResult:
    """Refined structure and agreement indices.

    Attributes:
        structure: refined structure (conventional setting of the symmetrised input).
        zero_shift: degrees 2-theta added to calculated peak positions.
        scale: multiplies the calculated (electrons^2 x LP) intensities.
        b_iso: overall isotropic B (A^2).
        rwp, rp: weighted-profile and profile R factors (fractions, not %).
        gof: goodness of fit sqrt(chi^2 / (N - P)).
        calc: calculated pattern on the observed 2-theta grid (background included).
        background: the background part of ``calc``.
        ticks: 2-theta (degrees) of the reflections inside the range, zero shift included.
        uvw: final Gaussian Caglioti U, V, W (degrees^2).
        n_parameters: refined parameters, linear ones included.
        xy: final Lorentzian X, Y (degrees); displacement: cos theta shift (degrees 2-theta).
        po_ratio: March-Dollase ratio (1 = random powder).
    """

    structure: Structure
    zero_shift: float
    scale: float
    b_iso: float
    rwp: float
    rp: float
    gof: float
    calc: np.ndarray
    background: np.ndarray
    ticks: np.ndarray
    uvw: tuple[float, float, float] = (0.0, 0.0, 0.01)
    n_parameters: int = 0
    notes: list[str] = field(default_factory=list)
    xy: tuple[float, float] = (0.0, 0.0)
    displacement: float = 0.0
    po_ratio: float = 1.0


class PatternModel(torch.nn.Module):
    """Differentiable powder pattern of one structure on a fixed 2-theta grid.

    All angles in degrees of 2-theta, lengths in Angstrom, B in A^2. Parameters are stored scaled
    so that L-BFGS sees a well-conditioned problem. ``cell`` and ``peak`` hold the lattice and
    profile parameters.
    """

    def __init__(self, structure: Structure, two_theta: np.ndarray, wavelength: float,
                 config: RefineConfig, spacegroup: int) -> None:
        super().__init__()
        self.cfg = config
        self.wavelength = float(wavelength)
        self.tt = torch.as_tensor(np.asarray(two_theta, dtype=np.float64))
        lat = structure.lattice
        self.cell = RefinableCell(np.array(lat.abc), np.array(lat.angles), crystal_system(spacegroup),
                                  config.keep_metric)
        self.peak = PeakProfile(two_theta, config.profile_start(wavelength))
        self.orbits, self.reps = site_constraints(structure, config.symprec)
        # Atoms: one per (site, species) so that partial occupancies are kept.
        site, numbers, occ = [], [], []
        for i, st in enumerate(structure):
            for sp, amt in st.species.items():
                site.append(i)
                numbers.append(sp.Z)
                occ.append(float(amt))
        self.site = torch.as_tensor(np.array(site))
        self.site_species = [st.species for st in structure]
        self.species, inverse = np.unique(np.array(numbers), return_inverse=True)
        self.atom_species = torch.as_tensor(inverse)
        self.occ = torch.as_tensor(np.array(occ))
        a, b, c = form_factor_coefficients(self.species)
        self.ff_a, self.ff_b, self.ff_c = (torch.as_tensor(x) for x in (a, b, c))
        self.p_xyz = torch.nn.Parameter(torch.zeros(self.orbits.n_orbits, 3, dtype=_DT))
        self.p_b = torch.nn.Parameter(torch.tensor([config.b_iso / _SCALE_B], dtype=_DT))
        # r = 1 is a stationary point for cubic families (sum of 3 cos^2 - 1 over equivalents is 0): start beside it.
        self.p_po = torch.nn.Parameter(torch.full((1,), -0.4 if config.preferred_orientation else 0.0, dtype=_DT))
        self._setup_reflections(structure)
        self.bkg = chebyshev_basis(two_theta, config.background_terms)

    # --- geometry -------------------------------------------------------------------------------------
    def frac(self) -> torch.Tensor:
        """(n_sites, 3) fractional coordinates at the current parameters."""
        u = _SCALE_XYZ * self.p_xyz[torch.as_tensor(self.orbits.orbit)]
        return torch.as_tensor(self.orbits.x0) + torch.einsum("nij,nj->ni", torch.as_tensor(self.orbits.matrices), u)

    def _setup_reflections(self, structure: Structure) -> None:
        tt_max = float(self.tt.max()) + 2.0
        lam_max = max(lam for lam, _ in self.peak.lines)
        q_max = 2 * np.sin(np.radians(min(tt_max, 179.0)) / 2) / lam_max * 1.03
        merge = self.cfg.merge_equivalents and self.cfg.preferred_orientation is None
        refl = reflection_groups(structure.lattice, q_max, self.cell, self.orbits.rotations if merge else None)
        self.hkl, self.count = torch.as_tensor(refl.hkl.astype(np.float64)), torch.as_tensor(refl.count)
        self.group, self.group_first = torch.as_tensor(refl.group), torch.as_tensor(refl.first)
        self.n_groups = len(refl.first)
        if len(self.tt) * self.n_groups > self.cfg.max_profile_elements:
            raise TooLargeError(
                f"{len(self.tt)} points x {self.n_groups} reflections is too large to refine; "
                "give fewer points or a smaller 2-theta range")

    # --- physics --------------------------------------------------------------------------------------
    def b_iso(self) -> torch.Tensor:
        return _SCALE_B * self.p_b[0]

    def po_ratio(self) -> torch.Tensor:
        """March-Dollase ratio, exp(stored) so it stays positive."""
        return torch.exp(_SCALE_PO * self.p_po[0])

    def group_intensities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per group: 1/d^2 (1/A^2) and sum |F|^2 (both Friedel mates, electrons^2, March-Dollase weighted)."""
        q2 = self.cell.q2(self.hkl)
        s2_all = q2 / 4.0
        f_sp = torch.einsum("ek,emk->em", self.ff_a, torch.exp(-self.ff_b[:, None, :] * s2_all[None, :, None])) \
            + self.ff_c[:, None]  # (species, m)
        x = self.frac()[self.site]  # (atoms, 3)
        phase = 2 * torch.pi * (self.hkl @ x.T)  # (m, atoms)
        f_atom = f_sp[self.atom_species].T * self.occ[None, :]  # (m, atoms)
        re = torch.sum(f_atom * torch.cos(phase), dim=1)
        im = torch.sum(f_atom * torch.sin(phase), dim=1)
        inten = 2.0 * self.count * (re**2 + im**2) * torch.exp(-2 * self.b_iso() * s2_all)
        if self.cfg.preferred_orientation is not None:
            axis = torch.as_tensor(np.asarray(self.cfg.preferred_orientation, dtype=np.float64))
            gstar = torch.linalg.inv(metric(*self.cell.lattice_parameters()))
            dot = self.hkl @ gstar @ axis
            cos2 = dot**2 / (q2 * (axis @ gstar @ axis))
            inten = inten * march_dollase(cos2, self.po_ratio())
        i_g = torch.zeros(self.n_groups, dtype=_DT).index_add(0, self.group, inten)
        return q2[self.group_first], i_g

    def reflection_intensities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per group: 2-theta (degrees, first line, no zero shift) and sum |F|^2 x LP."""
        q2, i_g = self.group_intensities()
        sin_th = torch.sqrt(q2) * self.wavelength / 2
        ok = sin_th < 1.0
        th = torch.asin(torch.clamp(sin_th, max=1.0 - 1e-12))
        lp = (1 + torch.cos(2 * th) ** 2) / (torch.sin(th) ** 2 * torch.cos(th))
        return torch.rad2deg(2 * th), torch.where(ok, i_g * lp, torch.zeros_like(i_g))

    def zero(self) -> torch.Tensor:
        return self.peak.zero()

    def uvw(self) -> torch.Tensor:
        return self.peak.uvw()

    def profile(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Structural pattern (before scale and background) on the grid, and the peak positions (deg)."""
        q2, i_g = self.group_intensities()
        return self.peak.render(q2, i_g)

    def fit_linear(self, obs: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Calculated pattern with scale and background solved by weighted least squares.

        Returns (calc, scale, background).
        """
        y, _ = self.profile()
        norm = torch.clamp(y.detach().max(), min=1e-300)
        basis = torch.cat([(y / norm)[:, None], self.bkg], dim=1)
        coef = linear_fit(basis, obs, weight)
        calc = basis @ coef
        return calc, coef[0] / norm, self.bkg @ coef[1:]

    def structure(self) -> Structure:
        """The structure at the current parameters."""
        with torch.no_grad():
            lengths, ang = self.cell.lattice_parameters()
            frac = self.frac().numpy() % 1.0
        lat = Lattice.from_parameters(*lengths.tolist(), *ang.tolist())
        return Structure(lat, self.site_species, frac)


def _prepare(structure: Structure, symprec: float) -> tuple[Structure, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sga = SpacegroupAnalyzer(structure, symprec=symprec)
            return sga.get_refined_structure(), int(sga.get_space_group_number())
        except Exception:  # disordered or degenerate input: refine as given, in P1
            return structure.copy(), 1


def build_model(structure: Structure, two_theta: np.ndarray, wavelength: float,
                config: RefineConfig | None = None) -> PatternModel:
    """A :class:`PatternModel` of the symmetrised conventional cell of ``structure``."""
    cfg = config or RefineConfig()
    conv, sg = _prepare(structure, cfg.symprec)
    return PatternModel(conv, two_theta, wavelength, cfg, sg)


def simulate_pattern(structure: Structure, two_theta: np.ndarray, wavelength: float,
                     config: RefineConfig | None = None, *, zero_shift: float = 0.0,
                     scale: float = 1.0, background: float = 0.0) -> np.ndarray:
    """Profile pattern of ``structure`` on ``two_theta`` (degrees): scale x model + constant background."""
    model = build_model(structure, two_theta, wavelength, config)
    model.peak.set_zero(zero_shift)
    with torch.no_grad():
        y, _ = model.profile()
    return scale * y.numpy() + background


def refine(structure: Structure, two_theta: np.ndarray, observed: np.ndarray, wavelength: float,
           sigma: np.ndarray | None = None, config: RefineConfig | None = None) -> RefineResult:
    """Refine ``structure`` against an observed pattern.

    Args:
        structure: starting structure; it is symmetrised (spglib, ``config.symprec``) to its
            conventional standard cell first, and refined in that setting.
        two_theta: (n,) degrees, increasing.
        observed: (n,) intensities (counts or arbitrary units).
        wavelength: Angstrom of the (first) line; ``config.lambda2`` adds a K-alpha2 line.
        sigma: (n,) standard uncertainties; default sqrt(counts) for counts, else unit weights.
        config: :class:`RefineConfig`.
    """
    with single_threaded_torch():
        return _refine(structure, two_theta, observed, wavelength, sigma, config or RefineConfig())


def _refine(structure: Structure, two_theta: np.ndarray, observed: np.ndarray, wavelength: float,
            sigma: np.ndarray | None, cfg: RefineConfig) -> RefineResult:
    tt, obs_np, sig = pattern_arrays(two_theta, observed, sigma)
    model = build_model(structure, tt, wavelength, cfg)
    obs = torch.as_tensor(obs_np)
    weight = torch.as_tensor(1.0 / sig**2)
    denom = torch.sum(weight * obs**2)

    def loss_fn() -> torch.Tensor:
        calc, _, _ = model.fit_linear(obs, weight)
        return torch.sum(weight * (obs - calc) ** 2) / denom

    for p in model.parameters():
        p.requires_grad_(False)
    if cfg.refine_zero and cfg.zero_search > 0:
        # Peak positions are the most non-convex part: scan the zero shift before any gradient step.
        fwhm_min = np.sqrt(max(cfg.w, 1e-6))
        grid = cfg.zero_start + np.arange(-cfg.zero_search, cfg.zero_search + 1e-9, max(fwhm_min / 4, 0.005))
        losses = []
        for z in grid:
            model.peak.set_zero(z)
            with torch.no_grad():
                losses.append(float(loss_fn()))
        model.peak.set_zero(grid[int(np.argmin(losses))])

    peak, cell = model.peak, model.cell
    stages = [
        [(peak.p_zero, cfg.refine_zero), (peak.p_disp, cfg.refine_displacement),
         (cell.p_len, cfg.refine_lattice), (cell.p_ang, cfg.refine_lattice)],
        [(model.p_xyz, cfg.refine_coords), (model.p_b, cfg.refine_b)],
        [(peak.p_gauss, cfg.refine_profile), (peak.p_lorentz, cfg.refine_profile),
         (peak.p_asym, cfg.refine_asymmetry), (model.p_po, cfg.preferred_orientation is not None)],
    ]
    active: list[torch.nn.Parameter] = []
    for stage in stages:
        new = [p for p, on in stage if on and p.numel() > 0]
        if not new:
            continue  # the parameters so far are already minimised
        active += new
        minimise(active, loss_fn, cfg.max_iter, cfg.tolerance)

    with torch.no_grad():
        calc, scale, bkg = model.fit_linear(obs, weight)
        _, pos = model.profile()
    calc_np, bkg_np = calc.numpy(), bkg.numpy()
    n_par = 1 + cfg.background_terms
    n_par += int(cfg.refine_zero) + int(cfg.refine_displacement) + cell.n_free * int(cfg.refine_lattice)
    n_par += model.orbits.n_free * int(cfg.refine_coords) + int(cfg.refine_b) + 5 * int(cfg.refine_profile)
    n_par += 4 * int(cfg.refine_asymmetry) + int(cfg.preferred_orientation is not None)
    rwp, rp, gof = agreement(obs_np, calc_np, weight.numpy(), n_par)
    ticks = pos.numpy()
    ticks = np.unique(np.round(ticks[(ticks >= tt.min()) & (ticks <= tt.max())], 6))
    uvw = tuple(float(x) for x in peak.uvw().detach())
    xy = tuple(float(x) for x in peak.xy().detach())
    return RefineResult(
        structure=model.structure(), zero_shift=float(model.zero().detach()), scale=float(scale),
        b_iso=float(model.b_iso().detach()), rwp=rwp, rp=rp, gof=gof, calc=calc_np, background=bkg_np,
        ticks=ticks, uvw=uvw, n_parameters=n_par, xy=xy,  # type: ignore[arg-type]
        displacement=float(peak.displacement().detach()), po_ratio=float(model.po_ratio().detach()),
    )
