"""Rietveld-like refinement of a symmetrised structure against an observed powder pattern (torch, float64).

The calculated pattern reuses the project's physics exactly: IT92 form factors
(:func:`powdersolve.scattering.form_factor_coefficients`), Miller indices from
:func:`powdersolve.scattering.hkl_sphere`, F(h) = sum_j occ_j f_j(s) exp(-B s^2) exp(2 pi i h.x_j) and
the unpolarised Lorentz-polarisation factor of :func:`powdersolve.diffraction.sticks.lorentz_polarization`,
so its sticks equal :func:`powdersolve.diffraction.sticks` + :func:`~powdersolve.diffraction.to_two_theta`.

    y(2th) = scale * sum_k I_k LP(2th_k) Omega(2th - 2th_k - zero; H_k) + background(2th)

with a unit-area pseudo-Voigt Omega (Lorentz fraction ``eta``) of FWHM H_k^2 = U tan^2 th + V tan th + W
(Caglioti, degrees^2) and a Chebyshev background. Scale and background enter linearly and are solved
in closed form (weighted least squares) at every evaluation, so they never need a starting value.

Refined (each optional): zero shift (degrees 2-theta, added to every peak position), lattice
parameters tied by the crystal system, atomic coordinates restricted to their site symmetry, one
overall isotropic B (A^2) and U, V, W. Coordinates: every atom j of a Wyckoff orbit is op_j applied
to the orbit's representative r; the representative moves by P_r u with P_r the site-symmetry
projector (mean of the rotation parts of the ops fixing r), so x_j = x_j0 + R_j P_r u keeps the
orbit on its Wyckoff position exactly.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from powdersolve.errors import InputError
from powdersolve.fileio import atomic_path
from powdersolve.scattering import form_factor_coefficients, hkl_sphere
from powdersolve.structures.io import crystal_system
from powdersolve.structures.sitesymmetry import site_projector

_DT = torch.float64
#: Step sizes that make one unit of each scaled parameter a comparable change of the pattern.
_SCALE_ZERO = 0.05  # degrees 2-theta
_SCALE_LEN = 5e-4  # relative length change
_SCALE_ANG = 0.05  # degrees
_SCALE_XYZ = 5e-3  # fractional
_SCALE_B = 0.5  # A^2
_SCALE_UVW = 0.01  # degrees^2


@dataclass(frozen=True)
class RefineConfig:
    """Refinement settings.

    Attributes:
        u, v, w: starting Caglioti profile parameters (degrees^2 of 2-theta).
        eta: Lorentzian fraction of the pseudo-Voigt (0 Gaussian, 1 Lorentzian).
        b_iso: starting overall isotropic B (A^2).
        background_terms: Chebyshev background terms (0 for none).
        refine_zero, refine_lattice, refine_coords, refine_b, refine_profile: which parameters move.
        zero_search: half-range (degrees) of the grid search for the zero shift before the gradient fit.
        max_iter: L-BFGS iterations per stage.
        symprec: spglib tolerance (A) to symmetrise the input and find its site symmetries.
        max_profile_elements: largest points x reflections matrix allowed (memory guard).
        window_fwhm: each peak is computed within this many FWHM of the widest peak (0: everywhere).
            At 15 the cut removes about 2% of the Lorentzian part of each peak.
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
    zero_search: float = 0.3
    max_iter: int = 100
    symprec: float = 0.1
    max_profile_elements: int = 40_000_000
    window_fwhm: float = 15.0


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
        uvw: final Caglioti U, V, W (degrees^2).
        n_parameters: refined parameters, linear ones included.
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


def _lattice_ties(lengths: np.ndarray, angles: np.ndarray, spacegroup: int) -> tuple[np.ndarray, np.ndarray]:
    """Parameter index of each length and each angle (-1: fixed), from the crystal system.

    Assumes the conventional standard setting (pymatgen/spglib): unique axes along c, trigonal
    R groups in hexagonal axes unless the cell is rhombohedral (a = b = c, equal angles != 90).
    """
    system = crystal_system(spacegroup)
    rhombo = system == "trigonal" and np.ptp(lengths) < 1e-6 * lengths[0] and abs(angles[0] - 90) > 1e-3 \
        and np.ptp(angles) < 1e-6
    if system == "cubic":
        return np.array([0, 0, 0]), np.array([-1, -1, -1])
    if rhombo:
        return np.array([0, 0, 0]), np.array([0, 0, 0])
    if system in ("tetragonal", "hexagonal", "trigonal"):
        return np.array([0, 0, 1]), np.array([-1, -1, -1])
    if system == "orthorhombic":
        return np.array([0, 1, 2]), np.array([-1, -1, -1])
    if system == "monoclinic":
        free = np.abs(angles - 90) > 1e-4
        return np.array([0, 1, 2]), np.where(free, np.cumsum(free) - 1, -1)
    return np.array([0, 1, 2]), np.array([0, 1, 2])


