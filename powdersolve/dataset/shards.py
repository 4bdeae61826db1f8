"""Dataset shards: records of generated crystals with their patterns, each shard deterministic from its index."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from powdersolve.diffraction import encode_two_theta, sticks
from powdersolve.errors import InputError
from powdersolve.fileio import atomic_path
from powdersolve.structures.crystal import Crystal
from powdersolve.structures.generators import (
    DEFAULT_COVALENT_FACTOR,
    DEFAULT_MAX_ATOMS,
    DEFAULT_MIN_DISTANCE,
    KINDS,
    generate,
    iter_files,
    parse_system,
    split_of,
)

#: Stick patterns are stored up to this Q (1/Angstrom), beyond Cu K-alpha's 8.15.
STORED_Q_MAX = 8.5


#: The paper's wavelength (Mo K-alpha, Angstrom) and the Q reaching 2-theta = 180 deg there.
PAPER_WAVELENGTH = 0.71073


PAPER_Q_MAX = 4 * math.pi / PAPER_WAVELENGTH + 0.01


SHARD_PATTERN = "shard-{:05d}.npz"


CONFIG_NAME = "build.json"


@dataclass(frozen=True)
class BuildConfig:
    """What a dataset build makes.

    Attributes:
        generators: generator kinds ('prototypes', 'random', 'dimers', 'files:DIR'); ``count`` is split evenly.
        system: crystal-system name or comma-separated space groups.
        count: crystals requested in total (before deduplication).
        seed: build seed; shard s uses seed [seed, s].
        shard_size: crystals per shard.
        workers: worker processes.
        min_distance: smallest interatomic distance (Angstrom).
        covalent_factor: smallest distance as a fraction of the sum of covalent radii.
        max_atoms: largest conventional cell (atoms).
        timeout_s: per-candidate generator time limit (seconds).
        fractions: train/val/test fractions of the hash split.
        paper_encoding: store the paper's Mo K-alpha 2-theta encoding (zeros otherwise).
        perturb: prototypes: largest symmetry-keeping displacement of each site (Angstrom).
        group_swap: prototypes: an element's own structure may take another element of its group.
        variants: crystals kept per (formula, space group) at load time; more than 1 only makes
            sense with ``perturb`` (free-coordinate variants of one compound).
    """

    generators: tuple[str, ...] = ("prototypes",)
    system: str = "cubic"
    count: int = 1000
    seed: int = 0
    shard_size: int = 250
    workers: int = 2
    min_distance: float = DEFAULT_MIN_DISTANCE
    covalent_factor: float = DEFAULT_COVALENT_FACTOR
    max_atoms: int = DEFAULT_MAX_ATOMS
    timeout_s: float = 5.0
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    paper_encoding: bool = True
    perturb: float = 0.0
    group_swap: bool = False
    variants: int = 1

    def __post_init__(self) -> None:
        if self.count <= 0:
            raise InputError(f"--count {self.count} must be a positive integer")
        if self.shard_size <= 0:
            raise InputError(f"--shard-size {self.shard_size} must be a positive integer")
        if self.workers <= 0:
            raise InputError(f"--workers {self.workers} must be a positive integer")
        if self.perturb < 0:
            raise InputError(f"--perturb {self.perturb} must be a non-negative distance in Angstrom")
        if self.variants <= 0:
            raise InputError(f"--variants {self.variants} must be a positive integer")
        if not self.generators:
            raise InputError("--generator is empty; use prototypes, random, dimers or files:DIR")
        for g in self.generators:
            if g not in KINDS and not g.startswith("files:"):
                raise InputError(f"unknown generator '{g}'; use prototypes, random, dimers or files:DIR")
        parse_system(self.system)

    def content_dict(self) -> dict:
        """Settings that determine the shard contents (workers excluded)."""
        d = dataclasses.asdict(self)
        d.pop("workers")
        # Settings at their defaults are left out, so folders built before the options still resume.
        for name, default in (("paper_encoding", True), ("perturb", 0.0), ("group_swap", False), ("variants", 1)):
            if d[name] == default:
                d.pop(name)
        d["generators"] = list(self.generators)
        d["fractions"] = list(self.fractions)
        return d


@dataclass(frozen=True)
class ShardTask:
    """One shard: its index, generator, number of crystals and (files only) the slice start."""

    index: int
    generator: str
    count: int
    offset: int


@dataclass(frozen=True)
class Record:
    """One training example: the crystal, its stick pattern (Q 1/A, |F|^2 e^2), paper encoding and split."""

    crystal: Crystal
    q: np.ndarray
    intensity: np.ndarray
    xrd_paper: np.ndarray
    split: str
    generator: str = ""


def shard_plan(cfg: BuildConfig) -> list[ShardTask]:
    """The shards of a build, in index order; ``count`` is split evenly between generators."""
    n_gen = len(cfg.generators)
    tasks: list[ShardTask] = []
    for gi, gen in enumerate(cfg.generators):
        total = cfg.count // n_gen + (1 if gi < cfg.count % n_gen else 0)
        for start in range(0, total, cfg.shard_size):
            tasks.append(ShardTask(len(tasks), gen, min(cfg.shard_size, total - start), start))
    return tasks


def parse_shard(spec: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(t) for t in spec.split("/"))
    except ValueError:
        raise InputError(f"--shard '{spec}' must look like i/n, e.g. 0/4") from None
    if n <= 0 or not 0 <= i < n:
        raise InputError(f"--shard '{spec}' needs 0 <= i < n")
    return i, n


def _record_arrays(crystal: Crystal, paper_encoding: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    st = sticks(crystal, q_max=STORED_Q_MAX, b_iso=0.0)
    if not paper_encoding:  # the Mo 0-180 deg sticks cost most of the time for large cells
        return st.q, st.intensity, np.zeros(1024, dtype=np.float32)
    paper = encode_two_theta(sticks(crystal, q_max=PAPER_Q_MAX, b_iso=0.0), PAPER_WAVELENGTH)
    return st.q, st.intensity, paper


def _shard_crystals(cfg: BuildConfig, task: ShardTask) -> list[Crystal]:
    if task.generator.startswith("files:"):
        found = iter_files(task.generator[len("files:"):], parse_system(cfg.system), cfg.max_atoms)
        return found[task.offset:task.offset + task.count]
    return generate(task.generator, cfg.system, task.count, [cfg.seed, task.index],
                    min_distance=cfg.min_distance, covalent_factor=cfg.covalent_factor,
                    max_atoms=cfg.max_atoms, timeout_s=cfg.timeout_s, perturb=cfg.perturb,
                    group_swap=cfg.group_swap)


def shard_arrays(crystals: Sequence[Crystal], generator: str,
                 fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 paper_encoding: bool = True) -> dict[str, np.ndarray]:
    """The arrays stored in one shard file for ``crystals`` (paper encoding zero when not wanted)."""
    pats = [_record_arrays(c, paper_encoding) for c in crystals]
    n_atoms = [len(c.numbers) for c in crystals]
    n_q = [len(p[0]) for p in pats]
    return {
        "lattice": np.array([c.lattice for c in crystals], dtype=np.float64).reshape(-1, 3, 3),
        "atom_offsets": np.concatenate([[0], np.cumsum(n_atoms)]).astype(np.int64),
        "frac": np.concatenate([c.frac for c in crystals] or [np.zeros((0, 3))]).astype(np.float64),
        "numbers": np.concatenate([c.numbers for c in crystals] or [np.zeros(0)]).astype(np.int64),
        "occupancy": np.concatenate([c.occupancy for c in crystals] or [np.zeros(0)]).astype(np.float64),
        "formula": np.array([c.formula for c in crystals], dtype=np.str_),
        "spacegroup": np.array([c.spacegroup for c in crystals], dtype=np.int64),
        "q_offsets": np.concatenate([[0], np.cumsum(n_q)]).astype(np.int64),
        "q": np.concatenate([p[0] for p in pats] or [np.zeros(0)]).astype(np.float64),
        "intensity": np.concatenate([p[1] for p in pats] or [np.zeros(0)]).astype(np.float64),
        "xrd_paper": np.array([p[2] for p in pats], dtype=np.float32).reshape(-1, 1024),
        "split": np.array([split_of(c.formula, c.spacegroup, fractions) for c in crystals], dtype=np.str_),
        "generator": np.array([generator] * len(crystals), dtype=np.str_),
    }


def build_shard(cfg: BuildConfig, task: ShardTask, out_dir: str | Path) -> int:
    """Generate and write one shard atomically; returns its number of crystals."""
    crystals = _shard_crystals(cfg, task)
    arrays = shard_arrays(crystals, task.generator, cfg.fractions, cfg.paper_encoding)
    with atomic_path(Path(out_dir) / SHARD_PATTERN.format(task.index)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return len(crystals)
