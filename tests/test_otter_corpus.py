"""dlgrade agrees with otter-grader 7, question by question, on the otter corpus.

tests/otter/corpus holds six otter master notebooks written for this test (files and a helper
module, student_files, requirements as a list and a file, `generate: seed` and the top-level
`seed:` variable form, config_file, points_possible, a manual question, exception-style and
doctest cases, hidden cases, all_or_nothing, per-case points; see build_corpus.py) and, for each,
correct, partly wrong and blank submissions derived from otter's own student notebook.
recorded.json holds what `otter run` (otter 7) gave each submission (record_otter.py).

Each master is imported once (`import_otter` on a copy of its folder) and each submission graded
once; the per-question scores (a question's score: the sum over the tests its `covers` tag
names) and the top-level score must equal otter's. Two hostile notebooks (a forged doctest, a
notebook that hunts for the hidden tests' source) must earn 0 and show nothing hidden.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from autograder.assignment import load_assignment
from autograder.grade import grade_notebook
from autograder.gradescope import notebook_in_zip
from autograder.otter.report import import_otter
from conftest import ROOT

CORPUS = ROOT / "tests" / "otter" / "corpus"
RECORDED = json.loads((CORPUS / "recorded.json").read_text())
HOSTILE = ("forged_doctest.ipynb", "hidden_source.ipynb")
# otter's `generate: points_possible` (bootstrap: in the notebook; rngvar: in its config_file)
POINTS_POSSIBLE = {"bootstrap": 20, "rngvar": 10}
TOL = 1e-6

def _submissions() -> list:
    """(master, submission) for every recorded grading but the hostile notebooks'."""
    return [pytest.param(master, sub, id=f"{master}-{sub}") for master in sorted(RECORDED)
            for sub in sorted(RECORDED[master]) if sub not in HOSTILE]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """master name -> its dlgrade assignment, imported once from a copy of its folder."""
    cache = {}

    def get(master: str):
        if master not in cache:
            base = tmp_path_factory.mktemp(f"otter-{master}")
            shutil.copytree(CORPUS / master / "master", base / "source")
            import_otter(base / "source" / f"{master}.ipynb", base / master, self_check=False)
            cache[master] = load_assignment(str(base / master))
        return cache[master]

    return get


@pytest.fixture(scope="module")
def graded(imported, tmp_path_factory):
    """(master, submission) -> dlgrade's GradeRun, each graded once."""
    cache = {}

    def get(master: str, sub: str):
        if (master, sub) not in cache:
            path = CORPUS / master / "submissions" / sub
            if path.suffix == ".zip":  # as `dlgrade grade` and the Gradescope runner do
                path = notebook_in_zip(path, tmp_path_factory.mktemp("zip"))
            cache[master, sub] = grade_notebook(path, imported(master))
        return cache[master, sub]

    return get


def question_scores(results) -> dict[str, float]:
    scores: dict[str, float] = {}
    for test in results.tests:
        question = test.tags[0] if test.tags else test.name
        scores[question] = scores.get(question, 0.0) + test.score
    return scores


@pytest.mark.parametrize("master, sub", _submissions())
def test_questions_agree_with_otter(graded, master, sub):
    run = graded(master, sub)
    otter = RECORDED[master][sub]["questions"]
    ours = question_scores(run.results)
    detail = [(t.name, t.score, t.max_score, t.output[:300]) for t in run.results.tests]
    assert not run.grader_error, run.results.output
    assert set(otter) <= set(ours), (ours, otter, run.results.output)
    differ = {q: (ours.get(q, 0.0), otter.get(q, 0.0)) for q in set(ours) | set(otter)
              if abs(ours.get(q, 0.0) - otter.get(q, 0.0)) >= TOL}
    assert not differ, f"(dlgrade, otter) per question: {differ}\n{detail}"


@pytest.mark.parametrize("master, sub", _submissions())
def test_totals_agree_with_otter(graded, master, sub):
    run = graded(master, sub)
    want = RECORDED[master][sub]
    data = run.results.model_dump()
    possible = sum(t["max_score"] for t in data["tests"])
    assert abs(possible - want["possible"]) < TOL, (possible, want["possible"])
    assert abs(data["score"] - want["score"]) < TOL, (data["score"], want["score"])
    if master in POINTS_POSSIBLE:
        assert data["extra_data"] == {"points_possible": POINTS_POSSIBLE[master]}


MASTERS = sorted(RECORDED)


@pytest.mark.parametrize("master", MASTERS)
def test_master_earns_full_marks(imported, master):
    """The imported master (what import-otter's self-check grades) earns what `otter assign`
    checked it earns with otter: everything."""
    assignment = imported(master)
    run = grade_notebook(assignment.master, assignment)
    assert not run.grader_error, run.results.output
    possible = RECORDED[master]["correct.ipynb"]["possible"]
    got = sum(t.score for t in run.results.tests)
    assert abs(got - possible) < TOL, [(t.name, t.score, t.output[:300])
                                       for t in run.results.tests]


# ---- hostile notebooks --------------------------------------------------------------------------

