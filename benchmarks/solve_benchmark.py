"""Structure-solution benchmark on the held-out real structures: pattern -> ranked refined candidates.

For each CIF in ../shared/benchmark/real/<system>/ two Cu K-alpha patterns (5-90 deg 2-theta) are simulated
with :mod:`powdersolve.diffraction.profile`:

- ``stick``: stick-like (FWHM ~0.02 deg, no K-alpha2, no background, no noise), solved without
  K-alpha2 stripping or background removal;
- ``measured``: measured-like (Caglioti U, W, eta 0.4, K-alpha2, Chebyshev + 1/2theta background,
  Poisson noise at ~20000 peak counts), solved with the default preprocessing;
- ``independent``: not our simulator at all (:mod:`independent`): pymatgen XRDCalculator sticks,
  pseudo-Voigt FWHM 0.08 deg eta 0.5, flat background 1% of the strongest peak, Poisson noise,
  Cu K-alpha1, 5-120 deg; solved with the default preprocessing;
- ``lab``: the same independent simulator as a laboratory scan (:func:`independent.lab_pattern`): K-alpha1 +
  K-alpha2, widths growing with angle, Lorentzian fraction 0.3-0.7, a zero error of 0.03 deg and a falling
  background; ``lab-si``: the same with a silicon impurity whose strongest peak is 3 % of the sample's.
  Both solved with the default preprocessing.

Every case is solved with the true composition and the true cell (``--no-cell``: the composition only,
the cell indexed from the pattern over all seven crystal systems and the model chosen by it), in these
modes:

- ``model``: :func:`powdersolve.solve.pipeline.solve` (``--samples`` latent samples + their mean);
- ``wrong-pattern``: the model given the pattern of the next case of the same system (composition and
  cell of this one): matches must collapse;
- ``no-model``: ``--samples`` structures of random atom positions with the true atoms per cell, same
  refinement and ranking: what refinement alone finds;
- ``oracle``: the exact CMED (grid 50, B 8 A^2) -> atoms -> refinement: the ceiling of the
  density -> structure stage.

Scores per (mode, pattern): match rate of pymatgen StructureMatcher at defaults (ltol 0.2, stol 0.3,
angle_tol 5) and loose (0.3, 0.5, 10) for top-1, best-of-5 and best-of-20 distinct ranked candidates;
normalised RMS displacement (get_rms_dist first value, default matcher, top-1 when it matches); Rwp of
the top candidate (background-subtracted, unit weights); seconds per pattern. A failing case counts as
a miss and its error is recorded; the run never stops on one.

Usage:
    .venv/bin/python benchmarks/solve_benchmark.py [--weights PATH | --weights cubic=P --weights trigonal=P]
        [--systems cubic,trigonal] [--limit N] [--samples 20] [--modes model,wrong-pattern,no-model,oracle]
        [--patterns stick,measured] [--json benchmarks/results/solve_<systems>.json]
        [--dataset data/build/trigonal_r --systems trigonal]  # generated crystals, for choosing settings
        [--rwp-only] [--no-map-symmetry] [--merge-p1-pairs] [--n-z-averaged 1]  # variants of the solve settings
        [--no-modified-map]  # without the density-modified mean map (the default before 2026-12-03)
        [--no-flipped-map]  # without the charge-flipped mean map (the default before 2026-12-07)
        [--recycle 0]  # without recycling the best candidates (the default before 2026-12-07)
        [--no-missed-symmetry]  # the best candidate not searched for symmetry it missed (before 2026-12-07)
        [--patterns lab-si --known-phase Si]  # the silicon of the lab-si patterns named, as a user would
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from independent import CU_KA1, independent_pattern, lab_pattern
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from powdersolve.density import DensityConfig, density_grid
from powdersolve.diffraction.known_phases import known_phase
from powdersolve.diffraction.profile import ProfileConfig, profile_pattern
from powdersolve.diffraction.sticks import WAVELENGTHS, q_from_two_theta, sticks
from powdersolve.fileio import atomic_write_text
from powdersolve.formats.pattern import Pattern, make_pattern
from powdersolve.metrics import score_predictions
from powdersolve.predict import PredictConfig
from powdersolve.solve.config import SolveConfig
from powdersolve.solve.pipeline import solve, solve_from_grids, solve_from_structures
from powdersolve.solve.result import SolveResult
from powdersolve.structures import load_crystal, standardize
from powdersolve.structures.crystal import Crystal

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "benchmark" / "real"
RESULTS = ROOT / "benchmarks" / "results"
MODES = ("model", "wrong-pattern", "no-model", "oracle")
PATTERNS = ("stick", "measured", "independent", "lab", "lab-si")
LINE = "CuKa1"
TWO_THETA = (5.0, 90.0, 0.01)  # start, stop, step (degrees)
MATCHERS = {"default": dict(ltol=0.2, stol=0.3, angle_tol=5), "loose": dict(ltol=0.3, stol=0.5, angle_tol=10)}
TOP_K = (1, 5, 20)
PROFILES = {
    "stick": ProfileConfig(u=0.0, v=0.0, w=0.0004, eta0=0.5, scale=10000.0),
    "measured": ProfileConfig(u=0.004, w=0.002, eta0=0.4, kalpha2=True, background=(300.0, -80.0, 30.0),
                              background_inverse=500.0, scale=20000.0, noise=True),
}


@dataclass
class Case:
    system: str
    name: str
    crystal: Crystal
    truth: Structure
    patterns: dict[str, Pattern]


def simulate(crystal: Crystal, kind: str, seed: int, name: str) -> Pattern:
    """A simulated pattern of ``crystal`` (see the module docstring) as a :class:`Pattern` at K-alpha1."""
    lam = WAVELENGTHS[LINE]
    if kind == "independent":
        tt, y, _ = independent_pattern(crystal.to_structure(), seed=seed)
        return make_pattern(tt, y, None, CU_KA1, Path(f"{name}_{kind}.xy"), "xy")
    if kind in ("lab", "lab-si"):
        tt, y = lab_pattern(crystal.to_structure(), seed=seed, impurity=0.03 if kind == "lab-si" else 0.0)
        return make_pattern(tt, y, None, CU_KA1, Path(f"{name}_{kind}.xy"), "xy")
    lo, hi, step = TWO_THETA
    s = sticks(crystal, q_max=float(q_from_two_theta(min(hi + 5, 179), lam)) * 1.01, b_iso=1.0)
    tt = np.arange(lo, hi, step)
    y = profile_pattern(s, lam, tt, PROFILES[kind], np.random.default_rng(seed))
    return make_pattern(tt, y, None, lam, Path(f"{name}_{kind}.xy"), "xy")


def predict_config(case: Case, kind: str, weights: Path | None, with_cell: bool = True,
                   known_phases: tuple[Crystal, ...] = ()) -> PredictConfig:
    """True composition, and the true cell unless ``with_cell`` is False (then indexed); stick patterns
    skip K-alpha2 stripping and background removal; ``known_phases`` named as a user would."""
    cell = tuple(float(v) for v in case.crystal.cell_parameters) if with_cell else None
    return PredictConfig(composition=case.truth.composition.formula.replace(" ", ""),
                         cell=cell,  # type: ignore[arg-type]
                         weights=weights, strip_kalpha2=kind != "stick", background=kind != "stick",
                         known_phases=known_phases)


def random_structures(truth: Structure, n: int, seed: int) -> list[Structure]:
    """``n`` structures with the true lattice and atoms per cell at uniform random positions."""
    rng = np.random.default_rng(seed)
    return [Structure(truth.lattice, truth.species, rng.random((len(truth), 3))) for _ in range(n)]


def standard_density(structure: Structure, grid: int) -> np.ndarray:
    """The CMED (B 8 A^2) of a structure in its conventional standard cell, as the truth's is built."""
    s, sg = standardize(structure)
    return density_grid(Crystal.from_structure(s, sg), DensityConfig(b_iso=8.0, grid=grid))


