"""Hidden tests for hw3_bptt: every function of the contract, against the reference.

Inputs break symmetry on purpose: N > 1, D != H != V, non-zero h0 and biases, sequences of
T >= 10 steps with a recurrent weight large enough that gradients from the last step still
reach the first one, masks and padding that differ between rows.
"""
import numpy as np
import pytest

from autograder.testing import (CheckFailure, assert_close, assert_gradient, assert_metric,
                                assert_not_mutated, expect_array, expect_scalar, expect_tuple,
                                gradient_tolerance, norm_error, numeric_gradient, numeric_vjp,
                                one_of)

STEP_NAMES = ("dx", "dprev_h", "dWx", "dWh", "db")
RNN_NAMES = ("dx", "dh0", "dWx", "dWh", "db")
STEP_ARGS = ("x", "prev_h", "Wx", "Wh", "b")
RNN_ARGS = ("x", "h0", "Wx", "Wh", "b")


# ---- each mistake costs once -----------------------------------------------------------------
# A composite (rnn_forward over rnn_step_forward, rnn_backward over rnn_step_backward and
# rnn_forward's cache, the language model over every layer) is right when it matches the
# reference, or the contract's composite run here around the student's own parts (a
# reference_with copy): a wrong part then costs only in its own tests. A backward whose cache
# format the contract fixes is called with the reference's cache, so the forward's mistakes
# never reach it.


# ---- gates: nothing for nothing ---------------------------------------------------------------
# A function that does nothing (returns zeros, a constant, or its own input) also has some of
# the properties tested below: it leaves its arguments alone, its zero backward agrees with the
# zero numerical gradient of its zero forward, it returns 0 when nothing is counted. Such a test
# pays only when the function passes a gate in the same test: its result is not degenerate
# where the reference's is not (require_computes), or, for a numerical-gradient check, the
# forward depends on the input and the backward is not zero where the reference's are not
# (require_gradient_computes). Each test's docstring comment names its gate.


# ---- one step -------------------------------------------------------------------------------

@pytest.mark.points(3)
@pytest.mark.covers("rnn_step_forward")
def test_rnn_step_forward_values(student, reference, rng, probes):
    """rnn_step_forward: next_h values on a (3, 4) input with H = 5"""
    args = probes.step_inputs(rng)
    next_h, _ = expect_tuple(student.rnn_step_forward(*args), 2, "rnn_step_forward")
    expected, _ = reference.rnn_step_forward(*args)
    assert_close(next_h, expected, "rnn_step_forward next_h",
                 inputs=dict(zip(("x", "prev_h", "Wx", "Wh", "b"), args, strict=True)))


@pytest.mark.points(5)
@pytest.mark.covers("rnn_step_backward")
def test_rnn_step_backward_matches_reference(student, reference, rng, partial, probes):
    """rnn_step_backward: dx, dprev_h, dWx, dWh, db against the reference"""
    args = probes.step_inputs(rng)
    dnext = rng.standard_normal((3, 5))
    grads = probes.backward_of(student, "rnn_step_forward", "rnn_step_backward", args, dnext, 5)
    expected = probes.backward_of(reference, "rnn_step_forward", "rnn_step_backward", args,
                                  dnext, 5)
    # With your own cache, or, where your forward is wrong (its own test), with the cache the
    # notebook describes made by the reference (if your backward reads that format).
    on_contract = probes.on_reference_cache(reference, student, "rnn_step_forward",
                                            "rnn_step_backward", args, dnext, 5)
    inputs = dict(x=args[0], prev_h=args[1], dnext_h=dnext)
    for i, (name, want) in enumerate(zip(STEP_NAMES, expected, strict=True)):
        with partial.part(name):
            one_of(lambda got, i=i, name=name, want=want: assert_close(
                got[i], want, f"rnn_step_backward {name}", inputs=inputs),
                [grads, on_contract])


