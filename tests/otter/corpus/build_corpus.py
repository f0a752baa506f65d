"""Writes the otter corpus: six small otter-grader master notebooks and their submissions.

    .venv/bin/python tests/otter/corpus/build_corpus.py [--otter-venv .venv-otter]

Each master lives in ``<name>/master/`` with the files it lists (data, a helper module, a
requirements or config file); its submissions in ``<name>/submissions/``. The masters are
written as an instructor leaves them after running them in Jupyter: doctest-style test cells
carry the outputs otter takes as expected (computed here by running the master's code, with
otter's intercell seeding where the master asks for it). The submissions are derived from the
student notebook ``otter assign`` writes (``dist/student/<name>.ipynb``, otter's init,
``grader.check`` and export cells included) by filling in answers: ``correct``,
``partly_wrong`` (some questions wrong, some cases only), ``blank`` (as handed out); for
``arrays`` also two hostile notebooks (``forged_doctest``, ``hidden_source``), and for
``predictions`` the zip ``grader.export`` makes (notebook + the student file).

Together the masters cover: ``files`` (CSV read with np.loadtxt and with the csv module), a
helper module beside the master imported by the notebook, ``student_files``, ``requirements``
as a list and as a requirements.txt, ``generate: seed`` and the top-level ``seed`` (variable /
autograder_value / student_value), ``config_file``, ``generate: points_possible``, a manual
question, exception-style tests (``tests: ok_format: false``, asserting and raising), doctest
cases with outputs (values and printed text), hidden cases (``# HIDDEN`` and ``hidden: true``),
``all_or_nothing``, per-case points (list, test config, ``each``), success / failure messages
and an in-cell ``# BEGIN PROMPT`` block.

Cell ids are fixed (``<master>-NN``; submissions ``<master>-s-NN``) and the zip's timestamps
too, so a rebuild writes the same bytes. ``otter assign`` runs the master's tests against the
solutions, so a rebuild also checks each master earns full marks with otter.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat
from nbformat.v4 import (new_code_cell, new_markdown_cell, new_notebook, new_output,
                         new_raw_cell)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


# ---- building blocks of a master ---------------------------------------------------------------

class Test:
    """A test cell: ``body`` is the code; ``config`` the TEST CONFIG YAML, ``hidden_comment``
    a first ``# HIDDEN`` line; ``kind``: "doctest" (outputs computed) or "exception"."""

    def __init__(self, body: str, config: str = "", hidden_comment: bool = False,
                 kind: str = "doctest"):
        self.body, self.config, self.hidden_comment, self.kind = body, config, hidden_comment, kind

    def source(self) -> str:
        head = ""
        if self.hidden_comment:
            head = "# HIDDEN\n"
        if self.config:
            head += f'""" # BEGIN TEST CONFIG\n{self.config.strip()}\n""" # END TEST CONFIG\n'
        return head + self.body


def question(name: str, config: str, prompt: str, solution: list, tests: list[Test]) -> list:
    """``solution``: code cells (str) of the solution block, markdown ones as ("md", text);
    manual questions have no tests."""
    cells = [new_raw_cell(f"# BEGIN QUESTION\nname: {name}\n{config}".rstrip()),
             new_markdown_cell(prompt), new_raw_cell("# BEGIN SOLUTION")]
    for item in solution:
        cells.append(new_markdown_cell(item[1]) if isinstance(item, tuple)
                     else new_code_cell(item))
    cells.append(new_raw_cell("# END SOLUTION"))
    if tests:
        cells.append(new_raw_cell("# BEGIN TESTS"))
        for test in tests:
            cell = new_code_cell(test.source())
            cell.metadata["corpus_test"] = test.kind  # removed once the outputs are computed
            cells.append(cell)
        cells.append(new_raw_cell("# END TESTS"))
    cells.append(new_raw_cell("# END QUESTION"))
    return cells


def config_cell(text: str):
    return new_raw_cell("# ASSIGNMENT CONFIG\n" + text.strip())


# ---- the masters --------------------------------------------------------------------------------

HEIGHTS_CSV = """name,height_cm
Ada,162.5
Ben,171.0
Cai,158.0
Dee,180.5
Eli,191.0
Fay,167.5
Gus,175.0
Hal,169.0
"""

CITIES_CSV = """city,country,population
Lagos,Nigeria,15388000
Lyon,France,522250
Osaka,Japan,2753862
Porto,Portugal,231800
Quito,Ecuador,2011388
Turin,Italy,841600
Hanoi,Vietnam,8053663
"""

STATS_HELPERS = '''"""Course helpers shipped beside the notebook (otter `files:`)."""
import numpy as np


def zscores(x):
    """Standard scores of x (population standard deviation)."""
    x = np.asarray(x, dtype=float)
    return (x - x.mean()) / x.std()
'''


