"""A batch's grading processes: what runs in them, and the batch's handles on them.

``python -m autograder.graders one``: one submission in a fresh process (the ``--docker`` path:
in a container of its own). ``python -m autograder.graders serve``: a warm grader, which loads
the engine, the hidden tests and the reference once and grades one submission after another,
each with a fresh confined worker. Either writes the submission's results.json, figures, the
instructor's notes and feedback page into its folder; the batch (batch.py, ray_batch.py) only
starts them, limits their time and records the outcome.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from .results import Results, read_results
from .student_state import OPERATOR_NOTES, _read_json, _write_json, write_page
from .submissions import Submission
from .textsafe import escape_control


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
    results = read_results(out / "results.json")
    if results is None:  # grade_in_container always writes a valid one
        return 1
    _page(out, results, _read_json(out / "figures.json") or {}, args.title, args.subtitle)
    return 3 if results.grader_error else 0


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
    _page(out, run.results, figures, title, subtitle)
    return 3 if run.grader_error else 0


def _page(out: Path, results: Results, figures: dict, title: str, subtitle: str) -> None:
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


def one_command(assignment, sub: Submission, student_dir: Path, *, device: str, title: str,
                subtitle: str, limit: float, confidential: list[Path],
                docker: str | None = None) -> list[str]:
    """The command line of the process that grades one submission.

    Every value is glued to its option (``--notebook=-h.ipynb``): argparse reads a separate
    value that starts with '-' as an option, and a notebook or folder called ``-h`` or
    ``--out`` was a grader error on every run.
    """
    cmd = [sys.executable, "-m", "autograder.graders", "one",
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
    cmd = [sys.executable, "-m", "autograder.graders", "serve",
           f"--assignment={assignment.directory}", f"--name={assignment.name}",
           f"--out-root={out}", f"--parent={os.getpid()}", f"--device={device}",
           f"--limit={limit}"]
    return cmd + [f"--confidential={p}" for p in confidential]


# A warm grader is replaced after this many submissions: whatever grading leaves behind in its
# memory (caches, a leak) stays bounded.
MAX_SERVED = 50


class WarmGrader:
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


class OneShot:
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


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.graders")
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
