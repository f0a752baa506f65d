"""Coming from otter-grader: `dlgrade import-otter`, converted tests, otter calls in notebooks."""
from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output, new_raw_cell

from autograder.assignment import load_assignment
from autograder.cli import main as cli_main
from autograder.grade import grade_notebook
from autograder.otter.convert import convert
from autograder.otter.parse import OtterImportError
from autograder.otter.report import import_otter
from autograder.otter.runtime import DoctestCase, compare_output, run_question
from autograder.public import run_public_check
from autograder.sandbox import Sandbox, SandboxConfig
from conftest import ROOT

FIXTURES = ROOT / "tests" / "otter"


# ---- helpers ------------------------------------------------------------------------------------

def shown(source: str, text: str):
    """A test cell as Jupyter leaves it in the master: its last value displayed."""
    cell = new_code_cell(source)
    cell.outputs = [new_output("execute_result", data={"text/plain": text}, execution_count=1)]
    return cell


def master_nb(*cells):
    return nbformat.v4.new_notebook(cells=list(cells))


def question(name, solution, tests, config=""):
    return [new_raw_cell(f"# BEGIN QUESTION\nname: {name}\n{config}"),
            new_raw_cell("# BEGIN SOLUTION"), new_code_cell(solution),
            new_raw_cell("# END SOLUTION"), new_raw_cell("# BEGIN TESTS"), *tests,
            new_raw_cell("# END TESTS"), new_raw_cell("# END QUESTION")]


def write(nb, path: Path) -> Path:
    nbformat.write(nb, path)
    return path


def student_nb(tmp_path, *sources, name="submission.ipynb"):
    return write(master_nb(*[new_code_cell(s) for s in sources]), tmp_path / name)


def scores(run):
    return {t.name: (t.score, t.max_score) for t in run.results.tests}


@pytest.fixture(scope="module")
def hello(tmp_path_factory):
    """The otter master of tests/otter imported once, through the command line."""
    out = tmp_path_factory.mktemp("otter") / "hello_otter"
    code = cli_main(["import-otter", str(FIXTURES / "hello_master.ipynb"), "--out", str(out)])
    assert code == 0  # the self-check passed: the master earns full marks on its own tests
    return out


# ---- the end-to-end test ----------------------------------------------------------------

def test_imported_assignment_grades_as_the_otter_tests_intend(hello):
    assignment = load_assignment(str(hello))
    assert assignment.directory == hello.resolve() and assignment.mode == "all"
    # The master lives inside the folder, so it is hidden from the worker with the tests.
    assert assignment.master.is_relative_to(assignment.directory)
    assert assignment.directory in assignment.secret_paths

    correct = grade_notebook(FIXTURES / "hello_correct.ipynb", assignment)
    assert not correct.grader_error
    assert correct.results.score == correct.results.max_score == 5
    assert "Problems while loading" not in correct.results.output  # otter calls are harmless

    wrong = grade_notebook(FIXTURES / "hello_wrong.ipynb", assignment)
    # x * |x| and sum / (len + 1) pass both public cases and fail both hidden ones; the
    # hidden q1 case is worth 2 of q1's 3 points (TEST CONFIG), q2's 2 points split evenly.
    assert scores(wrong) == {"q1: public tests": (1, 1), "q1: hidden tests": (0, 2),
                             "q2: public tests": (1, 1), "q2: hidden tests": (0, 1)}
    tests = {t.name: t for t in wrong.results.tests}
    assert tests["q1: hidden tests"].visibility == "hidden"
    assert tests["q1: public tests"].visibility == "visible"
    output = tests["q1: hidden tests"].output
    assert "check negative inputs" in output  # the case's failure_message
    assert "expected output:\n    (16, 0.25)\nyour output:\n    (-16, 0.25)" in output


def test_import_writes_a_complete_assignment(hello):
    files = {p.relative_to(hello).as_posix() for p in hello.rglob("*") if p.is_file()}
    assert {"assignment.toml", "hello_otter.ipynb", "master/hello_otter.ipynb",
            "tests/test_hello_otter.py", "public_checks.py", "otter-import-report.md",
            "mutants.py"} <= files
    report = (hello / "otter-import-report.md").read_text()
    assert "master notebook: 5 / 5" in report
    assert "student notebook (no work done): 0 / 5" in report
    # otter's files: copied beside the notebook, declared in assignment.toml, so the worker
    # has them in its working directory.
    assert "data.csv" in files and "`files:`" not in report
    assert 'files = ["data.csv"]' in (hello / "assignment.toml").read_text()
    skeleton = nbformat.read(hello / "hello_otter.ipynb", as_version=4)
    code = "\n".join(c.source for c in skeleton.cells if c.cell_type == "code")
    assert "return x * x" not in code and "sum(heights) / len(heights)" not in code
    assert 'check("q1", "hello_otter")' in code and "import otter" not in code
    # Hidden cases never reach the student: not in the notebook, not in the public checks.
    public = (hello / "public_checks.py").read_text()
    assert "square(3)" in public and "square(-4)" not in public and "167.0" not in public


