"""Gradescope: the per-submission entry point behind ``run_autograder``, and the two scripts
that ``dlgrade release NAME --out DIR`` puts at the root of ``autograder.zip``.

Gradescope's layout, under ROOT (``/autograder``, or ``$DLGRADE_AUTOGRADER_ROOT`` for tests)::

    ROOT/source/                    the extracted autograder.zip: engine, hidden tests, master
    ROOT/submission/                the student's files
    ROOT/submission_metadata.json   who submitted, when (optional here)
    ROOT/results/results.json       what must exist when we are done, whatever happened

``setup.sh`` runs once, as root, when Gradescope builds the image (Ubuntu 22.04). It installs
the interpreter and the libraries into a venv under /opt that every uid may read and execute
(the sandbox uid must run the worker's interpreter), and makes ``source/`` root-only: inside
Docker the grader usually cannot hide paths with mount namespaces, so file modes are what
keeps the sandbox uid away from the hidden tests and the master solution.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .textsafe import escape_control

ROOT_ENV = "DLGRADE_AUTOGRADER_ROOT"
DEFAULT_ROOT = "/autograder"
VENV_DIR = "/opt/dlgrade/venv"
# Folders that editors and archivers create next to the real files: never a submission.
JUNK_DIRS = {".ipynb_checkpoints", "__MACOSX", "__pycache__", ".git"}
# Folders below a submission's top that are searched for its notebook; deeper is an error.
MAX_DEPTH = 32


class SubmissionError(Exception):
    """The submission holds no single notebook to grade; the message tells the student why."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind  # "no notebook" | "several notebooks" | "folder nested too deep"


def find_notebook(folder: Path) -> Path:
    """The one ``.ipynb`` in ``folder`` (any name, up to MAX_DEPTH folders down), or a
    SubmissionError.

    Symlinks are never followed or graded: one pointing at the hidden tests would otherwise be
    read by the grader, which runs as root. The walk keeps its own stack (``os.walk`` recurses,
    so a submission nested a thousand folders deep raised RecursionError and stopped a batch).
    """
    found, others, links = [], [], []
    stack = [(Path(folder), 0)]
    while stack:
        directory, depth = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue  # unreadable: as os.walk, skip it
        subdirs = []
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):  # macOS "._x.ipynb", editor swap files, .git
                continue
            if entry.is_symlink():
                links.append(path.relative_to(folder).as_posix())
            elif entry.is_dir(follow_symlinks=False):
                if entry.name not in JUNK_DIRS:
                    subdirs.append(path)
            elif not entry.is_file(follow_symlinks=False):
                continue
            elif entry.name.lower().endswith(".ipynb"):
                found.append(path)
            else:
                others.append(path.relative_to(folder).as_posix())
        if subdirs and depth + 1 > MAX_DEPTH:
            shown = "/".join(subdirs[0].relative_to(folder).parts[:4])
            raise SubmissionError(
                f"Folder nested too deep: your submission has folders more than {MAX_DEPTH} "
                f"levels down ({shown}/...), and the grader does not search that far for the "
                "notebook. Submit the .ipynb file itself, or a zip with it near the top.",
                "folder nested too deep")
        # Reversed onto the stack: sub-folders are searched in name order, depth first.
        stack.extend((d, depth + 1) for d in reversed(subdirs))
    if len(found) == 1:
        return found[0]
    if not found:
        seen = ", ".join((others + links)[:10]) or "nothing"
        extra = f" (symbolic links are ignored: {', '.join(links[:5])})" if links else ""
        raise SubmissionError(
            f"No Jupyter notebook (.ipynb file) was found in your submission; it contains: "
            f"{seen}{extra}. Upload the .ipynb file saved by Jupyter (File > Download > .ipynb).",
            "no notebook")
    names = ", ".join(p.relative_to(folder).as_posix() for p in found[:10])
    raise SubmissionError(
        f"Your submission contains {len(found)} notebooks ({names}); it is not clear which one "
        "to grade. Submit exactly one .ipynb file.", "several notebooks")


