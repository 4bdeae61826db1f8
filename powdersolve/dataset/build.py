"""Dataset builds: every shard of a config built (in parallel, resumably), then the data card written."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

from powdersolve.dataset.cards import write_data_card
from powdersolve.dataset.shards import (
    CONFIG_NAME,
    SHARD_PATTERN,
    BuildConfig,
    ShardTask,
    build_shard,
    shard_plan,
)
from powdersolve.errors import OutputError
from powdersolve.fileio import atomic_write_text
from powdersolve.structures.generators import (
    iter_files,
    parse_system,
)


def _build_shard_star(args: tuple[BuildConfig, ShardTask, str]) -> int:
    return build_shard(*args)


def _check_config(cfg: BuildConfig, out_dir: Path) -> None:
    """Record the build config, or refuse to mix shards of a different config into ``out_dir``."""
    path = out_dir / CONFIG_NAME
    want = json.dumps(cfg.content_dict(), indent=1, sort_keys=True) + "\n"
    if path.is_file():
        if path.read_text() != want:
            raise OutputError(f"{out_dir}: holds a build with other settings ({path}); use a new --out")
        return
    if out_dir.is_dir() and any(out_dir.glob("shard-*.npz")):
        raise OutputError(f"{out_dir}: holds shards but no {CONFIG_NAME}; use a new --out")
    atomic_write_text(path, want)


def build_dataset(cfg: BuildConfig, out_dir: str | Path, shard: tuple[int, int] | None = None,
                  progress: bool = True) -> dict | None:
    """Build (or resume) the shards of ``cfg`` in ``out_dir``; returns the data card when all shards exist.

    ``shard=(i, n)`` builds only shards whose index % n == i, for splitting a build over machines.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose another --out")
    for g in cfg.generators:  # read file inputs before anything is written, so bad input leaves no output
        if g.startswith("files:"):
            iter_files(g[len("files:"):], parse_system(cfg.system), cfg.max_atoms)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the folder ({exc.strerror}); choose another --out") from None
    _check_config(cfg, out)
    plan = shard_plan(cfg)
    todo = [t for t in plan if (shard is None or t.index % shard[1] == shard[0])
            and not (out / SHARD_PATTERN.format(t.index)).is_file()]
    from tqdm import tqdm

    bar = tqdm(total=sum(t.count for t in todo), unit="crystal", disable=not progress, desc=f"build {out.name}")
    jobs = [(cfg, t, str(out)) for t in todo]
    if cfg.workers == 1 or len(jobs) <= 1:
        for job in jobs:
            _build_shard_star(job)
            bar.update(job[1].count)
    else:
        with mp.get_context("fork").Pool(min(cfg.workers, len(jobs))) as pool:
            for task, _ in zip(todo, pool.imap(_build_shard_star, jobs)):
                bar.update(task.count)
    bar.close()
    if all((out / SHARD_PATTERN.format(t.index)).is_file() for t in plan):
        return write_data_card(out, cfg)
    return None
