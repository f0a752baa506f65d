"""Public checks for hw3_bptt, run in the student's notebook with ``check("name")``.

Only invariants, hand-computable values and numerical gradients: no reference answers.
"""
import numpy as np

from autograder.checks import (CheckFailure, assert_close, assert_gradient, expect_array,
                               expect_scalar, expect_tuple, numeric_gradient, numeric_vjp)
from autograder.public import public_check


def _rng():
    return np.random.default_rng(1234)


def _rnn_params(rng, D=3, H=4):
    return (rng.standard_normal((D, H)), 0.5 * rng.standard_normal((H, H)),
            0.1 * rng.standard_normal(H))


@public_check("rnn_step_forward")
def rnn_step_by_hand(impl):
    """rnn_step_forward on a tiny input computed by hand"""
    x = np.array([[1.0, 0.0], [0.0, 2.0]])
    prev_h = np.array([[0.5, -1.0], [0.0, 0.0]])
    Wx = np.array([[1.0, 0.0], [0.0, 0.5]])
    Wh = np.array([[2.0, 0.0], [1.0, 1.0]])
    b = np.array([0.0, 0.25])
    next_h, _ = expect_tuple(impl.rnn_step_forward(x, prev_h, Wx, Wh, b), 2, "rnn_step_forward")
    # a = x Wx + prev_h Wh + b = [[1 + 0 + 0, 0 - 1 + 0.25], [0 + 0 + 0, 1 + 0 + 0.25]]
    expected = np.tanh(np.array([[1.0, -0.75], [0.0, 1.25]]))
    assert_close(next_h, expected, "rnn_step_forward next_h")


@public_check("rnn_step_backward")
def rnn_step_backward_numerical(impl):
    """rnn_step_backward agrees with numerical gradients of rnn_step_forward"""
    rng = _rng()
    x, prev_h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    Wx, Wh, b = _rnn_params(rng)
    dnext = rng.standard_normal((2, 4))
    _, cache = expect_tuple(impl.rnn_step_forward(x, prev_h, Wx, Wh, b), 2, "rnn_step_forward")
    grads = expect_tuple(impl.rnn_step_backward(dnext, cache), 5, "rnn_step_backward")
    for i, name in enumerate(("dx", "dprev_h", "dWx", "dWh", "db")):
        numeric = numeric_vjp(lambda *a: impl.rnn_step_forward(*a)[0], [x, prev_h, Wx, Wh, b],
                              i, dnext)
        assert_gradient(grads[i], numeric, f"rnn_step_backward {name}", tol=1e-7)


@public_check("rnn_forward")
def rnn_forward_unrolls_the_step(impl):
    """rnn_forward: h[:, t] is rnn_step_forward applied to h[:, t-1] (h0 at t = 0)"""
    rng = _rng()
    x, h0 = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4))
    Wx, Wh, b = _rnn_params(rng)
    h, _ = expect_tuple(impl.rnn_forward(x, h0, Wx, Wh, b), 2, "rnn_forward")
    expect_array(h, "rnn_forward h", shape=(2, 5, 4))
    prev = h0
    for t in range(5):
        prev, _ = impl.rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        assert_close(h[:, t], prev, f"rnn_forward h[:, {t}] against your rnn_step_forward")


@public_check("rnn_backward")
def rnn_backward_numerical(impl):
    """rnn_backward agrees with numerical gradients of rnn_forward (dh0 included)"""
    rng = _rng()
    x, h0 = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4))
    Wx, Wh, b = _rnn_params(rng)
    dh = rng.standard_normal((2, 5, 4))
    _, cache = expect_tuple(impl.rnn_forward(x, h0, Wx, Wh, b), 2, "rnn_forward")
    grads = expect_tuple(impl.rnn_backward(dh, cache), 5, "rnn_backward")
    for i, name in enumerate(("dx", "dh0", "dWx", "dWh", "db")):
        numeric = numeric_vjp(lambda *a: impl.rnn_forward(*a)[0], [x, h0, Wx, Wh, b], i, dh)
        assert_gradient(grads[i], numeric, f"rnn_backward {name}", tol=1e-7)


@public_check("rnn_backward")
def rnn_backward_reaches_the_first_step(impl):
    """rnn_backward: a gradient on the last hidden state only still reaches x[:, 0] and h0"""
    rng = _rng()
    x, h0 = rng.standard_normal((2, 6, 3)), rng.standard_normal((2, 4))
    Wx, Wh, b = _rnn_params(rng)
    dh = np.zeros((2, 6, 4))
    dh[:, -1] = rng.standard_normal((2, 4))
    _, cache = expect_tuple(impl.rnn_forward(x, h0, Wx, Wh, b), 2, "rnn_forward")
    dx, dh0, *_ = expect_tuple(impl.rnn_backward(dh, cache), 5, "rnn_backward")
    dx = expect_array(dx, "rnn_backward dx", shape=x.shape)
    if not np.any(dx[:, 0]) or not np.any(dh0):
        raise CheckFailure("with dh non-zero only at the last step, dx[:, 0] and dh0 are zero: "
                           "the gradient must flow back through every step via dprev_h")


@public_check("word_embedding_forward")
def embedding_by_hand(impl):
    """word_embedding_forward picks rows of W"""
    W = np.arange(8.0).reshape(4, 2)
    x = np.array([[0, 3], [3, 1]])
    out, _ = expect_tuple(impl.word_embedding_forward(x, W), 2, "word_embedding_forward")
    expected = np.array([[[0.0, 1.0], [6.0, 7.0]], [[6.0, 7.0], [2.0, 3.0]]])
    assert_close(out, expected, "word_embedding_forward out")