def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _hidden_cases(master_path: Path) -> list[tuple[str, str]]:
    """(source, expected output) of the master's hidden test cells (`# HIDDEN` first line or
    `hidden: true` in the TEST CONFIG)."""
    nb = nbformat.read(master_path, as_version=4)
    cases, in_tests = [], False
    for cell in nb.cells:
        text = cell.source
        if cell.cell_type == "raw" and re.match(r"#\s*(BEGIN|END) TESTS", text):
            in_tests = "BEGIN" in text
            continue
        if not in_tests or cell.cell_type != "code":
            continue
        lines = text.split("\n")
        hidden = lines[0].startswith("# HIDDEN")
        if hidden:
            lines = lines[1:]
        if lines[0].startswith('""" # BEGIN TEST CONFIG'):
            end = lines.index('""" # END TEST CONFIG')
            hidden = bool(yaml.safe_load("\n".join(lines[1:end])).get("hidden", hidden))
            lines = lines[end + 1:]
        if hidden:
            shown = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                            for o in cell.outputs)
            cases.append(("\n".join(lines), shown))
    return cases


def hidden_needles(master: str) -> set[str]:
    """Text of the hidden cases that nothing else shows the student: each source line and
    output line of 8 characters or more, and each literal of 5 characters or more in the
    case's code (as written and as Python prints it) that the student notebook does not
    contain and the master only once (in that case)."""
    blank = (CORPUS / master / "submissions" / "blank.ipynb").read_text()
    master_text = json.dumps(nbformat.read(CORPUS / master / "master" / f"{master}.ipynb",
                                           as_version=4)["cells"])
    needles = set()
    for source, shown in _hidden_cases(CORPUS / master / "master" / f"{master}.ipynb"):
        needles |= {line.strip() for line in (source + "\n" + shown).split("\n")
                    if len(line.strip()) >= 8}
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and not isinstance(node.value, bool):
                segment = ast.get_source_segment(source, node) or ""
                for text in {segment, repr(node.value)}:
                    if len(text) >= 5 and text not in blank and master_text.count(text) <= 1:
                        needles.add(text)
    return needles


def test_hidden_needles_are_found():
    """The needles are real: every hidden case of arrays gives some, with its literals."""
    needles = hidden_needles("arrays")
    assert {"171.8125", "2_500_000", "2500000", "[-0.707, -0.707, 1.414]",
            "standardize(np.array([10.0, 10.0, 40.0])).round(3).tolist()"} <= needles


@pytest.mark.parametrize("sub", HOSTILE)
def test_hostile_notebooks_earn_nothing_and_see_nothing_hidden(graded, sub):
    run = graded("arrays", sub)
    assert not run.grader_error, run.results.output
    assert run.results.score == 0, [(t.name, t.score, t.output[:300])
                                    for t in run.results.tests]
    text = "\n".join(_strings(run.results.model_dump()))
    leaked = sorted(n for n in hidden_needles("arrays") if n in text)
    assert not leaked, leaked


def test_recorded_corpus_is_complete():
    """Every master has its recorded otter scores, for every submission on disk, and otter
    gave the correct submissions full marks."""
    for folder in sorted(p for p in CORPUS.iterdir() if (p / "master").is_dir()):
        subs = {p.name for p in (folder / "submissions").iterdir()}
        assert set(RECORDED[folder.name]) == subs, folder.name
        correct = RECORDED[folder.name]["correct.ipynb"]
        assert sum(correct["questions"].values()) == correct["possible"] > 0


def test_corpus_masters_are_up_to_date(tmp_path):
    """build_corpus.py writes the committed masters and their files (outputs included)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_corpus", CORPUS / "build_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert sorted(module.MASTERS) == MASTERS
    for master in MASTERS:
        folder = tmp_path / master
        folder.mkdir()
        nb, _ = module.build_master(master, folder)
        committed = CORPUS / master / "master"
        assert json.dumps(nb, sort_keys=True) == json.dumps(
            nbformat.read(committed / f"{master}.ipynb", as_version=4), sort_keys=True), master
        for path in folder.iterdir():
            assert path.read_bytes() == (committed / path.name).read_bytes(), path.name
        assert {p.name for p in folder.iterdir()} | {f"{master}.ipynb"} == \
            {p.name for p in committed.iterdir()}, master



# ---- on Gradescope ------------------------------------------------------------------------------

def test_an_imported_assignment_grades_from_its_gradescope_zip(imported, tmp_path):
    """`dlgrade release` of an imported assignment: its zip's own engine (the otter runtime the
    generated tests import included) gives the correct submission otter's score, scaled to
    points_possible."""
    from test_release import gradescope_root, run_autograder

    from autograder.release import build_release

    master = "bootstrap"
    release = build_release(imported(master), tmp_path / "release")
    notebook = (CORPUS / master / "submissions" / "correct.ipynb").read_bytes()
    root = gradescope_root(release.autograder_zip, {"correct.ipynb": notebook})
    try:
        proc, results = run_autograder(root)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "GRADER ERROR" not in results["output"], results["output"][-3000:]
        recorded = RECORDED[master]["correct.ipynb"]
        assert abs(results["score"] - recorded["score"]) < TOL, (results["score"], recorded)
    finally:
        shutil.rmtree(root, ignore_errors=True)
