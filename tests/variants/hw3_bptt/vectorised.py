"""vectorised: np.einsum over whole sequences, with a loop over time only where the recurrence
needs it.

``rnn_forward`` precomputes the input projection of every step with einsum and keeps a dict
cache of stacked arrays (not the step caches); ``rnn_backward`` loops over time only for the
recurrence and gets dx, dWx, dWh and db from whole-sequence einsums; the embedding backward as a
float32 one-hot (exact 0/1) matrix product; the masked loss fully vectorised with
``np.take_along_axis`` and a float32 mask; clipping by the norm of the concatenated gradients,
returning a new dict of the very same arrays when nothing is clipped;
``np.random.default_rng(seed)``; the language model with a dict of caches.
"""
import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(np.einsum("nd,dh->nh", x, Wx) + np.einsum("nk,kh->nh", prev_h, Wh) + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h * next_h)
    dx = np.einsum("nh,dh->nd", da, Wx)
    dprev_h = np.einsum("nh,kh->nk", da, Wh)
    dWx = np.einsum("nd,nh->dh", x, da)
    dWh = np.einsum("nk,nh->kh", prev_h, da)
    db = np.einsum("nh->h", da)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    projected = np.einsum("ntd,dh->nth", x, Wx) + b  # the input part of every step at once
    h = np.empty((N, T, h0.shape[1]))
    prev = h0
    for t in range(T):
        prev = np.tanh(projected[:, t] + prev @ Wh)
        h[:, t] = prev
    cache = {"x": x, "h0": h0, "h": h, "Wx": Wx, "Wh": Wh}
    return h, cache


def rnn_backward(dh, cache):
    N, T, H = dh.shape
    x, h0, h, Wx, Wh = cache["x"], cache["h0"], cache["h"], cache["Wx"], cache["Wh"]
    da = np.empty((N, T, H))
    carry = np.zeros((N, H))
    for t in reversed(range(T)):
        da[:, t] = (dh[:, t] + carry) * (1 - h[:, t] ** 2)
        carry = da[:, t] @ Wh.T
    prev_h = np.concatenate([h0[:, None, :], h[:, :-1]], axis=1)  # the state each step read
    dx = np.einsum("nth,dh->ntd", da, Wx)
    dWx = np.einsum("ntd,nth->dh", x, da)
    dWh = np.einsum("ntk,nth->kh", prev_h, da)
    db = np.einsum("nth->h", da)
    dh0 = carry
    return dx, dh0, dWx, dWh, db


def word_embedding_forward(x, W):
    out = np.take(W, x, axis=0)
    cache = (x, W)
    return out, cache


def word_embedding_backward(dout, cache):
    x, W = cache
    V, D = W.shape
    onehot = np.eye(V, dtype=np.float32)[x.ravel()]  # (N*T, V), exact zeros and ones
    dW = onehot.T @ dout.reshape(-1, D)  # float32 @ float64 is computed in float64
    return dW


def temporal_affine_forward(x, w, b):
    out = np.einsum("ntd,dm->ntm", x, w) + b
    cache = (x, w, b)
    return out, cache


def temporal_affine_backward(dout, cache):
    x, w, b = cache
    dx = np.einsum("ntm,dm->ntd", dout, w)
    dw = np.einsum("ntd,ntm->dm", x, dout)
    db = np.einsum("ntm->m", dout)
    return dx, dw, db


def temporal_softmax_loss(x, y, mask):
    N, T, V = x.shape
    z = x - x.max(axis=2, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    weight = np.asarray(mask, dtype=np.float32)  # 1.0 where the step counts, else 0.0
    picked = np.take_along_axis(log_probs, y[:, :, None], axis=2)[:, :, 0]
    loss = -np.sum(weight * picked) / N
    onehot = np.eye(V)[y]
    dx = (np.exp(log_probs) - onehot) * (weight[:, :, None] / N)
    return loss, dx


def clip_grad_norm(grads, max_norm):
    norm = np.linalg.norm(np.concatenate([g.ravel() for g in grads.values()]))
    if norm <= max_norm:
        return dict(grads)  # a new dict holding the same, unchanged arrays
    clipped = {name: (max_norm / norm) * g for name, g in grads.items()}
    return clipped


class RNNLanguageModel:
    def __init__(self, vocab_size, wordvec_dim, hidden_dim, null_idx=0, seed=None):
        self.vocab_size = vocab_size
        self.null_idx = null_idx
        rng = np.random.default_rng(seed)
        V, D, H = vocab_size, wordvec_dim, hidden_dim
        self.params = {"W_embed": rng.standard_normal((V, D)) * 0.1}
        for name, (rows, cols) in (("Wx", (D, H)), ("Wh", (H, H)), ("W_out", (H, V))):
            self.params[name] = rng.standard_normal((rows, cols)) / np.sqrt(rows)
        self.params["b"] = np.zeros(H)
        self.params["b_out"] = np.zeros(V)

    def loss(self, seqs):
        p = self.params
        N = seqs.shape[0]
        inputs, targets = seqs[:, :-1], seqs[:, 1:]
        mask = targets != self.null_idx
        caches = {}
        emb, caches["embed"] = word_embedding_forward(inputs, p["W_embed"])
        h, caches["rnn"] = rnn_forward(emb, np.zeros((N, p["Wh"].shape[0])), p["Wx"], p["Wh"],
                                       p["b"])
        scores, caches["out"] = temporal_affine_forward(h, p["W_out"], p["b_out"])
        loss, dscores = temporal_softmax_loss(scores, targets, mask)
        grads = {}
        dh, grads["W_out"], grads["b_out"] = temporal_affine_backward(dscores, caches["out"])
        demb, _, grads["Wx"], grads["Wh"], grads["b"] = rnn_backward(dh, caches["rnn"])
        grads["W_embed"] = word_embedding_backward(demb, caches["embed"])
        return loss, grads
