"""Public checks for hw6_regularization, run in the student's notebook with ``check("name")``.

Only invariants, hand-computable values and numerical gradients: no reference answers.
"""
import numpy as np

from autograder.checks import (CheckFailure, assert_close, assert_gradient,
                               assert_params_gradients, expect_array, expect_scalar,
                               expect_tuple, numeric_gradient, numeric_vjp)
from autograder.public import public_check


def _rng():
    return np.random.default_rng(1234)


def _first(result, what):
    return expect_tuple(result, 2, what)[0]


# ---- dropout ------------------------------------------------------------------------------------

@public_check("dropout_forward")
def dropout_test_mode_is_the_identity(impl):
    """dropout_forward in test mode returns x"""
    x = _rng().standard_normal((3, 4))
    out = _first(impl.dropout_forward(x, 0.3, "test", np.random.default_rng(0)),
                 "dropout_forward")
    assert_close(out, x, "dropout_forward out in test mode")


@public_check("dropout_forward")
def dropout_mask_of_the_contract(impl):
    """dropout_forward keeps exactly the entries where rng.random(x.shape) >= p, scaled"""
    x = _rng().standard_normal((5, 6)) + 3.0
    p = 0.3
    out = _first(impl.dropout_forward(x, p, "train", np.random.default_rng(7)),
                 "dropout_forward")
    out = expect_array(out, "dropout_forward out", shape=x.shape)
    uniform = np.random.default_rng(7).random(x.shape)
    assert_close(out, np.where(uniform >= p, x / (1 - p), 0.0),
                 "dropout_forward out (train mode, p = 0.3, generator seeded 7)")


@public_check("dropout_forward")
def dropout_statistics(impl):
    """dropout_forward on 10000 ones: about a fraction p dropped, the rest equal to 1 / (1 - p)"""
    x, p = np.ones((100, 100)), 0.2
    out = _first(impl.dropout_forward(x, p, "train", np.random.default_rng(1)),
                 "dropout_forward")
    out = expect_array(out, "dropout_forward out", shape=x.shape)
    kept = out != 0
    if abs((1 - kept.mean()) - p) > 0.02:
        raise CheckFailure(f"dropout_forward dropped a fraction {1 - kept.mean():.3f} of the "
                           f"entries with p = {p}: p is the probability of dropping an entry")
    if not np.allclose(out[kept], 1 / (1 - p)):
        raise CheckFailure("the kept entries of an input of ones should equal 1 / (1 - p) = "
                           f"{1 / (1 - p):.4g} (inverted dropout)")


@public_check("dropout_backward")
def dropout_backward_numerical(impl):
    """dropout_backward agrees with the numerical gradient of dropout_forward (fixed seed)"""
    rng = _rng()
    x, dout, p = rng.standard_normal((4, 5)), rng.standard_normal((4, 5)), 0.4

    def forward(v):
        return _first(impl.dropout_forward(v, p, "train", np.random.default_rng(3)),
                      "dropout_forward")

    _, cache = expect_tuple(impl.dropout_forward(x, p, "train", np.random.default_rng(3)), 2,
                            "dropout_forward")
    numeric = numeric_vjp(forward, [x], 0, dout)
    assert_gradient(impl.dropout_backward(dout, cache), numeric, "dropout_backward dx", tol=1e-7)
    _, cache = expect_tuple(impl.dropout_forward(x, p, "test", np.random.default_rng(3)), 2,
                            "dropout_forward")
    assert_close(impl.dropout_backward(dout, cache), dout, "dropout_backward dx in test mode")


# ---- batch normalization ------------------------------------------------------------------------