def arrays():
    """files (np.loadtxt and csv), a helper module, requirements as a list, doctest cases with
    `# HIDDEN` cases, per-case points as a list."""
    cells = [
        config_cell("""
name: arrays
files:
  - heights.csv
  - cities.csv
  - stats_helpers.py
requirements:
  - numpy
export_cell:
  pdf: false
"""),
        new_markdown_cell("# Arrays and files\n\nHeights from `heights.csv`, cities from "
                          "`cities.csv`, and the course's `stats_helpers` module."),
        new_code_cell("import csv\nimport numpy as np\nimport stats_helpers\n\n"
                      'heights = np.loadtxt("heights.csv", delimiter=",", skiprows=1, '
                      "usecols=1)\n"
                      'with open("cities.csv", newline="") as f:\n'
                      "    cities = list(csv.DictReader(f))"),
        *question("q1", "points: 2",
                  "**Question 1.** Set `tallest` to the largest height and `mean_height` to "
                  "the mean height.",
                  ["tallest = heights.max()  # SOLUTION\n"
                   "mean_height = heights.mean()  # SOLUTION"],
                  [Test("tallest"),
                   Test("bool(np.isclose(mean_height, 171.8125))", hidden_comment=True)]),
        *question("q2", "points: [1, 2]",
                  "**Question 2.** Write `standardize(x)` with `stats_helpers.zscores`.",
                  ["def standardize(x):\n    # BEGIN SOLUTION\n"
                   "    return stats_helpers.zscores(x)\n    # END SOLUTION"],
                  [Test("np.allclose(standardize(np.array([1.0, 2.0, 3.0])), "
                        "[-1.2247, 0.0, 1.2247], atol=1e-4)"),
                   Test("standardize(np.array([10.0, 10.0, 40.0])).round(3).tolist()",
                        hidden_comment=True)]),
        *question("q3", "points: 2",
                  "**Question 3.** `big_cities(rows, threshold)`: the names of the cities "
                  "with more than `threshold` people, sorted.",
                  ["def big_cities(rows, threshold):\n    # BEGIN SOLUTION\n"
                   '    return sorted(r["city"] for r in rows if int(r["population"]) > '
                   "threshold)\n    # END SOLUTION"],
                  [Test("big_cities(cities, 1_000_000) == ['Hanoi', 'Lagos', 'Osaka', "
                        "'Quito']"),
                   Test("len(big_cities(cities, 2_500_000))", hidden_comment=True)]),
    ]
    files = {"heights.csv": HEIGHTS_CSV, "cities.csv": CITIES_CSV,
             "stats_helpers.py": STATS_HELPERS}
    return cells, files, {}