def test_public_checks_run_in_the_students_notebook(hello, capsys):
    right = {"square": lambda x: x * x, "mean_height": 167.0}
    wrong = {"square": lambda x: x + x, "mean_height": 167}
    folder = str(hello)  # an absolute path: found without being bundled
    assert run_public_check("q1", right, folder) and run_public_check("q2", right, folder)
    assert not run_public_check("q1", wrong, folder)
    assert not run_public_check("q2", wrong, folder)
    out = capsys.readouterr().out
    assert "expected output:\n        9\n    your output:\n        6" in out
    assert "expected output:\n        float\n    your output:\n        int" in out


def test_reimport_needs_force_and_is_identical(hello, tmp_path):
    with pytest.raises(OtterImportError, match="not empty"):
        import_otter(FIXTURES / "hello_master.ipynb", hello, self_check=False)
    again = tmp_path / "hello_otter"
    import_otter(FIXTURES / "hello_master.ipynb", again, self_check=False)
    for name in ("tests/test_hello_otter.py", "public_checks.py", "assignment.toml",
                 "master/hello_otter.ipynb", "hello_otter.ipynb"):
        assert (again / name).read_text() == (hello / name).read_text(), name


# ---- conversion details (no grading) ------------------------------------------------------------

def test_points_follow_otters_rules():
    nb = master_nb(
        *question("a", "def f(): return 1", [shown("f()", "1"), shown("f()", "1"),
                                             shown("f()", "1")], "points: 2"),
        *question("b", "def g(): return 1", [shown("g()", "1"), shown("g()", "1")]),
        *question("c", "def h(): return 1", [shown("h()", "1"), shown("h()", "1")],
                  "points: [1, 3]"),
        *question("d", "def k(): return 1", [shown("k()", "1"), shown("k()", "1")],
                  "points:\n  each: 2\nall_or_nothing: true"),
        *question("e", "def m(): return 1",
                  [shown('""" # BEGIN TEST CONFIG\npoints: 3\n""" # END TEST CONFIG\nm()', "1"),
                   shown("m()", "1"), shown("m()", "1")], "points: 4"))
    conv = convert(nb, "pts", mode="auto")
    points = {q.name: [c.points for c in q.cases] for q in conv.questions}
    assert points["a"] == pytest.approx([2 / 3] * 3)
    assert points["b"] == [0.5, 0.5]  # no points anywhere: the question is worth 1
    assert points["c"] == [1, 3]
    assert points["d"] == [2, 2] and conv.questions[3].all_or_nothing
    assert points["e"] == [3, 0.5, 0.5]  # the rest of the question's points is shared
    assert conv.mode == "definitions"  # the tests only call functions


def test_hidden_markers_and_test_config():
    nb = master_nb(*question("q", "def f(): return 1", [
        shown("f()", "1"),
        shown("# HIDDEN\nf() + 1", "2"),
        shown('""" # BEGIN TEST CONFIG\nhidden: true\nsuccess_message: well done\n'
              'timeout: 3\n""" # END TEST CONFIG\nf()', "1"),
        shown("# a comment\nf()", "1"),
        shown("# Hidden from students\nf()", "1"),  # otter looks for the word
    ]))
    conv = convert(nb, "hid")
    cases = conv.questions[0].cases
    assert [c.hidden for c in cases] == [False, True, True, False, True]
    assert cases[1].source == "f() + 1" and cases[2].success_message == "well done"
    assert cases[3].source.startswith("# a comment")
    # An unknown TEST CONFIG key is reported with its line.
    assert any("`timeout`" in n.what and n.where.endswith("line 4") for n in conv.notes)


def test_in_cell_markers_become_dlgrade_blocks():
    source = ("import numpy as np\n"
              "np.random.seed(0)  # SEED\n"
              "a = 1  # SOLUTION\n"
              "b = 2  # SOLUTION\n"
              "debug = True  # IGNORE\n"
              "# BEGIN IGNORE\n"
              "print('instructor only')\n"
              "# END IGNORE\n"
              "def f(x):\n"
              "    # BEGIN SOLUTION NO PROMPT\n"
              "    return x + a + b\n"
              "    # END SOLUTION\n")
    nb = master_nb(*question("q", source, [shown("f(1)", "4")]))
    conv = convert(nb, "marks")
    code = [c.source for c in conv.master.cells if c.cell_type == "code"]
    assert code[0] == "from autograder import check"  # for the check() cells dlgrade adds
    assert code[1] == ("import numpy as np\n"
                       "# BEGIN SOLUTION\na = 1\nb = 2\n# END SOLUTION\n"
                       "def f(x):\n    # BEGIN SOLUTION\n    return x + a + b\n"
                       "    # END SOLUTION\n")
    whats = " | ".join(n.what for n in conv.notes)
    assert "SEED line" in whats and "IGNORE line" in whats and "IGNORE block" in whats
    assert "NO PROMPT" in whats and "one-line SOLUTION" in whats
    # The master grades the same way release strips it: the block markers are dlgrade's own.
    from autograder.release import make_skeleton
    skeleton = make_skeleton(conv.master)
    text = "\n".join(c.source for c in skeleton.cells)
    assert "return x + a + b" not in text and "a = 1" not in text