def notebook_or_zip(folder: Path, scratch: Path) -> Path:
    """The notebook to grade in ``folder``; where it has none but one zip at its top (otter's
    ``zips``, or a student zipping their work), the notebook inside that zip, extracted safely
    under ``scratch``. SubmissionError otherwise."""
    try:
        return find_notebook(folder)
    except SubmissionError as exc:
        if exc.kind != "no notebook":
            raise
        zips = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() == ".zip"
                      and p.is_file() and not p.is_symlink())
        if len(zips) != 1:
            raise
        return notebook_in_zip(zips[0], scratch)


def notebook_in_zip(path: Path, scratch: Path) -> Path:
    """The one notebook inside the zip file ``path``, extracted under ``scratch``."""
    import zipfile

    from .submissions import BatchError, safe_extract

    dest = Path(scratch) / "unzipped"
    dest.mkdir(parents=True, exist_ok=False)
    try:
        safe_extract(path, dest)
    except (zipfile.BadZipFile, BatchError) as exc:
        raise SubmissionError(f"Your submission {path.name} could not be opened as a zip file "
                              f"({exc}). Submit the .ipynb file itself, or a zip made by "
                              "otter export / your file manager.", "no notebook") from None
    try:
        return find_notebook(dest)
    except SubmissionError as exc:
        raise SubmissionError(f"In {path.name}: {exc}", exc.kind) from None


def submission_label(root: Path) -> str:
    """``submission 123 by Ada Lovelace`` from Gradescope's metadata, when it is there."""
    try:
        meta = json.loads((root / "submission_metadata.json").read_text())
        users = meta.get("users", [])
        names = ", ".join(str(u.get("name") or u.get("email") or "?") for u in users)
        return f"submission {meta.get('id', '?')}" + (f" by {names}" if names else "")
    except (OSError, ValueError, AttributeError, TypeError):
        return "submission"


def lock_down(source: Path) -> None:
    """Root only: the sandbox uid must not read hidden tests or solutions (setup.sh does this
    too; repeating it costs nothing and covers a source folder copied in by hand)."""
    # Only when needed: in a container with a read-only root, chmod fails even as a no-op.
    if os.geteuid() == 0 and stat.S_IMODE(os.stat(source).st_mode) != 0o700:
        os.chmod(source, 0o700)


def load_zip_assignment(source: Path, name: str):
    from .assignment import load_assignment

    assignment = load_assignment(str(source / "assignments" / name))
    bundled = source / "solutions" / f"{name}.ipynb"
    if (assignment.master is None or not assignment.master.exists()) and bundled.exists():
        assignment.master = bundled
    return assignment


def grade_submission(root: Path, name: str, *, device: str = "cpu"):
    """Grade ROOT/submission; returns (Results, exit code). May raise on grader failure."""
    source = root / "source"
    lock_down(source)
    assignment = load_zip_assignment(source, name)
    scratch = Path(tempfile.mkdtemp(prefix="dlgrade-submission-"))
    try:
        return _grade_in(root, assignment, scratch, device)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _grade_in(root: Path, assignment, scratch: Path, device: str):
    from .grade import grade_notebook
    from .results import error_results

    try:
        notebook = notebook_or_zip(root / "submission", scratch)
    except SubmissionError as exc:
        return error_results(str(exc)), 0
    engine = Path(__file__).resolve().parent
    print(f"dlgrade: grading {submission_label(root)}: {notebook.name} ({assignment.name}, "
          f"engine {engine})", flush=True)
    run = grade_notebook(notebook, assignment, device=device)
    # Gradescope shows this process's output to the instructor only: the operator's notes
    # (sandbox mode, warnings, a grader error's details) go there, not to the student.
    for note in run.operator_notes:
        for line in escape_control(note).splitlines() or [""]:
            print(f"dlgrade: operator: {line}", flush=True)
    shown = (notebook.relative_to(scratch / "unzipped") if notebook.is_relative_to(scratch)
             else notebook.relative_to(root / "submission")).as_posix()
    graded = f"Graded notebook: {shown}"
    run.results.output = graded + ("\n\n" + run.results.output if run.results.output else "")
    return run.results, (3 if run.grader_error else 0)


