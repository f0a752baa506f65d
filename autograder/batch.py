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
import select
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
    """One submission in this fresh process: in a container (``--docker``), else here."""
    _die_with_parent(args.parent)
    out, notebook = Path(args.out), Path(args.notebook)
    if not args.docker:
        from .assignment import load_assignment

        return grade_here(load_assignment(args.assignment), notebook, out, device=args.device,
                          confidential=[Path(p) for p in args.confidential], title=args.title,
                          subtitle=args.subtitle)
    from .containers import grade_in_container

    # The container stops itself a little before the batch would kill this process.
    path = Path(grade_in_container(args.docker, notebook, args.name, out, device=args.device,
                                   timeout_s=max(args.limit - 30, 30)))
    if path.resolve() != (out / "results.json").resolve():
        shutil.copyfile(path, out / "results.json")
    results = json.loads((out / "results.json").read_text())
    _page(out, results, _read_json(out / "figures.json") or {}, args.title, args.subtitle)
    return 3 if is_grader_error(results) else 0


def grade_here(assignment, notebook: Path, out: Path, *, device: str, confidential: list[Path],
               title: str, subtitle: str) -> int:
    """Grade one submission in this process into ``out``: results.json, figures.json, the
    operator's notes and the feedback page. 3 for a grader error, else 0."""
    from .feedback import take_recorded
    from .grade import grade_notebook
    from .results import write_results

    take_recorded()
    # The batch's own folders: hidden where namespaces allow, and the start-up probe refuses
    # to grade unless they and their canaries are unreadable to the worker.
    run = grade_notebook(notebook, assignment, device=device, confidential=confidential)
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
    _page(out, json.loads(run.results.model_dump_json()), figures, title, subtitle)
    return 3 if run.grader_error else 0


def _page(out: Path, results: dict, figures: dict, title: str, subtitle: str) -> None:
    try:
        write_page(out, results, figures, title, subtitle)
    except Exception as exc:  # noqa: BLE001 - the grade stands without its page
        print(f"feedback page failed: {type(exc).__name__}: {escape_control(str(exc))}",
              file=sys.stderr)


# ---- a warm grader: many submissions, one at a time, in one process ---------------------------