def map_scores(result: SolveResult | None, truth: Crystal, grid: int) -> dict:
    """The pipeline's density: the CMED of the top-1 (and best of the top 5) solved structures scored
    against the true CMED by the evaluate protocol (CC over rotations and shifts, paper SSIM over
    rotations without shifts, SSIM at the CC alignment). With a prediction on the same grid the
    structures sit at the origin of the network's map (:meth:`SolveResult.solved_density`), else in
    their standard setting."""
    if result is None or not result.candidates:
        return {}
    target = density_grid(truth, DensityConfig(b_iso=8.0, grid=grid))
    top = range(1, min(5, len(result.candidates)) + 1)
    on_map = result.prediction is not None and result.prediction.mean.shape == target.shape
    if on_map:
        grids = [result.solved_density(rank, grid) for rank in top]
    else:
        grids = [standard_density(result.candidates[rank - 1].result.structure, grid) for rank in top]
    top1 = score_predictions(grids[0][None], target)
    top5 = score_predictions(np.stack(grids), target)
    return {"map_cc_top1": top1.cc, "map_ssim_top1": top1.ssim, "map_cc_top5": top5.cc, "map_ssim_top5": top5.ssim,
            "map_ssim_aligned_top1": top1.ssim_aligned, "map_ssim_aligned_top5": top5.ssim_aligned,
            "map_origin": "network map" if on_map else "standard setting"}


