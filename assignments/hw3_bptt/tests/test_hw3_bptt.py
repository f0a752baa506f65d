"""Hidden tests for hw3_bptt: every function of the contract, against the reference.

Inputs break symmetry on purpose: N > 1, D != H != V, non-zero h0 and biases, sequences of
T >= 10 steps with a recurrent weight large enough that gradients from the last step still
reach the first one, masks and padding that differ between rows.
"""
import numpy as np
import pytest

from autograder.checks import (CheckFailure, assert_close, assert_gradient, assert_metric,
                               assert_not_mutated,
                               expect_array, expect_scalar, expect_tuple, gradient_tolerance,
                               norm_error, numeric_gradient, numeric_vjp)

STEP_NAMES = ("dx", "dprev_h", "dWx", "dWh", "db")
RNN_NAMES = ("dx", "dh0", "dWx", "dWh", "db")


def rnn_params(rng, D=4, H=5):
    Wx = rng.standard_normal((D, H)) / np.sqrt(D)
    # Spectral radius near 1: a gradient from step T-1 is still clearly visible at step 0.
    Wh = 1.2 * rng.standard_normal((H, H)) / np.sqrt(H)
    b = 0.3 * rng.standard_normal(H)
    return Wx, Wh, b


def rnn_inputs(rng, N=3, T=10, D=4, H=5):
    x = rng.standard_normal((N, T, D))
    h0 = 0.5 * rng.standard_normal((N, H))
    return (x, h0, *rnn_params(rng, D, H))


def step_inputs(rng, N=3, D=4, H=5):
    x = rng.standard_normal((N, D))
    prev_h = rng.standard_normal((N, H))
    return (x, prev_h, *rnn_params(rng, D, H))


def first(impl, name):
    """impl.name(...)[0] as a function: the forward output whose numerical VJP we take."""
    return lambda *args: getattr(impl, name)(*args)[0]


def backward_of(impl, forward, backward, args, dout, count):
    _, cache = expect_tuple(getattr(impl, forward)(*args), 2, forward)
    return expect_tuple(getattr(impl, backward)(dout, cache), count, backward)


def reference_vjp_error(reference, forward, backward, args, dout, count):
    """The reference's own numerical error on these inputs: the scale of a fair tolerance."""
    grads = backward_of(reference, forward, backward, args, dout, count)
    return max(norm_error(g, numeric_vjp(first(reference, forward), list(args), i, dout))
               for i, g in enumerate(grads))


# ---- one step -------------------------------------------------------------------------------

@pytest.mark.points(3)
@pytest.mark.covers("rnn_step_forward")
def test_rnn_step_forward_values(student, reference, rng):
    """rnn_step_forward: next_h values on a (3, 4) input with H = 5"""
    args = step_inputs(rng)
    next_h, _ = expect_tuple(student.rnn_step_forward(*args), 2, "rnn_step_forward")
    expected, _ = reference.rnn_step_forward(*args)
    assert_close(next_h, expected, "rnn_step_forward next_h",
                 inputs=dict(zip(("x", "prev_h", "Wx", "Wh", "b"), args, strict=True)))


@pytest.mark.points(5)
@pytest.mark.covers("rnn_step_backward")
def test_rnn_step_backward_matches_reference(student, reference, rng, partial):
    """rnn_step_backward: dx, dprev_h, dWx, dWh, db against the reference"""
    args = step_inputs(rng)
    dnext = rng.standard_normal((3, 5))
    grads = backward_of(student, "rnn_step_forward", "rnn_step_backward", args, dnext, 5)
    expected = backward_of(reference, "rnn_step_forward", "rnn_step_backward", args, dnext, 5)
    inputs = dict(x=args[0], prev_h=args[1], dnext_h=dnext)
    for name, got, want in zip(STEP_NAMES, grads, expected, strict=True):
        with partial.part(name):
            assert_close(got, want, f"rnn_step_backward {name}", inputs=inputs)