@public_check("word_embedding_backward")
def embedding_backward_counts(impl):
    """word_embedding_backward with dout = 1 counts how often each word appears"""
    W = np.zeros((5, 3))
    x = np.array([[1, 1, 4], [1, 0, 4]])  # word 1 three times, word 4 twice, 2 and 3 never
    _, cache = expect_tuple(impl.word_embedding_forward(x, W), 2, "word_embedding_forward")
    dW = impl.word_embedding_backward(np.ones((2, 3, 3)), cache)
    expected = np.array([1.0, 3.0, 0.0, 0.0, 2.0])[:, None] * np.ones((5, 3))
    assert_close(dW, expected, "word_embedding_backward dW (repeated words must add up)")


@public_check("temporal_affine_forward")
def temporal_affine_by_hand(impl):
    """temporal_affine_forward on a tiny input computed by hand"""
    x = np.array([[[1.0, 2.0], [0.0, 1.0], [-1.0, 0.0]]])  # (1, 3, 2)
    w = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, -1.0]])
    b = np.array([0.5, 0.0, -0.5])
    out, _ = expect_tuple(impl.temporal_affine_forward(x, w, b), 2, "temporal_affine_forward")
    expected = np.array([[[1.5, 4.0, -1.5], [0.5, 2.0, -1.5], [-0.5, 0.0, -1.5]]])
    assert_close(out, expected, "temporal_affine_forward out")


@public_check("temporal_affine_backward")
def temporal_affine_backward_numerical(impl):
    """temporal_affine_backward agrees with numerical gradients"""
    rng = _rng()
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    dout = rng.standard_normal((2, 3, 5))
    _, cache = expect_tuple(impl.temporal_affine_forward(x, w, b), 2, "temporal_affine_forward")
    grads = expect_tuple(impl.temporal_affine_backward(dout, cache), 3,
                         "temporal_affine_backward")
    for i, name in enumerate(("dx", "dw", "db")):
        numeric = numeric_vjp(lambda *a: impl.temporal_affine_forward(*a)[0], [x, w, b], i, dout)
        assert_gradient(grads[i], numeric, f"temporal_affine_backward {name}", tol=1e-7)


@public_check("temporal_softmax_loss")
def temporal_softmax_uniform(impl):
    """temporal_softmax_loss of equal scores is log(V) per unmasked step, divided by N"""
    x = np.zeros((2, 3, 5))
    y = np.array([[0, 1, 2], [3, 4, 0]])
    mask = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)  # 3 steps count
    loss, _ = expect_tuple(impl.temporal_softmax_loss(x, y, mask), 2, "temporal_softmax_loss")
    assert_close(expect_scalar(loss, "loss"), 3 * np.log(5.0) / 2,
                 "temporal_softmax_loss of zero scores (3 unmasked steps, N = 2)")


@public_check("temporal_softmax_loss")
def temporal_softmax_gradient(impl):
    """temporal_softmax_loss dx agrees with the numerical gradient (with a mask)"""
    rng = _rng()
    x, y = rng.standard_normal((2, 3, 4)), np.array([[0, 3, 1], [2, 2, 3]])
    mask = np.array([[1, 0, 1], [1, 1, 0]], dtype=bool)
    _, dx = expect_tuple(impl.temporal_softmax_loss(x, y, mask), 2, "temporal_softmax_loss")
    numeric = numeric_gradient(lambda v: float(impl.temporal_softmax_loss(v, y, mask)[0]), x)
    assert_gradient(dx, numeric, "temporal_softmax_loss dx", tol=1e-6)


@public_check("clip_grad_norm")
def clip_rescales_large_gradients(impl):
    """clip_grad_norm: a global norm of 13 clipped to 6.5 halves every gradient"""
    grads = {"a": np.array([3.0, 4.0]), "b": np.array([[12.0]])}  # sqrt(9 + 16 + 144) = 13
    clipped = impl.clip_grad_norm(grads, 6.5)
    if type(clipped) is not dict or sorted(clipped) != ["a", "b"]:
        raise CheckFailure("clip_grad_norm should return a dict with the same keys")
    assert_close(clipped["a"], np.array([1.5, 2.0]), "clipped['a']")
    assert_close(clipped["b"], np.array([[6.0]]), "clipped['b']")


@public_check("clip_grad_norm")
def clip_keeps_small_gradients(impl):
    """clip_grad_norm leaves gradients with a small norm unchanged"""
    grads = {"a": np.array([0.3, -0.4]), "b": np.array([[0.0]])}
    clipped = impl.clip_grad_norm(grads, 1.0)
    assert_close(clipped["a"], grads["a"], "clipped['a'] when the norm is 0.5 < max_norm")


@public_check("RNNLanguageModel")
def lm_gradients(impl):
    """RNNLanguageModel gradients agree with numerical gradients (with padding)"""
    model = impl.RNNLanguageModel(vocab_size=5, wordvec_dim=3, hidden_dim=4, seed=0)
    seqs = np.array([[1, 2, 3, 4, 0], [1, 4, 0, 0, 0]])  # null_idx = 0 pads the end
    _, grads = expect_tuple(model.loss(seqs), 2, "RNNLanguageModel.loss")
    for key in sorted(model.params):
        def loss_at(value, key=key):
            saved = model.params[key]
            model.params[key] = value
            try:
                return float(model.loss(seqs)[0])
            finally:
                model.params[key] = saved
        numeric = numeric_gradient(loss_at, model.params[key])
        assert_gradient(grads[key], numeric, f"grads[{key!r}]", tol=1e-6)
