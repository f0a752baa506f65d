"""helpers: module constants, helper functions of the student's own, and class-based layers.

Module-level values the functions read (``DTYPE = np.float64``, a module-level
``rng = np.random.default_rng(0)`` used only to initialise nets built without a seed, a dict
of optimizer defaults); helpers ``_rows``, ``_log_softmax`` (log-sum-exp through
``np.logaddexp.reduce``) and ``_with_defaults``; ``Affine`` and ``ReLU`` classes wrapped by
the contract's functions; a net made of layer objects that keep their own caches, its loss a
loop over the layer list; legacy ``np.random.RandomState(seed)`` for seeded nets; in-place
updates on copies (``dx = probs.copy(); dx[...] -= 1``, ``next_w = w.copy(); next_w -= step``).
"""
import numpy as np

DTYPE = np.float64


def _rows(x):
    """x of shape (N, d_1, ..., d_k) as a matrix (N, D)."""
    return x.reshape(x.shape[0], -1)


class Affine:
    """A fully connected layer: out = x @ w + b."""

    @staticmethod
    def forward(x, w, b):
        return _rows(x) @ w + b, (x, w, b)

    @staticmethod
    def backward(dout, cache):
        x, w, b = cache
        return (dout @ w.T).reshape(x.shape), _rows(x).T @ dout, dout.sum(axis=0)


def affine_forward(x, w, b):
    out, cache = Affine.forward(x, w, b)
    return out, cache


def affine_backward(dout, cache):
    dx, dw, db = Affine.backward(dout, cache)
    return dx, dw, db


class ReLU:
    """max(0, x); the cache is x."""

    @staticmethod
    def forward(x):
        return np.maximum(x, 0.0), x

    @staticmethod
    def backward(dout, x):
        return dout * (x > 0).astype(np.float32)  # exact 0/1 mask; subgradient 0 at 0


def relu_forward(x):
    return ReLU.forward(x)


def relu_backward(dout, cache):
    return ReLU.backward(dout, cache)


def _log_softmax(x):
    """Row-wise log-probabilities, stable for any logits (log-sum-exp)."""
    return x - np.logaddexp.reduce(x, axis=1, keepdims=True)


def softmax_loss(x, y):
    N = x.shape[0]
    log_probs = _log_softmax(x)
    picked = log_probs[np.arange(N), y]
    loss = -np.sum(picked) / N
    dx = np.exp(log_probs).copy()
    dx[np.arange(N), y] -= 1.0
    dx /= N
    return loss, dx


rng = np.random.default_rng(0)  # only for nets built without a seed


class _AffineLayer:
    def __init__(self, index):
        self.W, self.b = f"W{index}", f"b{index}"
        self.cache = None

    def forward(self, h, params):
        out, self.cache = affine_forward(h, params[self.W], params[self.b])
        return out

    def backward(self, dout, grads):
        dh, grads[self.W], grads[self.b] = affine_backward(dout, self.cache)
        return dh


class _ReLULayer:
    def __init__(self):
        self.cache = None

    def forward(self, h, params):
        out, self.cache = relu_forward(h)
        return out

    def backward(self, dout, grads):
        return relu_backward(dout, self.cache)


class FullyConnectedNet:
    def __init__(self, hidden_dims, input_dim=64, num_classes=10, weight_scale=1e-2, reg=0.0,
                 dtype=DTYPE, seed=None):
        self.num_layers = len(hidden_dims) + 1
        self.reg = reg
        self.dtype = dtype
        gen = rng if seed is None else np.random.RandomState(seed)
        dims = [input_dim, *hidden_dims, num_classes]
        self.params = {}
        self.layers = []
        for i in range(1, self.num_layers + 1):
            self.params[f"W{i}"] = gen.normal(0.0, weight_scale, size=(dims[i - 1], dims[i]))
            self.params[f"b{i}"] = np.zeros(dims[i])
            self.layers.append(_AffineLayer(i))
            if i < self.num_layers:
                self.layers.append(_ReLULayer())
        self.params = {k: v.astype(dtype) for k, v in self.params.items()}

    def _l2(self):
        return sum(np.sum(self.params[f"W{i}"] ** 2) for i in range(1, self.num_layers + 1))

    def loss(self, X, y=None):
        h = np.asarray(X, dtype=self.dtype)
        for layer in self.layers:
            h = layer.forward(h, self.params)
        if y is None:
            return h
        loss, dh = softmax_loss(h, y)
        loss = loss + 0.5 * self.reg * self._l2()
        grads = {}
        for layer in reversed(self.layers):
            dh = layer.backward(dh, grads)
        for i in range(1, self.num_layers + 1):
            grads[f"W{i}"] = grads[f"W{i}"] + self.reg * self.params[f"W{i}"]
        return loss, grads


_DEFAULTS = {
    "sgd": {"learning_rate": 1e-2},
    "sgd_momentum": {"learning_rate": 1e-2, "momentum": 0.9},
    "rmsprop": {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8},
    "adam": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "t": 0},
}
_STATE = {"sgd": (), "sgd_momentum": ("velocity",), "rmsprop": ("cache",), "adam": ("m", "v")}


def _with_defaults(config, rule, w):
    config = {} if config is None else config
    for key, value in _DEFAULTS[rule].items():
        config.setdefault(key, value)
    for key in _STATE[rule]:
        config.setdefault(key, np.zeros_like(w))
    return config


def sgd(w, dw, config=None):
    config = _with_defaults(config, "sgd", w)
    next_w = w.copy()
    next_w -= config["learning_rate"] * dw
    return next_w, config


def sgd_momentum(w, dw, config=None):
    config = _with_defaults(config, "sgd_momentum", w)
    velocity = config["velocity"] * config["momentum"]
    velocity -= config["learning_rate"] * dw
    config["velocity"] = velocity
    return w + velocity, config


def rmsprop(w, dw, config=None):
    config = _with_defaults(config, "rmsprop", w)
    rho = config["decay_rate"]
    config["cache"] = rho * config["cache"] + (1 - rho) * dw * dw
    step = config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])
    return w - step, config


def adam(w, dw, config=None):
    config = _with_defaults(config, "adam", w)
    config["t"] = t = config["t"] + 1
    b1, b2, eps = config["beta1"], config["beta2"], config["epsilon"]
    config["m"] = b1 * config["m"] + (1 - b1) * dw
    config["v"] = b2 * config["v"] + (1 - b2) * dw * dw
    m_hat = config["m"] / (1 - b1**t)
    v_hat = config["v"] / (1 - b2**t)
    next_w = w.copy()
    next_w -= config["learning_rate"] * m_hat / (np.sqrt(v_hat) + eps)
    return next_w, config
