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
    DIR/students/ID/status.json     done / grader_error, the notebook's sha256
    DIR/input/                      the zip's contents (unsafe entries refused)
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

from .gradescope import JUNK_DIRS, SubmissionError, find_notebook

MAX_ZIP_MEMBERS = 50_000
MAX_ZIP_BYTES = 8 << 30
MAX_MEMBER_BYTES = 512 << 20
EXTRACTED_MARKER = ".dlgrade-extracted"
POLL_S = 0.05


class BatchError(Exception):
    pass


@dataclass
class Submission:
    id: str                      # unique, safe as a folder name
    notebook: Path | None        # None: nothing to grade, ``problem`` says why
    problem: str = ""
    problem_kind: str = ""       # "no notebook" | "several notebooks", the CSV's status
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


def safe_extract(zip_path: Path, dest: Path) -> list[str]:
    """Extract ``zip_path`` into ``dest``; returns the refused entries with the reason.

    Entries with ``..``, absolute paths or symlinks are refused, not sanitised; sizes are
    capped while copying (a header's size can lie).
    """
    refused, total = [], 0
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise BatchError(f"{zip_path.name} has {len(infos)} entries "
                             f"(at most {MAX_ZIP_MEMBERS})")
        for info in infos:
            reason = unsafe_reason(info)
            if reason:
                refused.append(f"{info.filename}: {reason}")
                continue
            parts = [p for p in info.filename.split("/") if p not in ("", ".")]
            if not parts:
                continue
            target = dest.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW | O_EXCL: never write through a link, never overwrite an earlier entry
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except FileExistsError:
                refused.append(f"{info.filename}: duplicate entry")
                continue
            written = 0
            with zf.open(info) as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    total += len(chunk)
                    if written > MAX_MEMBER_BYTES or total > MAX_ZIP_BYTES:
                        raise BatchError(f"{zip_path.name}: {info.filename} makes the archive "
                                         "too large to extract")
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
            if dest.exists():
                shutil.rmtree(dest)
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


def is_done(student_dir: Path, digest: str) -> bool:
    status = _read_json(student_dir / "status.json")
    return (isinstance(status, dict) and status.get("state") == "done"
            and status.get("sha256") == digest
            and isinstance(_read_json(student_dir / "results.json"), dict))


def _error_results(message: str) -> dict:
    from .results import error_results

    return json.loads(error_results(message).model_dump_json())


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
        grader_error = "GRADER ERROR" in str(results.get("output", ""))
    else:
        from .assignment import load_assignment
        from .feedback import take_recorded
        from .grade import grade_notebook
        from .results import write_results

        assignment = load_assignment(args.assignment)
        take_recorded()
        run = grade_notebook(notebook, assignment, device=args.device)
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
        print(f"feedback page failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 3 if grader_error else 0


# ---- the batch -----------------------------------------------------------------------------

def _people(sub: Submission) -> str:
    return ", ".join(p.get("name") or p.get("email") or p.get("sid") for p in sub.submitters)


class _Job:
    def __init__(self, sub: Submission, student_dir: Path, digest: str, proc, log):
        self.sub, self.dir, self.digest, self.proc, self.log = sub, student_dir, digest, proc, log
        self.start = time.monotonic()


def run_batch(source: Path, assignment_name: str, out: Path, *, jobs: int = 1,
              docker: str | None = None, device: str = "cpu", timeout: float | None = None,
              progress: bool = True, console=None) -> BatchSummary:
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
    out.mkdir(parents=True, exist_ok=True)
    subs, refused = discover(Path(source).resolve(), out)
    summary = BatchSummary(total=len(subs), refused=refused)
    for line in refused:
        console.print(f"[yellow]refused zip entry[/] {line}", markup=True, highlight=False)
    limit = timeout or (assignment.total_time_limit + 4 * assignment.load_time_limit + 120)
    title = f"{assignment.title or assignment.name}: feedback"

    todo: deque = deque()
    for sub in subs:
        student_dir = out / "students" / sub.id
        subtitle = " ".join(x for x in (sub.label, _people(sub)) if x)
        if sub.notebook is None:
            # Nothing to run: the student's 0 and the reason, written at once.
            if not is_done(student_dir, ""):
                results = _error_results(sub.problem)
                _write_json(student_dir / "results.json", results)
                write_page(student_dir, results, {}, title, subtitle)
                _write_json(student_dir / "status.json",
                            {"state": "done", "sha256": "", "notebook": None, "seconds": 0.0})
                summary.graded += 1
            else:
                summary.skipped += 1
            continue
        digest = sha256_of(sub.notebook)
        if is_done(student_dir, digest):
            summary.skipped += 1
        else:
            todo.append((sub, student_dir, digest, subtitle))

    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)

    def start(sub, student_dir, digest, subtitle) -> _Job:
        student_dir.mkdir(parents=True, exist_ok=True)
        (student_dir / "status.json").unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "autograder.batch", "one",
               "--assignment", str(assignment.directory), "--name", assignment.name,
               "--notebook", str(sub.notebook), "--out", str(student_dir),
               "--parent", str(os.getpid()), "--device", device,
               "--title", title, "--subtitle", subtitle, "--limit", str(limit)]
        if docker:
            cmd += ["--docker", docker]
        log = open(student_dir / "log.txt", "wb")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=student_dir, env=env, start_new_session=True)
        return _Job(sub, student_dir, digest, proc, log)

    def finish(job: _Job, timed_out: bool) -> str:
        job.log.close()
        code = job.proc.returncode
        results = _read_json(job.dir / "results.json")
        state = "done" if code == 0 and isinstance(results, dict) else "grader_error"
        if timed_out:
            message = (f"GRADER ERROR: grading did not finish within {limit:g} s and was stopped; "
                       "it will be retried when the batch runs again")
        elif not isinstance(results, dict) or code not in (0, 3):
            message = (f"GRADER ERROR: the grading process ended with exit code {code} "
                       f"(see {job.dir / 'log.txt'}); it will be retried when the batch runs again")
        else:
            message = ""
        if message:
            results = _error_results(message)
            _write_json(job.dir / "results.json", results)
        _write_json(job.dir / "status.json",
                    {"state": state, "sha256": job.digest, "notebook": str(job.sub.notebook),
                     "exit_code": code, "seconds": round(time.monotonic() - job.start, 3)})
        if state == "done":
            summary.graded += 1
            return f"{job.sub.id}: {float(results.get('score', 0)):g}"
        summary.grader_errors += 1
        return f"{job.sub.id}: grader error"

    running: list[_Job] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    try:
        with Progress(*columns, console=console, disable=not progress) as bar:
            task = bar.add_task(f"grading {assignment.name}", total=len(todo))
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
        summary.csv = write_grades_csv(out, subs)
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
            suite_max = max(suite_max, sum(float(t["max_score"]) for t in results["tests"]))
        loaded.append((sub, status, results, by_name))
    header = ["submission", "name", "email", "sid", "notebook", *columns, "total", "max_score",
              "status"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
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
            writer.writerow([sub.id, person.get("name", ""), person.get("email", ""),
                             person.get("sid", ""), notebook, *scores, total, _fmt(suite_max),
                             label])
    path = out / "grades.csv"
    tmp = out / ".grades.csv.tmp"
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
    return path


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
    args = parser.parse_args(argv)
    return grade_one(args)


if __name__ == "__main__":
    sys.exit(main())
