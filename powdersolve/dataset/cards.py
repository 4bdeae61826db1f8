"""Data cards: what a built dataset holds (counts by system, group, element, split) and its hash."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
from pymatgen.core import Element

from powdersolve.dataset.load import load_dataset, shard_files
from powdersolve.dataset.shards import CONFIG_NAME, BuildConfig
from powdersolve.fileio import atomic_write_text, sha256_file
from powdersolve.structures.io import crystal_system


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
