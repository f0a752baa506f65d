"""`dlgrade release NAME --out DIR`: the student folder and Gradescope's autograder.zip, and the
zip's run_autograder run against a temporary folder laid out like Gradescope's /autograder."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import requires_root

import autograder
from autograder import cli
from autograder.assignment import ASSIGNMENTS_DIR, load_assignment
from autograder.gradescope import SubmissionError, find_notebook
from autograder.release import build_release, make_skeleton

NAMES = sorted(p.name for p in ASSIGNMENTS_DIR.iterdir() if (p / "assignment.toml").exists())


@pytest.fixture(scope="module")
def release_of(tmp_path_factory):
    """One release per assignment for the whole module."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = build_release(load_assignment(name), tmp_path_factory.mktemp(name))
        return cache[name]
    return get


def solution_lines(master: nbformat.NotebookNode) -> set[str]:
    """Lines only the solution blocks hold (a line the master's given code also uses, e.g. in
    a training loop the student is handed, is no secret)."""
    lines, given, inside = set(), set(), False
    for cell in master.cells:
        for line in cell.source.splitlines():
            if line.strip() == "# BEGIN SOLUTION":
                inside = True
            elif line.strip() == "# END SOLUTION":
                inside = False
            elif len(line.strip()) > 12:
                (lines if inside else given).add(line.strip())
    return lines - given


def student_text(student: Path) -> dict[str, str]:
    """Every file of the student folder as text; the notebook as its code cells (markdown may
    state the contract's formulas, as in tests/test_assignments.py)."""
    texts = {}
    for path in student.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(student).as_posix()
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            texts[rel] = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
            texts[rel + " (metadata)"] = json.dumps(nb.metadata)
        else:
            texts[rel] = path.read_text()
    return texts


# ---- the student folder ----------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_student_folder_holds_no_solution_and_no_hidden_test(name, release_of):
    assignment = load_assignment(name)
    release = release_of(name)
    master = nbformat.read(assignment.master, as_version=4)
    texts = student_text(release.student)
    lines = solution_lines(master)
    assert len(lines) >= 10
    leaks = [(line, where) for where, text in texts.items()
             for line in lines & {t.strip() for t in text.splitlines()}]
    assert not leaks
    # Nothing from the hidden tests: no file, and none of their test functions' names.
    assert not any("tests" in Path(f).parts or f.endswith("mutants.py") for f in release.files)
    # Nor the grader's machinery: the public checks need the value types, not the worker.
    engine = {Path(f).stem for f in release.files if f.startswith("autograder/")
              and Path(f).parent.name == "autograder"}
    assert not engine & {"worker", "wire", "session", "diagnose", "sandbox", "grade", "plugin"}
    hidden_names = {line.split("(")[0].removeprefix("def ").strip()
                    for test_file in assignment.tests_dir.rglob("*.py")
                    for line in test_file.read_text().splitlines() if line.startswith("def test_")}
    assert hidden_names
    assert not [n for n in hidden_names for text in texts.values() if n in text]
    # The notebook is the skeleton of the master, generated fresh.
    skeleton = nbformat.read(release.student / f"{name}.ipynb", as_version=4)
    assert [c.source for c in skeleton.cells] == [c.source for c in make_skeleton(master).cells]
    expected = {f"{name}.ipynb", "README.md", "autograder/__init__.py",
                "autograder/assignment.py", "autograder/checks.py", "autograder/public.py",
                f"autograder/assignments/{name}/public_checks.py"}
    assert expected <= set(release.files)
    assert not {"autograder/grade.py", "autograder/plugin.py", "autograder/release.py",
                "autograder/mutants.py"} & set(release.files)