@public_check("batchnorm_forward")
def batchnorm_train_output_statistics(impl):
    """batchnorm_forward in train mode: each output feature has mean beta and std gamma"""
    x = 3.0 * _rng().standard_normal((200, 4)) + 5.0
    gamma, beta = np.array([1.0, 2.0, 0.5, 3.0]), np.array([0.0, -1.0, 2.0, 0.5])
    out = _first(impl.batchnorm_forward(x, gamma, beta, {"mode": "train"}), "batchnorm_forward")
    out = expect_array(out, "batchnorm_forward out", shape=x.shape)
    assert_close(out.mean(axis=0), beta, "the mean of each output feature", tol=1e-6)
    assert_close(out.std(axis=0), gamma, "the standard deviation of each output feature",
                 tol=1e-5)


@public_check("batchnorm_forward")
def batchnorm_running_statistics_by_hand(impl):
    """batchnorm_forward: after one train call from the defaults, running_mean = 0.1 * mean"""
    x = _rng().standard_normal((6, 3)) + 1.0
    bn_param = {"mode": "train"}
    impl.batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    for key, expected in (("running_mean", 0.1 * x.mean(axis=0)),
                          ("running_var", 0.9 + 0.1 * x.var(axis=0))):
        if key not in bn_param:
            raise CheckFailure(f"after a train call, bn_param has no {key!r}: store the updated "
                               "running statistics in bn_param")
        assert_close(bn_param[key], expected, f"bn_param[{key!r}] after one train call "
                     "(momentum 0.9, starting from zeros and ones)")


@public_check("batchnorm_forward")
def batchnorm_test_mode_by_hand(impl):
    """batchnorm_forward in test mode normalises with the running statistics"""
    x = _rng().standard_normal((4, 2))
    bn_param = {"mode": "test", "running_mean": np.array([1.0, -1.0]),
                "running_var": np.array([4.0, 0.25]), "eps": 0.0}
    out = _first(impl.batchnorm_forward(x, np.array([2.0, 1.0]), np.array([0.0, 3.0]),
                                        bn_param), "batchnorm_forward")
    expected = np.stack([2.0 * (x[:, 0] - 1.0) / 2.0, (x[:, 1] + 1.0) / 0.5 + 3.0], axis=1)
    assert_close(out, expected, "batchnorm_forward out in test mode (eps = 0)")


def _norm_gradients(impl, name, param, shape):
    rng = _rng()
    x = 2.0 * rng.standard_normal(shape) + 1.0
    gamma, beta = rng.uniform(0.5, 1.5, shape[1]), rng.standard_normal(shape[1])
    dout = rng.standard_normal(shape)
    forward, backward = getattr(impl, f"{name}_forward"), getattr(impl, f"{name}_backward")
    _, cache = expect_tuple(forward(x, gamma, beta, dict(param)), 2, f"{name}_forward")
    grads = expect_tuple(backward(dout, cache), 3, f"{name}_backward")
    for i, label in enumerate(("dx", "dgamma", "dbeta")):
        numeric = numeric_vjp(lambda *a: _first(forward(*a, dict(param)), f"{name}_forward"),
                              [x, gamma, beta], i, dout)
        assert_gradient(grads[i], numeric, f"{name}_backward {label}", tol=1e-6)


@public_check("batchnorm_backward")
def batchnorm_backward_numerical(impl):
    """batchnorm_backward agrees with numerical gradients of batchnorm_forward (train mode)"""
    _norm_gradients(impl, "batchnorm", {"mode": "train"}, (5, 3))


@public_check("batchnorm_backward")
def batchnorm_backward_columns_sum_to_zero(impl):
    """batchnorm_backward: every column of dx sums to zero"""
    rng = _rng()
    x, dout = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    _, cache = expect_tuple(impl.batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "train"}),
                            2, "batchnorm_forward")
    dx = expect_array(expect_tuple(impl.batchnorm_backward(dout, cache), 3,
                                   "batchnorm_backward")[0], "batchnorm_backward dx",
                      shape=x.shape)
    if np.max(np.abs(dx.sum(axis=0))) > 1e-9 * np.abs(dx).sum():
        raise CheckFailure(f"the columns of dx sum to {dx.sum(axis=0)}, not zero: the gradient "
                           "must also flow through the batch mean and variance")


