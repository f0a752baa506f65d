"""helpers: a class-based RNN cell, helpers of the student's own and module constants.

Module-level ``EPS = np.finfo(float).eps`` (guards the clipping division), ``DTYPE``, and
``rng = np.random.default_rng(0)`` for models built without a seed (the notebook's own
experiment cells rebind ``rng`` too); a ``TanhCell`` class wrapped by the step functions;
``rnn_forward`` keeps a tuple of stacked arrays and ``rnn_backward`` rebuilds each step's cache
from it; a ``_log_softmax`` helper through ``np.logaddexp.reduce``, ``np.where`` on the mask and
the loss returned as a Python float;
the embedding backward accumulating per distinct word with boolean masks; ``clip_grad_norm``
scaling copies in place; legacy ``np.random.RandomState(seed)``; the language model's loss as a
loop over layer objects that keep their caches.
"""
import numpy as np

EPS = np.finfo(float).eps
DTYPE = np.float64


class TanhCell:
    """h_next = tanh(x Wx + h_prev Wh + b), and its backward pass."""

    @staticmethod
    def forward(x, prev_h, Wx, Wh, b):
        pre = x @ Wx
        pre += prev_h @ Wh  # in place on our own fresh array
        pre += b
        return np.tanh(pre)

    @staticmethod
    def backward(dnext_h, x, prev_h, Wx, Wh, next_h):
        da = (1 - next_h ** 2) * dnext_h
        return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = TanhCell.forward(x, prev_h, Wx, Wh, b)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    dx, dprev_h, dWx, dWh, db = TanhCell.backward(dnext_h, *cache)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    states = [h0]
    for t in range(T):
        states.append(rnn_step_forward(x[:, t], states[-1], Wx, Wh, b)[0])
    h = np.stack(states[1:], axis=1)
    cache = (x, h0, Wx, Wh, h)
    return h, cache


def rnn_backward(dh, cache):
    x, h0, Wx, Wh, h = cache
    N, T, H = dh.shape
    dx = np.zeros(x.shape, dtype=DTYPE)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H, dtype=DTYPE)
    carry = np.zeros((N, H), dtype=DTYPE)
    for t in range(T - 1, -1, -1):
        prev_h = h[:, t - 1] if t > 0 else h0
        step = (x[:, t], prev_h, Wx, Wh, h[:, t])
        dx[:, t], carry, gWx, gWh, gb = rnn_step_backward(dh[:, t] + carry, step)
        dWx += gWx
        dWh += gWh
        db += gb
    return dx, carry, dWx, dWh, db


def word_embedding_forward(x, W):
    out = W[x]
    cache = (x, W)
    return out, cache


def word_embedding_backward(dout, cache):
    x, W = cache
    dW = np.zeros(W.shape, dtype=DTYPE)
    for word in np.unique(x):
        dW[word] = dout[x == word].sum(axis=0)  # every position of this word, added up
    return dW


def _affine_rows(x2, w, b):
    out = x2 @ w
    out += b
    return out


def temporal_affine_forward(x, w, b):
    N, T, D = x.shape
    out = _affine_rows(x.reshape(N * T, D), w, b).reshape(N, T, -1)
    cache = (x, w, b)
    return out, cache


def temporal_affine_backward(dout, cache):
    x, w, b = cache
    N, T, D = x.shape
    M = w.shape[1]
    d2 = dout.reshape(-1, M)
    x2 = x.reshape(-1, D)
    return (d2 @ w.T).reshape(x.shape), x2.T @ d2, d2.sum(axis=0)


def _log_softmax(scores):
    """log-probabilities over the last axis, stable for any scores (log-sum-exp)."""
    return scores - np.logaddexp.reduce(scores, axis=-1, keepdims=True)


def temporal_softmax_loss(x, y, mask):
    N, T, V = x.shape
    log_p = _log_softmax(x)
    n_idx, t_idx = np.indices((N, T))
    counted = np.asarray(mask).astype(bool)
    loss = np.where(counted, -log_p[n_idx, t_idx, y], 0.0).sum() / N
    dx = np.exp(log_p)
    dx[n_idx, t_idx, y] -= 1.0
    dx[~counted] = 0.0
    dx /= N
    return float(loss), dx


def clip_grad_norm(grads, max_norm):
    clipped = {name: g.copy() for name, g in grads.items()}
    norm = np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    if norm > max_norm:
        factor = max_norm / max(norm, EPS)
        for g in clipped.values():
            g *= factor
    return clipped


rng = np.random.default_rng(0)  # only for models built without a seed


class _Embedding:
    def __init__(self):
        self.cache = None

    def forward(self, inputs, p):
        out, self.cache = word_embedding_forward(inputs, p["W_embed"])
        return out

    def backward(self, dout, grads):
        grads["W_embed"] = word_embedding_backward(dout, self.cache)


class _Recurrent:
    def __init__(self):
        self.cache = None

    def forward(self, emb, p):
        h0 = np.zeros((emb.shape[0], p["Wh"].shape[0]), dtype=DTYPE)
        h, self.cache = rnn_forward(emb, h0, p["Wx"], p["Wh"], p["b"])
        return h

    def backward(self, dh, grads):
        demb, _, grads["Wx"], grads["Wh"], grads["b"] = rnn_backward(dh, self.cache)
        return demb


class _Readout:
    def __init__(self):
        self.cache = None

    def forward(self, h, p):
        scores, self.cache = temporal_affine_forward(h, p["W_out"], p["b_out"])
        return scores

    def backward(self, dscores, grads):
        dh, grads["W_out"], grads["b_out"] = temporal_affine_backward(dscores, self.cache)
        return dh


class RNNLanguageModel:
    def __init__(self, vocab_size, wordvec_dim, hidden_dim, null_idx=0, seed=None):
        self.vocab_size = vocab_size
        self.null_idx = null_idx
        gen = rng if seed is None else np.random.RandomState(seed)
        V, D, H = vocab_size, wordvec_dim, hidden_dim
        self.params = {
            "W_embed": 0.1 * gen.standard_normal((V, D)),
            "Wx": gen.standard_normal((D, H)) / np.sqrt(D),
            "Wh": gen.standard_normal((H, H)) / np.sqrt(H),
            "b": np.zeros(H, dtype=DTYPE),
            "W_out": gen.standard_normal((H, V)) / np.sqrt(H),
            "b_out": np.zeros(V, dtype=DTYPE),
        }
        self.layers = [_Embedding(), _Recurrent(), _Readout()]

    def loss(self, seqs):
        targets = seqs[:, 1:]
        mask = targets != self.null_idx
        out = seqs[:, :-1]
        for layer in self.layers:
            out = layer.forward(out, self.params)
        loss, dout = temporal_softmax_loss(out, targets, mask)
        grads = {}
        for layer in reversed(self.layers):
            dout = layer.backward(dout, grads)
        return loss, grads