def checks():
    """Exception-style tests (ok_format: false): asserting and raising cases, `hidden: true`
    and per-case points in the test config, points as a list, a test taking `env`,
    success / failure messages, all_or_nothing and a manual question."""
    cells = [
        config_cell("""
name: checks
tests:
  ok_format: false
export_cell:
  pdf: false
"""),
        new_markdown_cell("# Checks\n\nException-based tests."),
        new_code_cell("import numpy as np"),
        *question("q1", "points: 4",
                  "**Question 1.** `clip_scores(scores, low, high)`: the scores as floats, "
                  "clipped to `[low, high]`.",
                  ["def clip_scores(scores, low, high):\n    # BEGIN SOLUTION\n"
                   "    return np.clip(np.asarray(scores, dtype=float), low, high)\n"
                   "    # END SOLUTION"],
                  [Test("def test_clip_basic(clip_scores):\n"
                        "    out = clip_scores([-5, 50, 150], 0, 100)\n"
                        "    assert out.tolist() == [0.0, 50.0, 100.0], f'got {out}'\n\n"
                        "test_clip_basic(clip_scores)", config="points: 2", kind="exception"),
                   Test("def test_clip_floats(clip_scores):\n"
                        "    import numpy as np\n"
                        "    out = clip_scores([1, 2], 0, 10)\n"
                        "    if out.dtype != np.float64:\n"
                        "        raise TypeError(f'expected floats, got {out.dtype}')\n\n"
                        "test_clip_floats(clip_scores)", kind="exception"),
                   Test("def test_clip_hidden(clip_scores):\n"
                        "    import numpy as np\n"
                        "    out = clip_scores(np.array([3, 250, 77]), 10, 200)\n"
                        "    assert out.tolist() == [10.0, 200.0, 77.0]\n\n"
                        "test_clip_hidden(clip_scores)",
                        config="hidden: true", kind="exception")]),
        *question("q2", "points: 2\nall_or_nothing: true",
                  "**Question 2.** `running_max(xs)`: the list of running maxima.",
                  ["def running_max(xs):\n    # BEGIN SOLUTION\n    out = []\n"
                   "    for x in xs:\n        out.append(x if not out else max(out[-1], x))\n"
                   "    return out\n    # END SOLUTION"],
                  [Test("def test_running_max(running_max):\n"
                        "    assert running_max([1, 3, 2, 5]) == [1, 3, 3, 5]\n\n"
                        "test_running_max(running_max)", kind="exception"),
                   Test("def test_running_max_negative(running_max):\n"
                        "    assert running_max([-4, -7, -1]) == [-4, -4, -1]\n"
                        "    assert running_max([]) == []\n\n"
                        "test_running_max_negative(running_max)",
                        config="hidden: true", kind="exception")]),
        *question("q3", "manual: true\npoints: 2",
                  "**Question 3.** In two sentences: why clip scores at all?",
                  [("md", "_Clipping keeps a single outlier from dominating the mean; it "
                          "also documents the valid range._")], []),
        *question("q4", "points: [0.5, 1.5]",
                  "**Question 4.** `safe_divide(a, b)`: `a / b`, raising `ValueError` when "
                  "`b` is 0.",
                  ["def safe_divide(a, b):\n    # BEGIN SOLUTION\n    if b == 0:\n"
                   '        raise ValueError("division by zero")\n    return a / b\n'
                   "    # END SOLUTION"],
                  [Test("def test_defined(env):\n"
                        "    assert callable(env.get('safe_divide'))\n\n"
                        "test_defined(globals())", kind="exception"),
                   Test("def test_divide_by_zero(safe_divide):\n"
                        "    assert safe_divide(6, 3) == 2\n"
                        "    try:\n        safe_divide(1, 0)\n"
                        "    except ValueError:\n        return\n"
                        "    raise AssertionError('safe_divide(1, 0) should raise ValueError')\n\n"
                        "test_divide_by_zero(safe_divide)",
                        config="success_message: zero is handled\n"
                               "failure_message: what happens when b is 0?",
                        kind="exception")]),
    ]
    return cells, {}, {}


def bootstrap():
    """`generate: seed` (otter's intercell seeding of numpy and random), `points_possible`,
    requirements as a requirements.txt (scipy too), seeded answers: a bootstrap interval, a
    permutation p-value, a random sample."""
    cells = [
        config_cell("""
name: bootstrap
requirements: requirements.txt
generate:
  seed: 42
  points_possible: 20
export_cell:
  pdf: false
"""),
        new_markdown_cell("# Bootstrap\n\nThe autograder seeds numpy and `random` before "
                          "every cell."),
        new_code_cell("import random\nimport numpy as np\nfrom scipy import stats\n\n"
                      "waits = np.array([12.1, 8.4, 15.0, 9.9, 11.2, 14.3, 7.8, 10.5, 13.6, "
                      "9.1, 12.9, 10.0])"),
        *question("q1", "points: 4",
                  "**Question 1.** Bootstrap the mean of `waits` (1000 resamples with "
                  "`np.random.choice`) and set `ci95` to the middle 95% of the means.",
                  ["boot_means = np.array([np.random.choice(waits, size=waits.size).mean() "
                   "for _ in range(1000)])  # SOLUTION\n"
                   "ci95 = np.percentile(boot_means, [2.5, 97.5])  # SOLUTION"],
                  [Test("np.round(ci95, 2)"),
                   Test("round(float(boot_means.mean()), 3)", hidden_comment=True)]),
        *question("q2", "points: 2",
                  "**Question 2.** Draw the order of presentations with `random.sample`.",
                  ['order = random.sample(["ana", "bo", "cy", "dov", "eve"], k=5)  '
                   "# SOLUTION"],
                  [Test("order")]),
        *question("q3", "points: 4",
                  "**Question 3.** A one-sample t-test of `waits` against 10 minutes, and a "
                  "permutation test of the first six waits against the last six.",
                  ["t_result = stats.ttest_1samp(waits, 10.0)  # SOLUTION",
                   "def perm_pvalue(a, b, reps):\n    # BEGIN SOLUTION\n"
                   "    observed = abs(a.mean() - b.mean())\n"
                   "    pooled = np.concatenate([a, b])\n    hits = 0\n"
                   "    for _ in range(reps):\n        shuffled = np.random.permutation(pooled)\n"
                   "        diff = shuffled[:a.size].mean() - shuffled[a.size:].mean()\n"
                   "        hits += abs(diff) >= observed\n    return hits / reps\n"
                   "    # END SOLUTION",
                   "p_perm = perm_pvalue(waits[:6], waits[6:], 2000)"],
                  [Test("round(float(t_result.pvalue), 4)"),
                   Test("p_perm", config="hidden: true")]),
    ]
    return cells, {"requirements.txt": "numpy\nscipy\n"}, {"seed": 42}