def _metric(lengths: torch.Tensor, angles_deg: torch.Tensor) -> torch.Tensor:
    """Real-space metric tensor G_ij = a_i a_j cos(angle_ij) (A^2)."""
    ca = torch.cos(torch.deg2rad(angles_deg))  # alpha (b,c), beta (a,c), gamma (a,b)
    a, b, c = lengths
    return torch.stack([
        torch.stack([a * a, a * b * ca[2], a * c * ca[1]]),
        torch.stack([a * b * ca[2], b * b, b * c * ca[0]]),
        torch.stack([a * c * ca[1], b * c * ca[0], c * c]),
    ])


@dataclass
class _Orbits:
    """Per-atom constraint data: x_j = x0_j + M_j u[orbit_j]."""

    x0: np.ndarray  # (n, 3)
    matrices: np.ndarray  # (n, 3, 3)
    orbit: np.ndarray  # (n,)
    n_orbits: int
    n_free: int  # rank sum of the site projectors: independent coordinates


def _site_constraints(structure: Structure, symprec: float) -> tuple[_Orbits, list[int]]:
    """Orbit matrices for every site of a symmetrised structure (identity ops when spglib fails)."""
    frac = structure.frac_coords
    n = len(structure)
    try:
        sga = SpacegroupAnalyzer(structure, symprec=symprec)
        ops = sga.get_symmetry_operations(cartesian=False)
        groups = sga.get_symmetrized_structure().equivalent_indices
        rots = np.array([op.rotation_matrix for op in ops])
        trans = np.array([op.translation_vector for op in ops])
    except Exception:
        rots, trans = np.eye(3)[None], np.zeros((1, 3))
        groups = [[i] for i in range(n)]
    lat = structure.lattice.matrix
    mats = np.zeros((n, 3, 3))
    orbit = np.zeros(n, dtype=int)
    n_free = 0
    for g, members in enumerate(groups):
        r = members[0]
        images = np.einsum("oij,j->oi", rots, frac[r]) + trans  # (ops, 3)
        proj = site_projector(rots, trans, frac[r], lat, 1e-3 + 0.05 * symprec)
        n_free += int(round(np.trace(proj)))
        for j in members:
            d = images - frac[j]
            d -= np.round(d)
            k = int(np.argmin(np.linalg.norm(d @ lat, axis=1)))
            mats[j] = rots[k] @ proj
            orbit[j] = g
    return _Orbits(frac.copy(), mats, orbit, len(groups), n_free), [m[0] for m in groups]


