"""hw1_backprop end to end: solution, skeleton, mutants, broken notebooks, determinism."""
from __future__ import annotations

import re
import shutil
import time

import nbformat
import pytest

from autograder.assignment import load_assignment
from autograder.grade import grade_notebook
from autograder.mutants import apply_to_notebook, load_mutants
from autograder.public import load_public_checks, run_public_check
from autograder.release import make_skeleton
from conftest import make_notebook

ASSIGNMENT = load_assignment("hw1_backprop")
MUTANTS = load_mutants(ASSIGNMENT.mutants_file)
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


def scores(run):
    return {t.name: t.score for t in run.results.tests}


# ---- the three anchors ---------------------------------------------------------------------

def test_solution_gets_full_marks(solution_run):
    results = solution_run.results
    failed = [(t.name, t.output) for t in results.tests if t.status != "passed"]
    assert not failed
    assert results.max_score >= 50 and results.score == results.max_score
    assert len(results.tests) >= 20


def test_solution_is_graded_quickly(solution_run):
    assert solution_run.results.execution_time < 60  # the 20 s target is measured in bench/


def test_skeleton_scores_zero_and_says_why():
    run = grade_notebook(ASSIGNMENT.skeleton, ASSIGNMENT)
    assert run.results.score == 0
    assert len(run.results.tests) >= 20
    for test in run.results.tests:
        assert test.status == "failed"
        assert "not implemented yet" in test.output, (test.name, test.output)
    assert "GRADER ERROR" not in run.results.output


def test_skeleton_is_in_sync_with_master():
    committed = nbformat.read(ASSIGNMENT.skeleton, as_version=4)
    generated = make_skeleton(MASTER)
    assert [(c.cell_type, c.source) for c in committed.cells] == \
        [(c.cell_type, c.source) for c in generated.cells], \
        "run `dlgrade release hw1_backprop` to regenerate the student notebook"


def test_skeleton_has_no_solution_code():
    # Markdown may state the contract's formulas; the code cells must not contain the answers.
    skeleton_text = "\n".join(c.source for c in make_skeleton(MASTER).cells
                              if c.cell_type == "code")
    for cell in MASTER.cells:
        inside = False
        for line in cell.source.splitlines():
            if line.strip() == "# BEGIN SOLUTION":
                inside = True
            elif line.strip() == "# END SOLUTION":
                inside = False
            elif inside and len(line.strip()) > 12:
                assert line not in skeleton_text.splitlines(), line


# ---- mutants ---------------------------------------------------------------------------------

def test_there_are_enough_mutants():
    assert len([m for m in MUTANTS if not m.equivalent]) >= 15
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)


@pytest.mark.parametrize("mutant", [m for m in MUTANTS if not m.equivalent], ids=lambda m: m.name)
def test_each_mutant_loses_points(mutant, tmp_path, solution_run):
    path = tmp_path / f"{mutant.name}.ipynb"
    nbformat.write(apply_to_notebook(MASTER, mutant), path)
    run = grade_notebook(path, ASSIGNMENT)
    assert run.results.score < solution_run.results.score, f"{mutant.name} survived"
    assert "GRADER ERROR" not in run.results.output


def test_scores_are_identical_across_runs(tmp_path, solution_run):
    mutant = next(m for m in MUTANTS if not m.equivalent and m.function == "FullyConnectedNet")
    path = tmp_path / "mutant.ipynb"
    nbformat.write(apply_to_notebook(MASTER, mutant), path)
    first, second = grade_notebook(path, ASSIGNMENT), grade_notebook(path, ASSIGNMENT)
    assert scores(first) == scores(second)
    assert [t.output for t in first.results.tests] == [t.output for t in second.results.tests]
    assert scores(grade_notebook(ASSIGNMENT.master, ASSIGNMENT)) == scores(solution_run)


# ---- public checks -------------------------------------------------------------------------

def test_public_checks_pass_on_the_reference_and_fail_on_the_skeleton():
    reference = vars(ASSIGNMENT.reference)
    names = sorted(load_public_checks(ASSIGNMENT.directory))
    assert {"affine_forward", "affine_backward", "softmax_loss", "adam"} <= set(names)
    lines = []
    for name in names:
        assert run_public_check(name, reference, "hw1_backprop", printer=lines.append), lines
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
