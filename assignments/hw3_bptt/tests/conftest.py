"""The helpers and probes of hw3_bptt's hidden tests (test_hw3_bptt.py): inputs that break
symmetry, backward calls and the reference's numerical error, the contract's composites around a
student's own parts, the gates against do-nothing functions, and the delayed-recall training.

The test module gets them through the ``probes`` fixture below: run with
``--import-mode=importlib``, it cannot import this conftest.
"""

import numpy as np

from autograder import testing
from autograder.testing import (CheckFailure, expect_array, expect_tuple, norm_error, numeric_vjp,
                                probes_fixture)


# ---- inputs and backward calls -------------------------------------------------------------------

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


# ---- each mistake costs once: see the test module ------------------------------------------------

def own_parts(compute):
    """``compute()`` with the student's parts, or None where one of them fails or returns
    something the contract's composite cannot use (its own tests say so), and where the result
    is one constant (do-nothing parts: matching them earns nothing)."""
    value = testing.own_parts(compute)
    if value is None:
        return None
    try:
        return None if _constant(_leaves(value)) is not None else value
    except (TypeError, ValueError):
        return None


def on_reference_cache(reference, student, forward, backward, args, dout, count):
    """The student's backward on the reference's cache for ``args`` (the format the notebook
    describes), or None where it cannot read it (a cache format of the student's own)."""
    _, cache = getattr(reference, forward)(*args)
    return own_parts(lambda: expect_tuple(getattr(student, backward)(dout, cache), count,
                                          backward))


def rnn_with_student_steps(reference_with, student):
    return reference_with(rnn_step_forward=student.rnn_step_forward,
                          rnn_step_backward=student.rnn_step_backward)


def rnn_backward_candidates(reference, reference_with, student, args, dh, student_cache):
    """What a correct rnn_backward may return: the reference's, or the contract's rnn_backward
    with the student's step functions, on the student's rnn_forward cache or on its own."""
    hybrid = rnn_with_student_steps(reference_with, student)
    return [backward_of(reference, "rnn_forward", "rnn_backward", args, dh, 5),
            own_parts(lambda: tuple(hybrid.rnn_backward(dh, student_cache))),
            own_parts(lambda: backward_of(hybrid, "rnn_forward", "rnn_backward", args, dh, 5))]


# ---- gates: nothing for nothing: see the test module ---------------------------------------------

GATE = "this property is checked only for a function that computes something"


def _leaves(value):
    """The arrays and numbers of a result, in a fixed order (tuples, lists and dicts opened)."""
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _leaves(v)]
    if isinstance(value, dict):
        return [leaf for k in sorted(value, key=str) for leaf in _leaves(value[k])]
    return [value]


def _numeric(leaf):
    return type(leaf) is np.ndarray and leaf.dtype.kind in "fiub" or (
        not isinstance(leaf, bool) and isinstance(leaf, (int, float, np.number)))


def _same_structure(value, expected) -> bool:
    if isinstance(expected, (tuple, list)):
        return (type(value) is type(expected) and len(value) == len(expected)
                and all(_same_structure(v, e) for v, e in zip(value, expected, strict=True)))
    if isinstance(expected, dict):
        return (type(value) is dict and sorted(value, key=str) == sorted(expected, key=str)
                and all(_same_structure(value[k], expected[k]) for k in expected))
    if isinstance(expected, np.ndarray) and expected.ndim > 0:
        return type(value) is np.ndarray and value.shape == expected.shape
    return _numeric(value) or type(value) is np.ndarray and value.size == 1


def _constant(leaves):
    """The one number every entry of every leaf equals, or None."""
    values = [np.asarray(leaf, dtype=np.float64).ravel() for leaf in leaves]
    values = [v for v in values if v.size]
    if not values:
        return None
    first = values[0][0]
    return float(first) if all(np.all(v == first) for v in values) else None


def _equal(a, b) -> bool:
    if not _same_structure(a, b):
        return False
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(_leaves(a), _leaves(b), strict=True))


