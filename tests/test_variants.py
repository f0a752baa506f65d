"""The convention variants corpus (issue 12, item 3): correct submissions written the way real
students write them earn full marks, not only the reference's way of writing them.

For each numpy assignment (hw1_backprop, hw2_conv, hw3_bptt), every file
``tests/variants/<assignment>/<style>.py`` implements every function and class the student
notebook leaves to the student, all in one style ("loops", "vectorised", "helpers": explicit
loops or einsum / tensordot / stride tricks, legacy ``np.random`` or ``default_rng``, update rules
in place or not, float32 0/1 intermediates, log-sum-exp or max-shift softmax, module constants,
helpers and classes of the student's own, tuple or dict caches, a loss looping over layers or
unrolled; each file's docstring lists its choices). ``tests/variants/build.py`` splices a style
into the released student notebook, and the real grader grades it: it must earn every point of
every hidden test. What this proves: the hidden tests accept whatever the contract
(ASSIGNMENTS.md and the notebook's own text) allows, and grading a notebook's definitions copes
with the module-level code such students write. A failure means a variant broke the contract
(fix the variant) or a hidden test demands more than the contract (fix the test or the contract,
never the variant to suit the test).

Full marks could also come from a variant that is only right on the hidden tests' inputs, so
each variant is also checked in process, against the reference, on what the hidden tests need
not try (tests/variants/contract.py): batches of one, read-only arguments, extreme inputs.
"""
from __future__ import annotations

import nbformat
import numpy as np
import pytest

from autograder.assignment import load_assignment, load_reference
from autograder.grade import grade_notebook
from variants.build import (ASSIGNMENTS, build_notebook, describe, student_notebook, stubs,
                            styles, write_notebook)
from variants.contract import CHECKS

CASES = [pytest.param(name, style, id=f"{name}-{style}")
         for name in ASSIGNMENTS for style in styles(name)]


@pytest.fixture(scope="module")
def assignments():
    return {name: load_assignment(name) for name in ASSIGNMENTS}


def test_every_assignment_has_several_styles():
    for name in ASSIGNMENTS:
        assert len(styles(name)) >= 3, name


@pytest.mark.parametrize("name, style", CASES)
def test_variant_is_the_student_notebook_with_every_stub_filled(name, style):
    built, released = build_notebook(name, style), student_notebook(name)
    nbformat.validate(built)
    changed = set(stubs(released).values())
    assert len(built.cells) == len(released.cells)
    for index, (new, old) in enumerate(zip(built.cells, released.cells, strict=True)):
        assert new.cell_type == old.cell_type
        if index in changed:
            assert "NotImplementedError" not in new.source, (index, new.source)
        else:
            assert new.source == old.source, f"cell {index} is not the student notebook's"


@pytest.mark.parametrize("name, style", CASES)
def test_variant_keeps_the_contract_rules(name, style, tmp_path, assignments):
    """In process, against the reference: N = 1, read-only arguments, the stated extremes."""
    path = write_notebook(name, style, tmp_path / f"{name}-{style}.ipynb")
    state = np.random.get_state()  # the legacy-seeding variants reseed numpy's global state
    try:
        variant = load_reference(path, f"variant_{name}_{style}")
        CHECKS[name](variant, assignments[name].reference)
    finally:
        np.random.set_state(state)


@pytest.mark.parametrize("name, style", CASES)
def test_variant_earns_full_marks(name, style, tmp_path, assignments):
    path = write_notebook(name, style, tmp_path / f"{name}-{style}.ipynb")
    run = grade_notebook(path, assignments[name])
    results = run.results
    lost = [t for t in results.tests if t.status != "passed" or t.score != t.max_score]
    report = "\n\n".join(f"- {t.name}: {t.score:g}/{t.max_score:g}\n{t.output}" for t in lost)
    assert len(results.tests) >= 15, results.output
    assert not lost and results.score == results.max_score, (
        f"{name} in the {style!r} style ({describe(name, style)}) earned "
        f"{results.score:g}/{results.max_score:g}; the tests that lost points:\n{report}\n"
        f"{results.output}")
    assert "GRADER ERROR" not in results.output, results.output
