"""Hidden tests for hw2_conv: convolution and pooling, naive and fast, and the ConvNet.

Inputs break symmetry on purpose: N > 1, H != W, non-square kernels and pooling windows,
strides that leave part of the input uncovered, non-zero biases, reg > 0, so that swapped
axes, a flipped kernel or a forgotten stride cannot pass by coincidence. The naive functions
only ever see small inputs; the large input of the speed tests goes to the fast ones.
"""
import time

import numpy as np
import pytest

from autograder.testing import (CheckFailure, GATE_NOTE, assert_close, assert_gradient,
                                assert_metric, check_initial_params, comparable, describe_inputs,
                                expect_array, expect_scalar, expect_tuple, gradient_tolerance,
                                norm_error, numeric_gradient, numeric_vjp, one_of, own_parts,
                                without_null_parts)

# ---- inputs ---------------------------------------------------------------------------------

CONV_CASES = {
    # out (2, 3, 5, 4)
    "3x3 kernel, stride 1, pad 1": dict(x=(2, 3, 5, 4), w=(3, 3, 3, 3), stride=1, pad=1),
    # out (2, 3, 5, 4): (10 + 2 - 3) // 2 rounds down, so the last padded row is never read
    "3x2 kernel, stride 2, pad 1": dict(x=(2, 2, 10, 6), w=(3, 2, 3, 2), stride=2, pad=1),
}
# No padding (a crop written as pad:-pad breaks here), stride 3, and a last row and column
# that no window covers. out (3, 2, 3, 3)
INVARIANT_CASE = dict(x=(3, 2, 9, 10), w=(2, 2, 2, 3), stride=3, pad=0)
# The speed tests: the reference's loop-per-output version takes 1-2 s of CPU time here, the
# vectorised reference 25-50 ms of wall time through the worker. out (32, 8, 30, 36)
LARGE_CASE = dict(x=(32, 3, 30, 34), w=(8, 3, 5, 3), stride=1, pad=2)
SPEEDUP = 10  # the fast version must be this much faster than the naive one ...
MARGIN = 2    # ... up to this factor, for timing noise and the transfer of the data

POOL_CASES = {
    "2x2 windows, stride 2": dict(x=(2, 3, 6, 4), pool_height=2, pool_width=2, stride=2),
    # overlapping, non-square windows: out (2, 2, 5, 4)
    "3x2 windows, stride 1": dict(x=(2, 2, 7, 5), pool_height=3, pool_width=2, stride=1),
}

IMPLS = {
    "naive": ("conv_forward_naive", "conv_backward_naive"),
    "fast": ("conv_forward_fast", "conv_backward_fast"),
}


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


def forward_params():
    return [pytest.param(impl, case, id=f"{impl}, {case}", marks=pytest.mark.covers(names[0]))
            for impl, names in IMPLS.items() for case in CONV_CASES]


def backward_params():
    return [pytest.param(impl, case, id=f"{impl}, {case}",
                         marks=pytest.mark.covers(names[1], names[0]))
            for impl, names in IMPLS.items() for case in CONV_CASES]


def sums_agree(left, right, what, inputs, tol=1e-9):
    """Two scalars that must be equal up to rounding."""
    if abs(left - right) > tol * max(abs(left) + abs(right), 1e-12):
        raise CheckFailure(
            f"{what}{describe_inputs(inputs)}: {left:.10g} and {right:.10g} differ (relative "
            f"{abs(left - right) / (abs(left) + abs(right)):.1e}); they must be equal",
            what=what, inputs=inputs)


# ---- gates: nothing for nothing --------------------------------------------------------------
# A self-consistency property (backward == numerical gradient of your own forward, an adjoint
# identity) also holds for a function that computes nothing: zeros for the output and zeros
# for the gradient agree perfectly. Such tests pay only when the functions involved compute
# something, judged against what the reference computes on the same inputs.



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


# ---- convolution: values and gradients, naive and fast ----------------------------------------

