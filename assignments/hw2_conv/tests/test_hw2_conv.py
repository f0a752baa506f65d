"""Hidden tests for hw2_conv: convolution and pooling, naive and fast, and the ConvNet.

Inputs break symmetry on purpose: N > 1, H != W, non-square kernels and pooling windows,
strides that leave part of the input uncovered, non-zero biases, reg > 0, so that swapped
axes, a flipped kernel or a forgotten stride cannot pass by coincidence. The naive functions
only ever see small inputs; the large input of the speed tests goes to the fast ones.

Helpers, probes and the constants they share are in conftest.py; the tests call them through
the ``probes`` fixture (``probes.conv_inputs(...)``).
"""
import time

import numpy as np
import pytest

from autograder.testing import (CheckFailure, assert_close, assert_gradient, assert_metric,
                                check_initial_params, comparable, expect_array, expect_scalar,
                                expect_tuple, gradient_tolerance, norm_error, numeric_gradient,
                                numeric_vjp, one_of, own_parts)

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
# How much faster (SPEEDUP, with a MARGIN for noise) is conftest's, beside check_speed.

POOL_CASES = {
    "2x2 windows, stride 2": dict(x=(2, 3, 6, 4), pool_height=2, pool_width=2, stride=2),
    # overlapping, non-square windows: out (2, 2, 5, 4)
    "3x2 windows, stride 1": dict(x=(2, 2, 7, 5), pool_height=3, pool_width=2, stride=1),
}

IMPLS = {
    "naive": ("conv_forward_naive", "conv_backward_naive"),
    "fast": ("conv_forward_fast", "conv_backward_fast"),
}


# These two stay here: parametrize calls them while the module is imported, before any fixture
# (probes) exists.
def forward_params():
    return [pytest.param(impl, case, id=f"{impl}, {case}", marks=pytest.mark.covers(names[0]))
            for impl, names in IMPLS.items() for case in CONV_CASES]


def backward_params():
    return [pytest.param(impl, case, id=f"{impl}, {case}",
                         marks=pytest.mark.covers(names[1], names[0]))
            for impl, names in IMPLS.items() for case in CONV_CASES]


# ---- gates: nothing for nothing --------------------------------------------------------------
# A self-consistency property (backward == numerical gradient of your own forward, an adjoint
# identity) also holds for a function that computes nothing: zeros for the output and zeros
# for the gradient agree perfectly. Such tests pay only when the functions involved compute
# something, judged against what the reference computes on the same inputs.


# ---- convolution: values and gradients, naive and fast ----------------------------------------

@pytest.mark.parametrize("impl, case", forward_params())
@pytest.mark.points(3)
def test_conv_forward_values(impl, case, student, reference, rng, probes):
    """conv forward: output values against the reference"""
    forward = IMPLS[impl][0]
    x, w, b, conv_param = probes.conv_inputs(rng, CONV_CASES[case])
    out, _ = expect_tuple(getattr(student, forward)(x, w, b, conv_param), 2, forward)
    expected, _ = reference.conv_forward_naive(x, w, b, conv_param)
    assert_close(out, expected, f"{forward} out", inputs=probes.conv_described(x, w, b, conv_param))


@pytest.mark.parametrize("impl, case", backward_params())
@pytest.mark.points(3)
def test_conv_backward_matches_reference(impl, case, student, reference, rng, partial, probes):
    """conv backward: dx, dw, db against the reference"""
    forward, backward = IMPLS[impl]
    x, w, b, conv_param = probes.conv_inputs(rng, CONV_CASES[case])
    dout = rng.standard_normal(probes.conv_out_shape(CONV_CASES[case]))
    _, cache = expect_tuple(getattr(student, forward)(x, w, b, conv_param), 2, forward)
    grads = expect_tuple(getattr(student, backward)(dout, cache), 3, backward)
    _, ref_cache = reference.conv_forward_naive(x, w, b, conv_param)
    expected = reference.conv_backward_naive(dout, ref_cache)
    inputs = probes.conv_described(x, w, b, conv_param, dout=dout)
    for name, got, want, weight in zip(("dx", "dw", "db"), grads, expected, (2, 2, 1),
                                       strict=True):
        with partial.part(name, weight):
            assert_close(got, want, f"{backward} {name}", inputs=inputs)


