"""Public checks for hw2_conv, run in the student's notebook with ``check("name")``.

Only hand-computed values, invariants, numerical gradients and comparisons of the student's
fast functions with the student's own naive ones: no reference answers.
"""
import numpy as np

from autograder.checks import (CheckFailure, assert_close, assert_gradient, assert_params_gradients,
                               expect_array,
                               expect_scalar, expect_tuple, numeric_vjp)
from autograder.public import public_check


def _rng():
    return np.random.default_rng(1234)


def _conv_case(rng, x_shape, w_shape, stride, pad):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    return x, w, b, {"stride": stride, "pad": pad}


# Non-square input and kernel, stride 2, padding: the cases where mistakes show.
STRIDED = ((2, 2, 6, 5), (3, 2, 3, 2), 2, 1)  # out (2, 3, 3, 3)
SAME = ((2, 3, 5, 4), (2, 3, 3, 3), 1, 1)     # out (2, 2, 5, 4)


def _conv_gradients_numerical(impl, forward, backward):
    rng = _rng()
    x, w, b, conv_param = _conv_case(rng, *STRIDED)
    out, cache = expect_tuple(getattr(impl, forward)(x, w, b, conv_param), 2, forward)
    dout = rng.standard_normal(np.shape(out))
    grads = expect_tuple(getattr(impl, backward)(dout, cache), 3, backward)
    inputs = dict(x=x, w=w, b=b, stride=2, pad=1)
    for i, name in enumerate(("dx", "dw", "db")):
        numeric = numeric_vjp(lambda *a: getattr(impl, forward)(*a, conv_param)[0], [x, w, b], i,
                              dout)
        assert_gradient(grads[i], numeric, f"{backward} {name}", tol=1e-6, inputs=inputs)


@public_check("conv_forward_naive")
def conv_forward_by_hand(impl):
    """conv_forward_naive on tiny inputs computed by hand (no padding; padding and stride 2)"""
    x = np.arange(9.0).reshape(1, 1, 3, 3)  # x[i, j] = 3 i + j
    w = np.array([[[[1.0, 2.0], [0.0, -1.0]]]])
    out, _ = expect_tuple(impl.conv_forward_naive(x, w, np.array([0.5]),
                                                  {"stride": 1, "pad": 0}),
                          2, "conv_forward_naive")
    # out[i, j] = x[i, j] + 2 x[i, j + 1] - x[i + 1, j + 1] + 0.5: the kernel is not flipped
    assert_close(out, np.array([[[[-1.5, 0.5], [4.5, 6.5]]]]),
                 "conv_forward_naive out (2x2 kernel, stride 1, pad 0)", inputs=dict(x=x, w=w))
    ones = np.ones((1, 1, 3, 3))
    out, _ = expect_tuple(impl.conv_forward_naive(x, ones, np.zeros(1), {"stride": 2, "pad": 1}),
                          2, "conv_forward_naive")
    # Each output sums the 3x3 window around x[2i, 2j]; the padding zeros add nothing.
    assert_close(out, np.array([[[[8.0, 12.0], [20.0, 24.0]]]]),
                 "conv_forward_naive out (3x3 kernel of ones, stride 2, pad 1)", inputs=dict(x=x))


@public_check("conv_forward_naive")
def conv_forward_shape(impl):
    """conv_forward_naive: output shape (N, F, Ho, Wo) for a non-square input and kernel"""
    x, w, b, conv_param = _conv_case(_rng(), (2, 3, 10, 6), (4, 3, 3, 2), 2, 1)
    out, _ = expect_tuple(impl.conv_forward_naive(x, w, b, conv_param), 2, "conv_forward_naive")
    # Ho = 1 + (10 + 2 - 3) // 2 = 5, Wo = 1 + (6 + 2 - 2) // 2 = 4
    expect_array(out, "conv_forward_naive out", shape=(2, 4, 5, 4),
                 inputs=dict(x=x, w=w, b=b, stride=2, pad=1))


@public_check("conv_backward_naive")
def conv_backward_numerical(impl):
    """conv_backward_naive agrees with numerical gradients (stride 2, padding, non-square)"""
    _conv_gradients_numerical(impl, "conv_forward_naive", "conv_backward_naive")


@public_check("conv_backward_naive")
def conv_backward_no_padding(impl):
    """conv_backward_naive: dx has the shape of x when pad is 0"""
    x, w, b, conv_param = _conv_case(_rng(), (2, 2, 5, 4), (2, 2, 2, 2), 1, 0)
    out, cache = expect_tuple(impl.conv_forward_naive(x, w, b, conv_param), 2,
                              "conv_forward_naive")
    dx, _, _ = expect_tuple(impl.conv_backward_naive(np.ones(np.shape(out)), cache), 3,
                            "conv_backward_naive")
    expect_array(dx, "conv_backward_naive dx with pad 0", shape=x.shape)