@pytest.mark.parametrize("impl, case", forward_params())
@pytest.mark.points(3)
def test_conv_forward_values(impl, case, student, reference, rng):
    """conv forward: output values against the reference"""
    forward = IMPLS[impl][0]
    x, w, b, conv_param = conv_inputs(rng, CONV_CASES[case])
    out, _ = expect_tuple(getattr(student, forward)(x, w, b, conv_param), 2, forward)
    expected, _ = reference.conv_forward_naive(x, w, b, conv_param)
    assert_close(out, expected, f"{forward} out", inputs=conv_described(x, w, b, conv_param))


@pytest.mark.parametrize("impl, case", backward_params())
@pytest.mark.points(3)
def test_conv_backward_matches_reference(impl, case, student, reference, rng, partial):
    """conv backward: dx, dw, db against the reference"""
    forward, backward = IMPLS[impl]
    x, w, b, conv_param = conv_inputs(rng, CONV_CASES[case])
    dout = rng.standard_normal(conv_out_shape(CONV_CASES[case]))
    _, cache = expect_tuple(getattr(student, forward)(x, w, b, conv_param), 2, forward)
    grads = expect_tuple(getattr(student, backward)(dout, cache), 3, backward)
    _, ref_cache = reference.conv_forward_naive(x, w, b, conv_param)
    expected = reference.conv_backward_naive(dout, ref_cache)
    inputs = conv_described(x, w, b, conv_param, dout=dout)
    for name, got, want, weight in zip(("dx", "dw", "db"), grads, expected, (2, 2, 1),
                                       strict=True):
        with partial.part(name, weight):
            assert_close(got, want, f"{backward} {name}", inputs=inputs)


@pytest.mark.parametrize("impl, case", backward_params())
@pytest.mark.points(2)
def test_conv_backward_numerical(impl, case, student, reference, rng, partial):
    """conv backward: agrees with numerical gradients of your forward

    Gate (per gradient): your forward must change when that argument changes (its numerical
    gradient is not zero, as the reference's is not) and your gradient must not be all zeros
    where the reference's is not; zeros agree with the numerical gradient of a zero forward.
    """
    forward, backward = IMPLS[impl]
    x, w, b, conv_param = conv_inputs(rng, CONV_CASES[case])
    dout = rng.standard_normal(conv_out_shape(CONV_CASES[case]))
    inputs = conv_described(x, w, b, conv_param, dout=dout)

    def forward_of(fn):
        return lambda *args: fn(*args, conv_param)[0]

    _, cache = expect_tuple(getattr(student, forward)(x, w, b, conv_param), 2, forward)
    grads = expect_tuple(getattr(student, backward)(dout, cache), 3, backward)
    # The reference's own error against centred differences sets the tolerance.
    _, ref_cache = reference.conv_forward_fast(x, w, b, conv_param)
    ref_grads = reference.conv_backward_fast(dout, ref_cache)
    ref_numeric = [numeric_vjp(forward_of(reference.conv_forward_fast), [x, w, b], i, dout)
                   for i in range(3)]
    ref_err = max(norm_error(g, n) for g, n in zip(ref_grads, ref_numeric, strict=True))
    tol = gradient_tolerance(ref_err)
    for i, (name, got) in enumerate(zip(("dx", "dw", "db"), grads, strict=True)):
        with partial.part(name):
            numeric = numeric_vjp(forward_of(getattr(student, forward)), [x, w, b], i, dout)
            got = expect_array(got, f"{backward} {name}", shape=numeric.shape, inputs=inputs)
            require_dependence(numeric, ref_numeric[i], f"{forward} out", "xwb"[i],
                               inputs)
            require_nonzero(got, ref_grads[i], f"{backward} {name}", inputs)
            assert_gradient(got, numeric, f"{backward} {name}", tol=tol, inputs=inputs)


@pytest.mark.parametrize("impl", [pytest.param(impl, marks=pytest.mark.covers(*names[::-1]))
                                  for impl, names in IMPLS.items()])
