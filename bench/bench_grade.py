"""Benchmark: grading each assignment's reference solution end to end, and the grader's overhead.

For every assignment (or one, with --assignment) this prints the wall time of `grade_notebook`
on the master solution split into notebook load, worker start, tests and training (the trained
checks' share of the tests), the peak memory of the grader and of the student worker, and the
ratio to running the very same hidden tests in-process with the reference standing in for the
student: directly (plain calls, where the tests allow it) and through the same encoding as a
worker (no process, no pipes, no sandbox).

Each assignment runs in its own subprocess so that peak-memory figures are its own.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from autograder.assignment import ASSIGNMENTS_DIR, load_assignment
from autograder.data import load_digits_split
from autograder.grade import grade_notebook, run_tests
from autograder.plugin import GradingPlugin
from autograder.in_process import in_process_session
from autograder.proxies import LocalNamespace


def in_process(assignment, encoded: bool) -> float | None:
    """Seconds for the hidden tests with the reference as the student, in this process;
    None where the tests need worker-side encodings (torch results) and ``encoded`` is off."""
    common = dict(default_time_limit=assignment.time_limit,
                  total_time_limit=assignment.total_time_limit, digits_loader=load_digits_split,
                  assignment_dir=assignment.directory)
    if encoded:
        plugin = GradingPlugin(in_process_session(assignment.reference,
                                                  worker_objects=assignment.worker_objects),
                               assignment.reference,
                               **common)
    else:
        plugin = GradingPlugin(None, assignment.reference,
                               student_override=LocalNamespace(assignment.reference), **common)
    start = time.perf_counter()
    outcomes = run_tests(assignment, plugin)
    elapsed = time.perf_counter() - start
    failed = [(o.name, o.message[:200]) for o in outcomes if o.fraction < 1.0]
    if failed:
        if not encoded:
            return None
        raise AssertionError(f"the reference must pass in-process: {failed}")
    return elapsed


def measure(name: str, repeat: int) -> dict:
    assignment = load_assignment(name)
    load_digits_split()  # the dataset load is shared by every path; keep it out of the timing
    assignment.reference  # noqa: B018 - load once, outside the timed region
    walls, splits = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        run = grade_notebook(assignment.master, assignment, diagnose=False)
        walls.append(time.perf_counter() - start)
        assert run.results.score == run.results.max_score, run.results.output[:2000]
        split = dict(run.timings)
        split["training"] = sum(o.seconds for o in run.outcomes
                                if any(m["kind"] == "metric" for m in o.measures))
        splits.append(split)
    peaks = {"grader_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
             "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    direct = [in_process(assignment, encoded=False) for _ in range(repeat)]
    encoded = [in_process(assignment, encoded=True) for _ in range(repeat)]
    return {
        "assignment": name, "repeat": repeat, "wall": statistics.median(walls),
        **{k: statistics.median(s.get(k, 0.0) for s in splits)
           for k in ("notebook", "worker_start", "tests", "training")},
        **peaks,
        "direct": None if None in direct else statistics.median(direct),
        "encoded": statistics.median(encoded),
    }


def show(rows: list[dict]) -> None:
    print(f"grading each reference solution (medians of {rows[0]['repeat']} runs; "
          "seconds, MB)")
    header = (f"{'assignment':<14}{'wall':>7}{'load':>7}{'start':>7}{'tests':>7}{'train':>7}"
              f"{'grader':>8}{'worker':>8}{'direct':>8}{'ratio':>7}{'encoded':>9}{'ratio':>7}")
    print(header)
    for r in rows:
        direct = f"{r['direct']:8.2f}{r['wall'] / r['direct']:6.1f}x" if r["direct"] \
            else f"{'n/a':>8}{'':>7}"
        print(f"{r['assignment']:<14}{r['wall']:7.2f}{r['notebook']:7.2f}"
              f"{r['worker_start']:7.2f}{r['tests']:7.2f}{r['training']:7.2f}"
              f"{r['grader_mb']:8.0f}{r['worker_mb']:8.0f}{direct}"
              f"{r['encoded']:9.2f}{r['wall'] / r['encoded']:6.1f}x")
    print("load: reading the notebook; start: worker start-up and loading the student's cells; "
          "train: the trained checks' share of tests.\ndirect: the same tests in-process with "
          "plain calls (n/a where tests read worker-side tensors); encoded: in-process through "
          "the worker's encoding; ratio: grading wall time over that baseline.")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--assignment", default="all")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON line (internal)")
    args = parser.parse_args()
    if args.assignment != "all":
        row = measure(args.assignment, args.repeat)
        print(json.dumps(row) if args.json else "", end="\n" if args.json else "")
        if not args.json:
            show([row])
        return
    names = sorted(p.name for p in ASSIGNMENTS_DIR.iterdir() if (p / "assignment.toml").exists())
    rows = []
    for name in names:
        out = subprocess.run([sys.executable, str(Path(__file__)), "--assignment", name,
                              "--repeat", str(args.repeat), "--json"],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    show(rows)


if __name__ == "__main__":
    main()
