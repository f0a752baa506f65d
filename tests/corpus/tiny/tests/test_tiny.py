"""Hidden tests of the corpus target: 3 + 2 + 3 = 8 points, each function graded alone."""
import numpy as np
import pytest

from autograder.checks import assert_close, expect_tuple


@pytest.mark.points(3)
@pytest.mark.covers("affine_forward")
def test_affine_forward(student, reference, rng):
    """affine_forward: output values"""
    x, w, b = rng.standard_normal((4, 3, 2)), rng.standard_normal((6, 5)), rng.standard_normal(5)
    out, _ = expect_tuple(student.affine_forward(x, w, b), 2, "affine_forward")
    assert_close(out, reference.affine_forward(x, w, b)[0], "affine_forward out",
                 inputs=dict(x=x, w=w, b=b))


@pytest.mark.points(2)
@pytest.mark.covers("relu_forward")
def test_relu_forward(student, reference, rng):
    """relu_forward: output values"""
    x = rng.standard_normal((3, 4))
    x[0, 0] = 0.0
    out, _ = expect_tuple(student.relu_forward(x), 2, "relu_forward")
    assert_close(out, reference.relu_forward(x)[0], "relu_forward out", inputs=dict(x=x))


@pytest.mark.points(3)
@pytest.mark.partial
@pytest.mark.covers("softmax_loss")
def test_softmax_loss(student, reference, rng, partial):
    """softmax_loss: loss and dx"""
    x = rng.standard_normal((5, 4))
    y = np.array([0, 3, 1, 2, 3])
    loss, dx = expect_tuple(student.softmax_loss(x, y), 2, "softmax_loss")
    ref_loss, ref_dx = reference.softmax_loss(x, y)
    with partial.part("loss", weight=1):
        assert_close(loss, ref_loss, "softmax_loss loss", inputs=dict(x=x, y=y))
    with partial.part("dx", weight=2):
        assert_close(dx, ref_dx, "softmax_loss dx", inputs=dict(x=x, y=y))
