"""Indexing benchmark: right-cell rates on independently simulated patterns of the real structures.

For every CIF in ../shared/benchmark/real/<system>/: pymatgen XRDCalculator sticks (Cu K-alpha1,
2-theta 5-120 deg), broadened here by a pseudo-Voigt (FWHM 0.08 deg, eta 0.5), a flat background of
1 % of the strongest peak, scaled to 10^4 counts and Poisson noise; optionally a K-alpha2 copy
(half intensity), whose peaks the picker recognises and drops. Peaks are picked with powdersolve's peak finder and
indexed with :func:`powdersolve.indexing.index_peaks` (all seven systems, zero shift fitted).

"Right cell": the candidate's Niggli-reduced primitive cell equals the truth's within 0.5 % in
lengths and 0.5 deg in angles; "right conventional": also the same crystal system (a trigonal
crystal with a hexagonal P lattice counts as hexagonal). Measured patterns: none are in the
repository, so none are run.

``--dev``: the generated development set on which the indexing's design choices are made (the real
set is run once per choice, to report). :func:`dev_structures` builds, from a seed, crystals of
every system with random cells and coordinates (pymatgen ``Structure.from_spacegroup``), including
glide/screw groups (P2_1/c, C2/c, Pnma, Cmcm, Pbca) and pseudo-symmetric cells (orthorhombic within
1 % of tetragonal, monoclinic with beta within 1.5 deg of 90). Their peak lists come straight from
pymatgen sticks (:func:`dev_peaks`): sticks within 0.05 deg merge, lines under 1 % and the two
weakest of the first 30 are dropped, one spurious line is added among the first ten, 0.01 deg noise
and a zero shift of up to 0.05 deg.

    python benchmarks/index_benchmark.py [--systems cubic,...] [--limit N] [--kalpha2] [--dev] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from powdersolve.diffraction.sticks import WAVELENGTHS
from powdersolve.fileio import atomic_write_text
from powdersolve.indexing import IndexConfig, index_counts, index_peaks
from powdersolve.indexing.observations import observations
from powdersolve.indexing.reduction import niggli, same_lattice

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "benchmark" / "real"
SYSTEMS = ("cubic", "hexagonal", "trigonal", "tetragonal", "orthorhombic", "monoclinic", "triclinic")
CU1, CU2 = WAVELENGTHS["CuKa1"], WAVELENGTHS["CuKa2"]


def pseudo_voigt(x: np.ndarray, fwhm: float, eta: float) -> np.ndarray:
    """Unit-area pseudo-Voigt of x (deg) - written here, independent of powdersolve's profile code."""
    s = fwhm / (2 * np.sqrt(2 * np.log(2)))
    g = np.exp(-x**2 / (2 * s**2)) / (s * np.sqrt(2 * np.pi))
    lor = (fwhm / 2) / np.pi / (x**2 + (fwhm / 2) ** 2)
    return eta * lor + (1 - eta) * g


def simulate(structure: Structure, rng: np.random.Generator, kalpha2: bool, step: float = 0.01
             ) -> tuple[np.ndarray, np.ndarray]:
    """(2-theta deg, counts) of an independently simulated Cu pattern, 5-120 deg."""
    grid = np.arange(5.0, 120.0 + step / 2, step)
    y = np.zeros_like(grid)
    lines = [(CU1, 1.0)] + ([(CU2, 0.5)] if kalpha2 else [])
    for lam, w in lines:
        pat = XRDCalculator(wavelength=lam).get_pattern(structure, scaled=False, two_theta_range=(4.0, 121.0))
        for x, h in zip(pat.x, pat.y):
            lo, hi = np.searchsorted(grid, [x - 4, x + 4])
            y[lo:hi] += w * h * pseudo_voigt(grid[lo:hi] - x, 0.08, 0.5)
    y *= 1e4 / y.max()
    y += 0.01 * y.max()
    return grid, rng.poisson(y).astype(np.float64)


#: (space group, species) of the dev set per system; cells drawn in :func:`_dev_lattice`.
DEV_GROUPS = {
    "cubic": [("Fm-3m", 2), ("Pm-3m", 2), ("Ia-3", 2)],
    "hexagonal": [("P6_3/mmc", 2), ("P6/mmm", 2), ("P-3m1", 2)],
    "trigonal": [("R-3m", 2), ("R-3c", 2)],
    "tetragonal": [("I4/mmm", 2), ("P4/nmm", 2), ("P4_2/mnm", 2), ("I4_1/amd", 2)],
    "orthorhombic": [("Pnma", 2), ("Cmcm", 2), ("Pbca", 1), ("Pmmm", 3), ("Immm", 2), ("Fddd", 1), ("Pnma", 1),
                     ("Cmce", 1)],
    "monoclinic": [("P2_1/c", 1), ("C2/c", 1), ("P2_1/m", 2), ("C2/m", 2), ("P2/c", 2), ("P2_1/c", 2)],
    "triclinic": [("P-1", 2)],
}


