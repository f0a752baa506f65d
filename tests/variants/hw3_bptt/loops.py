"""loops: explicit loops over time, examples and dict entries.

Layers written with ``.dot``; the sequence cache a list of the step caches (tuples); the
embedding forward and backward as loops over (n, t) with ``dW[x[n, t]] += dout[n, t]`` (which
accumulates, unlike ``dW[x] += dout``); the temporal layers and the loss loop over t, the loss
with max-shift and log-sum-exp per step; ``clip_grad_norm`` accumulates the squared norm in a
loop; legacy ``np.random.seed`` + ``np.random.randn`` initialisation; the language model's
loss unrolled with tuple caches.
"""
import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    a = x.dot(Wx) + prev_h.dot(Wh) + b
    next_h = np.tanh(a)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1.0 - np.square(next_h))
    dx = da.dot(Wx.T)
    dprev_h = da.dot(Wh.T)
    dWx = x.T.dot(da)
    dWh = prev_h.T.dot(da)
    db = np.sum(da, axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    cache = []
    prev_h = h0
    for t in range(T):
        next_h, step_cache = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)
        h[:, t, :] = next_h
        cache.append(step_cache)
        prev_h = next_h
    return h, cache


def rnn_backward(dh, cache):
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx = np.zeros((D, H))
    dWh = np.zeros((H, H))
    db = np.zeros(H)
    dprev_h = np.zeros((N, H))
    for t in range(T - 1, -1, -1):
        dx_t, dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t, :] + dprev_h, cache[t])
        dx[:, t, :] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    dh0 = dprev_h
    return dx, dh0, dWx, dWh, db


def word_embedding_forward(x, W):
    N, T = x.shape
    out = np.zeros((N, T, W.shape[1]), dtype=W.dtype)
    for n in range(N):
        for t in range(T):
            out[n, t] = W[x[n, t]]
    cache = (x, W)
    return out, cache


def word_embedding_backward(dout, cache):
    x, W = cache
    N, T = x.shape
    dW = np.zeros_like(W)
    for n in range(N):
        for t in range(T):
            dW[x[n, t]] += dout[n, t]
    return dW


def temporal_affine_forward(x, w, b):
    N, T, D = x.shape
    out = np.zeros((N, T, w.shape[1]))
    for t in range(T):
        out[:, t, :] = x[:, t, :].dot(w) + b
    cache = (x, w, b)
    return out, cache


def temporal_affine_backward(dout, cache):
    x, w, b = cache
    N, T, D = x.shape
    M = w.shape[1]
    dx = np.zeros((N, T, D))
    dw = np.zeros((D, M))
    db = np.zeros(M)
    for t in range(T):
        dx[:, t, :] = dout[:, t, :].dot(w.T)
        dw += x[:, t, :].T.dot(dout[:, t, :])
        db += dout[:, t, :].sum(axis=0)
    return dx, dw, db


def temporal_softmax_loss(x, y, mask):
    N, T, V = x.shape
    loss = 0.0
    dx = np.zeros((N, T, V))
    rows = np.arange(N)
    for t in range(T):
        scores = x[:, t, :]
        shifted = scores - np.max(scores, axis=1, keepdims=True)
        log_z = np.log(np.sum(np.exp(shifted), axis=1))
        counted = mask[:, t].astype(np.float64)
        loss += np.sum(counted * (log_z - shifted[rows, y[:, t]]))
        probs = np.exp(shifted - log_z[:, None])
        probs[rows, y[:, t]] -= 1.0
        dx[:, t, :] = probs * counted[:, None] / N
    loss = loss / N
    return loss, dx


def clip_grad_norm(grads, max_norm):
    total = 0.0
    for name in grads:
        total += np.sum(grads[name] ** 2)
    norm = np.sqrt(total)
    clipped = {}
    for name in grads:
        if norm > max_norm:
            clipped[name] = grads[name] * (max_norm / norm)
        else:
            clipped[name] = grads[name].copy()
    return clipped


class RNNLanguageModel:
    def __init__(self, vocab_size, wordvec_dim, hidden_dim, null_idx=0, seed=None):
        self.vocab_size = vocab_size
        self.null_idx = null_idx
        if seed is not None:
            np.random.seed(seed)
        V, D, H = vocab_size, wordvec_dim, hidden_dim
        self.params = {}
        self.params["W_embed"] = np.random.randn(V, D) * 0.1
        self.params["Wx"] = np.random.randn(D, H) / np.sqrt(D)
        self.params["Wh"] = np.random.randn(H, H) / np.sqrt(H)
        self.params["b"] = np.zeros(H)
        self.params["W_out"] = np.random.randn(H, V) / np.sqrt(H)
        self.params["b_out"] = np.zeros(V)

    def loss(self, seqs):
        p = self.params
        N = seqs.shape[0]
        captions_in = seqs[:, :-1]
        captions_out = seqs[:, 1:]
        mask = captions_out != self.null_idx
        H = p["Wh"].shape[0]
        h0 = np.zeros((N, H))
        embedded, embed_cache = word_embedding_forward(captions_in, p["W_embed"])
        hidden, rnn_cache = rnn_forward(embedded, h0, p["Wx"], p["Wh"], p["b"])
        scores, affine_cache = temporal_affine_forward(hidden, p["W_out"], p["b_out"])
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask)

        dhidden, dW_out, db_out = temporal_affine_backward(dscores, affine_cache)
        dembedded, _, dWx, dWh, db = rnn_backward(dhidden, rnn_cache)
        dW_embed = word_embedding_backward(dembedded, embed_cache)
        grads = {"W_embed": dW_embed, "Wx": dWx, "Wh": dWh, "b": db,
                 "W_out": dW_out, "b_out": db_out}
        return loss, grads
