# ruff: noqa: F821 - relu_forward, affine_forward, softmax_loss, ... are given by the notebook
"""helpers: the student's own ``_pad`` / ``_windows`` / ``_crop`` helpers, class-based layers,
module constants.

Module-level ``DTYPE = np.float64`` and ``rng = np.random.default_rng(0)`` (for nets built
without a seed; the notebook's own top-level cells rebind ``rng`` too); ``_windows`` from the
notebook's ``sliding_window_view``; ``_crop`` written as ``[pad:-pad]`` guarded for ``pad == 0``;
naive convolution as loops over (n, f) around a ``_correlate`` helper; a vectorised pooling
pair (windows + a float32 equality mask that sends a tie's gradient to every maximum, scattered
back per window offset), used in the ConvNet too, where ReLU makes ties at 0; the fast pair as
a ``Conv2D`` class wrapped by the contract's functions, with ``np.einsum(..., optimize=True)``;
legacy ``np.random.RandomState(seed)``; a ConvNet of layer objects that keep their caches, its
loss a loop over the layer list.
"""
import numpy as np

DTYPE = np.float64


def _pad(x, pad):
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")


def _crop(xp, pad):
    return xp[:, :, pad:-pad, pad:-pad] if pad > 0 else xp


def _windows(xp, HH, WW, stride):
    """windows[n, c, i, j, a, b] = xp[n, c, i * stride + a, j * stride + b] (a view)."""
    return sliding_window_view(xp, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]


def _correlate(image, kernel, stride, Ho, Wo):
    """One (C, H, W) image against one (C, HH, WW) filter, one output position at a time."""
    _, HH, WW = kernel.shape
    result = np.zeros((Ho, Wo), dtype=DTYPE)
    for i in range(Ho):
        for j in range(Wo):
            result[i, j] = np.vdot(image[:, i * stride:i * stride + HH,
                                         j * stride:j * stride + WW], kernel)
    return result


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho = 1 + (H + 2 * pad - HH) // stride
    Wo = 1 + (W + 2 * pad - WW) // stride
    xp = _pad(x, pad)
    out = np.zeros((N, F, Ho, Wo), dtype=DTYPE)
    for n in range(N):
        for f in range(F):
            out[n, f] = _correlate(xp[n], w[f], stride, Ho, Wo) + b[f]
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho, Wo = dout.shape[-2:]
    xp = _pad(x, pad)
    dxp = np.zeros(xp.shape, dtype=DTYPE)
    dw = np.zeros(w.shape, dtype=DTYPE)
    for n in range(N):
        for i in range(Ho):
            for j in range(Wo):
                patch = (slice(None), slice(i * stride, i * stride + HH),
                         slice(j * stride, j * stride + WW))
                g = dout[n, :, i, j]  # every filter at once: (F,)
                dw += g[:, None, None, None] * xp[n][patch][None]
                dxp[n][patch] += np.tensordot(g, w, axes=(0, 0))
    db = dout.sum(axis=(0, 2, 3))
    dx = _crop(dxp, pad)
    return dx, dw, db


class MaxPool:
    """Max pooling over (ph, pw) windows at the given stride; windows may overlap."""

    def __init__(self, pool_param):
        self.ph, self.pw = pool_param["pool_height"], pool_param["pool_width"]
        self.stride = pool_param["stride"]

    def forward(self, x):
        return _windows(x, self.ph, self.pw, self.stride).max(axis=(4, 5))

    def backward(self, dout, x):
        windows = _windows(x, self.ph, self.pw, self.stride)
        Ho, Wo = windows.shape[2:4]
        # 1.0 at each window's maximum (all of them, should there be ties), exact in float32
        is_max = (windows == windows.max(axis=(4, 5), keepdims=True)).astype(np.float32)
        dx = np.zeros(x.shape, dtype=DTYPE)
        s = self.stride
        for a in range(self.ph):
            for b in range(self.pw):
                dx[:, :, a:a + s * Ho:s, b:b + s * Wo:s] += is_max[..., a, b] * dout
        return dx


