"""Lattice centring of a density map, and periodic translation of maps by Fourier phases.

Grids are fractional: voxel [i, j, k] at (i/N0, j/N1, k/N2) of the cell's a, b, c.
"""

from __future__ import annotations

import numpy as np

#: Lattice-centring translations (fractional) tried for each metric family, with their names.
CENTRINGS = {
    "cubic": {"F": ((0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0)), "I": ((0.5, 0.5, 0.5),)},
    "hexagonal": {"R": ((2 / 3, 1 / 3, 1 / 3), (1 / 3, 2 / 3, 2 / 3))},
    "tetragonal": {"I": ((0.5, 0.5, 0.5),)},
    "orthorhombic": {"F": ((0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0)), "I": ((0.5, 0.5, 0.5),),
                     "C": ((0.5, 0.5, 0.0),), "A": ((0.0, 0.5, 0.5),)},
    "monoclinic": {"C": ((0.5, 0.5, 0.0),)},
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