@pytest.mark.points(2)
def test_conv_invariants(impl, student, rng, partial):
    """conv: adjoint identities and db, with no padding and stride 3 (your own functions only)

    Gate for the two identities: your out must not be constant and your dx / dw not all zeros
    (the reference's never are here); a zero forward and a zero backward satisfy them as
    0 == 0. The db part needs no gate: dout.sum(axis=(0, 2, 3)) is the reference's value.
    """
    forward, backward = IMPLS[impl]
    x, w, b, conv_param = conv_inputs(rng, INVARIANT_CASE)
    zero_b = np.zeros_like(b)
    dout = rng.standard_normal(conv_out_shape(INVARIANT_CASE))
    inputs = conv_described(x, w, zero_b, conv_param, dout=dout)
    out, cache = expect_tuple(getattr(student, forward)(x, w, zero_b, conv_param), 2, forward)
    out = expect_array(out, f"{forward} out", shape=dout.shape, inputs=inputs)
    dx, dw, db = expect_tuple(getattr(student, backward)(dout, cache), 3, backward)
    # Without a bias the layer is linear in x and in w: <conv(x, w), dout> = <x, dx> = <w, dw>.
    total = float(np.sum(out * dout))
    with partial.part("sum(out * dout) == sum(x * dx)"):
        dx = expect_array(dx, f"{backward} dx", shape=x.shape, inputs=inputs)
        require_not_constant(out, f"{forward} out", inputs)
        require_nonzero(dx, None, f"{backward} dx", inputs)
        sums_agree(total, float(np.sum(x * dx)), f"{backward}: sum(out * dout) vs sum(x * dx)",
                   inputs)
    with partial.part("sum(out * dout) == sum(w * dw)"):
        dw = expect_array(dw, f"{backward} dw", shape=w.shape, inputs=inputs)
        require_not_constant(out, f"{forward} out", inputs)
        require_nonzero(dw, None, f"{backward} dw", inputs)
        sums_agree(total, float(np.sum(w * dw)), f"{backward}: sum(out * dout) vs sum(w * dw)",
                   inputs)
    with partial.part("db == dout.sum(axis=(0, 2, 3))"):
        _, cache = expect_tuple(getattr(student, forward)(x, w, b, conv_param), 2, forward)
        _, _, db = expect_tuple(getattr(student, backward)(dout, cache), 3, backward)
        assert_close(db, dout.sum(axis=(0, 2, 3)), f"{backward} db vs dout.sum(axis=(0, 2, 3))",
                     inputs=conv_described(x, w, b, conv_param, dout=dout))


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


@pytest.mark.points(6)
@pytest.mark.time_limit(40)
@pytest.mark.covers("conv_forward_fast")
def test_conv_forward_fast_large(student, reference, rng, partial):
    """conv_forward_fast: equals the naive version on a large input, at least 10x faster

    Gate: the speed part pays only if the values of the same call match the reference.
    """
    x, w, b, conv_param = conv_inputs(rng, LARGE_CASE)
    inputs = conv_described(x, w, b, conv_param)
    result, seconds = timed(lambda: student.conv_forward_fast(x, w, b, conv_param))
    out, _ = expect_tuple(result, 2, "conv_forward_fast")
    start = time.process_time()
    expected, _ = reference.conv_forward_naive(x, w, b, conv_param)
    naive_seconds = time.process_time() - start
    correct = False
    with partial.part("values"):
        assert_close(out, expected, "conv_forward_fast out", tol=1e-9, inputs=inputs)
        correct = True
    with partial.part("speed"):
        if not correct:
            raise CheckFailure("speed not credited: the values are wrong (see above)")
        check_speed("conv_forward_fast", lambda: student.conv_forward_fast(x, w, b, conv_param),
                    seconds, naive_seconds, inputs)