@pytest.mark.points(3)
@pytest.mark.covers("rnn_step_backward")
def test_rnn_step_backward_numerical(student, reference, rng, partial, probes):
    """rnn_step_backward: agrees with numerical gradients of your rnn_step_forward"""
    # Gate (require_gradient_computes), per gradient: your rnn_step_forward changes when that
    # argument changes and your gradient is not all zeros, as the reference's.
    args = probes.step_inputs(rng)
    dnext = rng.standard_normal((3, 5))
    tol = gradient_tolerance(probes.reference_vjp_error(reference, "rnn_step_forward",
                                                        "rnn_step_backward", args, dnext, 5))
    expected = probes.backward_of(reference, "rnn_step_forward", "rnn_step_backward", args,
                                  dnext, 5)
    grads = probes.backward_of(student, "rnn_step_forward", "rnn_step_backward", args, dnext, 5)
    # The gradient of your own forward, or, where your forward is wrong (its own test), the
    # gradient of the contract's forward on the reference's cache (if your backward reads it).
    on_contract = probes.on_reference_cache(reference, student, "rnn_step_forward",
                                            "rnn_step_backward", args, dnext, 5)
    for i, (name, got) in enumerate(zip(STEP_NAMES, grads, strict=True)):
        with partial.part(name):
            def of_own_forward(_, i=i, name=name, got=got):
                numeric = numeric_vjp(probes.first(student, "rnn_step_forward"), list(args), i,
                                      dnext)
                probes.require_gradient_computes(got, numeric, expected[i],
                                                 f"rnn_step_backward {name}", "rnn_step_forward",
                                                 STEP_ARGS[i])
                assert_gradient(got, numeric, f"rnn_step_backward {name}", tol=tol,
                                inputs=dict(x=args[0], prev_h=args[1], dnext_h=dnext))

            def of_contract_forward(_, i=i, name=name):
                if on_contract is None:
                    raise CheckFailure("not comparable")
                assert_gradient(on_contract[i], expected[i], f"rnn_step_backward {name}",
                                tol=tol)
            one_of(lambda check: check(None), [of_own_forward, of_contract_forward])


# ---- whole sequence ---------------------------------------------------------------------------

@pytest.mark.points(4)
@pytest.mark.covers("rnn_forward")
def test_rnn_forward_values(student, reference, reference_with, rng, probes):
    """rnn_forward: hidden states of a T = 10 sequence from a non-zero h0"""
    args = probes.rnn_inputs(rng)
    h, _ = expect_tuple(student.rnn_forward(*args), 2, "rnn_forward")
    expected, _ = reference.rnn_forward(*args)
    h = expect_array(h, "rnn_forward h", shape=expected.shape)
    hybrid = reference_with(rnn_step_forward=student.rnn_step_forward)
    own = probes.own_parts(lambda: expect_array(hybrid.rnn_forward(*args)[0], "h",
                                                shape=expected.shape))

    def same_states(want):
        for t in range(want.shape[1]):  # the first wrong step says the most
            assert_close(h[:, t], want[:, t], f"rnn_forward h[:, {t}]",
                         inputs=dict(x=args[0], h0=args[1]))
    one_of(same_states, [expected, own])


@pytest.mark.points(6)
@pytest.mark.covers("rnn_backward")
def test_rnn_backward_matches_reference(student, reference, reference_with, rng, partial, probes):
    """rnn_backward: dx, dh0, dWx, dWh, db of a T = 10 sequence against the reference"""
    args = probes.rnn_inputs(rng)
    dh = rng.standard_normal((3, 10, 5))
    _, cache = expect_tuple(student.rnn_forward(*args), 2, "rnn_forward")
    grads = expect_tuple(student.rnn_backward(dh, cache), 5, "rnn_backward")
    candidates = probes.rnn_backward_candidates(reference, reference_with, student, args, dh, cache)
    inputs = dict(x=args[0], h0=args[1], dh=dh)
    for i, (name, got, weight) in enumerate(zip(RNN_NAMES, grads, (2, 1, 1, 1, 1),
                                                strict=True)):
        with partial.part(name, weight):
            one_of(lambda want, i=i, name=name, got=got: assert_close(
                got, want[i], f"rnn_backward {name}", inputs=inputs), candidates)


