"""Issue 12, part 1: definitions-only loading keeps what the definitions need.

A top-level statement runs when a kept definition reads a name it assigns (transitively);
training loops, plots and prints that nothing reads still do not run.
"""
from __future__ import annotations

import time

import nbformat

from autograder.assignment import load_reference
from autograder.sandbox import Sandbox, SandboxConfig
from autograder.proxies import StudentNamespace
from autograder.session import StudentSession
from autograder.definitions import plan_definitions
from corpus.harness import Expect, check, grade, graded_except
from corpus.notebooks import variant, write


def test_the_plan_keeps_what_definitions_read_and_nothing_else():
    cells = [
        (1, "import numpy as np"),
        (2, "EPS = np.finfo(float).eps\n"          # read by f: kept
            "rng = np.random.default_rng(0)\n"     # read by f: kept
            "base = np.ones(3)\n"                  # read by `scaled` below: kept
            "scaled = base * 2\n"                  # read by g: kept
            "unused = expensive()\n"               # nothing reads it
            "print('training')"),                  # binds nothing
        (3, "def f(x):\n    loss = x + EPS\n    return loss * rng.random()\n"
            "class Layer:\n    size = scaled\n"),
        (4, "for epoch in range(10**9):\n    loss = step()\n"   # f's `loss` is its own local
            "if __name__ == '__main__':\n    EPS = 0.0\n"),
        (5, "def counter():\n    global hits\n    hits += 1\nhits = 0\n"),
    ]
    assert plan_definitions(cells) == {1: [0], 2: [0, 1, 2, 3], 3: [0, 1], 4: [], 5: [0, 1]}


def test_unreachable_code_after_a_stub_reads_no_globals():
    """The skeleton's `raise NotImplementedError` followed by `return loss, dx`: `loss` is not
    a global the function reads, so the training loop that binds `loss` is not run."""
    cells = [(1, "def softmax_loss(x, y):\n    raise NotImplementedError('not implemented yet')"
                 "\n    return loss, dx"),
             (2, "for epoch in range(3):\n    loss, dx = softmax_loss(1, 2)"),
             (3, "def f(x):\n    if x:\n        return SCALE\n        print(never)\n"
                 "    return x"),
             (4, "SCALE = float('2')\nnever = print('x')")]
    assert plan_definitions(cells) == {1: [0], 2: [], 3: [0], 4: [0]}


def test_a_cell_that_does_not_parse_is_left_out_of_the_plan():
    assert plan_definitions([(1, "def f(:\n"), (2, "X = g()\ndef h():\n    return X")]) == \
        {1: [], 2: [0, 1]}


def test_module_level_values_grade_as_if_they_had_run(tmp_path):
    """The numpy lines of the issue: a constant and a generator built by calls."""
    nb = variant(imports="import numpy as np\nEPS = np.finfo(float).eps\n"
                         "rng = np.random.default_rng(0)\nZERO = float(np.zeros(1)[0])",
                 relu_forward="def relu_forward(x):\n"
                              "    return np.maximum(ZERO, x) + 0 * EPS * rng.random(), x")
    path = write(nb, tmp_path / "submission.ipynb")
    code, results = grade(path, tmp_path)
    check(code, results, Expect(8.0))
    assert "were not run" not in results["output"]


def test_what_nothing_reads_is_not_run(tmp_path):
    """A top-level training loop that would never end, and a print: not run, not reported as
    a problem; grading takes its usual time."""
    nb = variant(extra=("history = []\nfor epoch in range(10**12):\n    history.append(epoch)",
                        "print('epoch 1: loss 0.3')\nlosses = [train() for _ in range(5)]"))
    path = write(nb, tmp_path / "submission.ipynb")
    start = time.monotonic()
    code, results = grade(path, tmp_path)
    assert time.monotonic() - start < 20
    check(code, results, Expect(8.0, output=("2 top-level statement(s) were not run",)))
    assert "epoch 1" not in results["output"]


def test_a_needed_statement_that_fails_is_named_where_it_is_read(tmp_path):
    nb = variant(imports="import numpy as np\nSHIFT = np.load('weights.npy')",
                 affine_forward="def affine_forward(x, w, b):\n"
                                "    return x.reshape(x.shape[0], -1) @ w + b + SHIFT, (x, w, b)")
    path = write(nb, tmp_path / "submission.ipynb")
    code, results = grade(path, tmp_path)
    check(code, results, Expect(graded_except("affine_forward"), failed={"affine_forward": (
        "'SHIFT' is assigned by top-level code in cell 2 (line 2), which failed while your "
        "notebook was loaded: FileNotFoundError",)}, output=("cell 2, line 2: FileNotFoundError",)))


def test_the_reference_is_loaded_by_the_same_rule(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "import numpy as np\nSCALE = float(np.float64(2.0))\nprint('demo')",
        "def double(x):\n    return SCALE * x",
        "result = double(np.ones(3))\nassert False, 'a demo cell that nothing reads'")]
    path = tmp_path / "master.ipynb"
    nbformat.write(nb, path)
    module = load_reference(path, "reference_under_test")
    assert module.double(3.0) == 6.0 and not hasattr(module, "result")


def test_torch_module_level_objects_are_kept():
    """The torch lines of the issue (CS231n's own GAN notebook ships the first one): a dtype
    chosen by a call, a device, a loss object, all read by the student's functions."""
    cells = [
        (1, "import torch\nfrom torch import nn"),
        (2, "dtype = torch.cuda.FloatTensor if torch.cuda.is_available() else torch.FloatTensor\n"
            "device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\n"
            "bce = nn.BCEWithLogitsLoss()"),
        (3, "def loss_of(logits, targets):\n"
            "    logits = torch.as_tensor(logits).type(dtype).to(device)\n"
            "    return float(bce(logits, torch.as_tensor(targets).type(dtype)))"),
    ]
    session = StudentSession(cells, mode="definitions", forbidden=[], assignment="t",
                             transport=Sandbox(SandboxConfig()),
                             load_time_limit=60)
    try:
        session.start()
        assert session.report.problems == []
        student = StudentNamespace(session)
        value = student.loss_of([0.0, 0.0], [1.0, 0.0])
        assert abs(value - 0.6931471805599453) < 1e-6
    finally:
        session.close()


def test_a_master_that_fails_to_load_is_the_instructors_error(tmp_path):
    """The reference is loaded inside the error handling: results.json names the cell."""
    from corpus.harness import assignment_variant

    folder = assignment_variant(tmp_path / "source")
    master = nbformat.read(folder / "master.ipynb", as_version=4)
    master.cells.append(nbformat.v4.new_code_cell("import numpy as np\nLIMIT = np.load('x.npy')\n"
                                                  "def limit():\n    return LIMIT"))
    nbformat.write(master, folder / "master.ipynb")
    path = write(variant(), tmp_path / "submission.ipynb")
    code, results = grade(path, tmp_path, assignment=folder)
    check(code, results, Expect(0, graded=False, exit_code=3, output=(
        "GRADER ERROR (not a problem with your submission",
        "the master notebook master.ipynb fails to load (cell", "line 2: FileNotFoundError")))


def test_mode_all_runs_every_cell_of_the_master_in_order(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "log = []", "log.append('ran')", "def count():\n    return len(log)")]
    path = tmp_path / "master.ipynb"
    nbformat.write(nb, path)
    assert load_reference(path, "all_mode", mode="all").count() == 1
    assert load_reference(path, "definitions_mode").count() == 0