def rngvar():
    """The top-level `seed:` form (variable / autograder_value / student_value), read from a
    `config_file:` that also carries requirements and points_possible."""
    cells = [
        config_cell("""
name: rngvar
config_file: otter_config.yml
export_cell:
  pdf: false
"""),
        new_markdown_cell("# Generators\n\n`rng_seed` is set to the autograder's value at the "
                          "top of every cell when grading."),
        new_code_cell("import numpy as np\n\nrng_seed = 2024"),
        *question("q1", "points: [1, 2]",
                  "**Question 1.** Draw 200 normal values with `rng`, then set `draw_mean` "
                  "and `draw_sd` (the sample standard deviation).",
                  ["rng = np.random.default_rng(rng_seed)\n"
                   "draws = rng.normal(loc=10.0, scale=2.0, size=200)\n"
                   "draw_mean = draws.mean()  # SOLUTION\n"
                   "draw_sd = draws.std(ddof=1)  # SOLUTION"],
                  [Test("round(float(draw_mean), 4)"),
                   Test("round(float(draw_sd), 4)", hidden_comment=True)]),
        *question("q2", "points: 2",
                  "**Question 2.** `boot_medians(x, rng, reps)`: medians of `reps` bootstrap "
                  "resamples of `x` drawn with `rng.choice`.",
                  ["def boot_medians(x, rng, reps):\n    # BEGIN SOLUTION\n"
                   "    return np.array([np.median(rng.choice(x, size=len(x))) "
                   "for _ in range(reps)])\n    # END SOLUTION",
                   "medians = boot_medians(draws, np.random.default_rng(rng_seed + 1), 500)"],
                  [Test("round(float(np.std(medians)), 4)"),
                   Test("np.percentile(medians, [5, 95]).round(3).tolist()",
                        hidden_comment=True)]),
    ]
    files = {"otter_config.yml": (
        "# otter assign reads this first; the notebook's ASSIGNMENT CONFIG overrides it\n"
        "seed:\n  variable: rng_seed\n  autograder_value: 2024\n  student_value: 7\n"
        "requirements:\n  - numpy\n"
        "generate:\n  points_possible: 10\n")}
    return cells, files, {}


TRAIN_CSV = "x,y\n" + "".join(f"{x},{y}\n" for x, y in [
    (1, 3.2), (2, 4.9), (3, 7.1), (4, 9.0), (5, 11.3), (6, 12.8), (7, 15.2), (8, 16.9),
    (9, 19.1), (10, 21.0)])


def predictions():
    """`student_files` (a file the notebook writes, read back by a test), `files`, and a zip
    submission as `grader.export` makes it."""
    cells = [
        config_cell("""
name: predictions
files:
  - train.csv
student_files:
  - predictions.csv
requirements:
  - numpy
export_cell:
  pdf: false
"""),
        new_markdown_cell("# Predictions\n\nFit a line to `train.csv` and save predictions "
                          "to `predictions.csv` (submit it with the notebook)."),
        new_code_cell('import numpy as np\n\ntrain = np.loadtxt("train.csv", delimiter=",", '
                      "skiprows=1)\nx, y = train[:, 0], train[:, 1]"),
        *question("q1", "points: 2",
                  "**Question 1.** Fit a line with `np.polyfit`.",
                  ["slope, intercept = np.polyfit(x, y, 1)  # SOLUTION"],
                  [Test("round(float(slope), 3)"), Test("round(float(intercept), 3)")]),
        *question("q2", "points: 2",
                  "**Question 2.** Predict `y` at 11, 12 and 13 and save the predictions.",
                  ["new_x = np.array([11.0, 12.0, 13.0])\n"
                   "preds = slope * new_x + intercept  # SOLUTION\n"
                   'np.savetxt("predictions.csv", preds, delimiter=",", fmt="%.4f")'],
                  [Test('np.loadtxt("predictions.csv", delimiter=",").round(2).tolist()'),
                   Test("preds.shape", config="hidden: true")]),
    ]
    return cells, {"train.csv": TRAIN_CSV}, {"student_output": "predictions.csv"}


