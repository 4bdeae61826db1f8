"""`powdersolve evaluate`: score a model on real structure files beside the null baselines."""

from __future__ import annotations

import json

import click

from powdersolve.errors import InputError
from powdersolve.evaluate import EvalConfig, evaluate
from powdersolve.fileio import atomic_write_text
from powdersolve.maps.flipping import FlipConfig
from powdersolve.maps.modification import ModificationConfig


def register(group: click.Group) -> None:
    """Add `evaluate` to the CLI group."""
    group.add_command(evaluate_cmd)


@click.command("evaluate")
@click.option("--weights", default=None, type=click.Path(),
              help="Model weights (.safetensors): scores the crystals whose lattice it serves; default: each "
                   "crystal by the shipped model its lattice selects.")
@click.option("--structures", required=True, type=click.Path(), help="Structure file or folder (CIF, POSCAR, JSON).")
@click.option("--system", default=None, help="Only crystals of this crystal system.")
@click.option("--grid", default=50, show_default=True, type=click.IntRange(8, 128))
@click.option("--samples", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--q-limit", default=None, type=click.FloatRange(1.0, 20.0),
              help="Simulate a measured range: Q_max in 1/A (Cu to 90 deg: 5.77).")
@click.option("--composition", "composition_kind", default=None,
              type=click.Choice(["fractions", "presence", "drop", "none"]), help="Composition encoding fed.")
@click.option("--no-baselines", is_flag=True,
              help="Skip the baselines (mean, random atoms, zero phase, Patterson).")
@click.option("--compare", multiple=True, help="NAME=WEIGHTS of another model scored alongside (e.g. no-xrd=...).")
@click.option("--symmetrise", is_flag=True,
              help="Also score each map averaged over the space group it shows (found in the map, not given).")
@click.option("--sharpen", default=None, metavar="POWER,B",
              help="Also score each map sharpened: negative density clipped, raised to POWER, electron count kept, "
                   "blurred by B (A^2), e.g. 1.5,2 (post-processing, not the network).")
@click.option("--absolute-scale", "absolute", is_flag=True,
              help="Also score each map put on the absolute scale of the true cell content: mean F(000)/V, variance "
                   "shrunk to at most its atoms' (set to it where the map's mean is off by over 1.35x; "
                   "post-processing that reads the cell content, not the pattern).")
@click.option("--absolute-scale-from-map", "absolute_map", is_flag=True,
              help="Also score each map on the absolute scale of the formula with Z read from the map's own peaks "
                   "where they make it clear (what predict does without --formula-units).")
@click.option("--modify", "modify_cycles", default=None, type=click.IntRange(0, 500), metavar="CYCLES",
              help="Also score each map after density modification: the pattern's magnitudes with the map's "
                   "phases, then CYCLES rounds of positivity (post-processing, not the network).")
@click.option("--modify-symmetry", is_flag=True,
              help="With --modify: also score the maps modified with the space group found in each one "
                   "(CYCLES more rounds averaging over it, at the map's own origin).")
@click.option("--modify-histogram", default="none", show_default=True, type=click.Choice(["none", "final", "cycles"]),
              help="With --modify: match the modified maps' histogram to the one the composition and cell lead "
                   "one to expect, on the returned map or in every cycle too.")
@click.option("--flip", "flip_cycles", default=None, type=click.IntRange(1, 5000), metavar="CYCLES",
              help="Also score each map after CYCLES rounds of charge flipping of the pattern's magnitudes, started "
                   "from the map's phases (post-processing; reads the pattern, not the cell content).")