@pytest.mark.points(5)
@pytest.mark.covers("rnn_backward")
def test_rnn_backward_numerical(student, reference, reference_with, rng, partial, probes):
    """rnn_backward: agrees with numerical gradients of your rnn_forward (T = 10, dh0 too)"""
    # Gate (require_gradient_computes), per gradient: your rnn_forward changes when that
    # argument changes and your gradient is not all zeros, as the reference's.
    args = probes.rnn_inputs(rng, N=2)
    dh = rng.standard_normal((2, 10, 5))
    tol = gradient_tolerance(probes.reference_vjp_error(reference, "rnn_forward", "rnn_backward",
                                                        args, dh, 5))
    expected = probes.backward_of(reference, "rnn_forward", "rnn_backward", args, dh, 5)
    _, cache = expect_tuple(student.rnn_forward(*args), 2, "rnn_forward")
    grads = expect_tuple(student.rnn_backward(dh, cache), 5, "rnn_backward")
    # Where your step functions are wrong (their own tests), the contract's rnn_backward built
    # on them is right too.
    hybrid = probes.rnn_with_student_steps(reference_with, student)
    composed = probes.own_parts(lambda: tuple(hybrid.rnn_backward(dh, cache)))
    for i, (name, got) in enumerate(zip(RNN_NAMES, grads, strict=True)):
        with partial.part(name):
            def of_own_forward(_, i=i, name=name, got=got):
                numeric = numeric_vjp(probes.first(student, "rnn_forward"), list(args), i, dh)
                probes.require_gradient_computes(got, numeric, expected[i], f"rnn_backward {name}",
                                                 "rnn_forward", RNN_ARGS[i])
                assert_gradient(got, numeric, f"rnn_backward {name}", tol=tol,
                                inputs=dict(x=args[0], h0=args[1], dh=dh))

            def of_own_steps(_, i=i, name=name, got=got):
                if composed is None or not np.any(np.asarray(got)):
                    raise CheckFailure("not comparable")
                assert_gradient(got, composed[i], f"rnn_backward {name}", tol=tol)
            one_of(lambda check: check(None), [of_own_forward, of_own_steps])


@pytest.mark.points(3)
@pytest.mark.covers("rnn_backward")
def test_rnn_backward_long_range(student, reference, reference_with, rng, partial, probes):
    """rnn_backward: a gradient on the last of 12 hidden states reaches every earlier step"""
    args = probes.rnn_inputs(rng, T=12)
    dh = np.zeros((3, 12, 5))
    dh[:, -1] = rng.standard_normal((3, 5))
    _, cache = expect_tuple(student.rnn_forward(*args), 2, "rnn_forward")
    dx, dh0, *_ = expect_tuple(student.rnn_backward(dh, cache), 5, "rnn_backward")
    candidates = probes.rnn_backward_candidates(reference, reference_with, student, args, dh, cache)
    dx = expect_array(dx, "rnn_backward dx", shape=candidates[0][0].shape)
    inputs = dict(x=args[0], h0=args[1], dh=dh)

    def same_dx(want):
        for t in reversed(range(12)):  # report the step nearest the end that goes wrong
            assert_close(dx[:, t], want[0][:, t],
                         f"rnn_backward dx[:, {t}] ({11 - t} steps before the only non-zero dh)",
                         inputs=inputs)
    with partial.part("dx at every step", 2):
        one_of(same_dx, candidates)
    with partial.part("dh0"):
        one_of(lambda want: assert_close(
            dh0, want[1], "rnn_backward dh0 (12 steps before the only non-zero dh)",
            inputs=inputs), candidates)


# ---- embedding --------------------------------------------------------------------------------

@pytest.mark.points(2)
@pytest.mark.covers("word_embedding_forward")
def test_word_embedding_forward_values(student, reference, rng, probes):
    """word_embedding_forward: vectors of a (3, 4) batch of indices"""
    x, W = probes.embedding_inputs(rng)
    out, _ = expect_tuple(student.word_embedding_forward(x, W), 2, "word_embedding_forward")
    expected, _ = reference.word_embedding_forward(x, W)
    assert_close(out, expected, "word_embedding_forward out", inputs=dict(x=x, W=W))


