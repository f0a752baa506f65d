"""`dlgrade batch`: a folder or a Gradescope export zip in, grades.csv, per-student results and
feedback pages out; parallel, resumable after a kill, one bad submission never hurting another.

A tiny assignment keeps this fast; the 40-submission run on hw1 is in bench/bench_batch.py.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import make_notebook

from autograder.batch import run_batch
from autograder.submissions import BatchError, safe_extract
from autograder.feedback import Figures, render_page
from autograder.results import Results

TOML = """\
title = "Tiny"
master = "master.ipynb"
mode = "definitions"
time_limit = 3
total_time_limit = 60
load_time_limit = 10

[limits]
memory_mb = 1024
"""

TESTS = '''\
import numpy as np
import pytest

from autograder.checks import assert_close


@pytest.mark.points(2)
def test_add(student, reference):
    """add: sums two arrays"""
    x, y = np.arange(3.0), np.ones(3)
    assert_close(student.add(x, y), reference.add(x, y), "add")


@pytest.mark.points(3)
def test_curve(student, reference, figures):
    """curve: the training curve"""
    mine = np.asarray(student.curve(20), dtype=float)
    ref = np.asarray(reference.curve(20), dtype=float)
    figures.series("training loss", "your model", mine)
    figures.series("training loss", "reference", ref)
    assert_close(mine, ref, "curve")
'''

MASTER = ["import numpy as np",
          "def add(x, y):\n    # BEGIN SOLUTION\n    return x + y\n    # END SOLUTION",
          "def curve(n):\n    return [1.0 / (i + 1) for i in range(n)]"]
CURVE = MASTER[2]
SUBMISSIONS = {
    "good": MASTER,
    "wrong": ["import numpy as np", "def add(x, y):\n    return x - y", CURVE],
    "hang": ["import numpy as np", "def add(x, y):\n    while True:\n        pass", CURVE],
    "crash": [MASTER[0], MASTER[1], "import os\ndef curve(n):\n    os._exit(1)"],
    "hog": ["import numpy as np", "def add(x, y):\n    return np.ones(10**10)", CURVE],
}
# (add, curve, total) for each; max 5
EXPECTED = {"good": (2, 3, 5), "wrong": (0, 3, 3), "hang": (0, 3, 3), "crash": (2, 0, 2),
            "hog": (0, 3, 3), "broken": (0, 0, 0), "nothing": (0, 0, 0), "two": (0, 0, 0)}
STATUS = {"nothing": "no notebook", "two": "several notebooks"}


@pytest.fixture
def tiny(tmp_path) -> Path:
    folder = tmp_path / "tiny"
    (folder / "tests").mkdir(parents=True)
    (folder / "assignment.toml").write_text(TOML)
    (folder / "tests" / "test_tiny.py").write_text(TESTS)
    nbformat.write(make_notebook(*MASTER), folder / "master.ipynb")
    return folder


def write_subs(folder: Path, names) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name == "broken":
            (folder / "broken.ipynb").write_text("this is not a notebook")
        elif name == "nothing":
            (folder / "nothing").mkdir()
            (folder / "nothing" / "notes.txt").write_text("forgot the notebook")
        elif name == "two":
            (folder / "two").mkdir()
            for draft in ("a", "b"):
                nbformat.write(make_notebook(*MASTER), folder / "two" / f"{draft}.ipynb")
        else:
            nbformat.write(make_notebook(*SUBMISSIONS[name]), folder / f"{name}.ipynb")
    return folder


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


ADD, CURVE_COL = "add: sums two arrays", "curve: the training curve"


def test_batch_of_a_folder_grades_each_alone(tiny, tmp_path):
    subs = write_subs(tmp_path / "subs", EXPECTED)
    out = tmp_path / "out"
    summary = run_batch(subs, str(tiny), out, jobs=2, progress=False)
    assert (summary.total, summary.graded, summary.grader_errors) == (8, 8, 0)
    rows = {r["submission"]: r for r in read_csv(out / "grades.csv")}
    assert set(rows) == set(EXPECTED)
    assert list(rows["good"])[:7] == ["submission", "name", "email", "sid", "notebook", ADD,
                                      CURVE_COL]
    for name, (add, curve, total) in EXPECTED.items():
        row = rows[name]
        assert (float(row[ADD]), float(row[CURVE_COL]), float(row["total"])) == \
            (add, curve, total), (name, row)
        assert row["max_score"] == "5"
        assert row["status"] == STATUS.get(name, "graded")
        results = json.loads((out / "students" / name / "results.json").read_text())
        assert results["score"] == total
    crash = json.loads((out / "students" / "crash" / "results.json").read_text())
    assert "died" in crash["tests"][1]["output"]
    hang = json.loads((out / "students" / "hang" / "results.json").read_text())
    assert "time limit" in hang["tests"][0]["output"]
    assert "No Jupyter notebook" in (out / "students" / "nothing" / "results.json").read_text()
    assert "2 notebooks" in (out / "students" / "two" / "feedback.html").read_text()

    # The feedback page: per-test outcome and message, and the recorded curves as a picture.
    figures = json.loads((out / "students" / "good" / "figures.json").read_text())
    assert [s["label"] for s in figures["2"]["training loss"]["series"]] == \
        ["your model", "reference"]
    good_page = (out / "students" / "good" / "feedback.html").read_text()
    assert good_page.count("data:image/png;base64,") == 1 and "Score: 5 / 5" in good_page
    crash_page = (out / "students" / "crash" / "feedback.html").read_text()
    assert "Score: 2 / 5" in crash_page and "died" in crash_page

    # Running again grades nothing; a changed notebook is graded again.
    before = (out / "grades.csv").read_text()
    again = run_batch(subs, str(tiny), out, jobs=2, progress=False)
    assert (again.skipped, again.graded) == (8, 0)
    assert (out / "grades.csv").read_text() == before
    nbformat.write(make_notebook(*MASTER), subs / "wrong.ipynb")
    third = run_batch(subs, str(tiny), out, jobs=2, progress=False)
    assert (third.skipped, third.graded) == (7, 1)
    assert read_csv(out / "grades.csv")[-1]["total"] == "5"  # "wrong" sorts last


def _graders_of(out: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if ("autograder.graders one" in cmdline or "autograder.graders serve" in cmdline) \
                and str(out) in cmdline:
            pids.append(int(proc.name))
    return pids


def test_killed_batch_resumes_with_what_is_missing(tiny, tmp_path):
    slow = ["import time\nimport numpy as np",
            "def add(x, y):\n    time.sleep(0.5)\n    return x + y", CURVE]
    subs = tmp_path / "subs"
    subs.mkdir()
    for i in range(4):
        nbformat.write(make_notebook(*slow), subs / f"s{i}.ipynb")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen([sys.executable, "-m", "autograder.cli", "batch", str(subs),
                             "-a", str(tiny), "--out", str(out), "-j", "1", "-q"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            done = list(out.glob("students/*/status.json"))
            if done:
                break
            time.sleep(0.05)
        assert done and proc.poll() is None, "the batch finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # the batch only: its graders must follow it
        proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for _ in range(100):
        if not _graders_of(out):
            break
        time.sleep(0.05)
    assert not _graders_of(out), "graders outlived the killed batch"
    finished = {p.parent.name: p.read_text() for p in out.glob("students/*/status.json")}
    assert 1 <= len(finished) < 4

    summary = run_batch(subs, str(tiny), out, jobs=2, progress=False)
    assert summary.skipped == len(finished) and summary.graded == 4 - len(finished)
    for name, status in finished.items():  # not graded twice
        assert (out / "students" / name / "status.json").read_text() == status
    rows = read_csv(out / "grades.csv")
    assert [r["total"] for r in rows] == ["5"] * 4 and {r["status"] for r in rows} == {"graded"}


METADATA = """\
submission_101:
  :submitters:
  - :name: Ada Lovelace
    :sid: '101'
    :email: ada@example.edu
  :created_at: 2024-03-01 10:00:00.000000000 -08:00
  :score: !ruby/object:BigDecimal 18:0.0
  :status: processed