class PatternModel(torch.nn.Module):
    """Differentiable powder pattern of one structure on a fixed 2-theta grid.

    All angles in degrees of 2-theta, lengths in Angstrom, B in A^2. Parameters are stored scaled
    (see the module constants) so that L-BFGS sees a well-conditioned problem.
    """

    def __init__(self, structure: Structure, two_theta: np.ndarray, wavelength: float,
                 config: RefineConfig, spacegroup: int) -> None:
        super().__init__()
        self.cfg = config
        self.wavelength = float(wavelength)
        self.tt = torch.as_tensor(np.asarray(two_theta, dtype=np.float64))
        lat = structure.lattice
        self.l0 = np.array(lat.abc, dtype=np.float64)
        self.a0 = np.array(lat.angles, dtype=np.float64)
        self.len_tie, self.ang_tie = _lattice_ties(self.l0, self.a0, spacegroup)
        self.orbits, self.reps = _site_constraints(structure, config.symprec)
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

        n_len, n_ang = int(self.len_tie.max()) + 1, int(self.ang_tie.max()) + 1
        self.p_zero = torch.nn.Parameter(torch.zeros(1, dtype=_DT))
        self.p_len = torch.nn.Parameter(torch.zeros(n_len, dtype=_DT))
        self.p_ang = torch.nn.Parameter(torch.zeros(max(n_ang, 0), dtype=_DT))
        self.p_xyz = torch.nn.Parameter(torch.zeros(self.orbits.n_orbits, 3, dtype=_DT))
        self.p_b = torch.nn.Parameter(torch.tensor([config.b_iso / _SCALE_B], dtype=_DT))
        self.p_uvw = torch.nn.Parameter(torch.tensor([config.u, config.v, config.w], dtype=_DT) / _SCALE_UVW)
        self._setup_reflections(structure)
        steps = np.diff(np.asarray(two_theta, dtype=np.float64))
        # Windows are counted in points: a strictly increasing grid is required, its smallest step used.
        self._step = float(steps.min()) if len(steps) and steps.min() > 0 else 0.0
        # Chebyshev background basis on the scaled 2-theta range [-1, 1].
        x = np.asarray(two_theta, dtype=np.float64)
        xs = 2 * (x - x.min()) / max(np.ptp(x), 1e-12) - 1
        self.bkg = torch.as_tensor(np.polynomial.chebyshev.chebvander(xs, max(config.background_terms - 1, 0))
                                   [:, : config.background_terms])

    # --- geometry -------------------------------------------------------------------------------------
    def lattice_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b, c) in A and (alpha, beta, gamma) in degrees at the current parameters."""
        l0 = torch.as_tensor(self.l0)
        lengths = l0 * (1 + _SCALE_LEN * self.p_len[torch.as_tensor(self.len_tie)])
        ang = torch.as_tensor(self.a0).clone()
        free = torch.as_tensor(self.ang_tie >= 0)
        if free.any():
            ang = torch.where(free, ang + _SCALE_ANG * self.p_ang[torch.as_tensor(np.maximum(self.ang_tie, 0))], ang)
        return lengths, ang

    def frac(self) -> torch.Tensor:
        """(n_sites, 3) fractional coordinates at the current parameters."""
        u = _SCALE_XYZ * self.p_xyz[torch.as_tensor(self.orbits.orbit)]
        return torch.as_tensor(self.orbits.x0) + torch.einsum("nij,nj->ni", torch.as_tensor(self.orbits.matrices), u)

    def _q2(self, p_len: np.ndarray | None = None) -> torch.Tensor:
        lengths, ang = self.lattice_parameters()
        if p_len is not None:
            lengths = torch.as_tensor(self.l0) * (1 + torch.as_tensor(p_len)[torch.as_tensor(self.len_tie)])
        gstar = torch.linalg.inv(_metric(lengths, ang))
        return torch.einsum("mi,ij,mj->m", self.hkl, gstar, self.hkl)

    def _setup_reflections(self, structure: Structure) -> None:
        tt_max = float(self.tt.max()) + 2.0
        q_max = 2 * np.sin(np.radians(min(tt_max, 179.0)) / 2) / self.wavelength * 1.03
        hkl = hkl_sphere(structure.lattice.reciprocal_lattice_crystallographic.matrix, q_max)
        # Friedel mates have equal |F|^2 (no anomalous scattering): keep the half with h > 0 lexicographically.
        key = hkl[:, 0] * 1_000_000 + hkl[:, 1] * 1000 + hkl[:, 2]
        hkl = hkl[key > 0]
        self.hkl = torch.as_tensor(hkl.astype(np.float64))
        # Reflections that coincide for every allowed metric (equal d now and after a random allowed
        # change of the cell) share one profile; their |F|^2 are summed.
        with torch.no_grad():
            q_now = self._q2().numpy()
            rng = np.random.default_rng(0)
            q_other = self._q2(rng.uniform(0.01, 0.03, int(self.len_tie.max()) + 1)).numpy()
        keys = np.stack([np.round(np.log(q_now) * 1e7), np.round(np.log(q_other) * 1e7)], axis=1)
        _, group = np.unique(keys, axis=0, return_inverse=True)
        self.group = torch.as_tensor(group.ravel())
        self.n_groups = int(group.max()) + 1
        first = np.zeros(self.n_groups, dtype=int)
        first[group.ravel()[::-1]] = np.arange(len(group))[::-1]
        self.group_first = torch.as_tensor(first)
        if len(self.tt) * self.n_groups > self.cfg.max_profile_elements:
            raise InputError(
                f"{len(self.tt)} points x {self.n_groups} reflections is too large to refine; "
                "give fewer points or a smaller 2-theta range")

    # --- physics --------------------------------------------------------------------------------------
    def b_iso(self) -> torch.Tensor:
        return _SCALE_B * self.p_b[0]

    def reflection_intensities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per group: 2-theta (degrees, no zero shift) and sum |F|^2 x LP (both Friedel mates counted)."""
        q2 = self._q2()
        sin_th = torch.sqrt(q2[self.group_first]) * self.wavelength / 2
        # Reflections beyond the Ewald sphere are kept at 2-theta = 180 with zero weight.
        ok = sin_th < 1.0
        sin_c = torch.clamp(sin_th, max=1.0 - 1e-12)
        tt = torch.rad2deg(2 * torch.asin(sin_c))
        s2_all = q2 / 4.0
        f_sp = torch.einsum("ek,emk->em", self.ff_a, torch.exp(-self.ff_b[:, None, :] * s2_all[None, :, None])) \
            + self.ff_c[:, None]  # (species, m)
        x = self.frac()[self.site]  # (atoms, 3)
        phase = 2 * torch.pi * (self.hkl @ x.T)  # (m, atoms)
        f_atom = f_sp[self.atom_species].T * self.occ[None, :]  # (m, atoms)
        re = torch.sum(f_atom * torch.cos(phase), dim=1)
        im = torch.sum(f_atom * torch.sin(phase), dim=1)
        inten = 2.0 * (re**2 + im**2) * torch.exp(-2 * self.b_iso() * s2_all)
        i_g = torch.zeros(self.n_groups, dtype=_DT).index_add(0, self.group, inten)
        th = torch.deg2rad(tt) / 2
        lp = (1 + torch.cos(2 * th) ** 2) / (torch.sin(th) ** 2 * torch.cos(th))
        return tt, torch.where(ok, i_g * lp, torch.zeros_like(i_g))

    def zero(self) -> torch.Tensor:
        return _SCALE_ZERO * self.p_zero[0]

    def uvw(self) -> torch.Tensor:
        return _SCALE_UVW * self.p_uvw

    def profile(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Structural pattern (before scale and background) on the grid, and the peak positions.

        With ``window_fwhm`` > 0 each peak is evaluated only on the points within that many of the
        widest peak's FWHM of its centre (the window indices are chosen without gradient at each call,
        the values inside it are exact), which costs groups x window instead of groups x points.
        """
        tt, inten = self.reflection_intensities()
        pos = tt + self.zero()
        u, v, w = self.uvw()
        tan_th = torch.tan(torch.deg2rad(tt) / 2)
        fwhm = torch.sqrt(torch.clamp(u * tan_th**2 + v * tan_th + w, min=1e-6))
        n = len(self.tt)
        half = self._window_half(pos, fwhm)
        if half is None:
            dx = (self.tt[:, None] - pos[None, :]) / fwhm[None, :]
            return self._shape(dx, fwhm[None, :]) @ inten, pos
        with torch.no_grad():
            centre = torch.searchsorted(self.tt, pos.detach().contiguous())
            idx = centre[:, None] + torch.arange(-half, half + 1)[None, :]
            inside = (idx >= 0) & (idx < n)
            idx = idx.clamp(0, n - 1)
        dx = (self.tt[idx] - pos[:, None]) / fwhm[:, None]
        vals = self._shape(dx, fwhm[:, None]) * (inten[:, None] * inside)
        y = torch.zeros(n, dtype=_DT).index_add(0, idx.reshape(-1), vals.reshape(-1))
        return y, pos

    def _shape(self, dx: torch.Tensor, fwhm: torch.Tensor) -> torch.Tensor:
        """Unit-area pseudo-Voigt at offsets ``dx`` (in FWHM units), per degree."""
        ln2 = np.log(2.0)
        gauss = (2 * np.sqrt(ln2 / np.pi)) * torch.exp(-4 * ln2 * dx**2)
        lorentz = (2 / np.pi) / (1 + 4 * dx**2)
        return (self.cfg.eta * lorentz + (1 - self.cfg.eta) * gauss) / fwhm

    def _window_half(self, pos: torch.Tensor, fwhm: torch.Tensor) -> int | None:
        """Half-window in points, or None when the dense evaluation is as cheap (or windowing is off)."""
        if self.cfg.window_fwhm <= 0 or self._step <= 0:
            return None
        with torch.no_grad():
            in_range = (pos >= self.tt[0] - 5) & (pos <= self.tt[-1] + 5)
            widest = float(fwhm[in_range].max()) if bool(in_range.any()) else float(fwhm.max())
        half = int(np.ceil(self.cfg.window_fwhm * widest / self._step))
        return None if 2 * half + 1 >= len(self.tt) else half

    def fit_linear(self, obs: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Calculated pattern with scale and background solved by weighted least squares.

        Returns (calc, scale, background).
        """
        y, _ = self.profile()
        norm = torch.clamp(y.detach().max(), min=1e-300)
        basis = torch.cat([(y / norm)[:, None], self.bkg], dim=1)
        wb = basis * weight[:, None]
        lhs = basis.T @ wb + 1e-12 * torch.eye(basis.shape[1], dtype=_DT)
        coef = torch.linalg.solve(lhs, wb.T @ obs)
        calc = basis @ coef
        return calc, coef[0] / norm, self.bkg @ coef[1:]

    def structure(self) -> Structure:
        """The structure at the current parameters."""
        with torch.no_grad():
            lengths, ang = self.lattice_parameters()
            frac = self.frac().numpy() % 1.0
        lat = Lattice.from_parameters(*lengths.tolist(), *ang.tolist())
        return Structure(lat, self.site_species, frac)


