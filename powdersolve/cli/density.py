"""`powdersolve density`: the CMED grid of a structure, as .npy plus a JSON sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from powdersolve.cli.simulate import check_outputs, load_checked_crystal, output_error
from powdersolve.density import DEFAULT_B, DEFAULT_GRID, MAX_GRID, DensityConfig, density_grid
from powdersolve.errors import InputError
from powdersolve.fileio import atomic_path
from powdersolve.structures import Crystal


def density_metadata(crystal: Crystal, grid: np.ndarray, config: DensityConfig) -> dict:
    """JSON-ready description of a CMED grid: cell, lattice, formula, units, B, electron counts."""
    a, b, c, alpha, beta, gamma = crystal.cell_parameters
    return {
        "formula": crystal.formula,
        "spacegroup": int(crystal.spacegroup),
        "cell": {"a": a, "b": b, "c": c, "alpha": alpha, "beta": beta, "gamma": gamma},
        "lattice": np.asarray(crystal.lattice).tolist(),
        "volume_A3": crystal.volume,
        "units": "e/A^3",
        "b_iso_A2": config.b_iso,
        "grid": [int(n) for n in grid.shape],
        "axes": "a, b, c; voxel [i, j, k] at fractional (i/N, j/N, k/N); C order; float32",
        "electrons_per_cell": crystal.n_electrons,
        "integrated_electrons": float(grid.astype(np.float64).mean() * crystal.volume),
    }


@click.command("density")
@click.argument("structure", type=click.Path(path_type=Path))
@click.option("--grid", type=int, default=DEFAULT_GRID, show_default=True, help="Grid points per cell axis.")
@click.option("--b", "b_iso", type=float, default=DEFAULT_B, show_default=True,
              help="Overall isotropic B (A^2) blurring the atoms.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output .npy; a .json sidecar is written beside it.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def density(structure: Path, grid: int, b_iso: float, out: Path, overwrite: bool) -> None:
    """Write the electron density (CMED, e/A^3) of STRUCTURE on a grid x grid x grid mesh."""
    if not 4 <= grid <= MAX_GRID:
        raise InputError(f"--grid {grid} is outside 4-{MAX_GRID}; 50 matches the models")
    if not (np.isfinite(b_iso) and 0.05 <= b_iso <= 200):
        raise InputError(f"--b {b_iso:g} A^2 is outside 0.05-200 A^2; the default is {DEFAULT_B:g}")
    config = DensityConfig(b_iso=b_iso, grid=grid)
    sidecar = out.with_suffix(".json")
    check_outputs([out, sidecar], overwrite)
    crystal = load_checked_crystal(structure)
    rho = density_grid(crystal, config).astype(np.float32)
    meta = {"structure": str(structure), **density_metadata(crystal, rho, config)}
    with output_error(out), atomic_path(out) as tmp_npy:
        with open(tmp_npy, "wb") as fh:
            np.save(fh, np.ascontiguousarray(rho))
        with output_error(sidecar), atomic_path(sidecar) as tmp_json:
            tmp_json.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    click.echo(f"{out}: {crystal.formula} CMED {grid}^3 at B = {b_iso:g} A^2, "
               f"{meta['integrated_electrons']:.1f} of {crystal.n_electrons:.1f} electrons; metadata {sidecar}")


def register(group: click.Group) -> None:
    """Add this module's commands to the CLI group."""
    group.add_command(density)
