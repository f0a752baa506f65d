"""What a batch keeps per student in ``DIR/students/ID/``: status, results and the previous
grade, the assignment's fingerprint that decides whether a grade is still current, and the
output folder's privacy."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

from .assignment import WORKER_OBJECTS_FILE, AssignmentError
from .results import Results, error_results, grader_error_results, read_results
from .submissions import BatchError


# The grader's own code, part of every assignment's fingerprint (a module-level name so tests
# can point it at a copy).
ENGINE_DIR = Path(__file__).resolve().parent
PREVIOUS = "previous.json"       # a regraded submission's old grade, until the new one is in
OPERATOR_NOTES = "operator_notes.json"  # from the grading process, moved into status.json

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
                        ("master", assignment.master),
                        # built in the worker by the hidden tests (make(...))
                        (WORKER_OBJECTS_FILE, assignment.directory / WORKER_OBJECTS_FILE)):
        if path is not None and path.is_file():
            files.append((label, path))
    # The data files the notebook reads while graded (a missing one is the grading's error).
    files += [(f"files/{name}", path) for name, path in _declared_files(assignment)]
    files += sorted((f"engine/{p.relative_to(engine_dir).as_posix()}", p)
                    for p in engine_dir.rglob("*.py") if p.is_file())
    for label, path in files:
        _hash_file(digest, label, path)
    return digest.hexdigest()


def _declared_files(assignment) -> list[tuple[str, Path]]:
    try:
        return assignment.public_files()
    except AssignmentError:
        return []


def is_done(student_dir: Path, digest: str, fingerprint: str) -> bool:
    """Graded, from this very notebook, against this very assignment and grader."""
    status = _read_json(student_dir / "status.json")
    return (isinstance(status, dict) and status.get("state") == "done"
            and status.get("sha256") == digest
            and status.get("assignment_fingerprint") == fingerprint
            and read_results(student_dir / "results.json") is not None)


def _grade_of(results: Results | None) -> tuple[float, float] | None:
    """(total, maximum) of a results.json, or None when there is none."""
    return None if results is None else (results.score, results.max_score)


def previous_grade(student_dir: Path) -> dict | None:
    """The grade an earlier run gave, read before this run overwrites it: the total, the
    maximum, and the notebook and assignment it was given for. A re-run interrupted while
    regrading left ``previous.json``, which still holds the grade from before."""
    status = _read_json(student_dir / "status.json")
    if isinstance(status, dict) and status.get("state") == "done":
        grade = _grade_of(read_results(student_dir / "results.json"))
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


def _error_results(message: str, grader: bool = False) -> Results:
    """The results of a submission not graded: the student's problem, or with ``grader`` the
    grader's (retried by the next run)."""
    return grader_error_results(message) if grader else error_results(message)


def write_page(student_dir: Path, results: Results, figures: dict, title: str,
               subtitle: str) -> None:
    from .feedback import render_page

    page = render_page(results, figures, title=title, subtitle=subtitle)
    tmp = student_dir / ".feedback.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, student_dir / "feedback.html")


