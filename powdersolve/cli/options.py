"""Options the pattern commands (`index`, `predict`, `flip`, `solve`) share, written once, and their progress
line."""

from __future__ import annotations

from collections.abc import Callable

import click

from powdersolve.diffraction.known_phases import STANDARDS, known_phase
from powdersolve.formats import READERS
from powdersolve.structures.crystal import Crystal

wavelength_option = click.option(
    "--wavelength", default=None,
    help="Wavelength in A or a line name (CuKa, MoKa1); needed when the file does not state it.")
cell_option = click.option(
    "--cell", default=None,
    help="Unit cell 'a b c alpha beta gamma' (A, deg) or 'a' (cubic); default: index the pattern (all seven "
         "crystal systems).")
format_option = click.option(
    "--format", "fmt", type=click.Choice(sorted(READERS)), default=None,
    help="Pattern file format (default: from the extension or content).")
min_two_theta_option = click.option(
    "--min-two-theta", type=float, default=5.0, show_default=True, help="Ignore points below this 2-theta (deg).")
_KALPHA2_STRIP = click.option(
    "--no-kalpha2-strip", is_flag=True, help="Do not strip K-alpha2 (use for K-alpha1-only data).")
_BACKGROUND = click.option("--no-background", is_flag=True, help="Do not remove the background.")


def _known_phases(_ctx: click.Context, _param: click.Parameter, specs: tuple[str, ...]) -> tuple[Crystal, ...]:
    return tuple(known_phase(spec) for spec in specs)


known_phase_option = click.option(
    "--known-phase", "known_phases", multiple=True, callback=_known_phases,
    help=f"A known second phase in the sample (internal standard or impurity): {', '.join(STANDARDS)}, or a CIF; "
         "its lines are left out of indexing, the maps and the fits. Repeatable.")


def reading_options(command: Callable) -> Callable:
    """Add --format, --no-kalpha2-strip, --min-two-theta and --known-phase (how a pattern file is read) to a click
    command."""
    for option in (known_phase_option, min_two_theta_option, _KALPHA2_STRIP, format_option):
        command = option(command)
    return command


def preprocessing_options(command: Callable) -> Callable:
    """:func:`reading_options` and --no-background (the maps' preprocessing) on a click command."""
    return reading_options(_BACKGROUND(command))


def echo(msg: str) -> None:
    """One progress line on stderr."""
    click.echo(f"powdersolve: {msg}", err=True)

