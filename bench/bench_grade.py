"""Benchmark: grading the hw1 solution notebook end to end, and the grader's overhead.

Prints the wall time of `grade_notebook` on the master solution (target: under 20 s on a
2-core machine), its split, and the ratio to running the very same hidden tests in-process
with the reference standing in for the student (no worker, no channel).
"""
from __future__ import annotations

import argparse
import statistics
import time

from autograder.assignment import load_assignment
from autograder.data import load_digits_split
from autograder.grade import grade_notebook, run_tests
from autograder.plugin import GradingPlugin
from autograder.session import LocalNamespace


def in_process(assignment) -> float:
    plugin = GradingPlugin(None, assignment.reference, student_override=LocalNamespace(assignment.reference),
                           default_time_limit=assignment.time_limit,
                           total_time_limit=assignment.total_time_limit,
                           digits_loader=load_digits_split)
    start = time.perf_counter()
    outcomes = run_tests(assignment, plugin)
    elapsed = time.perf_counter() - start
    failed = [(o.name, o.message) for o in outcomes if o.fraction < 1.0]
    assert not failed, f"the reference must pass in-process: {failed}"
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--assignment", default="hw1_backprop")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    assignment = load_assignment(args.assignment)
    load_digits_split()  # dataset load is shared by both paths; keep it out of the timing
    assignment.reference  # noqa: B018 - load once, outside the timed region
    walls, splits = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        run = grade_notebook(assignment.master, assignment)
        walls.append(time.perf_counter() - start)
        splits.append(run.timings)
        assert run.results.score == run.results.max_score, run.results.output
    direct = [in_process(assignment) for _ in range(args.repeat)]
    wall, base = statistics.median(walls), statistics.median(direct)
    print(f"assignment: {assignment.name}  ({args.repeat} runs, medians)")
    print(f"grade solution notebook, wall: {wall:6.2f} s   (target < 20 s)")
    for key in ("notebook", "worker_start", "tests"):
        print(f"  {key:<14} {statistics.median(s.get(key, 0.0) for s in splits):6.3f} s")
    print(f"same tests in-process on the reference: {base:6.2f} s")
    print(f"grader overhead ratio (grade / in-process): {wall / base:5.2f}x")


if __name__ == "__main__":
    main()