@click.option("--json", "json_out", default=None, type=click.Path(), help="Write the full report here.")
@click.option("--save-grids", default=None, type=click.Path(), help="Write <name>_gt.npy / <name>_pred.npy here.")
def evaluate_cmd(weights, structures, system, grid, samples, seed, q_limit, composition_kind, no_baselines, compare,
                 symmetrise, sharpen, absolute, absolute_map, modify_cycles, modify_symmetry, modify_histogram,
                 flip_cycles, json_out, save_grids) -> None:
    """Predict the CMED of real structures from their simulated patterns and score it."""

    if modify_symmetry and modify_cycles is None:
        raise InputError("--modify-symmetry needs --modify CYCLES")
    if modify_histogram != "none" and modify_cycles is None:
        raise InputError("--modify-histogram needs --modify CYCLES")
    extra = {}
    for item in compare:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--compare '{item}': write NAME=WEIGHTS")
        extra[name] = path
    cfg = EvalConfig(grid=grid, samples=samples, seed=seed, system=system, q_limit=q_limit,
                     baselines=not no_baselines, composition=composition_kind, symmetrise=symmetrise,
                     sharpen=parse_sharpen(sharpen), absolute=absolute, absolute_map=absolute_map,
                     modify=None if modify_cycles is None else ModificationConfig(
                         cycles=modify_cycles, symmetry=modify_symmetry, histogram=modify_histogram),
                     flip=None if flip_cycles is None else FlipConfig(cycles=flip_cycles))
    report = evaluate(weights, structures, cfg, save_grids, extra)
    click.echo(f"n={report['n']}  posterior mean: map CC {report['cc_posterior_mean']:.3f} "
               f"(median {report['cc_posterior_mean_median']:.3f})  paper SSIM {report['ssim_posterior_mean']:.3f}  "
               f"PSNR {report['psnr_posterior_mean']:.1f} dB")
    click.echo(f"  best of {samples} picked against the truth (oracle): CC {report['cc_best_of_n_oracle']:.3f}  "
               f"SSIM {report['ssim_best_of_n_oracle']:.3f}  PSNR {report['psnr_best_of_n_oracle']:.1f} dB")
    if len(report["per_system"]) > 1 or report["skipped"]:
        for name, block in report["per_system"].items():
            click.echo(f"  {name} (n={block['n']}, {block['model_system']} model): posterior-mean CC "
                       f"{block['cc_posterior_mean']:.3f}, oracle {block['cc_best_of_n_oracle']:.3f}")
    for item in report["skipped"]:
        click.echo(f"  skipped {item['file']} ({item['system']}): {item['reason']}")
    if symmetrise:
        click.echo(f"  averaged over the space group found in each map: posterior-mean CC "
                   f"{report['cc_symmetrised_posterior_mean']:.3f}, oracle {report['cc_symmetrised_mean']:.3f} "
                   f"(allowing inversion {report['cc_symmetrised_with_inversion_mean']:.3f})  "
                   f"SSIM {report['ssim_symmetrised_mean']:.3f}")
    steps = {"sharpened": f"sharpened ({sharpen})",
             "absolute": "on the absolute scale of the true cell content (true Z)",
             "absolute_map": "on the absolute scale, Z read from the map",
             "modified": f"density-modified ({modify_cycles} cycles, true cell content)",
             "modified_symmetric": "density-modified with the symmetry found (true cell content)",
             "flipped": f"charge-flipped ({flip_cycles} cycles, from the map's phases)",
             "flipped_checked": "the map itself where the flipped map confirms it, else the flipped map"}
    for step, label in steps.items():
        if f"cc_{step}_posterior_mean" in report:
            click.echo(f"  {label}: posterior-mean CC {report[f'cc_{step}_posterior_mean']:.3f} "
                       f"(oracle {report[f'cc_{step}_mean']:.3f})  SSIM {report[f'ssim_{step}_posterior_mean']:.3f}  "
                       f"PSNR {report[f'psnr_{step}_posterior_mean']:.1f} dB")
    for name, b in report["baselines"].items():
        click.echo(f"  baseline {name:22s} CC {b['cc_mean']:.3f}  SSIM {b['ssim_mean']:.3f}  PSNR {b['psnr_mean']:.1f}"
                   + ("  (true Z)" if b["uses_true_z"] else ""))
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=1))
        click.echo(f"report: {json_out}")


def parse_sharpen(text: str | None) -> tuple[float, float] | None:
    """'POWER,B' -> (power, B in A^2); None passes through."""

    if text is None:
        return None
    parts = text.split(",")
    try:
        power, b = (float(x) for x in parts)
    except ValueError:
        raise InputError(f"--sharpen '{text}': write POWER,B, e.g. 1.5,2") from None
    if power < 1 or b < 0:
        raise InputError(f"--sharpen '{text}': needs POWER >= 1 and B >= 0")
    return power, b