@pytest.mark.points(4)
@pytest.mark.covers("word_embedding_backward")
def test_word_embedding_backward_repeated_indices(student, reference, rng, partial, probes):
    """word_embedding_backward: gradients of words that appear several times add up"""
    # Gate of the numerical part (require_gradient_computes): your word_embedding_forward
    # changes when W changes and your dW is not all zeros, as the reference's.
    x, W = probes.embedding_inputs(rng)
    dout = rng.standard_normal((3, 4, 3))
    inputs = dict(x=x, W=W, dout=dout)
    _, cache = expect_tuple(student.word_embedding_forward(x, W), 2, "word_embedding_forward")
    dW = student.word_embedding_backward(dout, cache)
    _, ref_cache = reference.word_embedding_forward(x, W)
    ref_dW = reference.word_embedding_backward(dout, ref_cache)
    with partial.part("against the reference", 2):
        assert_close(dW, ref_dW,
                     "word_embedding_backward dW (word 3 appears 5 times, word 1 three times)",
                     inputs=inputs)
    with partial.part("numerical gradient"):
        numeric = numeric_vjp(lambda w: student.word_embedding_forward(x, w)[0], [W], 0, dout)
        probes.require_gradient_computes(dW, numeric, ref_dW, "word_embedding_backward dW",
                                         "word_embedding_forward", "W")
        assert_gradient(dW, numeric, "word_embedding_backward dW", tol=1e-7, inputs=inputs)


# ---- temporal affine ----------------------------------------------------------------------------

@pytest.mark.points(2)
@pytest.mark.covers("temporal_affine_forward")
def test_temporal_affine_forward_values(student, reference, rng, probes):
    """temporal_affine_forward: output values on a (3, 4, 5) input"""
    x, w, b = probes.temporal_affine_inputs(rng)
    out, _ = expect_tuple(student.temporal_affine_forward(x, w, b), 2, "temporal_affine_forward")
    expected, _ = reference.temporal_affine_forward(x, w, b)
    assert_close(out, expected, "temporal_affine_forward out", inputs=dict(x=x, w=w, b=b))


@pytest.mark.points(4)
@pytest.mark.covers("temporal_affine_backward")
def test_temporal_affine_backward(student, reference, rng, partial, probes):
    """temporal_affine_backward: dx, dw, db against the reference and numerical gradients"""
    args = probes.temporal_affine_inputs(rng)
    dout = rng.standard_normal((3, 4, 6))
    inputs = dict(x=args[0], w=args[1], b=args[2], dout=dout)
    grads = probes.backward_of(student, "temporal_affine_forward", "temporal_affine_backward", args,
                               dout, 3)
    expected = probes.backward_of(reference, "temporal_affine_forward", "temporal_affine_backward",
                                  args, dout, 3)
    # With your own cache, or, where your forward is wrong (its own test), with the reference's
    # cache (x, w, b) as the notebook describes it (if your backward reads that format).
    on_contract = probes.on_reference_cache(reference, student, "temporal_affine_forward",
                                            "temporal_affine_backward", args, dout, 3)
    for i, (name, want) in enumerate(zip(("dx", "dw", "db"), expected, strict=True)):
        with partial.part(name):
            def right(got, i=i, name=name, want=want, forward=None):
                assert_close(got[i], want, f"temporal_affine_backward {name}", inputs=inputs)
                numeric = numeric_vjp(probes.first(forward, "temporal_affine_forward"),
                                      list(args), i, dout)
                assert_gradient(got[i], numeric, f"temporal_affine_backward {name}", tol=1e-7,
                                inputs=inputs)
            one_of(lambda pair: right(pair[0], forward=pair[1]),
                   [(grads, student), None if on_contract is None else (on_contract, reference)])


# ---- temporal softmax loss ------------------------------------------------------------------

@pytest.mark.points(4)
@pytest.mark.covers("temporal_softmax_loss")
def test_temporal_softmax_loss_matches_reference(student, reference, rng, partial, probes):
    """temporal_softmax_loss: loss and dx with a mixed mask, against the reference"""
    x, y, mask = probes.loss_inputs(rng)
    inputs = dict(x=x, y=y, mask=mask)
    loss, dx = expect_tuple(student.temporal_softmax_loss(x, y, mask), 2,
                            "temporal_softmax_loss")
    ref_loss, ref_dx = reference.temporal_softmax_loss(x, y, mask)
    with partial.part("loss"):
        assert_close(loss, ref_loss, "temporal_softmax_loss loss", inputs=inputs)
    with partial.part("dx"):
        assert_close(dx, ref_dx, "temporal_softmax_loss dx", inputs=inputs)