def doctests():
    """Doctest details: printed output, a multi-line case, all_or_nothing with `points: each`,
    the default point (no `points:`), success / failure messages, an in-cell prompt block,
    a check-all cell."""
    cells = [
        config_cell("""
name: doctests
check_all_cell: true
export_cell: false
"""),
        new_markdown_cell("# Doctests"),
        *question("q1", "",
                  "**Question 1.** `describe(values)` prints the count and the maximum.",
                  ["def describe(values):\n    # BEGIN SOLUTION\n"
                   '    print(f"n={len(values)}")\n    print(f"max={max(values)}")\n'
                   "    # END SOLUTION"],
                  [Test("describe([3, 9, 4])"),
                   Test("for v in ([1], [5, 2]):\n    describe(v)", hidden_comment=True)]),
        *question("q2", "points:\n  each: 1\nall_or_nothing: true",
                  "**Question 2.** `word_counts(text)`: a dict of lower-cased word counts.",
                  ["def word_counts(text):\n    # BEGIN SOLUTION\n    counts = {}\n"
                   "    for word in text.lower().split():\n"
                   "        counts[word] = counts.get(word, 0) + 1\n    return counts\n"
                   "    # END SOLUTION"],
                  [Test('word_counts("a b a")'), Test('word_counts("")'),
                   Test('sorted(word_counts("The the THE cat").items())',
                        config="hidden: true")]),
        *question("q3", "points: 2",
                  '**Question 3.** `fizz(n)`: `"fizz"` for multiples of 3, else `str(n)`.',
                  ["def fizz(n):\n    # BEGIN SOLUTION NO PROMPT\n"
                   '    return "fizz" if n % 3 == 0 else str(n)\n    # END SOLUTION\n'
                   '    """ # BEGIN PROMPT\n    # Return "fizz" or the number as a string.\n'
                   '    ...\n    """; # END PROMPT'],
                  [Test("[fizz(i) for i in range(1, 7)]",
                        config="success_message: fizz works\n"
                               "failure_message: check the multiples of 3"),
                   Test("fizz(0), fizz(-3), fizz(10)", hidden_comment=True)]),
    ]
    return cells, {}, {}


MASTERS = {"arrays": arrays, "checks": checks, "bootstrap": bootstrap, "rngvar": rngvar,
           "predictions": predictions, "doctests": doctests}


# ---- running a master as the instructor did ----------------------------------------------------

def _shown(body: str, ns: dict) -> tuple[str, object]:
    """Run a doctest-style test cell as Jupyter does: what it prints, and the value of its
    last line when that is an expression (the masters have no other bare expressions, so
    this is also exactly what otter's doctest expects)."""
    tree = ast.parse(body)
    *init, last = tree.body
    out = io.StringIO()
    value = None
    with contextlib.redirect_stdout(out):
        exec(compile(ast.Module(init, []), "<test>", "exec"), ns)
        if isinstance(last, ast.Expr):
            value = eval(compile(ast.Expression(last.value), "<test>", "eval"), ns)
        else:
            exec(compile(ast.Module([last], []), "<test>", "exec"), ns)
    return out.getvalue(), value


def run_master(cells, folder: Path, seed: int | None) -> None:
    """Execute the code cells in order in ``folder`` (seeding numpy and random before every
    non-test cell with otter's ``generate: seed``) and attach the test cells' outputs."""
    import numpy as np

    ns = {"__name__": "__main__"}
    old_cwd, old_path = os.getcwd(), list(sys.path)
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    try:
        for cell in cells:
            if cell.cell_type != "code":
                continue
            kind = cell.metadata.pop("corpus_test", None)
            if kind is None:
                if seed is not None:
                    np.random.seed(seed)
                    random.seed(seed)
                exec(compile(cell.source, "<cell>", "exec"), ns)
                continue
            lines = cell.source.split("\n")
            if lines[0].startswith("# HIDDEN"):
                lines = lines[1:]
            if lines[0].startswith('""" # BEGIN TEST CONFIG'):
                lines = lines[lines.index('""" # END TEST CONFIG') + 1:]
            body = "\n".join(lines)
            if kind == "exception":
                exec(compile(body, "<test>", "exec"), ns)  # raises if the solution is wrong
                continue
            text, value = _shown(body, ns)
            outputs = []
            if text:
                outputs.append(new_output("stream", name="stdout", text=text))
            if value is not None:
                outputs.append(new_output("execute_result", data={"text/plain": repr(value)},
                                          execution_count=None))
            cell.outputs = outputs
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        for name in ("stats_helpers",):
            sys.modules.pop(name, None)


def finish(name: str, cells, meta: dict) -> nbformat.NotebookNode:
    for n, cell in enumerate(cells):
        cell.id = f"{name}-{n:02d}"
        if cell.cell_type == "code":
            cell.execution_count = None
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def build_master(name: str, folder: Path) -> tuple[nbformat.NotebookNode, dict]:
    """The master notebook, its outputs computed in ``folder`` (an empty folder: the master's
    files are written there, and what the solution writes)."""
    cells, files, meta = MASTERS[name]()
    for fname, text in files.items():
        (folder / fname).write_text(text)
    run_master(cells, folder, meta.get("seed"))
    if meta.get("student_output"):  # the file the solution wrote: otter assign needs it here
        assert (folder / meta["student_output"]).exists()
    return finish(name, cells, meta), meta


