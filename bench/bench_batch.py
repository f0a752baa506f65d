"""Benchmark: `dlgrade batch` on generated submissions of one assignment (default: hw1).

Generates COUNT notebooks from the master: a quarter correct, half known mistakes (mutants
from the assignment's mutants.py) and a quarter broken in assorted ways (not JSON, empty,
a script, the untouched skeleton, a syntax error, a crash, a hang, a memory hog). Then:

1. grades them with --jobs 1 and with --jobs 2 (submissions per minute, speed-up);
2. checks grades.csv: every correct one has full marks, every mutant and broken one less,
   the two runs agree row for row;
3. starts a --jobs 2 batch, kills it part-way (SIGKILL to the batch process), runs it again,
   and checks that only the missing submissions were graded and the CSV is the same.

First, the warm graders' figures: `dlgrade grade` of the master (a fresh command, median of
3), then batches of COPIES copies of the master with --jobs 1 and 2; printed: seconds per
submission, and the ratios issue 17 asks for (per-submission wall with one job over
`dlgrade grade`'s, at most 1.2; the rate of two jobs over one, at least 1.8 on an idle
2-core machine).

With --ray (Ray installed: pip install 'dlgrade[ray]'), instead of the warm graders' figures
and the kill/resume run: the same submissions graded locally (--local-jobs) and through
`dlgrade batch --ray` on a local Ray cluster of 1 node, then of 2 nodes (--ray-cpus each, all
on this machine at 127.0.0.1); grades.csv must be the local batch's; rates and ratios printed.

    python bench/bench_batch.py [--assignment hw1_backprop] [--count 40] [--copies 8]
                                [--warm-only] [--keep DIR]
    python bench/bench_batch.py --ray [--count 12] [--local-jobs 2] [--ray-cpus 2]
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from autograder.assignment import load_assignment
from autograder.batch import run_batch
from autograder.mutants import apply_to_notebook, load_mutants
from autograder.release import make_skeleton


def first_function_cell(nb, name: str):
    for cell in nb.cells:
        if cell.cell_type == "code" and (f"def {name}(" in cell.source
                                         or f"class {name}" in cell.source):
            return cell
    raise LookupError(name)


def broken_variants(master, skeleton, assignment) -> list[tuple[str, bytes]]:
    """(kind, file content) for notebooks broken in ways students manage."""
    defined = [line.split("(")[0].split()[1] for c in master.cells if c.cell_type == "code"
               for line in c.source.splitlines() if line.startswith("def ")]
    # Break the function the fewest tests and master functions mention: a hang costs every
    # test that reaches it its whole time limit.
    tests = "".join(p.read_text() for p in assignment.tests_dir.rglob("*.py"))
    code = "".join(c.source for c in master.cells if c.cell_type == "code")
    uses = {name: tests.count(name) + code.count(f"{name}(") for name in defined}
    victim = min((n for n in defined if tests.count(n)), key=lambda n: uses[n])
    out = [("not-json", b"{ this is not a notebook"),
           ("empty", b""),
           ("script", b"import numpy as np\n\ndef f(x):\n    return x\n"),
           ("skeleton", nbformat.writes(skeleton).encode())]

    def edited(kind, new_source):
        nb = nbformat.from_dict(nbformat.reads(nbformat.writes(master), as_version=4))
        cell = first_function_cell(nb, victim)
        cell.source = new_source(cell.source)
        out.append((kind, nbformat.writes(nb).encode()))

    edited("syntax-error", lambda s: s.replace("def ", "def (", 1))
    edited("crash", lambda s: s + f"\n\nimport os\ndef {victim}(*a, **k):\n    os._exit(3)\n")
    edited("hang", lambda s: s + f"\n\ndef {victim}(*a, **k):\n    while True:\n        pass\n")
    edited("memory-hog", lambda s: s + f"\n\nimport numpy as np\ndef {victim}(*a, **k):\n"
           "    blocks = []\n    while True:\n        blocks.append(np.ones(1 << 27))\n")
    return out, victim


def generate(assignment, count: int, folder: Path) -> dict[str, str]:
    """Writes the notebooks; returns {submission id: kind} with kind correct/mutant/broken."""
    master = nbformat.read(assignment.master, as_version=4)
    skeleton = make_skeleton(master)
    mutants = [m for m in load_mutants(assignment.mutants_file) if not m.equivalent]
    broken, victim = broken_variants(master, skeleton, assignment)
    print(f"crash, hang and memory hog are written into {victim}")
    n_correct, n_mutant = count // 4, count // 2
    n_broken = count - n_correct - n_mutant
    kinds = {}
    folder.mkdir(parents=True)
    for i in range(n_correct):
        nbformat.write(master, folder / f"correct-{i:02d}.ipynb")
        kinds[f"correct-{i:02d}"] = "correct"
    for i in range(n_mutant):
        mutant = mutants[i % len(mutants)]
        nbformat.write(apply_to_notebook(master, mutant), folder / f"mutant-{i:02d}.ipynb")
        kinds[f"mutant-{i:02d}"] = "mutant"
    for i in range(n_broken):
        kind, data = broken[i % len(broken)]
        (folder / f"broken-{i:02d}-{kind}.ipynb").write_bytes(data)
        kinds[f"broken-{i:02d}-{kind}"] = "broken"
    return kinds


def read_rows(path: Path) -> dict[str, dict]:
    with open(path, newline="") as fh:
        return {row["submission"]: row for row in csv.DictReader(fh)}


def check_csv(rows: dict[str, dict], kinds: dict[str, str]) -> None:
    assert set(rows) == set(kinds), set(rows) ^ set(kinds)
    for sid, kind in kinds.items():
        row = rows[sid]
        total, full = float(row["total"]), float(row["max_score"])
        assert row["status"] == "graded", (sid, row["status"])
        if kind == "correct":
            assert total == full > 0, (sid, total, full)
        else:
            assert total < full, (sid, kind, total, full)


def timed_batch(subs: Path, assignment: str, out: Path, jobs: int) -> float:
    start = time.perf_counter()
    summary = run_batch(subs, assignment, out, jobs=jobs, progress=sys.stderr.isatty())
    assert summary.grader_errors == 0, f"{summary.grader_errors} grader errors in {out}"
    return time.perf_counter() - start


def warm_figures(assignment, copies: int, work: Path) -> None:
    """Seconds per submission: `dlgrade grade` alone, then batches of copies of the master."""
    folder = work / "copies"
    folder.mkdir(parents=True)
    for i in range(copies):
        shutil.copyfile(assignment.master, folder / f"copy-{i:02d}.ipynb")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    singles = []
    for i in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "autograder.cli", "grade", str(assignment.master),
                        "-a", assignment.name, "--results", str(work / f"single-{i}.json"),
                        "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
        singles.append(time.perf_counter() - start)
    single = sorted(singles)[1]
    per = {}
    for jobs in (1, 2):
        wall = timed_batch(folder, assignment.name, work / f"copies-j{jobs}", jobs)
        rows = read_rows(work / f"copies-j{jobs}" / "grades.csv")
        assert all(float(r["total"]) == float(r["max_score"]) > 0 for r in rows.values())
        per[jobs] = wall / copies
    print(f"dlgrade grade of the master: {single:.2f} s (median of 3 fresh commands)")
    for jobs in (1, 2):
        print(f"batch of {copies} copies, --jobs {jobs}: {per[jobs]:.2f} s per submission "
              f"({60 / per[jobs]:.1f} / min)")
    print(f"one job's seconds per submission over dlgrade grade's: {per[1] / single:.2f} "
          f"(target <= 1.2); rate of 2 jobs over 1: {per[1] / per[2]:.2f}x (target >= 1.8; "
          f"load average now {os.getloadavg()[0]:.1f})")


def ray_runs(subs: Path, assignment: str, work: Path, cpus: int, kinds: dict[str, str],
             expected: dict[str, dict]) -> dict[int, float]:
    """`dlgrade batch --ray` on a fresh local cluster of 1, then 2 nodes of ``cpus`` CPUs each
    (all on this machine, 127.0.0.1); returns {nodes: wall seconds of the batch}. The cluster's
    start is not timed; its first tasks' worker processes are."""
    # Every node and the driver at 127.0.0.1 (Ray otherwise rewrites a loopback address into
    # this machine's network address, which nodes bound to loopback do not answer).
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    import ray._private.ray_constants as constants
    from ray.cluster_utils import Cluster

    from autograder.ray_batch import run_ray_batch

    constants.ENABLE_RAY_CLUSTER = False

    node = {"node_ip_address": "127.0.0.1", "num_cpus": cpus, "object_store_memory": 128 << 20,
            "include_dashboard": False}
    walls = {}
    for nodes in (1, 2):
        t0 = time.perf_counter()
        cluster = Cluster(initialize_head=True, connect=False, head_node_args=node)
        try:
            for _ in range(nodes - 1):
                cluster.add_node(**node)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, log_to_driver=False, logging_level="error")
            print(f"ray, {nodes} node(s) of {cpus} CPUs: cluster up in "
                  f"{time.perf_counter() - t0:.1f} s")
            out = work / f"out-ray{nodes}"
            start = time.perf_counter()
            summary = run_ray_batch(subs, assignment, out, progress=sys.stderr.isatty(),
                                    staging=str(work / "ray-staging"))
            walls[nodes] = time.perf_counter() - start
            assert summary.grader_errors == 0, f"{summary.grader_errors} grader errors in {out}"
        finally:
            ray.shutdown()
            cluster.shutdown()
        rows = read_rows(out / "grades.csv")
        check_csv(rows, kinds)
        assert rows == expected, f"the Ray batch on {nodes} node(s) disagrees with the local one"
    return walls


