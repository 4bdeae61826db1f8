"""Merge `powdersolve evaluate` reports of disjoint structure sets into one report.

A slow evaluation (``--modify-symmetry`` costs about a minute per crystal) can run as several
processes, each on part of the structure files; this joins their JSONs. Means (top level,
baselines, per space group) are the crystal-weighted means of the parts, which is exact; medians
and standard deviations are recomputed from the per-crystal values. The parts must share the
protocol (weights, samples, grid, modification, seed).

    python benchmarks/merge_evaluations.py --out merged.json part_a.json part_b.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from powdersolve.fileio import atomic_write_text

#: Protocol fields that differ between the parts without changing what was measured.
_FREE = ("timing",)


def _weighted(parts: list[dict], key: str) -> float | None:
    vals = [(p[key], p["n"]) for p in parts if p.get(key) is not None]
    if len(vals) != len(parts):
        return None
    return float(sum(v * n for v, n in vals) / sum(n for _, n in vals))


def merge(docs: list[dict]) -> dict:
    """One report from the reports of disjoint structure sets (see the module docstring)."""
    protocols = [{k: v for k, v in d["protocol"].items() if k not in _FREE} for d in docs]
    if any(p != protocols[0] for p in protocols[1:]):
        raise SystemExit("the reports were made with different protocols; they cannot be merged")
    files = [c["file"] for d in docs for c in d["per_crystal"]]
    if len(set(files)) != len(files):
        raise SystemExit("the reports share crystals; merge only disjoint sets")
    out = dict(docs[0])
    out["n"] = sum(d["n"] for d in docs)
    out["per_crystal"] = sorted((c for d in docs for c in d["per_crystal"]), key=lambda c: c["file"])
    for key in docs[0]:
        if key.endswith("_mean"):
            out[key] = _weighted(docs, key)
        elif key.endswith(("_median", "_std")):
            field = key.rsplit("_", 1)[0]
            vals = np.array([c[field] for c in out["per_crystal"] if c.get(field) is not None], dtype=float)
            stat = np.median(vals) if key.endswith("_median") else vals.std()
            out[key] = float(stat) if len(vals) else None
    out["baselines"] = {name: {k: _weighted([dict(d["baselines"][name], n=d["n"]) for d in docs], k)
                               for k in docs[0]["baselines"][name]}
                        for name in docs[0]["baselines"]}
    groups = sorted({g for d in docs for g in d["per_spacegroup"]}, key=int)
    out["per_spacegroup"] = {}
    for g in groups:
        parts = [d["per_spacegroup"][g] for d in docs if g in d["per_spacegroup"]]
        out["per_spacegroup"][g] = {k: (sum(p["n"] for p in parts) if k == "n" else _weighted(parts, k))
                                    for k in parts[0]}
    out["timing"] = {k: _weighted([dict(d["timing"], n=d["n"]) for d in docs], k) for k in docs[0].get("timing", {})}
    out["merged_from"] = len(docs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    merged = merge([json.loads(p.read_text()) for p in args.parts])
    atomic_write_text(args.out, json.dumps(merged, indent=2) + "\n")
    print(f"n={merged['n']}  CC {merged['cc_mean']:.3f}  SSIM {merged['ssim_mean']:.3f}  -> {args.out}")


if __name__ == "__main__":
    main()