def test_what_cannot_be_converted_is_reported_line_by_line():
    nb = master_nb(
        new_raw_cell("# ASSIGNMENT CONFIG\nrequirements: requirements.txt\n"
                     "init_cell: false\nseed:\n  autograder_value: 7\n  student_value: 1"),
        *question("w", "answer = 3", [shown("answer", "3")], "manual: true\npoints: 2"),
        new_raw_cell("# BEGIN QUESTION\nname: essay\nmanual: true"),
        new_raw_cell("# BEGIN SOLUTION"),
        new_markdown_cell("The answer is 42 because ..."),
        new_raw_cell("# END SOLUTION"),
        new_raw_cell("# END QUESTION"),
        *question("m", "def f(): return 1", [shown("%time f()", "1"), shown("f()", "1")]))
    conv = convert(nb, "rep")
    notes = {(n.where, n.what.split(":")[0]) for n in conv.notes if not n.converted}
    assert not any("requirements" in what for _, what in notes)  # converted (a file here)
    assert conv.requirements_file == "requirements.txt"
    assert any(w == "cell 1, line 3" and "init_cell" in what for w, what in notes)
    assert any("manually graded question" in n.what and n.where == "cell 2, line 3"
               for n in conv.notes)
    assert any("written (Markdown) solution" in n.what for n in conv.notes)
    assert any("not valid Python" in n.what and "%time f()" in n.text for n in conv.notes)
    # The written answer is not in the master, so no student ever sees it.
    assert not any("42" in c.source for c in conv.master.cells)
    assert [len(q.cases) for q in conv.questions] == [1, 0, 1]
    # Intercell seeding becomes code run before every cell.
    # otter 7 seeds grading with a top-level seed only through its variable: none here
    assert conv.cell_prefix == ""
    assert any("seed without a `variable`" in n.what for n in conv.notes)


@pytest.mark.parametrize("cells, message", [
    ([new_raw_cell("# BEGIN QUESTION\nname: q"), new_raw_cell("# BEGIN TESTS")],
     "never closed"),
    ([new_raw_cell("# BEGIN SOLUTION")], "outside a question"),
    ([new_raw_cell("# BEGIN QUESTION\npoints: 1")], "needs a `name`"),
    ([new_raw_cell("# BEGIN QUESTION\nname: q"), new_raw_cell("# END TESTS")],
     "does not close"),
])
def test_malformed_masters_are_refused_with_a_reason(cells, message):
    with pytest.raises(OtterImportError, match=message):
        convert(master_nb(*cells), "bad")


def test_output_comparison_follows_otter():
    assert compare_output("9\n", "9", "plain") is None  # compared as text after stripping
    assert compare_output("a  \nb\n\n", "a\nb", "plain") is None
    assert "expected output" in compare_output("9.0", "9", "plain")
    # The student's own object whose repr reads like the expected literal does not pass.
    assert "plain data" in compare_output("True", "True", "text")
    assert compare_output("Model(3 layers)", "Model(3 layers)", "text") is None


# ---- the worker side: the exec_cell op and otter calls in notebooks -----------------------------

@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(SandboxConfig(hide=[str(ROOT / "solutions")]))
    sb.start()
    yield sb
    sb.close()


def load(sb, code, mode="all"):
    return sb.request("load", {"cells": [(1, code)], "mode": mode, "forbidden": [],
                               "assignment": "test"}, 20)["value"]


def exec_cell(sb, source):
    reply = sb.request("exec_cell", {"source": source}, 10)
    assert reply["ok"], reply
    return reply["value"]


def test_exec_cell_runs_like_a_notebook_cell(sandbox):
    load(sandbox, "import numpy as np\nclass Liar:\n    def __repr__(self):\n"
                  "        return 'True'\n")
    value = exec_cell(sandbox, "y = 3\nprint('hi')\ny * 2")
    assert value == {"printed": "hi\n", "kind": "plain", "value": 6}
    assert exec_cell(sandbox, "y")["value"] == 3  # statements ran in the student's namespace
    assert exec_cell(sandbox, "y;") == {"printed": "", "kind": "none"}  # `;` hides the value
    assert exec_cell(sandbox, "print(y)") == {"printed": "3\n", "kind": "none"}
    scalar = exec_cell(sandbox, "np.float64(0.5)")
    assert scalar["kind"] == "scalar" and scalar["value"].shape == ()
    array = exec_cell(sandbox, "np.arange(3)")
    assert array["kind"] == "plain" and array["value"].tolist() == [0, 1, 2]
    # An object that cannot travel is shown by its own repr, flagged as such.
    assert exec_cell(sandbox, "Liar()") == {"printed": "", "kind": "text", "text": "True"}
    reply = sandbox.request("exec_cell", {"source": "1 / 0"}, 10)
    assert not reply["ok"] and reply["error"]["type"] == "ZeroDivisionError"