@pytest.mark.points(3)
@pytest.mark.covers("temporal_softmax_loss")
def test_temporal_softmax_loss_numerical(student, reference, rng, probes):
    """temporal_softmax_loss: dx agrees with the numerical gradient of your loss (mixed mask)"""
    # Gate (require_gradient_computes): your loss changes when x changes and your dx is not
    # all zeros, as the reference's.
    x, y, mask = probes.loss_inputs(rng, N=2, T=5, V=4)
    mask = mask[:2]
    ref_dx = reference.temporal_softmax_loss(x, y, mask)[1]
    ref_err = norm_error(
        ref_dx, numeric_gradient(lambda v: reference.temporal_softmax_loss(v, y, mask)[0], x))
    _, dx = expect_tuple(student.temporal_softmax_loss(x, y, mask), 2, "temporal_softmax_loss")
    numeric = numeric_gradient(
        lambda v: expect_scalar(student.temporal_softmax_loss(v, y, mask)[0],
                                "temporal_softmax_loss loss"), x)
    probes.require_gradient_computes(dx, numeric, ref_dx, "temporal_softmax_loss dx",
                                     "temporal_softmax_loss loss", "x")
    assert_gradient(dx, numeric, "temporal_softmax_loss dx", tol=gradient_tolerance(ref_err),
                    inputs=dict(x=x, y=y, mask=mask))


@pytest.mark.points(3)
@pytest.mark.covers("temporal_softmax_loss")
def test_temporal_softmax_loss_uniform_scores(student, reference, rng, partial, probes):
    """temporal_softmax_loss: equal scores cost log(V) per counted step, divided by N"""
    # Gate of "nothing counted" (a function returning zeros has it): with 14 counted steps on
    # the same scores, your (loss, dx) is not zeros, a constant or x (require_computes).
    N, T, V = 4, 6, 5
    x = np.zeros((N, T, V))
    y = rng.integers(0, V, size=(N, T))
    mask = np.zeros((N, T), dtype=bool)
    for row, length in enumerate((6, 3, 1, 4)):
        mask[row, :length] = True  # 14 counted steps
    expected = np.log(V) * mask.sum() / N
    with partial.part("boolean mask", 2):
        loss, _ = expect_tuple(student.temporal_softmax_loss(x, y, mask), 2,
                               "temporal_softmax_loss")
        assert_close(expect_scalar(loss, "temporal_softmax_loss loss"), expected,
                     f"temporal_softmax_loss of zero scores with 14 counted steps out of "
                     f"{N * T}, N = {N}: expected log({V}) * 14 / {N}")
    with partial.part("nothing counted"):
        probes.require_computes(student.temporal_softmax_loss(x, y, mask),
                                reference.temporal_softmax_loss(x, y, mask),
                                "temporal_softmax_loss with 14 counted steps", inputs=dict(x=x))
        nothing = np.zeros((N, T), dtype=bool)
        loss, dx = expect_tuple(student.temporal_softmax_loss(x, y, nothing), 2,
                                "temporal_softmax_loss")
        assert_close(expect_scalar(loss, "temporal_softmax_loss loss"), 0.0,
                     "temporal_softmax_loss with an all-zero mask")
        assert_close(dx, np.zeros_like(x), "temporal_softmax_loss dx with an all-zero mask")


@pytest.mark.points(2)
@pytest.mark.covers("temporal_softmax_loss")
def test_temporal_softmax_loss_stable(student, reference, rng, probes):
    """temporal_softmax_loss: finite and correct for scores of +-1000"""
    x, y, mask = probes.loss_inputs(rng)
    x = 1000.0 * np.sign(x)
    x[0, 0] = 1000.0
    inputs = dict(x=x, y=y, mask=mask)
    loss, dx = expect_tuple(student.temporal_softmax_loss(x, y, mask), 2,
                            "temporal_softmax_loss")
    ref_loss, ref_dx = reference.temporal_softmax_loss(x, y, mask)
    assert_close(loss, ref_loss, "temporal_softmax_loss loss at scores of +-1000", inputs=inputs)
    assert_close(dx, ref_dx, "temporal_softmax_loss dx at scores of +-1000", inputs=inputs)