submission_102:
  :submitters:
  - :name: Alan Turing
    :sid: '102'
    :email: alan@example.edu
  - :name: Grace Hopper
    :sid: '103'
    :email: grace@example.edu
submission_104:
  :submitters:
  - :name: Edsger Dijkstra
    :sid: '104'
"""


def _zip_entry(zf, name, data, mode=0o644):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    zf.writestr(info, data)


def test_gradescope_export_zip(tiny, tmp_path):
    good = nbformat.writes(make_notebook(*MASTER))
    wrong = nbformat.writes(make_notebook(*SUBMISSIONS["wrong"]))
    export = tmp_path / "export.zip"
    root = "assignment_77_export/"
    with zipfile.ZipFile(export, "w") as zf:
        _zip_entry(zf, root + "submission_metadata.yml", METADATA)
        _zip_entry(zf, root + "submission_101/hw.ipynb", good)
        _zip_entry(zf, root + "submission_102/sub/Our HW.ipynb", wrong)
        _zip_entry(zf, root + "submission_104/answers.py", "print(1)")
        _zip_entry(zf, "__MACOSX/" + root + "._submission_metadata.yml", "junk")
        # Refused, not extracted:
        _zip_entry(zf, "../escaped.txt", "x")
        _zip_entry(zf, root + "submission_101/../../../escaped2.txt", "x")
        _zip_entry(zf, "/tmp/dlgrade-absolute-entry.txt", "x")
        _zip_entry(zf, root + "submission_104/link.ipynb", "/etc/shadow", mode=0o120777)
    out = tmp_path / "out"
    summary = run_batch(export, str(tiny), out, jobs=2, progress=False)
    assert sorted(r.split(":")[1].strip() for r in summary.refused) == \
        ["'..' in the path", "'..' in the path", "absolute path", "symbolic link"]
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "escaped2.txt").exists()
    assert not Path("/tmp/dlgrade-absolute-entry.txt").exists()
    assert not [p for p in (out / "input").rglob("*") if p.is_symlink()]
    rows = read_csv(out / "grades.csv")
    people = [(r["submission"], r["name"], r["email"], r["sid"], r["total"], r["status"])
              for r in rows]
    assert people == [
        ("submission_101", "Ada Lovelace", "ada@example.edu", "101", "5", "graded"),
        ("submission_102", "Alan Turing", "alan@example.edu", "102", "3", "graded"),
        ("submission_102", "Grace Hopper", "grace@example.edu", "103", "3", "graded"),
        ("submission_104", "Edsger Dijkstra", "", "104", "0", "no notebook"),
    ]
    assert rows[1]["notebook"] == "Our HW.ipynb"
    page = (out / "students" / "submission_102" / "feedback.html").read_text()
    assert "Alan Turing, Grace Hopper" in page


@pytest.mark.filterwarnings("ignore:Duplicate name")  # written on purpose
def test_safe_extract_refuses_each_unsafe_entry(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        _zip_entry(zf, "ok/file.txt", "fine")
        _zip_entry(zf, "ok/../../up.txt", "x")
        _zip_entry(zf, "C:/windows.txt", "x")
        _zip_entry(zf, "back\\slash.txt", "x")
        _zip_entry(zf, "ok/link", "/", mode=0o120777)
        _zip_entry(zf, "ok/file.txt", "second copy")
    dest = tmp_path / "dest"
    dest.mkdir()
    refused = safe_extract(archive, dest)
    assert [r.split(":")[0] for r in refused] == \
        ["ok/../../up.txt", "C", "back\\slash.txt", "ok/link", "ok/file.txt"]
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == \
        ["ok", "ok/file.txt"]
    assert (dest / "ok" / "file.txt").read_text() == "fine"


def test_docker_without_the_containers_module_is_a_clear_error(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "autograder.containers", None)  # import fails
    subs = write_subs(tmp_path / "subs", ["good"])
    with pytest.raises(BatchError, match="--docker needs autograder/containers.py"):
        run_batch(subs, str(tiny), tmp_path / "out", docker="dlgrade:latest", progress=False)
    assert not (tmp_path / "out" / "students").exists()


def test_feedback_page():
    figures = Figures()
    figures.series("loss", "yours", [3.0, 2.0, float("nan"), 1.0])
    figures.series("loss", "reference", range(5000))  # thinned, not dropped
    plots = figures.to_json()
    assert len(plots["loss"]["series"][1]["y"]) <= 2000 and plots["loss"]["series"][0]["y"][2] \
        is None
    results = Results.model_validate({"score": 1, "execution_time": 0.1,
                                      "output": "general <note>", "tests": [
        {"name": "first", "number": "1", "score": 1, "max_score": 2, "status": "failed",
         "output": "expected <script>alert(1)</script>", "visibility": "visible"},
        {"name": "secret", "number": "2", "score": 0, "max_score": 3, "status": "failed",
         "output": "hidden detail", "visibility": "hidden"}]})
    page = render_page(results, {"1": plots}, title="hw & co", subtitle="Ada")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("data:image/png;base64,") == 1
    assert "hidden detail" not in page and "1 hidden test(s): 0 / 3 points" in page
    assert "Score: 1 / 5" in page and "hw &amp; co" in page


def test_warm_graders_grade_in_turn_and_one_past_the_limit_costs_only_itself(tiny, tmp_path):
    """One grader process grades submission after submission (each with a fresh worker); one
    that runs past the batch's limit is killed with its worker, its submission is a grader
    error (retried by the next run), and a fresh grader takes the next."""
    slow = ["import time\nimport numpy as np", "SLOW = time.sleep(20) or 0",
            "def add(x, y):\n    return x + y + SLOW", CURVE]
    subs = write_subs(tmp_path / "subs", ["good"])
    for name in ("a_first", "b_second"):
        nbformat.write(make_notebook(*MASTER), subs / f"{name}.ipynb")
    nbformat.write(make_notebook(*slow), subs / "c_slow.ipynb")
    nbformat.write(make_notebook(*MASTER), subs / "d_after.ipynb")
    out = tmp_path / "out"
    summary = run_batch(subs, str(tiny), out, jobs=1, progress=False, timeout=8)
    assert (summary.graded, summary.grader_errors) == (4, 1)
    status = {p.parent.name: json.loads(p.read_text())
              for p in out.glob("students/*/status.json")}
    assert status["c_slow"]["state"] == "grader_error"
    slow_results = json.loads((out / "students" / "c_slow" / "results.json").read_text())
    assert "did not finish within 8 s" in slow_results["output"]
    assert slow_results["extra_data"] == {"grader_error": True}
    pids = {name: s["grader_pid"] for name, s in status.items()}
    assert pids["a_first"] == pids["b_second"] == pids["c_slow"] != pids["d_after"]
    for name in ("a_first", "b_second", "d_after", "good"):
        assert json.loads((out / "students" / name / "results.json").read_text())["score"] == 5
    assert not _graders_of(out), "graders outlived their batch"


def test_results_are_read_only_through_the_model(tmp_path):
    """The batch reads results.json as a Results (read_results): none, or an invalid one (a
    grader that died half way), is None; a grader error is a typed property, with the shell
    runner's text as its fallback; points_possible sets the maximum."""
    from autograder.results import (TestResult, error_results, grader_error_results,
                                    read_results, write_results)

    path = tmp_path / "results.json"
    assert read_results(path) is None
    path.write_text('{"score": 1, "tests": [')
    assert read_results(path) is None
    path.write_text('{"score": "lots", "execution_time": 0}')
    assert read_results(path) is None
    made = error_results("no notebook", tests=[TestResult(
        name="t", number="1", score=1, max_score=4, status="failed")])
    made.extra_data = {"points_possible": 10}
    write_results(made, path)
    back = read_results(path)
    assert back == made and back.max_score == 10 and not back.grader_error
    write_results(grader_error_results("worker failed"), path)
    assert read_results(path).grader_error
    path.write_text('{"score": 0, "execution_time": 0, "output": "GRADER ERROR: no python"}')
    assert read_results(path).grader_error  # run_autograder's shell, when Python cannot start