#: Enantiomorphic space-group pairs: a powder pattern cannot tell one from the other.
ENANTIOMORPHS = {frozenset(p) for p in ((76, 78), (91, 95), (92, 96), (144, 145), (151, 153), (152, 154), (169, 170),
                                        (171, 172), (178, 179), (180, 181), (212, 213))}


def same_group(found: int | None, true: int) -> bool:
    """Whether ``found`` is the true space group or its enantiomorph."""
    return found == true or frozenset((found, true)) in ENANTIOMORPHS


def score_case(result: SolveResult | None, truth: Structure, crystal: Crystal | None = None, grid: int = 50) -> dict:
    """Match flags per matcher and k, RMS of the top-1 (default matcher) and top-1 Rwp; with ``crystal``
    (the truth) also :func:`map_scores`."""
    out: dict = {}
    cands = [c.result.structure for c in result.candidates] if result is not None else []
    if crystal is not None:
        out.update(map_scores(result, crystal, grid))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mname, kw in MATCHERS.items():
            matcher = StructureMatcher(**kw)
            hits = []
            for s in cands[: max(TOP_K)]:
                try:
                    hits.append(bool(matcher.fit(s, truth)))
                except Exception:  # a degenerate candidate: not a match
                    hits.append(False)
            for k in TOP_K:
                out[f"{mname}_top{k}"] = bool(any(hits[:k]))
        rms = None
        if cands:
            try:
                r = StructureMatcher(**MATCHERS["default"]).get_rms_dist(cands[0], truth)
                rms = None if r is None else float(r[0])
            except Exception:
                rms = None
    out["rms"] = rms
    out["rwp"] = float(result.best.result.rwp) if result is not None else None
    out["top_formula"] = result.best.formula if result is not None else None
    out["top_spacegroup"] = result.best.spacegroup if result is not None else None
    out["true_spacegroup"] = truth.get_space_group_info(symprec=0.01)[1]
    # The product's answer is right in its space group too (enantiomorphs allowed).
    out["spacegroup_top1"] = out["default_top1"] and same_group(out["top_spacegroup"], out["true_spacegroup"])
    out["framework_top1"] = bool(cands) and framework_match(cands[0], truth)
    out["n_candidates"] = len(cands)
    out["timings"] = {k: round(v, 3) for k, v in result.timings.items()} if result is not None else None
    # Whether SolveConfig.time_limit cut the solve short (a stage or candidate not begun).
    out["time_limited"] = result is not None and any("time limit" in n for n in result.notes)
    return out