def max_pool_forward_naive(x, pool_param):
    out = MaxPool(pool_param).forward(x)
    cache = (x, pool_param)
    return out, cache


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    return MaxPool(pool_param).backward(dout, x)


class Conv2D:
    """Convolution without loops over N, H or W."""

    def __init__(self, conv_param):
        self.stride, self.pad = conv_param["stride"], conv_param["pad"]

    def forward(self, x, w, b):
        F, _, HH, WW = w.shape
        win = _windows(_pad(x, self.pad), HH, WW, self.stride)
        return np.einsum("ncijab,fcab->nfij", win, w, optimize=True) + b[:, None, None]

    def backward(self, dout, x, w):
        F, C, HH, WW = w.shape
        s = self.stride
        Ho, Wo = dout.shape[2:]
        xp = _pad(x, self.pad)
        win = _windows(xp, HH, WW, s)
        dw = np.einsum("nfij,ncijab->fcab", dout, win, optimize=True)
        db = np.einsum("nfij->f", dout)
        dxp = np.zeros(xp.shape, dtype=DTYPE)
        for a in range(HH):
            for b in range(WW):
                dxp[:, :, a:a + s * Ho:s, b:b + s * Wo:s] += np.einsum(
                    "nfij,fc->ncij", dout, w[:, :, a, b], optimize=True)
        return _crop(dxp, self.pad), dw, db


def conv_forward_fast(x, w, b, conv_param):
    out = Conv2D(conv_param).forward(x, w, b)
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_fast(dout, cache):
    x, w, b, conv_param = cache
    dx, dw, db = Conv2D(conv_param).backward(dout, x, w)
    return dx, dw, db


rng = np.random.default_rng(0)  # only for nets built without a seed


class _Layer:
    """forward(h, params) keeps its cache; backward(dout, grads) fills its parameters' grads."""

    def __init__(self, forward, backward, keys=(), extra=()):
        self.f, self.b, self.keys, self.extra = forward, backward, keys, extra
        self.cache = None

    def forward(self, h, params):
        out, self.cache = self.f(h, *[params[k] for k in self.keys], *self.extra)
        return out

    def backward(self, dout, grads):
        result = self.b(dout, self.cache)
        if not self.keys:
            return result
        dh, *param_grads = result
        grads.update(zip(self.keys, param_grads, strict=True))
        return dh


class ConvNet:
    def __init__(self, num_filters=8, filter_size=3, hidden_dim=64, num_classes=10,
                 weight_scale=1e-2, reg=0.0, seed=None):
        self.filter_size = filter_size
        self.reg = reg
        gen = rng if seed is None else np.random.RandomState(seed)
        F, k = num_filters, filter_size
        self.params = {
            "W1": gen.normal(0.0, weight_scale, size=(F, 1, k, k)),
            "b1": np.zeros(F, dtype=DTYPE),
            "W2": gen.normal(0.0, weight_scale, size=(F * 16, hidden_dim)),
            "b2": np.zeros(hidden_dim, dtype=DTYPE),
            "W3": gen.normal(0.0, weight_scale, size=(hidden_dim, num_classes)),
            "b3": np.zeros(num_classes, dtype=DTYPE),
        }
        conv_param = {"stride": 1, "pad": (filter_size - 1) // 2}
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        self.layers = [
            _Layer(conv_forward_fast, conv_backward_fast, ("W1", "b1"), (conv_param,)),
            _Layer(relu_forward, relu_backward),
            _Layer(max_pool_forward_naive, max_pool_backward_naive, (), (pool_param,)),
            _Layer(affine_forward, affine_backward, ("W2", "b2")),
            _Layer(relu_forward, relu_backward),
            _Layer(affine_forward, affine_backward, ("W3", "b3")),
        ]

    def loss(self, X, y=None):
        h = X
        for layer in self.layers:
            h = layer.forward(h, self.params)
        if y is None:
            return h
        loss, dh = softmax_loss(h, y)
        grads = {}
        for layer in reversed(self.layers):
            dh = layer.backward(dh, grads)
        for key in ("W1", "W2", "W3"):
            W = self.params[key]
            loss += 0.5 * self.reg * np.sum(W * W)
            grads[key] = grads[key] + self.reg * W
        return loss, grads
