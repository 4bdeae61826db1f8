"""`powdersolve demo`: the shipped cubic model on a bundled measured-like pattern of a real structure."""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from powdersolve.baselines import baseline_grids
from powdersolve.density import DensityConfig, density_grid
from powdersolve.maps.modification import ModificationConfig
from powdersolve.metrics import score_predictions
from powdersolve.plots import plot_slices
from powdersolve.predict import PredictConfig, predict
from powdersolve.structures import load_crystal

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def register(group: click.Group) -> None:
    """Add `demo` to the CLI group."""
    group.add_command(demo_cmd)


@click.command("demo")
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path())
@click.option("--samples", default=20, show_default=True, type=click.IntRange(1, 100))
def demo_cmd(out_dir: str, samples: int) -> None:
    """Predict the CMED of CaF2 from a simulated Cu K-alpha scan (background, noise, K-alpha2) and score it."""
    t0 = time.perf_counter()
    cif, pattern = EXAMPLES / "CaF2_225.cif", EXAMPLES / "CaF2_CuKa.xy"
    click.echo(f"pattern: {pattern.name} (Cu K-alpha 10-100 deg, profile + background + noise + K-alpha2)")
    pred = predict(pattern, PredictConfig(samples=samples, grid=50, composition="CaF2", system="cubic",
                                          keep_samples=True,
                                          modify=ModificationConfig(cycles=10, symmetry=True, histogram="final"),
                                          formula_units=4), progress=lambda m: click.echo(f"  {m}", err=True))
    a = pred.cell[0]
    click.echo(f"cell: a = {a:.4f} A ({pred.cell_source}; true 5.4631 A)")
    crystal = load_crystal(cif)
    dcfg = DensityConfig(b_iso=pred.model["b_iso_A2"], grid=50)
    truth = density_grid(crystal, dcfg)
    mean_score = score_predictions(pred.samples[:1], truth)  # sample 0: the posterior mean, what a user gets
    score = score_predictions(pred.samples, truth)
    base = {k: score_predictions(np.stack(v), truth)
            for k, v in baseline_grids(crystal, truth, dcfg, 0, samples).items()}
    out = pred.write(out_dir, overwrite=True)
    plot_slices(truth, out / "truth_slices.png", "CaF2 true CMED (B = 8 A^2)")
    np.save(out / "truth.npy", truth.astype(np.float32))
    if (pred.scale or {}).get("kind") == "absolute":
        click.echo("samples on the absolute scale of Ca4F8 per cell (mean F(000)/V, variance at most the atoms'; "
                   "set to it where a sample's own mean is off by over 1.35x)")
    click.echo(f"posterior-mean map (density.*): map correlation {mean_score.cc:.3f} (rotations + origin shifts)  "
               f"paper SSIM {mean_score.ssim:.3f}  PSNR {mean_score.psnr:.1f} dB")
    click.echo(f"best of {samples} samples (an oracle pick against the truth): map correlation {score.cc:.3f}  "
               f"paper SSIM {score.ssim:.3f}  PSNR {score.psnr:.1f} dB")
    modified = score_predictions(pred.modified[None].astype(np.float64), truth)
    group = pred.modified_group.symbol if pred.modified_group is not None else None
    click.echo(f"density-modified mean map (measured magnitudes, the map's phases, 10 cycles, 10 more averaged "
               f"over the group found in it, {group}; histogram matched): map correlation {modified.cc:.3f}  "
               f"paper SSIM {modified.ssim:.3f}")
    if pred.flipped is not None:
        flipped = score_predictions(pred.flipped[None].astype(np.float64), truth)
        click.echo(f"charge-flipped mean map (density_flipped.*): map correlation {flipped.cc:.3f}  paper SSIM "
                   f"{flipped.ssim:.3f}; {pred.flipping['note']}")
    for name, s in base.items():
        click.echo(f"  null baseline {name:12s}: map correlation {s.cc:.3f}  SSIM {s.ssim:.3f}")
    click.echo(f"outputs in {out}/: density.npy density.ccp4 density.cube CHGCAR "
               f"density_modified.npy density_modified.ccp4 density_flipped.npy density_flipped.ccp4 slices.png "
               f"isosurface.png "
               f"pattern.png summary.json truth_slices.png")
    click.echo(f"done in {time.perf_counter() - t0:.1f} s")
