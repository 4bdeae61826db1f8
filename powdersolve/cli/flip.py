"""`powdersolve flip`: a density map of the cell without any network, by charge flipping from random phases."""

from __future__ import annotations

from pathlib import Path

import click

from powdersolve.cell import Cell
from powdersolve.cli.options import cell_option, preprocessing_options, wavelength_option
from powdersolve.density import MAX_GRID
from powdersolve.diffraction.sticks import parse_wavelength
from powdersolve.errors import OutputError
from powdersolve.maps.flipping import FlipConfig
from powdersolve.predict import PredictConfig
from powdersolve.predict.config import MIN_GRID
from powdersolve.predict.phasing import MAX_STARTS, phase_pattern
from powdersolve.structures.crystal import Crystal


@click.command("flip")
@click.argument("pattern", type=click.Path(path_type=Path))
@wavelength_option
@cell_option
@click.option("--starts", type=int, default=3, show_default=True,
              help=f"Random-phase starts (1-{MAX_STARTS}); the lowest flip R is kept.")
@click.option("--cycles", type=click.IntRange(1, 5000), default=200, show_default=True, help="Flipping cycles.")
@click.option("--grid", type=int, default=50, show_default=True,
              help=f"Grid points per cell axis ({MIN_GRID}-{MAX_GRID}).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random phases.")
@preprocessing_options
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
def flip_command(pattern: Path, wavelength: str | None, cell: str | None, starts: int, cycles: int, grid: int,
                 seed: int, fmt: str | None, no_background: bool, no_kalpha2_strip: bool, min_two_theta: float,
                 known_phases: tuple[Crystal, ...], out: Path, overwrite: bool) -> None:
    """Phase PATTERN without a network: charge flipping of its peaks from random phases.

    For cells no shipped model serves (monoclinic, triclinic) or as a network-free reference. Writes
    density_flipped.ccp4 / .npy (relative scale: zero mean, unit standard deviation), slices.png and
    summary.json into --out.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputError(f"{out}: already exists; pass --overwrite or choose another --out")
    config = PredictConfig(
        grid=grid, seed=seed, background=not no_background, strip_kalpha2=not no_kalpha2_strip,
        min_two_theta=min_two_theta, cell=Cell.parse(cell) if cell is not None else None,
        wavelength=parse_wavelength(wavelength) if wavelength is not None else None, format=fmt,
        flip=FlipConfig(cycles=cycles), known_phases=known_phases)
    result = phase_pattern(pattern, config, starts)
    result.write(out, overwrite=overwrite)
    a, b, c, al, be, ga = result.cell
    click.echo(f"{out}: cell {a:.4f} {b:.4f} {c:.4f} {al:g} {be:g} {ga:g} ({result.cell_source}); "
               f"{len(result.r_factors)} starts, kept {result.kept} (flip R {result.r_factors[result.kept]:.3f}); "
               f"density_flipped.* on a relative scale")


def register(group: click.Group) -> None:
    """Add this module's commands to the CLI group."""
    group.add_command(flip_command)
