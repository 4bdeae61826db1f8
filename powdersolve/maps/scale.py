"""The absolute scale of a density map, from the atoms in the cell.

A powder pattern fixes where a cell's electrons are far better than how many there are: its
intensities come on an arbitrary scale, and a formula such as "Ne" does not say how many atoms the
cell holds. A network trained on absolute densities must guess the scale from the composition it is
given, and for elements it saw rarely it guesses badly (the shipped cubic model puts 5.7 times too
many electrons in solid neon's cell). Map correlation does not see the error; the paper's SSIM, PSNR
and anyone reading e/A^3 off the map do.

Once the cell's content is known (the formula and the number of formula units Z), two moments of its
CMED follow from the atoms alone, whatever their positions:

- the mean is F(000) / V = sum_j occ_j f_j(0) / V (f_j(0) = Z_j);
- the variance over the cell of the map band-limited to the Miller indices H is

      var = [ sum_{h in H + (000)} sum_j (occ_j f_j(s_h))^2 exp(-2 B s_h^2) - F(000)^2 ] / V^2,

  by Parseval's theorem, because sum_h |F_h|^2 over all h splits by Poisson summation into each
  atom's density overlapping itself (the sum_j f_j^2 terms, Wilson 1942) and different atoms'
  densities overlapping each other, which is negligible for atoms ~2 A or more apart at B = 8 A^2.
  Counting h = (000) and subtracting F(000)^2 is what makes this exact for small and centred cells,
  where Wilson's sum over h != 0 alone is 3-25% too high (few reflections, many systematically absent).
  For a band that stops short (d_min above ~1.5 A) the interatomic terms left outside it no longer
  average away, and the variance can be off by tens of percent; the shipped models' band reaches
  d_min = a / 8.

:func:`absolute_scale` puts each map on the mean, and shrinks any excess variance onto the expected
one (stretching a map too when its own mean is far off): its shape (and so its map correlation) is
unchanged. Conventions: grids are (..., N, N, N) on
fractional coordinates, lattice rows in A, densities in e/A^3, B in A^2, s = sin(theta)/lambda = 1/(2d)
in 1/A.

A user often knows the formula but not Z. :func:`formula_units_from_map` reads Z from the
network's own map, by counting its peaks (scale-free, so a map with the wrong electron scale still
gives the right Z), and returns it only when it is clear; otherwise the network's scale stays.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Composition as PmgComposition

from powdersolve.cell import Composition
from powdersolve.errors import InputError
from powdersolve.maps.formula_units import ranked_formula_units_in_map
from powdersolve.scattering import form_factor, wilson_sum

#: A map whose own mean is off the cell content's by more than this factor either way is stretched
#: as well as shrunk onto the expected variance (:func:`absolute_scale`). Chosen on generated crystals:
#: no change on the validation splits (cubic_e -0.0002 +- 0.0001, trigonal_e2 0.000 paper SSIM against
#: shrinking only), +0.033 +- 0.011 on 29 cubic crystals of elements the model never saw
#: (``experiments/absolute_scale_sweep.py``, ``experiments/unseen_elements.py``).
STRETCH_BEYOND = 1.35
#: Z read from a map is used only when its peaks miss the formula's electrons by at most this fraction
#: (:func:`powdersolve.maps.formula_units.ranked_formula_units`'s cost) ...
MAX_Z_COST = 0.3
#: ... and the next best Z misses them by at least 1 / this times as much. Chosen on 200 generated
#: validation crystals (cubic_e, trigonal_e2): no wrong Z accepted; 55% and 83% of the maps get a Z
#: (``experiments/formula_units_sweep.py``).
MAX_Z_COST_RATIO = 0.6


def grid_hkl(n: int, box: tuple[int, int, int] | None = None) -> np.ndarray:
    """Miller indices (M, 3) of every Fourier coefficient of an n^3 grid except (000), in numpy FFT
    order, restricted to |h_i| <= box_i when ``box`` is given (a band-limited prediction)."""
    f = np.rint(np.fft.fftfreq(n) * n).astype(np.int64)
    hkl = np.stack(np.meshgrid(f, f, f, indexing="ij"), -1).reshape(-1, 3)
    keep = np.any(hkl != 0, axis=1)
    if box is not None:
        keep &= np.all(np.abs(hkl) <= np.asarray(box), axis=1)
    return hkl[keep]


def expected_moments(lattice: np.ndarray, numbers: np.ndarray, occupancy: np.ndarray | None, b_iso: float,
                     hkl: np.ndarray) -> tuple[float, float]:
    """Mean (e/A^3) and variance ((e/A^3)^2) over the cell of the CMED of these atoms, band-limited to ``hkl``.

    Args:
        lattice: (3, 3) row-vector cell (A).
        numbers: atomic numbers of the atoms in the cell (not per formula unit).
        occupancy: their site occupancies (None = all 1).
        b_iso: Debye-Waller B of the map (A^2).
        hkl: (M, 3) Miller indices the map carries, without (000) (see :func:`grid_hkl`).

    Raises :class:`InputError` when the atoms cannot fit the cell without overlapping (the variance
    comes out <= 0), which is what a wrong number of formula units usually does.
    """
    lattice = np.asarray(lattice, dtype=np.float64)
    numbers = np.asarray(numbers)
    if numbers.size == 0:
        raise InputError("the absolute scale needs the atoms in the cell; give the composition")
    occ = np.ones(numbers.size) if occupancy is None else np.asarray(occupancy, dtype=np.float64)
    volume = abs(float(np.linalg.det(lattice)))
    # f(0) of the IT92 fit, not Z: it differs by up to ~0.1%, and the CMED is built from the fit.
    f000 = float(occ @ form_factor(numbers, np.zeros(1))[:, 0])
    q = 2 * np.pi * np.linalg.norm(np.asarray(hkl, dtype=np.float64) @ np.linalg.inv(lattice).T, axis=1)
    self_sum = wilson_sum(numbers, occ, np.append(q, 0.0), b_iso)  # with the (000) term
    variance = (self_sum - f000**2) / volume**2
    if variance <= 0:
        raise InputError(f"{numbers.size} atoms ({float(occ @ numbers):g} electrons) cannot fit a {volume:.1f} A^3 "
                         "cell without overlapping; check the composition and the number of formula units")
    return f000 / volume, variance


def absolute_scale(grids: np.ndarray, lattice: np.ndarray, numbers: np.ndarray, occupancy: np.ndarray | None,
                   b_iso: float, box: tuple[int, int, int] | None = None, stretch: bool = False,
                   stretch_beyond: float | None = STRETCH_BEYOND) -> np.ndarray:
    """Maps (..., N, N, N) (e/A^3) moved onto the mean, and shrunk onto the variance, the cell's atoms imply.

    Each map becomes ``mean + (map - map.mean()) * k`` with (mean, var) from :func:`expected_moments`
    over the Miller indices the map carries (the grid's, within ``box`` for a band-limited prediction)
    and ``k = min(1, sqrt(var / map.var()))``: a map with more variance than its atoms can give is
    shrunk onto it, one with less keeps its own. A regression network shrinks what it is unsure of,
    and stretching a partly wrong map amplifies its errors with its signal; on generated validation
    crystals shrinking only beat setting the variance both ways (``stretch=True``, k = sqrt(var / map.var())).
    ``stretch_beyond`` (a factor r > 1; None: never): a map whose own mean is off the expected one by
    more than r either way is stretched too. Its low variance is then the network's wrong electron
    scale for the whole composition, not caution: the model under-scales actinides it never saw
    (UO2: mean 0.80 and variance 0.46 of the truth's). A constant map only gets the mean. Shape and
    dtype are kept.
    """
    g = np.asarray(grids)
    n = g.shape[-1]
    if g.ndim < 3 or g.shape[-3:] != (n, n, n):
        raise InputError(f"absolute_scale needs (..., N, N, N) grids, got shape {g.shape}")
    mean, variance = expected_moments(lattice, numbers, occupancy, b_iso, grid_hkl(n, box))
    flat = g.reshape(-1, n**3).astype(np.float64)
    centred = flat - flat.mean(axis=1, keepdims=True)
    std = centred.std(axis=1, keepdims=True)
    factor = np.divide(np.sqrt(variance), std, out=np.zeros_like(std), where=std > 0)
    if not stretch:
        off = np.zeros_like(std, dtype=bool)
        if stretch_beyond is not None:
            ratio = flat.mean(axis=1, keepdims=True) / mean
            off = (ratio > stretch_beyond) | (ratio < 1.0 / stretch_beyond)
        factor = np.where(off, factor, np.minimum(factor, 1.0))
    return (mean + centred * factor).reshape(g.shape).astype(g.dtype, copy=False)


def cell_atoms(composition: str | None, formula_units: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Atomic numbers and occupancies of the atoms in the cell, or None without a formula with ratios and Z
    (:meth:`powdersolve.cell.Composition.cell_atoms`)."""
    return Composition.parse(composition).cell_atoms(formula_units) if composition else None


def formula_units_from_map(grid: np.ndarray, lattice: np.ndarray, composition: PmgComposition
                           ) -> tuple[int | None, list[tuple[int, float]]]:
    """Formula units of ``composition`` per cell (Z) read from a map's peaks, when they make it clear.

    Args:
        grid: (N, N, N) density on any scale (the posterior-mean map), voxel [i, j, k] at (i/N, j/N, k/N).
        lattice: (3, 3) row vectors in Angstrom.
        composition: the formula; Z counts its reduced formula.

    Returns:
        (Z or None, candidates): Z per reduced formula when the best candidate's cost is at most
        :data:`MAX_Z_COST` and at most :data:`MAX_Z_COST_RATIO` of the next one's, else None; the
        candidates are (Z, cost) for up to three, best first (cost: electrons misplaced over the
        formula's, see :func:`powdersolve.maps.formula_units.ranked_formula_units`).
    """
    ranked_z = ranked_formula_units_in_map(grid, lattice, composition)
    candidates = [(int(z), float(cost)) for z, _scale, cost in ranked_z[:3]]
    best = candidates[0][1]
    second = candidates[1][1] if len(candidates) > 1 else float("inf")
    clear = np.isfinite(best) and best <= MAX_Z_COST and best <= MAX_Z_COST_RATIO * second
    return (candidates[0][0] if clear else None), candidates


def read_formula_units(mean_map: np.ndarray, lattice: np.ndarray, formula: str, b_iso: float,
                       box: tuple[int, int, int] | None = None) -> tuple[str, int | None, list[tuple[int, float]], str]:
    """Z of ``formula`` for the absolute scale, read from a posterior-mean map (see :func:`formula_units_from_map`).

    Returns (reduced formula, Z per reduced formula or None, candidates (Z, cost), verdict): the
    verdict is 'clear' (Z given), 'unclear' (the peaks do not single one out) or 'overfills' (that
    many atoms cannot fit the cell without overlapping, :func:`expected_moments` at ``b_iso`` over
    the map's band ``box``).
    """
    reduced = Composition.parse(formula).reduced_formula
    z, candidates = formula_units_from_map(mean_map, lattice, PmgComposition(reduced))
    if z is None:
        return reduced, None, candidates, "unclear"
    try:
        expected_moments(lattice, *cell_atoms(reduced, z), b_iso, grid_hkl(np.shape(mean_map)[-1], box))
    except InputError:
        return reduced, None, candidates, "overfills"
    return reduced, z, candidates, "clear"


def absolute_scale_from_map(grids: np.ndarray, lattice: np.ndarray, formula: str, b_iso: float,
                            box: tuple[int, int, int] | None = None) -> tuple[np.ndarray, int | None]:
    """:func:`absolute_scale` of ``formula`` with Z read from the first of ``grids`` (the posterior mean).

    Returns the maps and Z per reduced formula; the maps unchanged, and None, when the first map does
    not give a usable Z (:func:`read_formula_units`).
    """
    reduced, z, _, _ = read_formula_units(np.asarray(grids)[0], lattice, formula, b_iso, box)
    if z is None:
        return grids, None
    return absolute_scale(grids, lattice, *cell_atoms(reduced, z), b_iso, box), z
