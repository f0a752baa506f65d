"""Public checks for hw1_backprop, run in the student's notebook with ``check("name")``.

Only invariants, hand-computable values and numerical gradients: no reference answers.
"""
import numpy as np

from autograder.checks import (CheckFailure, assert_close, assert_gradient, assert_params_gradients,
                               expect_array,
                               expect_scalar, expect_tuple, numeric_gradient, numeric_vjp)
from autograder.public import public_check


def _rng():
    return np.random.default_rng(1234)


@public_check("affine_forward")
def affine_forward_by_hand(impl):
    """affine_forward on a tiny input computed by hand"""
    x = np.array([[[1.0, 2.0]], [[0.0, -1.0]]])  # (2, 1, 2) flattens to (2, 2)
    w = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    b = np.array([0.5, -0.5, 0.0])
    out, _ = expect_tuple(impl.affine_forward(x, w, b), 2, "affine_forward")
    expected = np.array([[1.5, 1.5, 0.0], [0.5, -1.5, 1.0]])
    assert_close(out, expected, "affine_forward out", inputs=dict(x=x, w=w, b=b))


@public_check("affine_backward")
def affine_backward_numerical(impl):
    """affine_backward agrees with numerical gradients of affine_forward"""
    rng = _rng()
    x, w, b = rng.standard_normal((3, 2, 2)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    dout = rng.standard_normal((3, 5))
    _, cache = expect_tuple(impl.affine_forward(x, w, b), 2, "affine_forward")
    grads = expect_tuple(impl.affine_backward(dout, cache), 3, "affine_backward")
    for i, name in enumerate(("dx", "dw", "db")):
        numeric = numeric_vjp(lambda *a: impl.affine_forward(*a)[0], [x, w, b], i, dout)
        assert_gradient(grads[i], numeric, f"affine_backward {name}", tol=1e-7,
                        inputs=dict(x=x, w=w, b=b))


@public_check("relu_forward")
def relu_forward_by_hand(impl):
    """relu_forward zeroes the negatives"""
    x = np.array([[-1.0, 0.5], [2.0, -0.1]])
    out, _ = expect_tuple(impl.relu_forward(x), 2, "relu_forward")
    assert_close(out, np.array([[0.0, 0.5], [2.0, 0.0]]), "relu_forward out", inputs=dict(x=x))


@public_check("relu_backward")
def relu_backward_numerical(impl):
    """relu_backward agrees with the numerical gradient"""
    rng = _rng()
    x = rng.standard_normal((4, 3)) + 0.01
    dout = rng.standard_normal((4, 3))
    _, cache = expect_tuple(impl.relu_forward(x), 2, "relu_forward")
    numeric = numeric_vjp(lambda v: impl.relu_forward(v)[0], [x], 0, dout)
    assert_gradient(impl.relu_backward(dout, cache), numeric, "relu_backward dx", tol=1e-7)


@public_check("softmax_loss")
def softmax_uniform_logits(impl):
    """softmax_loss of equal logits is log(C)"""
    x = np.zeros((4, 10))
    loss, _ = expect_tuple(impl.softmax_loss(x, np.arange(4)), 2, "softmax_loss")
    assert_close(expect_scalar(loss, "loss"), np.log(10.0), "softmax_loss loss of zero logits")


@public_check("softmax_loss")
def softmax_gradient(impl):
    """softmax_loss dx agrees with the numerical gradient"""
    rng = _rng()
    x, y = rng.standard_normal((5, 4)), np.array([0, 3, 1, 2, 3])
    _, dx = expect_tuple(impl.softmax_loss(x, y), 2, "softmax_loss")
    numeric = numeric_gradient(lambda v: float(impl.softmax_loss(v, y)[0]), x)
    assert_gradient(dx, numeric, "softmax_loss dx", tol=1e-6)


@public_check("softmax_loss")
def softmax_large_logits(impl):
    """softmax_loss stays finite for logits of +-1000"""
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]])
    loss, dx = expect_tuple(impl.softmax_loss(x, np.array([0, 1])), 2, "softmax_loss")
    expect_scalar(loss, "softmax_loss loss at logits of +-1000")
    expect_array(dx, "softmax_loss dx at logits of +-1000", shape=x.shape)


@public_check("FullyConnectedNet")
def net_gradients(impl):
    """FullyConnectedNet gradients agree with numerical gradients (reg > 0)"""
    rng = _rng()
    net = impl.FullyConnectedNet([5], input_dim=4, num_classes=3, weight_scale=0.5, reg=0.2,
                                 seed=0)
    X, y = rng.standard_normal((3, 4)), np.array([0, 1, 2])
    _, grads = expect_tuple(net.loss(X, y), 2, "FullyConnectedNet.loss")
    assert_params_gradients(net, X, y, grads, tol=1e-6)


@public_check("sgd")
def sgd_step(impl):
    """sgd takes one step of size learning_rate * dw"""
    w, dw = np.ones(3), np.array([1.0, -2.0, 0.0])
    next_w, _ = expect_tuple(impl.sgd(w, dw, {"learning_rate": 0.5}), 2, "sgd")
    assert_close(next_w, np.array([0.5, 2.0, 1.0]), "sgd next_w")


@public_check("sgd_momentum")
def momentum_two_steps(impl):
    """sgd_momentum: two steps with a constant gradient"""
    w, dw = np.zeros(2), np.ones(2)
    w1, config = expect_tuple(impl.sgd_momentum(w, dw, {"learning_rate": 1.0, "momentum": 0.5}),
                              2, "sgd_momentum")
    w2, _ = expect_tuple(impl.sgd_momentum(w1, dw, config), 2, "sgd_momentum")
    assert_close(w2, np.array([-2.5, -2.5]), "sgd_momentum w after two steps")


@public_check("rmsprop")
def rmsprop_first_step(impl):
    """rmsprop: the first step has size lr / sqrt(1 - decay_rate)"""
    w, dw = np.zeros(2), np.array([2.0, -2.0])
    w1, config = expect_tuple(impl.rmsprop(w, dw, {"learning_rate": 0.1, "decay_rate": 0.75}),
                              2, "rmsprop")
    assert_close(w1, np.array([-0.2, 0.2]), "rmsprop w after one step")
    if "cache" not in config:
        raise CheckFailure("rmsprop should keep its running average in config['cache']")


@public_check("adam")
def adam_first_step(impl):
    """adam: with bias correction the first step has size learning_rate"""
    w, dw = np.zeros(3), np.array([3.0, -0.5, 1e-3])
    w1, config = expect_tuple(impl.adam(w, dw, {"learning_rate": 0.1}), 2, "adam")
    assert_close(w1, -0.1 * np.sign(dw), "adam w after one step", tol=1e-4)
    if config.get("t") != 1:
        raise CheckFailure(f"after one step config['t'] should be 1, got {config.get('t')!r}")