@pytest.mark.parametrize("impl, case", backward_params())
@pytest.mark.points(2)
def test_conv_backward_numerical(impl, case, student, reference, rng, partial, probes):
    """conv backward: agrees with numerical gradients of your forward

    Gate (per gradient): your forward must change when that argument changes (its numerical
    gradient is not zero, as the reference's is not) and your gradient must not be all zeros
    where the reference's is not; zeros agree with the numerical gradient of a zero forward.
    """
    forward, backward = IMPLS[impl]
    x, w, b, conv_param = probes.conv_inputs(rng, CONV_CASES[case])
    dout = rng.standard_normal(probes.conv_out_shape(CONV_CASES[case]))
    inputs = probes.conv_described(x, w, b, conv_param, dout=dout)

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
            probes.require_dependence(numeric, ref_numeric[i], f"{forward} out", "xwb"[i],
                                      inputs)
            probes.require_nonzero(got, ref_grads[i], f"{backward} {name}", inputs)
            assert_gradient(got, numeric, f"{backward} {name}", tol=tol, inputs=inputs)


@pytest.mark.parametrize("impl", [pytest.param(impl, marks=pytest.mark.covers(*names[::-1]))
                                  for impl, names in IMPLS.items()])
@pytest.mark.points(2)
def test_conv_invariants(impl, student, rng, partial, probes):
    """conv: adjoint identities and db, with no padding and stride 3 (your own functions only)

    Gate for the two identities: your out must not be constant and your dx / dw not all zeros
    (the reference's never are here); a zero forward and a zero backward satisfy them as
    0 == 0. The db part needs no gate: dout.sum(axis=(0, 2, 3)) is the reference's value.
    """
    forward, backward = IMPLS[impl]
    x, w, b, conv_param = probes.conv_inputs(rng, INVARIANT_CASE)
    zero_b = np.zeros_like(b)
    dout = rng.standard_normal(probes.conv_out_shape(INVARIANT_CASE))
    inputs = probes.conv_described(x, w, zero_b, conv_param, dout=dout)
    out, cache = expect_tuple(getattr(student, forward)(x, w, zero_b, conv_param), 2, forward)
    out = expect_array(out, f"{forward} out", shape=dout.shape, inputs=inputs)
    dx, dw, db = expect_tuple(getattr(student, backward)(dout, cache), 3, backward)
    # Without a bias the layer is linear in x and in w: <conv(x, w), dout> = <x, dx> = <w, dw>.
    total = float(np.sum(out * dout))
    with partial.part("sum(out * dout) == sum(x * dx)"):
        dx = expect_array(dx, f"{backward} dx", shape=x.shape, inputs=inputs)
        probes.require_not_constant(out, f"{forward} out", inputs)
        probes.require_nonzero(dx, None, f"{backward} dx", inputs)
        probes.sums_agree(total, float(np.sum(x * dx)),
                          f"{backward}: sum(out * dout) vs sum(x * dx)", inputs)
    with partial.part("sum(out * dout) == sum(w * dw)"):
        dw = expect_array(dw, f"{backward} dw", shape=w.shape, inputs=inputs)
        probes.require_not_constant(out, f"{forward} out", inputs)
        probes.require_nonzero(dw, None, f"{backward} dw", inputs)
        probes.sums_agree(total, float(np.sum(w * dw)),
                          f"{backward}: sum(out * dout) vs sum(w * dw)", inputs)
    with partial.part("db == dout.sum(axis=(0, 2, 3))"):
        _, cache = expect_tuple(getattr(student, forward)(x, w, b, conv_param), 2, forward)
        _, _, db = expect_tuple(getattr(student, backward)(dout, cache), 3, backward)
        assert_close(db, dout.sum(axis=(0, 2, 3)), f"{backward} db vs dout.sum(axis=(0, 2, 3))",
                     inputs=probes.conv_described(x, w, b, conv_param, dout=dout))


# ---- the fast convolution on a large input ------------------------------------------------------

@pytest.mark.points(6)
@pytest.mark.time_limit(40)
@pytest.mark.covers("conv_forward_fast")
def test_conv_forward_fast_large(student, reference, rng, partial, probes):
    """conv_forward_fast: equals the naive version on a large input, at least 10x faster

    Gate: the speed part pays only if the values of the same call match the reference.
    """
    x, w, b, conv_param = probes.conv_inputs(rng, LARGE_CASE)
    inputs = probes.conv_described(x, w, b, conv_param)
    result, seconds = probes.timed(lambda: student.conv_forward_fast(x, w, b, conv_param))
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
        probes.check_speed("conv_forward_fast",
                           lambda: student.conv_forward_fast(x, w, b, conv_param), seconds,
                           naive_seconds, inputs)