# ---- layer normalization ------------------------------------------------------------------------

@public_check("layernorm_forward")
def layernorm_rows_normalised(impl):
    """layernorm_forward with gamma = 1, beta = 0: every row has mean 0 and std 1 (also N = 1)"""
    for shape in ((4, 50), (1, 50)):
        x = 3.0 * _rng().standard_normal(shape) - 2.0
        out = _first(impl.layernorm_forward(x, np.ones(50), np.zeros(50), {}),
                     "layernorm_forward")
        out = expect_array(out, "layernorm_forward out", shape=shape)
        means = out.mean(axis=1)
        if np.max(np.abs(means)) > 1e-8:
            raise CheckFailure(f"the output rows have means {means[:4]}, expected 0: normalise "
                               "each example over its features (axis 1)")
        assert_close(out.std(axis=1), np.ones(shape[0]), "the std of each output row", tol=1e-5)


@public_check("layernorm_backward")
def layernorm_backward_numerical(impl):
    """layernorm_backward agrees with numerical gradients of layernorm_forward"""
    _norm_gradients(impl, "layernorm", {}, (3, 5))


# ---- label smoothing ----------------------------------------------------------------------------

@public_check("softmax_loss_smoothed")
def smoothed_loss_of_zero_logits(impl):
    """softmax_loss_smoothed of equal logits is log(C), whatever epsilon"""
    for epsilon in (0.0, 0.2):
        loss, _ = expect_tuple(impl.softmax_loss_smoothed(np.zeros((4, 10)), np.arange(4),
                                                          epsilon), 2, "softmax_loss_smoothed")
        assert_close(expect_scalar(loss, "loss"), np.log(10.0),
                     f"softmax_loss_smoothed loss of zero logits (epsilon = {epsilon})")


@public_check("softmax_loss_smoothed")
def smoothed_loss_at_its_target(impl):
    """softmax_loss_smoothed: scores whose softmax is the smoothed target give dx = 0"""
    # C = 2, epsilon = 0.5: the target of label 1 is (0.25, 0.75), the softmax of (0, log 3).
    x = np.array([[0.0, np.log(3.0)]])
    loss, dx = expect_tuple(impl.softmax_loss_smoothed(x, np.array([1]), 0.5), 2,
                            "softmax_loss_smoothed")
    entropy = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    assert_close(expect_scalar(loss, "loss"), entropy, "softmax_loss_smoothed loss (N = 1)")
    dx = expect_array(dx, "softmax_loss_smoothed dx", shape=x.shape)
    if np.max(np.abs(dx)) > 1e-12:
        raise CheckFailure(f"dx is {dx}, expected zeros: the softmax equals the smoothed target")


@public_check("softmax_loss_smoothed")
def smoothed_loss_gradient(impl):
    """softmax_loss_smoothed dx agrees with the numerical gradient"""
    x, y = _rng().standard_normal((5, 4)), np.array([0, 3, 1, 2, 3])
    _, dx = expect_tuple(impl.softmax_loss_smoothed(x, y, 0.1), 2, "softmax_loss_smoothed")
    numeric = numeric_gradient(lambda v: float(impl.softmax_loss_smoothed(v, y, 0.1)[0]), x)
    assert_gradient(dx, numeric, "softmax_loss_smoothed dx", tol=1e-6)


@public_check("softmax_loss_smoothed")
def smoothed_loss_large_logits(impl):
    """softmax_loss_smoothed stays finite for logits of +-1000"""
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]])
    loss, dx = expect_tuple(impl.softmax_loss_smoothed(x, np.array([0, 1]), 0.1), 2,
                            "softmax_loss_smoothed")
    expect_scalar(loss, "softmax_loss_smoothed loss at logits of +-1000")
    expect_array(dx, "softmax_loss_smoothed dx at logits of +-1000", shape=x.shape)