# ---- clipping -------------------------------------------------------------------------------

@pytest.mark.points(3)
@pytest.mark.covers("clip_grad_norm")
def test_clip_grad_norm_above(student, rng, partial, probes):
    """clip_grad_norm: a large global norm becomes max_norm, the direction is kept"""
    grads = probes.gradient_dict(rng, 3.0)  # global norm ~ 20
    max_norm = 2.5
    norm = probes.global_norm(grads)
    clipped = probes.expect_grad_dict(student.clip_grad_norm(grads, max_norm), grads,
                                      "clip_grad_norm")
    with partial.part("global norm equals max_norm"):
        assert_close(probes.global_norm(clipped), max_norm,
                     f"global norm after clipping (it was {norm:.4g}, max_norm={max_norm})")
    with partial.part("every gradient scaled by the same factor"):
        for key in sorted(grads):
            assert_close(clipped[key], grads[key] * (max_norm / norm),
                         f"clip_grad_norm[{key!r}]: should be grads[{key!r}] * max_norm / "
                         "global norm (one factor for all arrays)")


@pytest.mark.points(2)
@pytest.mark.covers("clip_grad_norm")
def test_clip_grad_norm_below(student, reference, rng, probes):
    """clip_grad_norm: gradients whose global norm is below max_norm are unchanged"""
    # Gate (returning the input has this property): on gradients of global norm ~ 20 above
    # the same max_norm, your result is not the input, zeros or a constant (require_computes).
    grads = probes.gradient_dict(rng, 0.1)  # global norm ~ 0.7
    large = probes.gradient_dict(rng, 3.0)
    max_norm = 3.0
    probes.require_computes(student.clip_grad_norm(large, max_norm),
                            reference.clip_grad_norm(large, max_norm),
                            f"clip_grad_norm of gradients with global norm "
                            f"{probes.global_norm(large):.3g} above max_norm={max_norm}",
                            inputs=dict(grads=large))
    clipped = probes.expect_grad_dict(student.clip_grad_norm(grads, max_norm), grads,
                                      "clip_grad_norm")
    for key in sorted(grads):
        assert_close(clipped[key], grads[key],
                     f"clip_grad_norm[{key!r}] with global norm {probes.global_norm(grads):.3g} "
                     f"below max_norm={max_norm}")


@pytest.mark.points(1)
@pytest.mark.covers("clip_grad_norm")
def test_clip_grad_norm_does_not_mutate(student, reference, rng, probes):
    """clip_grad_norm: the arrays passed in are left unchanged"""
    # Gate (a function that does nothing leaves its input alone): the result of the same call
    # is not the input, zeros or a constant (require_computes).
    grads = probes.gradient_dict(rng, 3.0)
    result, args, _ = student.clip_grad_norm.call_returning_args(grads, 1.0)
    probes.require_computes(result, reference.clip_grad_norm(grads, 1.0), "clip_grad_norm",
                            inputs=dict(grads=grads))
    after = args[0] if type(args[0]) is dict else {}
    assert_not_mutated(grads, after, "clip_grad_norm")


# ---- mutation of inputs ----------------------------------------------------------------------

