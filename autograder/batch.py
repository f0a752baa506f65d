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
import csv
import ctypes
import hashlib
import importlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .confinement import place_canary, preflight
from .gradescope import JUNK_DIRS, SubmissionError, find_notebook
from .results import is_grader_error, maximum
from .textsafe import csv_cell, escape_control

MAX_ZIP_MEMBERS = 50_000
MAX_ZIP_BYTES = 8 << 30
MAX_MEMBER_BYTES = 512 << 20
MAX_EXTRACT_DEPTH = 256  # folders; far past gradescope.MAX_DEPTH, which then names the problem
EXTRACTED_MARKER = ".dlgrade-extracted"
PREVIOUS = "previous.json"       # a regraded submission's old grade, until the new one is in
OPERATOR_NOTES = "operator_notes.json"  # from the grading process, moved into status.json
POLL_S = 0.05
# The grader's own code, part of every assignment's fingerprint (a module-level name so tests
# can point it at a copy).
ENGINE_DIR = Path(__file__).resolve().parent


class BatchError(Exception):
    pass


@dataclass
class Submission:
    id: str                      # unique, safe as a folder name
    notebook: Path | None        # None: nothing to grade, ``problem`` says why
    problem: str = ""
    problem_kind: str = ""       # SubmissionError.kind ("no notebook", ...), the CSV's status
    submitters: list[dict] = field(default_factory=list)  # name, email, sid
    label: str = ""              # where it came from, for the CSV


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


# ---- reading the input ---------------------------------------------------------------------

def unsafe_reason(info: zipfile.ZipInfo) -> str:
    """Why a zip entry must not be extracted, or '' when it is safe."""
    name = info.filename
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if "\x00" in name or "\\" in name:
        return "invalid character in the name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in name.split("/"):
        return "'..' in the path"
    return ""


def _make_dirs(dest: Path, parts: list[str], made: set[str]) -> None:
    """``dest/parts...`` as folders, one level at a time: ``Path.mkdir(parents=True)`` recurses
    once per level, and an entry a thousand folders deep raised RecursionError. ``made``: the
    folders already made, relative to ``dest`` (each is made once, however many entries it
    holds)."""
    if not parts or "/".join(parts) in made:
        return
    current, rel = str(dest), ""
    for part in parts:
        current, rel = f"{current}/{part}", f"{rel}/{part}" if rel else part
        if rel in made:
            continue
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(current).st_mode):  # a file of an earlier entry
                raise NotADirectoryError(f"{rel} is a file") from None
        made.add(rel)


def _shown(name: str, limit: int = 200) -> str:
    """A zip entry's name for the refused list: one line, no terminal escapes, and its two
    ends only when it is long (names can be thousands of characters)."""
    name = escape_control(name, single_line=True)
    return name if len(name) <= limit else f"{name[:limit // 2]}...{name[-limit // 2:]}"


def safe_extract(zip_path: Path, dest: Path) -> list[str]:
    """Extract ``zip_path`` into ``dest``; returns the refused entries with the reason.

    Entries with ``..``, absolute paths or symlinks are refused, not sanitised; sizes are
    capped while copying (a header's size can lie). An entry the file system cannot hold
    (a name or path too long, a file where a folder should be) is refused too.
    """
    refused, total = [], 0
    made: set[str] = set()
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise BatchError(f"{zip_path.name} has {len(infos)} entries "
                             f"(at most {MAX_ZIP_MEMBERS})")
        for info in infos:
            reason = unsafe_reason(info)
            if reason:
                refused.append(f"{_shown(info.filename)}: {reason}")
                continue
            parts = [p for p in info.filename.split("/") if p not in ("", ".")]
            if not parts:
                continue
            target = dest.joinpath(*parts)
            folders = parts if info.is_dir() else parts[:-1]
            try:
                if len(folders) > MAX_EXTRACT_DEPTH:
                    # Its first folders are made all the same: the submission then reads as
                    # "folder nested too deep" (find_notebook), not as one without a notebook.
                    _make_dirs(dest, folders[:MAX_EXTRACT_DEPTH], made)
                    refused.append(f"{_shown(info.filename)}: nested more than "
                                   f"{MAX_EXTRACT_DEPTH} folders deep")
                    continue
                _make_dirs(dest, folders, made)
                if info.is_dir():
                    continue
                # O_NOFOLLOW | O_EXCL: never write through a link, never overwrite an earlier
                # entry
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except FileExistsError:
                refused.append(f"{_shown(info.filename)}: duplicate entry")
                continue
            except OSError as exc:
                refused.append(f"{_shown(info.filename)}: cannot be extracted here "
                               f"({exc.strerror or exc})")
                continue
            written = 0
            with zf.open(info) as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    total += len(chunk)
                    if written > MAX_MEMBER_BYTES or total > MAX_ZIP_BYTES:
                        raise BatchError(f"{zip_path.name}: {_shown(info.filename)} makes the "
                                         "archive too large to extract")
                    dst.write(chunk)
    return refused