@pytest.mark.points(3)
@pytest.mark.covers("rnn_step_backward")
def test_rnn_step_backward_numerical(student, reference, rng, partial):
    """rnn_step_backward: agrees with numerical gradients of your rnn_step_forward"""
    args = step_inputs(rng)
    dnext = rng.standard_normal((3, 5))
    tol = gradient_tolerance(reference_vjp_error(reference, "rnn_step_forward",
                                                 "rnn_step_backward", args, dnext, 5))
    grads = backward_of(student, "rnn_step_forward", "rnn_step_backward", args, dnext, 5)
    for i, (name, got) in enumerate(zip(STEP_NAMES, grads, strict=True)):
        with partial.part(name):
            numeric = numeric_vjp(first(student, "rnn_step_forward"), list(args), i, dnext)
            assert_gradient(got, numeric, f"rnn_step_backward {name}", tol=tol,
                            inputs=dict(x=args[0], prev_h=args[1], dnext_h=dnext))


# ---- whole sequence ---------------------------------------------------------------------------

@pytest.mark.points(4)
@pytest.mark.covers("rnn_forward")
def test_rnn_forward_values(student, reference, rng):
    """rnn_forward: hidden states of a T = 10 sequence from a non-zero h0"""
    args = rnn_inputs(rng)
    h, _ = expect_tuple(student.rnn_forward(*args), 2, "rnn_forward")
    expected, _ = reference.rnn_forward(*args)
    h = expect_array(h, "rnn_forward h", shape=expected.shape)
    for t in range(expected.shape[1]):  # the first wrong step says the most
        assert_close(h[:, t], expected[:, t], f"rnn_forward h[:, {t}]",
                     inputs=dict(x=args[0], h0=args[1]))


@pytest.mark.points(6)
@pytest.mark.covers("rnn_backward")
def test_rnn_backward_matches_reference(student, reference, rng, partial):
    """rnn_backward: dx, dh0, dWx, dWh, db of a T = 10 sequence against the reference"""
    args = rnn_inputs(rng)
    dh = rng.standard_normal((3, 10, 5))
    grads = backward_of(student, "rnn_forward", "rnn_backward", args, dh, 5)
    expected = backward_of(reference, "rnn_forward", "rnn_backward", args, dh, 5)
    inputs = dict(x=args[0], h0=args[1], dh=dh)
    for name, got, want, weight in zip(RNN_NAMES, grads, expected, (2, 1, 1, 1, 1), strict=True):
        with partial.part(name, weight):
            assert_close(got, want, f"rnn_backward {name}", inputs=inputs)


@pytest.mark.points(5)
@pytest.mark.covers("rnn_backward")
def test_rnn_backward_numerical(student, reference, rng, partial):
    """rnn_backward: agrees with numerical gradients of your rnn_forward (T = 10, dh0 too)"""
    args = rnn_inputs(rng, N=2)
    dh = rng.standard_normal((2, 10, 5))
    tol = gradient_tolerance(reference_vjp_error(reference, "rnn_forward", "rnn_backward",
                                                 args, dh, 5))
    grads = backward_of(student, "rnn_forward", "rnn_backward", args, dh, 5)
    for i, (name, got) in enumerate(zip(RNN_NAMES, grads, strict=True)):
        with partial.part(name):
            numeric = numeric_vjp(first(student, "rnn_forward"), list(args), i, dh)
            assert_gradient(got, numeric, f"rnn_backward {name}", tol=tol,
                            inputs=dict(x=args[0], h0=args[1], dh=dh))


@pytest.mark.points(3)
@pytest.mark.covers("rnn_backward")
def test_rnn_backward_long_range(student, reference, rng, partial):
    """rnn_backward: a gradient on the last of 12 hidden states reaches every earlier step"""
    args = rnn_inputs(rng, T=12)
    dh = np.zeros((3, 12, 5))
    dh[:, -1] = rng.standard_normal((3, 5))
    dx, dh0, *_ = backward_of(student, "rnn_forward", "rnn_backward", args, dh, 5)
    ref_dx, ref_dh0, *_ = backward_of(reference, "rnn_forward", "rnn_backward", args, dh, 5)
    dx = expect_array(dx, "rnn_backward dx", shape=ref_dx.shape)
    inputs = dict(x=args[0], h0=args[1], dh=dh)
    with partial.part("dx at every step", 2):
        for t in reversed(range(12)):  # report the step nearest the end that goes wrong
            assert_close(dx[:, t], ref_dx[:, t],
                         f"rnn_backward dx[:, {t}] ({11 - t} steps before the only non-zero dh)",
                         inputs=inputs)
    with partial.part("dh0"):
        assert_close(dh0, ref_dh0, "rnn_backward dh0 (12 steps before the only non-zero dh)",
                     inputs=inputs)