def _dev_lattice(system: str, rng: np.random.Generator, pseudo: bool) -> Lattice:
    a, b, c = rng.uniform(3.5, 11.0, 3)
    if system == "cubic":
        return Lattice.cubic(a)
    if system in ("hexagonal", "trigonal"):
        return Lattice.hexagonal(a, c * (1.8 if system == "trigonal" else 1.0))
    if system == "tetragonal":
        return Lattice.tetragonal(a, c)
    if system == "orthorhombic":
        if pseudo:  # within 1 % of tetragonal
            b = a * (1 + rng.choice([-1, 1]) * rng.uniform(0.004, 0.01))
        return Lattice.orthorhombic(a, b, c)
    if system == "monoclinic":
        beta = 90 + rng.uniform(0.7, 1.5) if pseudo else rng.uniform(93, 122)
        return Lattice.monoclinic(a, b, c, beta)
    return Lattice.from_parameters(a, b, c, *rng.uniform(70, 110, 3))


def dev_structures(seed: int = 0) -> list[tuple[str, Structure]]:
    """(name, structure) of the generated development set (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = []
    species = ["Na", "Cl", "O", "Ti", "Zn", "Ba"]
    for system, groups in DEV_GROUPS.items():
        for sg, n_species in groups:
            for rep in range(2):
                pseudo = rep == 1 and system in ("orthorhombic", "monoclinic") and sg in ("Pnma", "Pmmm", "P2_1/c",
                                                                                      "P2/c")
                for _ in range(20):  # redraw crystals whose atoms overlap
                    lat = _dev_lattice(system, rng, pseudo)
                    sp = list(rng.choice(species, n_species, replace=False))
                    st = Structure.from_spacegroup(sg, lat, sp, rng.uniform(0, 1, (n_species, 3)).tolist())
                    if len(st) <= 120 and (len(st) < 2 or float(np.min(st.distance_matrix
                                                                       + 9 * np.eye(len(st)))) > 1.6):
                        try:
                            truth(st)
                            break
                        except Exception:  # spglib finds no symmetry for some draws: draw again
                            continue
                out.append((f"{system}/{sg.replace('/', '_')}_{rep}{'_pseudo' if pseudo else ''}", st))
    return out


def dev_peaks(structure: Structure, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """2-theta (deg, Cu K-alpha1) a peak picker would report, with the defects of the module docstring,
    and the zero shift added (deg)."""
    pat = XRDCalculator(wavelength="CuKa1").get_pattern(structure, two_theta_range=(5, 120))
    tt, y = np.asarray(pat.x), np.asarray(pat.y)
    group = np.concatenate([[0], np.cumsum(np.diff(tt) > 0.05)])
    inten = np.bincount(group, y)
    pos = np.bincount(group, y * tt) / inten
    keep = inten > 0.01 * inten.max()
    pos, inten = pos[keep][:30], inten[keep][:30]
    if pos.size > 12:
        pos = np.delete(pos, np.argsort(inten)[:2])
    pos = np.sort(np.append(pos, rng.uniform(pos[1], pos[min(9, pos.size - 1)])))
    zero = float(rng.uniform(-0.05, 0.05))
    return pos + rng.normal(0, 0.01, pos.size) + zero, zero


def run_dev(name: str, structure: Structure, rng: np.random.Generator, config: IndexConfig) -> dict:
    red, system = truth(structure)
    tt, _ = dev_peaks(structure, rng)
    t0 = time.monotonic()
    obs = observations(None, tt, CU1, config.tol, config.zero_range, config.max_lines)
    sols = index_peaks(obs, config)
    return _row(name, system, red, sols, time.monotonic() - t0, tt.size)


def _row(name: str, system: str, red: tuple[np.ndarray, np.ndarray], sols: list, dt: float, n_peaks: int
         ) -> dict:
    ranks = [i for i, s in enumerate(sols) if same_lattice(red, niggli(s.lattice(), s.centring))]
    conv = [i for i in ranks if sols[i].system == system]
    top = sols[0] if sols else None
    return {"file": name, "system": system, "n_peaks": n_peaks,
            "rank": ranks[0] + 1 if ranks else None, "rank_conventional": conv[0] + 1 if conv else None,
            "seconds": round(dt, 2),
            "top": None if top is None else {"system": top.system, "centring": top.centring,
                                             "cell": [round(v, 4) for v in top.cell], "m20": round(top.m20, 1),
                                             "n_indexed": top.n_indexed, "n_lines": top.n_lines}}


def truth(structure: Structure) -> tuple[tuple[np.ndarray, np.ndarray], str]:
    """Niggli cell of the primitive lattice and the crystal system (hexagonal for trigonal-P lattices)."""
    sga = SpacegroupAnalyzer(structure)
    system = sga.get_crystal_system()
    if system == "trigonal" and not sga.get_space_group_symbol().startswith("R"):
        system = "hexagonal"
    return niggli(sga.get_primitive_standard_structure().lattice.matrix), system


def run_one(cif: Path, rng: np.random.Generator, kalpha2: bool, config: IndexConfig) -> dict:
    structure = Structure.from_file(cif)
    red, system = truth(structure)
    tt, counts = simulate(structure, rng, kalpha2)
    t0 = time.monotonic()
    picked, sols = index_counts(tt, counts, CU1, config)
    return _row(f"{cif.parent.name}/{cif.name}", system, red, sols, time.monotonic() - t0, len(picked.peaks))


def summarise(rows: list[dict]) -> dict:
    out = {}
    for system in (*SYSTEMS, "all"):
        sel = [r for r in rows if system in ("all", r["system"])]
        if not sel:
            continue
        n = len(sel)
        out[system] = {"n": n,
                       "top1": sum(r["rank"] == 1 for r in sel) / n,
                       "top5": sum(r["rank"] is not None and r["rank"] <= 5 for r in sel) / n,
                       "top1_conventional": sum(r["rank_conventional"] == 1 for r in sel) / n,
                       "seconds_mean": float(np.mean([r["seconds"] for r in sel])),
                       "seconds_max": float(np.max([r["seconds"] for r in sel]))}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--limit", type=int, default=0, help="at most this many files per system (0: all)")
    ap.add_argument("--kalpha2", action="store_true", help="add K-alpha2 (recognised and dropped by the picker)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dev", action="store_true", help="the generated development set instead of the real one")
    ap.add_argument("--only", default="", help="dev set: only names containing this")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    name = "index_benchmark_dev.json" if args.dev else "index_benchmark.json"
    args.out = args.out or ROOT / "benchmarks" / "results" / name
    config = IndexConfig(zero_range=0.1)
    rng = np.random.default_rng(args.seed)
    if args.dev:
        wanted = args.systems.split(",")
        rows = []
        for dev_name, st in dev_structures(args.seed):
            if dev_name.split("/")[0] not in wanted or args.only not in dev_name:
                continue
            try:
                r = run_dev(dev_name, st, rng, config)
            except Exception as exc:  # a benchmark row, not a crash: record the failure
                r = {"file": dev_name, "system": dev_name.split("/")[0], "rank": None, "rank_conventional": None,
                     "seconds": 0.0, "error": f"{type(exc).__name__}: {exc}"}
            rows.append(r)
            _print_row(r)
        return _finish(rows, args, config, "generated dev set: pymatgen sticks as peak positions "
                                           "(see dev_peaks)")
    if not REAL.is_dir():
        print(f"error: {REAL} is missing", file=sys.stderr)
        return 2
    rows = []
    for system in args.systems.split(","):
        files = sorted((REAL / system).glob("*.cif"))
        for cif in files[: args.limit or None]:
            try:
                r = run_one(cif, rng, args.kalpha2, config)
            except Exception as exc:  # a benchmark row, not a crash: record the failure
                r = {"file": f"{system}/{cif.name}", "system": system, "rank": None, "rank_conventional": None,
                     "seconds": 0.0, "error": f"{type(exc).__name__}: {exc}"}
            rows.append(r)
            _print_row(r)
    return _finish(rows, args, config, "pymatgen XRDCalculator sticks, pseudo-Voigt FWHM 0.08 deg eta 0.5 "
                                       "(benchmark code), 1% flat background, 1e4 counts max, Poisson; peaks "
                                       "picked by powdersolve")


def _print_row(r: dict) -> None:
    top = r.get("top") or {}
    print(f"{r['file']:45s} {r['system']:12s} rank={r['rank']} conv={r['rank_conventional']} "
          f"{r['seconds']:5.1f}s top={top.get('system')} {top.get('centring')} {top.get('cell')} "
          f"M20={top.get('m20')} {r.get('error', '')}", flush=True)


def _finish(rows: list[dict], args: argparse.Namespace, config: IndexConfig, simulator: str) -> int:
    summary = summarise(rows)
    print(f"\n{'system':14s} {'n':>3s} {'top1':>6s} {'top5':>6s} {'conv1':>6s} {'s/mean':>7s} {'s/max':>6s}")
    for k, v in summary.items():
        print(f"{k:14s} {v['n']:3d} {v['top1']:6.2f} {v['top5']:6.2f} {v['top1_conventional']:6.2f} "
              f"{v['seconds_mean']:7.1f} {v['seconds_max']:6.1f}")
    meta = {"simulator": simulator, "set": "dev (generated)" if args.dev else "real",
            "wavelength": "CuKa1" + (" + CuKa2 (doublet peaks dropped)" if args.kalpha2 else ""), "two_theta": [5, 120],
            "config": {"tol": config.tol, "zero_range": config.zero_range, "max_lines": config.max_lines,
                       "time_budget_s": config.time_budget_s},
            "measured_patterns": "none in the repository", "seed": args.seed}
    atomic_write_text(args.out, json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