#: Elements a laboratory X-ray pattern barely sees (1-3 electrons): left out of the framework match.
LIGHT = ("H", "D", "Li")


def framework_match(candidate: Structure, truth: Structure) -> bool:
    """Whether ``candidate`` matches ``truth`` (StructureMatcher defaults) with H and Li left out of both: the
    framework a laboratory pattern shows. Labelled as such wherever reported; the headline match keeps them."""
    light = [el for el in LIGHT if el in truth.composition or el in candidate.composition]
    if not light:
        return False  # nothing to leave out: the headline match decides
    a, b = truth.copy(), candidate.copy()
    a.remove_species(light)
    b.remove_species(light)
    if not len(a) or not len(b):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bool(StructureMatcher(**MATCHERS["default"]).fit(b, a))
        except Exception:  # a degenerate candidate: not a match
            return False


def solve_config(args: argparse.Namespace) -> SolveConfig:
    """The solve settings of a run: the defaults, with the variant flags applied."""
    refine = replace(SolveConfig().refine, keep_metric=not args.split_metric)
    return SolveConfig(samples=args.samples, grid=args.grid, top_k=max(TOP_K), abstain=False, refine=refine,
                       family_first=not args.rwp_only, map_symmetry=not args.no_map_symmetry,
                       modified_map=not args.no_modified_map, flipped_map=not args.no_flipped_map,
                       skip_p1_pairs=not args.merge_p1_pairs, n_z_averaged=args.n_z_averaged,
                       all_serving_models=not args.one_model, alternate_samples=args.alternate_samples,
                       recycle=args.recycle, recycle_rounds=args.recycle_rounds, time_limit=args.time_limit or None,
                       symmetry_tolerances=() if args.no_missed_symmetry else SolveConfig.symmetry_tolerances)


def run_case(case: Case, kind: str, mode: str, cases: list[Case], args: argparse.Namespace) -> dict:
    weights = args.weights.get(case.system, args.weights.get("*"))
    cfg = solve_config(args)
    seed = zlib.crc32(f"{case.name}/{kind}".encode())
    crystal = case.crystal if args.map_scores else None
    known = tuple(known_phase(spec) for spec in args.known_phase)

    def score(result: SolveResult | None, truth: Structure) -> dict:
        return score_case(result, truth, crystal, args.grid)

    if mode == "model":
        return score(solve(case.patterns[kind], cfg, predict_config(case, kind, weights, not args.no_cell, known)),
                     case.truth)
    if mode == "wrong-pattern":
        same = [c for c in cases if c.system == case.system]
        other = same[(same.index(case) + 1) % len(same)]
        if other is case:
            raise ValueError("only one case of this system: no other pattern to give")
        return score(solve(other.patterns[kind], cfg, predict_config(case, kind, weights, not args.no_cell, known)),
                     case.truth)
    if mode == "no-model":
        structs = random_structures(case.truth, args.samples, seed)
        return score(solve_from_structures(case.patterns[kind], structs, cfg, predict_config(case, kind, None)),
                     case.truth)
    if mode == "oracle":
        grid = density_grid(case.crystal, DensityConfig(b_iso=8.0, grid=args.grid))
        res = solve_from_grids(case.patterns[kind], [grid], case.crystal.lattice,
                               predict_config(case, kind, None).composition, cfg, predict_config(case, kind, None))
        return score(res, case.truth)
    raise ValueError(f"unknown mode {mode}")