@pytest.mark.points(2)
@pytest.mark.covers("rnn_backward", "temporal_softmax_loss", "word_embedding_backward")
def test_layers_do_not_mutate_inputs(student, reference, rng, partial, probes):
    """layers: rnn_backward, temporal_softmax_loss and word_embedding_backward keep their inputs"""
    # Gate, per part (a function that does nothing leaves its inputs alone): the result of the
    # same call is not its input, zeros or a constant where the reference's result on the same
    # inputs is not (require_computes).
    with partial.part("rnn_backward"):
        args = probes.rnn_inputs(rng, T=4)
        _, cache = expect_tuple(student.rnn_forward(*args), 2, "rnn_forward")
        dh = rng.standard_normal((3, 4, 5))
        result, after, _ = student.rnn_backward.call_returning_args(dh, cache)
        probes.require_computes(result, reference.rnn_backward(dh, reference.rnn_forward(*args)[1]),
                                "rnn_backward", inputs=dict(dh=dh))
        assert_not_mutated({"dh": dh}, {"dh": after[0]}, "rnn_backward")
    with partial.part("temporal_softmax_loss"):
        x, y, mask = probes.loss_inputs(rng)
        result, after, _ = student.temporal_softmax_loss.call_returning_args(x, y, mask)
        probes.require_computes(result, reference.temporal_softmax_loss(x, y, mask),
                                "temporal_softmax_loss", inputs=dict(x=x))
        assert_not_mutated({"x": x}, {"x": after[0]}, "temporal_softmax_loss")
    with partial.part("word_embedding_backward"):
        x, W = probes.embedding_inputs(rng)
        _, cache = expect_tuple(student.word_embedding_forward(x, W), 2, "word_embedding_forward")
        dout = rng.standard_normal((3, 4, 3))
        result, after, _ = student.word_embedding_backward.call_returning_args(dout, cache)
        probes.require_computes(result, reference.word_embedding_backward(
                                    dout, reference.word_embedding_forward(x, W)[1]),
                                "word_embedding_backward", inputs=dict(dout=dout))
        assert_not_mutated({"dout": dout}, {"dout": after[0]}, "word_embedding_backward")


# ---- language model ---------------------------------------------------------------------------

LM_KEYS = ("W_embed", "Wx", "Wh", "b", "W_out", "b_out")


@pytest.mark.points(3)
@pytest.mark.covers("RNNLanguageModel")
def test_lm_initialisation(student, partial):
    """RNNLanguageModel: parameter names, shapes and dtype; the seed fixes them"""
    V, D, H = 11, 6, 9
    model = student.RNNLanguageModel(V, D, H, seed=3)
    params = model.params
    if type(params) is not dict:
        raise CheckFailure(f"RNNLanguageModel.params should be a dict, got "
                           f"{type(params).__name__}")
    expected = {"W_embed": (V, D), "Wx": (D, H), "Wh": (H, H), "b": (H,), "W_out": (H, V),
                "b_out": (V,)}
    with partial.part("parameter names"):
        if sorted(params) != sorted(expected):
            raise CheckFailure(f"params keys are {sorted(params)}, expected {sorted(expected)}")
    with partial.part("shapes, dtype and values", 2):
        for key, shape in expected.items():
            if key not in params:
                continue
            value = expect_array(params[key], f"params[{key!r}]", shape=shape)
            if key.startswith("b") and np.any(value != 0):
                raise CheckFailure(f"params[{key!r}] should start at zero")
            if not key.startswith("b") and float(value.std()) == 0.0:
                raise CheckFailure(f"params[{key!r}] is constant; draw it with the seeded rng")
        again = student.RNNLanguageModel(V, D, H, seed=3).params
        for key in expected:
            if key in params and key in again:
                assert_close(again[key], params[key], f"params[{key!r}] of a second model "
                             "with the same seed (use np.random.default_rng(seed))")


@pytest.mark.points(6)
@pytest.mark.covers("RNNLanguageModel")
def test_lm_loss_with_padding(student, reference, reference_with, rng, partial, probes):
    """RNNLanguageModel.loss: loss and every gradient on padded sequences"""
    params = probes.lm_params(rng)
    seqs = probes.padded_seqs()
    model = probes.make_lm(student, params)
    loss, grads = expect_tuple(model.loss(seqs), 2, "RNNLanguageModel.loss")
    candidates = probes.lm_candidates(reference, reference_with, student, params, seqs)
    inputs = dict(seqs=seqs)
    with partial.part("loss", 3):
        one_of(lambda want: assert_close(
            loss, want[0], "RNNLanguageModel loss (inputs seqs[:, :-1], targets seqs[:, 1:], "
            "mask where the target is not null_idx)", inputs=inputs), candidates)
    if type(grads) is not dict:
        raise CheckFailure(f"the gradients should be a dict, got {type(grads).__name__}")
    for key in LM_KEYS:
        with partial.part(f"grads[{key!r}]", 0.5):
            if key not in grads:
                raise CheckFailure(f"grads has no {key!r}")
            one_of(lambda want, key=key: assert_close(
                grads[key], want[1][key], f"RNNLanguageModel grads[{key!r}]", inputs=inputs),
                candidates)