def run(root: Path, name: str, *, device: str = "cpu") -> int:
    """Always leaves a valid results.json; exit 3 marks a grader failure."""
    from .results import grader_error_results, write_results

    start = time.monotonic()
    try:
        results, code = grade_submission(root, name, device=device)
    except BaseException as exc:  # noqa: BLE001 - the results file must exist whatever happened
        if isinstance(exc, KeyboardInterrupt):
            raise
        print(traceback.format_exc()[-6000:], file=sys.stderr, flush=True)
        results = grader_error_results("the grader failed unexpectedly (details in the "
                                       "autograder's output)", time.monotonic() - start)
        code = 3
    write_results(results, root / "results" / "results.json")
    print(f"dlgrade: {results.score:g} / {results.max_score:g} points "
          f"in {time.monotonic() - start:.1f} s", flush=True)
    return code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.gradescope",
                                     description="grade /autograder/submission for Gradescope")
    parser.add_argument("--assignment", required=True, help="assignment name inside the zip")
    parser.add_argument("--root", default=os.environ.get(ROOT_ENV, DEFAULT_ROOT))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args(argv)
    return run(Path(args.root), args.assignment, device=args.device)


# ---- the scripts at the root of autograder.zip ------------------------------------------

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu 22.04),
# with autograder.zip extracted to /autograder/source. Generated by `dlgrade release`.
set -euo pipefail
ROOT="${DLGRADE_AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
VENV="${DLGRADE_VENV:-%(venv)s}"
# Extra pip options, e.g. a local wheel folder: DLGRADE_PIP_ARGS="--find-links /wheels".
PIP_ARGS="${DLGRADE_PIP_ARGS:---extra-index-url https://download.pytorch.org/whl/cpu}"

# The system interpreter, by full path: one under root's home (pyenv) is not executable by
# the sandbox uid.
PYTHON=/usr/bin/python3.11
if ! "$PYTHON" -m venv --help >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends python3.11 python3.11-venv
fi

# The venv sits outside /autograder and outside root's home: the sandbox uid must be able
# to execute the interpreter and import numpy/torch. The CPU build of torch is pinned by
# constraints.txt (the default wheel pulls several GB of CUDA libraries).
umask 022
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --no-cache-dir -q --upgrade pip
# shellcheck disable=SC2086
"$VENV/bin/pip" install --no-cache-dir -q $PIP_ARGS -c "$SOURCE/constraints.txt" "$SOURCE"
# The assignment's own packages (requirements in assignment.toml).
if [ -s "$SOURCE/requirements.txt" ]; then
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --no-cache-dir -q $PIP_ARGS -c "$SOURCE/constraints.txt" \
        -r "$SOURCE/requirements.txt"
fi
chmod -R a+rX "$VENV"

# Hidden tests and the master solution: root only. The grader refuses to grade when the
# sandbox uid can read them.
chown -R root:root "$SOURCE"
chmod 700 "$SOURCE"
"$VENV/bin/python" -c "import numpy, sklearn, torch, nbformat, pytest"
# What the worker needs, checked as a sandbox uid would see it.
"$VENV/bin/python" - <<'CHECK'
import subprocess, sys
subprocess.run([sys.executable, "-I", "-c", "import numpy, torch"], user=61000, group=61000,
               extra_groups=[], cwd="/", check=True)
CHECK
echo "dlgrade autograder for %(name)s installed in $VENV"
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this as root, once per submission. It always leaves results.json.
# Generated by `dlgrade release`; the grader code is the copy in $ROOT/source.
ROOT="${DLGRADE_AUTOGRADER_ROOT:-/autograder}"
PYTHON="${DLGRADE_PYTHON:-%(venv)s/bin/python}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
cd "$ROOT/source" 2>/dev/null || cd /
PYTHONPATH="$ROOT/source" DLGRADE_AUTOGRADER_ROOT="$ROOT" \\
    "$PYTHON" -m autograder.gradescope --assignment %(name)s
status=$?
if [ ! -s "$RESULTS" ]; then
    # The grader could not even start (missing interpreter, broken install).
    message="GRADER ERROR: the autograder failed to start (exit $status); tell the instructor."
    printf '{"score": 0, "output": "%%s", "tests": [], "extra_data": {"grader_error": true}}\\n' \\
        "$message" > "$RESULTS"
fi
exit "$status"
"""


def setup_script(name: str) -> str:
    return SETUP_SH % {"name": name, "venv": VENV_DIR}


def run_script(name: str) -> str:
    return RUN_AUTOGRADER % {"name": name, "venv": VENV_DIR}


if __name__ == "__main__":
    sys.exit(main())