@pytest.mark.parametrize("mode", ["all", "definitions"])
def test_otter_calls_in_a_student_notebook_are_harmless(mode):
    sandbox = Sandbox(SandboxConfig())
    sandbox.start()
    report = load(sandbox, "import otter\nfrom otter import Notebook\n"
                           "grader = otter.Notebook('hw.ipynb', tests_dir='tests')\n"
                           "g2 = Notebook()\n"
                           "grader.check('q1')\ngrader.check_all()\n"
                           "grader.export(pdf=False, force_save=True, run_tests=True)\n"
                           "g2.to_pdf()\n"
                           "def f():\n    return 41 + 1\n", mode)
    reply = sandbox.request("call", {"target": {"name": "f"}, "args": [], "kwargs": {}}, 5)
    sandbox.close()
    assert report["problems"] == []
    assert reply["value"] == 42


# ---- exception-style tests, seeding, lying objects ----------------------------------------------

EXCEPTION_MASTER = master_nb(
    new_raw_cell("# ASSIGNMENT CONFIG\ntests:\n  ok_format: false\n"
                 "generate:\n  seed: 42"),
    new_code_cell("import numpy as np"),
    *question("q1", "def square(x):\n    return x * x  # SOLUTION", [
        new_code_cell("def test_square(square):\n    assert square(3) == 9, 'square(3)'"),
        new_code_cell('""" # BEGIN TEST CONFIG\nhidden: true\npoints: 2\n'
                      '""" # END TEST CONFIG\n'
                      "def test_square_arrays(square):\n    import numpy as np\n"
                      "    out = square(np.array([-2.0, 3.0]))\n"
                      "    assert isinstance(out, np.ndarray)\n"
                      "    np.testing.assert_allclose(out, [4.0, 9.0])\n"
                      "test_square_arrays(square)"),
    ], "points: 3"),
    *question("q2", "draw = np.random.rand()  # SOLUTION", [
        new_code_cell("def test_draw(env):\n    assert 0 <= env['draw'] < 1\n"
                      "    assert 'nothing' not in env"),
        new_code_cell("# HIDDEN\ndef test_seeded(draw):\n    import numpy as np\n"
                      "    np.random.seed(42)\n    assert draw == np.random.rand()"),
    ], "points: 2"),
)


def test_exception_style_tests_compare_in_the_grader(tmp_path):
    master = write(EXCEPTION_MASTER, tmp_path / "ex_master.ipynb")
    result = import_otter(master, tmp_path / "ex")
    assert result.ok, result.report
    assert result.master_score == (5, 5)  # the seeded draw is reproduced by the cell prefix
    assignment = load_assignment(str(tmp_path / "ex"))
    assert assignment.mode == "all" and "seed(42)" in assignment.cell_prefix
    assert "`env`" in (tmp_path / "ex" / "assignment.toml").read_text()

    # Objects claiming equality with anything: the comparison happens in the grader, where
    # the student's object is an opaque proxy, so it earns nothing.
    cheat = student_nb(tmp_path,
                       "import numpy as np",
                       "class Anything(float):\n    def __eq__(self, other):\n"
                       "        return True\n    __hash__ = float.__hash__",
                       "def square(x):\n    return Anything(0)",
                       "draw = Anything(0.5)")
    run = grade_notebook(cheat, assignment)
    got = scores(run)
    assert got["q1: public tests"] == (0, 1) and got["q1: hidden tests"] == (0, 2)
    # `0 <= env['draw']` on an opaque proxy is a TypeError in the grader: no points either.
    assert got["q2: public tests"] == (0, 1) and got["q2: hidden tests"] == (0, 1)
    tests = {t.name: t.output for t in run.results.tests}
    assert "at line 2 of the test: assert square(3) == 9" in tests["q1: public tests"]


def test_doctest_cases_resist_a_lying_repr(tmp_path, hello):
    cheat = student_nb(
        tmp_path,
        "class Shown:\n    def __init__(self, text):\n        self.text = text\n"
        "    def __repr__(self):\n        return self.text\n",
        "def square(x):\n    return Shown('9')",
        "mean_height = Shown('167.0')")
    run = grade_notebook(cheat, load_assignment(str(hello)))
    assert run.results.score == 0
    assert "expected plain data" in {t.name: t.output for t in run.results.tests}[
        "q1: public tests"]


def test_run_question_scores_cases_and_all_or_nothing():
    from autograder.plugin import PartialCredit
    from autograder.proxies import LocalNamespace

    module = types.ModuleType("m")
    exec("def f(x):\n    return x + 1\n", module.__dict__)
    student = LocalNamespace(module)
    cases = [DoctestCase("a", "f(1)", "2", points=1, success_message="nice"),
             DoctestCase("b", "f(2)", "4", points=3, failure_message="off by one?")]
    partial = PartialCredit()
    run_question(student, partial, cases)
    assert partial.fraction == pytest.approx(0.25)
    assert partial.messages[0] == "[a] nice" and "off by one?" in partial.messages[1]
    strict = PartialCredit()
    run_question(student, strict, cases, all_or_nothing=True)
    assert strict.fraction == 0 and "all or nothing" in strict.messages[-1]


