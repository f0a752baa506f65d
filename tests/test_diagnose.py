"""Naming known mistakes from a test's own outcome (``Diagnoser.explain_outcome``, the
``known_mistakes`` fixture): for tests whose calls the engine cannot replay."""
from __future__ import annotations

import types

import numpy as np

from autograder.assignment import load_assignment
from autograder.diagnose import Diagnoser, dicts_close

HW1 = load_assignment("hw1_backprop")
RNG = np.random.default_rng(0)
X, W, B, DOUT = (RNG.standard_normal(s) for s in ((4, 3), (3, 5), (5,), (4, 5)))


def db_of(module):
    _, cache = module.affine_forward(X, W, B)
    return {"db": module.affine_backward(DOUT, cache)[2]}


def test_the_mistake_that_explains_the_outcome_is_named():
    observed = {"db": DOUT.mean(axis=0)}
    assert Diagnoser(HW1).explain_outcome("affine_backward", db_of, observed,
                                          dicts_close(1e-9)) == \
        ["db looks like it was averaged over the batch instead of summed"]


def test_a_right_outcome_or_an_unknown_one_names_nothing():
    diagnoser = Diagnoser(HW1)
    assert diagnoser.explain_outcome("affine_backward", db_of, {"db": DOUT.sum(axis=0)},
                                     dicts_close(1e-9)) == []
    assert diagnoser.explain_outcome("affine_backward", db_of, {"db": 3 * DOUT.sum(axis=0)},
                                     dicts_close(1e-9)) == []
    # Only the mistakes of the function named are tried.
    assert diagnoser.explain_outcome("relu_backward", db_of, {"db": DOUT.mean(axis=0)},
                                     dicts_close(1e-9)) == []


def test_without_mutants_file_nothing_is_named(tmp_path):
    """The release zip ships no mutants.py: tests then name no mistake, and do not fail."""
    stand_in = types.SimpleNamespace(mutants_file=tmp_path / "mutants.py", master=HW1.master,
                                     reference=HW1.reference)
    assert Diagnoser(stand_in).explain_outcome("affine_backward", db_of,
                                               {"db": DOUT.mean(axis=0)}, dicts_close(1e-9)) == []


def test_dicts_close():
    match = dicts_close(1e-6)
    a = {"w": np.array([1.0, 2.0]), "losses": np.array([np.nan, 3.0])}
    assert match(a, {"w": np.array([1.0, 2.0 + 1e-9]), "losses": np.array([np.nan, 3.0])})
    assert not match(a, {"w": np.array([1.0, 2.1]), "losses": np.array([np.nan, 3.0])})
    assert not match(a, {"w": np.array([1.0, 2.0]), "losses": np.array([1.0, 3.0])})  # NaN
    assert not match(a, {"w": np.array([1.0, 2.0]), "losses": np.array([np.nan])})  # shape
    assert not match(a, {"w": np.array([1.0, 2.0])})  # keys


def test_a_mistake_that_crashes_is_named_by_the_same_crash(tmp_path):
    """Wo computed from H: on an input wider than high the student's conv_forward_naive raises
    numpy's broadcast error; the known mistake that raises the same error on the same inputs
    is named, and the mistake that raises another one (window axes swapped) is not."""
    import nbformat

    from autograder.assignment import load_assignment
    from autograder.grade import grade_notebook
    from autograder.mutants import apply_to_notebook, load_mutants

    assignment = load_assignment("hw2_conv")
    mutants = {m.name: m for m in load_mutants(assignment.mutants_file)}
    path = tmp_path / "square.ipynb"
    nbformat.write(apply_to_notebook(nbformat.read(assignment.master, as_version=4),
                                     mutants["conv_output_width_from_height"]), path)
    run = grade_notebook(path, assignment,
                         only=["tests/test_hw2_conv.py::test_conv_forward_values"])
    failed = [t for t in run.results.tests if t.status == "failed"]
    assert failed and all("raised ValueError" in t.output for t in failed)
    assert mutants["conv_output_width_from_height"].diagnosis in failed[0].output
    assert mutants["conv_window_height_width_swapped"].diagnosis not in failed[0].output