def _default_sigma(obs: np.ndarray) -> np.ndarray:
    """sqrt(counts) for data that look like counts (non-negative integers), unit weights otherwise."""
    looks_counts = obs.min() >= 0 and obs.max() > 10 and np.allclose(obs, np.round(obs))
    return np.sqrt(np.maximum(obs, 1.0)) if looks_counts else np.ones_like(obs)


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
    with torch.no_grad():
        model.p_zero.fill_(zero_shift / _SCALE_ZERO)
        y, _ = model.profile()
    return scale * y.numpy() + background


def _check_inputs(two_theta: np.ndarray, observed: np.ndarray, sigma: np.ndarray | None) -> None:
    if two_theta.ndim != 1 or two_theta.shape != observed.shape or len(two_theta) < 10:
        raise InputError(f"pattern needs matching 1-D 2-theta and intensity arrays of >= 10 points "
                         f"(got {two_theta.shape} and {observed.shape})")
    if not (np.all(np.isfinite(two_theta)) and np.all(np.isfinite(observed))):
        raise InputError("pattern holds NaN or infinite values; clean the data file")
    if two_theta.min() <= 0 or two_theta.max() >= 180:
        raise InputError(f"2-theta range {two_theta.min():g}-{two_theta.max():g} is outside (0, 180) degrees")
    if sigma is not None and (sigma.shape != observed.shape or np.any(~(sigma > 0))):
        raise InputError("sigma must be positive and have one value per pattern point")