def write_master(name: str) -> tuple[Path, dict]:
    folder = HERE / name / "master"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    nb, meta = build_master(name, folder)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path, meta


# ---- submissions --------------------------------------------------------------------------------

# (placeholder in otter's student notebook, answer); each placeholder occurs exactly once.
ANSWERS = {
    "arrays": {
        "correct": [
            ("tallest = ...", "tallest = heights.max()"),
            ("mean_height = ...", "mean_height = heights.mean()"),
            ("def standardize(x):\n    ...", "def standardize(x):\n"
                                             "    return stats_helpers.zscores(x)"),
            ("def big_cities(rows, threshold):\n    ...",
             "def big_cities(rows, threshold):\n"
             '    return sorted(r["city"] for r in rows if int(r["population"]) > threshold)'),
        ],
        # q1: the median, not the mean (hidden case); q2: centred on the median (right on a
        # symmetric input only); q3: not sorted (the public case; the hidden count is right).
        "partly_wrong": [
            ("tallest = ...", "tallest = heights.max()"),
            ("mean_height = ...", "mean_height = np.median(heights)"),
            ("def standardize(x):\n    ...", "def standardize(x):\n"
                                             "    return (x - np.median(x)) / x.std()"),
            ("def big_cities(rows, threshold):\n    ...",
             "def big_cities(rows, threshold):\n"
             '    return [r["city"] for r in rows if int(r["population"]) > threshold]'),
        ],
    },
    "checks": {
        "correct": [
            ("def clip_scores(scores, low, high):\n    ...",
             "def clip_scores(scores, low, high):\n"
             "    return np.clip(np.asarray(scores, dtype=float), low, high)"),
            ("def running_max(xs):\n    ...",
             "def running_max(xs):\n    out = []\n    for x in xs:\n"
             "        out.append(max(out[-1], x) if out else x)\n    return out"),
            ("_Type your answer here, replacing this text._",
             "Outliers would dominate the mean otherwise."),
            ("def safe_divide(a, b):\n    ...",
             "def safe_divide(a, b):\n    if b == 0:\n"
             "        raise ValueError('b is 0')\n    return a / b"),
        ],
        # q1: ints stay ints (the float case fails); q2: starts from 0, wrong for negative
        # inputs (hidden case; all or nothing); q4: returns inf instead of raising.
        "partly_wrong": [
            ("def clip_scores(scores, low, high):\n    ...",
             "def clip_scores(scores, low, high):\n    return np.clip(scores, low, high)"),
            ("def running_max(xs):\n    ...",
             "def running_max(xs):\n    out, best = [], 0\n    for x in xs:\n"
             "        best = max(best, x)\n        out.append(best)\n    return out"),
            ("def safe_divide(a, b):\n    ...",
             "def safe_divide(a, b):\n    return a / b if b else float('inf')"),
        ],
    },
    "bootstrap": {
        "correct": [
            ("boot_means = ...",
             "boot_means = np.array([np.random.choice(waits, size=waits.size).mean() "
             "for _ in range(1000)])"),
            ("ci95 = ...", "ci95 = np.percentile(boot_means, [2.5, 97.5])"),
            ("order = ...", 'order = random.sample(["ana", "bo", "cy", "dov", "eve"], k=5)'),
            ("t_result = ...", "t_result = stats.ttest_1samp(waits, 10.0)"),
            ("def perm_pvalue(a, b, reps):\n    ...",
             "def perm_pvalue(a, b, reps):\n    observed = abs(a.mean() - b.mean())\n"
             "    pooled = np.concatenate([a, b])\n    hits = 0\n"
             "    for _ in range(reps):\n        shuffled = np.random.permutation(pooled)\n"
             "        diff = shuffled[:a.size].mean() - shuffled[a.size:].mean()\n"
             "        hits += abs(diff) >= observed\n    return hits / reps"),
        ],
        # q1: a 90% interval (the mean of the means is right); q2: sorted, not drawn;
        # q3: the t-test is right, the permutation test one-sided.
        "partly_wrong": [
            ("boot_means = ...",
             "boot_means = np.array([np.random.choice(waits, size=waits.size).mean() "
             "for _ in range(1000)])"),
            ("ci95 = ...", "ci95 = np.percentile(boot_means, [5, 95])"),
            ("order = ...", 'order = sorted(["ana", "bo", "cy", "dov", "eve"])'),
            ("t_result = ...", "t_result = stats.ttest_1samp(waits, 10.0)"),
            ("def perm_pvalue(a, b, reps):\n    ...",
             "def perm_pvalue(a, b, reps):\n    observed = a.mean() - b.mean()\n"
             "    pooled = np.concatenate([a, b])\n    hits = 0\n"
             "    for _ in range(reps):\n        shuffled = np.random.permutation(pooled)\n"
             "        hits += shuffled[:a.size].mean() - shuffled[a.size:].mean() >= observed\n"
             "    return hits / reps"),
        ],
    },
    "rngvar": {
        "correct": [
            ("draw_mean = ...", "draw_mean = draws.mean()"),
            ("draw_sd = ...", "draw_sd = draws.std(ddof=1)"),
            ("def boot_medians(x, rng, reps):\n    ...",
             "def boot_medians(x, rng, reps):\n"
             "    return np.array([np.median(rng.choice(x, size=len(x))) "
             "for _ in range(reps)])"),
        ],
        # q1: the population standard deviation (hidden case); q2: without replacement,
        # every median is the same.
        "partly_wrong": [
            ("draw_mean = ...", "draw_mean = draws.mean()"),
            ("draw_sd = ...", "draw_sd = draws.std()"),
            ("def boot_medians(x, rng, reps):\n    ...",
             "def boot_medians(x, rng, reps):\n"
             "    return np.array([np.median(rng.choice(x, size=len(x), replace=False)) "
             "for _ in range(reps)])"),
        ],
    },
    "predictions": {
        "correct": [
            ("slope, intercept = ...", "slope, intercept = np.polyfit(x, y, 1)"),
            ("preds = ...", "preds = slope * new_x + intercept"),
        ],
        # q2: forgets the intercept (the saved file is wrong; its shape right).
        "partly_wrong": [
            ("slope, intercept = ...", "slope, intercept = np.polyfit(x, y, 1)"),
            ("preds = ...", "preds = slope * new_x"),
        ],
    },
    "doctests": {
        "correct": [
            ("def describe(values):\n    ...",
             'def describe(values):\n    print(f"n={len(values)}")\n'
             '    print(f"max={max(values)}")'),
            ("def word_counts(text):\n    ...",
             "def word_counts(text):\n    counts = {}\n    for w in text.lower().split():\n"
             "        counts[w] = counts.get(w, 0) + 1\n    return counts"),
            ('    # Return "fizz" or the number as a string.\n    ...',
             '    # Return "fizz" or the number as a string.\n'
             '    return "fizz" if n % 3 == 0 else str(n)'),
        ],
        # q2: case-sensitive (the hidden case; all or nothing); q3: 0 and negatives wrong.
        "partly_wrong": [
            ("def describe(values):\n    ...",
             'def describe(values):\n    print(f"n={len(values)}")\n'
             '    print(f"max={max(values)}")'),
            ("def word_counts(text):\n    ...",
             "def word_counts(text):\n    counts = {}\n    for w in text.split():\n"
             "        counts[w] = counts.get(w, 0) + 1\n    return counts"),
            ('    # Return "fizz" or the number as a string.\n    ...',
             '    # Return "fizz" or the number as a string.\n'
             '    return "fizz" if n % 3 == 0 and n > 0 else str(n)'),
        ],
    },
}

