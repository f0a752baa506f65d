# ruff: noqa: F821 - relu_forward, affine_forward, softmax_loss, ... are given by the notebook
"""vectorised: einsum inside the naive loops, im2col with ``as_strided`` for the fast pair.

Naive convolution loops over the output positions only, contracting (n, c, a, b, f) with
``np.einsum``; pooling loops over output positions and routes gradients with ``argmax`` +
``np.add.at``; the fast forward builds the im2col matrix from an ``as_strided`` view and does one
matrix product; the fast backward does col2im with ``np.bincount`` on flat indices (no loop at
all); ``np.random.default_rng(seed).normal``; ConvNet loss unrolled with a dict of caches and
the student's own ``max_pool_forward_naive`` in the net.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho = 1 + (H + 2 * pad - HH) // stride
    Wo = 1 + (W + 2 * pad - WW) // stride
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.empty((N, F, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.einsum("ncab,fcab->nf", window, w) + b
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho, Wo = dout.shape[2], dout.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(Ho):
        for j in range(Wo):
            rows = slice(i * stride, i * stride + HH)
            cols = slice(j * stride, j * stride + WW)
            g = dout[:, :, i, j]  # (N, F)
            dw += np.einsum("nf,ncab->fcab", g, xp[:, :, rows, cols])
            dxp[:, :, rows, cols] += np.einsum("nf,fcab->ncab", g, w)
    db = np.einsum("nfij->f", dout)
    dx = dxp[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def max_pool_forward_naive(x, pool_param):
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho, Wo = 1 + (H - ph) // stride, 1 + (W - pw) // stride
    out = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = x[:, :, i * stride:i * stride + ph,
                                j * stride:j * stride + pw].max(axis=(2, 3))
    cache = (x, pool_param)
    return out, cache


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho, Wo = dout.shape[2:]
    dx = np.zeros(x.shape, dtype=np.result_type(x, dout))
    n_idx, c_idx = np.meshgrid(np.arange(N), np.arange(C), indexing="ij")
    for i in range(Ho):
        for j in range(Wo):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            flat = window.reshape(N, C, ph * pw).argmax(axis=2)
            a, b = np.unravel_index(flat, (ph, pw))
            # np.add.at accumulates where overlapping windows share their maximum
            np.add.at(dx, (n_idx, c_idx, i * stride + a, j * stride + b), dout[:, :, i, j])
    return dx


def conv_forward_fast(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho = 1 + (H + 2 * pad - HH) // stride
    Wo = 1 + (W + 2 * pad - WW) // stride
    xp = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))))
    sN, sC, sH, sW = xp.strides
    patches = as_strided(xp, shape=(N, Ho, Wo, C, HH, WW),
                         strides=(sN, stride * sH, stride * sW, sC, sH, sW), writeable=False)
    cols = patches.reshape(N * Ho * Wo, C * HH * WW)  # im2col: one row per output position
    out = cols @ w.reshape(F, -1).T + b
    out = np.ascontiguousarray(out.reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2))
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_fast(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, Ho, Wo = dout.shape
    Hp, Wp = H + 2 * pad, W + 2 * pad
    xp = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))))
    sN, sC, sH, sW = xp.strides
    patches = as_strided(xp, shape=(N, Ho, Wo, C, HH, WW),
                         strides=(sN, stride * sH, stride * sW, sC, sH, sW), writeable=False)
    cols = patches.reshape(N * Ho * Wo, C * HH * WW)
    dout_mat = dout.transpose(0, 2, 3, 1).reshape(N * Ho * Wo, F)
    db = dout_mat.sum(axis=0)
    dw = (dout_mat.T @ cols).reshape(w.shape)
    dcols = dout_mat @ w.reshape(F, -1)  # (N*Ho*Wo, C*HH*WW)
    # col2im: the flat index in xp of every entry of the im2col matrix, summed with bincount
    nc = np.arange(N * C).reshape(N, 1, 1, C, 1, 1)  # n * C + c
    rows = (np.arange(Ho)[:, None] * stride + np.arange(HH)).reshape(1, Ho, 1, 1, HH, 1)
    cols = (np.arange(Wo)[:, None] * stride + np.arange(WW)).reshape(1, 1, Wo, 1, 1, WW)
    flat = (nc * Hp + rows) * Wp + cols  # shaped like dcols.reshape(N, Ho, Wo, C, HH, WW)
    dxp = np.bincount(flat.ravel(), weights=dcols.ravel(), minlength=N * C * Hp * Wp)
    dx = dxp.reshape(N, C, Hp, Wp)[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


class ConvNet:
    def __init__(self, num_filters=8, filter_size=3, hidden_dim=64, num_classes=10,
                 weight_scale=1e-2, reg=0.0, seed=None):
        self.filter_size = filter_size
        self.reg = reg
        rng = np.random.default_rng(seed)
        F, k = num_filters, filter_size
        shapes = {"W1": (F, 1, k, k), "W2": (F * 16, hidden_dim), "W3": (hidden_dim, num_classes)}
        self.params = {}
        for name, shape in shapes.items():
            self.params[name] = rng.normal(0.0, weight_scale, shape)
            self.params["b" + name[1:]] = np.zeros(shape[0] if name == "W1" else shape[1])

    def loss(self, X, y=None):
        p = self.params
        conv_param = {"stride": 1, "pad": (self.filter_size - 1) // 2}
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        caches = {}
        h, caches["conv"] = conv_forward_fast(X, p["W1"], p["b1"], conv_param)
        h, caches["relu1"] = relu_forward(h)
        h, caches["pool"] = max_pool_forward_naive(h, pool_param)
        h, caches["fc2"] = affine_forward(h, p["W2"], p["b2"])
        h, caches["relu2"] = relu_forward(h)
        scores, caches["fc3"] = affine_forward(h, p["W3"], p["b3"])
        if y is None:
            return scores

        loss, d = softmax_loss(scores, y)
        grads = {}
        d, grads["W3"], grads["b3"] = affine_backward(d, caches["fc3"])
        d = relu_backward(d, caches["relu2"])
        d, grads["W2"], grads["b2"] = affine_backward(d, caches["fc2"])
        d = max_pool_backward_naive(d, caches["pool"])
        d = relu_backward(d, caches["relu1"])
        _, grads["W1"], grads["b1"] = conv_backward_fast(d, caches["conv"])
        for name in ("W1", "W2", "W3"):
            loss += 0.5 * self.reg * np.vdot(p[name], p[name])
            grads[name] = grads[name] + self.reg * p[name]
        return loss, grads