def kill_and_resume(subs: Path, assignment: str, out: Path, total: int) -> tuple[int, int]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen([sys.executable, "-m", "autograder.cli", "batch", str(subs), "-a",
                             assignment, "--out", str(out), "-j", "2", "-q"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    target = max(1, int(total * 0.4))
    while proc.poll() is None and len(list(out.glob("students/*/status.json"))) < target:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.glob("students/*/status.json")))
    summary = run_batch(subs, assignment, out, jobs=2, progress=sys.stderr.isatty())
    assert summary.skipped == done_before, (summary.skipped, done_before)
    assert summary.graded == total - done_before and summary.grader_errors == 0
    return done_before, summary.graded


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--assignment", default="hw1_backprop")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--keep", help="write everything here instead of a temporary folder")
    parser.add_argument("--no-resume", action="store_true", help="skip the kill/resume run")
    parser.add_argument("--copies", type=int, default=8,
                        help="copies of the master for the warm graders' figures")
    parser.add_argument("--warm-only", action="store_true",
                        help="only the warm graders' figures")
    parser.add_argument("--ray", action="store_true", help="the local batch beside a local Ray "
                        "cluster of 1 and of 2 nodes (no warm figures, no kill/resume run)")
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 2,
                        help="Ray CPUs per node (default: this machine's cores)")
    parser.add_argument("--local-jobs", default="1,2",
                        help="the local runs' --jobs, comma-separated (default 1,2)")
    args = parser.parse_args()
    assignment = load_assignment(args.assignment)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dlgrade-bench-"))
    try:
        if not args.ray:
            warm_figures(assignment, args.copies, work)
        if args.warm_only:
            return
        kinds = generate(assignment, args.count, work / "submissions")
        counts = {k: list(kinds.values()).count(k) for k in ("correct", "mutant", "broken")}
        print(f"{args.count} submissions of {assignment.name}: {counts}")
        walls = {}
        job_counts = [int(j) for j in args.local_jobs.split(",")]
        for jobs in job_counts:
            walls[jobs] = timed_batch(work / "submissions", args.assignment,
                                      work / f"out-j{jobs}", jobs)
            rows = read_rows(work / f"out-j{jobs}" / "grades.csv")
            check_csv(rows, kinds)
            print(f"--jobs {jobs}: {walls[jobs]:6.1f} s, "
                  f"{60 * args.count / walls[jobs]:5.1f} submissions/min")
        first, *others = (read_rows(work / f"out-j{j}" / "grades.csv") for j in job_counts)
        assert all(other == first for other in others), "the local runs disagree"
        if 1 in walls and 2 in walls:
            print(f"speed-up of 2 jobs over 1: {walls[1] / walls[2]:.2f}x "
                  f"(on {os.cpu_count()} cores; load average now "
                  f"{os.getloadavg()[0]:.1f})")
        print("grades.csv: correct = full marks, every mutant and broken one below; "
              "all runs identical")
        if args.ray:
            ray_walls = ray_runs(work / "submissions", args.assignment, work, args.ray_cpus,
                                 kinds, first)
            for nodes, wall in ray_walls.items():
                # Beside the local run with as many jobs as the cluster has CPUs, or the most.
                jobs = nodes * args.ray_cpus if nodes * args.ray_cpus in walls else max(walls)
                print(f"--ray, {nodes} node(s) x {args.ray_cpus} CPU(s): {wall:6.1f} s, "
                      f"{60 * args.count / wall:5.1f} submissions/min, "
                      f"{walls[jobs] / wall:.2f}x the rate of local --jobs {jobs} "
                      f"({walls[jobs]:.1f} s)")
            print(f"2 nodes over 1: {ray_walls[1] / ray_walls[2]:.2f}x (every node shares this "
                  f"machine's {os.cpu_count()} cores; load average now "
                  f"{os.getloadavg()[0]:.1f}); grades.csv identical to the local batch's")
        if not args.no_resume and not args.ray:
            done, graded = kill_and_resume(work / "submissions", args.assignment,
                                           work / "out-resume", args.count)
            assert read_rows(work / "out-resume" / "grades.csv") == first
            print(f"killed after {done} done; the rerun graded the other {graded} only; "
                  "grades.csv identical to the uninterrupted run")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