def _minimise(params: list[torch.nn.Parameter], loss_fn: Callable[[], torch.Tensor], max_iter: int) -> None:
    """L-BFGS with a strong-Wolfe line search on ``params`` (the others stay fixed)."""
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-14, history_size=20)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)


def refine(structure: Structure, two_theta: np.ndarray, observed: np.ndarray, wavelength: float,
           sigma: np.ndarray | None = None, config: RefineConfig | None = None) -> RefineResult:
    """Refine ``structure`` against an observed pattern.

    Args:
        structure: starting structure; it is symmetrised (spglib, ``config.symprec``) to its
            conventional standard cell first, and refined in that setting.
        two_theta: (n,) degrees, increasing.
        observed: (n,) intensities (counts or arbitrary units).
        wavelength: Angstrom (single line; K-alpha2 is not modelled).
        sigma: (n,) standard uncertainties; default sqrt(counts) for counts, else unit weights.
        config: :class:`RefineConfig`.
    """
    # The tensors here are small (points x reflections, ~1e5): intra-op threads cost more than they
    # save, by 20x on a busy machine, so refine single-threaded and restore the caller's setting.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _refine(structure, two_theta, observed, wavelength, sigma, config or RefineConfig())
    finally:
        torch.set_num_threads(threads)


def _refine(structure: Structure, two_theta: np.ndarray, observed: np.ndarray, wavelength: float,
            sigma: np.ndarray | None, cfg: RefineConfig) -> RefineResult:
    tt = np.asarray(two_theta, dtype=np.float64)
    obs_np = np.asarray(observed, dtype=np.float64)
    sig = None if sigma is None else np.asarray(sigma, dtype=np.float64)
    _check_inputs(tt, obs_np, sig)
    sig = _default_sigma(obs_np) if sig is None else sig
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
        grid = np.arange(-cfg.zero_search, cfg.zero_search + 1e-9, max(fwhm_min / 4, 0.005))
        with torch.no_grad():
            losses = []
            for z in grid:
                model.p_zero.fill_(z / _SCALE_ZERO)
                losses.append(float(loss_fn()))
            model.p_zero.fill_(grid[int(np.argmin(losses))] / _SCALE_ZERO)

    stages = [
        [(model.p_zero, cfg.refine_zero), (model.p_len, cfg.refine_lattice), (model.p_ang, cfg.refine_lattice)],
        [(model.p_xyz, cfg.refine_coords), (model.p_b, cfg.refine_b)],
        [(model.p_uvw, cfg.refine_profile)],
    ]
    active: list[torch.nn.Parameter] = []
    for stage in stages:
        active += [p for p, on in stage if on and p.numel() > 0]
        if not active:
            continue
        _minimise(active, loss_fn, cfg.max_iter)

    with torch.no_grad():
        calc, scale, bkg = model.fit_linear(obs, weight)
        _, pos = model.profile()
    calc_np, bkg_np = calc.numpy(), bkg.numpy()
    resid = obs_np - calc_np
    w_np = weight.numpy()
    rwp = float(np.sqrt(np.sum(w_np * resid**2) / np.sum(w_np * obs_np**2)))
    rp = float(np.sum(np.abs(resid)) / max(np.sum(np.abs(obs_np)), 1e-300))
    n_par = 1 + cfg.background_terms
    n_par += int(cfg.refine_zero) + (model.p_len.numel() + model.p_ang.numel()) * int(cfg.refine_lattice)
    n_par += model.orbits.n_free * int(cfg.refine_coords) + int(cfg.refine_b) + 3 * int(cfg.refine_profile)
    gof = float(np.sqrt(np.sum(w_np * resid**2) / max(len(obs_np) - n_par, 1)))
    ticks = pos.numpy()
    ticks = np.unique(np.round(ticks[(ticks >= tt.min()) & (ticks <= tt.max())], 6))
    uvw = tuple(float(x) for x in model.uvw().detach())
    return RefineResult(
        structure=model.structure(), zero_shift=float(model.zero().detach()), scale=float(scale),
        b_iso=float(model.b_iso().detach()), rwp=rwp, rp=rp, gof=gof, calc=calc_np, background=bkg_np,
        ticks=ticks, uvw=uvw, n_parameters=n_par,  # type: ignore[arg-type]
    )


