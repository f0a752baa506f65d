"""hw1_backprop: notebooks that misbehave cost only what they break (the generic checks of
every assignment are in test_assignments.py)."""
from __future__ import annotations

import re
import shutil
import time

import nbformat
import pytest

from autograder.assignment import load_assignment
from autograder.grade import grade_notebook
from autograder.public import load_public_checks, run_public_check
from autograder.release import make_skeleton
from conftest import make_notebook

ASSIGNMENT = load_assignment("hw1_backprop")
MASTER = nbformat.read(ASSIGNMENT.master, as_version=4)


@pytest.fixture(scope="module")
def solution_run():
    return grade_notebook(ASSIGNMENT.master, ASSIGNMENT)


@pytest.fixture(scope="module")
def fast_assignment(tmp_path_factory):
    """The same assignment with short time limits, for notebooks that hang on purpose."""
    folder = tmp_path_factory.mktemp("assignments") / "hw1_backprop"
    shutil.copytree(ASSIGNMENT.directory, folder)
    toml = (folder / "assignment.toml").read_text()
    toml = re.sub(r"^time_limit = .*$", "time_limit = 1.5\ntime_limit_cap = 3", toml, flags=re.M)
    toml = f'master = "{ASSIGNMENT.master}"\n' + toml  # before any [table]
    (folder / "assignment.toml").write_text(toml)
    return load_assignment(str(folder))


def grade_cells(tmp_path, assignment, cells, name="submission.ipynb"):
    path = tmp_path / name
    nbformat.write(make_notebook(*cells), path)
    return grade_notebook(path, assignment)


def master_cells(transform=lambda src: src):
    return [transform(c.source) for c in MASTER.cells if c.cell_type == "code"]


# ---- public checks -------------------------------------------------------------------------

def test_public_checks_cover_the_api_and_fail_on_the_skeleton():
    names = set(load_public_checks(ASSIGNMENT.directory))
    assert {"affine_forward", "affine_backward", "softmax_loss", "FullyConnectedNet", "adam"} <= names
    lines: list[str] = []
    skeleton_ns: dict = {}
    for cell in make_skeleton(MASTER).cells:
        if cell.cell_type == "code" and "check(" not in cell.source and "load_digits" not in \
                cell.source:
            exec(cell.source, skeleton_ns)
    lines.clear()
    assert not run_public_check("affine_backward", skeleton_ns, "hw1_backprop",
                                printer=lines.append)
    assert "not implemented yet" in "\n".join(lines)


# ---- notebooks that misbehave ------------------------------------------------------------------

def test_exploratory_code_is_not_run(tmp_path, solution_run):
    cells = master_cells() + ["while True:\n    pass", "raise RuntimeError('my experiment')",
                              "import time\ntime.sleep(1000)"]
    start = time.monotonic()
    run = grade_cells(tmp_path, ASSIGNMENT, cells)
    assert run.results.score == solution_run.results.score
    assert time.monotonic() - start < 60


def test_torch_import_is_refused_with_a_message(tmp_path):
    def use_torch(src):
        return src.replace("def relu_forward(x):",
                           "import torch\ndef relu_forward(x):\n    torch.zeros(1)", 1)

    run = grade_cells(tmp_path, ASSIGNMENT, master_cells(use_torch))
    assert "numpy only" in run.results.output
    relu = [t for t in run.results.tests if t.tags == ["relu_forward"]]
    assert relu and all(t.status == "failed" for t in relu)
    others = [t for t in run.results.tests
              if t.tags and all(tag.startswith("affine") for tag in t.tags)]
    assert others and all(t.status == "passed" for t in others)


def test_syntax_error_costs_only_its_cell(tmp_path):
    cells = master_cells(lambda s: s.replace("def sgd(", "def sgd(((", 1))
    run = grade_cells(tmp_path, ASSIGNMENT, cells)
    assert "SyntaxError" in run.results.output
    by_status = {t.name: t.status for t in run.results.tests}
    assert by_status["affine_forward: output values on a (4, 3, 2) input"] == "passed"
    sgd_tests = [t for t in run.results.tests if "[sgd]" in t.name or t.name.startswith("sgd")]
    for t in run.results.tests:
        if "sgd" in t.output and t.status == "failed":
            assert "not defined" in t.output or "SyntaxError" in t.output
    assert sgd_tests == [] or all(t.status == "failed" for t in sgd_tests)