def test_cli_reports_a_bad_master(tmp_path, capsys):
    bad = write(master_nb(new_raw_cell("# BEGIN SOLUTION")), tmp_path / "bad.ipynb")
    assert cli_main(["import-otter", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "outside a question" in capsys.readouterr().out
    assert not (tmp_path / "x").exists()


def test_fixtures_are_up_to_date():
    """tests/otter/build_fixtures.py writes the committed notebooks."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_fixtures",
                                                  FIXTURES / "build_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = nbformat.read(FIXTURES / "hello_master.ipynb", as_version=4)
    assert json.dumps(module.master(), sort_keys=True) == json.dumps(committed, sort_keys=True)


# The expected outputs of hello_master's q1 hidden and q2 hidden cases, hex-encoded so that
# this code holds no copy of them that a heap walk could find.
HEAP_WALK = '''
import gc, sys
# the two expected outputs, and the source of q1's hidden case
NEEDLES = [bytes.fromhex(h).decode() for h in ("2831362c20302e323529", "3136372e30",
                                               "737175617265282d3429")]

def _leaked():
    def found(item):
        return type(item) is str and any(n in item and item is not n for n in NEEDLES)
    for obj in gc.get_objects():
        items = (obj.values() if type(obj) is dict else obj if type(obj) in (list, tuple)
                 else ())
        if any(found(item) for item in list(items)):
            return True
    frame = sys._getframe(1)
    while frame is not None:
        if any(found(item) for item in list(frame.f_locals.values())
               + list(frame.f_code.co_consts)):
            return True
        frame = frame.f_back
    return False

def square(x):
    return -1 if _leaked() else x * x
'''


def test_expected_outputs_never_reach_the_worker(tmp_path, hello):
    # A heap and frame walk from inside the student's function, as in the cheats of
    # SANDBOX-NOTES: the expected outputs, and the hidden cases' source, live in the grader
    # only, so it finds nothing.
    notebook = student_nb(tmp_path, HEAP_WALK, "heights = [150, 165, 172, 181]",
                          "mean_height = sum(heights) / len(heights)")
    run = grade_notebook(notebook, load_assignment(str(hello)))
    assert run.results.score == 5, [(t.name, t.output) for t in run.results.tests]
    # The walk does find an expected output that is in the worker.
    sandbox = Sandbox(SandboxConfig())
    sandbox.start()
    try:
        load(sandbox, HEAP_WALK)
        reply = sandbox.request("call", {"target": {"name": "square"},
                                         "args": ["got (16, 0.25)?"], "kwargs": {}}, 10)
    finally:
        sandbox.close()
    assert reply["value"] == -1


def test_hanging_cases_time_out_and_grading_goes_on(tmp_path, hello):
    assignment = load_assignment(str(hello))
    assignment.time_limit_cap = 1.0  # each case's limit, for a quick test
    notebook = student_nb(tmp_path, "def square(x):\n    while True:\n        pass",
                          "heights = [150, 165, 172, 181]",
                          "mean_height = sum(heights) / len(heights)")
    run = grade_notebook(notebook, assignment)
    assert scores(run) == {"q1: public tests": (0, 1), "q1: hidden tests": (0, 2),
                           "q2: public tests": (1, 1), "q2: hidden tests": (1, 1)}
    assert "time limit" in {t.name: t.output for t in run.results.tests}["q1: public tests"]


def test_mode_follows_what_the_tests_read():
    by_function = master_nb(*question("q", "def f(x):\n    return x", [
        shown("import math\nvals = [f(i) for i in range(3)]\nmath.fsum(vals)", "3.0")]))
    assert convert(by_function, "m").mode == "definitions"
    by_value = master_nb(*question("q", "total = 3  # SOLUTION\nratio = max(total, 0) / 2", [
        shown("ratio", "1.5")]))
    conv = convert(by_value, "m")
    assert conv.mode == "all" and "`ratio`" in conv.mode_reason
    assert convert(by_value, "m", mode="definitions").mode == "definitions"


def test_the_imported_folder_is_hidden_from_the_worker(tmp_path, hello):
    secrets = [str(hello / "tests" / "test_hello_otter.py"),
               str(hello / "master" / "hello_otter.ipynb")]
    reader = ("def _readable(path):\n    try:\n        with open(path) as fh:\n"
              "            return bool(fh.read(1))\n    except OSError:\n        return False\n\n"
              f"def square(x):\n    return -1 if any(map(_readable, {secrets!r})) else x * x")
    notebook = student_nb(tmp_path, reader, "heights = [150, 165, 172, 181]",
                          "mean_height = sum(heights) / len(heights)")
    assert all(Path(p).read_text() for p in secrets)  # readable here, in the grader
    run = grade_notebook(notebook, load_assignment(str(hello)))
    assert run.results.score == 5, [(t.name, t.output) for t in run.results.tests]


def test_data_files_and_helper_modules_beside_the_master(tmp_path):
    """otter's `files:` (a data file and a helper module the master imports) reach the worker's
    working directory, the student release and the reference, so `np.loadtxt("data.csv")` and
    `import course_utils` work as they did in Jupyter."""
    source = tmp_path / "course"
    source.mkdir()
    (source / "data.csv").write_text("height\n160\n172\n169\n")
    (source / "course_utils.py").write_text("def double(x):\n    return 2 * x\n")
    master = master_nb(
        new_raw_cell("# ASSIGNMENT CONFIG\nname: heights\nfiles:\n  - data.csv\n"
                     "  - course_utils.py"),
        new_code_cell("import numpy as np\nimport course_utils\n"
                      "heights = np.loadtxt('data.csv', skiprows=1)"),
        *question("q1", "def tallest():\n    # BEGIN SOLUTION\n    return heights.max()\n"
                        "    # END SOLUTION",
                  [shown("tallest()", "np.float64(172.0)")]),
        *question("q2", "def doubled(x):\n    # BEGIN SOLUTION\n    return course_utils.double(x)"
                        "\n    # END SOLUTION", [shown("doubled(21)", "42")]))
    path = write(master, source / "heights.ipynb")
    result = import_otter(path, tmp_path / "heights")
    assert result.ok and result.master_score == (2, 2), result.report
    assert (tmp_path / "heights" / "data.csv").exists()
    assert (tmp_path / "heights" / "course_utils.py").exists()
    assignment = load_assignment(str(tmp_path / "heights"))
    wrong = student_nb(tmp_path, "import numpy as np\nimport course_utils\n"
                                 "heights = np.loadtxt('data.csv', skiprows=1)",
                       "def tallest():\n    return heights.min()",
                       "def doubled(x):\n    return course_utils.double(x)")
    run = grade_notebook(wrong, assignment)
    assert run.results.score == 1 and not run.grader_error, run.results.output


FORGED_MASTER = [
    new_code_cell("import numpy as np"),
    *question("q1", "def square(x):\n    # BEGIN SOLUTION\n    return x * x\n"
                    "    # END SOLUTION",
              [shown("np.allclose(square(np.arange(3)), [0, 1, 4])", "True"),
               shown('""" # BEGIN TEST CONFIG\nhidden: true\n""" # END TEST CONFIG\n'
                     "all(square(v) == v * v for v in [2, -3])", "True")]),
    *question("q2", "def show(x):\n    # BEGIN SOLUTION\n    print('x =', x)\n"
                    "    # END SOLUTION", [shown("show(2)\nshow(3)", "")]),
]