@pytest.mark.points(2)
@pytest.mark.covers("RNNLanguageModel")
def test_lm_loss_other_null_idx(student, reference, reference_with, rng, probes):
    """RNNLanguageModel.loss: padding with null_idx = 3 instead of 0"""
    params = probes.lm_params(rng)
    seqs = probes.padded_seqs(null_idx=3)
    loss, _ = expect_tuple(probes.make_lm(student, params, null_idx=3).loss(seqs), 2,
                           "RNNLanguageModel.loss")
    one_of(lambda want: assert_close(loss, want[0], "RNNLanguageModel loss with null_idx=3",
                                     inputs=dict(seqs=seqs)),
           probes.lm_candidates(reference, reference_with, student, params, seqs, null_idx=3))


@pytest.mark.points(4)
@pytest.mark.covers("RNNLanguageModel")
def test_lm_numerical_gradients(student, reference, reference_with, rng, partial, probes):
    """RNNLanguageModel: gradients agree with numerical gradients of your loss"""
    # Gate (require_gradient_computes), per parameter: your loss changes when that parameter
    # changes and your gradient is not all zeros, as the reference's.
    params = probes.lm_params(rng)
    seqs = probes.padded_seqs()
    model = probes.make_lm(student, params)
    _, grads = expect_tuple(model.loss(seqs), 2, "RNNLanguageModel.loss")
    _, ref_grads = probes.make_lm(reference, params).loss(seqs)
    # Where your layers are wrong (their own tests), the contract's model built on them is
    # right too, though its gradients are then not those of its loss.
    composed = probes.lm_candidates(reference, reference_with, student, params, seqs)[1]
    if type(grads) is not dict:
        raise CheckFailure(f"the gradients should be a dict, got {type(grads).__name__}")
    for key in LM_KEYS:
        with partial.part(f"grads[{key!r}]"):
            def of_own_loss(_, key=key):
                def loss_at(value):
                    model.params = {**params, key: value}
                    return expect_scalar(model.loss(seqs)[0], "RNNLanguageModel loss")

                numeric = numeric_gradient(loss_at, params[key])
                probes.require_gradient_computes(grads.get(key), numeric, ref_grads[key],
                                                 f"RNNLanguageModel grads[{key!r}]",
                                                 "RNNLanguageModel.loss", f"params[{key!r}]")
                assert_gradient(grads.get(key), numeric, f"RNNLanguageModel grads[{key!r}]",
                                tol=1e-6, inputs=dict(seqs=seqs))

            def of_own_layers(_, key=key):
                if composed is None or key not in composed[1]:
                    raise CheckFailure("not comparable")
                assert_close(grads.get(key), composed[1][key],
                             f"RNNLanguageModel grads[{key!r}]")
            one_of(lambda check: check(None), [of_own_loss, of_own_layers])


# ---- training: delayed recall ---------------------------------------------------------------

@pytest.mark.points(10)
@pytest.mark.time_limit(60)
@pytest.mark.covers("rnn_forward", "rnn_backward", "temporal_affine_forward",
                    "temporal_affine_backward", "temporal_softmax_loss", "clip_grad_norm")
@pytest.mark.integration  # end to end: any upstream mistake costs here
def test_trained_delayed_recall(student, train_seed, probes):
    """Training: your RNN learns to recall the symbol seen 3 steps earlier (95% accuracy)"""
    recipe = dict(probes.RECALL, seed=train_seed)
    accuracy = probes.train_recall(student, recipe)
    assert_metric(accuracy, 0.95, "delayed-recall accuracy",
                  detail=f"after training with {recipe}; the reference reaches 1.000 with the "
                         "same recipe. If your layer tests pass, check that rnn_backward carries "
                         "dprev_h back through every step")