@pytest.mark.points(6)
@pytest.mark.time_limit(40)
@pytest.mark.covers("conv_backward_fast")
def test_conv_backward_fast_large(student, reference, rng, partial):
    """conv_backward_fast: equals the naive version on a large input, at least 10x faster

    Gate: the speed part pays only if dx, dw and db of the same call match the reference.
    """
    x, w, b, conv_param = conv_inputs(rng, LARGE_CASE)
    dout = rng.standard_normal(conv_out_shape(LARGE_CASE))
    inputs = conv_described(x, w, b, conv_param, dout=dout)

    def own_run():
        _, cache = expect_tuple(student.conv_forward_fast(x, w, b, conv_param), 2,
                                "conv_forward_fast")
        result, seconds = timed(lambda: student.conv_backward_fast(dout, cache))
        return expect_tuple(result, 3, "conv_backward_fast"), cache, seconds
    _, ref_cache = reference.conv_forward_fast(x, w, b, conv_param)
    start = time.process_time()
    expected = reference.conv_backward_naive(dout, ref_cache)
    naive_seconds = time.process_time() - start
    # With your own cache, or, where your forward is wrong (its own tests), with the cache
    # (x, w, b, conv_param) as the notebook describes it, made by the reference.
    on_reference = own_parts(lambda: timed(lambda: expect_tuple(
        student.conv_backward_fast(dout, ref_cache), 3, "conv_backward_fast")))
    runs = [own_parts(own_run)]
    if on_reference is not None:
        runs.append((on_reference[0], ref_cache, on_reference[1]))
    if not any(runs):
        runs = [own_run()]  # neither runs: its own error is the feedback
    correct = None

    def same_values(run):
        nonlocal correct
        for name, got, want in zip(("dx", "dw", "db"), run[0], expected, strict=True):
            assert_close(got, want, f"conv_backward_fast {name}", tol=1e-9, inputs=inputs)
        correct = run
    with partial.part("values"):
        one_of(same_values, runs)
    with partial.part("speed"):
        if correct is None:
            raise CheckFailure("speed not credited: the values are wrong (see above)")
        check_speed("conv_backward_fast",
                    lambda: student.conv_backward_fast(dout, correct[1]), correct[2],
                    naive_seconds, inputs)


# ---- max pooling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(POOL_CASES))
@pytest.mark.points(2)
@pytest.mark.covers("max_pool_forward_naive")
def test_max_pool_forward_values(case, student, reference, rng):
    """max_pool_forward_naive: output values against the reference"""
    x, pool_param = pool_inputs(rng, POOL_CASES[case])
    out, _ = expect_tuple(student.max_pool_forward_naive(x, pool_param), 2,
                          "max_pool_forward_naive")
    expected, _ = reference.max_pool_forward_naive(x, pool_param)
    assert_close(out, expected, "max_pool_forward_naive out",
                 inputs=pool_described(x, pool_param))