@pytest.fixture(scope="module")
def forged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forged")
    master = master_nb(*FORGED_MASTER)
    master.cells[-3].outputs = [new_output("stream", name="stdout", text="x = 2\nx = 3\n")]
    result = import_otter(write(master, folder / "forged.ipynb"), folder / "forged")
    assert result.ok and result.master_score == (2, 2), result.report
    return load_assignment(str(folder / "forged"))


@pytest.mark.parametrize("cheat", [
    "import numpy as np\nnp.allclose = lambda *a, **k: True\nall = lambda *a: True",
    "class _Yes:\n    allclose = staticmethod(lambda *a, **k: True)\nnp = _Yes()",
    "import numpy as np\nclass _Any:\n    def __eq__(self, other):\n        return True\n"
    "    __hash__ = object.__hash__",
])
def test_a_forged_doctest_earns_nothing(tmp_path, forged, cheat):
    """The notebook patches numpy, rebinds `np` or `all`, or returns objects equal to
    anything: the cases are evaluated in the grader, with its own numpy and builtins, and
    compare plain data, so none of it passes a case. (`show` is left correct: its printed
    output still reaches the comparison, in order.)"""
    square = "def square(x):\n    return _Any() if '_Any' in globals() else x"
    notebook = student_nb(tmp_path, cheat, square, "def show(x):\n    print('x =', x)")
    run = grade_notebook(notebook, forged)
    got = scores(run)
    assert sorted(got) == ["q1: hidden tests", "q1: public tests", "q2: public tests"]
    assert got["q1: public tests"][0] == got["q1: hidden tests"][0] == 0, run.results.output
    assert got["q2: public tests"] == (1, 1), run.results.output


def test_generate_seed_is_otters_intercell_seed():
    nb = master_nb(new_raw_cell("# ASSIGNMENT CONFIG\ngenerate:\n  seed: 11\n  show_hidden: false"),
                   *question("q", "def f():\n    return 1", [shown("f()", "1")]))
    conv = convert(nb, "seeded")
    assert conv.cell_prefix == ('__import__("numpy").random.seed(11); '
                                '__import__("random").seed(11)')
    assert not [n for n in conv.notes if not n.converted and "seed" in n.text]