# ---- embedding --------------------------------------------------------------------------------

def embedding_inputs(rng, V=7, D=3):
    x = np.array([[0, 3, 3, 6], [3, 1, 0, 3], [5, 3, 1, 1]])  # 3 and 1 repeat; 2 and 4 unused
    W = rng.standard_normal((V, D))
    return x, W


@pytest.mark.points(2)
@pytest.mark.covers("word_embedding_forward")
def test_word_embedding_forward_values(student, reference, rng):
    """word_embedding_forward: vectors of a (3, 4) batch of indices"""
    x, W = embedding_inputs(rng)
    out, _ = expect_tuple(student.word_embedding_forward(x, W), 2, "word_embedding_forward")
    expected, _ = reference.word_embedding_forward(x, W)
    assert_close(out, expected, "word_embedding_forward out", inputs=dict(x=x, W=W))


@pytest.mark.points(4)
@pytest.mark.covers("word_embedding_backward")
def test_word_embedding_backward_repeated_indices(student, reference, rng, partial):
    """word_embedding_backward: gradients of words that appear several times add up"""
    x, W = embedding_inputs(rng)
    dout = rng.standard_normal((3, 4, 3))
    inputs = dict(x=x, W=W, dout=dout)
    _, cache = expect_tuple(student.word_embedding_forward(x, W), 2, "word_embedding_forward")
    dW = student.word_embedding_backward(dout, cache)
    with partial.part("against the reference", 2):
        _, ref_cache = reference.word_embedding_forward(x, W)
        assert_close(dW, reference.word_embedding_backward(dout, ref_cache),
                     "word_embedding_backward dW (word 3 appears 5 times, word 1 three times)",
                     inputs=inputs)
    with partial.part("numerical gradient"):
        numeric = numeric_vjp(lambda w: student.word_embedding_forward(x, w)[0], [W], 0, dout)
        assert_gradient(dW, numeric, "word_embedding_backward dW", tol=1e-7, inputs=inputs)


# ---- temporal affine ----------------------------------------------------------------------------

def temporal_affine_inputs(rng, N=3, T=4, D=5, M=6):
    return (rng.standard_normal((N, T, D)), rng.standard_normal((D, M)),
            rng.standard_normal(M))


@pytest.mark.points(2)
@pytest.mark.covers("temporal_affine_forward")
def test_temporal_affine_forward_values(student, reference, rng):
    """temporal_affine_forward: output values on a (3, 4, 5) input"""
    x, w, b = temporal_affine_inputs(rng)
    out, _ = expect_tuple(student.temporal_affine_forward(x, w, b), 2, "temporal_affine_forward")
    expected, _ = reference.temporal_affine_forward(x, w, b)
    assert_close(out, expected, "temporal_affine_forward out", inputs=dict(x=x, w=w, b=b))


@pytest.mark.points(4)
@pytest.mark.covers("temporal_affine_backward")
def test_temporal_affine_backward(student, reference, rng, partial):
    """temporal_affine_backward: dx, dw, db against the reference and numerical gradients"""
    args = temporal_affine_inputs(rng)
    dout = rng.standard_normal((3, 4, 6))
    inputs = dict(x=args[0], w=args[1], b=args[2], dout=dout)
    grads = backward_of(student, "temporal_affine_forward", "temporal_affine_backward", args,
                        dout, 3)
    expected = backward_of(reference, "temporal_affine_forward", "temporal_affine_backward",
                           args, dout, 3)
    for i, (name, got, want) in enumerate(zip(("dx", "dw", "db"), grads, expected, strict=True)):
        with partial.part(name):
            assert_close(got, want, f"temporal_affine_backward {name}", inputs=inputs)
            numeric = numeric_vjp(first(student, "temporal_affine_forward"), list(args), i, dout)
            assert_gradient(got, numeric, f"temporal_affine_backward {name}", tol=1e-7,
                            inputs=inputs)