@public_check("max_pool_forward_naive")
def max_pool_forward_by_hand(impl):
    """max_pool_forward_naive on a tiny input: 2x2 stride 2, and overlapping 3x2 stride 1"""
    x = np.array([[1.0, 5.0, 2.0, 0.0], [7.0, 3.0, 8.0, 4.0], [6.0, 9.0, 0.0, 2.0]])[None, None]
    cases = [((2, 2, 2), [[7.0, 8.0]]), ((3, 2, 1), [[9.0, 9.0, 8.0]])]
    for (ph, pw, stride), expected in cases:
        pool_param = {"pool_height": ph, "pool_width": pw, "stride": stride}
        out, _ = expect_tuple(impl.max_pool_forward_naive(x, pool_param), 2,
                              "max_pool_forward_naive")
        assert_close(out, np.array(expected)[None, None],
                     f"max_pool_forward_naive out ({ph}x{pw} windows, stride {stride})",
                     inputs=dict(x=x))


@public_check("max_pool_backward_naive")
def max_pool_backward_numerical(impl):
    """max_pool_backward_naive agrees with the numerical gradient (overlapping 3x2 windows)"""
    rng = _rng()
    x = (rng.permutation(60) + 0.5).reshape(2, 2, 5, 3) / 60.0  # distinct: no ties
    pool_param = {"pool_height": 3, "pool_width": 2, "stride": 1}
    out, cache = expect_tuple(impl.max_pool_forward_naive(x, pool_param), 2,
                              "max_pool_forward_naive")
    dout = rng.standard_normal(np.shape(out))
    dx = impl.max_pool_backward_naive(dout, cache)
    numeric = numeric_vjp(lambda v: impl.max_pool_forward_naive(v, pool_param)[0], [x], 0, dout)
    assert_gradient(dx, numeric, "max_pool_backward_naive dx", tol=1e-7, inputs=dict(x=x))
    total = float(np.sum(dx))
    if not np.isclose(total, float(dout.sum())):
        raise CheckFailure(f"max_pool_backward_naive: sum(dx) = {total:.6g} but sum(dout) = "
                           f"{float(dout.sum()):.6g}; every window's gradient must land once")


@public_check("conv_forward_fast")
def conv_forward_fast_matches_naive(impl):
    """conv_forward_fast gives the same output as your conv_forward_naive"""
    rng = _rng()
    for case in (SAME, STRIDED):
        x, w, b, conv_param = _conv_case(rng, *case)
        out, _ = expect_tuple(impl.conv_forward_fast(x, w, b, conv_param), 2,
                              "conv_forward_fast")
        naive, _ = impl.conv_forward_naive(x, w, b, conv_param)
        assert_close(out, naive, "conv_forward_fast out vs your conv_forward_naive",
                     inputs=dict(x=x, w=w, b=b, stride=case[2], pad=case[3]))


@public_check("conv_backward_fast")
def conv_backward_fast_numerical(impl):
    """conv_backward_fast agrees with numerical gradients (stride 2, padding, non-square)"""
    _conv_gradients_numerical(impl, "conv_forward_fast", "conv_backward_fast")


@public_check("conv_backward_fast")
def conv_backward_fast_matches_naive(impl):
    """conv_backward_fast gives the same gradients as your conv_backward_naive"""
    rng = _rng()
    x, w, b, conv_param = _conv_case(rng, *SAME)
    out, cache = expect_tuple(impl.conv_forward_fast(x, w, b, conv_param), 2,
                              "conv_forward_fast")
    dout = rng.standard_normal(np.shape(out))
    grads = expect_tuple(impl.conv_backward_fast(dout, cache), 3, "conv_backward_fast")
    _, naive_cache = impl.conv_forward_naive(x, w, b, conv_param)
    naive = impl.conv_backward_naive(dout, naive_cache)
    for name, got, want in zip(("dx", "dw", "db"), grads, naive, strict=True):
        assert_close(got, want, f"conv_backward_fast {name} vs your conv_backward_naive",
                     inputs=dict(x=x, w=w, b=b, dout=dout))


@public_check("ConvNet")
def convnet_scores_shape(impl):
    """ConvNet: scores of shape (N, num_classes); the initial loss is about log(num_classes)"""
    rng = _rng()
    net = impl.ConvNet(num_filters=4, filter_size=5, hidden_dim=10, num_classes=6,
                       weight_scale=1e-3, seed=0)
    X = rng.uniform(0, 1, (5, 1, 8, 8))
    expect_array(net.loss(X), "ConvNet scores", shape=(5, 6))
    loss, _ = expect_tuple(net.loss(X, np.arange(5) % 6), 2, "ConvNet.loss")
    loss = expect_scalar(loss, "ConvNet loss")
    if abs(loss - np.log(6)) > 0.01:
        raise CheckFailure(f"with tiny weights every class is equally likely, so the loss should "
                           f"be close to log(6) = {np.log(6):.4f}; got {loss:.4f}")


@public_check("ConvNet")
def convnet_gradients(impl):
    """ConvNet gradients agree with numerical gradients (reg > 0)"""
    rng = _rng()
    net = impl.ConvNet(num_filters=2, filter_size=3, hidden_dim=5, num_classes=3,
                       weight_scale=0.5, reg=0.2, seed=0)
    for key in ("b1", "b2", "b3"):  # non-zero biases, so a missing bias gradient shows
        net.params[key] = 0.1 * rng.standard_normal(net.params[key].shape)
    X, y = rng.standard_normal((3, 1, 8, 8)), np.array([0, 2, 1])
    _, grads = expect_tuple(net.loss(X, y), 2, "ConvNet.loss")
    assert_params_gradients(net, X, y, grads, tol=1e-6)