def test_requirements_reach_assignment_toml_and_are_checked(tmp_path):
    """otter's requirements (a file beside the master) become the assignment's; grading where
    one is missing is a grader error naming it, with results.json written."""
    source = tmp_path / "course"
    source.mkdir()
    (source / "requirements.txt").write_text("# the course's packages\nnumpy>=1\n"
                                              "dlgrade-no-such-package==1.0\n")
    master = master_nb(new_raw_cell("# ASSIGNMENT CONFIG\nrequirements: requirements.txt"),
                       *question("q", "def f():\n    # BEGIN SOLUTION\n    return 1\n"
                                      "    # END SOLUTION", [shown("f()", "1")]))
    result = import_otter(write(master, source / "req.ipynb"), tmp_path / "req")
    toml = (tmp_path / "req" / "assignment.toml").read_text()
    assert 'requirements = ["numpy>=1", "dlgrade-no-such-package==1.0"]' in toml
    assert result.master_score is None or result.master_score[0] == 0
    assignment = load_assignment(str(tmp_path / "req"))
    assert assignment.missing_requirements() == ["dlgrade-no-such-package==1.0"]
    run = grade_notebook(assignment.master, assignment)
    assert run.grader_error and run.results.tests == []
    assert "needs packages this grader does not have: dlgrade-no-such-package==1.0" in \
        run.results.output


def test_in_cell_prompt_blocks_and_manual_false():
    """A `\"\"\" # BEGIN PROMPT` block becomes comments (no dead string left in the master), and
    `manual: false`, otter's default, is no unsupported key."""
    nb = master_nb(*question(
        "q", 'def f():\n    """ # BEGIN PROMPT\n    Return the answer.\n    """ # END PROMPT\n'
             "    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION",
        [shown("f()", "1")], "manual: false"))
    conv = convert(nb, "prompt")
    code = "\n".join(c.source for c in conv.master.cells if c.cell_type == "code")
    assert "    # Return the answer." in code and '"""' not in code
    assert not [n for n in conv.notes if not n.converted], conv.notes


def test_partial_scores_are_not_rounded_below_their_maximum():
    from autograder.grade import to_results
    from autograder.plugin import Outcome

    outcomes = [Outcome("a", "a", 2 / 3, 1.0, "", "visible", []),
                Outcome("b", "b", 1.0, 1 / 3, "", "visible", [])]
    results = to_results(outcomes, execution_time=0.0, output="")
    assert results.tests[0].score == results.tests[0].max_score == 2 / 3
    assert results.tests[1].score == round(1 / 3, 10)


def test_config_file_settings_are_read_and_the_notebook_wins(tmp_path):
    """otter's config_file: settings beside the master are used where the notebook sets none
    (requirements, the intercell seed here); a setting both give is the notebook's."""
    (tmp_path / "otter_config.yml").write_text(
        "requirements:\n  - numpy>=1\ngenerate:\n  seed: 5\nname: from-file\n")
    nb = master_nb(new_raw_cell("# ASSIGNMENT CONFIG\nname: from-notebook\n"
                                "config_file: otter_config.yml"),
                   *question("q", "def f():\n    return 1", [shown("f()", "1")]))
    conv = convert(nb, "configured", base_dir=tmp_path)
    assert conv.requirements == ["numpy>=1"]
    assert conv.cell_prefix.startswith('__import__("numpy").random.seed(5)')
    note = next(n for n in conv.notes if "config_file" in n.text)
    assert note.converted and note.what.endswith("read: generate, requirements")
    with pytest.raises(OtterImportError, match="does not exist beside the master"):
        convert(master_nb(new_raw_cell("# ASSIGNMENT CONFIG\nconfig_file: missing.yml"),
                          *question("q", "def f():\n    return 1", [shown("f()", "1")])),
                "missing", base_dir=tmp_path)


def test_points_possible_scales_the_total_as_otter(tmp_path):
    """otter's `generate: points_possible`: the Gradescope total is the earned fraction of the
    tests' points times it (otter 7's rule); the tests keep their own points, and results.json
    says the maximum in extra_data so batch and feedback show it."""
    master = master_nb(
        new_raw_cell("# ASSIGNMENT CONFIG\ngenerate:\n  points_possible: 30\n  zips: true"),
        *question("q1", "def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION",
                  [shown("f()", "1")], "points: 1"),
        *question("q2", "def g():\n    # BEGIN SOLUTION\n    return 2\n    # END SOLUTION",
                  [shown("g()", "2")], "points: 2"))
    result = import_otter(write(master, tmp_path / "scaled.ipynb"), tmp_path / "scaled")
    assert result.ok and result.master_score == (30, 30), result.report
    assert "points_possible = 30" in (tmp_path / "scaled" / "assignment.toml").read_text()
    assert [n.converted for n in result.conversion.notes if "zips" in n.text] == [True]
    assignment = load_assignment(str(tmp_path / "scaled"))
    half = student_nb(tmp_path, "def f():\n    return 1", "def g():\n    return 0")
    run = grade_notebook(half, assignment)
    assert [t.score for t in run.results.tests] == [1, 0]
    assert run.results.score == pytest.approx(10.0)  # 1 of 3 points, scaled to 30
    assert run.results.max_score == 30
    dumped = json.loads(run.results.model_dump_json())
    assert dumped["extra_data"] == {"points_possible": 30}


