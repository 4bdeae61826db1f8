"""`powdersolve train`: train a model on a built dataset (one process, or N under torchrun)."""

from __future__ import annotations

import dataclasses
import json

import click
import torch

from powdersolve.dataset import card_hash, load_datasets
from powdersolve.errors import InputError
from powdersolve.inputs import paper_channels
from powdersolve.model import ModelConfig, with_overrides
from powdersolve.train import TrainConfig, model_config_by_name, train


def register(group: click.Group) -> None:
    """Add `train` to the CLI group."""
    group.add_command(train_cmd)


@click.command("train")
@click.option(
    "--data",
    "data_dirs",
    required=True,
    multiple=True,
    type=click.Path(),
    help="Dataset folder from `powdersolve data build` (repeat to combine).",
)
@click.option(
    "--config",
    "config_name",
    default="cpu",
    show_default=True,
    help="Model config: paper (the paper's 14.8 M network), cpu (shipped default), tiny (tests).",
)
@click.option("--system", default="cubic", show_default=True, help="Crystal system the model is for.")
@click.option("--out", "run_dir", required=True, type=click.Path(), help="Run folder (checkpoints, log, weights).")
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=1e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--kl-weight", default=0.05, show_default=True, type=click.FloatRange(min=0))
@click.option(
    "--loss",
    type=click.Choice(["l1", "l2", "rel_l2"]),
    default=None,
    help="Loss (default: l1 for the query decoder as the paper, l2 for the fourier decoder).",
)
@click.option(
    "--points-side",
    default=10,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Query points per crystal = side^3 (paper: 10 -> 1000).",
)
@click.option(
    "--shift-grid",
    default=0,
    show_default=True,
    type=click.IntRange(0, 64),
    help="Origin-shift search grid of the coefficient loss (0 = the standard origin, as shipped; "
    "16 = minimise over 16^3 origins: higher map CC, but maps at an arbitrary origin).",
)
@click.option(
    "--hypotheses",
    default=1,
    show_default=True,
    type=click.IntRange(1, 32),
    help="Latent draws per crystal; >1 trains on the best of them (posterior mean included), so latent "
    "samples become distinct answers (fourier decoder only).",
)
@click.option(
    "--invert",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Probability of training a chiral crystal (Sohncke group) on its inverse, the enantiomorph, which a "
    "powder pattern cannot tell apart; use with --hypotheses > 1 so the latent samples cover both hands.",
)
@click.option(
    "--composition",
    "composition_kind",
    type=click.Choice(["fractions", "presence", "drop", "none"]),
    default=None,
    help="Composition encoding (ablation).",
)
@click.option("--no-xrd", is_flag=True, help="Ablation: composition-only model.")
@click.option("--no-formula", is_flag=True, help="Ablation: pattern-only model.")
@click.option(
    "--xrd-input",
    type=click.Choice(["q", "paper"]),
    default=None,
    help="Pattern axis: q (wavelength-free) or paper (2-theta 0-180 deg channels).",
)
@click.option("--wavelengths", default=None, help="Paper input channels, comma-separated (e.g. 0.71073,1.54184).")
@click.option("--augment", type=click.Choice(["realistic", "paper"]), default=None)
@click.option("--val-every", default=5, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", default=0, show_default=True, type=click.IntRange(0))
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--init", default=None, type=click.Path(), help="Warm-start from these weights (same architecture).")
@click.option("--max-train", default=0, type=click.IntRange(0), help="Use at most this many training crystals.")
@click.option(
    "--val-data",
    "val_dirs",
    multiple=True,
    type=click.Path(),
    help="Select the model on the val split of these dataset folders instead of those of --data (repeatable), "
    "e.g. a build that resembles the crystals the model is for.",
)
@click.option("--val-max", default=64, show_default=True, type=click.IntRange(1),
              help="Validation crystals scored at each validation.")
def train_cmd(
    data_dirs,
    config_name,
    system,
    run_dir,
    epochs,
    batch_size,
    lr,
    kl_weight,
    loss,
    points_side,
    shift_grid,
    hypotheses,
    invert,
    composition_kind,
    no_xrd,
    no_formula,
    xrd_input,
    wavelengths,
    augment,
    val_every,
    seed,
    threads,
    resume,
    device,
    init,
    max_train,
    val_dirs,
    val_max,
) -> None:
    """Train a CMED model (the paper's recipe; every value configurable)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available here; use --device cpu")
    mcfg = _model_config(config_name, system, composition_kind, no_xrd, no_formula, xrd_input, wavelengths)
    tr = load_datasets(data_dirs, "train")
    va = load_datasets(val_dirs or data_dirs, "val")
    if max_train:
        tr = tr[:max_train]
    if mcfg.xrd_input == "paper" and mcfg.wavelengths != (0.71073,):
        tr, va = _with_paper_channels(tr, mcfg), _with_paper_channels(va, mcfg)
    tcfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        kl_weight=kl_weight,
        loss=loss or ("l1" if mcfg.arch == "query" else "l2"),
        points_side=points_side,
        shift_grid=shift_grid,
        hypotheses=hypotheses,
        invert=invert,
        val_every=val_every,
        val_max=val_max,
        seed=seed,
        threads=threads,
        augment=augment or ("paper" if mcfg.xrd_input == "paper" else "realistic"),
    )
    data_hash = ",".join(card_hash(d) for d in data_dirs)
    if val_dirs:
        data_hash += ";val:" + ",".join(card_hash(d) for d in val_dirs)
    summary = train(tr, va, mcfg, tcfg, run_dir, resume=resume, device=device, data_hash=data_hash, init=init)
    click.echo(json.dumps(summary))


def _model_config(config_name: str, system: str, composition_kind: str | None, no_xrd: bool, no_formula: bool,
                  xrd_input: str | None, wavelengths: str | None) -> ModelConfig:
    """The named model config with the command line's overrides."""
    mcfg = model_config_by_name(config_name, system)
    over: dict = {}
    if composition_kind:
        over["composition"] = composition_kind
    if no_xrd:
        over["use_xrd"] = False
    if no_formula:
        over["use_formula"] = False
    if xrd_input == "paper" and mcfg.xrd_input != "paper":
        over.update(xrd_input="paper", xrd_channels=1, xrd_bins=1024)
    elif xrd_input == "q" and mcfg.xrd_input != "q":
        over.update(xrd_input="q", xrd_channels=2, xrd_bins=1024)
    if wavelengths:
        try:
            lams = tuple(float(x) for x in wavelengths.split(","))
        except ValueError:
            raise InputError(f"--wavelengths '{wavelengths}': give comma-separated Angstrom values") from None
        over["wavelengths"] = lams
        over["xrd_channels"] = len(lams)
    return with_overrides(mcfg, **over) if over else mcfg


def _with_paper_channels(records: list, mcfg: ModelConfig) -> list:
    """Re-encode the paper input for the requested wavelength channels."""
    return [dataclasses.replace(r, xrd_paper=paper_channels(r.crystal, mcfg)) for r in records]
