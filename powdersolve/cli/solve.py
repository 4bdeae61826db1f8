"""`powdersolve solve`: ranked, refined crystal structures (CIF) from a measured powder pattern."""

from __future__ import annotations

from pathlib import Path

import click

from powdersolve.cell import Cell
from powdersolve.cli.options import cell_option, echo, reading_options, wavelength_option
from powdersolve.density import MAX_GRID
from powdersolve.diffraction.sticks import parse_wavelength
from powdersolve.errors import OutputError
from powdersolve.predict import PredictConfig
from powdersolve.predict.config import MIN_GRID, SYSTEMS
from powdersolve.solve.config import SolveConfig
from powdersolve.solve.pipeline import solve
from powdersolve.solve.rank import MAX_RWP
from powdersolve.solve.result import write_solve_outputs
from powdersolve.structures.crystal import Crystal


@click.command("solve")
@click.argument("pattern", type=click.Path(path_type=Path))
@click.option("--composition", default=None,
              help="Formula ('CaF2') or elements only ('Ca,F'); without it species are inferred from electrons.")
@cell_option
@wavelength_option
@click.option("--system", type=click.Choice(SYSTEMS), default="auto", show_default=True,
              help="Crystal system of the model; auto: from --cell or indexing.")
@click.option("--samples", type=int, default=20, show_default=True,
              help="Latent samples; each density map gives one candidate structure.")
@click.option("--grid", type=int, default=50, show_default=True,
              help=f"Grid points per cell axis ({MIN_GRID}-{MAX_GRID}).")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Model .safetensors (default: the shipped model of the system).")
@click.option("--max-rwp", type=float, default=MAX_RWP, show_default=True,
              help="Abstain (exit 3) when the best background-subtracted Rwp (fraction) is above this.")
@click.option("--top", "top_k", type=int, default=5, show_default=True, help="Candidates written.")
@click.option("--refine-top", type=int, default=3, show_default=True,
              help="Distinct candidates fully refined after a short screening fit of all (0: refine all fully).")
@click.option("--no-map-symmetry", is_flag=True,
              help="Skip the space-group search in the mean map and its averaged-map candidates (~30% faster).")
@click.option("--modified-map/--no-modified-map", default=True, show_default=True,
              help="Also read atoms from the density-modified mean map (the measured peaks' magnitudes, cycles "
                   "averaged over the space group it shows); its candidates are refined first.")
@click.option("--flipped-map/--no-flipped-map", default=True, show_default=True,
              help="Also read atoms from the mean map's phases refined by charge flipping of the measured "
                   "magnitudes, where the flipped map departs from the mean map.")
@click.option("--recycle", type=int, default=SolveConfig().recycle, show_default=True,
              help="Where the best fit's Rwp is above 0.03, charge-flip the measured peaks from the phases of this "
                   "many best candidates and read atoms from those maps too (0: skip).")
@click.option("--recycle-rounds", type=click.IntRange(min=1), default=SolveConfig().recycle_rounds, show_default=True,
              help="Most rounds of recycling: while a round lowers the best Rwp by 10% or more and it stays above "
                   "0.03, the new best candidate is recycled in turn.")
@click.option("--time-limit", type=click.FloatRange(min=0), default=SolveConfig().time_limit, show_default=True,
              help="Seconds after which no further stage begins (another model, recycling, refinement of more "
                   "candidates); the answer so far is ranked. 0: no limit.")
@reading_options
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the latent samples.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
def solve_command(pattern: Path, composition: str | None, cell: str | None, wavelength: str | None, system: str,
                  samples: int, grid: int, weights: Path | None, max_rwp: float, top_k: int, refine_top: int,
                  no_map_symmetry: bool, modified_map: bool, flipped_map: bool, recycle: int,
                  recycle_rounds: int, time_limit: float | None, fmt: str | None,
                  no_kalpha2_strip: bool, min_two_theta: float, known_phases: tuple[Crystal, ...], seed: int, out: Path,
                  overwrite: bool) -> None:
    """Solve the crystal structure that diffracts PATTERN.

    Predicts density maps (one per latent sample, plus their mean), reads atoms from each (for the
    two most plausible numbers of formula units) and, for a cubic or hexagonal cell, from the mean
    map averaged over each space group it plausibly shows (atoms as whole orbits) and from the mean
    map density-modified with the pattern's magnitudes, screens every distinct candidate with a short
    fit against the pattern, fully refines the best --refine-top and ranks them by Rwp (of equally good
    fits, the most symmetric first). Where the best fit is rough, the measured peaks are charge-flipped
    from the best candidates' own phases and atoms read from those maps join the ranking (--recycle).
    Writes into --out:
    refined.cif (the best), candidates/rank_01.cif ..., solution.json (per candidate: formula,
    space group, Rwp, GoF, atoms; inputs, cell, timings, model checksum), fit.png and density/
    (the predicted maps). The folder appears only when complete.

    \b
    Exit codes:
      0  solved; outputs written
      2  bad input (unreadable pattern, bad option, no cell, bad composition)
      3  no solution: the best Rwp is above --max-rwp; nothing is written
      4  the output folder cannot be written or already exists (see --overwrite)
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputError(f"{out}: already exists; pass --overwrite or choose another --out")
    config = SolveConfig(samples=samples, grid=grid, max_rwp=max_rwp, top_k=top_k, refine_top=refine_top,
                         map_symmetry=not no_map_symmetry, modified_map=modified_map,
                         flipped_map=flipped_map, recycle=recycle, recycle_rounds=recycle_rounds,
                         time_limit=time_limit or None)
    pconfig = PredictConfig(
        samples=samples, grid=grid, seed=seed, system=system, strip_kalpha2=not no_kalpha2_strip,
        min_two_theta=min_two_theta, composition=composition, cell=Cell.parse(cell) if cell is not None else None,
        wavelength=parse_wavelength(wavelength) if wavelength is not None else None, weights=weights, format=fmt,
        known_phases=known_phases,
    )
    result = solve(pattern, config, pconfig, progress=echo)
    write_solve_outputs(result, out, overwrite=overwrite, progress=echo)
    best = result.best
    if result.species_note:
        echo(result.species_note)
    abc = " ".join(f"{x:.4f}" for x in best.result.structure.lattice.abc)
    click.echo(f"{out}: {best.formula} {best.spacegroup_symbol} (#{best.spacegroup}), a b c {abc} A, "
               f"Rwp {best.result.rwp:.3f}, GoF {best.result.gof:.2f}; {len(result.candidates)} of "
               f"{result.n_distinct} distinct candidates written")


def register(group: click.Group) -> None:
    """Add this module's commands to the CLI group."""
    group.add_command(solve_command)
