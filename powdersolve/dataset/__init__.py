"""Training datasets: deterministic, resumable shard builds, loading, data cards and a torch Dataset.

A build is a list of shards ``shard-00000.npz ...``. Shard ``s`` holds up to ``shard_size`` crystals
made by one generator with seed ``[seed, s]``, so each shard depends on nothing but the build
config and its index: shards can be built in any order, by several processes (``shard=(i, n)``),
and a killed build resumes by skipping shards that exist (each is written atomically). The same
config gives byte-identical shards (``np.savez`` stamps every member with 1980-01-01).

Duplicates of (reduced formula, space group) are removed at load time, keeping the first
occurrence in shard order (the first ``variants`` of them for a build made with several variants
per compound); the data card describes the deduplicated set.

Per record a shard stores the crystal, its stick pattern (Q up to 8.5 1/A, B = 0), the paper's
1024-bin Mo K-alpha 2-theta encoding and the split. Variable-length arrays are flattened with
offsets.

Modules: :mod:`~powdersolve.dataset.shards`, :mod:`~powdersolve.dataset.build`, :mod:`~powdersolve.dataset.load`,
:mod:`~powdersolve.dataset.cards` (data cards), :mod:`~powdersolve.dataset.torchset` (a torch Dataset).
"""

from powdersolve.dataset.build import build_dataset
from powdersolve.dataset.cards import card_hash, data_card, write_data_card
from powdersolve.dataset.load import build_variants, load_dataset, load_datasets, read_shard, shard_files
from powdersolve.dataset.shards import (
    CONFIG_NAME,
    PAPER_Q_MAX,
    PAPER_WAVELENGTH,
    SHARD_PATTERN,
    STORED_Q_MAX,
    BuildConfig,
    Record,
    ShardTask,
    build_shard,
    parse_shard,
    shard_arrays,
    shard_plan,
)
from powdersolve.dataset.torchset import QueryPointDataset

__all__ = [
    "BuildConfig",
    "CONFIG_NAME",
    "PAPER_Q_MAX",
    "PAPER_WAVELENGTH",
    "QueryPointDataset",
    "Record",
    "SHARD_PATTERN",
    "STORED_Q_MAX",
    "ShardTask",
    "build_dataset",
    "build_shard",
    "build_variants",
    "card_hash",
    "data_card",
    "load_dataset",
    "load_datasets",
    "parse_shard",
    "read_shard",
    "shard_arrays",
    "shard_files",
    "shard_plan",
    "write_data_card",
]
