"""Helpers and probes of hw2_conv's hidden tests (test_hw2_conv.py): the inputs and how they
are described, the gates, the timing of the speed tests, the nets and the training loop. A test
module cannot import its conftest, so the tests reach them through the ``probes`` fixture at the
end.
"""
import time

import numpy as np

from autograder.testing import (CheckFailure, GATE_NOTE, describe_inputs, expect_array,
                                expect_tuple, own_parts, probes_fixture, without_null_parts)

# ---- inputs ---------------------------------------------------------------------------------

# The speed tests' threshold, here because check_speed applies it.
SPEEDUP = 10  # the fast version must be this much faster than the naive one ...
MARGIN = 2    # ... up to this factor, for timing noise and the transfer of the data


def conv_inputs(rng, case):
    x = rng.standard_normal(case["x"])
    w = rng.standard_normal(case["w"])
    b = rng.standard_normal(case["w"][0])
    return x, w, b, {"stride": case["stride"], "pad": case["pad"]}


def conv_out_shape(case):
    (N, _, H, W), (F, _, HH, WW) = case["x"], case["w"]
    s, p = case["stride"], case["pad"]
    return N, F, 1 + (H + 2 * p - HH) // s, 1 + (W + 2 * p - WW) // s


def conv_described(x, w, b, conv_param, **more):
    return dict(x=x, w=w, b=b, stride=conv_param["stride"], pad=conv_param["pad"], **more)


def distinct_values(rng, shape):
    """Random values at least ~1e-2 apart: no ties, and no kink within a finite-difference step."""
    n = int(np.prod(shape))
    ranks = rng.permutation(n) + rng.uniform(0.1, 0.9, n)
    return (4.0 * ranks / n - 2.0).reshape(shape)


def pool_inputs(rng, case):
    x = distinct_values(rng, case["x"])
    return x, {k: case[k] for k in ("pool_height", "pool_width", "stride")}


def pool_described(x, pool_param, **more):
    return dict(x=x, pool_height=pool_param["pool_height"], pool_width=pool_param["pool_width"],
                stride=pool_param["stride"], **more)


def sums_agree(left, right, what, inputs, tol=1e-9):
    """Two scalars that must be equal up to rounding."""
    if abs(left - right) > tol * max(abs(left) + abs(right), 1e-12):
        raise CheckFailure(
            f"{what}{describe_inputs(inputs)}: {left:.10g} and {right:.10g} differ (relative "
            f"{abs(left - right) / (abs(left) + abs(right)):.1e}); they must be equal",
            what=what, inputs=inputs)


# ---- gates: nothing for nothing --------------------------------------------------------------

def is_zero(value) -> bool:
    return not np.any(np.asarray(value, dtype=np.float64))


def require_nonzero(got, reference_value, what, inputs=None):
    """``got`` must not be all zeros where the reference's ``reference_value`` is not (None:
    the reference's never is on the inputs of the test)."""
    if is_zero(got) and (reference_value is None or not is_zero(reference_value)):
        raise CheckFailure(f"{GATE_NOTE}: your {what}{describe_inputs(inputs)} is all zeros, "
                           "while the reference's is not", what=what, inputs=inputs)


def require_dependence(numeric, reference_numeric, what, argument, inputs=None):
    """Your forward must change when ``argument`` changes, as the reference's does: its
    numerical gradient (``numeric``) must not vanish where the reference's does not."""
    ref_norm = float(np.linalg.norm(reference_numeric))
    if ref_norm > 0 and float(np.linalg.norm(numeric)) <= 1e-6 * ref_norm:
        raise CheckFailure(
            f"{GATE_NOTE}: your {what}{describe_inputs(inputs)} does not change when {argument} "
            f"changes (its numerical gradient is zero; it returned a constant such as zeros), "
            f"while the reference's does", what=what, inputs=inputs)