def load_cases(systems: list[str], limit: int | None, dataset: Path | None = None,
               groups: tuple[int, int] = (1, 230)) -> list[Case]:
    """The real structures of each system, or (``dataset``) the val + test crystals of a generated build
    whose space groups lie in ``groups`` (inclusive range)."""
    cases = []
    if dataset is not None:
        from powdersolve.dataset import load_dataset

        records = [r for r in load_dataset(dataset) if r.split in ("val", "test")
                   and groups[0] <= r.crystal.spacegroup <= groups[1]]
        for r in records[:limit]:
            crystal = r.crystal
            name = f"{crystal.formula}_{crystal.spacegroup}"
            pats = {k: simulate(crystal, k, zlib.crc32(f"{name}/{k}".encode()), name) for k in PATTERNS}
            cases.append(Case(systems[0], name, crystal, crystal.to_structure(), pats))
        return cases
    for system in systems:
        for cif in sorted((REAL / system).glob("*.cif"))[:limit]:
            crystal = load_crystal(cif)
            pats = {k: simulate(crystal, k, zlib.crc32(f"{cif.stem}/{k}".encode()), cif.stem) for k in PATTERNS}
            cases.append(Case(system, cif.stem, crystal, crystal.to_structure(), pats))
    return cases


def summarise(rows: list[dict]) -> list[dict]:
    """Per (system, mode, pattern): counts, match rates, median RMS / Rwp, mean seconds."""
    table = []
    keys = sorted({(r["system"], r["mode"], r["pattern"]) for r in rows}, key=lambda k: (k[0], MODES.index(k[1]), k[2]))
    for system, mode, kind in keys:
        sel = [r for r in rows if (r["system"], r["mode"], r["pattern"]) == (system, mode, kind)]
        entry = {"system": system, "mode": mode, "pattern": kind, "n": len(sel),
                 "errors": sum(r.get("error") is not None for r in sel)}
        for m in MATCHERS:
            for k in TOP_K:
                entry[f"{m}_top{k}"] = float(np.mean([bool(r.get(f"{m}_top{k}")) for r in sel]))
        rms = [r["rms"] for r in sel if r.get("rms") is not None]
        rwp = [r["rwp"] for r in sel if r.get("rwp") is not None]
        entry["median_rms"] = float(np.median(rms)) if rms else None
        entry["median_rwp"] = float(np.median(rwp)) if rwp else None
        entry["seconds_per_pattern"] = float(np.mean([r["seconds"] for r in sel]))
        entry["spacegroup_top1"] = float(np.mean([bool(r.get("spacegroup_top1")) for r in sel]))
        # Right without H and Li (or right outright): what a laboratory pattern can show.
        entry["framework_top1"] = float(np.mean([bool(r.get("framework_top1") or r.get("default_top1")) for r in sel]))
        for key in ("map_cc_top1", "map_ssim_top1", "map_cc_top5", "map_ssim_top5", "map_ssim_aligned_top1",
                    "map_ssim_aligned_top5"):
            if any(key in r for r in sel):  # a failed case scores 0 (CC of no map; SSIM below any real map)
                entry[f"{key}_mean"] = float(np.mean([r.get(key, 0.0) for r in sel]))
        table.append(entry)
    return table


def print_table(table: list[dict]) -> None:
    head = (f"{'system':9s} {'mode':13s} {'pattern':8s} {'n':>3s} {'err':>3s} | default top1/5/20 | "
            f"loose top1/5/20 | {'sg':>4s} {'rms':>6s} {'Rwp':>6s} {'s/pat':>6s}")
    print(head)
    print("-" * len(head))
    for e in table:
        d = "/".join(f"{e[f'default_top{k}']:.2f}" for k in TOP_K)
        lo = "/".join(f"{e[f'loose_top{k}']:.2f}" for k in TOP_K)
        rms = f"{e['median_rms']:.3f}" if e["median_rms"] is not None else "-"
        rwp = f"{e['median_rwp']:.3f}" if e["median_rwp"] is not None else "-"
        print(f"{e['system']:9s} {e['mode']:13s} {e['pattern']:8s} {e['n']:3d} {e['errors']:3d} | {d:17s} | "
              f"{lo:15s} | {e['spacegroup_top1']:4.2f} {rms:>6s} {rwp:>6s} {e['seconds_per_pattern']:6.1f}")
        if "map_cc_top1_mean" in e:
            print(f"{'':33s} solved-structure density: CC top-1 {e['map_cc_top1_mean']:.3f}, best of 5 "
                  f"{e['map_cc_top5_mean']:.3f}; paper SSIM top-1 {e['map_ssim_top1_mean']:.3f}, best of 5 "
                  f"{e['map_ssim_top5_mean']:.3f}; SSIM at the CC alignment top-1 "
                  f"{e['map_ssim_aligned_top1_mean']:.3f}")


