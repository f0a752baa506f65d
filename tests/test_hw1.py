"""hw1_backprop: its public checks, its numpy-only rule and its feedback (the generic checks of
every assignment are in test_assignments.py; broken and hostile notebooks, graded against a
small target assignment, in test_corpus_bad_inputs.py and test_corpus_exploits.py)."""
from __future__ import annotations

import re

import nbformat

from autograder.assignment import load_assignment
from autograder.grade import grade_notebook
from conftest import make_notebook

ASSIGNMENT = load_assignment("hw1_backprop")
MASTER = nbformat.read(ASSIGNMENT.master, as_version=4)


def grade_cells(tmp_path, assignment, cells, name="submission.ipynb"):
    path = tmp_path / name
    nbformat.write(make_notebook(*cells), path)
    return grade_notebook(path, assignment)


def master_cells(transform=lambda src: src):
    return [transform(c.source) for c in MASTER.cells if c.cell_type == "code"]


# ---- public checks -------------------------------------------------------------------------


# ---- the numpy-only rule and feedback ------------------------------------------------------

def test_torch_import_is_refused_with_a_message(tmp_path):
    def use_torch(src):
        return src.replace("def relu_forward(x):",
                           "import torch\ndef relu_forward(x):\n    torch.zeros(1)", 1)

    run = grade_cells(tmp_path, ASSIGNMENT, master_cells(use_torch))
    assert "numpy only" in run.results.output
    relu = [t for t in run.results.tests if t.tags == ["relu_forward"]]
    assert relu and all(t.status == "failed" for t in relu)
    others = [t for t in run.results.tests
              if t.tags and all(tag.startswith("affine") for tag in t.tags)]
    assert others and all(t.status == "passed" for t in others)


def test_a_known_mistake_is_named_in_the_feedback(tmp_path):
    """A student whose db is averaged, not summed, is told what was compared, on what input,
    by how much it missed, and which known mistake it looks like; a student with an unknown
    mistake gets the numbers without a guess."""
    assignment = load_assignment("hw1_backprop")
    known = grade_cells(tmp_path, assignment, master_cells(
        lambda src: src.replace("db = dout.sum(axis=0)", "db = dout.mean(axis=0)")),
        name="known.ipynb")
    test = next(t for t in known.results.tests if t.name.startswith("affine_backward: dx, dw"))
    assert test.status == "failed"
    assert re.search(r"affine_backward db on .*\(\d+, \d+\).*largest relative error "
                     r"\d\.\d\de[+-]\d+ at index \(\d+,\)", test.output), test.output
    assert ("This looks like a known mistake: db looks like it was averaged over the batch "
            "instead of summed") in test.output
    unknown = grade_cells(tmp_path, assignment, master_cells(
        lambda src: src.replace("db = dout.sum(axis=0)", "db = 1.5 * dout.sum(axis=0)")),
        name="unknown.ipynb")
    test = next(t for t in unknown.results.tests if t.name.startswith("affine_backward: dx, dw"))
    assert test.status == "failed" and "largest relative error" in test.output
    assert "known mistake" not in test.output


# ---- the optimizer rule: w may be updated in place, dw is read-only -------------------------

def test_optimizers_may_update_w_in_place_but_never_dw(tmp_path):
    """ASSIGNMENTS.md: an optimizer may update ``w`` in place, provided it returns the updated
    array as ``next_w``; it never modifies ``dw``. Correct in-place update rules
    (``w -= lr * dw; return w, config``) get full marks; an sgd that scales ``dw`` in place loses
    exactly its non-mutation point."""
    def in_place(src):
        for old, new in (
                ('next_w = w - config["learning_rate"] * dw\n',
                 'w -= config["learning_rate"] * dw\n    next_w = w\n'),
                ("next_w = w + v", "w += v\n    next_w = w"),
                ('next_w = w - config["learning_rate"] * dw / (',
                 'w -= config["learning_rate"] * dw / ('),
                ('next_w = w - config["learning_rate"] * m_hat / (',
                 'w -= config["learning_rate"] * m_hat / (')):
            src = src.replace(old, new)
        # rmsprop and adam: their step now ends with the in-place update; return w itself.
        return src.replace("    # END SOLUTION\n    return next_w, config",
                           "    next_w = w\n    # END SOLUTION\n    return next_w, config")

    sources = master_cells(in_place)
    changed = "\n".join(sources)
    assert changed.count("w -= ") == 3 and "w += v" in changed
    run = grade_cells(tmp_path, ASSIGNMENT, sources, name="in_place.ipynb")
    optimizer_tests = [t for t in run.results.tests if t.name.startswith("optimizer:")]
    assert len(optimizer_tests) >= 14
    assert all(t.score == t.max_score for t in optimizer_tests), \
        [(t.name, t.output) for t in optimizer_tests if t.score < t.max_score]
    assert run.results.score == run.results.max_score

    def scales_dw(src):
        return src.replace('next_w = w - config["learning_rate"] * dw\n',
                           'dw *= config["learning_rate"]\n    next_w = w - dw\n', 1)

    run = grade_cells(tmp_path, ASSIGNMENT, master_cells(scales_dw), name="scales_dw.ipynb")
    lost = [t for t in run.results.tests if t.score < t.max_score]
    assert [t.name for t in lost] == ["optimizer: dw is left unchanged (w may be updated in "
                                      "place, returned as next_w) [sgd]"], \
        [(t.name, t.output) for t in lost]
    assert "modified its input 'dw' in place" in lost[0].output