# ---- temporal softmax loss ------------------------------------------------------------------

def loss_inputs(rng, N=3, T=5, V=6):
    x = rng.standard_normal((N, T, V))
    y = rng.integers(0, V, size=(N, T))
    # Rows with different numbers of counted steps, and a hole in the middle of one row.
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 1, 1, 0]], dtype=bool)
    return x, y, mask


@pytest.mark.points(4)
@pytest.mark.covers("temporal_softmax_loss")
def test_temporal_softmax_loss_matches_reference(student, reference, rng, partial):
    """temporal_softmax_loss: loss and dx with a mixed mask, against the reference"""
    x, y, mask = loss_inputs(rng)
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
def test_temporal_softmax_loss_numerical(student, reference, rng):
    """temporal_softmax_loss: dx agrees with the numerical gradient of your loss (mixed mask)"""
    x, y, mask = loss_inputs(rng, N=2, T=5, V=4)
    mask = mask[:2]
    ref_err = norm_error(
        reference.temporal_softmax_loss(x, y, mask)[1],
        numeric_gradient(lambda v: reference.temporal_softmax_loss(v, y, mask)[0], x))
    _, dx = expect_tuple(student.temporal_softmax_loss(x, y, mask), 2, "temporal_softmax_loss")
    numeric = numeric_gradient(
        lambda v: expect_scalar(student.temporal_softmax_loss(v, y, mask)[0],
                                "temporal_softmax_loss loss"), x)
    assert_gradient(dx, numeric, "temporal_softmax_loss dx", tol=gradient_tolerance(ref_err),
                    inputs=dict(x=x, y=y, mask=mask))


@pytest.mark.points(3)
@pytest.mark.covers("temporal_softmax_loss")
def test_temporal_softmax_loss_uniform_scores(student, rng, partial):
    """temporal_softmax_loss: equal scores cost log(V) per counted step, divided by N"""
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
        nothing = np.zeros((N, T), dtype=bool)
        loss, dx = expect_tuple(student.temporal_softmax_loss(x, y, nothing), 2,
                                "temporal_softmax_loss")
        assert_close(expect_scalar(loss, "temporal_softmax_loss loss"), 0.0,
                     "temporal_softmax_loss with an all-zero mask")
        assert_close(dx, np.zeros_like(x), "temporal_softmax_loss dx with an all-zero mask")


@pytest.mark.points(2)
@pytest.mark.covers("temporal_softmax_loss")
def test_temporal_softmax_loss_stable(student, reference, rng):
    """temporal_softmax_loss: finite and correct for scores of +-1000"""
    x, y, mask = loss_inputs(rng)
    x = 1000.0 * np.sign(x)
    x[0, 0] = 1000.0
    inputs = dict(x=x, y=y, mask=mask)
    loss, dx = expect_tuple(student.temporal_softmax_loss(x, y, mask), 2,
                            "temporal_softmax_loss")
    ref_loss, ref_dx = reference.temporal_softmax_loss(x, y, mask)
    assert_close(loss, ref_loss, "temporal_softmax_loss loss at scores of +-1000", inputs=inputs)
    assert_close(dx, ref_dx, "temporal_softmax_loss dx at scores of +-1000", inputs=inputs)


# ---- clipping -------------------------------------------------------------------------------

def gradient_dict(rng, scale):
    return {"Wx": scale * rng.standard_normal((4, 5)), "Wh": scale * rng.standard_normal((5, 5)),
            "b": scale * rng.standard_normal(5)}


def global_norm(grads):
    return float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))


def expect_grad_dict(value, like, what):
    if type(value) is not dict:
        raise CheckFailure(f"{what} should return a dict, got {type(value).__name__}")
    if sorted(value) != sorted(like):
        raise CheckFailure(f"{what} returned keys {sorted(value)}, expected {sorted(like)}")
    return {k: expect_array(value[k], f"{what}[{k!r}]", shape=like[k].shape) for k in like}


