"""Hidden tests for hw1_backprop: every function of the contract, against the reference.

Inputs break symmetry on purpose: N > 1, D != H != C, non-zero biases, reg > 0, so that a
transposed matrix, a missing sum or a forgotten term cannot pass by coincidence.
"""
import numpy as np
import pytest

from autograder.testing import (CheckFailure, assert_close, assert_gradient, assert_metric,
                                assert_not_mutated, check_initial_params, comparable, disguise,
                                expect_scalar, expect_tuple, gradient_tolerance, norm_error,
                                numeric_gradient, numeric_vjp, one_of, own_parts,
                                require_nontrivial_gradient)

VALUE_TOL = 1e-7  # same float64 formula, different operation order: ~1e-14 in practice


# ---- nothing for nothing ---------------------------------------------------------------------
# A property (inputs left unchanged, agreement with the numerical gradient of your own forward)
# holds trivially for a function that computes nothing: one returning zeros, a constant or its
# input unchanged leaves its inputs alone, and a constant forward "agrees" with a zero backward.
# Every property test below therefore pays only once a gate shows the function computes
# something; each test's docstring names its gate.


# ---- affine ----------------------------------------------------------------------------------

@pytest.mark.points(4)
@pytest.mark.covers("affine_forward")
def test_affine_forward_values(student, reference, rng, probes):
    """affine_forward: output values on a (4, 3, 2) input"""
    x, w, b = probes.affine_inputs(rng)
    out, _ = expect_tuple(student.affine_forward(x, w, b), 2, "affine_forward")
    expected, _ = reference.affine_forward(x, w, b)
    assert_close(out, expected, "affine_forward out", inputs=dict(x=x, w=w, b=b))


@pytest.mark.points(1)
@pytest.mark.covers("affine_forward")
def test_affine_forward_does_not_mutate(student, reference, rng, probes):
    """affine_forward: inputs are left unchanged

    Gate: out is not trivial (zeros, one number, an input) and changes with the inputs, as the
    reference's does."""
    x, w, b = probes.affine_inputs(rng)
    result, args, _ = student.affine_forward.call_returning_args(x, w, b)
    other = (2 * x + 0.5, w[::-1].copy(), -b)
    probes.require_nontrivial("affine_forward", probes.first_output("affine_forward", "out"),
                              result, reference.affine_forward(x, w, b), dict(x=x, w=w, b=b),
                              again=(student.affine_forward(*other),
                                     reference.affine_forward(*other)))
    assert_not_mutated({"x": x, "w": w, "b": b}, dict(zip("xwb", args, strict=False)),
                       "affine_forward")


@pytest.mark.points(5)
@pytest.mark.covers("affine_backward")
def test_affine_backward_matches_reference(student, reference, rng, partial, probes):
    """affine_backward: dx, dw, db against the reference"""
    x, w, b = probes.affine_inputs(rng)
    dout = rng.standard_normal((4, 5))
    _, cache = reference.affine_forward(x, w, b)
    expected = reference.affine_backward(dout, cache)
    _, student_cache = expect_tuple(student.affine_forward(x, w, b), 2, "affine_forward")
    grads = expect_tuple(student.affine_backward(dout, student_cache), 3, "affine_backward")
    for name, got, want, weight in zip(("dx", "dw", "db"), grads, expected, (2, 2, 1),
                                       strict=False):
        with partial.part(name, weight):
            assert_close(got, want, f"affine_backward {name}",
                         inputs=dict(x=x, w=w, b=b, dout=dout))


