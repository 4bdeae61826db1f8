"""From a CMED density grid (+ cell + composition) to atoms: peaks, electron counts, species, symmetry.

Steps, each one physical quantity:

1. periodic local maxima of the density (wrap-around maximum filter) with sub-voxel positions from a
   quadratic fit of log(rho) over the 3x3x3 neighbourhood (a Gaussian atom is exactly quadratic in log);
2. maxima closer than ``min_distance`` (Cartesian, minimum image) are merged into one peak;
3. electrons per peak by integrating the density over its basin of steepest ascent (the on-grid
   Bader partition, periodic);
4. the number of formula units Z, and an electron scale, chosen so that the strongest peaks best
   hold Z formula units (scale-free: a predicted map's overall density may be off by tens of
   percent, and weak spurious maxima must not count as atoms);
5. species by an assignment problem: peaks x element slots (each element repeated Z * n_el times),
   cost |electrons - Z_element|; unmatched (weak) peaks are dropped;
6. space group from spglib (pymatgen SpacegroupAnalyzer) and the symmetrised conventional cell, which
   snaps atoms onto their special positions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.core.periodic_table import Element
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from scipy.ndimage import maximum_filter
from scipy.optimize import linear_sum_assignment

from powdersolve.errors import InputError

#: Elements considered when no composition is given: Z 1-83 plus Th and U, without noble gases and
#: the radioactive Tc and Pm, which almost never appear in solved inorganic powders.
COMMON_Z = np.array([z for z in range(1, 84) if z not in (2, 10, 18, 36, 54, 43, 61)] + [90, 92])

# Offsets of the 3x3x3 neighbourhood and the quadratic design matrix [1, x, y, z, x^2, y^2, z^2, xy, xz, yz].
_OFF = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
_DESIGN = np.column_stack([
    np.ones(27), _OFF, _OFF**2, _OFF[:, 0] * _OFF[:, 1], _OFF[:, 0] * _OFF[:, 2], _OFF[:, 1] * _OFF[:, 2],
]).astype(np.float64)
_FIT = np.linalg.pinv(_DESIGN)  # (10, 27)


@dataclass(frozen=True)
class PeakTable:
    """Density maxima after merging, in the input cell.

    Attributes:
        frac: (n, 3) fractional positions in [0, 1).
        height: (n,) density at the peak (e/A^3).
        electrons: (n,) electrons integrated over the peak's basin.
        species: (n,) element symbol assigned to each peak, '' for a dropped peak.
    """

    frac: np.ndarray
    height: np.ndarray
    electrons: np.ndarray
    species: np.ndarray

    def __len__(self) -> int:
        return len(self.height)


@dataclass(frozen=True)
class AtomsResult:
    """Atoms read from a density map.

    Attributes:
        structure: symmetrised conventional cell (pymatgen), atoms on special positions.
        spacegroup: international space-group number found by spglib (1 when detection failed).
        spacegroup_symbol: Hermann-Mauguin symbol.
        z_formula_units: formula units in ``structure`` (per reduced formula of the composition used).
        peaks: the peak table in the input cell.
        total_electrons: integrated density of the input cell (electrons).
        inferred_species_note: how species were chosen (empty when the full composition fixed them).
    """

    structure: Structure
    spacegroup: int
    spacegroup_symbol: str
    z_formula_units: int
    peaks: PeakTable
    total_electrons: float
    inferred_species_note: str = ""
    notes: list[str] = field(default_factory=list)


def quadratic_maximum(values: np.ndarray) -> np.ndarray:
    """Offsets (n, 3), in voxels, of the maximum of the quadratic fitted to each row of 3x3x3 values (n, 27).

    The 27 values are in ``np.indices((3, 3, 3))`` order around the centre voxel. A non-concave or
    flat fit (plateau, noise) is not trusted beyond the voxel itself: its offset is 0.
    """
    c = np.asarray(values, dtype=np.float64) @ _FIT.T  # (n, 10)
    g = c[:, 1:4]
    h = np.zeros((len(c), 3, 3))
    h[:, [0, 1, 2], [0, 1, 2]] = 2 * c[:, 4:7]
    h[:, 0, 1] = h[:, 1, 0] = c[:, 7]
    h[:, 0, 2] = h[:, 2, 0] = c[:, 8]
    h[:, 1, 2] = h[:, 2, 1] = c[:, 9]
    with np.errstate(all="ignore"):
        step = -np.linalg.solve(h + 1e-12 * np.eye(3), g[..., None])[..., 0]
    bad = ~np.all(np.isfinite(step), axis=1) | (np.abs(step) > 1.0).any(axis=1)
    step[bad] = 0.0
    return step


def find_peaks(grid: np.ndarray, rel_threshold: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Periodic local maxima of ``grid`` (voxel [i,j,k] at (i/N0, j/N1, k/N2)).

    Returns (voxel indices (n, 3) int, sub-voxel fractional positions (n, 3) in [0, 1), heights (n,)
    in the grid's units), strongest first. Maxima below ``rel_threshold`` of the highest are ignored.
    """
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 3 or min(grid.shape) < 4:
        raise InputError(f"density grid of shape {grid.shape} is not a 3-D map of at least 4^3 voxels")
    if not np.all(np.isfinite(grid)):
        raise InputError("density grid holds NaN or infinite values; regenerate the map")
    top = grid.max()
    if top <= 0:
        raise InputError("density grid has no positive density; nothing to read atoms from")
    is_max = (grid == maximum_filter(grid, size=3, mode="wrap")) & (grid > rel_threshold * top)
    idx = np.argwhere(is_max)
    # Plateaus give several equal maxima side by side; the merge step joins them.
    shape = np.array(grid.shape)
    nb = (idx[:, None, :] + _OFF[None, :, :]) % shape  # (n, 27, 3)
    vals = grid[nb[..., 0], nb[..., 1], nb[..., 2]]
    step = quadratic_maximum(np.log(np.maximum(vals, top * 1e-12)))
    frac = ((idx + step) / shape) % 1.0
    height = grid[idx[:, 0], idx[:, 1], idx[:, 2]]
    order = np.argsort(-height, kind="stable")
    return idx[order], frac[order], height[order]