CHECK_SCRIPT = r"""
import ast, json, sys
import autograder
from pathlib import Path
here = Path.cwd().resolve()
assert Path(autograder.__file__).resolve().is_relative_to(here), autograder.__file__
notebooks, names = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for path in notebooks:
    ns = {}
    for cell in json.loads(Path(path).read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]))
        keep = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)
        tree.body = [s for s in tree.body if isinstance(s, keep)]
        exec(compile(tree, "notebook", "exec"), ns)
    ns["names"] = names
    exec("results = [check(n) for n in names]", ns)  # check() reads the caller's globals
    print("RESULTS " + json.dumps(ns["results"]))
outside = [m for m, mod in sys.modules.items() if m.startswith("autograder")
           and not Path(mod.__file__).resolve().is_relative_to(here)]
assert not outside, outside
"""


@pytest.mark.parametrize("name", NAMES)
def test_public_checks_run_in_the_student_folder(name, release_of):
    """`from autograder import check` works next to the notebook, with neither the hidden
    tests nor the reference: the master's functions pass every check, the skeleton's fail."""
    from autograder.public import load_public_checks

    assignment = load_assignment(name)
    release = release_of(name)
    checks = sorted(load_public_checks(assignment.directory))
    assert checks
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    notebooks = [str(assignment.master), str(release.student / f"{name}.ipynb")]
    proc = subprocess.run([sys.executable, "-c", CHECK_SCRIPT, json.dumps(notebooks),
                           json.dumps(checks)], cwd=release.student, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    master, skeleton = (json.loads(line.removeprefix("RESULTS "))
                        for line in proc.stdout.splitlines() if line.startswith("RESULTS "))
    assert master == [True] * len(checks), proc.stdout
    assert skeleton == [False] * len(checks), proc.stdout
    assert "not implemented yet" in proc.stdout


# ---- autograder.zip ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_zip_layout(name, release_of, tmp_path):
    assignment = load_assignment(name)
    release = release_of(name)
    with zipfile.ZipFile(release.autograder_zip) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        for script in ("setup.sh", "run_autograder"):
            assert script in infos  # at the zip's root, executable
            assert (infos[script].external_attr >> 16) & 0o111 == 0o111
            assert name in zf.read(script).decode()
            syntax = subprocess.run(["bash", "-n"], input=zf.read(script), capture_output=True)
            assert syntax.returncode == 0, syntax.stderr
        for test_file in assignment.tests_dir.rglob("*.py"):
            rel = f"assignments/{name}/{test_file.relative_to(assignment.directory).as_posix()}"
            assert zf.read(rel) == test_file.read_bytes()
        assert zf.read(f"solutions/{name}.ipynb") == assignment.master.read_bytes()
        assert f"assignments/{name}/assignment.toml" in infos
        assert "autograder/grade.py" in infos and "pyproject.toml" in infos
        # The whole engine: otter-imported tests import autograder/otter/runtime.py.
        engine = Path(autograder.__file__).parent
        for module in engine.rglob("*.py"):
            if "__pycache__" not in module.parts:
                assert f"autograder/{module.relative_to(engine).as_posix()}" in infos, module
        assert not [n for n in infos if n == f"assignments/{name}/mutants.py"
                    or "__pycache__" in n]
        assert not [n for n in infos if n.startswith("/") or ".." in n.split("/")]
    # Rebuilding gives the same bytes: a release can be checked against the repository.
    first, again = (build_release(assignment, tmp_path / d) for d in "ab")
    assert first.autograder_zip.read_bytes() == again.autograder_zip.read_bytes()


def gradescope_root(autograder_zip: Path, notebooks: dict[str, bytes]) -> Path:
    """A folder laid out like Gradescope's /autograder, the zip extracted into source/;
    traversable by other uids, so that only the modes run_autograder sets protect source/."""
    root = Path(tempfile.mkdtemp(prefix="dlgrade-ag-"))
    root.chmod(0o755)
    with zipfile.ZipFile(autograder_zip) as zf:
        zf.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "run_autograder").chmod(0o755)
    (root / "submission").mkdir()
    for rel, data in notebooks.items():
        (root / "submission" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "submission" / rel).write_bytes(data)
    (root / "submission_metadata.json").write_text(json.dumps(
        {"id": 4242, "users": [{"name": "Ada Lovelace", "email": "ada@example.edu"}]}))
    return root