def parse_weights(values: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for v in values:
        system, sep, path = v.partition("=")
        out[system if sep else "*"] = Path(path if sep else v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", action="append", default=[],
                    help="model .safetensors for every system, or SYSTEM=PATH (repeatable); default: shipped")
    ap.add_argument("--systems", default="cubic,trigonal")
    ap.add_argument("--limit", type=int, default=None, help="first N structures of each system")
    ap.add_argument("--names", default="", help="only these structures (comma-separated, e.g. LaB6_221)")
    ap.add_argument("--samples", type=int, default=20, help="latent samples (model) / random structures (no-model)")
    ap.add_argument("--grid", type=int, default=50)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--patterns", default="stick,measured", help=f"comma-separated, of {PATTERNS}")
    ap.add_argument("--control-patterns", default="measured",
                    help="patterns the wrong-pattern and no-model controls run on (comma-separated)")
    ap.add_argument("--dataset", type=Path, default=None,
                    help="a generated build: solve its val + test crystals instead of the real ones "
                         "(for choosing settings without the benchmark); --systems names its one system")
    ap.add_argument("--groups", default="1-230", help="with --dataset: only crystals of these space groups (LO-HI)")
    ap.add_argument("--rwp-only", action="store_true",
                    help="variant: rank by Rwp without the family-first rule (SolveConfig.family_first=False)")
    ap.add_argument("--no-flipped-map", action="store_true",
                    help="variant: no candidates from the charge-flipped mean map (SolveConfig.flipped_map=False, "
                         "the default before 2026-12-07)")
    ap.add_argument("--no-modified-map", action="store_true",
                    help="variant: no candidates from the density-modified mean map (SolveConfig.modified_map=False, "
                         "the default before 2026-12-03)")
    ap.add_argument("--no-map-symmetry", action="store_true",
                    help="variant: no space-group search in the mean map (SolveConfig.map_symmetry=False)")
    ap.add_argument("--merge-p1-pairs", action="store_true",
                    help="variant: StructureMatcher also compares two P1 readings "
                         "(SolveConfig.skip_p1_pairs=False, the default before 2026-12-02)")
    ap.add_argument("--one-model", action="store_true",
                    help="variant: only the first model that serves the lattice (SolveConfig.all_serving_models="
                         "False, the default until 2026-12-06)")
    ap.add_argument("--alternate-samples", type=int, default=SolveConfig.alternate_samples,
                    help="latent samples of each additional serving model (SolveConfig.alternate_samples)")
    ap.add_argument("--split-metric", action="store_true",
                    help="variant: a candidate's cell refines with its own space group's ties only "
                         "(RefineConfig.keep_metric=False, the default before 2026-12-07)")
    ap.add_argument("--n-z-averaged", type=int, default=2,
                    help="variant: Z values read from each symmetry-averaged map (SolveConfig.n_z_averaged; "
                         "1 was the default on 2026-11-25)")
    ap.add_argument("--known-phase", action="append", default=[],
                    help="name a known second phase (e.g. Si for the lab-si patterns), as `solve --known-phase`")
    ap.add_argument("--no-missed-symmetry", action="store_true",
                    help="variant: the best candidate is not searched for symmetry it missed "
                         "(SolveConfig.symmetry_tolerances=(), the default before 2026-12-07)")
    ap.add_argument("--recycle", type=int, default=SolveConfig.recycle,
                    help="candidates whose phases start a recycling flip where the best Rwp is above "
                         "SolveConfig.recycle_above (0: none, the default before 2026-12-07)")
    ap.add_argument("--recycle-rounds", type=int, default=SolveConfig.recycle_rounds,
                    help="most rounds of recycling (SolveConfig.recycle_rounds; 1: the best candidates once)")
    ap.add_argument("--time-limit", type=float, default=SolveConfig.time_limit,
                    help="SolveConfig.time_limit (s); 0: no limit. Rows report whether it cut a solve short")
    ap.add_argument("--map-scores", action="store_true",
                    help="also score the density of the solved structures against the true CMED "
                         "(map CC and paper SSIM of the top-1 and best of the top 5)")
    ap.add_argument("--no-cell", action="store_true",
                    help="the unaided path: model and wrong-pattern modes index the pattern (all seven systems) "
                         "instead of being given the true cell; no-model and oracle keep the true cell")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None,
                    help="output JSON (default: benchmarks/results/solve_<systems>.json)")
    args = ap.parse_args()
    args.weights = parse_weights(args.weights)
    modes = [m for m in args.modes.split(",") if m]
    kinds = [k for k in args.patterns.split(",") if k]
    bad = [m for m in modes if m not in MODES] + [k for k in kinds if k not in PATTERNS]
    if bad:
        ap.error(f"unknown mode/pattern {bad}; choose from {MODES} / {PATTERNS}")
    if args.json is None:
        suffix = ("_independent" if kinds == ["independent"] else "") + ("_no_cell" if args.no_cell else "")
        args.json = RESULTS / f"solve_{args.systems.replace(',', '_')}{suffix}.json"
    torch.set_num_threads(args.threads)
    cases = load_cases([s for s in args.systems.split(",") if s], args.limit, args.dataset,
                       tuple(int(g) for g in args.groups.split("-")))
    if args.names:
        cases = [c for c in cases if c.name in args.names.split(",")]
    rows = []
    t_all = time.perf_counter()
    for case in cases:
        for kind in kinds:
            for mode in modes:
                if mode in ("wrong-pattern", "no-model") and kind not in args.control_patterns.split(","):
                    continue
                t0 = time.perf_counter()
                row = {"system": case.system, "name": case.name, "pattern": kind, "mode": mode,
                       "atoms": len(case.truth), "error": None}
                try:
                    row.update(run_case(case, kind, mode, cases, args))
                except Exception as exc:  # one failing case is a miss, never the end of the run
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    row["traceback"] = traceback.format_exc(limit=3)
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
                status = row["error"] or (f"top1 {row['default_top1']} best5 {row['default_top5']} "
                                          f"loose-top1 {row['loose_top1']} Rwp {row['rwp']:.3f} "
                                          f"top {row['top_formula']} #{row['top_spacegroup']}"
                                          + (" (time limit reached)" if row.get("time_limited") else ""))
                print(f"{case.system:9s} {case.name:14s} {kind:8s} {mode:13s} {row['seconds']:6.1f}s  {status}",
                      flush=True)
            # Written after every case, so an interrupted run still leaves its results.
            write_json(args, modes, kinds, rows, time.perf_counter() - t_all, complete=False)
    print()
    print_table(summarise(rows))
    write_json(args, modes, kinds, rows, time.perf_counter() - t_all, complete=True)
    print(f"\nwrote {args.json}")


def write_json(args: argparse.Namespace, modes: list[str], kinds: list[str], rows: list[dict], seconds: float,
               complete: bool) -> None:
    doc = {"settings": {"systems": args.systems, "limit": args.limit, "samples": args.samples, "grid": args.grid,
                        "modes": modes, "patterns": kinds, "control_patterns": args.control_patterns,
                        "wavelength": LINE, "two_theta": TWO_THETA,
                        "weights": {k: str(v) for k, v in args.weights.items()} or "shipped",
                        "matchers": MATCHERS, "profiles": {k: repr(v) for k, v in PROFILES.items()},
                        "dataset": str(args.dataset) if args.dataset else None, "groups": args.groups,
                        "cell": "indexed (model, wrong-pattern); true (no-model, oracle)" if args.no_cell else "true",
                        "solve_config": repr(solve_config(args))},
           "complete": complete, "summary": summarise(rows), "rows": rows, "seconds_total": seconds}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(doc, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