@pytest.mark.points(3)
@pytest.mark.covers("clip_grad_norm")
def test_clip_grad_norm_above(student, rng, partial):
    """clip_grad_norm: a large global norm becomes max_norm, the direction is kept"""
    grads = gradient_dict(rng, 3.0)  # global norm ~ 20
    max_norm = 2.5
    norm = global_norm(grads)
    clipped = expect_grad_dict(student.clip_grad_norm(grads, max_norm), grads, "clip_grad_norm")
    with partial.part("global norm equals max_norm"):
        assert_close(global_norm(clipped), max_norm,
                     f"global norm after clipping (it was {norm:.4g}, max_norm={max_norm})")
    with partial.part("every gradient scaled by the same factor"):
        for key in sorted(grads):
            assert_close(clipped[key], grads[key] * (max_norm / norm),
                         f"clip_grad_norm[{key!r}]: should be grads[{key!r}] * max_norm / "
                         "global norm (one factor for all arrays)")


@pytest.mark.points(2)
@pytest.mark.covers("clip_grad_norm")
def test_clip_grad_norm_below(student, rng):
    """clip_grad_norm: gradients whose global norm is below max_norm are unchanged"""
    grads = gradient_dict(rng, 0.1)  # global norm ~ 0.7
    max_norm = 3.0
    clipped = expect_grad_dict(student.clip_grad_norm(grads, max_norm), grads, "clip_grad_norm")
    for key in sorted(grads):
        assert_close(clipped[key], grads[key],
                     f"clip_grad_norm[{key!r}] with global norm {global_norm(grads):.3g} "
                     f"below max_norm={max_norm}")


@pytest.mark.points(1)
@pytest.mark.covers("clip_grad_norm")
def test_clip_grad_norm_does_not_mutate(student, rng):
    """clip_grad_norm: the arrays passed in are left unchanged"""
    grads = gradient_dict(rng, 3.0)
    _, args, _ = student.clip_grad_norm.call_returning_args(grads, 1.0)
    after = args[0] if type(args[0]) is dict else {}
    assert_not_mutated(grads, after, "clip_grad_norm")


# ---- mutation of inputs ----------------------------------------------------------------------

@pytest.mark.points(2)
@pytest.mark.covers("rnn_backward", "temporal_softmax_loss", "word_embedding_backward")
def test_layers_do_not_mutate_inputs(student, rng, partial):
    """layers: rnn_backward, temporal_softmax_loss and word_embedding_backward keep their inputs"""
    with partial.part("rnn_backward"):
        args = rnn_inputs(rng, T=4)
        _, cache = expect_tuple(student.rnn_forward(*args), 2, "rnn_forward")
        dh = rng.standard_normal((3, 4, 5))
        _, after, _ = student.rnn_backward.call_returning_args(dh, cache)
        assert_not_mutated({"dh": dh}, {"dh": after[0]}, "rnn_backward")
    with partial.part("temporal_softmax_loss"):
        x, y, mask = loss_inputs(rng)
        _, after, _ = student.temporal_softmax_loss.call_returning_args(x, y, mask)
        assert_not_mutated({"x": x}, {"x": after[0]}, "temporal_softmax_loss")
    with partial.part("word_embedding_backward"):
        x, W = embedding_inputs(rng)
        _, cache = expect_tuple(student.word_embedding_forward(x, W), 2, "word_embedding_forward")
        dout = rng.standard_normal((3, 4, 3))
        _, after, _ = student.word_embedding_backward.call_returning_args(dout, cache)
        assert_not_mutated({"dout": dout}, {"dout": after[0]}, "word_embedding_backward")


# ---- language model ---------------------------------------------------------------------------

LM_ARGS = dict(vocab_size=7, wordvec_dim=3, hidden_dim=4)
LM_KEYS = ("W_embed", "Wx", "Wh", "b", "W_out", "b_out")


def lm_params(rng, V=7, D=3, H=4):
    """Parameters with non-zero biases, so a missing bias term or gradient shows."""
    return {"W_embed": rng.standard_normal((V, D)), "Wx": rng.standard_normal((D, H)),
            "Wh": 0.5 * rng.standard_normal((H, H)), "b": 0.3 * rng.standard_normal(H),
            "W_out": rng.standard_normal((H, V)), "b_out": 0.3 * rng.standard_normal(V)}


