"""`powdersolve index`: ranked unit cells (all seven crystal systems) and space-group candidates of a pattern."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from powdersolve.cli.options import echo, format_option, known_phase_option, min_two_theta_option, wavelength_option
from powdersolve.diffraction.lebail import LeBailConfig, le_bail
from powdersolve.diffraction.sticks import parse_wavelength
from powdersolve.errors import InputError, OutputError
from powdersolve.fileio import atomic_write_text
from powdersolve.formats import read_pattern
from powdersolve.indexing import SYSTEMS, CellSolution, IndexConfig, index_counts
from powdersolve.indexing.extinction import ExtinctionClass, space_group_candidates
from powdersolve.preprocess import doublet_for, has_kalpha2
from powdersolve.structures.crystal import Crystal


def lebail_rwp(sol: CellSolution, two_theta: np.ndarray, counts: np.ndarray, wavelength: float,
               lambda2: float | None) -> float | None:
    """Rwp of a Le Bail fit of the whole pattern (2-theta deg, counts) in the candidate's cell and centring
    (:func:`powdersolve.diffraction.lebail.le_bail`; wavelength in A, K-alpha2 modelled when ``lambda2``);
    None when the fit cannot be made (too few points, a singular profile)."""
    config = LeBailConfig(zero_shift=sol.zero_shift, lambda2=lambda2)
    try:
        return float(le_bail(two_theta, counts, wavelength, sol.cell, sol.centring, config=config).rwp)
    except (InputError, ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
        echo(f"Le Bail check of {sol.system} {sol.centring} skipped: {exc}")
        return None


def _kalpha2_in(two_theta: np.ndarray, counts: np.ndarray, wavelength: float) -> float | None:
    """The K-alpha2 wavelength (A) when ``wavelength`` is a K-alpha line and the data show the doublet, else None."""
    try:
        lambda1, lambda2 = doublet_for(wavelength)
    except InputError:
        return None
    return lambda2 if has_kalpha2(two_theta, counts, lambda1, lambda2) else None


def candidate_record(sol: CellSolution, classes: list[ExtinctionClass], rwp_lebail: float | None) -> dict:
    """JSON record of one candidate: cell (A, deg), figures of merit, zero shift (deg), space groups."""
    return {"a": sol.a, "b": sol.b, "c": sol.c, "alpha": sol.alpha, "beta": sol.beta, "gamma": sol.gamma,
            "system": sol.system, "centring": sol.centring, "m20": sol.m20, "f_n": sol.f_n,
            "zero_shift": sol.zero_shift, "n_indexed": sol.n_indexed, "n_lines": sol.n_lines,
            "volume": sol.volume,
            "space_groups": [{"groups": [f"{g.symbol} ({g.number})" for g in c.groups],
                              "unexplained_peaks": c.n_unexplained, "unobserved_reflections": c.n_unobserved}
                             for c in classes],
            "rwp_lebail": rwp_lebail}


def _parse_systems(text: str) -> tuple[str, ...]:
    names = tuple(s.strip().lower() for s in text.split(",") if s.strip())
    bad = [s for s in names if s not in SYSTEMS]
    if bad or not names:
        raise InputError(f"--systems {text!r}: choose from {', '.join(SYSTEMS)} (comma-separated)")
    return names


@click.command("index")
@click.argument("pattern", type=click.Path(path_type=Path))
@wavelength_option
@format_option
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write the candidates here.")
@click.option("--systems", default=",".join(SYSTEMS), show_default=True, help="Crystal systems to search.")
@click.option("--top", type=click.IntRange(1, 50), default=5, show_default=True, help="Candidates reported.")
@click.option("--tol", type=float, default=0.05, show_default=True, help="2-theta tolerance of a line (deg).")
@click.option("--zero-range", type=float, default=0.1, show_default=True,
              help="Largest 2-theta zero shift fitted (deg); 0 fits none.")
@click.option("--kalpha2-strip", is_flag=True,
              help="Rachinger-strip K-alpha2 before peak picking (by default its peaks are recognised and dropped).")
@min_two_theta_option
@known_phase_option
@click.option("--lebail", "n_lebail", type=click.IntRange(0, 50), default=2, show_default=True,
              help="Check the best N candidates by a Le Bail fit of the whole pattern (rwp_lebail); 0 skips it.")
@click.option("--time-budget", type=float, default=10.0, show_default=True,
              help="Seconds per search stage (high systems; low systems).")
def index_command(pattern: Path, wavelength: str | None, fmt: str | None, json_out: Path | None, systems: str,
                  top: int, tol: float, zero_range: float, kalpha2_strip: bool, min_two_theta: float,
                  n_lebail: int, time_budget: float, known_phases: tuple[Crystal, ...]) -> None:
    """Index PATTERN: ranked unit cells with M20, F_N, zero shift, and space-group candidates."""
    if json_out is not None and json_out.is_dir():
        raise OutputError(f"{json_out}: is a directory; give a file name for --json")
    if not (tol > 0 and zero_range >= 0 and time_budget > 0):
        raise InputError("--tol and --time-budget must be positive and --zero-range non-negative")
    config = IndexConfig(systems=_parse_systems(systems), tol=tol, zero_range=zero_range, n_keep=top,
                         time_budget_s=time_budget)
    pat = read_pattern(pattern, fmt)
    lam = parse_wavelength(wavelength) if wavelength is not None else pat.wavelength
    if lam is None:
        raise InputError(f"{pattern}: the file states no wavelength; pass --wavelength (e.g. CuKa1 or 1.5406)")
    picked, sols = index_counts(pat.two_theta, pat.counts, lam, config, progress=echo,
                                strip_kalpha2=kalpha2_strip, min_two_theta=min_two_theta,
                                known_phases=known_phases)
    tt = picked.peaks.two_theta
    lambda2 = _kalpha2_in(pat.two_theta, pat.counts, picked.wavelength)
    if not sols:
        raise InputError(f"{pattern}: no cell indexes the {len(tt)} peaks; check the wavelength and the peaks")
    records = []
    for i, sol in enumerate(sols):
        classes = space_group_candidates(sol, tt, picked.wavelength, config.tol) if i < 3 else []
        rwp = None
        if i < n_lebail:
            echo(f"Le Bail check of candidate {i + 1}: {sol.system} {sol.centring}")
            rwp = lebail_rwp(sol, pat.two_theta, pat.counts, picked.wavelength, lambda2)
        records.append(candidate_record(sol, classes, rwp))
    click.echo(f"{'#':>2} {'system':12s} {'':1s} {'a':>8s} {'b':>8s} {'c':>8s} {'alpha':>7s} {'beta':>7s} "
               f"{'gamma':>7s} {'V':>8s} {'M20':>7s} {'F_N':>7s} {'zero':>6s} {'lines':>6s} {'Rwp LB':>6s}  "
               "space groups")
    for i, (sol, rec) in enumerate(zip(sols, records), 1):
        groups = rec["space_groups"][0]["groups"][:4] if rec["space_groups"] else []
        rwp = "-" if rec["rwp_lebail"] is None else f"{rec['rwp_lebail']:.3f}"
        click.echo(f"{i:2d} {sol.system:12s} {sol.centring:1s} {sol.a:8.4f} {sol.b:8.4f} {sol.c:8.4f} "
                   f"{sol.alpha:7.2f} {sol.beta:7.2f} {sol.gamma:7.2f} {sol.volume:8.1f} {sol.m20:7.1f} "
                   f"{sol.f_n:7.1f} {sol.zero_shift:6.3f} {sol.n_indexed:3d}/{sol.n_lines:<3d} {rwp:>6s}  "
                   f"{', '.join(groups)}")
    if json_out is not None:
        try:
            atomic_write_text(json_out, json.dumps({"candidates": records}, indent=1))
        except OSError as exc:
            raise OutputError(f"{json_out}: cannot write ({exc.strerror or exc}); choose another location") from None
        echo(f"wrote {json_out}")


def register(group: click.Group) -> None:
    """Add this module's commands to the CLI group."""
    group.add_command(index_command)
