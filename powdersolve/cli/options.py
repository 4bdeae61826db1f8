"""Options the pattern commands (`index`, `predict`, `flip`, `solve`) share, written once, and their progress line."""

from __future__ import annotations

from collections.abc import Callable

import click

from powdersolve.formats import READERS

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


def reading_options(command: Callable) -> Callable:
    """Add --format, --no-kalpha2-strip and --min-two-theta (how a pattern file is read) to a click command."""
    for option in (min_two_theta_option, _KALPHA2_STRIP, format_option):
        command = option(command)
    return command


def preprocessing_options(command: Callable) -> Callable:
    """:func:`reading_options` and --no-background (the maps' preprocessing) on a click command."""
    return reading_options(_BACKGROUND(command))


def echo(msg: str) -> None:
    """One progress line on stderr."""
    click.echo(f"powdersolve: {msg}", err=True)
