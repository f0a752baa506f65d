"""Benchmark: does each assignment's autograder.zip fit Gradescope's default machine?

Gradescope's defaults: 10 minutes, 768 MB of memory, 0.5 vCPU. For every assignment in
assignments/ this builds the release, lays out a folder like Gradescope's /autograder with
the master solution as the submission, and runs the zip's run_autograder (with this
checkout's venv standing in for the one setup.sh builds). Where this machine lets root make
cgroup-v1 groups, the run is confined to exactly those limits (CPU quota 50 ms per 100 ms,
memory limit 768 MB), so a pass is a real pass, not an extrapolation.

Printed per assignment: wall time, CPU time (grader + worker), peak resident memory of the
grader and worker processes together (sampled every 20 ms), the memory cgroup's own peak
(which also counts page cache) and the score.

    python bench/bench_gradescope.py [--assignment NAME ...] [--no-limits]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from autograder.assignment import ASSIGNMENTS_DIR, load_assignment
from autograder.release import build_release

MEMORY_MB, CPU_SHARE, WALL_LIMIT_S = 768, 0.5, 600
CGROUP = Path("/sys/fs/cgroup")
PAGE = os.sysconf("SC_PAGE_SIZE")


def descendants_rss(root_pid: int) -> int:
    """Resident bytes of ``root_pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as fh:
                rss[int(entry)] = int(fh.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


class Limits:
    """A cpu and a memory cgroup (v1) for one run; None where the machine does not allow it."""

    def __init__(self):
        name = f"dlgrade-bench-{os.getpid()}"
        self.cpu, self.mem = CGROUP / "cpu" / name, CGROUP / "memory" / name
        self.cpu.mkdir()
        self.mem.mkdir()
        (self.cpu / "cpu.cfs_period_us").write_text("100000")
        (self.cpu / "cpu.cfs_quota_us").write_text(str(int(100000 * CPU_SHARE)))
        (self.mem / "memory.limit_in_bytes").write_text(str(MEMORY_MB << 20))

    @classmethod
    def try_make(cls):
        try:
            return cls()
        except OSError as exc:
            print(f"(no cgroup limits on this machine: {exc}; running unconfined)")
            return None

    def wrap(self, cmd: list[str]) -> list[str]:
        enter = (f"echo $$ > {self.cpu}/cgroup.procs && echo $$ > {self.mem}/cgroup.procs && "
                 'exec "$@"')
        return ["sh", "-c", enter, "sh", *cmd]

    def peak_bytes(self) -> int:
        return int((self.mem / "memory.max_usage_in_bytes").read_text())

    def oom_kills(self) -> int:
        for line in (self.mem / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return int((self.mem / "memory.failcnt").read_text() != "0\n")

    def remove(self):
        for group in (self.cpu, self.mem):
            try:
                group.rmdir()
            except OSError:
                pass


def measure(name: str, use_limits: bool) -> dict:
    assignment = load_assignment(name)
    work = Path(tempfile.mkdtemp(prefix=f"dlgrade-bench-{name}-"))
    work.chmod(0o755)
    limits = Limits.try_make() if use_limits else None
    try:
        release = build_release(assignment, work / "release")
        root = work / "autograder"
        with zipfile.ZipFile(release.autograder_zip) as zf:
            zf.extractall(root / "source")
        (root / "submission").mkdir()
        shutil.copy(assignment.master, root / "submission" / f"{name}.ipynb")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(DLGRADE_AUTOGRADER_ROOT=str(root), DLGRADE_PYTHON=sys.executable)
        cmd = ["bash", str(root / "source" / "run_autograder")]
        if limits:
            cmd = limits.wrap(cmd)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd="/", stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        peak = [0]

        def sample():
            while proc.poll() is None:
                peak[0] = max(peak[0], descendants_rss(proc.pid))
                time.sleep(0.02)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            _, err = proc.communicate(timeout=WALL_LIMIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        wall = time.monotonic() - start
        sampler.join()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        results = json.loads((root / "results" / "results.json").read_text())
        max_score = sum(t["max_score"] for t in results["tests"])
        return {
            "assignment": name, "wall_s": wall,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "peak_rss_mb": peak[0] / 2**20,
            "cgroup_peak_mb": limits.peak_bytes() / 2**20 if limits else None,
            "oom_kills": limits.oom_kills() if limits else None,
            "score": results["score"], "max_score": max_score, "limited": bool(limits),
            "stderr": err.decode(errors="replace")[-500:] if results["score"] != max_score else "",
        }
    finally:
        if limits:
            limits.remove()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    names = sorted(p.name for p in ASSIGNMENTS_DIR.iterdir() if (p / "assignment.toml").exists())
    parser.add_argument("--assignment", action="append", help=f"default: all of {names}")
    parser.add_argument("--no-limits", action="store_true", help="do not confine the runs")
    args = parser.parse_args()
    rows = [measure(name, not args.no_limits) for name in (args.assignment or names)]
    limited = all(r["limited"] for r in rows)
    print("run_autograder on the master solution; "
          + (f"confined to {CPU_SHARE} CPU and {MEMORY_MB} MB" if limited else "unconfined"))
    print(f"{'assignment':<14} {'wall':>7} {'cpu':>7} {'peak RSS':>9} {'cgroup peak':>12} "
          f"{'score':>9}")
    for r in rows:
        cg = f"{r['cgroup_peak_mb']:9.0f} MB" if r["cgroup_peak_mb"] is not None else "-"
        print(f"{r['assignment']:<14} {r['wall_s']:6.1f}s {r['cpu_s']:6.1f}s "
              f"{r['peak_rss_mb']:6.0f} MB {cg:>12} {r['score']:g}/{r['max_score']:g}"
              + (f"  OOM kills: {r['oom_kills']}" if r["oom_kills"] else ""))
        if r["stderr"]:
            print("   ", r["stderr"])
    ok = all(r["score"] == r["max_score"] > 0 and r["wall_s"] < WALL_LIMIT_S for r in rows)
    print("fits Gradescope's defaults" if ok else "DOES NOT FIT: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