def min_image_distances(frac_a: np.ndarray, frac_b: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Cartesian minimum-image distances (A) between fractional points, shape (len(a), len(b)).

    Searches the 27 neighbouring images after reducing the difference, exact for non-extreme cells.
    """
    d = frac_a[:, None, :] - frac_b[None, :, :]
    d -= np.round(d)
    shifts = _OFF.astype(np.float64)
    cart = (d[:, :, None, :] + shifts[None, None]) @ lattice  # (a, b, 27, 3)
    return np.sqrt(np.min(np.sum(cart**2, axis=-1), axis=-1))


def merge_peaks(frac: np.ndarray, height: np.ndarray, lattice: np.ndarray, min_distance: float) -> np.ndarray:
    """Label of the kept peak each maximum merges into (greedy, strongest first; input sorted by height).

    Returns (n,) int: index into the kept peaks, in order of the strongest maximum of each.
    """
    n = len(height)
    dist = min_image_distances(frac, frac, lattice)
    label = np.full(n, -1)
    kept: list[int] = []
    for i in range(n):
        if kept:
            d = dist[i, kept]
            j = int(np.argmin(d))
            if d[j] < min_distance:
                label[i] = label[kept[j]]
                continue
        label[i] = len(kept)
        kept.append(i)
    return label


def ascent_targets(grid: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Flat index of the density maximum each voxel reaches by steepest ascent on the periodic grid.

    The on-grid Bader partition (Henkelman et al., Comput. Mater. Sci. 36, 354 (2006)): every voxel
    points to the neighbour (of 26, wrapping around the cell) with the largest positive gradient
    (rho_n - rho) / |r_n - r| in Cartesian space, or to itself at a maximum; the pointers are followed
    to their ends by pointer doubling. Periodic by construction and O(voxels), so a 50^3 map takes
    milliseconds instead of a padded watershed's ~0.4 s.
    """
    grid = np.asarray(grid, dtype=np.float64)
    shape = np.array(grid.shape)
    index = np.arange(grid.size).reshape(grid.shape)
    best_gain = np.zeros(grid.shape)
    target = index.copy()
    for off in _OFF:
        if not off.any():
            continue
        step = float(np.linalg.norm((off / shape) @ lattice))
        shift = tuple(int(-o) for o in off)
        gain = (np.roll(grid, shift, axis=(0, 1, 2)) - grid) / step
        better = gain > best_gain
        best_gain[better] = gain[better]
        target[better] = np.roll(index, shift, axis=(0, 1, 2))[better]
    ptr = target.ravel()
    while True:
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            return ptr
        ptr = nxt


def integrate_basins(grid: np.ndarray, idx: np.ndarray, label: np.ndarray, voxel_volume: float,
                     lattice: np.ndarray) -> np.ndarray:
    """Electrons in the Bader basin of each label (see :func:`ascent_targets`).

    ``idx`` (n, 3) are the voxel indices of the marked maxima and ``label`` (n,) the peak each belongs
    to (merged maxima share a label). Basins that end at an unmarked maximum (weaker than the peak
    threshold) join the nearest marked peak (minimum-image distance), so every electron is counted.
    """
    shape = np.array(grid.shape)
    ends = ascent_targets(grid, lattice)
    terminal, inverse = np.unique(ends, return_inverse=True)
    marked = np.ravel_multi_index(tuple(np.asarray(idx).T), grid.shape)
    lookup = dict(zip(marked.tolist(), np.asarray(label).tolist()))
    term_label = np.array([lookup.get(int(t), -1) for t in terminal])
    loose = term_label < 0
    if loose.any():
        t_frac = np.column_stack(np.unravel_index(terminal[loose], grid.shape)) / shape
        d = min_image_distances(t_frac, np.asarray(idx) / shape, lattice)
        term_label[loose] = np.asarray(label)[np.argmin(d, axis=1)]
    per_voxel = term_label[inverse.ravel()]
    return np.bincount(per_voxel, weights=grid.ravel(), minlength=int(np.max(label)) + 1) * voxel_volume


#: Smallest volume per atom (A^3) a candidate may have: diamond, the densest common solid at ambient
#: pressure, has 5.7 A^3 per atom.
MIN_VOLUME_PER_ATOM = 5.0


def ranked_formula_units(electrons: np.ndarray, composition: Composition, max_z: int = 48, multiple: int = 1,
                         max_atoms: int | None = None, ghost_fraction: float | None = None
                         ) -> list[tuple[int, float, float]]:
    """Every feasible number of formula units Z with its electron scale and cost, best first.

    Scale-free, so a predicted map whose overall density is off by tens of percent still gives the
    right Z: for each Z the strongest Z * (atoms per formula unit) peaks are rescaled to hold the
    formula's electrons and assigned to the element slots; the cost is the assignment error plus the
    electrons left in unassigned peaks, relative to the formula's electrons.
    ``multiple``: atoms of each element per cell must be a multiple of it (the lattice points per
    cell of a centred lattice); ``max_atoms``: most atoms the cell may hold. ``ghost_fraction``: an
    unassigned peak holding less than this fraction of the lightest element's electrons (after
    rescaling) is a ripple of the background, not a missing atom, and costs nothing (None counts
    every unassigned electron). Falls back to [(1, 1.0, inf)] when no Z fits.
    """
    order = np.argsort(electrons)[::-1]
    atoms_fu = composition.num_atoms
    ranked: list[tuple[int, float, float]] = []
    for z in range(1, max_z + 1):
        counts = [int(round(z * amt)) for amt in composition.values()]
        if abs(sum(counts) - z * atoms_fu) > 1e-6 or sum(counts) > len(electrons):
            continue
        if any(n % multiple for n in counts) or (max_atoms is not None and sum(counts) > max_atoms):
            continue
        slots = np.concatenate([np.full(n, Element(el.symbol).Z) for el, n in zip(composition, counts)])
        top = electrons[order[: len(slots)]]
        scale = slots.sum() / max(top.sum(), 1e-9)
        scaled = electrons * scale
        pick = assign_species(scaled, slots.astype(np.float64))
        used = pick >= 0
        left = scaled[~used]
        if ghost_fraction is not None:
            left = left[left >= ghost_fraction * slots.min()]
        err = np.abs(scaled[used] - slots[pick[used]]).sum() + left.sum()
        ranked.append((z, float(scale), float(err / slots.sum())))
    ranked.sort(key=lambda r: r[2])  # stable: ties keep the smaller Z first
    return ranked or [(1, 1.0, float("inf"))]


def assign_species(electrons: np.ndarray, slots_z: np.ndarray) -> np.ndarray:
    """Slot index assigned to each peak (-1 when dropped), minimising sum |electrons - Z| overall."""
    cost = np.abs(electrons[:, None] - slots_z[None, :].astype(np.float64))
    rows, cols = linear_sum_assignment(cost)
    out = np.full(len(electrons), -1)
    out[rows] = cols
    return out


def _nearest_z(electrons: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    return allowed[np.argmin(np.abs(electrons[:, None] - allowed[None, :]), axis=1)]


#: Crystal systems a structure in a cell of each metric family can have (lattice_family's keys).
FAMILY_SYSTEMS = {"cubic": ("cubic",), "hexagonal": ("trigonal", "hexagonal")}
_ESCALATION = (1.0, 1.5, 2.0, 3.0)
# Tried after the raised ones: atoms read as whole orbits are symmetric to ~0.01 A, and a coarse
# tolerance can take a pseudo-symmetric structure (distorted rock salt) to a group of another cell.
_LOWERED = (0.5, 0.25, 0.05)


#: Lattice-centring translations (fractional) tried for each metric family, with their names.
CENTRINGS = {
    "cubic": {"F": ((0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0)), "I": ((0.5, 0.5, 0.5),)},
    "hexagonal": {"R": ((2 / 3, 1 / 3, 1 / 3), (1 / 3, 2 / 3, 2 / 3))},
}


def shift_grid(grid: np.ndarray, shift: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """The periodic map translated by ``shift`` (fractional): out(x) = grid(x - shift), by Fourier phases.

    Exact for a band-limited map and any (non-integer voxel) shift such as 1/3.
    """
    grid = np.asarray(grid, dtype=np.float64)
    return shifted_maps(np.fft.fftn(grid), [shift])[0]


def shifted_maps(spectrum: np.ndarray, shifts: list, grid: np.ndarray | None = None) -> list[np.ndarray]:
    """Real maps out(x) = grid(x - shift) for each fractional shift, from the map's FFT ``spectrum``
    (computed once by the caller).

    With the map itself as ``grid``, a shift of whole voxels (such as 1/2 on an even grid) is a
    roll of it, which is exact and costs no inverse FFT.
    """
    shape = np.array(spectrum.shape)
    freqs = None
    out = []
    for shift in shifts:
        voxels = np.asarray(shift, dtype=np.float64) * shape
        whole = np.rint(voxels)
        if grid is not None and np.allclose(voxels, whole, rtol=0.0, atol=1e-9):
            out.append(np.roll(grid, tuple(int(v) for v in whole), axis=(0, 1, 2)))
            continue
        if freqs is None:
            freqs = np.meshgrid(*[np.fft.fftfreq(n, 1.0 / n) for n in spectrum.shape], indexing="ij")
        phase = np.exp(-2j * np.pi * sum(f * t for f, t in zip(freqs, shift)))
        out.append(np.real(np.fft.ifftn(spectrum * phase)))
    return out


def detect_centring(grid: np.ndarray, family: str | None, min_cc: float = 0.97) -> tuple[str, np.ndarray]:
    """Lattice centring the map obeys and the map averaged over it.

    A centring is accepted when the map's Pearson correlation with itself translated by each of the
    centring vectors is at least ``min_cc`` (the first accepted of F, I for cubic cells; R for
    hexagonal ones). Averaging over the translations removes the part of the prediction error that
    breaks the centring. Returns ('P', grid) when none is accepted.
    """
    grid = np.asarray(grid, dtype=np.float64)
    centred = grid - grid.mean()
    norm = float(np.sum(centred**2))
    candidates = CENTRINGS.get(family or "", {})
    if norm <= 0 or not candidates:
        return "P", grid
    spectrum = np.fft.fftn(grid)
    for name, vectors in candidates.items():
        images = shifted_maps(spectrum, list(vectors), grid)
        if all(float(np.sum(centred * (im - im.mean()))) / norm >= min_cc for im in images):
            return name, (grid + sum(images)) / (1 + len(images))
    return "P", grid


def lattice_family(lattice: np.ndarray, tol: float = 1e-3) -> str | None:
    """'cubic' (a = b = c, 90, 90, 90), 'hexagonal' (a = b, 90, 90, 120) or None, from row vectors (A)."""
    lat = Lattice(np.asarray(lattice, dtype=np.float64))
    a, b, c = lat.abc
    al, be, ga = lat.angles
    same_ab = abs(a - b) <= tol * max(a, b)
    right = abs(al - 90) < 0.05 and abs(be - 90) < 0.05
    if same_ab and abs(b - c) <= tol * max(b, c) and right and abs(ga - 90) < 0.05:
        return "cubic"
    if same_ab and right and abs(ga - 120) < 0.05:
        return "hexagonal"
    return None


def symmetrise(structure: Structure, symprec: float, family: str | None = None
               ) -> tuple[int, str, Structure, str]:
    """Space group and symmetrised conventional cell of atoms read from a map.

    Atoms from a predicted map sit a few tenths of an Angstrom off their ideal positions, so at the
    base tolerance spglib often finds a subgroup (or P1) of the true group. When the cell's metric
    ``family`` ('cubic' or 'hexagonal') is given and the symmetry found at ``symprec`` (A) is not of
    that family, the tolerance is raised (1.5, 2, 3 x) and then lowered (0.5, 0.25, 0.05 x) until it
    is, keeping the stoichiometry and the cell (a conventional cell larger than the metric's one is
    a wrong, merged lattice). When no tolerance gives it, the first result that keeps the cell and
    stoichiometry is returned, else the structure in P1. Returns (number, symbol, structure, note).
    """
    wanted = FAMILY_SYSTEMS.get(family or "", ())
    first: tuple[int, str, Structure] | None = None
    formula = structure.composition.reduced_formula
    for factor in _ESCALATION + _LOWERED if wanted else (1.0,):
        tol = symprec * factor
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sga = SpacegroupAnalyzer(structure, symprec=tol)
                refined = sga.get_refined_structure()
                found = (int(sga.get_space_group_number()), str(sga.get_space_group_symbol()), refined)
                system = sga.get_crystal_system()
        except Exception:  # spglib gives up on some near-degenerate inputs
            continue
        same_cell = abs(refined.volume - structure.volume) <= 0.02 * structure.volume
        same = same_cell and refined.composition.reduced_formula == formula
        if first is None and (same or not wanted):
            first = found
        if not wanted or (system in wanted and same):
            note = "" if factor == 1.0 else f"space group found at a {'raised' if factor > 1 else 'lowered'} " \
                                            f"spglib tolerance ({tol:.2g} A)"
            return (*found, note)
    if first is None:
        return 1, "P1", structure.copy(), "no symmetry keeps the given cell and composition; structure kept in P1"
    return (*first, "")


def map_peaks(grid: np.ndarray, lattice: np.ndarray, family: str | None, min_distance: float = 0.7,
              rel_threshold: float = 0.02) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1-3 of the module: the map's merged peaks and the electrons in each.

    ``family`` ('cubic', 'hexagonal' or None): the lattice centring the map obeys in that family is
    found and imposed first (:func:`detect_centring`; None imposes none). Returns the (possibly
    centring-averaged) grid, the lattice points per cell, and per merged peak, strongest first: its
    fractional position (n, 3), height (n,) e/A^3 and integrated electrons (n,).
    """
    centring, grid = detect_centring(grid, family) if family else ("P", grid)
    multiple = 1 + len(CENTRINGS.get(family or "", {}).get(centring, ()))
    idx, frac, height = find_peaks(grid, rel_threshold)
    label = merge_peaks(frac, height, lattice, min_distance)
    first = np.array([np.flatnonzero(label == k)[0] for k in range(int(label.max()) + 1)])
    volume = abs(float(np.linalg.det(lattice)))
    electrons = integrate_basins(grid, idx, label, volume / grid.size, lattice)
    return grid, multiple, frac[first], height[first], electrons


def ranked_formula_units_in_map(grid: np.ndarray, lattice: np.ndarray, composition: Composition,
                                min_distance: float = 0.7, rel_threshold: float = 0.02, centre: bool = True,
                                ghost_fraction: float | None = None) -> list[tuple[int, float, float]]:
    """Numbers of formula units Z per cell that the map's peaks support, best first.

    Args:
        grid: (N0, N1, N2) density (any scale: the count is scale-free), voxel [i, j, k] at (i/N0, j/N1, k/N2);
            negative values are read as 0.
        lattice: (3, 3) row vectors in Angstrom.
        composition: the formula (any multiple of it; reduced here).
        centre: impose the lattice centring the map obeys, if any (Z then a multiple of its lattice points).
        ghost_fraction: see :func:`ranked_formula_units`.

    Returns:
        (Z, electron scale, cost) per feasible Z as :func:`ranked_formula_units` gives them, with at
        least :data:`MIN_VOLUME_PER_ATOM` A^3 per atom imposed.
    """
    # Electrons are counted on the non-negative part: a band-limited or untrained map's negative
    # ripples would otherwise enter the basins as negative electrons and make a bad fit look good.
    grid = np.maximum(np.asarray(grid, dtype=np.float64), 0.0)
    lattice = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
    family = lattice_family(lattice) if centre else None
    _, multiple, _, _, electrons = map_peaks(grid, lattice, family, min_distance, rel_threshold)
    reduced = composition.get_reduced_composition_and_factor()[0]
    volume = abs(float(np.linalg.det(lattice)))
    return ranked_formula_units(electrons, reduced, multiple=multiple, max_atoms=int(volume / MIN_VOLUME_PER_ATOM),
                                ghost_fraction=ghost_fraction)


def density_to_structure(
    grid: np.ndarray,
    lattice: np.ndarray,
    composition: dict[str, float] | None,
    *,
    ratios_known: bool = True,
    min_distance: float = 0.7,
    symprec: float = 0.2,
    rel_threshold: float = 0.02,
    escalate: bool = True,
    centre: bool = True,
) -> AtomsResult:
    """Read atoms from a CMED map and return the symmetrised structure (the best Z only).

    Args:
        grid: (N0, N1, N2) density in e/A^3, voxel [i, j, k] at fractional (i/N0, j/N1, k/N2).
        lattice: (3, 3) row vectors a, b, c in Angstrom.
        composition: element -> amount (any multiple of the formula), or None when unknown.
        ratios_known: False when ``composition`` lists the elements only (amounts ignored).
        min_distance: maxima closer than this (Angstrom) are one atom.
        symprec: spglib tolerance (Angstrom) for the space group and snapping to special positions.
        rel_threshold: maxima below this fraction of the highest one are ignored.
        escalate: when the cell's metric is cubic or hexagonal and the atoms at ``symprec`` do not
            show that crystal family, retry at 1.5, 2 and 3 x ``symprec`` (see :func:`symmetrise`).
        centre: impose a lattice centring the map obeys (see :func:`density_to_structures`).
    """
    return density_to_structures(grid, lattice, composition, ratios_known=ratios_known, min_distance=min_distance,
                                 symprec=symprec, rel_threshold=rel_threshold, escalate=escalate, n_z=1,
                                 centre=centre)[0]


def density_to_structures(
    grid: np.ndarray,
    lattice: np.ndarray,
    composition: dict[str, float] | None,
    *,
    ratios_known: bool = True,
    min_distance: float = 0.7,
    symprec: float = 0.2,
    rel_threshold: float = 0.02,
    escalate: bool = True,
    n_z: int = 2,
    centre: bool = True,
    spacegroup: int | None = None,
) -> list[AtomsResult]:
    """:func:`density_to_structure` for the ``n_z`` best numbers of formula units (full composition only).

    A predicted map's spurious or missing peaks can make a wrong Z fit the electron counts slightly
    better than the right one; reading the map once per plausible Z lets the refinement against the
    pattern decide. Results come best Z first; without the ratios there is one result.
    With ``centre`` (and ``escalate``) a lattice centring the map obeys (:func:`detect_centring`) is
    imposed on the map by averaging, and Z is restricted to counts the centring allows.
    ``spacegroup``: the map is averaged over this group in its standard setting
    (:func:`powdersolve.solve.mapsymmetry.symmetrise_map`); atoms are then read as whole orbits of
    it (:mod:`powdersolve.solve.wyckoff`), falling back to single peaks when no orbit choice fits.
    """
    grid = np.asarray(grid, dtype=np.float64)
    lattice = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
    volume = abs(float(np.linalg.det(lattice)))
    if volume < 1.0:
        raise InputError(f"cell volume {volume:.3g} A^3 is not physical; check the lattice")
    family = lattice_family(lattice) if escalate else None
    grid, multiple, kfrac, kheight, electrons = map_peaks(grid, lattice, family if centre else None,
                                                          min_distance, rel_threshold)
    n_kept = len(electrons)
    total = float(grid.sum() * volume / grid.size)

    comp = None
    if composition:
        try:
            comp = Composition({k: float(v) for k, v in composition.items()})
        except Exception as exc:
            raise InputError(f"composition {composition}: {exc}") from None

    # (species per position, Z or 0 when set from the final structure, notes, fractional positions,
    # species per peak)
    choices: list[tuple[np.ndarray, int, list[str], np.ndarray, np.ndarray]] = []
    note = ""
    if comp is not None and ratios_known and spacegroup is not None:
        from powdersolve.solve.wyckoff import orbit_choices, peak_orbits

        orbits = peak_orbits(kfrac, electrons, spacegroup, lattice)
        for z_fu, pos, names, per_orbit in orbit_choices(orbits, comp, n_z=max(1, n_z), multiple=multiple,
                                                         max_atoms=int(volume / MIN_VOLUME_PER_ATOM)):
            on_peak = np.full(n_kept, "", dtype=object)
            for orbit, el in zip(orbits, per_orbit):
                on_peak[list(orbit.peaks)] = el or ""
            choices.append((np.array(names, dtype=object), z_fu, [], pos, on_peak))
    if comp is not None and ratios_known and not choices:
        reduced, _ = comp.get_reduced_composition_and_factor()
        for z_fu, scale, _cost in ranked_formula_units(electrons, reduced, multiple=multiple,
                                                         max_atoms=int(volume / MIN_VOLUME_PER_ATOM))[: max(1, n_z)]:
            counts = {el.symbol: int(round(z_fu * amt)) for el, amt in reduced.items()}
            slots = np.concatenate([np.full(n, Element(el).Z) for el, n in counts.items()])
            slot_sym = np.concatenate([np.full(n, el, dtype=object) for el, n in counts.items()])
            pick = assign_species(electrons * scale, slots)
            species = np.where(pick >= 0, slot_sym[np.maximum(pick, 0)], "").astype(object)
            notes = []
            if len(slots) > n_kept:
                notes.append(f"{len(slots) - n_kept} atoms of Z={z_fu} x {reduced.formula} had no density peak "
                             "(overlap?)")
            choices.append((species, z_fu, notes, kfrac, species))
    elif not choices:
        allowed = np.array(sorted(Element(e.symbol).Z for e in comp)) if comp is not None else COMMON_Z
        zs = _nearest_z(electrons, allowed)
        # A peak far lighter than the lightest allowed element is noise or a ghost, not an atom.
        keep = electrons >= 0.5 * allowed.min()
        species = np.where(keep, [Element.from_Z(int(z)).symbol for z in zs], "").astype(object)
        how = "among the given elements" if comp is not None else "among common elements (Z 1-83, Th, U)"
        inferred = sorted({s for s in species if s}, key=lambda s: Element(s).Z)
        note = (f"species {', '.join(inferred)} inferred from integrated electrons per peak "
                f"(nearest atomic number {how}); no ratios were used")
        choices.append((species, 0, [], kfrac, species))

    results = []
    for species, z_fu, notes, positions, peak_species in choices:
        atoms = species != ""
        if not atoms.any():
            continue
        s = Structure(Lattice(lattice), list(species[atoms]), positions[atoms])
        sg, symbol, s_out, sym_note = symmetrise(s, symprec, family)
        if sym_note:
            notes.append(sym_note)
        if z_fu == 0:
            z_fu = int(s_out.composition.get_reduced_composition_and_factor()[1])
        else:
            z_fu = int(round(z_fu * len(s_out) / max(1, int(atoms.sum()))))
        peaks = PeakTable(frac=kfrac, height=kheight, electrons=electrons, species=peak_species.astype(str))
        results.append(AtomsResult(s_out, sg, symbol, z_fu, peaks, total, note, notes))
    if not results:
        raise InputError("no density peak could be assigned to an atom; the map is empty or the composition wrong")
    return results