def require_not_constant(value, what, inputs=None):
    """A constant array (zeros, ones) does not depend on the inputs; the reference's never is
    constant on the random inputs of these tests."""
    value = np.asarray(value, dtype=np.float64)
    if value.size > 1 and float(value.max()) == float(value.min()):
        raise CheckFailure(
            f"{GATE_NOTE}: your {what}{describe_inputs(inputs)} is constant (every entry "
            f"{float(value.flat[0]):.6g}), so it does not depend on the inputs as the "
            "reference's does", what=what, inputs=inputs)


# ---- the fast convolution on a large input ------------------------------------------------------

def timed(call):
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def check_speed(what, call, first_seconds, naive_cpu_seconds, inputs):
    """Within budget on the first call, or on one of two more tries (timing noise)."""
    budget = naive_cpu_seconds * MARGIN / SPEEDUP
    best = first_seconds
    for _ in range(2):
        if best <= budget:
            return
        best = min(best, timed(call)[1])
    if best > budget:
        raise CheckFailure(
            f"{what}{describe_inputs(inputs)} took {best * 1e3:.0f} ms (best of 3, wall time "
            f"seen by the grader, data transfer included); the loop-per-output naive version takes "
            f"{naive_cpu_seconds:.2f} s of CPU time, so at least {SPEEDUP}x faster means at most "
            f"{budget * 1e3:.0f} ms (with a {MARGIN}x allowance for timing noise). Is there "
            "still a Python loop over the batch or the image positions?", what=what,
            inputs=inputs)


# ---- max pooling ---------------------------------------------------------------------------------

