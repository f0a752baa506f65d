"""Batch grading: a folder of notebooks or a Gradescope "export submissions" zip in, a
``grades.csv`` and per-student ``results.json`` and feedback page out.

Each submission is graded in its own process (``python -m autograder.batch one ...``), so a
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

import argparse
import ctypes
import importlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .confinement import place_canary, preflight
from .grades_table import _Change, _people, write_diff_csv, write_grades_csv
from .results import is_grader_error
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


# ---- grading one submission, in its own process ---------------------------------------------

def _die_with_parent(parent: int) -> None:
    """If the batch is killed, its graders go too (they would only redo work)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def grade_one(args) -> int:
    _die_with_parent(args.parent)
    out, notebook = Path(args.out), Path(args.notebook)
    if args.docker:
        from .containers import grade_in_container

        # The container stops itself a little before the batch would kill this process.
        path = Path(grade_in_container(args.docker, notebook, args.name, out,
                                       device=args.device, timeout_s=max(args.limit - 30, 30)))
        if path.resolve() != (out / "results.json").resolve():
            shutil.copyfile(path, out / "results.json")
        results = json.loads((out / "results.json").read_text())
        figures = _read_json(out / "figures.json") or {}
        grader_error = is_grader_error(results)
    else:
        from .assignment import load_assignment
        from .feedback import take_recorded
        from .grade import grade_notebook
        from .results import write_results

        assignment = load_assignment(args.assignment)
        take_recorded()
        # The batch's own folders: hidden where namespaces allow, and the start-up probe
        # refuses to grade unless they and their canaries are unreadable to the worker.
        run = grade_notebook(notebook, assignment, device=args.device,
                             confidential=[Path(p) for p in args.confidential])
        # For the instructor only (sandbox mode, warnings): the log and status.json, never the
        # student's results.
        notes = [escape_control(str(n)) for n in run.operator_notes]
        for note in notes:
            for line in note.splitlines() or [""]:
                print(f"operator: {line}", file=sys.stderr)
        _write_json(out / OPERATOR_NOTES, notes)
        write_results(run.results, out / "results.json")
        recorded = take_recorded()
        pairs = zip(run.results.tests, run.outcomes, strict=False)  # same order, by to_results
        figures = {t.number: recorded[o.nodeid] for t, o in pairs if o.nodeid in recorded}
        _write_json(out / "figures.json", figures)
        results = json.loads(run.results.model_dump_json())
        grader_error = run.grader_error
    try:
        write_page(out, results, figures, args.title, args.subtitle)
    except Exception as exc:  # noqa: BLE001 - the grade stands without its page
        print(f"feedback page failed: {type(exc).__name__}: {escape_control(str(exc))}",
              file=sys.stderr)
    return 3 if grader_error else 0


# ---- the batch -----------------------------------------------------------------------------

def _console_text(text: str) -> str:
    """Student-chosen text (a file name, a person's name) for a rich console: no markup, no
    terminal escapes."""
    from rich.markup import escape

    return escape(escape_control(text, single_line=True))


def one_command(assignment, sub: Submission, student_dir: Path, *, device: str, title: str,
                subtitle: str, limit: float, confidential: list[Path],
                docker: str | None = None) -> list[str]:
    """The command line of the process that grades one submission.

    Every value is glued to its option (``--notebook=-h.ipynb``): argparse reads a separate
    value that starts with '-' as an option, and a notebook or folder called ``-h`` or
    ``--out`` was a grader error on every run.
    """
    cmd = [sys.executable, "-m", "autograder.batch", "one",
           f"--assignment={assignment.directory}", f"--name={assignment.name}",
           f"--notebook={sub.notebook}", f"--out={student_dir}", f"--parent={os.getpid()}",
           f"--device={device}", f"--title={title}", f"--subtitle={subtitle}",
           f"--limit={limit}"]
    cmd += [f"--confidential={p}" for p in confidential]
    if docker:
        cmd.append(f"--docker={docker}")
    return cmd


