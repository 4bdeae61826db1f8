"""`powdersolve predict`: density maps of the unit cell from a measured powder pattern."""

from __future__ import annotations

from pathlib import Path

import click

from powdersolve.cell import Cell
from powdersolve.cli.options import cell_option, echo, preprocessing_options, wavelength_option
from powdersolve.density import MAX_GRID
from powdersolve.diffraction.sticks import parse_wavelength
from powdersolve.errors import InputError, OutputError
from powdersolve.maps.flipping import FlipConfig
from powdersolve.maps.modification import ModificationConfig
from powdersolve.predict import PredictConfig, predict
from powdersolve.predict.config import MIN_GRID, SYSTEMS
from powdersolve.structures.crystal import Crystal


@click.command("predict")
@click.argument("pattern", type=click.Path(path_type=Path))
@wavelength_option
@click.option("--composition", default=None, help="Formula ('CaF2') or elements only ('Ca,F').")
@cell_option
@click.option("--system", type=click.Choice(SYSTEMS), default="auto", show_default=True,
              help="Crystal system of the model; auto: from --cell or indexing.")
@click.option("--samples", type=int, default=20, show_default=True, help="Latent samples averaged.")
@click.option("--grid", type=int, default=50, show_default=True,
              help=f"Grid points per cell axis ({MIN_GRID}-{MAX_GRID}).")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Model .safetensors (default: the shipped model of the system).")
@preprocessing_options
@click.option("--save-samples", is_flag=True, help="Also write every sample grid under samples/.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the latent samples.")
@click.option("--symmetrise", is_flag=True,
              help="Also write the mean map averaged over the space group it shows (found in the map).")
@click.option("--modify", "modify_cycles", type=click.IntRange(0, 500), default=None, metavar="CYCLES",
              help="Also write the mean map density-modified: the measured magnitudes with the map's phases, "
                   "then CYCLES rounds of positivity (density_modified.*).")
@click.option("--modify-symmetry", is_flag=True,
              help="With --modify: then find the space group the modified map shows and run CYCLES more rounds "
                   "averaging over it (density_modified.* stays at the map's origin).")
@click.option("--modify-histogram", default="none", show_default=True, type=click.Choice(["none", "final", "cycles"]),
              help="With --modify: match the modified map's histogram to the one the composition and cell lead "
                   "one to expect, on the returned map or in every cycle too (needs --composition and "
                   "--formula-units).")
@click.option("--flip", "flip_cycles", type=click.IntRange(0, 5000), default=200, show_default=True,
              metavar="CYCLES",
              help="Also write the mean map's phases refined by CYCLES rounds of charge flipping of the measured "
                   "magnitudes (density_flipped.*; summary.json says which map to prefer); 0 skips it.")
@click.option("--formula-units", type=int, default=None, metavar="Z",
              help="Formula units of --composition per cell; puts the maps, and --modify, on the absolute scale. "
                   "Without it Z is read from the map's peaks where they make it clear (maps only).")
@click.option("--absolute-scale/--no-absolute-scale", default=True, show_default=True,
              help="With --composition (ratios) and Z (given, or clear from the map): set every sample's mean to "
                   "F(000)/V and shrink any variance above the one the cell's atoms imply (stretch it too where "
                   "the sample's own mean is off by over 1.35x); otherwise the network's own scale is kept.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
def predict_command(pattern: Path, wavelength: str | None, composition: str | None, cell: str | None, system: str,
                    samples: int, grid: int, weights: Path | None, fmt: str | None, no_background: bool,
                    no_kalpha2_strip: bool, min_two_theta: float, known_phases: tuple[Crystal, ...], save_samples: bool,
                    seed: int, symmetrise: bool, modify_cycles: int | None, modify_symmetry: bool,
                    modify_histogram: str, flip_cycles: int, formula_units: int | None, absolute_scale: bool,
                    out: Path, overwrite: bool) -> None:
    """Predict the electron density (CMED) of the cell that diffracts PATTERN.

    Writes density.ccp4 / density.cube / CHGCAR / density.npy (mean over samples), density_std.*
    (per-voxel uncertainty), slices.png, isosurface.png, pattern.png and summary.json into --out.
    """
    if modify_symmetry and modify_cycles is None:
        raise InputError("--modify-symmetry needs --modify CYCLES")
    if modify_histogram != "none" and modify_cycles is None:
        raise InputError("--modify-histogram needs --modify CYCLES")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputError(f"{out}: already exists; pass --overwrite or choose another --out")
    config = PredictConfig(
        samples=samples, grid=grid, seed=seed, system=system, background=not no_background,
        strip_kalpha2=not no_kalpha2_strip, min_two_theta=min_two_theta, composition=composition,
        cell=Cell.parse(cell) if cell is not None else None,
        wavelength=parse_wavelength(wavelength) if wavelength is not None else None,
        weights=weights, format=fmt, keep_samples=save_samples, symmetrise=symmetrise,
        modify=None if modify_cycles is None else ModificationConfig(cycles=modify_cycles, symmetry=modify_symmetry,
                                                                     histogram=modify_histogram),
        flip=FlipConfig(cycles=flip_cycles) if flip_cycles else None,
        formula_units=formula_units, absolute_scale=absolute_scale, known_phases=known_phases,
    )
    result = predict(pattern, config, progress=echo)
    result.write(out, overwrite=overwrite, save_samples=save_samples, progress=echo)
    a, b, c, al, be, ga = result.cell
    how = "given" if result.cell_source == "given" else f"indexed, M20 = {result.indexing['m20']:.1f}"
    click.echo(f"{out}: {result.system} cell {a:.4f} {b:.4f} {c:.4f} {al:g} {be:g} {ga:g} ({how}); "
               f"{result.n_samples} samples on {grid}^3; composition encoding '{result.composition['encoding']}'; "
               f"Q coverage {100 * result.q_coverage['fraction_of_model_axis']:.0f}%")
    electrons = result.summary()["density"]["integrated_electrons"]
    if result.scale["kind"] == "absolute":
        z = result.scale["formula_units_per_cell"]
        scale = (f"the cell content's (absolute; Z = {z} x {result.scale['formula']}, "
                 f"{result.scale['formula_units_source']})")
    else:
        scale = ("the network's guess; give --composition with ratios, and --formula-units where the map does not "
                 "make Z clear, for the absolute one")
    click.echo(f"electron scale: {scale}; {electrons:.1f} electrons in the cell")
    if result.symmetry is not None:
        found = result.symmetry.get("group")
        click.echo(f"symmetry found in the map: {found} (density_symmetrised.*)" if found else
                   f"no space group averaged: {result.symmetry.get('reason')}")
    if result.modification is not None:
        click.echo(f"density-modified map ({result.modification['cycles']} cycles, "
                   f"{result.modification['scale']} scale): density_modified.*")
    if result.flipping is not None and "skipped" in result.flipping:
        click.echo(f"no charge-flipped map: {result.flipping['skipped']}")
    elif result.flipping is not None:
        click.echo(f"charge-flipped map ({result.flipping['cycles']} cycles, flip R "
                   f"{result.flipping['r_factor']:.3f}): density_flipped.*; {result.flipping['note']}")


def register(group: click.Group) -> None:
    """Add this module's commands to the CLI group."""
    group.add_command(predict_command)