@pytest.mark.points(6)
@pytest.mark.time_limit(40)
@pytest.mark.covers("conv_backward_fast")
def test_conv_backward_fast_large(student, reference, rng, partial, probes):
    """conv_backward_fast: equals the naive version on a large input, at least 10x faster

    Gate: the speed part pays only if dx, dw and db of the same call match the reference.
    """
    x, w, b, conv_param = probes.conv_inputs(rng, LARGE_CASE)
    dout = rng.standard_normal(probes.conv_out_shape(LARGE_CASE))
    inputs = probes.conv_described(x, w, b, conv_param, dout=dout)

    def own_run():
        _, cache = expect_tuple(student.conv_forward_fast(x, w, b, conv_param), 2,
                                "conv_forward_fast")
        result, seconds = probes.timed(lambda: student.conv_backward_fast(dout, cache))
        return expect_tuple(result, 3, "conv_backward_fast"), cache, seconds
    _, ref_cache = reference.conv_forward_fast(x, w, b, conv_param)
    start = time.process_time()
    expected = reference.conv_backward_naive(dout, ref_cache)
    naive_seconds = time.process_time() - start
    # With your own cache, or, where your forward is wrong (its own tests), with the cache
    # (x, w, b, conv_param) as the notebook describes it, made by the reference.
    on_reference = own_parts(lambda: probes.timed(lambda: expect_tuple(
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
        probes.check_speed("conv_backward_fast",
                           lambda: student.conv_backward_fast(dout, correct[1]), correct[2],
                           naive_seconds, inputs)


# ---- max pooling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(POOL_CASES))
@pytest.mark.points(2)
@pytest.mark.covers("max_pool_forward_naive")
def test_max_pool_forward_values(case, student, reference, rng, probes):
    """max_pool_forward_naive: output values against the reference"""
    x, pool_param = probes.pool_inputs(rng, POOL_CASES[case])
    out, _ = expect_tuple(student.max_pool_forward_naive(x, pool_param), 2,
                          "max_pool_forward_naive")
    expected, _ = reference.max_pool_forward_naive(x, pool_param)
    assert_close(out, expected, "max_pool_forward_naive out",
                 inputs=probes.pool_described(x, pool_param))


@pytest.mark.parametrize("case", list(POOL_CASES))
@pytest.mark.points(3)
@pytest.mark.covers("max_pool_backward_naive", "max_pool_forward_naive")
def test_max_pool_backward(case, student, reference, rng, partial, probes):
    """max_pool_backward_naive: against the reference and the numerical gradient

    Gate for the numerical part: your max_pool_forward_naive must change when x changes (as
    the reference's does) and your dx must not be all zeros; zeros agree with the numerical
    gradient of a zero forward.
    """
    x, pool_param = probes.pool_inputs(rng, POOL_CASES[case])
    dout = rng.standard_normal(probes.pool_out_shape(POOL_CASES[case]))
    inputs = probes.pool_described(x, pool_param, dout=dout)
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
        probes.require_dependence(numeric, ref_numeric, "max_pool_forward_naive out", "x", inputs)
        probes.require_nonzero(dx, ref_dx, "max_pool_backward_naive dx", inputs)
        assert_gradient(dx, numeric, "max_pool_backward_naive dx", tol=1e-7, inputs=inputs)


@pytest.mark.parametrize("case", list(POOL_CASES))
@pytest.mark.points(1)
@pytest.mark.covers("max_pool_backward_naive")
def test_max_pool_backward_preserves_sum(case, student, rng, probes):
    """max_pool_backward_naive: every output's gradient lands somewhere, sum(dx) == sum(dout)

    Gate: dx must not be constant: a constant dx (zeros, ones) routes no gradient to the
    window maxima, and the reference's, zero away from them, never is constant here.
    """
    x, pool_param = probes.pool_inputs(rng, POOL_CASES[case])
    dout = rng.uniform(0.5, 1.5, probes.pool_out_shape(POOL_CASES[case]))
    inputs = probes.pool_described(x, pool_param, dout=dout)
    _, cache = expect_tuple(student.max_pool_forward_naive(x, pool_param), 2,
                            "max_pool_forward_naive")
    dx = expect_array(student.max_pool_backward_naive(dout, cache), "max_pool_backward_naive dx",
                      shape=x.shape, inputs=inputs)
    probes.require_not_constant(dx, "max_pool_backward_naive dx", inputs)
    probes.sums_agree(float(dout.sum()), float(dx.sum()),
                      "max_pool_backward_naive: sum(dout) vs sum(dx) (overlapping windows add up)",
                      inputs)


# ---- ConvNet -------------------------------------------------------------------------------------

# filter_size 5: "same" padding is 2 here, not 1.
NET_ARGS = dict(num_filters=3, filter_size=5, hidden_dim=7, num_classes=4, weight_scale=0.3,
                reg=0.2)
SMALL_NET_ARGS = dict(num_filters=2, filter_size=3, hidden_dim=4, num_classes=3,
                      weight_scale=0.5, reg=0.3)


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
def test_convnet_scores(student, reference, reference_with, rng, probes):
    """ConvNet.loss(X): scores with given parameters (filter_size 5)"""
    args = probes.runnable_args(student, reference, NET_ARGS)
    X, _ = probes.net_data(rng, args)
    params = probes.random_params(rng, args)
    net, ref = probes.nets_with(student, reference, params, args)
    scores = net.loss(X)
    # Right with the reference's convolution or with the student's own (its tests charge it).
    hybrid = reference_with(conv_forward_fast=student.conv_forward_fast)
    own = own_parts(lambda: probes.nets_with(hybrid, reference, params, args)[0].loss(X))
    one_of(lambda want: assert_close(scores, want, "ConvNet scores",
                                     inputs=dict(X=X, **args)), [ref.loss(X), own])


@pytest.mark.points(5)
@pytest.mark.covers("ConvNet")
def test_convnet_loss_and_gradients(student, reference, reference_with, rng, partial, probes):
    """ConvNet.loss(X, y): loss and every gradient, with reg > 0"""
    args = probes.runnable_args(student, reference, NET_ARGS)
    X, y = probes.net_data(rng, args)
    params = probes.random_params(rng, args)
    net, _ = probes.nets_with(student, reference, params, args)
    loss, grads = expect_tuple(net.loss(X, y), 2, "ConvNet.loss")
    candidates = probes.net_candidates(reference, reference_with, student, params, args, X, y)
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
def test_convnet_numerical_gradients(student, reference, reference_with, rng, partial, probes):
    """ConvNet: gradients agree with numerical gradients of your loss

    Gate (per parameter): your loss must change when that parameter changes (as the
    reference's does) and your gradient must not be all zeros; a constant loss with zero
    gradients agrees with its own numerical gradient.
    """
    args = probes.runnable_args(student, reference, SMALL_NET_ARGS)
    X, y = probes.net_data(rng, args, n=3)
    params = probes.random_params(rng, args)
    net, ref = probes.nets_with(student, reference, params, args)
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
    composed = probes.net_candidates(reference, reference_with, student, params, args, X,
                                     y)[1]
    for key in sorted(params):
        with partial.part(f"grads[{key!r}]"):
            def of_own_loss(_, key=key):
                numeric = numeric_gradient(
                    loss_of(net, key, lambda v: expect_scalar(v, "ConvNet loss")), params[key])
                got = expect_array(grads.get(key), f"ConvNet grads[{key!r}]",
                                   shape=numeric.shape, inputs=inputs)
                probes.require_dependence(numeric, ref_numeric[key], "ConvNet loss",
                                          f"params[{key!r}]", inputs)
                probes.require_nonzero(got, ref_grads[key], f"ConvNet grads[{key!r}]", inputs)
                assert_gradient(got, numeric, f"ConvNet grads[{key!r}]", tol=tol,
                                inputs=inputs)

            def of_own_layers(_, key=key):
                if composed is None:
                    raise CheckFailure("not comparable")
                assert_close(grads.get(key), comparable(composed, key), f"ConvNet grads[{key!r}]")
            one_of(lambda check: check(None), [of_own_loss, of_own_layers])


# ---- training ------------------------------------------------------------------------------------

# The recipe, TRAIN, is conftest's (probes.TRAIN): train_convnet, there, takes it as its default.

@pytest.mark.points(10)
@pytest.mark.time_limit(60)
@pytest.mark.covers("ConvNet", "conv_forward_fast", "conv_backward_fast")
@pytest.mark.integration  # end to end: any upstream mistake costs here
def test_trained_accuracy(student, digits, train_seed, probes):
    """Training: your ConvNet reaches 94% test accuracy on digits"""
    recipe = dict(probes.TRAIN, seed=train_seed)
    accuracy = probes.train_convnet(student, digits, recipe)
    assert_metric(accuracy, 0.94, "test accuracy",
                  detail=f"after training with Adam and {recipe}; the reference reaches about "
                         "0.97 with the same recipe")