def test_missing_function_says_which(tmp_path):
    run = grade_cells(tmp_path, ASSIGNMENT,
                      master_cells(lambda s: s.replace("def relu_backward(", "def relu_bw(")))
    failed = [t for t in run.results.tests if t.status == "failed"]
    assert failed and all("relu_backward" in t.output for t in failed)
    assert any("define relu_backward" in t.output for t in failed)


@pytest.mark.parametrize("sabotage, cause", [
    ("import os\n    os._exit(1)", "exited with code 1"),
    ("import ctypes\n    ctypes.string_at(0)", "SIGSEGV"),
    ("while True:\n        pass", "time limit"),
    ("x = bytearray(8 << 30)", "MemoryError"),
])
def test_a_broken_function_costs_only_its_tests(tmp_path, fast_assignment, sabotage, cause):
    def sabotage_relu(src):
        return src.replace("def relu_forward(x):", f"def relu_forward(x):\n    {sabotage}", 1)

    run = grade_cells(tmp_path, fast_assignment, master_cells(sabotage_relu))
    tests = {t.name: t for t in run.results.tests}
    relu = tests["relu_forward: values, including exact zeros and negative inputs"]
    assert relu.status == "failed" and cause in relu.output, relu.output
    assert tests["affine_forward: output values on a (4, 3, 2) input"].status == "passed"
    optimizer = [t for t in run.results.tests if "optimizer" in t.name]
    assert optimizer and all(t.status == "passed" for t in optimizer)


def test_warnings_and_prints_cost_nothing(tmp_path, solution_run):
    def noisy(src):
        return src.replace("def relu_forward(x):",
                           "import warnings, sys\ndef relu_forward(x):\n"
                           "    warnings.warn('deprecated!')\n    print('debug', file=sys.stderr)", 1)

    run = grade_cells(tmp_path, ASSIGNMENT, master_cells(noisy))
    assert run.results.score == solution_run.results.score
    assert "deprecated!" in run.results.output  # shown to the student, not held against them


def test_unreadable_submission_still_gets_results(tmp_path):
    from autograder.cli import main
    results = tmp_path / "out" / "results.json"
    code = main(["grade", str(tmp_path / "missing.ipynb"), "-a", "hw1_backprop", "--results",
                 str(results), "-q"])
    assert code == 0
    data = results.read_text()
    assert '"score": 0.0' in data and "cannot read missing.ipynb" in data


def test_monkeypatching_in_the_notebook_gains_nothing(tmp_path, solution_run):
    cheat = (
        "import numpy as np, sys, builtins\n"
        "def affine_forward(x, w, b):\n"
        "    np.allclose = lambda *a, **k: True\n"
        "    np.testing.assert_allclose = lambda *a, **k: None\n"
        "    for name in list(sys.modules):\n"
        "        if name.startswith(('autograder', 'pytest', '_pytest')):\n"
        "            sys.modules[name] = None\n"
        "    return np.zeros((x.shape[0], w.shape[1])), (x, w, b)\n"
    )
    cells = master_cells() + [cheat]  # the later definition wins, as in Jupyter
    run = grade_cells(tmp_path, ASSIGNMENT, cells)
    forward = next(t for t in run.results.tests if t.name.startswith("affine_forward: output"))
    assert forward.status == "failed" and "largest relative error" in forward.output
    assert run.results.score < solution_run.results.score


def test_a_known_mistake_is_named_in_the_feedback(tmp_path):
    """A student whose db is averaged, not summed, is told what was compared, on what input,
    by how much it missed, and which known mistake it looks like; a student with an unknown
    mistake gets the numbers without a guess."""
    assignment = load_assignment("hw1_backprop")
    known = grade_cells(tmp_path, assignment, master_cells(
        lambda src: src.replace("db = dout.sum(axis=0)", "db = dout.mean(axis=0)")),
        name="known.ipynb")
    test = next(t for t in known.results.tests if t.name.startswith("affine_backward: dx, dw"))
    assert test.status == "failed"
    assert re.search(r"affine_backward db on .*\(\d+, \d+\).*largest relative error "
                     r"\d\.\d\de[+-]\d+ at index \(\d+,\)", test.output), test.output
    assert ("This looks like a known mistake: db looks like it was averaged over the batch "
            "instead of summed") in test.output
    unknown = grade_cells(tmp_path, assignment, master_cells(
        lambda src: src.replace("db = dout.sum(axis=0)", "db = 1.5 * dout.sum(axis=0)")),
        name="unknown.ipynb")
    test = next(t for t in unknown.results.tests if t.name.startswith("affine_backward: dx, dw"))
    assert test.status == "failed" and "largest relative error" in test.output
    assert "known mistake" not in test.output
