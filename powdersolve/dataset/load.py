"""Loading built datasets: shards read, variants chosen, duplicates of (formula, space group) dropped."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from powdersolve.dataset.shards import CONFIG_NAME, Record
from powdersolve.errors import InputError
from powdersolve.structures.crystal import Crystal


def shard_files(directory: str | Path) -> list[Path]:
    """The shard files of a dataset folder, in index order."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"{d}: no such dataset folder; build one with `powdersolve data build`")
    files = sorted(d.glob("shard-*.npz"))
    if not files:
        raise InputError(f"{d}: holds no shard-*.npz files; build one with `powdersolve data build`")
    return files


def read_shard(path: str | Path) -> list[Record]:
    """All records of one shard file, in stored order."""
    with np.load(path, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    out = []
    ao, qo = a["atom_offsets"], a["q_offsets"]
    for i in range(len(a["formula"])):
        s, e = ao[i], ao[i + 1]
        crystal = Crystal(a["lattice"][i], a["frac"][s:e], a["numbers"][s:e], a["occupancy"][s:e],
                          str(a["formula"][i]), int(a["spacegroup"][i]))
        out.append(Record(crystal, a["q"][qo[i]:qo[i + 1]], a["intensity"][qo[i]:qo[i + 1]], a["xrd_paper"][i],
                          str(a["split"][i]), str(a["generator"][i])))
    return out


def build_variants(directory: str | Path) -> int:
    """Crystals a dataset folder keeps per (formula, space group): its build's ``variants`` (1 without a build.json)."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        return 1
    try:
        return int(json.loads(path.read_text()).get("variants", 1))
    except (ValueError, TypeError, AttributeError):
        raise InputError(f"{path}: not a build config written by `powdersolve data build`") from None


def load_dataset(directory: str | Path, split: str | None = None) -> list[Record]:
    """Records of a dataset folder, deduplicated by (formula, space group) keeping the first in shard order
    (the first ``variants`` of its build), optionally only one split ('train', 'val', 'test')."""
    if split not in (None, "train", "val", "test"):
        raise InputError(f"split '{split}' must be train, val or test")
    keep = build_variants(directory)
    seen: Counter[tuple[str, int]] = Counter()
    out = []
    for f in shard_files(directory):
        for r in read_shard(f):
            if seen[r.crystal.key] >= keep:
                continue
            seen[r.crystal.key] += 1
            if split is None or r.split == split:
                out.append(r)
    return out


def load_datasets(directories: Sequence[str | Path], split: str | None = None) -> list[Record]:
    """Records of several dataset folders, deduplicated by (formula, space group) across them (the first
    folder that holds a crystal keeps it, with its variants), optionally only one split."""
    seen: set[tuple[str, int]] = set()
    out = []
    for d in directories:
        mine = load_dataset(d, split)
        out += [r for r in mine if r.crystal.key not in seen]
        seen |= {r.crystal.key for r in mine}
    return out