@pytest.mark.points(3)
@pytest.mark.covers("affine_backward")
def test_affine_backward_numerical(student, reference, rng, partial, probes):
    """affine_backward: agrees with numerical gradients of your affine_forward

    Gate, per gradient: your affine_forward's output changes when that input changes (as the
    reference's does) and your gradient is not all zeros (as the reference's is not)."""
    x, w, b = probes.affine_inputs(rng)
    dout = rng.standard_normal((4, 5))
    inputs = dict(x=x, w=w, b=b, dout=dout)

    def forward(impl):
        return lambda *args: impl.affine_forward(*args)[0]

    _, ref_cache = reference.affine_forward(x, w, b)
    ref_grads = reference.affine_backward(dout, ref_cache)
    ref_err = max(norm_error(g, numeric_vjp(forward(reference), [x, w, b], i, dout))
                  for i, g in enumerate(ref_grads))
    tol = gradient_tolerance(ref_err)
    _, cache = expect_tuple(student.affine_forward(x, w, b), 2, "affine_forward")
    grads = expect_tuple(student.affine_backward(dout, cache), 3, "affine_backward")
    # The gradient of your own forward, or, where your forward is wrong (its own tests), the
    # gradient of the contract's forward on the contract's cache (x, w, b).
    on_contract = own_parts(lambda: expect_tuple(student.affine_backward(dout, ref_cache), 3,
                                                 "affine_backward"))
    for i, (name, got) in enumerate(zip(("dx", "dw", "db"), grads, strict=True)):
        with partial.part(name):
            def of_own_forward(_, i=i, name=name, got=got):
                numeric = numeric_vjp(forward(student), [x, w, b], i, dout)
                require_nontrivial_gradient(got, numeric, ref_grads[i],
                                            f"affine_backward {name}", "affine_forward", "xwb"[i])
                assert_gradient(got, numeric, f"affine_backward {name}", tol=tol,
                                inputs=inputs)

            def of_contract_forward(_, i=i, name=name):
                if on_contract is None:
                    raise CheckFailure("not comparable")
                assert_gradient(on_contract[i], ref_grads[i], f"affine_backward {name}",
                                tol=tol)
            one_of(lambda check: check(None), [of_own_forward, of_contract_forward])


@pytest.mark.points(2)
@pytest.mark.covers("relu_forward", "relu_backward", "affine_backward", "softmax_loss")
def test_layers_do_not_mutate_inputs(student, reference, rng, partial, probes):
    """layers: relu, affine_backward and softmax_loss leave their inputs unchanged

    Gate, per part: the call's result is not trivial (zeros, one number, an input returned
    unchanged) and changes with the inputs, as the reference's does."""
    x = rng.standard_normal((4, 5))
    dout = rng.standard_normal((4, 5))
    y = np.arange(4) % 5
    with partial.part("relu_forward"):
        result, args, _ = student.relu_forward.call_returning_args(x)
        x2 = -2 * x + 0.5
        probes.require_nontrivial("relu_forward", probes.first_output("relu_forward", "out"),
                                  result, reference.relu_forward(x), dict(x=x),
                                  again=(student.relu_forward(x2), reference.relu_forward(x2)))
        assert_not_mutated({"x": x}, {"x": args[0]}, "relu_forward")
    with partial.part("relu_backward"):
        _, cache = expect_tuple(student.relu_forward(x), 2, "relu_forward")
        _, ref_cache = reference.relu_forward(x)
        result, args, _ = student.relu_backward.call_returning_args(dout, cache)
        dout2 = -2 * dout + 0.5
        probes.require_nontrivial("relu_backward", lambda r: [("dx", r)], result,
                                  reference.relu_backward(dout, ref_cache), dict(dout=dout, x=x),
                                  again=(student.relu_backward(dout2, cache),
                                         reference.relu_backward(dout2, ref_cache)))
        assert_not_mutated({"dout": dout}, {"dout": args[0]}, "relu_backward")
    with partial.part("affine_backward"):
        w, b = rng.standard_normal((5, 3)), rng.standard_normal(3)
        _, cache = expect_tuple(student.affine_forward(x, w, b), 2, "affine_forward")
        _, ref_cache = reference.affine_forward(x, w, b)
        up = rng.standard_normal((4, 3))
        result, args, _ = student.affine_backward.call_returning_args(up, cache)
        up2 = -2 * up + 0.5

        def grads(r):
            return list(zip(("dx", "dw", "db"), expect_tuple(r, 3, "affine_backward"),
                            strict=True))

        probes.require_nontrivial("affine_backward", grads, result,
                                  reference.affine_backward(up, ref_cache), dict(dout=up, x=x, w=w),
                                  again=(student.affine_backward(up2, cache),
                                         reference.affine_backward(up2, ref_cache)))
        assert_not_mutated({"dout": up}, {"dout": args[0]}, "affine_backward")
    with partial.part("softmax_loss"):
        result, args, _ = student.softmax_loss.call_returning_args(x, y)
        x2 = -2 * x + 0.5

        def loss_and_dx(r):
            return list(zip(("loss", "dx"), expect_tuple(r, 2, "softmax_loss"), strict=True))

        probes.require_nontrivial("softmax_loss", loss_and_dx, result, reference.softmax_loss(x, y),
                                  dict(x=x), again=(student.softmax_loss(x2, y),
                                                    reference.softmax_loss(x2, y)))
        assert_not_mutated({"x": x}, {"x": args[0]}, "softmax_loss")