def pool_out_shape(case):
    N, C, H, W = case["x"]
    return (N, C, 1 + (H - case["pool_height"]) // case["stride"],
            1 + (W - case["pool_width"]) // case["stride"])


@pytest.mark.parametrize("case", list(POOL_CASES))
@pytest.mark.points(3)
@pytest.mark.covers("max_pool_backward_naive", "max_pool_forward_naive")
def test_max_pool_backward(case, student, reference, rng, partial):
    """max_pool_backward_naive: against the reference and the numerical gradient

    Gate for the numerical part: your max_pool_forward_naive must change when x changes (as
    the reference's does) and your dx must not be all zeros; zeros agree with the numerical
    gradient of a zero forward.
    """
    x, pool_param = pool_inputs(rng, POOL_CASES[case])
    dout = rng.standard_normal(pool_out_shape(POOL_CASES[case]))
    inputs = pool_described(x, pool_param, dout=dout)
    _, cache = expect_tuple(student.max_pool_forward_naive(x, pool_param), 2,
                            "max_pool_forward_naive")
    dx = student.max_pool_backward_naive(dout, cache)
    _, ref_cache = reference.max_pool_forward_naive(x, pool_param)
    ref_dx = reference.max_pool_backward_naive(dout, ref_cache)
    with partial.part("against the reference", 2):
        assert_close(dx, ref_dx, "max_pool_backward_naive dx", inputs=inputs)
    with partial.part("numerical gradient"):
        numeric = numeric_vjp(lambda v: student.max_pool_forward_naive(v, pool_param)[0],
                              [x], 0, dout)
        dx = expect_array(dx, "max_pool_backward_naive dx", shape=x.shape, inputs=inputs)
        ref_numeric = numeric_vjp(lambda v: reference.max_pool_forward_naive(v, pool_param)[0],
                                  [x], 0, dout)
        require_dependence(numeric, ref_numeric, "max_pool_forward_naive out", "x", inputs)
        require_nonzero(dx, ref_dx, "max_pool_backward_naive dx", inputs)
        assert_gradient(dx, numeric, "max_pool_backward_naive dx", tol=1e-7, inputs=inputs)


@pytest.mark.parametrize("case", list(POOL_CASES))
@pytest.mark.points(1)
@pytest.mark.covers("max_pool_backward_naive")
def test_max_pool_backward_preserves_sum(case, student, rng):
    """max_pool_backward_naive: every output's gradient lands somewhere, sum(dx) == sum(dout)

    Gate: dx must not be constant: a constant dx (zeros, ones) routes no gradient to the
    window maxima, and the reference's, zero away from them, never is constant here.
    """
    x, pool_param = pool_inputs(rng, POOL_CASES[case])
    dout = rng.uniform(0.5, 1.5, pool_out_shape(POOL_CASES[case]))
    inputs = pool_described(x, pool_param, dout=dout)
    _, cache = expect_tuple(student.max_pool_forward_naive(x, pool_param), 2,
                            "max_pool_forward_naive")
    dx = expect_array(student.max_pool_backward_naive(dout, cache), "max_pool_backward_naive dx",
                      shape=x.shape, inputs=inputs)
    require_not_constant(dx, "max_pool_backward_naive dx", inputs)
    sums_agree(float(dout.sum()), float(dx.sum()),
               "max_pool_backward_naive: sum(dout) vs sum(dx) (overlapping windows add up)",
               inputs)


# ---- ConvNet -------------------------------------------------------------------------------------

# filter_size 5: "same" padding is 2 here, not 1.
NET_ARGS = dict(num_filters=3, filter_size=5, hidden_dim=7, num_classes=4, weight_scale=0.3,
                reg=0.2)
SMALL_NET_ARGS = dict(num_filters=2, filter_size=3, hidden_dim=4, num_classes=3,
                      weight_scale=0.5, reg=0.3)


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


@pytest.mark.points(3)
@pytest.mark.covers("ConvNet")
def test_convnet_initialisation(student, partial):
    """ConvNet: parameter names, shapes, dtype and initial statistics"""
    scale = 0.05
    net = student.ConvNet(num_filters=6, filter_size=5, hidden_dim=20, num_classes=7,
                          weight_scale=scale, seed=3)
    expected = {"W1": (6, 1, 5, 5), "b1": (6,), "W2": (96, 20), "b2": (20,), "W3": (20, 7),
                "b3": (7,)}
    # 140+ samples: the std estimate is within ~6% of weight_scale (1 sigma).
    check_initial_params(net.params, expected, scale, partial, "ConvNet", std_band=0.25,
                         mean_band=0.3)


@pytest.mark.points(3)
@pytest.mark.covers("ConvNet")
def test_convnet_scores(student, reference, reference_with, rng):
    """ConvNet.loss(X): scores with given parameters (filter_size 5)"""
    args = runnable_args(student, reference, NET_ARGS)
    X, _ = net_data(rng, args)
    params = random_params(rng, args)
    net, ref = nets_with(student, reference, params, args)
    scores = net.loss(X)
    # Right with the reference's convolution or with the student's own (its tests charge it).
    hybrid = reference_with(conv_forward_fast=student.conv_forward_fast)
    own = own_parts(lambda: nets_with(hybrid, reference, params, args)[0].loss(X))
    one_of(lambda want: assert_close(scores, want, "ConvNet scores",
                                     inputs=dict(X=X, **args)), [ref.loss(X), own])


@pytest.mark.points(5)
@pytest.mark.covers("ConvNet")
def test_convnet_loss_and_gradients(student, reference, reference_with, rng, partial):
    """ConvNet.loss(X, y): loss and every gradient, with reg > 0"""
    args = runnable_args(student, reference, NET_ARGS)
    X, y = net_data(rng, args)
    params = random_params(rng, args)
    net, _ = nets_with(student, reference, params, args)
    loss, grads = expect_tuple(net.loss(X, y), 2, "ConvNet.loss")
    candidates = net_candidates(reference, reference_with, student, params, args, X, y)
    inputs = dict(X=X, y=y, **args)
    with partial.part("loss", 2):
        one_of(lambda want: assert_close(loss, want[0], "ConvNet loss", inputs=inputs),
               candidates)
    if type(grads) is not dict:
        raise CheckFailure(f"the gradients should be a dict, got {type(grads).__name__}")
    for key in sorted(candidates[0][1]):
        with partial.part(f"grads[{key!r}]"):
            if key not in grads:
                raise CheckFailure(f"grads has no {key!r}")
            one_of(lambda want, key=key: assert_close(
                grads[key], comparable(want, key), f"ConvNet grads[{key!r}]", inputs=inputs),
                candidates)


@pytest.mark.points(3)
@pytest.mark.covers("ConvNet")
def test_convnet_numerical_gradients(student, reference, reference_with, rng, partial):
    """ConvNet: gradients agree with numerical gradients of your loss

    Gate (per parameter): your loss must change when that parameter changes (as the
    reference's does) and your gradient must not be all zeros; a constant loss with zero
    gradients agrees with its own numerical gradient.
    """
    args = runnable_args(student, reference, SMALL_NET_ARGS)
    X, y = net_data(rng, args, n=3)
    params = random_params(rng, args)
    net, ref = nets_with(student, reference, params, args)
    loss, grads = expect_tuple(net.loss(X, y), 2, "ConvNet.loss")
    if type(grads) is not dict:
        raise CheckFailure(f"the gradients should be a dict, got {type(grads).__name__}")

    def loss_of(model, key, cast=float):
        def loss_at(value):
            model.params = {**params, key: value}
            return cast(model.loss(X, y)[0])
        return loss_at

    ref_grads = ref.loss(X, y)[1]
    ref_numeric = {key: numeric_gradient(loss_of(ref, key), params[key]) for key in params}
    ref_err = max(norm_error(ref_grads[key], ref_numeric[key]) for key in params)
    tol = gradient_tolerance(ref_err)
    inputs = dict(X=X, y=y, **args)
    # Where your convolution is wrong (its own tests), the contract's ConvNet built on it is
    # right too, though its gradients are then not those of its loss.
    composed = net_candidates(reference, reference_with, student, params, args, X,
                              y)[1]
    for key in sorted(params):
        with partial.part(f"grads[{key!r}]"):
            def of_own_loss(_, key=key):
                numeric = numeric_gradient(
                    loss_of(net, key, lambda v: expect_scalar(v, "ConvNet loss")), params[key])
                got = expect_array(grads.get(key), f"ConvNet grads[{key!r}]",
                                   shape=numeric.shape, inputs=inputs)
                require_dependence(numeric, ref_numeric[key], "ConvNet loss",
                                   f"params[{key!r}]", inputs)
                require_nonzero(got, ref_grads[key], f"ConvNet grads[{key!r}]", inputs)
                assert_gradient(got, numeric, f"ConvNet grads[{key!r}]", tol=tol,
                                inputs=inputs)

            def of_own_layers(_, key=key):
                if composed is None:
                    raise CheckFailure("not comparable")
                assert_close(grads.get(key), comparable(composed, key), f"ConvNet grads[{key!r}]")
            one_of(lambda check: check(None), [of_own_loss, of_own_layers])


# ---- training ------------------------------------------------------------------------------------

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


@pytest.mark.points(10)
@pytest.mark.time_limit(60)
@pytest.mark.covers("ConvNet", "conv_forward_fast", "conv_backward_fast")
@pytest.mark.integration  # end to end: any upstream mistake costs here
def test_trained_accuracy(student, digits, train_seed):
    """Training: your ConvNet reaches 94% test accuracy on digits"""
    recipe = dict(TRAIN, seed=train_seed)
    accuracy = train_convnet(student, digits, recipe)
    assert_metric(accuracy, 0.94, "test accuracy",
                  detail=f"after training with Adam and {recipe}; the reference reaches about "
                         "0.97 with the same recipe")
