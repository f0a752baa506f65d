"""Build the student's notebook from the instructor's master: one source for both."""
from __future__ import annotations

import ast
import copy
import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .confinement import record_release

BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")


class ReleaseError(Exception):
    pass


def strip_solutions(source: str, where: str) -> str:
    """Replace each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block by a NotImplementedError."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ReleaseError(f"{where}, line {number}: nested BEGIN SOLUTION")
            inside = True
            out.append(f"{begin.group(1)}# TODO: your code here")
            out.append(f'{begin.group(1)}raise NotImplementedError("not implemented yet")')
        elif END.match(line):
            if not inside:
                raise ReleaseError(f"{where}, line {number}: END SOLUTION without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ReleaseError(f"{where}: BEGIN SOLUTION is never closed")
    return "\n".join(out)


def make_skeleton(master: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(master)
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"cell {number}")
            cell.outputs = []
            cell.execution_count = None
    return nb


def write_skeleton(master_path: Path, out_path: Path) -> Path:
    master = nbformat.read(master_path, as_version=4)
    skeleton = make_skeleton(master)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(skeleton, out_path)
    return out_path


# ---- the master notebook: the one source, edited in Jupyter ------------------------------

# Cell metadata Jupyter writes as it runs and displays cells: noise in a diff of the master.
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled", "jupyter",
                          "tags_hidden")


def normalize_master(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the master as it is committed: no outputs or execution counts (they would hold
    the solution's results), no run-time cell metadata, stable ids, the kernel and language
    names only, so a diff shows the instructor's edits and nothing else."""
    out = copy.deepcopy(nb)
    out.nbformat, out.nbformat_minor = 4, max(int(out.get("nbformat_minor", 5)), 5)
    kernel = out.metadata.get("kernelspec", {})
    out.metadata = nbformat.NotebookNode(
        kernelspec={"name": kernel.get("name", "python3"),
                    "display_name": kernel.get("display_name", "Python 3"),
                    "language": kernel.get("language", "python")},
        language_info={"name": out.metadata.get("language_info", {}).get("name", "python")})
    seen: set[str] = set()
    for number, cell in enumerate(out.cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if not cell.get("id") or cell.id in seen:
            cell.id = f"cell-{number:03d}"
        seen.add(cell.id)
        if "attachments" in cell and not cell.attachments:
            del cell["attachments"]
    return out


def normalize_master_file(path: Path) -> bool:
    """Rewrite the master at ``path`` normalised; True when that changed it."""
    nb = nbformat.read(path, as_version=4)
    normal = normalize_master(nb)
    if normal == nb and path.read_text() == nbformat.writes(normal) + "\n":
        return False
    nbformat.validate(normal)
    nbformat.write(normal, path)
    return True


# ---- helpers for scripts that write a new master from Python (a one-off start) --------------

def markdown_cell(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code_cell(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(text.strip("\n"))


def assemble_notebook(cells: list, id_prefix: str) -> nbformat.NotebookNode:
    """A Python 3 notebook with stable cell ids, so rebuilding gives an identical file."""
    for number, cell in enumerate(cells):
        cell.id = f"{id_prefix}-{number:02d}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write_master(nb: nbformat.NotebookNode, out: Path) -> None:
    nbformat.validate(nb)
    nbformat.write(nb, out)
    print(f"wrote {out}")


# ---- a full release: the student folder and Gradescope's autograder.zip -------------------
#
# One source for both: the master notebook. The student folder gets the skeleton and what
# `check("name")` needs on the student's own machine (the public checks and the few engine
# modules they import); the zip gets the whole engine, the hidden tests and the master.

SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# The student copy of the engine starts from these modules and follows their imports.
STUDENT_SEEDS = ("__init__", "public", "checks", "data")
# Grader-side modules the public checks reach only for a path: replaced by a stub that
# points at the checks bundled in the student folder.
STUDENT_STUBS = {
    "assignment": '''"""Student copy of dlgrade: where the bundled public checks are.

The grader's version of this module (hidden tests, solutions, limits) is not released."""
from pathlib import Path

ASSIGNMENTS_DIR = Path(__file__).resolve().parent / "assignments"
''',
}
# Never shipped in the zip: known mistakes are written as edits of the solution.
ZIP_EXCLUDE = {"mutants.py"}
JUNK = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so that rebuilding gives an identical zip

STUDENT_README = """\
# {title}

Open `{name}.ipynb` in Jupyter from this folder and fill in every
`raise NotImplementedError("not implemented yet")`.

`check("function_name")` in the notebook runs the public checks for one function on your
own machine. They use hand-computable values and numerical gradients only: passing them
is a good sign, not a guarantee. The hidden tests that decide your grade run when you
submit the notebook on Gradescope. Keep the `autograder/` folder next to the notebook.
"""


@dataclass
class Release:
    student: Path
    autograder_zip: Path
    files: list[str]  # the student folder's files, relative to it


def _engine_dir() -> Path:
    return Path(__file__).resolve().parent


def engine_imports(path: Path) -> set[str]:
    """Sibling modules of the engine that ``path`` imports (relative or ``autograder.X``)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.level == 0 and node.module and node.module.split(".")[0] == "autograder":
                parts = node.module.split(".")
                if len(parts) > 1:
                    found.add(parts[1])
                else:
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "autograder" and len(parts) > 1:
                    found.add(parts[1])
    engine = _engine_dir()
    return {name for name in found if (engine / f"{name}.py").exists()}


def student_modules(public_checks: Path) -> list[str]:
    """The engine modules the student copy needs: the seeds and everything they import."""
    engine = _engine_dir()
    todo = list(STUDENT_SEEDS) + sorted(engine_imports(public_checks)) \
        if public_checks.exists() else list(STUDENT_SEEDS)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in STUDENT_STUBS:
            todo += sorted(engine_imports(engine / f"{name}.py") - seen)
    return sorted(seen)


def _check_name(name: str) -> None:
    if not SAFE_NAME.match(name):
        raise ReleaseError(f"assignment name {name!r}: use letters, digits, '_', '.' and '-'")


def build_student_folder(assignment, master: nbformat.NotebookNode, out: Path) -> list[str]:
    """``out`` (replaced whole): skeleton notebook, README, and a small ``autograder`` package
    with the public checks, so that ``from autograder import check`` works there."""
    if out.exists():
        shutil.rmtree(out)
    package = out / "autograder"
    (package / "assignments" / assignment.name).mkdir(parents=True)
    nbformat.write(make_skeleton(master), out / f"{assignment.name}.ipynb")
    (out / "README.md").write_text(STUDENT_README.format(
        title=assignment.title or assignment.name, name=assignment.name))
    public_checks = assignment.directory / "public_checks.py"
    for name in student_modules(public_checks):
        target = package / f"{name}.py"
        if name in STUDENT_STUBS:
            target.write_text(STUDENT_STUBS[name])
        else:
            shutil.copyfile(_engine_dir() / f"{name}.py", target)
    if public_checks.exists():
        shutil.copyfile(public_checks,
                        package / "assignments" / assignment.name / "public_checks.py")
    for name, path in assignment.public_files():  # beside the notebook, as grading has them
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out / name)
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def engine_modules() -> list[Path]:
    """Every module of the engine, its subpackages (autograder/otter/: otter-imported tests
    import its runtime) included."""
    return sorted(p for p in _engine_dir().rglob("*.py") if "__pycache__" not in p.parts)


def autograder_zip_members(assignment) -> list[tuple[str, bytes, int]]:
    """(name in the zip, content, mode) for Gradescope's autograder.zip."""
    from .gradescope import run_script, setup_script

    project = _engine_dir().parent
    members = [("setup.sh", setup_script(assignment.name).encode(), 0o755),
               ("run_autograder", run_script(assignment.name).encode(), 0o755)]
    for name in ("pyproject.toml", "constraints.txt", "README.md"):
        path = project / name
        if not path.exists():
            raise ReleaseError(f"{path} is missing: release from a checkout of dlgrade")
        members.append((name, path.read_bytes(), 0o644))
    for path in engine_modules():
        members.append((f"autograder/{path.relative_to(_engine_dir()).as_posix()}",
                        path.read_bytes(), 0o644))
    for path in sorted(assignment.directory.rglob("*")):
        rel = path.relative_to(assignment.directory)
        if (not path.is_file() or path.is_symlink() or path.name in ZIP_EXCLUDE
                or path.suffix == ".pyc" or any(p in JUNK or p.startswith(".") for p in rel.parts)):
            continue
        members.append((f"assignments/{assignment.name}/{rel.as_posix()}", path.read_bytes(),
                        0o644))
    members.append((f"solutions/{assignment.name}.ipynb", assignment.master.read_bytes(), 0o644))
    # setup.sh installs these next to dlgrade (an assignment's own packages)
    members.append(("requirements.txt",
                    "".join(f"{r}\n" for r in assignment.requirements).encode(), 0o644))
    return members


def write_zip(members: list[tuple[str, bytes, int]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    # Owner-only from its first byte: the zip holds the master and the hidden tests.
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as raw, \
            zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 3  # unix: unzip keeps the modes (run_autograder is executable)
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    os.replace(tmp, out)


def build_release(assignment, out_dir: Path) -> Release:
    """``out_dir/student/`` and ``out_dir/autograder.zip``, both from the master notebook."""
    _check_name(assignment.name)
    if assignment.master is None or not assignment.master.exists():
        raise ReleaseError(f"{assignment.name}: no master notebook at {assignment.master}")
    master = nbformat.read(assignment.master, as_version=4)
    out_dir = Path(out_dir)
    files = build_student_folder(assignment, master, out_dir / "student")
    write_zip(autograder_zip_members(assignment), out_dir / "autograder.zip")
    # Every later grading on this machine proves it cannot read this zip (confinement.py).
    record_release(out_dir / "autograder.zip")
    return Release(out_dir / "student", out_dir / "autograder.zip", files)