def require_computes(value, expected, what, *, inputs=None):
    """The gate of a property that a do-nothing function has too.

    ``value`` is the student's result of the call the test is about, ``expected`` the
    reference's on the same arguments. Raises CheckFailure when ``value`` is one of the
    arguments in ``inputs`` returned unchanged, is not of the reference's form, or is all
    zeros / one constant where the reference's is not.
    """
    for name, given in (inputs or {}).items():
        if _equal(value, given) and not _equal(expected, given):
            raise CheckFailure(f"{what}: {GATE}; yours returned its argument {name} unchanged",
                               what=what)
    if not _same_structure(value, expected):
        if _numeric(value) and not _numeric(expected):
            got = f"the constant {value!r}"
        else:
            got = f"a {type(value).__name__}, not a result of the expected form"
        raise CheckFailure(f"{what}: {GATE}; yours returned {got}", what=what)
    got, want = _constant(_leaves(value)), _constant(_leaves(expected))
    if got is not None and want is None:
        kind = "zeros" if got == 0 else f"the constant {got:g} everywhere"
        raise CheckFailure(f"{what}: {GATE}; yours returned {kind}", what=what)


def require_gradient_computes(analytic, numeric, expected, what, forward, arg):
    """The gate of a numerical-gradient check against the student's own forward.

    Zero gradients agree with the numerical gradient of a forward that ignores its input, so
    the check pays only when the forward changes when ``arg`` changes (its numerical gradient
    is not zero) and the analytic gradient is not all zeros, wherever the reference's
    gradient ``expected`` is not zero.
    """
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.linalg.norm(expected))
    if scale == 0.0:
        return
    if float(np.linalg.norm(numeric)) <= 1e-8 * scale:
        raise CheckFailure(
            f"{what}: {GATE}; your {forward} does not change when {arg} changes (its numerical "
            f"gradient is zero), while the correct one does", what=what)
    if type(analytic) is np.ndarray and analytic.shape == expected.shape and \
            not np.any(analytic):
        raise CheckFailure(f"{what}: {GATE}; yours returned zeros", what=what)


# ---- embedding -----------------------------------------------------------------------------------

def embedding_inputs(rng, V=7, D=3):
    x = np.array([[0, 3, 3, 6], [3, 1, 0, 3], [5, 3, 1, 1]])  # 3 and 1 repeat; 2 and 4 unused
    W = rng.standard_normal((V, D))
    return x, W


# ---- temporal affine -----------------------------------------------------------------------------

def temporal_affine_inputs(rng, N=3, T=4, D=5, M=6):
    return (rng.standard_normal((N, T, D)), rng.standard_normal((D, M)),
            rng.standard_normal(M))


# ---- temporal softmax loss -----------------------------------------------------------------------

def loss_inputs(rng, N=3, T=5, V=6):
    x = rng.standard_normal((N, T, V))
    y = rng.integers(0, V, size=(N, T))
    # Rows with different numbers of counted steps, and a hole in the middle of one row.
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 1, 1, 0]], dtype=bool)
    return x, y, mask


# ---- clipping ------------------------------------------------------------------------------------

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


# ---- language model ------------------------------------------------------------------------------

LM_ARGS = dict(vocab_size=7, wordvec_dim=3, hidden_dim=4)


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


LAYERS = ("word_embedding_forward", "word_embedding_backward", "rnn_forward", "rnn_backward",
          "temporal_affine_forward", "temporal_affine_backward", "temporal_softmax_loss")


def lm_candidates(reference, reference_with, student, params, seqs, **kwargs):
    """What a correct RNNLanguageModel.loss may return: the reference's (loss, grads), or the
    contract's model run here around the student's own layers."""
    hybrid = reference_with(**{name: getattr(student, name) for name in LAYERS})
    return [make_lm(reference, params, **kwargs).loss(seqs),
            own_parts(lambda: make_lm(hybrid, params, **kwargs).loss(seqs))]


# ---- training: delayed recall --------------------------------------------------------------------

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


probes = probes_fixture(__name__)
