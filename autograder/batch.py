"""Batch grading: a folder of notebooks or a Gradescope "export submissions" zip in, a
``grades.csv`` and per-student ``results.json`` and feedback page out.

Each submission is graded in a process of its own (graders.py: a warm grader or ``one``), so a
grader crash, hang or memory blow-up in one never touches another. The parent only starts
processes, enforces a wall-clock limit on each, and records the outcome. A submission is
done once ``students/ID/status.json`` says so (written after its results, atomically):
killing a batch and running it again grades only what is missing, or what changed.

Output layout (``--out DIR``)::

    DIR/grades.csv                  one row per student, one column per test, total
    DIR/students/ID/results.json    Gradescope's format
    DIR/students/ID/feedback.html   per-test outcome, message, plots
    DIR/students/ID/status.json     done / grader_error, the notebook's sha256, the
                                    assignment's fingerprint, notes for the instructor
    DIR/students/ID/log.txt         the grading process's output (instructor only)
    DIR/input/                      the zip's contents (unsafe entries refused)
    DIR/grades-diff.csv             grades that a re-run changed, and why

``DIR`` is made private (mode 0700): it holds every student's notebook and results, and the
student code being graded runs under other uids, which must not read a classmate's work.

A submission is graded again when its notebook changed, when the assignment changed (hidden
tests, points, assignment.toml, mutants, master solution, or the grader's own code: see
``assignment_fingerprint``), or with ``regrade=True``.
"""
from __future__ import annotations

import importlib
import os
import shlex
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .confinement import place_canary, preflight
from .graders import MAX_SERVED, OneShot, WarmGrader, one_command, serve_command
from .grades_table import _Change, _people, write_diff_csv, write_grades_csv
from .results import read_results, write_results
from .student_state import (OPERATOR_NOTES, PREVIOUS, _error_results, _grade_of, _read_json,
                            _reason, _write_json, assignment_fingerprint, is_done, make_private,
                            previous_grade, write_page)
from .submissions import BatchError, Submission, discover, sha256_of
from .textsafe import escape_control

POLL_S = 0.05


@dataclass
class BatchSummary:
    total: int = 0
    graded: int = 0
    skipped: int = 0             # already done in an earlier run
    grader_errors: int = 0
    refused: list[str] = field(default_factory=list)
    csv: Path | None = None
    seconds: float = 0.0
    regraded: int = 0            # graded again although they had a grade from an earlier run
    changed: int = 0             # of those, how many got another total or maximum
    diff_csv: Path | None = None  # grades-diff.csv, written when something was regraded

    def changes_line(self) -> str:
        """One line on what a re-run changed, or '' when it regraded nothing."""
        if not self.regraded:
            return ""
        if not self.changed:
            return f"{self.regraded} regraded, no grade changed (see {self.diff_csv})"
        return (f"{self.changed} grade{'s' if self.changed != 1 else ''} changed, "
                f"see {self.diff_csv}")


# ---- the batch -----------------------------------------------------------------------------

def _console_text(text: str) -> str:
    """Student-chosen text (a file name, a person's name) for a rich console: no markup, no
    terminal escapes."""
    from rich.markup import escape

    return escape(escape_control(text, single_line=True))


class _Job:
    def __init__(self, sub: Submission, student_dir: Path, digest: str, previous, grader):
        self.sub, self.dir, self.digest, self.grader = sub, student_dir, digest, grader
        self.previous = previous
        self.start = time.monotonic()


def check_confinement(confidential: list[Path]) -> None:
    """Refuse the batch when a worker could read a confidential folder or its canary."""
    probe = preflight(confidential)
    leaks = probe.get("readable", [])
    if not leaks:
        return
    shown = ", ".join(_console_text(str(p)) for p in leaks[:4])
    folders = " ".join(shlex.quote(str(p)) for p in confidential)
    raise BatchError(
        f"refusing to grade: a student's code could read {shown} (other students' files or "
        f"the batch's output; sandbox: {probe.get('mode')}, "
        f"{'with' if probe.get('namespaces') else 'without'} namespaces). Without namespaces "
        "(Docker's default profile) only file modes keep students apart: make these folders "
        f"private to the grader (chmod 700 {folders}, owned by root), or grade where user "
        "namespaces work.")


def remove_canaries(canaries) -> None:
    for canary in canaries:
        Path(canary).unlink(missing_ok=True)


