"""`powdersolve simulate`: the powder pattern of a structure (sticks or a realistic profile) and its model input."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np

from powdersolve.diffraction.profile import ProfileConfig, profile_pattern
from powdersolve.diffraction.sticks import parse_wavelength, q_from_two_theta, sticks, to_two_theta
from powdersolve.errors import InputError, OutputError
from powdersolve.fileio import atomic_path
from powdersolve.inputs import crystal_input
from powdersolve.model import ModelConfig, paper_config
from powdersolve.scattering import MAX_Z
from powdersolve.structures import Crystal, load_crystal

#: Most grid points a profile may have.
MAX_POINTS = 2_000_000


def load_checked_crystal(path: Path) -> Crystal:
    """Conventional standard cell of a structure file, refusing elements without a form factor."""
    crystal = load_crystal(path)
    bad = (crystal.numbers < 1) | (crystal.numbers > MAX_Z)
    if bad.any():
        raise InputError(f"{path}: unknown or unsupported element (supported: Z 1-{MAX_Z}); fix the atom types")
    return crystal


def check_outputs(paths: list[Path], overwrite: bool) -> None:
    """Refuse existing outputs (unless ``overwrite``), directories and duplicated paths."""
    if len({p.resolve() for p in paths}) != len(paths):
        raise OutputError(f"{paths[0]}: the same path is given for two outputs; choose distinct names")
    for p in paths:
        if p.is_dir():
            raise OutputError(f"{p}: is a directory; give a file name")
        if p.exists() and not overwrite:
            raise OutputError(f"{p}: already exists; pass --overwrite or choose another name")


@contextlib.contextmanager
def output_error(path: Path) -> Iterator[None]:
    """Turn an OS failure while writing ``path`` into a one-line OutputError."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc}); choose another location") from None


def _parse_floats(text: str, what: str) -> tuple[float, ...]:
    if not text.strip():
        return ()
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{what} '{text}' must be comma-separated numbers, e.g. 100,-20,5") from None
    if not all(np.isfinite(values)):
        raise InputError(f"{what} '{text}' must be finite numbers")
    return values


def simulate_pattern(crystal: Crystal, wavelength: float, two_theta: tuple[float, float], step: float,
                     profile: bool, config: ProfileConfig, b_iso: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(2-theta deg, intensity) of a stick list or of a profile on the grid lo..hi step ``step``."""
    lo, hi = two_theta
    margin = 0.0 if not profile else 5.0
    q_max = float(q_from_two_theta(min(hi + margin, 179.99), wavelength))
    s = sticks(crystal, q_max=q_max, b_iso=b_iso)
    scale = config.scale or 1.0
    if not profile:
        tt, inten = to_two_theta(s, wavelength)
        tt = tt + config.zero_shift
        ok = (tt >= lo) & (tt <= hi)
        tt, inten = tt[ok], inten[ok]
        return tt, inten * (scale / inten.max() if len(inten) else 1.0)
    grid = lo + step * np.arange(int(np.floor((hi - lo) / step + 1e-9)) + 1)
    return grid, profile_pattern(s, wavelength, grid, config, np.random.default_rng(seed))


def model_input(crystal: Crystal, wavelength: float, hi: float, encoding: str, b_iso: float) -> np.ndarray:
    """Model input of the structure (:func:`powdersolve.inputs.crystal_input`): the Q axis to the
    measured Q (default, (2, bins)) or the paper's Mo 0-180 deg encoding ((bins,))."""
    if encoding == "paper":
        return crystal_input(paper_config(), crystal, b_iso=b_iso).xrd[0]
    return crystal_input(ModelConfig(), crystal, float(q_from_two_theta(hi, wavelength)), b_iso=b_iso).xrd


def _validate(two_theta: tuple[float, float], step: float, profile: bool) -> None:
    lo, hi = two_theta
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi < 180):
        raise InputError(f"--two-theta {lo:g} {hi:g} must satisfy 0 < start < end < 180 degrees")
    if not (np.isfinite(step) and step > 0):
        raise InputError(f"--step {step:g} must be a positive number of degrees")
    if profile and (hi - lo) / step + 1 > MAX_POINTS:
        raise InputError(f"--step {step:g} gives more than {MAX_POINTS} points; use a larger step")


@click.command("simulate")
@click.argument("structure", type=click.Path(path_type=Path))
@click.option("--wavelength", required=True, help="Angstrom, or a line: CuKa, CuKa1, MoKa, CoKa, ...")
@click.option("--two-theta", nargs=2, type=float, default=(5.0, 90.0), show_default=True,
              help="2-theta range in degrees.")