def pool_out_shape(case):
    N, C, H, W = case["x"]
    return (N, C, 1 + (H - case["pool_height"]) // case["stride"],
            1 + (W - case["pool_width"]) // case["stride"])


# ---- ConvNet -------------------------------------------------------------------------------------

def net_data(rng, args, n=4):
    X = rng.standard_normal((n, 1, 8, 8))
    y = rng.permutation(np.arange(n) % args["num_classes"])
    return X, y


def random_params(rng, args):
    """Parameters with non-zero biases, so a missing bias term or gradient shows."""
    F, fs, hidden, classes = (args["num_filters"], args["filter_size"], args["hidden_dim"],
                              args["num_classes"])
    shapes = {"W1": (F, 1, fs, fs), "b1": (F,), "W2": (F * 16, hidden), "b2": (hidden,),
              "W3": (hidden, classes), "b3": (classes,)}
    return {key: (0.5 if key[0] == "W" else 0.1) * rng.standard_normal(shape)
            for key, shape in shapes.items()}


def runnable_args(student, reference, args):
    """``args``, or the same net with 1x1 filters (no padding) where the student's fast
    convolution cannot run the ConvNet's layer: it raises or returns other shapes than the
    contract's. That mistake costs in its own tests; with padding out of play the ConvNet's
    own code is still judged (a padding mistake of the convolution cannot reach it)."""
    probe = np.random.default_rng(0)
    F, fs = args["num_filters"], args["filter_size"]
    x, w, b = (probe.standard_normal((2, 1, 8, 8)), probe.standard_normal((F, 1, fs, fs)),
               probe.standard_normal(F))
    conv_param = {"stride": 1, "pad": (fs - 1) // 2}
    out, cache = reference.conv_forward_fast(x, w, b, conv_param)
    want = [a.shape for a in reference.conv_backward_fast(out, cache)]

    def shapes():
        got, own_cache = expect_tuple(student.conv_forward_fast(x, w, b, conv_param), 2,
                                      "conv_forward_fast")
        grads = expect_tuple(student.conv_backward_fast(out, own_cache), 3,
                             "conv_backward_fast")
        return [np.shape(got)] + [np.shape(g) for g in grads]
    if own_parts(shapes) == [out.shape, *want]:
        return args
    return dict(args, filter_size=1)


def net_candidates(reference, reference_with, student, params, args, X, y):
    """What a correct ConvNet.loss may return: the reference's (loss, grads), or the contract's
    ConvNet run here around the student's own fast convolution (its mistakes cost in its own
    tests). A composite whose gradients are all zero is no candidate."""
    hybrid = reference_with(conv_forward_fast=student.conv_forward_fast,
                            conv_backward_fast=student.conv_backward_fast)
    expected = nets_with(reference, reference, params, args)[0].loss(X, y)
    return [expected, without_null_parts(
        own_parts(lambda: nets_with(hybrid, reference, params, args)[0].loss(X, y)), expected)]


def nets_with(student, reference, params, args):
    """A student and a reference net sharing the given parameters."""
    net = student.ConvNet(**args, seed=0)
    net.params = params
    ref = reference.ConvNet(**args, seed=0)
    ref.params = dict(params)
    return net, ref


# ---- training ------------------------------------------------------------------------------------

# The trained check's recipe: here, not in the test module, because train_convnet defaults to
# it; test_trained_accuracy reads it as probes.TRAIN.
TRAIN = dict(num_filters=16, filter_size=3, hidden_dim=64, weight_scale=0.2, reg=1e-4,
             learning_rate=5e-3, batch_size=64, epochs=10, seed=0)
TRAIN_SECONDS = 40  # projected training time above which the test gives up early


def adam_step(w, dw, state, learning_rate, beta1=0.9, beta2=0.999, eps=1e-8):
    """The grader's own Adam (optimizers are not part of hw2), bias-corrected."""
    state["t"] += 1
    state["m"] = beta1 * state["m"] + (1 - beta1) * dw
    state["v"] = beta2 * state["v"] + (1 - beta2) * dw ** 2
    m_hat = state["m"] / (1 - beta1 ** state["t"])
    v_hat = state["v"] / (1 - beta2 ** state["t"])
    return w - learning_rate * m_hat / (np.sqrt(v_hat) + eps)


def train_convnet(impl, digits, recipe=TRAIN):
    X_train, X_test, y_train, y_test = digits
    X_train, X_test = X_train.reshape(-1, 1, 8, 8), X_test.reshape(-1, 1, 8, 8)
    net = impl.ConvNet(num_filters=recipe["num_filters"], filter_size=recipe["filter_size"],
                       hidden_dim=recipe["hidden_dim"], num_classes=10,
                       weight_scale=recipe["weight_scale"], reg=recipe["reg"],
                       seed=recipe["seed"])
    params = dict(net.params)
    states = {k: {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p)} for k, p in params.items()}
    order_rng = np.random.default_rng(recipe["seed"])
    steps = recipe["epochs"] * -(-len(X_train) // recipe["batch_size"])
    started, step = time.perf_counter(), 0
    for _ in range(recipe["epochs"]):
        order = order_rng.permutation(len(X_train))
        for start in range(0, len(order), recipe["batch_size"]):
            idx = order[start:start + recipe["batch_size"]]
            step += 1
            if step == 4:  # fail early, with a reason, rather than at the time limit
                projected = (time.perf_counter() - started) / 3 * steps
                if projected > TRAIN_SECONDS:
                    raise CheckFailure(
                        f"training is too slow: the first 3 of {steps} steps took "
                        f"{(time.perf_counter() - started):.1f} s, so all of them would take "
                        f"about {projected:.0f} s (a vectorised ConvNet needs a few seconds). "
                        "Does ConvNet.loss use conv_forward_fast and conv_backward_fast?")
            _, grads = expect_tuple(net.loss(X_train[idx], y_train[idx]), 2, "ConvNet.loss")
            if type(grads) is not dict or sorted(grads) != sorted(params):
                raise CheckFailure("ConvNet.loss should return a dict of gradients keyed like "
                                   f"params ({sorted(params)})")
            for key in params:
                grad = expect_array(grads[key], f"grads[{key!r}]", shape=params[key].shape)
                params[key] = adam_step(params[key], grad, states[key], recipe["learning_rate"])
            net.params = params
    scores = expect_array(net.loss(X_test), "scores on the test split", shape=(len(X_test), 10))
    return float(np.mean(np.argmax(scores, axis=1) == y_test))


probes = probes_fixture(__name__)