class _Job:
    def __init__(self, sub: Submission, student_dir: Path, digest: str, previous, proc, log):
        self.sub, self.dir, self.digest, self.proc, self.log = sub, student_dir, digest, proc, log
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


def run_batch(source: Path, assignment_name: str, out: Path, *, jobs: int = 1,
              docker: str | None = None, device: str = "cpu", timeout: float | None = None,
              progress: bool = True, console=None, regrade: bool = False) -> BatchSummary:
    """Grade what is not graded yet (``regrade``: everything); see the module's docstring."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

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
    out = Path(out).resolve()
    make_private(out)
    source = Path(source).resolve()
    subs, refused = discover(source, out)
    summary = BatchSummary(total=len(subs), refused=refused)
    for line in refused:
        console.print(f"[yellow]refused zip entry[/] {_console_text(line)}", markup=True,
                      highlight=False)
    fingerprint = assignment_fingerprint(assignment)
    load_budget = (assignment.total_load_time_limit or 3 * assignment.load_time_limit) \
        + assignment.load_time_limit  # the last cell started may run its own limit on top
    limit = timeout or (assignment.total_time_limit + load_budget + 120)
    title = f"{assignment.title or assignment.name}: feedback"
    # A classmate's files and every output, once there are classmates (see check_confinement).
    confidential = [out] + ([source] if source.is_dir() else []) if len(subs) > 1 else []
    changes: list[_Change] = []

    def compare(sub: Submission, previous: dict | None, digest: str, results) -> None:
        new = _grade_of(results)
        if previous is not None and new is not None:
            changes.append(_Change(sub, previous, new, _reason(previous, digest, fingerprint,
                                                               regrade)))

    todo: deque = deque()
    for sub in subs:
        student_dir = out / "students" / sub.id
        subtitle = " ".join(x for x in (sub.label, _people(sub)) if x)
        digest = "" if sub.notebook is None else sha256_of(sub.notebook)
        if not regrade and is_done(student_dir, digest, fingerprint):
            summary.skipped += 1
            continue
        # Read before anything is overwritten: the old total goes to grades-diff.csv.
        previous = previous_grade(student_dir)
        if sub.notebook is None:
            # Nothing to run: the student's 0 and the reason, written at once.
            results = _error_results(sub.problem)
            _write_json(student_dir / "results.json", results)
            write_page(student_dir, results, {}, title, subtitle)
            _write_json(student_dir / "status.json",
                        {"state": "done", "sha256": "", "assignment_fingerprint": fingerprint,
                         "notebook": None, "problem": sub.problem_kind, "seconds": 0.0})
            (student_dir / PREVIOUS).unlink(missing_ok=True)
            compare(sub, previous, digest, results)
            summary.graded += 1
            continue
        todo.append((sub, student_dir, digest, subtitle, previous))

    canaries = []
    if len(subs) > 1 and todo and not docker:
        # Each container holds one student; here many share one machine: prove, before any
        # student code runs, that no worker can read a classmate's files or any output.
        canaries = [c for c in map(place_canary, confidential) if c is not None]
        try:
            check_confinement(confidential)
        except BatchError:
            remove_canaries(canaries)
            raise

    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)

    def start(sub, student_dir, digest, subtitle, previous) -> _Job:
        student_dir.mkdir(parents=True, exist_ok=True)
        if previous is not None:
            # Kept until the new grade is in: a run killed meanwhile still knows the old one.
            _write_json(student_dir / PREVIOUS, {
                **previous, "reason": _reason(previous, digest, fingerprint, regrade)})
        (student_dir / "status.json").unlink(missing_ok=True)
        (student_dir / OPERATOR_NOTES).unlink(missing_ok=True)
        cmd = one_command(assignment, sub, student_dir, device=device, title=title,
                          subtitle=subtitle, limit=limit, confidential=confidential,
                          docker=docker)
        log = open(student_dir / "log.txt", "wb")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=student_dir, env=env, start_new_session=True)
        return _Job(sub, student_dir, digest, previous, proc, log)

    def finish(job: _Job, timed_out: bool) -> str:
        job.log.close()
        code = job.proc.returncode
        results = _read_json(job.dir / "results.json")
        state = "done" if code == 0 and isinstance(results, dict) else "grader_error"
        if timed_out:
            message = (f"grading did not finish within {limit:g} s and was stopped; it will be "
                       "retried when the batch runs again")
        elif not isinstance(results, dict) or code not in (0, 3):
            message = (f"the grading process ended with exit code {code} (see "
                       f"{job.dir / 'log.txt'}); it will be retried when the batch runs again")
        else:
            message = ""
        if message:
            results = _error_results(message, grader=True)
            _write_json(job.dir / "results.json", results)
        notes = _read_json(job.dir / OPERATOR_NOTES)
        _write_json(job.dir / "status.json",
                    {"state": state, "sha256": job.digest, "assignment_fingerprint": fingerprint,
                     "notebook": str(job.sub.notebook), "exit_code": code,
                     "seconds": round(time.monotonic() - job.start, 3),
                     "operator_notes": notes if isinstance(notes, list) else []})
        (job.dir / OPERATOR_NOTES).unlink(missing_ok=True)
        name = _console_text(job.sub.id)
        if state == "done":
            (job.dir / PREVIOUS).unlink(missing_ok=True)
            compare(job.sub, job.previous, job.digest, results)
            summary.graded += 1
            return f"{name}: {float(results.get('score', 0)):g}"
        summary.grader_errors += 1  # previous.json stays: the retry compares with it
        return f"{name}: grader error"

    running: list[_Job] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    try:
        with Progress(*columns, console=console, disable=not progress) as bar:
            task = bar.add_task(f"grading {_console_text(assignment.name)}", total=len(todo))
            while todo or running:
                while todo and len(running) < max(1, jobs):
                    running.append(start(*todo.popleft()))
                time.sleep(POLL_S)
                for job in list(running):
                    timed_out = job.proc.poll() is None and \
                        time.monotonic() - job.start > limit
                    if timed_out:
                        _kill(job.proc)
                    if job.proc.poll() is None:
                        continue
                    running.remove(job)
                    bar.update(task, advance=1, description=finish(job, timed_out))
    finally:
        for job in running:  # interrupted: stop the graders; their submissions stay pending
            _kill(job.proc)
            job.log.close()
        remove_canaries(canaries)
        summary.csv = write_grades_csv(out, subs)
        if changes:
            # In the order of grades.csv, not the order in which the graders finished.
            position = {sub.id: i for i, sub in enumerate(subs)}
            changes.sort(key=lambda c: position[c.sub.id])
            summary.diff_csv = write_diff_csv(out, changes)
            summary.regraded = len(changes)
            summary.changed = sum(c.changed for c in changes)
        summary.seconds = time.monotonic() - started
    return summary


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.batch")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("one", help="(internal) grade one submission for `dlgrade batch`")
    one.add_argument("--assignment", required=True)
    one.add_argument("--name", required=True)
    one.add_argument("--notebook", required=True)
    one.add_argument("--out", required=True)
    one.add_argument("--parent", type=int, required=True)
    one.add_argument("--device", default="cpu")
    one.add_argument("--docker")
    one.add_argument("--limit", type=float, default=600.0, help="the batch's wall-clock limit")
    one.add_argument("--title", default="")
    one.add_argument("--subtitle", default="")
    one.add_argument("--confidential", action="append", default=[],
                     help="a folder the student's code must not see (repeatable)")
    args = parser.parse_args(argv)
    return grade_one(args)


if __name__ == "__main__":
    sys.exit(main())
