"""Figures of density maps: cross-sections and a 3-D isosurface in the real cell (matplotlib, Agg).

Grids follow the package convention: voxel [i, j, k] at fractional (i/N0, j/N1, k/N2) along a, b, c,
values in e/A^3. Figures are written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from powdersolve.fileio import atomic_path

#: Most voxels per axis fed to marching cubes; finer grids are stepped to keep the figure light.
ISO_MAX_SIDE = 64


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    plt = _pyplot()
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=110)
    plt.close(fig)


def plot_slices(grid: np.ndarray, path: str | os.PathLike, title: str = "") -> None:
    """Sections through the origin and mid-cell perpendicular to a, b and c (2 x 3 panels, shared scale).

    Panel "x_a = 0" shows the (b, c) plane at fractional a = 0, and so on; axes are fractional.
    """
    g = np.asarray(grid, dtype=np.float64)
    plt = _pyplot()
    # Fixed margins instead of constrained layout, which costs about a second per figure.
    fig, axes = plt.subplots(2, 3, figsize=(10, 6.6))
    fig.subplots_adjust(left=0.06, right=0.86, bottom=0.08, top=0.88, wspace=0.35, hspace=0.4)
    lo, hi = float(g.min()), float(g.max())
    names = ("a", "b", "c")
    im = None
    for col, axis in enumerate(range(3)):
        others = [names[d] for d in range(3) if d != axis]
        n = g.shape[axis]
        for row, (idx, label) in enumerate(((0, "0"), (n // 2, f"{(n // 2) / n:.2f}"))):
            sec = np.take(g, idx, axis=axis)
            ax = axes[row, col]
            # Transpose so the first remaining axis runs horizontally; origin at the lower left. Pixel
            # centres sit on the voxel positions i/N, hence the half-voxel offset of the extent.
            n1, n2 = sec.shape
            ext = (-0.5 / n1, 1 - 0.5 / n1, -0.5 / n2, 1 - 0.5 / n2)
            im = ax.imshow(sec.T, origin="lower", extent=ext, vmin=lo, vmax=hi, cmap="viridis")
            ax.set(title=f"x_{names[axis]} = {label}", xlabel=f"{others[0]} (frac)", ylabel=f"{others[1]} (frac)")
    if im is not None:
        fig.colorbar(im, cax=fig.add_axes((0.89, 0.15, 0.02, 0.66)), label="e/A^3")
    if title:
        fig.suptitle(title)
    _save(fig, path)


def cell_edges(lattice: np.ndarray) -> np.ndarray:
    """(12, 2, 3) Cartesian end points (Angstrom) of the cell's edges from lattice rows a, b, c."""
    lat = np.asarray(lattice, dtype=np.float64)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=np.float64)
    pairs = [(p, q) for p in range(8) for q in range(p + 1, 8) if np.abs(corners[p] - corners[q]).sum() == 1]
    return np.stack([corners[[p, q]] @ lat for p, q in pairs])


def isosurface(grid: np.ndarray, lattice: np.ndarray, level: float | None = None
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """Cartesian isosurface of a periodic grid over one full cell.

    The grid is closed periodically (face 0 repeated at fractional 1) so the surface spans the
    whole cell. Returns (vertices (V, 3) in Angstrom, triangles (F, 3), level in e/A^3); the
    default level is mean + 1.5 standard deviations of the map.
    """
    from skimage.measure import marching_cubes

    g = np.asarray(grid, dtype=np.float64)
    closed = np.pad(g, [(0, 1)] * 3, mode="wrap")
    if level is None:
        level = float(g.mean() + 1.5 * g.std())
    if np.ptp(g) == 0:  # a flat map has no surface
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), float(level)
    # Keep the level strictly inside the data range, where marching cubes is defined.
    level = float(np.clip(level, g.min() + 1e-9 * np.ptp(g), g.max() - 1e-9 * np.ptp(g)))
    step = max(1, int(np.ceil(max(g.shape) / ISO_MAX_SIDE)))
    spacing = tuple(1.0 / n for n in g.shape)
    verts, faces, _, _ = marching_cubes(closed, level=level, spacing=spacing, step_size=step)
    return verts @ np.asarray(lattice, dtype=np.float64), faces, level


def plot_isosurface(grid: np.ndarray, lattice: np.ndarray, path: str | os.PathLike, level: float | None = None,
                    title: str = "") -> None:
    """3-D isosurface of the density in the Cartesian cell (Angstrom) with the cell edges drawn."""
    from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection

    plt = _pyplot()
    verts, faces, level = isosurface(grid, lattice, level)
    fig = plt.figure(figsize=(6, 6))
    fig.subplots_adjust(left=0.02, right=0.95, bottom=0.03, top=0.9)
    ax = fig.add_subplot(projection="3d")
    if len(faces):
        mesh = Poly3DCollection(verts[faces], alpha=0.7, linewidths=0)
        # Shade by height along c so depth reads without lighting.
        z = verts[faces].mean(1)[:, 2]
        mesh.set_facecolor(plt.get_cmap("viridis")((z - z.min()) / (np.ptp(z) + 1e-12)))
        ax.add_collection3d(mesh)
    edges = cell_edges(lattice)
    ax.add_collection3d(Line3DCollection(edges, colors="k", linewidths=1.0))
    pts = edges.reshape(-1, 3)
    lo, hi = pts.min(0), pts.max(0)
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), zlim=(lo[2], hi[2]), xlabel="x (A)", ylabel="y (A)",
           zlabel="z (A)")
    ax.set_box_aspect(tuple(np.maximum(hi - lo, 1e-6)))
    ax.set_title((title + "\n" if title else "") + f"isosurface at {level:.3g} e/A^3")
    _save(fig, path)
