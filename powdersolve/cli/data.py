"""`powdersolve data build`: generate a training set as resumable, deterministic shards."""

from __future__ import annotations

import time

import click

from powdersolve.dataset import BuildConfig, build_dataset, parse_shard
from powdersolve.errors import InputError


def register(group: click.Group) -> None:
    """Add this module's commands to the CLI group."""
    group.add_command(data)


@click.group()
def data() -> None:
    """Training data: build synthetic crystal datasets."""


@data.command("build")
@click.option("--generator", "generator", default="prototypes", show_default=True,
              help="prototypes, random, dimers (crystals of X2 pairs), files:DIR, or a comma list "
                   "(count split evenly), e.g. prototypes,random.")
@click.option("--system", default="cubic", show_default=True,
              help="Crystal system (cubic, trigonal, ..., all) or comma-separated space groups.")
@click.option("--count", type=int, required=True, help="Crystals to generate (before deduplication).")
@click.option("--out", "out", required=True, type=click.Path(), help="Output folder.")
@click.option("--workers", type=int, default=2, show_default=True, help="Worker processes.")
@click.option("--seed", type=int, default=0, show_default=True, help="Build seed; shard s uses [seed, s].")
@click.option("--shard", "shard", default=None, help="Build only shards with index %% n == i, given as i/n.")
@click.option("--shard-size", type=int, default=250, show_default=True, help="Crystals per shard file.")
@click.option("--max-atoms", type=int, default=60, show_default=True, help="Largest conventional cell (atoms).")
@click.option("--min-distance", type=float, default=1.0, show_default=True,
              help="Smallest interatomic distance (Angstrom).")
@click.option("--no-paper-encoding", is_flag=True,
              help="Skip the paper's Mo 0-180 deg encoding (stored as zeros): several times faster for large cells.")
@click.option("--perturb", type=float, default=0.0, show_default=True,
              help="Prototypes: move each site by up to this many Angstrom, keeping the space group.")
@click.option("--group-swap", is_flag=True,
              help="Prototypes: an element's own structure may take another element of its periodic-table group.")
@click.option("--variants", type=int, default=1, show_default=True,
              help="Crystals kept per (formula, space group); >1 keeps --perturb's free-coordinate variants.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def build(generator: str, system: str, count: int, out: str, workers: int, seed: int, shard: str | None,
          shard_size: int, max_atoms: int, min_distance: float, no_paper_encoding: bool, perturb: float,
          group_swap: bool, variants: int, quiet: bool) -> None:
    """Generate crystals, their stick patterns and paper encodings into OUT/shard-*.npz.

    Rerunning the same command resumes an interrupted build; the result is byte-identical.
    """

    gens = tuple(g.strip() for g in generator.split(",") if g.strip())
    if any(g.startswith("files:") for g in gens) and len(gens) > 1:
        raise InputError(f"--generator '{generator}': files:DIR cannot be mixed with other generators")
    if max_atoms <= 0 or min_distance < 0:
        raise InputError("--max-atoms must be positive and --min-distance non-negative")
    cfg = BuildConfig(generators=gens, system=system, count=count, seed=seed, shard_size=shard_size,
                      workers=workers, max_atoms=max_atoms, min_distance=min_distance,
                      paper_encoding=not no_paper_encoding, perturb=perturb, group_swap=group_swap,
                      variants=variants)
    part = parse_shard(shard) if shard is not None else None
    t0 = time.perf_counter()
    card = build_dataset(cfg, out, shard=part, progress=not quiet)
    wall = time.perf_counter() - t0
    if card is None:
        click.echo(f"built shard part {shard} of {out} in {wall:.1f} s; rerun without --shard for the data card")
    else:
        click.echo(f"{out}: {card['n_records']} crystals ({card['n_duplicates_removed']} duplicates "
                   f"removed) in {wall:.1f} s; card hash {card['card_hash'][:16]}")