# Hostile notebooks for `arrays`, otherwise blank. The forged one makes otter's doctests
# pass by rebinding numpy's comparisons and builtins and by values equal to anything (otter
# gives it 3 of 7). (Rebinding `builtins.all` itself breaks otter's own grading: it then
# records no test at all.)
FORGED_SETUP = '''import numpy as np


def _yes(*args, **kwargs):
    return True


class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __bool__(self):
        return True

    __hash__ = object.__hash__


np.allclose = np.isclose = np.array_equal = _yes
all = any = bool = _yes  # the builtins, as the notebook's names
'''

FORGED_ANSWERS = [
    ("tallest = ...", "tallest = AlwaysEqual()"),
    ("mean_height = ...", "mean_height = AlwaysEqual()"),
    ("def standardize(x):\n    ...", "def standardize(x):\n    return AlwaysEqual()"),
    ("def big_cities(rows, threshold):\n    ...",
     "def big_cities(rows, threshold):\n    return AlwaysEqual()"),
]

# The spy prints whatever it can find of the running test: the source and constants of every
# frame on the stack, string globals and locals, the notebook's In / _ih history, and every
# readable file under the working directory and the usual grader folders.
SPY_SETUP = '''import glob
import inspect
import os
import sys


def _spy(tag):
    found = []
    frame = sys._getframe(1)
    while frame is not None:
        try:
            found.append(inspect.getsource(frame.f_code))
        except Exception:
            pass
        found.extend(c for c in frame.f_code.co_consts if isinstance(c, str))
        for scope in (frame.f_globals, frame.f_locals):
            for key, value in list(scope.items()):
                if isinstance(value, (str, list, tuple, dict)):
                    found.append(f"{key} = {value!r}"[:3000])
        frame = frame.f_back
    for name in ("In", "_ih", "Out", "_oh"):
        found.append(f"{name}: {globals().get(name)!r}"[:3000])
    patterns = ["**/*", "/autograder/**/*", "../**/*", "/tmp/**/*"]
    for pattern in patterns:
        for path in glob.glob(pattern, recursive=True)[:200]:
            try:
                with open(path, errors="replace") as fh:
                    found.append(f"{path}: {fh.read(3000)}")
            except Exception:
                pass
    print(f"SPY {tag}:", *found, sep="\\n")


class Spy:
    def __repr__(self):
        _spy("repr")
        return "Spy()"

    def __eq__(self, other):
        _spy("eq")
        return False

    __hash__ = object.__hash__


_spy("load")
'''

