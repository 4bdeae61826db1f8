"""Reliability benchmark: every bad-input CLI case as a real subprocess, and every fuzz target with more examples.

Usage: ``.venv/bin/python benchmarks/reliability.py [--examples 1000] [--workers 2]``. Prints a summary and
writes ``benchmarks/results/reliability.json`` (cases tried/passed, fuzz examples run and failures per target).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_bad_input as bad  # noqa: E402
import test_fuzz as fuzz  # noqa: E402


def run_bad_inputs(workers: int) -> dict:
    """Every CLI case of tests/test_bad_input.py as a subprocess; known bugs counted separately."""
    with tempfile.TemporaryDirectory() as d:
        cases = bad.make_cases(Path(d))
        results = bad.run_all(cases, subprocess_mode=True, workers=workers)
    by_id = {c.id: c for c in cases}
    failed = {k: v for k, v in results.items() if v and not by_id[k].known_bug}
    known = {k: by_id[k].known_bug for k, v in results.items() if v and by_id[k].known_bug}
    return {"tried": len(results), "passed": sum(not v for v in results.values()),
            "skipped_as_root": len(cases) - len(results), "failed": failed, "known_bugs": known}


def run_fuzz(examples: int) -> dict:
    """Each fuzz target with ``examples`` derandomized examples; counts examples actually run."""
    out = {}
    for name, target in fuzz.TARGETS.items():
        count = {"n": 0}

        def counted(value: object, check=target.check, count=count) -> None:
            count["n"] += 1
            check(value)

        t0 = time.perf_counter()
        try:
            fuzz.fuzz_test(fuzz.Target(target.strategy, counted), examples)()
            failure = ""
        except Exception as exc:  # a found counter-example: record it, go on with the other targets
            text = "".join(traceback.format_exception_only(exc))
            failure = text if len(text) < 3000 else text[:1500] + " ... " + text[-1500:]
        out[name] = {"examples_run": count["n"], "failures": int(bool(failure)), "failure": failure,
                     "seconds": round(time.perf_counter() - t0, 1)}
        print(f"fuzz {name}: {count['n']} examples, {'FAIL' if failure else 'ok'}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=1000, help="Examples per fuzz target.")
    ap.add_argument("--workers", type=int, default=2, help="Concurrent CLI subprocesses.")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reliability.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report = {"fuzz": run_fuzz(args.examples)}
    report["bad_input"] = run_bad_inputs(args.workers)
    report["fuzz_total_examples"] = sum(v["examples_run"] for v in report["fuzz"].values())
    report["fuzz_total_failures"] = sum(v["failures"] for v in report["fuzz"].values())
    report["examples_per_target"] = args.examples
    report["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    b = report["bad_input"]
    print(f"bad input: {b['passed']}/{b['tried']} passed, {len(b['known_bugs'])} known bugs, "
          f"{len(b['failed'])} new failures; fuzz: {report['fuzz_total_examples']} examples, "
          f"{report['fuzz_total_failures']} failing targets; {report['seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