def serve(args) -> int:
    """Grade the submissions the batch sends on stdin (one JSON line each: notebook, out,
    title, subtitle), one at a time, answering each with a JSON line on ``--reply-fd``. The
    engine, the hidden tests and the reference are loaded once; each submission still gets a
    fresh confined worker, as in ``one``. While a submission is graded, this process's output
    goes to its log.txt."""
    import traceback

    from .assignment import load_assignment

    _die_with_parent(args.parent)
    assignment = load_assignment(args.assignment)
    confidential = [Path(p) for p in args.confidential]
    try:
        assignment.reference  # noqa: B018 - loaded now, not in the first student's time
    except Exception:  # noqa: BLE001 - grade_notebook reports a failing master per submission
        pass
    replies = os.fdopen(args.reply_fd, "w", buffering=1)
    between = os.dup(1), os.dup(2)  # where output goes between submissions
    while line := sys.stdin.readline():
        job = json.loads(line)
        out = Path(job["out"])
        sys.stdout.flush()
        sys.stderr.flush()
        log = os.open(out / "log.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                      0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.chdir(out)
        try:
            code = grade_here(assignment, Path(job["notebook"]), out, device=args.device,
                              confidential=confidential, title=job["title"],
                              subtitle=job["subtitle"])
        except Exception:  # noqa: BLE001 - this submission's grader error, not the batch's
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(between[0], 1)
        os.dup2(between[1], 2)
        replies.write(json.dumps({"code": code}) + "\n")
    return 0


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


def serve_command(assignment, out: Path, *, device: str, limit: float,
                  confidential: list[Path]) -> list[str]:
    """The command line of a warm grader (``serve``); values glued to options as in
    ``one_command``."""
    cmd = [sys.executable, "-m", "autograder.batch", "serve",
           f"--assignment={assignment.directory}", f"--name={assignment.name}",
           f"--out-root={out}", f"--parent={os.getpid()}", f"--device={device}",
           f"--limit={limit}"]
    return cmd + [f"--confidential={p}" for p in confidential]


# A warm grader is replaced after this many submissions: whatever grading leaves behind in its
# memory (caches, a leak) stays bounded.
MAX_SERVED = 50


class _WarmGrader:
    """A ``serve`` process: the batch sends it one submission at a time and reads its answer
    from a pipe of its own (its output goes to each submission's log.txt)."""

    def __init__(self, cmd: list[str], env: dict, cwd: Path, log: Path):
        read_fd, write_fd = os.pipe()
        with open(log, "ab") as between:  # its output outside a submission (start-up errors)
            self.proc = subprocess.Popen(cmd + [f"--reply-fd={write_fd}"], stdin=subprocess.PIPE,
                                         stdout=between, stderr=subprocess.STDOUT,
                                         pass_fds=(write_fd,), cwd=cwd, env=env,
                                         start_new_session=True)
        os.close(write_fd)
        self.replies, self.pending, self.served = read_fd, b"", 0

    def begin(self, request: dict) -> None:
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        self.served += 1

    def outcome(self) -> int | None:
        """The exit code of the submission it is grading once it has answered (or died:
        then its own exit status); None while it works."""
        if select.select([self.replies], [], [], 0)[0]:
            self.pending += os.read(self.replies, 4096) or b""
        if b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            try:
                return int(json.loads(line)["code"])
            except (ValueError, KeyError, TypeError):
                return 1
        code = self.proc.poll()
        if code is not None and not select.select([self.replies], [], [], 0)[0]:
            return code if code not in (0, 3) else 1  # it died without answering
        return None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.replies < 0:
            return
        _kill(self.proc)
        try:
            self.proc.stdin.close()
        except OSError:
            pass  # the pipe to a killed process
        os.close(self.replies)
        self.replies = -1


class _OneShot:
    """A ``one`` process for one submission (the ``--docker`` path: a container each)."""

    alive = False  # never reused

    def __init__(self, cmd: list[str], env: dict, cwd: Path):
        with open(cwd / "log.txt", "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                         start_new_session=True)

    def outcome(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> None:
        _kill(self.proc)


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
                _write_json(student_dir / "results.json", results)
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
        state = "done" if code == 0 and isinstance(results, dict) else "grader_error"
        message = failure
        if message:
            pass
        elif timed_out:
            message = (f"grading did not finish within {self.limit:g} s and was stopped; it "
                       "will be retried when the batch runs again")
        elif not isinstance(results, dict) or code not in (0, 3):
            message = (f"the grading process ended with exit code {code} (see "
                       f"{student_dir / 'log.txt'}); it will be retried when the batch runs "
                       "again")
        if message:
            results = _error_results(message, grader=True)
            _write_json(student_dir / "results.json", results)
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
            return f"{name}: {float(results.get('score', 0)):g}"
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
    idle: list[_WarmGrader] = [] if docker else [
        _WarmGrader(warm_cmd, env, out, out / "graders.log")
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
            return _Job(sub, student_dir, digest, previous, _OneShot(cmd, env, student_dir))
        grader = idle.pop() if idle else _WarmGrader(warm_cmd, env, out, out / "graders.log")
        grader.begin({"notebook": str(sub.notebook), "out": str(student_dir),
                      "title": books.title, "subtitle": subtitle})
        return _Job(sub, student_dir, digest, previous, grader)

    def finish(job: _Job, timed_out: bool, code: int | None) -> str:
        if job.grader.alive and job.grader.served < MAX_SERVED and not timed_out:
            idle.append(job.grader)
        else:
            job.grader.stop()
        return books.record(job.sub, job.dir, job.digest, job.previous, code=code,
                            results=_read_json(job.dir / "results.json"), timed_out=timed_out,
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
    warm = sub.add_parser("serve", help="(internal) a warm grader for `dlgrade batch`")
    warm.add_argument("--assignment", required=True)
    warm.add_argument("--name", required=True)
    warm.add_argument("--out-root", required=True, help="the batch's output folder")
    warm.add_argument("--parent", type=int, required=True)
    warm.add_argument("--device", default="cpu")
    warm.add_argument("--limit", type=float, default=600.0)
    warm.add_argument("--confidential", action="append", default=[])
    warm.add_argument("--reply-fd", type=int, required=True)
    args = parser.parse_args(argv)
    return serve(args) if args.command == "serve" else grade_one(args)


if __name__ == "__main__":
    sys.exit(main())