class BatchBooks:
    """What every batch runner (here, and ``ray_batch``) does around the grading itself, so
    both keep the same files: which submissions need grading (their status.json is not
    current; one without a notebook gets its 0 at once), each one's folder before it is
    graded and its status.json after, and grades.csv and grades-diff.csv at the end."""

    def __init__(self, assignment, source: Path, out: Path, *, regrade: bool,
                 timeout: float | None, console):
        self.assignment, self.regrade = assignment, regrade
        self.out = Path(out).resolve()
        make_private(self.out)
        self.source = Path(source).resolve()
        self.subs, refused = discover(self.source, self.out)
        self.summary = BatchSummary(total=len(self.subs), refused=refused)
        for line in refused:
            console.print(f"[yellow]refused zip entry[/] {_console_text(line)}", markup=True,
                          highlight=False)
        self.fingerprint = assignment_fingerprint(assignment)
        load_budget = (assignment.total_load_time_limit or 3 * assignment.load_time_limit) \
            + assignment.load_time_limit  # the last cell started may run its own limit on top
        self.limit = timeout or (assignment.total_time_limit + load_budget + 120)
        self.title = f"{assignment.title or assignment.name}: feedback"
        self.changes: list[_Change] = []
        self.todo: deque = deque(self._to_grade())

    def _to_grade(self):
        """(sub, student_dir, digest, subtitle, previous) of each submission to grade."""
        for sub in self.subs:
            student_dir = self.out / "students" / sub.id
            subtitle = " ".join(x for x in (sub.label, _people(sub)) if x)
            digest = "" if sub.notebook is None else sha256_of(sub.notebook)
            if not self.regrade and is_done(student_dir, digest, self.fingerprint):
                self.summary.skipped += 1
                continue
            # Read before anything is overwritten: the old total goes to grades-diff.csv.
            previous = previous_grade(student_dir)
            if sub.notebook is None:
                # Nothing to run: the student's 0 and the reason, written at once.
                results = _error_results(sub.problem)
                write_results(results, student_dir / "results.json")
                write_page(student_dir, results, {}, self.title, subtitle)
                _write_json(student_dir / "status.json",
                            {"state": "done", "sha256": "",
                             "assignment_fingerprint": self.fingerprint, "notebook": None,
                             "problem": sub.problem_kind, "seconds": 0.0})
                (student_dir / PREVIOUS).unlink(missing_ok=True)
                self._compare(sub, previous, digest, results)
                self.summary.graded += 1
                continue
            yield sub, student_dir, digest, subtitle, previous

    def _compare(self, sub: Submission, previous: dict | None, digest: str, results) -> None:
        new = _grade_of(results)
        if previous is not None and new is not None:
            self.changes.append(_Change(sub, previous, new, _reason(
                previous, digest, self.fingerprint, self.regrade)))

    def prepare(self, student_dir: Path, digest: str, previous: dict | None) -> None:
        """The submission's folder before it is graded."""
        student_dir.mkdir(parents=True, exist_ok=True)
        if previous is not None:
            # Kept until the new grade is in: a run killed meanwhile still knows the old one.
            _write_json(student_dir / PREVIOUS, {
                **previous, "reason": _reason(previous, digest, self.fingerprint,
                                              self.regrade)})
        (student_dir / "status.json").unlink(missing_ok=True)
        (student_dir / OPERATOR_NOTES).unlink(missing_ok=True)
        (student_dir / "results.json").unlink(missing_ok=True)  # a stale one is no answer

    def record(self, sub: Submission, student_dir: Path, digest: str, previous: dict | None,
               *, code: int | None, results, timed_out: bool, seconds: float, notes,
               failure: str = "", where: dict | None = None) -> str:
        """The grading's outcome into status.json (written last) and the summary: done, or a
        grader error (the run failed: ``failure``, ran out of time, or left no valid result)
        retried by the next run; returns the progress line."""
        state = "done" if code == 0 and results is not None else "grader_error"
        message = failure
        if message:
            pass
        elif timed_out:
            message = (f"grading did not finish within {self.limit:g} s and was stopped; it "
                       "will be retried when the batch runs again")
        elif results is None or code not in (0, 3):
            message = (f"the grading process ended with exit code {code} (see "
                       f"{student_dir / 'log.txt'}); it will be retried when the batch runs "
                       "again")
        if message:
            results = _error_results(message, grader=True)
            write_results(results, student_dir / "results.json")
        _write_json(student_dir / "status.json",
                    {"state": state, "sha256": digest,
                     "assignment_fingerprint": self.fingerprint,
                     "notebook": str(sub.notebook), "exit_code": code, **(where or {}),
                     "seconds": seconds,
                     "operator_notes": notes if isinstance(notes, list) else []})
        (student_dir / OPERATOR_NOTES).unlink(missing_ok=True)
        name = _console_text(sub.id)
        if state == "done":
            (student_dir / PREVIOUS).unlink(missing_ok=True)
            self._compare(sub, previous, digest, results)
            self.summary.graded += 1
            return f"{name}: {results.score:g}"
        self.summary.grader_errors += 1  # previous.json stays: the retry compares with it
        return f"{name}: grader error"

    def close(self, started: float) -> BatchSummary:
        """grades.csv, and grades-diff.csv where a grade was redone; the summary."""
        summary = self.summary
        summary.csv = write_grades_csv(self.out, self.subs)
        if self.changes:
            # In the order of grades.csv, not the order in which the graders finished.
            position = {sub.id: i for i, sub in enumerate(self.subs)}
            self.changes.sort(key=lambda c: position[c.sub.id])
            summary.diff_csv = write_diff_csv(self.out, self.changes)
            summary.regraded = len(self.changes)
            summary.changed = sum(c.changed for c in self.changes)
        summary.seconds = time.monotonic() - started
        return summary