# This checkout is installed in editable mode: its import hook would hand the grader any module
# the zip lacks. The runner gets an interpreter without that hook, so only the zip's engine counts.
ZIP_ENGINE_ONLY = """import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
module = sys.argv[2]
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def zip_engine_python(root: Path) -> str:
    """An interpreter for run_autograder (which calls ``PYTHON -m autograder.gradescope``) that
    imports dlgrade from the extracted zip only."""
    script = root / "python-zip-engine-only"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -c {shlex.quote(ZIP_ENGINE_ONLY)} "$@"\n')
    script.chmod(0o755)
    return str(script)


def run_autograder(root: Path, python: str | None = None):
    python = python or zip_engine_python(root)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(DLGRADE_AUTOGRADER_ROOT=str(root), DLGRADE_PYTHON=python)
    proc = subprocess.run(["bash", str(root / "run_autograder")], env=env, cwd="/",
                          capture_output=True, text=True, timeout=600)
    results = json.loads((root / "results" / "results.json").read_text())
    return proc, results


@pytest.mark.parametrize("name", NAMES)
def test_run_autograder_gives_the_solution_full_marks(name, release_of):
    assignment = load_assignment(name)
    root = gradescope_root(release_of(name).autograder_zip,
                           {"any name.ipynb": assignment.master.read_bytes()})
    try:
        proc, results = run_autograder(root)
        assert proc.returncode == 0, proc.stderr[-3000:]
        tests = results["tests"]
        assert len(tests) >= 15
        assert [t["name"] for t in tests if t["status"] != "passed"] == []
        assert results["score"] == sum(t["max_score"] for t in tests) > 0
        assert "Graded notebook: any name.ipynb" in results["output"]
        assert "GRADER ERROR" not in results["output"]
        assert "not executable by an unprivileged uid" not in results["output"]  # sandbox uid
        # The zip's own engine graded it, not the checkout's.
        assert f"engine {root / 'source' / 'autograder'}" in proc.stdout
        assert "submission 4242 by Ada Lovelace" in proc.stdout
        assert stat.S_IMODE((root / "source").stat().st_mode) == 0o700 or os.geteuid() != 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_run_autograder_skeleton_and_unusable_submissions(release_of):
    name = "hw1_backprop"
    assignment = load_assignment(name)
    root = gradescope_root(release_of(name).autograder_zip,
                           {"hw1.ipynb": assignment.skeleton.read_bytes()})
    try:
        proc, results = run_autograder(root)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert results["score"] == 0 and len(results["tests"]) >= 15
        assert all("not implemented yet" in t["output"] for t in results["tests"])

        # Two notebooks: which one? The student is told, and gets a valid results file.
        (root / "submission" / "sub").mkdir()
        (root / "submission" / "sub" / "draft.ipynb").write_bytes(b"{}")
        proc, results = run_autograder(root)
        assert results["score"] == 0 and results["tests"] == []
        assert "2 notebooks" in results["output"] and "sub/draft.ipynb" in results["output"]

        # No notebook at all.
        for path in root.joinpath("submission").rglob("*.ipynb"):
            path.unlink()
        (root / "submission" / "answers.py").write_text("print(1)")
        proc, results = run_autograder(root)
        assert "No Jupyter notebook" in results["output"] and "answers.py" in results["output"]

        # The grader cannot even start: the script still leaves valid JSON.
        proc, results = run_autograder(root, python="/nonexistent/python")
        assert proc.returncode != 0
        assert results["score"] == 0 and "GRADER ERROR" in results["output"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


@requires_root
def test_sandbox_uid_cannot_read_the_source_but_can_run_python(release_of):
    """Inside Docker the grader usually has no mount namespaces: then the file modes set by
    setup.sh (and again by run_autograder) are what hides the hidden tests and solutions."""
    from autograder.gradescope import lock_down
    from autograder.sandbox import _other_can_execute

    if not _other_can_execute(sys.executable):
        pytest.skip(f"{sys.executable} is not executable by other uids (private home)")
    name = "hw1_backprop"
    root = gradescope_root(release_of(name).autograder_zip, {})
    try:
        lock_down(root / "source")
        hidden = next((root / "source" / "assignments" / name / "tests").glob("*.py"))
        probe = ("import sys, numpy\n"
                 "for p in sys.argv[1:]:\n"
                 "    try:\n        open(p).read(1)\n    except PermissionError:\n"
                 "        continue\n    raise SystemExit(f'readable: {p}')\n"
                 "print('ok')\n")
        proc = subprocess.run(
            [sys.executable, "-I", "-c", probe, str(hidden),
             str(root / "source" / "solutions" / f"{name}.ipynb")],
            user=61999, group=61999, extra_groups=[], capture_output=True, text=True,
            timeout=60, cwd="/")
        assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_find_notebook(tmp_path):
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "hw-checkpoint.ipynb").write_text("{}")
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "._hw.ipynb").write_text("x")
    (tmp_path / "._hw.ipynb").write_text("x")
    with pytest.raises(SubmissionError, match="No Jupyter notebook"):
        find_notebook(tmp_path)
    secret = tmp_path.parent / "secret.ipynb"
    secret.write_text("{}")
    (tmp_path / "link.ipynb").symlink_to(secret)  # never graded: it could point anywhere
    with pytest.raises(SubmissionError, match="symbolic links are ignored: link.ipynb"):
        find_notebook(tmp_path)
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "My HW.IPYNB").write_text("{}")
    assert find_notebook(tmp_path) == tmp_path / "deep" / "er" / "My HW.IPYNB"
    (tmp_path / "other.ipynb").write_text("{}")
    with pytest.raises(SubmissionError, match="2 notebooks"):
        find_notebook(tmp_path)


def test_release_cli(tmp_path, capsys):
    name = "hw1_backprop"
    out = tmp_path / "copy.ipynb"
    assert cli.main(["release", name, "--out", str(out)]) == 0
    assert out.exists() and not (tmp_path / "student").exists()  # only the notebook
    assert cli.main(["release", name, "--out", str(tmp_path / "rel")]) == 0
    assert (tmp_path / "rel" / "student" / f"{name}.ipynb").exists()
    assert (tmp_path / "rel" / "autograder.zip").exists()
    assert "Gradescope zip" in capsys.readouterr().out


def test_release_normalises_a_master_edited_in_jupyter(tmp_path, capsys):
    """The master is edited and run in Jupyter; `dlgrade release` strips what running left
    (outputs, execution counts, run-time metadata) and keeps every source line and cell id."""
    folder = tmp_path / "demo"
    shutil.copytree(ASSIGNMENTS_DIR / "hw3_bptt", folder, ignore=shutil.ignore_patterns("tests"))
    master_path = tmp_path / "demo.ipynb"
    master = nbformat.read(load_assignment("hw3_bptt").master, as_version=4)
    clean = nbformat.writes(master)
    code = next(c for c in master.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    code.execution_count = 7
    code.metadata["execution"] = {"iopub.status.busy": "2026-12-06T10:00:00Z"}
    code.metadata["scrolled"] = True
    master.metadata["widgets"] = {"state": {}}
    nbformat.write(master, master_path)
    (folder / "assignment.toml").write_text(  # top-level keys before the [limits] table
        f'master = "{master_path}"\n' + (folder / "assignment.toml").read_text())
    assert cli.main(["release", str(folder)]) == 0
    assert "master normalised" in capsys.readouterr().out
    assert master_path.read_text() == clean + "\n"
    assert cli.main(["release", str(folder)]) == 0  # already normal: left as it is
    assert "master normalised" not in capsys.readouterr().out
