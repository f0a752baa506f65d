"""loops: explicit Python loops over examples, classes and layers, as a first attempt is written.

Per-example loops in the affine layer and the loss; ReLU by in-place work on copies
(``out = x.copy(); out[out < 0] = 0``); relu subgradient 0 at 0; legacy ``np.random.seed`` +
``np.random.randn`` initialisation; the loss written as a loop over layers with a list of
tuple caches; every update rule out of place.
"""
import numpy as np


def affine_forward(x, w, b):
    N = x.shape[0]
    rows = x.reshape(N, -1)
    out = np.zeros((N, w.shape[1]), dtype=np.result_type(x, w, b))
    for i in range(N):
        out[i] = rows[i].dot(w) + b
    cache = (x, w, b)
    return out, cache


def affine_backward(dout, cache):
    x, w, b = cache
    N = x.shape[0]
    rows = x.reshape(N, -1)
    dx_rows = np.zeros(rows.shape, dtype=np.result_type(dout, w))
    dw = np.zeros(w.shape, dtype=np.result_type(dout, x))
    db = np.zeros(b.shape, dtype=dout.dtype)
    for i in range(N):
        dx_rows[i] = w.dot(dout[i])
        dw += np.outer(rows[i], dout[i])
        db += dout[i]
    dx = dx_rows.reshape(x.shape)
    return dx, dw, db


def relu_forward(x):
    out = x.copy()
    out[out < 0] = 0
    cache = x
    return out, cache


def relu_backward(dout, cache):
    x = cache
    dx = dout.copy()
    dx[x <= 0] = 0  # subgradient 0 at the kink
    return dx


def softmax_loss(x, y):
    N, C = x.shape
    loss = 0.0
    dx = np.zeros(x.shape, dtype=x.dtype)
    for i in range(N):
        shifted = x[i] - np.max(x[i])
        log_z = np.log(np.sum(np.exp(shifted)))
        loss += log_z - shifted[y[i]]
        probs = np.exp(shifted - log_z)
        probs[y[i]] -= 1
        dx[i] = probs / N
    loss /= N
    return loss, dx


class FullyConnectedNet:
    def __init__(self, hidden_dims, input_dim=64, num_classes=10, weight_scale=1e-2, reg=0.0,
                 dtype=np.float64, seed=None):
        self.num_layers = len(hidden_dims) + 1
        self.reg = reg
        self.dtype = dtype
        self.params = {}
        if seed is not None:
            np.random.seed(seed)
        dims = [input_dim] + list(hidden_dims) + [num_classes]
        for i in range(self.num_layers):
            W = weight_scale * np.random.randn(dims[i], dims[i + 1])
            self.params["W%d" % (i + 1)] = W.astype(dtype)
            self.params["b%d" % (i + 1)] = np.zeros(dims[i + 1], dtype=dtype)

    def loss(self, X, y=None):
        X = X.astype(self.dtype)
        L = self.num_layers
        caches = []
        out = X
        for i in range(1, L + 1):
            W, b = self.params["W%d" % i], self.params["b%d" % i]
            out, fc_cache = affine_forward(out, W, b)
            relu_cache = None
            if i < L:
                out, relu_cache = relu_forward(out)
            caches.append((fc_cache, relu_cache))
        scores = out
        if y is None:
            return scores

        loss, dout = softmax_loss(scores, y)
        grads = {}
        for i in range(L, 0, -1):
            fc_cache, relu_cache = caches[i - 1]
            if relu_cache is not None:
                dout = relu_backward(dout, relu_cache)
            dout, dW, db = affine_backward(dout, fc_cache)
            W = self.params["W%d" % i]
            loss += 0.5 * self.reg * np.sum(W ** 2)
            grads["W%d" % i] = dW + self.reg * W
            grads["b%d" % i] = db
        return loss, grads


def sgd(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    next_w = w - config["learning_rate"] * dw
    return next_w, config


def sgd_momentum(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.get("velocity", np.zeros_like(w))
    v = config["momentum"] * v - config["learning_rate"] * dw
    next_w = w + v
    config["velocity"] = v
    return next_w, config


def rmsprop(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("cache", np.zeros_like(w))
    decay_rate = config["decay_rate"]
    cache = decay_rate * config["cache"] + (1 - decay_rate) * (dw * dw)
    next_w = w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"])
    config["cache"] = cache
    return next_w, config


def adam(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    config.setdefault("t", 0)
    t = config["t"] + 1
    b1, b2 = config["beta1"], config["beta2"]
    m = b1 * config["m"] + (1 - b1) * dw
    v = b2 * config["v"] + (1 - b2) * (dw ** 2)
    mt = m / (1 - b1 ** t)
    vt = v / (1 - b2 ** t)
    next_w = w - config["learning_rate"] * mt / (np.sqrt(vt) + config["epsilon"])
    config["m"], config["v"], config["t"] = m, v, t
    return next_w, config