def plot_fit(two_theta: np.ndarray, obs: np.ndarray, calc: np.ndarray, ticks: np.ndarray,
             path: str | os.PathLike, title: str = "") -> None:
    """Rietveld plot: observed (points), calculated (line), difference (offset below) and reflection ticks.

    Written atomically; the format comes from the file suffix (png, pdf, svg).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tt = np.asarray(two_theta)
    obs, calc = np.asarray(obs), np.asarray(calc)
    fig = Figure(figsize=(9, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    span = max(float(np.max(obs) - np.min(obs)), 1e-12)
    diff = obs - calc
    off = float(np.min(np.minimum(obs, calc))) - 0.08 * span - float(np.max(diff))
    ax.plot(tt, obs, ".", ms=2.5, color="tab:red", label="observed")
    ax.plot(tt, calc, "-", lw=0.9, color="k", label="calculated")
    ax.plot(tt, diff + off, "-", lw=0.8, color="tab:blue", label="obs - calc")
    tick_y = off - 0.06 * span
    ax.plot(np.asarray(ticks), np.full(len(ticks), tick_y), "|", ms=8, color="tab:green", label="reflections")
    ax.set_xlabel("2θ (degrees)")
    ax.set_ylabel("intensity")
    ax.set_xlim(tt.min(), tt.max())
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt)
