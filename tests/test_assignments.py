"""Every bundled assignment, end to end: the reference earns full marks, the skeleton earns
zero without crashing anything, every known mistake loses points, and scores are stable."""
from __future__ import annotations

import contextlib
import io

import nbformat
import pytest
from conftest import hidden_tests, mutant_reference

from autograder.assignment import ASSIGNMENTS_DIR, load_assignment
from autograder.audit import audit
from autograder.grade import grade_notebook
from autograder.mutants import load_mutants
from autograder.public import load_public_checks, run_public_check
from autograder.release import make_skeleton, normalize_master

NAMES = sorted(p.name for p in ASSIGNMENTS_DIR.iterdir() if (p / "assignment.toml").exists())
ASSIGNMENTS = {name: load_assignment(name) for name in NAMES}


def master_of(name):
    return nbformat.read(ASSIGNMENTS[name].master, as_version=4)


@pytest.mark.parametrize("name", NAMES)
def test_audit_passes(name):
    """`dlgrade audit --quick`: full marks for the reference (with every trained threshold met
    on 5 seeds and every tolerance above the reference's own error), 0 for the skeleton, every
    known mistake caught and at least 80% of them named, identical scores over 3 reruns."""
    report = audit(ASSIGNMENTS[name], reruns=3, seeds=5, quick=True)
    assert report.ok, report.problems
    assert report.reference_score == report.max_score >= 50
    assert len(report.test_seconds) >= 15
    assert report.mutants and all(m.killed for m in report.mutants)
    assert report.diagnosis_rate >= 0.8
    assert report.metrics, f"{name} has no trained check reporting its metric (assert_metric)"
    assert all(len(m.values) == 5 for m in report.metrics)


@pytest.mark.parametrize("name", NAMES)
def test_skeleton_scores_zero_and_says_why(name):
    assignment = ASSIGNMENTS[name]
    run = grade_notebook(assignment.skeleton, assignment)
    assert run.results.score == 0
    assert len(run.results.tests) >= 15
    for test in run.results.tests:
        assert test.status == "failed"
        assert "not implemented yet" in test.output, (test.name, test.output)
    assert "GRADER ERROR" not in run.results.output


@pytest.mark.parametrize("name", NAMES)
def test_skeleton_is_in_sync_with_master(name):
    committed = nbformat.read(ASSIGNMENTS[name].skeleton, as_version=4)
    generated = make_skeleton(master_of(name))
    assert [(c.cell_type, c.source) for c in committed.cells] == \
        [(c.cell_type, c.source) for c in generated.cells], \
        f"run `dlgrade release {name}` to regenerate the student notebook"


@pytest.mark.parametrize("name", NAMES)
def test_skeleton_code_has_no_solution_lines(name):
    master = master_of(name)
    # Markdown may state the contract's formulas; the code cells must not hold the answers.
    skeleton_lines = {line for c in make_skeleton(master).cells if c.cell_type == "code"
                      for line in c.source.splitlines()}
    for cell in master.cells:
        inside = False
        for line in cell.source.splitlines():
            if line.strip() == "# BEGIN SOLUTION":
                inside = True
            elif line.strip() == "# END SOLUTION":
                inside = False
            elif inside and len(line.strip()) > 12:
                assert line not in skeleton_lines, line


@pytest.mark.parametrize("name", NAMES)
def test_master_is_committed_normalised(name):
    """The master notebook is the source, edited in Jupyter: committed without outputs,
    execution counts or run-time metadata (`dlgrade release` normalises it)."""
    master = master_of(name)
    assert normalize_master(master) == master, \
        f"run `dlgrade release {name}` to normalise {ASSIGNMENTS[name].master.name}"


@pytest.mark.parametrize("name", NAMES)
def test_there_are_enough_mutants(name):
    mutants = load_mutants(ASSIGNMENTS[name].mutants_file)
    assert len([m for m in mutants if not m.equivalent]) >= ASSIGNMENTS[name].min_mutants
    assert len({m.name for m in mutants}) == len(mutants)


@pytest.mark.parametrize("name", NAMES)
def test_public_checks_pass_on_the_reference(name):
    reference = vars(ASSIGNMENTS[name].reference)
    checks = load_public_checks(ASSIGNMENTS[name].directory)
    assert checks, f"{name} has no public checks"
    lines: list[str] = []
    for check_name in sorted(checks):
        assert run_public_check(check_name, reference, name, printer=lines.append), lines


@pytest.mark.parametrize("name", NAMES)
def test_public_checks_cover_the_contract_and_fail_on_the_skeleton(name):
    """Every function and class the student writes has a public check, and each fails on the
    untouched student notebook saying it is not implemented yet (never passing, never
    crashing the check)."""
    from autograder.assignment import load_reference
    from autograder.nulls import contract_names

    assignment = ASSIGNMENTS[name]
    checks = load_public_checks(assignment.directory)
    functions, classes = contract_names(assignment.skeleton)
    assert set(checks) == set(functions) | set(classes), \
        sorted(set(checks) ^ (set(functions) | set(classes)))
    with assignment.beside_files():
        skeleton = load_reference(assignment.skeleton, f"skeleton_{name}",
                                  mode=assignment.mode)
    for check in sorted(checks):
        lines: list[str] = []
        assert not run_public_check(check, vars(skeleton), name, printer=lines.append), check
        assert "not implemented yet" in "\n".join(lines), (check, lines)


PUBLICLY_CAUGHT = [pytest.param(name, mutant.name, id=f"{name}-{mutant.name}")
                   for name in NAMES for mutant in load_mutants(ASSIGNMENTS[name].mutants_file)
                   if mutant.public_check_catches]


@pytest.mark.parametrize("name, mutant", PUBLICLY_CAUGHT)
def test_public_checks_catch_the_mistakes_mutants_py_says_they_catch(name, mutant):
    """A mistake marked ``public_check_catches`` in mutants.py fails the public check of its
    function: the student sees it before submitting."""
    assignment = ASSIGNMENTS[name]
    found = {m.name: m for m in load_mutants(assignment.mutants_file)}[mutant]
    module = mutant_reference(assignment, master_of(name), found)
    lines: list[str] = []
    assert not run_public_check(found.function, vars(module), name, printer=lines.append), \
        f"the public check of {found.function} passes {mutant}: {lines}"


@pytest.mark.parametrize("name", NAMES)
def test_master_runs_top_to_bottom_and_shows_what_it_claims(name):
    """Every cell of the master, demos included, runs; every check() in it passes; it prints
    and leaves true what its assignment.toml's [master_run] says."""
    import torch

    torch.set_num_threads(1)  # two test workers share two cores
    assignment = ASSIGNMENTS[name]
    namespace: dict = {}
    out = io.StringIO()
    with assignment.beside_files(), contextlib.redirect_stdout(out):
        for cell in master_of(name).cells:
            if cell.cell_type == "code":
                exec(cell.source, namespace)
    text = out.getvalue()
    assert "public checks passed" in text and "failed" not in text, text
    for expected in assignment.master_run.prints:
        assert expected in text, (expected, text)
    for claim in assignment.master_run.holds:
        assert eval(claim, {**namespace, "hidden": hidden_tests(name)}), (claim, text)