@click.option("--step", type=float, default=0.02, show_default=True, help="Grid step (degrees).")
@click.option("--profile/--sticks", "profile", default=True, show_default=True,
              help="A broadened profile on the grid, or the stick list (2-theta, LP intensity).")
@click.option("--u", type=float, default=0.0, show_default=True, help="Caglioti U (deg^2).")
@click.option("--v", type=float, default=0.0, show_default=True, help="Caglioti V (deg^2).")
@click.option("--w", type=float, default=0.003, show_default=True, help="Caglioti W (deg^2).")
@click.option("--eta", type=float, default=0.5, show_default=True, help="Pseudo-Voigt Lorentzian fraction.")
@click.option("--size", type=float, default=None, help="Crystallite size (Angstrom) for Scherrer broadening.")
@click.option("--kalpha2/--no-kalpha2", default=False, show_default=True, help="Add the K-alpha2 line.")
@click.option("--background", default="", help="Chebyshev background coefficients in counts, e.g. 100,-20.")
@click.option("--counts", type=float, default=10000.0, show_default=True, help="Counts of the tallest peak.")
@click.option("--noise/--no-noise", default=False, show_default=True, help="Poisson counting noise.")
@click.option("--zero-shift", type=float, default=0.0, show_default=True, help="Zero error (degrees).")
@click.option("--b-iso", type=float, default=0.0, show_default=True, help="Overall B (A^2).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Two-column pattern file (.xy).")
@click.option("--npy", type=click.Path(path_type=Path), default=None, help="Also write the model input (.npy).")
@click.option("--encoding", type=click.Choice(["q", "paper"]), default="q", show_default=True,
              help="Model input: q = (2, 1024) Q axis to the measured range; paper = (1024,) Mo 0-180 deg.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def simulate(structure: Path, wavelength: str, two_theta: tuple[float, float], step: float, profile: bool,
             u: float, v: float, w: float, eta: float, size: float | None, kalpha2: bool, background: str,
             counts: float, noise: bool, zero_shift: float, b_iso: float, seed: int, out: Path,
             npy: Path | None, encoding: str, overwrite: bool) -> None:
    """Simulate the powder pattern of STRUCTURE (CIF, POSCAR or pymatgen JSON)."""
    lam = parse_wavelength(wavelength)
    _validate(two_theta, step, profile)
    if not (np.isfinite(b_iso) and 0 <= b_iso <= 50):
        raise InputError(f"--b-iso {b_iso:g} must be within 0-50 A^2")
    if not (0 <= eta <= 1):
        raise InputError(f"--eta {eta:g} must be within 0-1")
    config = ProfileConfig(u=u, v=v, w=w, eta0=eta, size=size, kalpha2=kalpha2,
                           background=_parse_floats(background, "--background"), scale=counts,
                           noise=noise, zero_shift=zero_shift)
    outputs = [out] + ([npy] if npy is not None else [])
    check_outputs(outputs, overwrite)
    crystal = load_checked_crystal(structure)
    x, y = simulate_pattern(crystal, lam, two_theta, step, profile, config, b_iso, seed)
    settings = {"mode": "profile" if profile else "sticks", "two_theta": list(two_theta), "step": step,
                "u": u, "v": v, "w": w, "eta": eta, "size": size, "kalpha2": kalpha2,
                "background": list(config.background), "counts": counts, "noise": noise,
                "zero_shift": zero_shift, "b_iso": b_iso, "seed": seed}
    header = "\n".join([
        "powdersolve simulate",
        f"structure: {structure}",
        f"formula: {crystal.formula}  spacegroup: {crystal.spacegroup}",
        f"wavelength = {lam:.6f} A",
        f"settings: {json.dumps(settings)}",
        "columns: two_theta_deg intensity_counts",
    ])
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack([x, y]), fmt=["%.5f", "%.6g"], header=header)
    encoded = model_input(crystal, lam, two_theta[1], encoding, b_iso) if npy is not None else None
    with output_error(out), atomic_path(out) as tmp_out:
        tmp_out.write_text(buf.getvalue(), encoding="utf-8")
        if npy is not None:
            with output_error(npy), atomic_path(npy) as tmp_npy, open(tmp_npy, "wb") as fh:
                np.save(fh, encoded.astype(np.float32))
    click.echo(f"{out}: {len(x)} {'points' if profile else 'sticks'}, {crystal.formula}, lambda {lam:.5f} A"
               + (f"; model input {npy} {encoded.shape}" if npy is not None else ""))


def register(group: click.Group) -> None:
    """Add this module's commands to the CLI group."""
    group.add_command(simulate)
