"""Feedback for what real code gets wrong (issue 12, part 4): a wrong shape inside a numerical
gradient, and where a NaN or Inf usually comes from."""
from __future__ import annotations

import numpy as np
import pytest

from autograder.checks import CheckFailure, expect_array, expect_scalar, numeric_vjp

X = np.linspace(0.5, 2.0, 6).reshape(2, 3)
UP = np.ones((2, 3))


def test_a_correct_forward_gives_its_gradient():
    assert np.allclose(numeric_vjp(lambda v: 3 * v, [X], 0, UP), 3.0)
    assert np.allclose(numeric_vjp(lambda v: float(v.sum()), [X], 0, np.float64(1.0)), 1.0)


@pytest.mark.parametrize("forward, text", [
    (lambda v: v.sum(axis=0), "your forward returned (3,), expected an array of shape (2, 3)"),
    (lambda v: v.reshape(3, 2), "your forward returned (3, 2), expected an array of shape (2, 3)"),
    (lambda v: v.tolist(), "your forward returned list, expected an array of shape (2, 3)"),
])
def test_a_wrong_shape_is_said_not_broadcast(forward, text):
    with pytest.raises(CheckFailure, match=text.replace("(", r"\(").replace(")", r"\)")):
        numeric_vjp(forward, [X], 0, UP)


def test_non_finite_values_say_where_they_come_from():
    with np.errstate(all="ignore"):
        with pytest.raises(CheckFailure, match="log of a probability that underflowed"):
            numeric_vjp(lambda v: np.log(v - v), [X], 0, UP)
    with pytest.raises(CheckFailure, match=r"first at index \(1,\) \(inf\).*overflow"):
        expect_array(np.array([1.0, np.inf]), "scores")
    with pytest.raises(CheckFailure, match="inf - inf"):
        expect_array(np.array([np.nan, 1.0]), "dx")
    with pytest.raises(CheckFailure, match="expected a finite number.*overflow"):
        expect_scalar(float("inf"), "loss")


def test_trivial_reason_names_zeros_a_constant_or_an_input_returned():
    from autograder.checks import trivial_reason

    want, x = np.array([[1.0, -2.0], [0.5, 3.0]]), np.arange(4.0).reshape(2, 2)
    assert trivial_reason(np.zeros((2, 2)), want, {"x": x}) == "zeros"
    assert trivial_reason(np.full((2, 2), 7.0), want, {"x": x}) == "the same number everywhere"
    assert trivial_reason(x.copy(), want, {"x": x}) == "its input 'x' unchanged"
    assert trivial_reason(want * (1 + 1e-9), want, {"x": x}) == ""
    assert trivial_reason(np.zeros((2, 2)), np.zeros((2, 2)), {}) == ""  # the reference's too