def test_points_possible_must_be_a_positive_number(tmp_path):
    from autograder.assignment import AssignmentError

    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "assignment.toml").write_text("points_possible = -3\n")
    with pytest.raises(AssignmentError, match="points_possible must be a positive number"):
        load_assignment(str(folder))


def test_a_zipped_submission_is_graded_from_the_notebook_inside(tmp_path, hello):
    """otter's `zips` (otter export's zip), or a student who zipped their work: `dlgrade grade`
    and the Gradescope runner grade the one notebook inside; a broken zip is a clear message
    and a results.json."""
    import zipfile

    from autograder.gradescope import run as gradescope_run

    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(FIXTURES / "hello_correct.ipynb", "work/hello.ipynb")
        zf.writestr("work/notes.txt", "not graded")
    results = tmp_path / "r.json"
    assert cli_main(["grade", str(archive), "-a", str(hello), "--results", str(results),
                     "-q"]) == 0
    graded = json.loads(results.read_text())
    assert graded["score"] == sum(t["max_score"] for t in graded["tests"]) > 0
    # Gradescope's layout: the zip alone in submission/
    root = tmp_path / "gs"
    (root / "submission").mkdir(parents=True)
    (root / "source" / "assignments").mkdir(parents=True)
    shutil.copytree(hello, root / "source" / "assignments" / hello.name)
    shutil.copy(archive, root / "submission" / "export.zip")
    assert gradescope_run(root, hello.name) == 0
    out = json.loads((root / "results" / "results.json").read_text())
    assert out["score"] == graded["score"] and "Graded notebook: work/hello.ipynb" in out["output"]
    (tmp_path / "broken.zip").write_text("not a zip")
    assert cli_main(["grade", str(tmp_path / "broken.zip"), "-a", str(hello), "--results",
                     str(results), "-q"]) == 0
    broken = json.loads(results.read_text())
    assert broken["score"] == 0 and "could not be opened as a zip file" in broken["output"]


def test_a_helper_module_the_master_imports_is_copied_even_unlisted(tmp_path):
    source = tmp_path / "course"
    source.mkdir()
    (source / "helpers.py").write_text("def triple(x):\n    return 3 * x\n")
    master = master_nb(new_code_cell("import helpers"),
                       *question("q", "def f(x):\n    # BEGIN SOLUTION\n    return helpers."
                                      "triple(x)\n    # END SOLUTION", [shown("f(2)", "6")]))
    result = import_otter(write(master, source / "uses_helper.ipynb"), tmp_path / "uses")
    assert result.ok and result.master_score == (1, 1), result.report
    assert (tmp_path / "uses" / "helpers.py").exists()
    assert "helper module helpers.py" in result.report
    assert 'files = ["helpers.py"]' in (tmp_path / "uses" / "assignment.toml").read_text()


def test_folders_imported_before_the_otter_package_still_grade(hello):
    """Generated tests of earlier imports say `from autograder.otter_import import ...`: the
    same runtime answers there; new imports name autograder.otter.runtime."""
    import autograder.otter.runtime as runtime
    import autograder.otter_import as old

    assert (old.DoctestCase, old.FunctionCase, old.run_question) == \
        (runtime.DoctestCase, runtime.FunctionCase, runtime.run_question)
    generated = next((hello / "tests").glob("test_*.py")).read_text()
    assert "from autograder.otter.runtime import" in generated


def test_a_seed_without_its_variable_seeds_nothing_as_in_otter():
    """otter 7 gives grading a top-level seed only with its `variable`; a seed without one
    is reported and not applied, so seeded answers score as otter scores them."""
    nb = master_nb(new_raw_cell("# ASSIGNMENT CONFIG\nseed:\n  autograder_value: 5"),
                   *question("q", "def f():\n    return 1", [shown("f()", "1")]))
    conv = convert(nb, "unseeded")
    assert conv.cell_prefix == ""
    assert [n.converted for n in conv.notes if "seed without a `variable`" in n.what] == [False]


def test_the_grader_runs_no_public_check_of_the_master(tmp_path, capsys):
    """A master loaded in-process in mode "all" (otter's) runs its check() cells as nothing:
    they are the author's demo, and printed "q1: 1 of 1 public checks failed" into every
    grading's log (the grader does not seed the master as otter does)."""
    from conftest import make_notebook

    from autograder.assignment import load_reference, with_parts

    master = tmp_path / "master.ipynb"
    nbformat.write(make_notebook("from autograder import check", "def f():\n    return 1",
                                 "ran = check('f', 'nothing_here')"), master)
    module = load_reference(master, "dlgrade_master_checks_off", mode="all")
    assert module.ran is None and module.f() == 1
    with_parts(module, f=lambda: 2)
    assert capsys.readouterr().out == ""
    namespace = {}
    exec("from autograder import check\nran = check('f', 'nothing_here')", namespace)
    assert namespace["ran"] is False and "no public checks" in capsys.readouterr().out  # elsewhere