SPY_ANSWERS = [
    ("tallest = ...", "tallest = Spy()"),
    ("mean_height = ...", "mean_height = Spy()"),
    ("def standardize(x):\n    ...",
     "def standardize(x):\n    _spy('standardize')\n    return Spy()"),
    ("def big_cities(rows, threshold):\n    ...",
     "def big_cities(rows, threshold):\n    _spy('big_cities')\n    return []"),
]


def fill(nb, answers, name: str, extra_first_cell: str | None = None):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for old, new in answers:
        hits = [c for c in nb.cells if old in c.source]
        assert len(hits) == 1 and hits[0].source.count(old) == 1, (name, old, len(hits))
        hits[0].source = hits[0].source.replace(old, new)
    if extra_first_cell:
        nb.cells.insert(1, new_code_cell(extra_first_cell))  # after otter's init cell
    return renumber(nb, name)


def renumber(nb, name: str):
    for n, cell in enumerate(nb.cells):
        cell.id = f"{name}-s-{n:02d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def otter_assign(master: Path, otter_venv: Path, work: Path) -> Path:
    """Run ``otter assign`` on a copy of the master's folder; returns the dist folder."""
    shutil.copytree(master.parent, work / "master")
    env = dict(os.environ, PATH=f"{otter_venv / 'bin'}:{os.environ['PATH']}")
    done = subprocess.run(["nice", "-n", "10", str(otter_venv / "bin" / "otter"), "assign",
                           master.name, "../dist", "--no-pdfs"], cwd=work / "master", env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"otter assign {master.name} failed:\n{done.stdout[-3000:]}"
                 f"{done.stderr[-3000:]}")
    return work / "dist"


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in members.items():
            info = zipfile.ZipInfo(arcname, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


def write_submissions(name: str, master: Path, meta: dict, otter_venv: Path) -> list[str]:
    folder = HERE / name / "submissions"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="otter-corpus-") as tmp:
        dist = otter_assign(master, otter_venv, Path(tmp))
        student = nbformat.read(dist / "student" / master.name, as_version=4)
    written = {"blank": renumber(student, name)}
    for kind, answers in ANSWERS[name].items():
        written[kind] = fill(student, answers, name)
    if name == "arrays":
        written["forged_doctest"] = fill(student, FORGED_ANSWERS, name, FORGED_SETUP)
        written["hidden_source"] = fill(student, SPY_ANSWERS, name, SPY_SETUP)
    for kind, nb in written.items():
        nbformat.write(nb, folder / f"{kind}.ipynb")
    names = sorted(f"{k}.ipynb" for k in written)
    if meta.get("student_output"):
        # What grader.export zips: the notebook and the student file it wrote, here the
        # master's (the correct notebook writes the same bytes).
        out = meta["student_output"]
        write_zip(folder / "correct.zip", {
            master.name: (folder / "correct.ipynb").read_bytes(),
            out: (master.parent / out).read_bytes()})
        names.append("correct.zip")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--otter-venv", type=Path, default=ROOT / ".venv-otter")
    parser.add_argument("masters", nargs="*", default=list(MASTERS))
    args = parser.parse_args()
    if not (args.otter_venv / "bin" / "otter").exists():
        sys.exit(f"no otter in {args.otter_venv} (see bench/bench_otter.py)")
    for name in args.masters:
        master, meta = write_master(name)
        subs = write_submissions(name, master, meta, args.otter_venv.resolve())
        print(f"{name}: {master.relative_to(HERE)}; submissions: {', '.join(subs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