# ---- relu ------------------------------------------------------------------------------------

@pytest.mark.points(2)
@pytest.mark.covers("relu_forward")
def test_relu_forward_values(student, reference, rng):
    """relu_forward: values, including exact zeros and negative inputs"""
    x = rng.standard_normal((3, 4, 5))
    x[0, 0, :2] = 0.0
    out, _ = expect_tuple(student.relu_forward(x), 2, "relu_forward")
    expected, _ = reference.relu_forward(x)
    assert_close(out, expected, "relu_forward out", inputs=dict(x=x))


@pytest.mark.points(3)
@pytest.mark.covers("relu_backward")
def test_relu_backward(student, reference, rng, partial):
    """relu_backward: against the reference and the numerical gradient

    Gate of the numerical part: your relu_forward's output changes when x changes and your dx
    is not all zeros, where the reference's gradient is not zero."""
    x = rng.standard_normal((3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # no kinks within the finite-difference step
    dout = rng.standard_normal(x.shape)
    inputs = dict(x=x, dout=dout)
    _, cache = expect_tuple(student.relu_forward(x), 2, "relu_forward")
    dx = student.relu_backward(dout, cache)
    _, ref_cache = reference.relu_forward(x)
    ref_dx = reference.relu_backward(dout, ref_cache)
    with partial.part("against the reference", 2):
        assert_close(dx, ref_dx, "relu_backward dx", inputs=inputs)
    with partial.part("numerical gradient"):
        numeric = numeric_vjp(lambda v: student.relu_forward(v)[0], [x], 0, dout)
        require_nontrivial_gradient(dx, numeric, ref_dx, "relu_backward dx", "relu_forward", "x")
        assert_gradient(dx, numeric, "relu_backward dx", tol=1e-7, inputs=inputs)


# ---- softmax ---------------------------------------------------------------------------------

@pytest.mark.points(4)
@pytest.mark.covers("softmax_loss")
def test_softmax_loss_matches_reference(student, reference, rng, partial, probes):
    """softmax_loss: loss and dx against the reference"""
    x, y = probes.logits_and_labels(rng)
    loss, dx = expect_tuple(student.softmax_loss(x, y), 2, "softmax_loss")
    ref_loss, ref_dx = reference.softmax_loss(x, y)
    with partial.part("loss"):
        assert_close(loss, ref_loss, "softmax_loss loss", inputs=dict(x=x, y=y))
    with partial.part("dx"):
        assert_close(dx, ref_dx, "softmax_loss dx", inputs=dict(x=x, y=y))


@pytest.mark.points(3)
@pytest.mark.covers("softmax_loss")
def test_softmax_loss_numerical(student, reference, rng, probes):
    """softmax_loss: dx agrees with the numerical gradient of your loss

    Gate: your loss changes when x changes (as the reference's does) and your dx is not all
    zeros (as the reference's is not)."""
    x, y = probes.logits_and_labels(rng)
    ref_dx = reference.softmax_loss(x, y)[1]
    ref_err = norm_error(ref_dx, numeric_gradient(lambda v: reference.softmax_loss(v, y)[0], x))
    _, dx = expect_tuple(student.softmax_loss(x, y), 2, "softmax_loss")
    numeric = numeric_gradient(
        lambda v: expect_scalar(student.softmax_loss(v, y)[0], "softmax_loss loss"), x)
    require_nontrivial_gradient(dx, numeric, ref_dx, "softmax_loss dx", "softmax_loss loss", "x")
    assert_gradient(dx, numeric, "softmax_loss dx", tol=gradient_tolerance(ref_err),
                    inputs=dict(x=x, y=y))


@pytest.mark.points(3)
@pytest.mark.covers("softmax_loss")
def test_softmax_loss_stable(student, reference, rng, probes):
    """softmax_loss: finite and correct for logits of +-1000"""
    x, y = probes.logits_and_labels(rng, scale=1000.0)
    x[0, :] = 1000.0
    x[1, :] = -1000.0
    loss, dx = expect_tuple(student.softmax_loss(x, y), 2, "softmax_loss")
    ref_loss, ref_dx = reference.softmax_loss(x, y)
    inputs = dict(x=x, y=y)
    assert_close(loss, ref_loss, "softmax_loss loss at logits of +-1000", inputs=inputs)
    assert_close(dx, ref_dx, "softmax_loss dx at logits of +-1000", inputs=inputs)


# ---- FullyConnectedNet -----------------------------------------------------------------------

@pytest.mark.points(4)
@pytest.mark.covers("FullyConnectedNet")
def test_net_initialisation(student, partial):
    """FullyConnectedNet: parameter names, shapes, dtype and initial statistics"""
    scale = 0.05
    net = student.FullyConnectedNet([40, 30], input_dim=64, num_classes=10, weight_scale=scale,
                                    seed=3)
    expected = {"W1": (64, 40), "b1": (40,), "W2": (40, 30), "b2": (30,), "W3": (30, 10),
                "b3": (10,)}
    # 300+ samples per matrix: the sample std is within a few percent of weight_scale.
    check_initial_params(net.params, expected, scale, partial, "FullyConnectedNet")


@pytest.mark.points(4)
@pytest.mark.covers("FullyConnectedNet")
def test_net_scores(student, reference, reference_with, rng, probes):
    """FullyConnectedNet.loss(X): scores with given parameters"""
    X, _ = probes.net_data(rng)
    params = probes.random_params(rng)
    scores = probes.net_with_params(student, params).loss(X)
    # Right with the reference's layers or with the student's own (their tests charge them).
    hybrid = reference_with(**{name: getattr(student, name) for name in probes.LAYERS})
    own = own_parts(lambda: probes.net_with_params(hybrid, params).loss(X))
    if own is not None and not np.any(np.asarray(own)):
        own = None  # do-nothing layers: matching them pays nothing
    one_of(lambda want: assert_close(scores, want, "FullyConnectedNet scores", inputs=dict(X=X)),
           [probes.net_with_params(reference, params).loss(X), own])


@pytest.mark.points(6)
@pytest.mark.covers("FullyConnectedNet")
def test_net_loss_and_gradients(student, reference, reference_with, rng, partial, probes):
    """FullyConnectedNet.loss(X, y): loss and every gradient, with reg > 0"""
    X, y = probes.net_data(rng)
    params = probes.random_params(rng)
    net = probes.net_with_params(student, params)
    loss, grads = probes.loss_and_grads(net, X, y)
    candidates = probes.net_candidates(reference, reference_with, student, params, X, y)
    inputs = dict(X=X, y=y, reg=probes.NET_ARGS["reg"])
    with partial.part("loss", 2):
        one_of(lambda want: assert_close(loss, want[0], "FullyConnectedNet loss",
                                         inputs=inputs), candidates)
    for key in sorted(candidates[0][1]):
        with partial.part(f"grads[{key!r}]"):
            if key not in grads:
                raise CheckFailure(f"grads has no {key!r}")
            one_of(lambda want, key=key: assert_close(
                grads[key], comparable(want, key), f"FullyConnectedNet grads[{key!r}]",
                inputs=inputs), candidates)


@pytest.mark.points(4)
@pytest.mark.covers("FullyConnectedNet")
def test_net_numerical_gradients(student, reference, reference_with, rng, partial, probes):
    """FullyConnectedNet: gradients agree with numerical gradients of your loss

    Gate, per parameter: your loss changes when the parameter changes and your gradient is not
    all zeros, where the reference's gradient is not zero."""
    X, y = probes.net_data(rng)
    params = probes.random_params(rng)
    _, ref_grads = probes.net_with_params(reference, params).loss(X, y)
    net = probes.net_with_params(student, params)
    _, grads = probes.loss_and_grads(net, X, y)
    # Where your layers are wrong (their own tests), the contract's net built on them is right
    # too, though its gradients are then not those of its loss.
    composed = probes.net_candidates(reference, reference_with, student, params, X, y)[1]
    for key in sorted(params):
        with partial.part(f"grads[{key!r}]"):
            def of_own_loss(_, key=key):
                def loss_at(value):
                    net.params = {**params, key: value}
                    return expect_scalar(net.loss(X, y)[0], "FullyConnectedNet loss")

                numeric = numeric_gradient(loss_at, params[key])
                require_nontrivial_gradient(grads.get(key), numeric, ref_grads[key],
                                            f"FullyConnectedNet grads[{key!r}]",
                                            "FullyConnectedNet.loss", f"params[{key!r}]")
                assert_gradient(grads.get(key), numeric, f"FullyConnectedNet grads[{key!r}]",
                                tol=1e-6, inputs=dict(X=X, y=y, reg=probes.NET_ARGS["reg"]))

            def of_own_layers(_, key=key):
                if composed is None:
                    raise CheckFailure("not comparable")
                assert_close(grads.get(key), comparable(composed, key),
                             f"FullyConnectedNet grads[{key!r}]")
            one_of(lambda check: check(None), [of_own_loss, of_own_layers])


# ---- optimizers ------------------------------------------------------------------------------

OPTIMIZER_CASES = {
    "sgd": {"learning_rate": 0.1},
    "sgd_momentum": {"learning_rate": 0.1, "momentum": 0.8},
    "rmsprop": {"learning_rate": 0.01, "decay_rate": 0.9},
    "adam": {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.95},
}


def rules(names):
    """One parameter per update rule, each tagged covers(rule): the null audit then replaces
    each rule alone too, not only every function at once."""
    return [pytest.param(name, id=name, marks=pytest.mark.covers(name)) for name in names]


@pytest.mark.parametrize("rule", rules(OPTIMIZER_CASES))
@pytest.mark.points(3)
def test_optimizer_steps(rule, student, reference, rng, partial, probes):
    """optimizer: three steps against the reference (non-default hyperparameters)"""
    w = rng.standard_normal((4, 3))
    dws = [rng.standard_normal((4, 3)) for _ in range(3)]
    got = probes.run_steps(student, rule, w, dws, dict(OPTIMIZER_CASES[rule]))
    want = probes.run_steps(reference, rule, w, dws, dict(OPTIMIZER_CASES[rule]))
    for step, ((w_got, _), (w_want, _)) in enumerate(zip(got, want, strict=False), start=1):
        with partial.part(f"step {step}"):
            assert_close(w_got, w_want, f"{rule} next_w after step {step}",
                         inputs=dict(w=w, dw=dws[step - 1]))


@pytest.mark.parametrize("rule", rules(["rmsprop", "adam"]))
@pytest.mark.points(2)
def test_optimizer_small_gradients(rule, student, reference, rng, probes):
    """optimizer: two steps with tiny gradients, where epsilon's placement matters"""
    w = rng.standard_normal((4, 3))
    dws = [1e-5 * rng.standard_normal((4, 3)) for _ in range(2)]
    got = probes.run_steps(student, rule, w, dws, {"learning_rate": 1e-3})
    want = probes.run_steps(reference, rule, w, dws, {"learning_rate": 1e-3})
    assert_close(got[-1][0], want[-1][0], f"{rule} next_w after two steps with |dw| ~ 1e-5",
                 inputs=dict(w=w, dw=dws[-1]))


@pytest.mark.parametrize("rule", rules(OPTIMIZER_CASES))
@pytest.mark.points(1)
def test_optimizer_defaults(rule, student, reference, rng):
    """optimizer: config=None fills in the documented defaults"""
    w = rng.standard_normal((3, 2))
    dw = rng.standard_normal((3, 2))
    w_got, config = expect_tuple(getattr(student, rule)(w, dw, None), 2, rule)
    w_want, ref_config = getattr(reference, rule)(w, dw, None)
    if type(config) is not dict:
        raise CheckFailure(f"{rule} should return its config dict, got {type(config).__name__}")
    for key, value in ref_config.items():
        if not isinstance(value, np.ndarray):
            if key not in config or not np.isclose(expect_scalar(config[key], f"config[{key!r}]"),
                                                   value):
                raise CheckFailure(f"{rule} with config=None: config[{key!r}] is "
                                   f"{config.get(key)!r}, expected the default {value!r}")
    assert_close(w_got, w_want, f"{rule} next_w with default config", inputs=dict(w=w, dw=dw))


@pytest.mark.parametrize("rule", rules(OPTIMIZER_CASES))
@pytest.mark.points(1)
def test_optimizer_leaves_dw_unchanged(rule, student, reference, rng, probes):
    """optimizer: dw is left unchanged (w may be updated in place, returned as next_w)

    The contract: an optimizer may update w in place provided it returns the updated array as
    next_w; it never modifies dw. Gate: next_w is not trivial (zeros, one number, w or dw
    unchanged) and changes with w and dw, as the reference's does."""
    w = rng.standard_normal((3, 2))
    dw = rng.standard_normal((3, 2))
    update, ref_update = getattr(student, rule), getattr(reference, rule)

    def config():
        return dict(OPTIMIZER_CASES[rule])

    result, args, _ = update.call_returning_args(w, dw, config())
    w2, dw2 = w + 1.0, -2 * dw + 0.5
    probes.require_nontrivial(rule, probes.first_output(rule, "next_w"), result,
                              ref_update(w.copy(), dw.copy(), config()), dict(w=w, dw=dw),
                              again=(update(w2, dw2, config()), ref_update(w2.copy(), dw2.copy(),
                                                                           config())))
    assert_not_mutated({"dw": dw}, {"dw": args[1]}, rule)
    w_after, next_w = args[0], result[0]
    if not (type(w_after) is np.ndarray and w_after.shape == w.shape
            and (np.array_equal(w_after, w) or np.array_equal(w_after, next_w))):
        raise CheckFailure(f"{rule} changed w in place to something other than the next_w it "
                           "returned: update w in place only with the step itself, or leave it "
                           "unchanged and return a new array", what=rule)


# ---- training --------------------------------------------------------------------------------

# The trained check trains on a disguised copy of digits (features shuffled and half of them
# negated, labels renamed; data.disguise) and evaluates the trained params with the reference's
# forward pass here, on test rows the worker is never sent: a net that looks rows up in the
# bundled digits, or was fitted to them, learns nothing it can use.
DISGUISE_SEED = 70_913


@pytest.mark.points(10)
@pytest.mark.time_limit(60)
@pytest.mark.covers("FullyConnectedNet", "adam")
@pytest.mark.integration  # end to end: any upstream mistake costs here
def test_trained_accuracy(student, reference, digits, train_seed, probes):
    """Training: your net and adam reach 95% test accuracy on digits"""
    recipe = dict(probes.TRAIN, seed=train_seed)
    accuracy = probes.train_net(student, reference, disguise(digits, DISGUISE_SEED + train_seed,
                                                             flip="sign"), recipe)
    assert_metric(accuracy, 0.95, "test accuracy",
                  detail=f"after training with {recipe} on a disguised copy of digits "
                         "(features shuffled and half negated, labels renamed), measured by "
                         "the grader's forward pass with your trained params on test rows your "
                         "code never sees; the reference reaches about 0.97 with the same "
                         "recipe")
