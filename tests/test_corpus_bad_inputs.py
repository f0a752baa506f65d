"""Broken submissions: each is graded without crashing the grader, gets a valid results.json
and a message that says what went wrong, and loses exactly the points of what it breaks.

Most cases are the corpus target's master (tests/corpus/tiny, 8 points in three tests) with
one cell changed; see tests/corpus/notebooks.py.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.grade import cuda_available
from autograder.notebook import _OutputDropper
from corpus.harness import Expect, assignment_variant, check, grade, graded_except
from corpus.notebooks import (FULL_MARKS, MASTER_PATH, TINY, as_dict, master_notebook,
                              replace_function, variant, write, write_with_images)

ROOT = Path(__file__).resolve().parent.parent

ALL = ("affine_forward", "relu_forward", "softmax_loss")
RELU_OK = "    return np.maximum(0, x), x"
NO_CELLS = "is not a valid notebook: it has no list of cells"


def relu(body: str, imports: str = ""):
    return replace_function("relu_forward", body, imports=imports)


def json_tree(tree: dict) -> bytes:
    return json.dumps(tree).encode()


def v3_notebook() -> dict:
    """The master in nbformat 3 (worksheets, ``input`` instead of ``source``)."""
    cells = [{"cell_type": "code", "input": c.source, "language": "python", "outputs": [],
              "metadata": {}, "collapsed": False}
             for c in variant().cells if c.cell_type == "code"]
    return {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "old"},
            "worksheets": [{"cells": cells, "metadata": {}}]}


def with_unknown_cell() -> dict:
    tree = as_dict(variant())
    widget = {"cell_type": "widget", "id": "w-1", "metadata": {}, "source": "slider"}
    tree["cells"].insert(2, widget)
    return tree


def truncated_with_outputs() -> bytes:
    nb = variant()
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", text="x" * 5000)]
    text = nbformat.writes(nb).encode()
    return text[: int(len(text) * 0.7)]


def source_not_text() -> dict:
    tree = as_dict(variant())
    tree["cells"][3]["source"] = 42
    return tree


def non_utf8() -> bytes:
    text = nbformat.writes(variant(markdown="# Résumé"))
    return text.encode("latin-1")


# id -> (what to write: a notebook node, a JSON tree or raw bytes; what grading must give)
CASES = {
    # ---- files that are not notebooks --------------------------------------------------
    "malformed_json": (b'{"cells": [{"cell_type": "code", "source": "x = 1"', Expect(
        0, graded=False, output=("Could not grade this submission", "not valid notebook JSON"))),
    "empty_file": (b"", Expect(0, graded=False, output=("is empty",))),
    "whitespace_only": (b"\n\n   \n", Expect(0, graded=False, output=("not valid notebook JSON",))),
    "python_script_renamed": (b"import numpy as np\n\ndef relu_forward(x):\n    return x\n",
                              Expect(0, graded=False, output=("looks like a Python script",))),
    "pdf_renamed": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
                    Expect(0, graded=False, output=("is a PDF, not a notebook",))),
    "utf16_file": (nbformat.writes(variant()).encode("utf-16"),
                   Expect(0, graded=False, output=("not UTF-8 text",))),
    "json_list": (b"[1, 2, 3]", Expect(0, graded=False, output=("JSON but not a notebook",))),
    "missing_cells": (json_tree({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}), Expect(
        0, graded=False, output=(NO_CELLS,))),
    "cells_not_a_list": (json_tree({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                    "cells": "def relu_forward(x): pass"}),
                         Expect(0, graded=False, output=(NO_CELLS,))),
    "no_nbformat_version": (json_tree({"cells": [], "metadata": {}}),
                            Expect(0, graded=False, output=("no 'nbformat' version",))),
    "non_utf8_bytes": (non_utf8(), Expect(0, graded=False, output=("not UTF-8 text",))),
    "truncated_in_outputs": (truncated_with_outputs(), Expect(
        0, graded=False, output=("not valid notebook JSON",))),
    # ---- notebooks in unusual shapes that are still gradable ---------------------------
    "nbformat_v3": (json_tree(v3_notebook()), Expect(FULL_MARKS)),
    "byte_order_mark": (b"\xef\xbb\xbf" + nbformat.writes(variant()).encode(),
                        Expect(FULL_MARKS)),
    "unknown_cell_type": (json_tree(with_unknown_cell()), Expect(
        FULL_MARKS, output=("cell 3: unknown cell type 'widget'; ignored",))),
    "ipython_magics_and_shell": (variant(extra=(
        "%matplotlib inline\n!pip install torch\nfiles = !ls", "%%capture\nprint(1)",
        "%%bash\nrm -rf ~")), Expect(FULL_MARKS, output=("%%bash cell is not Python; not run",))),
    "cell_source_not_text": (json_tree(source_not_text()), Expect(0, graded=False, output=(
        "is not a valid notebook (cell 4, 'source': 42 is not valid",))),
    "no_code_cells": (variant(imports=None, affine_forward=None, relu_forward=None,
                              softmax_loss=None), Expect(
        0, failed={f: (f"define {f} in your notebook",) for f in ALL})),
    # ---- code that does not load -------------------------------------------------------
    "function_renamed": (variant(relu_forward=variant().cells[3].source.replace(
        "def relu_forward", "def relu_fwd")), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("name 'relu_forward' is not defined",
                                 "define relu_forward in your notebook")})),
    "function_missing": (variant(relu_forward=None), Expect(
        graded_except("relu_forward"), failed={"relu_forward": ("define relu_forward",)})),
    "syntax_error_in_one_cell": (relu("    return np.maximum(0, x), x)"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("These cells failed to load", "SyntaxError")},
        output=("Problems while loading your notebook",
                "cell 4, line 2: SyntaxError: unmatched ')'"))),
    "null_byte_in_source": (relu(RELU_OK + "  # \x00"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("These cells failed to load", "null bytes")},
        output=("cell 4: ValueError: source code string cannot contain null bytes",))),
    "compiler_bomb": (variant(extra=("x = " + "(" * 100_000 + ")" * 100_000,)), Expect(
        FULL_MARKS, output=("cell 6, line 1: SyntaxError: too many nested parentheses",))),
    "cell_raises_at_import": (variant(imports="import numpy as np\nimport no_such_module_x\n"),
                              Expect(FULL_MARKS, output=(
                                  "cell 2, line 2: ModuleNotFoundError",))),
    "class_body_raises": (variant(extra=("class Broken:\n    raise RuntimeError('boom')",)),
                          Expect(FULL_MARKS, output=("RuntimeError: boom",))),
    "top_level_exploration_not_run": (variant(extra=(
        "while True:\n    pass", "raise RuntimeError('experiment')", "import time\n"
        "time.sleep(1e6)", "name = input('your name? ')", "sys.exit(1)")), Expect(
        FULL_MARKS, output=("were not run",))),
    "infinite_loop_at_load": (variant(extra=("class Spin:\n    while True:\n        pass",)),
                              Expect(FULL_MARKS, output=(
                                  "did not finish loading within 3 s; the cell was skipped",))),
    "exit_at_load": (variant(extra=("class Leave:\n    import os\n    os._exit(3)",)), Expect(
        FULL_MARKS, output=("the worker process exited with code 3",
                            "the cell was skipped"))),
    # ---- functions that misbehave when called -----------------------------------------
    "infinite_loop_in_function": (relu("    while True:\n        pass"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("did not finish within the 2 s time limit",)})),
    "sleep_forever": (relu("    import time\n    time.sleep(1e6)"), Expect(
        graded_except("relu_forward"), failed={"relu_forward": ("2 s time limit",)})),
    "recursion_bomb": (relu("    return relu_forward(x)"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("RecursionError", "maximum recursion depth exceeded")})),
    # Python frames no longer use the C stack, but each call through a special method does.
    "stack_overflow": (relu("    import sys\n    sys.setrecursionlimit(10**8)\n\n"
                            "    class Deep:\n        def __eq__(self, other):\n"
                            "            return Deep() == other\n\n"
                            "    return Deep() == x, x"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("killed by SIGSEGV (segmentation fault) while running "
                                 "relu_forward",)})),
    "memory_bomb": (relu("    return np.zeros((200_000, 200_000)), x"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("relu_forward raised MemoryError: Unable to allocate 298.",)})),
    "memory_bomb_gradual": (relu("    hog = []\n    while True:\n"
                                 "        hog.append(np.empty(64 << 20, dtype=np.uint8))"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("raised MemoryError: Unable to allocate 64.0 MiB",)})),
    "fork_bomb": (relu("    while True:\n        os.fork()", imports="import os\n"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("relu_forward raised BlockingIOError",)})),
    "print_100_mb": (relu("    import sys\n    chunk = 'x' * (1 << 20)\n"
                          "    for _ in range(100):\n        sys.stdout.write(chunk)\n"
                          "    print('done printing')\n" + RELU_OK), Expect(
        FULL_MARKS, output=("bytes of output omitted", "done printing"))),
    "huge_file": (relu("    with open('big.bin', 'wb') as fh:\n"
                       "        for _ in range(1024):\n"
                       "            fh.write(bytes(1 << 20))\n" + RELU_OK), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("relu_forward raised OSError: [Errno 27] File too large",)})),
    "disk_filled_with_files": (relu("    for i in range(100):\n"
                                    "        with open(f'part{i}.bin', 'wb') as fh:\n"
                                    "            fh.write(bytes(3 << 20))\n" + RELU_OK), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("[Errno 28] No space left on device",)})),
    "segfault": (relu("    import ctypes\n    ctypes.string_at(0)"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("killed by SIGSEGV (segmentation fault)",)})),
    "sys_exit": (relu("    import sys\n    sys.exit(0)"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("relu_forward raised SystemExit: 0",)})),
    "os_exit": (relu("    import os\n    os._exit(0)"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("the worker process exited with code 0 while running "
                                 "relu_forward",)})),
    # A student's own timeout, the usual way: the alarm fires and raises in their code.
    "signal_alarm": (relu("    import signal, time\n\n    def too_slow(*args):\n"
                          "        raise TimeoutError('my own alarm')\n\n"
                          "    signal.signal(signal.SIGALRM, too_slow)\n    signal.alarm(1)\n"
                          "    time.sleep(1.5)\n" + RELU_OK), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("relu_forward raised TimeoutError: my own alarm",)})),
    "alarm_cannot_stop_time_limit": (relu(
        "    import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n    signal.alarm(0)\n"
        "    while True:\n        pass"), Expect(
        graded_except("relu_forward"), failed={"relu_forward": ("2 s time limit",)})),
    "nan_and_inf": (relu("    out = np.maximum(0, x)\n    out[0, 1], out[1, 1] = np.nan, np.inf\n"
                         "    return out, x"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("2 non-finite value(s) (NaN or Inf), first at index (0, 1)",)})),
    "wrong_dtype": (relu("    return np.maximum(0, x).astype(np.float32), x"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("dtype float32, expected float64",)})),
    "wrong_shape": (relu("    return np.maximum(0, x).ravel(), x"), Expect(
        graded_except("relu_forward"), failed={"relu_forward": ("shape (12,), expected (3, 4)",)})),
    "list_instead_of_array": (relu("    return np.maximum(0, x).tolist(), x"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("expected a numpy array, got list (convert it with np.array)",)})),
    "object_dtype_array": (relu("    return np.maximum(0, x).astype(object), x"), Expect(
        graded_except("relu_forward"), failed={"relu_forward": (
            "array dtype object", "numpy arrays of numbers (not of dtype object)")})),
    "generator": (relu("    return (v for v in np.maximum(0, x)), x"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("expected a numpy array, got generator",)})),
    "returns_none": (relu("    np.maximum(0, x)"), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("should return a tuple of 2 values; it returned NoneType",)})),
    "reads_stdin": (relu("    import os, sys\n    sys.stdin.read()\n    os.read(0, 100)\n"
                         + RELU_OK), Expect(FULL_MARKS)),
    "calls_input": (relu("    name = input('your name? ')\n" + RELU_OK), Expect(
        graded_except("relu_forward"),
        failed={"relu_forward": ("relu_forward raised EOFError: EOF when reading a line",)})),
    "warnings_and_prints": (relu("    import sys, warnings\n    warnings.warn('deprecated!')\n"
                                 "    print('debug', file=sys.stderr)\n" + RELU_OK), Expect(
        FULL_MARKS, output=("deprecated!", "debug"))),
    "everything_broken": (variant(affine_forward="def affine_forward(x, w, b):\n"
                                  "    import os\n    os._exit(1)",
                                  relu_forward="def relu_forward(x):\n    while True: pass",
                                  softmax_loss="def softmax_loss(x, y):\n    return None"),
                          Expect(0, failed={
                              "affine_forward": ("the worker process exited with code 1",),
                              "relu_forward": ("2 s time limit",),
                              "softmax_loss": ("it returned NoneType",)})),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(tmp_path, case):
    content, expect = CASES[case]
    path = tmp_path / "submission.ipynb"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        write(content, path)
    code, results = grade(path, tmp_path)
    check(code, results, expect)


# ---- files that are not there, or not files -------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda p: None, "cannot read submission.ipynb: No such file or directory"),
    (lambda p: p.mkdir(), "cannot read submission.ipynb: Is a directory"),
    (lambda p: os.mkfifo(p), "cannot read submission.ipynb: it is not a regular file"),
])
def test_not_a_file(tmp_path, make, message):
    path = tmp_path / "submission.ipynb"
    make(path)
    code, results = grade(path, tmp_path)
    check(code, results, Expect(0, graded=False, output=(message,)))


# ---- a 200 MB notebook -------------------------------------------------------------------------

PEAK_MEMORY = """
import json, resource, sys
from pathlib import Path
from autograder.assignment import load_assignment
from autograder.grade import grade_notebook
run = grade_notebook(Path(sys.argv[1]), load_assignment(sys.argv[2]))
print(json.dumps({"score": run.results.score, "output": run.results.output,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def test_200_mb_of_outputs_cost_no_memory(tmp_path):
    """Outputs (plots) are dropped while the file is read, so the grader's peak memory does
    not grow with them: the same code with 200 MB of images peaks within 32 MB of the bare
    notebook (reading it whole took three times the file size)."""
    small = write(variant(), tmp_path / "small.ipynb")
    big = write_with_images(variant(), tmp_path / "big.ipynb", 200)
    assert big.stat().st_size > 200 << 20
    peaks = {}
    try:
        for path in (small, big):
            proc = subprocess.run([sys.executable, "-c", PEAK_MEMORY, str(path), str(TINY)],
                                  capture_output=True, text=True, timeout=300, cwd=ROOT)
            assert proc.returncode == 0, proc.stderr[-3000:]
            data = json.loads(proc.stdout.splitlines()[-1])
            assert data["score"] == FULL_MARKS, data["output"]
            peaks[path.name] = data["peak_kb"]
    finally:
        big.unlink()
    assert peaks["big.ipynb"] - peaks["small.ipynb"] < 32 << 10, peaks


# ---- the streaming reader itself ---------------------------------------------------------------

def tricky_notebook() -> bytes:
    """Outputs and attachments full of what could confuse a streaming reader."""
    nb = variant(markdown="Quotes \" and \\ backslashes, ] brackets [ and braces { } in text")
    nb.cells[0].attachments = {"plot.png": {"image/png": "iVBOR" + "A" * 3000}}
    nb.cells[2].outputs = [
        nbformat.v4.new_output("stream", text='tricky "outputs": [ ] { } \\" \\\\ é \u2603\n'),
        nbformat.v4.new_output("display_data", data={
            "application/json": {"outputs": [1, {"a": "]"}], "attachments": {}},
            "image/png": "B" * 10_000, "text/plain": ["line\n"] * 50})]
    nb.cells[3].outputs = [nbformat.v4.new_output("error", ename="E", evalue='"x"',
                                                  traceback=["\\x1b[0m", "]}"])]
    nb.cells[3].metadata = {"outputs": "metadata named like outputs", "tags": ["a]", "{b"]}
    return nbformat.writes(nb).encode()


def test_streaming_reader_matches_a_full_parse():
    """Fed in pieces of every size, the reader keeps exactly what a full parse keeps."""
    raw = tricky_notebook()
    expected = json.loads(raw)
    for cell in expected["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
        if "attachments" in cell:
            cell["attachments"] = {}
    rng = random.Random(7)
    sizes = [1, 2, 3, 5, 64, len(raw)] + [rng.randint(1, 200) for _ in range(30)]
    for size in sizes:
        dropper = _OutputDropper(1 << 30)
        for start in range(0, len(raw), size):
            dropper.feed(raw[start:start + size])
        assert json.loads(dropper.finish()) == expected, size


def test_the_master_of_the_corpus_target_is_up_to_date():
    """tests/corpus/tiny/master.ipynb is written by tests/corpus/notebooks.py."""
    assert MASTER_PATH.read_text() == nbformat.writes(master_notebook()) + "\n"


# ---- a GPU asked for where there is none --------------------------------------------------------

no_gpu_here = pytest.mark.skipif(cuda_available(), reason="this machine has a GPU, so there is "
                                 "no CPU fallback to check")


@no_gpu_here
def test_gpu_requested_on_a_cpu_machine(tmp_path):
    path = write(variant(), tmp_path / "submission.ipynb")
    code, results = grade(path, tmp_path, extra=("--device", "cuda"))
    check(code, results, Expect(FULL_MARKS, output=(
        "--device cuda was asked for, but this machine has no usable CUDA GPU: graded on the "
        "CPU instead",)))


@no_gpu_here
def test_cuda_in_the_notebook_on_a_cpu_machine(tmp_path):
    """A torch assignment (torch allowed; long limits: importing torch takes seconds)."""
    folder = assignment_variant(tmp_path, forbidden_imports=[], time_limit=60,
                                load_time_limit=60)
    nb = relu("    return torch.relu(torch.from_numpy(x).cuda()).cpu().numpy(), x",
              imports="import torch\n")
    path = write(nb, tmp_path / "submission.ipynb")
    code, results = grade(path, tmp_path, assignment=folder)
    check(code, results, Expect(graded_except("relu_forward"), failed={"relu_forward": (
        "relu_forward raised AssertionError: Torch not compiled with CUDA enabled",
        "graded on a machine without a GPU")}))


def test_a_grader_failure_after_the_tests_still_writes_results(tmp_path, monkeypatch):
    """Whatever breaks in the grader (here: building the load report), `dlgrade grade` writes
    a valid results.json, exits 3 (retry), and keeps the traceback for the instructor."""
    import autograder.session

    def broken(self):
        raise KeyError("cell")

    monkeypatch.setattr(autograder.session.LoadReport, "summary", broken)
    path = write(variant(), tmp_path / "submission.ipynb")
    code, results = grade(path, tmp_path)
    check(code, results, Expect(0, graded=False, exit_code=3, output=(
        "GRADER ERROR (not a problem with your submission", "instructor's log")))
    assert "KeyError" not in results["output"]
    # Typed, not only said: batch retries and exit codes read the flag.
    assert results["extra_data"] == {"grader_error": True}
