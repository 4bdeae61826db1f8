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
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing as mp
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Element

from powdersolve.density import DEFAULT_B, density_at, stratified_points
from powdersolve.diffraction import encode_two_theta, sticks
from powdersolve.errors import InputError, OutputError
from powdersolve.fileio import atomic_path, atomic_write_text, sha256_file
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
from powdersolve.structures.io import crystal_system

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
        generators: generator kinds ('prototypes', 'random', 'files:DIR'); ``count`` is split evenly.
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
            raise InputError("--generator is empty; use prototypes, random or files:DIR")
        for g in self.generators:
            if g not in KINDS and not g.startswith("files:"):
                raise InputError(f"unknown generator '{g}'; use prototypes, random or files:DIR")
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


def card_hash(directory: str | Path) -> str:
    """SHA-256 over the names and SHA-256s of the shard files: one identifier of a dataset's content."""
    h = hashlib.sha256()
    for f in shard_files(directory):
        h.update(f"{f.name} {sha256_file(f)}\n".encode())
    return h.hexdigest()


def _histogram(values) -> dict[str, int]:
    c = Counter(values)
    return {str(k): c[k] for k in sorted(c)}


def data_card(directory: str | Path, cfg: BuildConfig | None = None) -> dict:
    """Summary of a dataset folder (deduplicated records): counts, histograms, settings, keys and hashes."""
    d = Path(directory)
    files = shard_files(d)
    records = load_dataset(d)
    n_stored = 0
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            n_stored += len(z["formula"])
    crystals = [r.crystal for r in records]
    settings = cfg.content_dict() if cfg is not None else json.loads((d / CONFIG_NAME).read_text())
    return {
        "n_records": len(records),
        "n_stored": n_stored,
        "n_duplicates_removed": n_stored - len(records),
        "seed": settings["seed"],
        "settings": settings,
        "splits": _histogram(r.split for r in records),
        "generators": _histogram(r.generator for r in records),
        "crystal_systems": _histogram(crystal_system(c.spacegroup) for c in crystals),
        "spacegroups": {str(k): v for k, v in sorted(Counter(c.spacegroup for c in crystals).items())},
        "n_species": {str(k): v for k, v in sorted(Counter(len(set(c.numbers.tolist())) for c in crystals).items())},
        "atoms_per_cell": {f"{lo}-{lo + 9}": sum(lo <= len(c.numbers) <= lo + 9 for c in crystals)
                           for lo in range(1, max([len(c.numbers) for c in crystals] + [1]) + 1, 10)},
        "elements": {Element.from_Z(z).symbol: n for z, n in
                     sorted(Counter(z for c in crystals for z in set(c.numbers.tolist())).items())},
        "shards": {f.name: sha256_file(f) for f in files},
        "card_hash": card_hash(d),
        "keys": [[c.formula, c.spacegroup, r.split] for c, r in zip(crystals, records)],
    }


def _card_markdown(card: dict) -> str:
    def table(title: str, hist: dict) -> str:
        rows = "\n".join(f"| {k} | {v} |" for k, v in hist.items())
        return f"## {title}\n\n| value | count |\n|---|---|\n{rows}\n"

    s = card["settings"]
    variants = int(s.get("variants", 1))
    kept = "unique crystals" if variants == 1 else f"crystals, up to {variants} per (formula, space group)"
    extra = ""
    if s.get("perturb", 0.0) or s.get("group_swap", False):
        extra = (f"- prototype variation: sites moved by up to {s.get('perturb', 0.0)} A keeping the space group; "
                 f"elements' own structures swapped within their group: {'yes' if s.get('group_swap') else 'no'}\n")
    head = (f"# Data card\n\n{card['n_records']} {kept} ({card['n_stored']} generated, "
            f"{card['n_duplicates_removed']} duplicates of (formula, space group) removed).\n\n"
            f"- generators: {', '.join(s['generators'])}; system: {s['system']}; seed: {s['seed']}\n{extra}"
            f"- filters: min distance {s['min_distance']} A, {s['covalent_factor']} x covalent radii, "
            f"<= {s['max_atoms']} atoms; benchmark exclusion list applied\n"
            f"- card hash (sha256 of shard hashes): `{card['card_hash']}`\n\n")
    parts = [table("Splits", card["splits"]), table("Generators", card["generators"]),
             table("Crystal systems", card["crystal_systems"]), table("Space groups", card["spacegroups"]),
             table("Number of species", card["n_species"]), table("Atoms per conventional cell",
                                                                  card["atoms_per_cell"]),
             table("Elements (crystals containing)", card["elements"])]
    keys = "\n".join(f"{f} {sg} {sp}" for f, sg, sp in card["keys"])
    return head + "\n".join(parts) + f"\n## (formula, space group, split)\n\n```\n{keys}\n```\n"


def write_data_card(directory: str | Path, cfg: BuildConfig | None = None) -> dict:
    """Write data_card.json and data_card.md into ``directory`` and return the card."""
    card = data_card(directory, cfg)
    atomic_write_text(Path(directory) / "data_card.json", json.dumps(card, indent=1) + "\n")
    atomic_write_text(Path(directory) / "data_card.md", _card_markdown(card))
    return card


class QueryPointDataset(torch.utils.data.Dataset):
    """Items for the paper's query-point model: the pattern encoding and CMED at random points.

    Each item is a dict of float32 tensors: ``xrd`` (1024,) paper encoding, ``points`` (P, 3)
    fractional coordinates, one uniformly jittered point in each of ``points_side``^3 strata
    (P = 1000 by default), ``density`` (P,) exact CMED in e/A^3 at overall B ``b_iso`` (A^2),
    plus ``lattice`` (3, 3) in Angstrom. Points are drawn from seed [seed, epoch, index], so an
    epoch is reproducible; call :meth:`set_epoch` to draw new points.
    """

    def __init__(self, records: Sequence[Record], points_side: int = 10, b_iso: float = DEFAULT_B,
                 seed: int = 0) -> None:
        self.records = list(records)
        self.points_side = points_side
        self.b_iso = b_iso
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw a fresh set of query points for every item from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        r = self.records[index]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        pts = stratified_points(self.points_side, rng)
        rho = density_at(r.crystal, pts, self.b_iso)
        return {
            "xrd": torch.from_numpy(np.asarray(r.xrd_paper, dtype=np.float32)),
            "points": torch.from_numpy(pts.astype(np.float32)),
            "density": torch.from_numpy(rho.astype(np.float32)),
            "lattice": torch.from_numpy(r.crystal.lattice.astype(np.float32)),
        }