# ---- dropout as a ridge penalty -----------------------------------------------------------------

@public_check("dropout_ridge_penalty")
def ridge_penalty_by_hand(impl):
    """dropout_ridge_penalty on a 2 x 2 example computed by hand"""
    X = np.array([[1.0, 2.0], [3.0, 0.0]])  # diag(X^T X) = (10, 4)
    for p, expected in ((0.5, [10.0, 4.0]), (0.2, [2.5, 1.0])):
        assert_close(impl.dropout_ridge_penalty(X, p), np.array(expected),
                     f"dropout_ridge_penalty (p = {p})")


# ---- FullyConnectedNet --------------------------------------------------------------------------

@public_check("FullyConnectedNet")
def net_parameters(impl):
    """FullyConnectedNet with batchnorm: W, b, gamma (ones) and beta (zeros) of each layer"""
    net = impl.FullyConnectedNet([5, 4], input_dim=3, num_classes=2, normalization="batchnorm",
                                 seed=0)
    expected = {"W1": (3, 5), "b1": (5,), "gamma1": (5,), "beta1": (5,), "W2": (5, 4),
                "b2": (4,), "gamma2": (4,), "beta2": (4,), "W3": (4, 2), "b3": (2,)}
    if sorted(net.params) != sorted(expected):
        raise CheckFailure(f"params keys are {sorted(net.params)}, expected {sorted(expected)}")
    for key, shape in expected.items():
        value = expect_array(net.params[key], f"params[{key!r}]", shape=shape)
        if key.startswith("gamma") and np.any(value != 1):
            raise CheckFailure(f"params[{key!r}] should start at one")


@public_check("FullyConnectedNet")
def net_layernorm_gradients(impl):
    """FullyConnectedNet with layernorm: gradients agree with numerical gradients (reg > 0)"""
    net = impl.FullyConnectedNet([5], input_dim=4, num_classes=3, normalization="layernorm",
                                 weight_scale=0.5, reg=0.2, seed=0)
    X, y = _rng().standard_normal((3, 4)), np.array([0, 1, 2])
    _, grads = expect_tuple(net.loss(X, y), 2, "FullyConnectedNet.loss")
    assert_params_gradients(net, X, y, grads, tol=1e-6)


@public_check("FullyConnectedNet")
def net_batchnorm_gradients(impl):
    """FullyConnectedNet with batchnorm: gradients agree with numerical gradients (reg > 0)"""
    net = impl.FullyConnectedNet([5], input_dim=4, num_classes=3, normalization="batchnorm",
                                 weight_scale=0.5, reg=0.2, seed=0)
    X, y = _rng().standard_normal((6, 4)), np.array([0, 1, 2, 0, 1, 2])
    _, grads = expect_tuple(net.loss(X, y), 2, "FullyConnectedNet.loss")
    for key in sorted(net.params):
        if key == "b1":  # batchnorm removes any shift of its input: this gradient is zero
            db = expect_array(grads.get(key), "grads['b1']", shape=(5,))
            if np.max(np.abs(db)) > 1e-8:
                raise CheckFailure(f"grads['b1'] is {db}, expected zeros: batchnorm removes "
                                   "any constant shift of its input")
            continue
        assert_params_gradients(net, X, y, grads, keys=[key])


@public_check("FullyConnectedNet")
def net_test_mode_is_deterministic(impl):
    """FullyConnectedNet with dropout: loss(X) (test mode) gives the same scores twice"""
    net = impl.FullyConnectedNet([8], input_dim=4, num_classes=3, normalization="batchnorm",
                                 dropout=0.5, seed=0)
    X = _rng().standard_normal((5, 4))
    first = expect_array(net.loss(X), "scores", shape=(5, 3))
    assert_close(net.loss(X), first, "FullyConnectedNet scores, second call in test mode")