def padded_seqs(null_idx=0):
    """Start word 1, then words 2..6, padded at the end with null_idx in three of four rows.

    Where a row is padded, the step that reads its last word has padding as its target, so a
    mask built from the inputs counts one step too many; shifted targets differ from inputs
    everywhere, so unshifted targets change every term.
    """
    seqs = np.array([[1, 4, 2, 6, 3, 5, 2],
                     [1, 3, 3, 5, 0, 0, 0],
                     [1, 6, 0, 0, 0, 0, 0],
                     [1, 2, 5, 4, 6, 2, 0]])
    if null_idx != 0:
        seqs = np.where(seqs == 0, null_idx, np.where(seqs == null_idx, 0, seqs))
    return seqs


def make_lm(impl, params, **kwargs):
    model = impl.RNNLanguageModel(**LM_ARGS, seed=0, **kwargs)
    model.params = params
    return model


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
def test_lm_loss_with_padding(student, reference, rng, partial):
    """RNNLanguageModel.loss: loss and every gradient on padded sequences"""
    params = lm_params(rng)
    seqs = padded_seqs()
    model = make_lm(student, params)
    loss, grads = expect_tuple(model.loss(seqs), 2, "RNNLanguageModel.loss")
    ref_loss, ref_grads = make_lm(reference, params).loss(seqs)
    inputs = dict(seqs=seqs)
    with partial.part("loss", 3):
        assert_close(loss, ref_loss, "RNNLanguageModel loss (inputs seqs[:, :-1], targets "
                     "seqs[:, 1:], mask where the target is not null_idx)", inputs=inputs)
    if type(grads) is not dict:
        raise CheckFailure(f"the gradients should be a dict, got {type(grads).__name__}")
    for key in LM_KEYS:
        with partial.part(f"grads[{key!r}]", 0.5):
            if key not in grads:
                raise CheckFailure(f"grads has no {key!r}")
            assert_close(grads[key], ref_grads[key], f"RNNLanguageModel grads[{key!r}]",
                         inputs=inputs)


@pytest.mark.points(2)
@pytest.mark.covers("RNNLanguageModel")
def test_lm_loss_other_null_idx(student, reference, rng):
    """RNNLanguageModel.loss: padding with null_idx = 3 instead of 0"""
    params = lm_params(rng)
    seqs = padded_seqs(null_idx=3)
    loss, _ = expect_tuple(make_lm(student, params, null_idx=3).loss(seqs), 2,
                           "RNNLanguageModel.loss")
    ref_loss, _ = make_lm(reference, params, null_idx=3).loss(seqs)
    assert_close(loss, ref_loss, "RNNLanguageModel loss with null_idx=3", inputs=dict(seqs=seqs))


@pytest.mark.points(4)
@pytest.mark.covers("RNNLanguageModel")
def test_lm_numerical_gradients(student, rng, partial):
    """RNNLanguageModel: gradients agree with numerical gradients of your loss"""
    params = lm_params(rng)
    seqs = padded_seqs()
    model = make_lm(student, params)
    _, grads = expect_tuple(model.loss(seqs), 2, "RNNLanguageModel.loss")
    if type(grads) is not dict:
        raise CheckFailure(f"the gradients should be a dict, got {type(grads).__name__}")
    for key in LM_KEYS:
        with partial.part(f"grads[{key!r}]"):
            def loss_at(value, key=key):
                model.params = {**params, key: value}
                return expect_scalar(model.loss(seqs)[0], "RNNLanguageModel loss")

            numeric = numeric_gradient(loss_at, params[key])
            assert_gradient(grads.get(key), numeric, f"RNNLanguageModel grads[{key!r}]",
                            tol=1e-6, inputs=dict(seqs=seqs))


# ---- training: delayed recall ---------------------------------------------------------------

RECALL = dict(vocab=4, steps=12, delay=3, hidden=32, batch=64, iterations=250,
              learning_rate=1e-2, max_norm=5.0, test_size=500, seed=0)