def progress_columns() -> list:
    from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn()]


def run_batch(source: Path, assignment_name: str, out: Path, *, jobs: int = 1,
              docker: str | None = None, device: str = "cpu", timeout: float | None = None,
              progress: bool = True, console=None, regrade: bool = False) -> BatchSummary:
    """Grade what is not graded yet (``regrade``: everything); see the module's docstring."""
    from rich.console import Console
    from rich.progress import Progress

    from .assignment import load_assignment

    started = time.monotonic()
    console = console or Console(stderr=True)
    assignment = load_assignment(assignment_name)
    if docker:
        try:
            # import_module, not `from . import`: it honours sys.modules, not a package attribute
            # left by an earlier import, so a broken or removed module fails here, early.
            importlib.import_module(f"{__package__}.containers")
        except ImportError as exc:
            raise BatchError(f"--docker needs autograder/containers.py, which is not available "
                             f"in this installation ({exc})") from None
    books = BatchBooks(assignment, source, out, regrade=regrade, timeout=timeout,
                       console=console)
    out, source, subs, todo, limit = books.out, books.source, books.subs, books.todo, books.limit
    # A classmate's files and every output, once there are classmates (see check_confinement).
    confidential = [out] + ([source] if source.is_dir() else []) if len(subs) > 1 else []

    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    warm_cmd = serve_command(assignment, out, device=device, limit=limit,
                             confidential=confidential)
    # Warm graders waiting for their next submission. The first ones start now: their imports
    # and the reference load while the confinement check below runs (they grade nothing
    # before they are sent a submission).
    idle: list[WarmGrader] = [] if docker else [
        WarmGrader(warm_cmd, env, out, out / "graders.log")
        for _ in range(min(max(1, jobs), len(todo)))]

    canaries = []
    if len(subs) > 1 and todo and not docker:
        # Each container holds one student; here many share one machine: prove, before any
        # student code runs, that no worker can read a classmate's files or any output.
        canaries = [c for c in map(place_canary, confidential) if c is not None]
        try:
            check_confinement(confidential)
        except BatchError:
            remove_canaries(canaries)
            for grader in idle:
                grader.stop()
            raise

    def start(sub, student_dir, digest, subtitle, previous) -> _Job:
        books.prepare(student_dir, digest, previous)
        if docker:
            cmd = one_command(assignment, sub, student_dir, device=device, title=books.title,
                              subtitle=subtitle, limit=limit, confidential=confidential,
                              docker=docker)
            return _Job(sub, student_dir, digest, previous, OneShot(cmd, env, student_dir))
        grader = idle.pop() if idle else WarmGrader(warm_cmd, env, out, out / "graders.log")
        grader.begin({"notebook": str(sub.notebook), "out": str(student_dir),
                      "title": books.title, "subtitle": subtitle})
        return _Job(sub, student_dir, digest, previous, grader)

    def finish(job: _Job, timed_out: bool, code: int | None) -> str:
        if job.grader.alive and job.grader.served < MAX_SERVED and not timed_out:
            idle.append(job.grader)
        else:
            job.grader.stop()
        return books.record(job.sub, job.dir, job.digest, job.previous, code=code,
                            results=read_results(job.dir / "results.json"), timed_out=timed_out,
                            seconds=round(time.monotonic() - job.start, 3),
                            notes=_read_json(job.dir / OPERATOR_NOTES),
                            where={"grader_pid": job.grader.proc.pid})

    running: list[_Job] = []
    try:
        with Progress(*progress_columns(), console=console, disable=not progress) as bar:
            task = bar.add_task(f"grading {_console_text(assignment.name)}", total=len(todo))
            while todo or running:
                while todo and len(running) < max(1, jobs):
                    running.append(start(*todo.popleft()))
                time.sleep(POLL_S)
                for job in list(running):
                    code = job.grader.outcome()
                    timed_out = code is None and time.monotonic() - job.start > limit
                    if timed_out:
                        job.grader.stop()  # it and its worker: the next gets a fresh grader
                        code = -signal.SIGKILL
                    if code is None:
                        continue
                    running.remove(job)
                    bar.update(task, advance=1, description=finish(job, timed_out, code))
    finally:
        for job in running:  # interrupted: stop the graders; their submissions stay pending
            job.grader.stop()
        for grader in idle:
            grader.stop()
        remove_canaries(canaries)
        summary = books.close(started)
    return summary


