"""hw2_conv: what the generic checks in test_assignments.py cannot see, chiefly the speed test
(a correct but slow "fast" convolution must lose the speed points and nothing else)."""
from __future__ import annotations

import nbformat

from autograder.assignment import load_assignment
from autograder.grade import grade_notebook
from conftest import make_notebook

ASSIGNMENT = load_assignment("hw2_conv")
MASTER = nbformat.read(ASSIGNMENT.master, as_version=4)
SPEED_TESTS = ("conv_forward_fast: equals the naive version", "conv_backward_fast: equals the "
               "naive version")


def master_cells(transform=lambda src: src):
    return [transform(c.source) for c in MASTER.cells if c.cell_type == "code"]



def test_a_slow_fast_convolution_loses_only_the_speed_points(tmp_path):
    """The "fast" functions are the loop-per-output naive ones (correct, ~100x too slow).

    The ConvNet keeps a vectorised convolution under another name, so training stays quick,
    and pools with the naive max pool, which the notebook says is allowed: that must cost
    nothing either.
    """
    def slow(src):
        src = src.replace("def conv_forward_fast(", "def vectorised_conv_forward(")
        src = src.replace("def conv_backward_fast(", "def vectorised_conv_backward(")
        src = src.replace("= conv_forward_fast(X", "= vectorised_conv_forward(X")
        src = src.replace("= conv_backward_fast(dh", "= vectorised_conv_backward(dh")
        src = src.replace("max_pool_forward_fast(h, pool_param)",
                          "max_pool_forward_naive(h, pool_param)")
        return src.replace("max_pool_backward_fast(dh, pool_cache)",
                           "max_pool_backward_naive(dh, pool_cache)")

    cells = master_cells(slow) + [
        "def conv_forward_fast(x, w, b, conv_param):\n"
        "    return conv_forward_naive(x, w, b, conv_param)\n\n\n"
        "def conv_backward_fast(dout, cache):\n"
        "    return conv_backward_naive(dout, cache)\n"]
    # Both definitions and both uses renamed, both pooling calls swapped.
    assert sum(c.count("vectorised_conv_") for c in cells) == 4
    assert sum(c.count("max_pool_forward_naive(h,") for c in cells) == 1
    assert sum(c.count("max_pool_backward_naive(dh,") for c in cells) == 1
    path = tmp_path / "slow.ipynb"
    nbformat.write(make_notebook(*cells), path)
    results = grade_notebook(path, ASSIGNMENT).results
    for test in results.tests:
        if test.name.startswith(SPEED_TESTS):
            assert test.score == test.max_score / 2, (test.name, test.output)
            assert "[speed]" in test.output and "10x faster" in test.output
            assert "[values]" not in test.output
        else:
            assert test.status == "passed", (test.name, test.output)
    assert sum(t.name.startswith(SPEED_TESTS) for t in results.tests) == 2


GATE_NOTE = "this property is checked only for a function that computes something"


def test_functions_that_compute_nothing_earn_nothing(tmp_path):
    """Issue 13: every contract function returns zeros of the right shapes, and the ConvNet
    keeps a correct initialisation but its loss is 0 with zero gradients. The self-consistency
    tests (numerical gradients of your own forward, adjoint identities) hold for zeros; their
    gates must refuse them, with a message that says why. Only the initialisation, which is
    real work, earns its points."""
    nulls = ["conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive",
             "max_pool_backward_naive", "conv_forward_fast", "conv_backward_fast"]
    zeros = "".join(
        f"_ref_{name} = {name}\n"
        f"def {name}(*args):\n"
        f"    return _zeros_like(_ref_{name}(*args))\n\n" for name in nulls)
    cells = master_cells() + [
        "def _zeros_like(value):\n"
        "    if isinstance(value, tuple):\n"
        "        return tuple(_zeros_like(v) for v in value)\n"
        "    if isinstance(value, np.ndarray):\n"
        "        return np.zeros_like(value)\n"
        "    return value\n\n" + zeros,
        "class ConvNet(ConvNet):\n"
        "    def loss(self, X, y=None):\n"
        "        scores = np.zeros((X.shape[0], self.params['W3'].shape[1]))\n"
        "        if y is None:\n"
        "            return scores\n"
        "        return 0.0, {k: np.zeros_like(v) for k, v in self.params.items()}\n"]
    path = tmp_path / "nothing.ipynb"
    nbformat.write(make_notebook(*cells), path)
    results = grade_notebook(path, ASSIGNMENT, diagnose=False).results
    gated = ("conv backward: agrees with numerical", "conv: adjoint identities",
             "max_pool_backward_naive: against the reference",
             "ConvNet: gradients agree with numerical")
    for test in results.tests:
        if test.name.startswith("ConvNet: parameter names"):
            assert test.status == "passed", (test.name, test.output)
            continue
        assert test.score == 0, (test.name, test.output)
        if test.name.startswith(gated):
            assert GATE_NOTE in test.output, (test.name, test.output)
    assert sum(t.name.startswith(gated) for t in results.tests) == 9