def recall_batch(rng, n, recipe):
    """One-hot symbols; the target at step t >= delay is the symbol of step t - delay."""
    V, T, d = recipe["vocab"], recipe["steps"], recipe["delay"]
    symbols = rng.integers(0, V, size=(n, T))
    targets = np.zeros_like(symbols)
    targets[:, d:] = symbols[:, :-d]
    mask = np.zeros((n, T), dtype=bool)
    mask[:, d:] = True  # nothing to recall yet at the first steps
    return np.eye(V)[symbols], targets, mask


def train_recall(impl, recipe=RECALL):
    """Train with the student's layers and clipping, Adam here; return the test accuracy.

    one-hot x -> rnn_forward (h0 = 0) -> temporal_affine_forward -> temporal_softmax_loss.
    """
    V, H, N = recipe["vocab"], recipe["hidden"], recipe["batch"]
    rng = np.random.default_rng(recipe["seed"])
    params = {"Wx": rng.standard_normal((V, H)) / np.sqrt(V),
              # Small recurrent weights: at the start nothing is remembered, so memory must be
              # learnt through the gradient, which needs delay steps of backprop through time.
              "Wh": 0.1 * rng.standard_normal((H, H)) / np.sqrt(H),
              "b": np.zeros(H),
              "W_out": rng.standard_normal((H, V)) / np.sqrt(H),
              "b_out": np.zeros(V)}
    x_test, y_test, mask_test = recall_batch(rng, recipe["test_size"], recipe)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    beta1, beta2, lr = 0.9, 0.999, recipe["learning_rate"]
    h0 = np.zeros((N, H))
    for it in range(1, recipe["iterations"] + 1):
        x, y, mask = recall_batch(rng, N, recipe)
        h, rnn_cache = expect_tuple(
            impl.rnn_forward(x, h0, params["Wx"], params["Wh"], params["b"]), 2, "rnn_forward")
        scores, out_cache = expect_tuple(
            impl.temporal_affine_forward(h, params["W_out"], params["b_out"]), 2,
            "temporal_affine_forward")
        _, dscores = expect_tuple(impl.temporal_softmax_loss(scores, y, mask), 2,
                                  "temporal_softmax_loss")
        grads = {}
        dh, grads["W_out"], grads["b_out"] = expect_tuple(
            impl.temporal_affine_backward(dscores, out_cache), 3, "temporal_affine_backward")
        _, _, grads["Wx"], grads["Wh"], grads["b"] = expect_tuple(
            impl.rnn_backward(dh, rnn_cache), 5, "rnn_backward")
        clipped = impl.clip_grad_norm(grads, recipe["max_norm"])
        clipped = expect_grad_dict(clipped, params, "clip_grad_norm")
        for k in params:
            m[k] = beta1 * m[k] + (1 - beta1) * clipped[k]
            v[k] = beta2 * v[k] + (1 - beta2) * clipped[k] ** 2
            m_hat, v_hat = m[k] / (1 - beta1 ** it), v[k] / (1 - beta2 ** it)
            params[k] = params[k] - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    h, _ = expect_tuple(impl.rnn_forward(x_test, np.zeros((len(x_test), H)), params["Wx"],
                                         params["Wh"], params["b"]), 2, "rnn_forward")
    h = expect_array(h, "hidden states on the test sequences",
                     shape=(len(x_test), recipe["steps"], H))
    predictions = np.argmax(h @ params["W_out"] + params["b_out"], axis=2)
    return float(np.mean(predictions[mask_test] == y_test[mask_test]))


@pytest.mark.points(10)
@pytest.mark.time_limit(60)
@pytest.mark.covers("rnn_forward", "rnn_backward", "temporal_affine_forward",
                    "temporal_affine_backward", "temporal_softmax_loss", "clip_grad_norm")
def test_trained_delayed_recall(student, train_seed):
    """Training: your RNN learns to recall the symbol seen 3 steps earlier (95% accuracy)"""
    recipe = dict(RECALL, seed=train_seed)
    accuracy = train_recall(student, recipe)
    assert_metric(accuracy, 0.95, "delayed-recall accuracy",
                  detail=f"after training with {recipe}; the reference reaches 1.000 with the "
                         "same recipe. If your layer tests pass, check that rnn_backward carries "
                         "dprev_h back through every step")