def _load_yaml(path: Path):
    import yaml

    class Loader(yaml.SafeLoader):
        """Gradescope writes Ruby-tagged YAML; unknown tags load as plain data."""

    def plain(loader, _suffix, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("!", plain)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506 - safe loader


def _get(mapping, key: str, default=None):
    """Gradescope's keys are Ruby symbols (``:submitters:``); accept plain keys too."""
    if not isinstance(mapping, dict):
        return default
    return mapping.get(f":{key}", mapping.get(key, default))


class _Ids:
    def __init__(self):
        self.used: set[str] = set()

    def __call__(self, raw: str) -> str:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", raw).strip("._")[:80] or "submission"
        name, n = base, 1
        while name in self.used:
            n += 1
            name = f"{base}-{n}"
        self.used.add(name)
        return name


def _with_notebook(sub_id: str, folder: Path, **kw) -> Submission:
    try:
        return Submission(sub_id, find_notebook(folder), **kw)
    except SubmissionError as exc:
        return Submission(sub_id, None, problem=str(exc), problem_kind=exc.kind, **kw)


def from_export(folder: Path) -> list[Submission]:
    """A Gradescope export: ``submission_metadata.yml`` and one folder per submission."""
    metadata = _load_yaml(folder / "submission_metadata.yml") or {}
    if not isinstance(metadata, dict):
        raise BatchError("submission_metadata.yml is not a mapping of submissions")
    ids, subs = _Ids(), []
    for key in sorted(metadata, key=str):
        people = []
        for person in _get(metadata[key], "submitters", []) or []:
            people.append({f: str(_get(person, f, "") or "") for f in ("name", "email", "sid")})
        sub_folder = folder / str(key)
        kw = dict(submitters=people, label=str(key))
        if sub_folder.is_dir() and not sub_folder.is_symlink():
            subs.append(_with_notebook(ids(str(key)), sub_folder, **kw))
        else:
            subs.append(Submission(ids(str(key)), None, problem="the export holds no files "
                                   "for this submission", problem_kind="no notebook", **kw))
    return subs


def from_folder(folder: Path) -> list[Submission]:
    """Each ``*.ipynb`` directly in ``folder`` is a student; so is each sub-folder."""
    ids, subs = _Ids(), []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name in JUNK_DIRS or entry.is_symlink():
            continue
        if entry.is_file() and entry.suffix.lower() == ".ipynb":
            subs.append(Submission(ids(entry.stem), entry, label=entry.name))
        elif entry.is_dir():
            subs.append(_with_notebook(ids(entry.name), entry, label=entry.name + "/"))
    return subs


def _export_root(folder: Path) -> Path | None:
    if (folder / "submission_metadata.yml").is_file():
        return folder
    inner = [p for p in folder.iterdir() if p.is_dir() and p.name not in JUNK_DIRS
             and not p.name.startswith(".") and not p.is_symlink()]
    if len(inner) == 1 and (inner[0] / "submission_metadata.yml").is_file():
        return inner[0]
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def remove_tree(root: Path) -> None:
    """``shutil.rmtree`` without recursion (it recurses once per level, and an extracted zip
    can nest a few hundred folders deep). Links are removed, never followed."""
    stack = [str(root)]
    while stack:
        top = stack[-1]
        subdirs = []
        with os.scandir(top) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                else:
                    os.unlink(entry.path)
        if subdirs:
            stack.extend(subdirs)  # ``top`` is looked at again once they are gone
        else:
            os.rmdir(top)
            stack.pop()


def discover(source: Path, out: Path) -> tuple[list[Submission], list[str]]:
    """The submissions in a folder or zip; a zip is extracted (once) under ``out/input``."""
    refused: list[str] = []
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise BatchError(f"{source} is neither a folder nor a zip file")
        dest, digest = out / "input", sha256_of(source)
        marker = dest / EXTRACTED_MARKER
        refused_file = out / "refused.txt"
        if not (marker.is_file() and marker.read_text() == digest):
            if dest.is_symlink():
                dest.unlink()
            elif dest.exists():
                remove_tree(dest)
            dest.mkdir(parents=True)
            refused = safe_extract(source, dest)
            refused_file.write_text("".join(f"{r}\n" for r in refused))
            marker.write_text(digest)
        elif refused_file.exists():
            refused = refused_file.read_text().splitlines()
        root = dest
    elif source.is_dir():
        root = source
    else:
        raise BatchError(f"{source} does not exist")
    export = _export_root(root)
    subs = from_export(export) if export else from_folder(root)
    if not subs:
        raise BatchError(f"no submissions found in {source}")
    return subs, refused


# ---- per-student state ---------------------------------------------------------------------

def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def make_private(out: Path) -> None:
    """Create ``out`` with mode 0700, or make an existing one so.

    It holds every student's notebook, results and log, and the code being graded runs under
    sandbox uids: other uids must not even list it.
    """
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.stat(out)
    if stat.S_IMODE(info.st_mode) == 0o700:
        return
    if info.st_uid != os.geteuid() and os.geteuid() != 0:
        raise BatchError(f"the output folder {out} has mode {stat.S_IMODE(info.st_mode):o} "
                         f"and belongs to uid {info.st_uid}, so it cannot be made private "
                         "(mode 700) by this user; pass an --out folder of your own, or have "
                         "its owner run `chmod 700` on it")
    os.chmod(out, 0o700)


def _hash_file(digest, label: str, path: Path) -> None:
    # The label and the size before the bytes: moving bytes from one file to the next, or
    # renaming a file, changes the fingerprint.
    digest.update(f"{label}\0{path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)


def assignment_fingerprint(assignment, engine_dir: Path | None = None) -> str:
    """sha256 of everything besides the notebook that decides a grade: every file of the
    assignment's hidden tests, its assignment.toml, mutants.py, the master notebook, and the
    grader's own Python source. A change to any of them makes ``dlgrade batch`` regrade."""
    engine_dir = Path(engine_dir or ENGINE_DIR)
    digest = hashlib.sha256()
    files: list[tuple[str, Path]] = []
    tests = assignment.tests_dir
    if tests.is_dir():
        # Not the bytecode that running the tests leaves: it changes with every interpreter.
        files += sorted((f"tests/{p.relative_to(tests).as_posix()}", p) for p in tests.rglob("*")
                        if p.is_file() and "__pycache__" not in p.relative_to(tests).parts
                        and p.suffix not in (".pyc", ".pyo"))
    for label, path in (("assignment.toml", assignment.directory / "assignment.toml"),
                        ("mutants.py", assignment.mutants_file),
                        ("master", assignment.master)):
        if path is not None and path.is_file():
            files.append((label, path))
    files += sorted((f"engine/{p.relative_to(engine_dir).as_posix()}", p)
                    for p in engine_dir.rglob("*.py") if p.is_file())
    for label, path in files:
        _hash_file(digest, label, path)
    return digest.hexdigest()


def is_done(student_dir: Path, digest: str, fingerprint: str) -> bool:
    """Graded, from this very notebook, against this very assignment and grader."""
    status = _read_json(student_dir / "status.json")
    return (isinstance(status, dict) and status.get("state") == "done"
            and status.get("sha256") == digest
            and status.get("assignment_fingerprint") == fingerprint
            and isinstance(_read_json(student_dir / "results.json"), dict))


def _grade_of(results) -> tuple[float, float] | None:
    """(total, maximum) of a results.json, or None when it holds no usable grade."""
    if not isinstance(results, dict):
        return None
    try:
        return float(results.get("score", 0.0)), maximum(results)
    except (TypeError, ValueError, KeyError):
        return None


def previous_grade(student_dir: Path) -> dict | None:
    """The grade an earlier run gave, read before this run overwrites it: the total, the
    maximum, and the notebook and assignment it was given for. A re-run interrupted while
    regrading left ``previous.json``, which still holds the grade from before."""
    status = _read_json(student_dir / "status.json")
    if isinstance(status, dict) and status.get("state") == "done":
        grade = _grade_of(_read_json(student_dir / "results.json"))
        if grade is None:
            return None
        return {"score": grade[0], "max_score": grade[1], "sha256": status.get("sha256"),
                "assignment_fingerprint": status.get("assignment_fingerprint")}
    kept = _read_json(student_dir / PREVIOUS)
    try:
        float(kept["score"]), float(kept["max_score"])
    except (TypeError, KeyError, ValueError):
        return None  # never graded, or only grader errors: there was no grade
    return kept


def _reason(previous: dict, digest: str, fingerprint: str, forced: bool) -> str:
    if forced:
        return "forced"
    if previous.get("sha256") != digest:
        return "notebook changed"
    if previous.get("assignment_fingerprint") != fingerprint:
        return "assignment changed"
    return previous.get("reason", "forced")  # as the interrupted run that took it had it


def _error_results(message: str, grader: bool = False) -> dict:
    """A results.json (as a dict) for a submission not graded: the student's problem, or with
    ``grader`` the grader's (retried by the next run)."""
    from .results import error_results, grader_error_results

    made = grader_error_results(message) if grader else error_results(message)
    return json.loads(made.model_dump_json())


def write_page(student_dir: Path, results: dict, figures: dict, title: str,
               subtitle: str) -> None:
    from .feedback import render_page

    page = render_page(results, figures, title=title, subtitle=subtitle)
    tmp = student_dir / ".feedback.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, student_dir / "feedback.html")


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

def _people(sub: Submission) -> str:
    return ", ".join(p.get("name") or p.get("email") or p.get("sid") for p in sub.submitters)


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


@dataclass
class _Change:
    sub: Submission
    previous: dict
    new: tuple[float, float]
    reason: str

    @property
    def changed(self) -> bool:
        old = (float(self.previous["score"]), float(self.previous["max_score"]))
        return any(abs(a - b) > 1e-9 for a, b in zip(old, self.new, strict=True))


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


# ---- grades.csv ----------------------------------------------------------------------------

def _fmt(value: float) -> str:
    return f"{round(float(value), 4):g}"


def _cell(text) -> str:
    """A text cell from the input (a name, a file name): one line, no terminal escapes, never
    a spreadsheet formula. Numbers we format ourselves do not go through this."""
    return csv_cell(escape_control(str(text), single_line=True))


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_grades_csv(out: Path, subs: list[Submission]) -> Path:
    """One row per student (per submitter of a group), one column per test, then the total."""
    loaded = []
    columns: list[str] = []
    suite_max = 0.0
    for sub in subs:
        student_dir = out / "students" / sub.id
        status = _read_json(student_dir / "status.json") or {}
        results = _read_json(student_dir / "results.json") if status else None
        by_name: dict[str, float] = {}
        for test in (results or {}).get("tests", []):
            key, n = test["name"], 1
            while key in by_name:  # two tests with one name: keep both columns
                n += 1
                key = f"{test['name']} ({n})"
            by_name[key] = float(test["score"])
            if key not in columns:
                columns.append(key)
        if results and results.get("tests"):
            suite_max = max(suite_max, maximum(results))
        loaded.append((sub, status, results, by_name))
    rows = [["submission", "name", "email", "sid", "notebook", *map(_cell, columns), "total",
             "max_score", "status"]]
    for sub, status, results, by_name in loaded:
        state = status.get("state")
        if state == "done":
            label = "graded" if sub.notebook is not None else sub.problem_kind
            scores = [_fmt(by_name.get(c, 0.0)) for c in columns]
            total = _fmt(results.get("score", 0.0))
        else:
            label = "grader error" if state == "grader_error" else "not graded"
            scores = [_fmt(by_name[c]) if c in by_name else "" for c in columns]
            total = ""
        notebook = sub.notebook.name if sub.notebook is not None else ""
        for person in sub.submitters or [{}]:
            rows.append([_cell(sub.id), _cell(person.get("name", "")),
                         _cell(person.get("email", "")), _cell(person.get("sid", "")),
                         _cell(notebook), *scores, total, _fmt(suite_max), label])
    return _write_csv(out / "grades.csv", rows)


def write_diff_csv(out: Path, changes: list[_Change]) -> Path:
    """grades-diff.csv: the submissions this run regraded whose total or maximum changed."""
    rows = [["submission", "names", "old_total", "new_total", "old_max", "new_max", "reason"]]
    for change in changes:
        if change.changed:
            rows.append([_cell(change.sub.id), _cell(_people(change.sub)),
                         _fmt(change.previous["score"]), _fmt(change.new[0]),
                         _fmt(change.previous["max_score"]), _fmt(change.new[1]),
                         change.reason])
    return _write_csv(out / "grades-diff.csv", rows)


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
