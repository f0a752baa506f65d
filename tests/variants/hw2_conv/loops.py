# ruff: noqa: F821 - relu_forward, affine_forward, softmax_loss, ... are given by the notebook
"""loops: the naive layers with one Python loop per output, the fast convolution with a loop
over the kernel offsets only.

Naive convolution and pooling loop over (n, f, i, j) / (n, c, i, j); ``np.pad(..., 'constant')``
on a copy; pooling backward routes each gradient to ``np.unravel_index(np.argmax(window))``;
the fast pair loops over the HH x WW kernel offsets with ``np.tensordot`` (allowed: no loop
over N, H or W); legacy ``np.random.seed`` + ``np.random.randn`` initialisation; ConvNet loss
unrolled with tuple caches, pooling with the notebook's given fast 2x2 pool.
"""
import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    window = x_pad[n, :, h0:h0 + HH, w0:w0 + WW]
                    out[n, f, i, j] = np.sum(window * w[f, :, :, :]) + b[f]
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    dx_pad = np.zeros(x_pad.shape)
    dw = np.zeros(w.shape)
    db = np.zeros(b.shape)
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    g = dout[n, f, i, j]
                    db[f] += g
                    dw[f] += g * x_pad[n, :, h0:h0 + HH, w0:w0 + WW]
                    dx_pad[n, :, h0:h0 + HH, w0:w0 + WW] += g * w[f]
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def max_pool_forward_naive(x, pool_param):
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    H_out = 1 + (H - ph) // stride
    W_out = 1 + (W - pw) // stride
    out = np.zeros((N, C, H_out, W_out))
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    out[n, c, i, j] = np.max(x[n, c, h0:h0 + ph, w0:w0 + pw])
    cache = (x, pool_param)
    return out, cache


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, w0 = i * stride, j * stride
                    window = x[n, c, h0:h0 + ph, w0:w0 + pw]
                    a, b = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, h0 + a, w0 + b] += dout[n, c, i, j]
    return dx


def conv_forward_fast(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    out = np.zeros((N, H_out, W_out, F))
    for di in range(HH):
        for dj in range(WW):
            # the input pixels that filter entry (di, dj) meets, at every output position
            grid = x_pad[:, :, di:di + stride * H_out:stride, dj:dj + stride * W_out:stride]
            out += np.tensordot(grid, w[:, :, di, dj], axes=([1], [1]))
    out = out.transpose(0, 3, 1, 2) + b.reshape(1, F, 1, 1)
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_fast(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), "constant")
    dx_pad = np.zeros(x_pad.shape)
    dw = np.zeros(w.shape)
    db = np.sum(dout, axis=(0, 2, 3))
    for di in range(HH):
        for dj in range(WW):
            rows = slice(di, di + stride * H_out, stride)
            cols = slice(dj, dj + stride * W_out, stride)
            dw[:, :, di, dj] = np.tensordot(dout, x_pad[:, :, rows, cols],
                                            axes=([0, 2, 3], [0, 2, 3]))
            dx_pad[:, :, rows, cols] += np.tensordot(w[:, :, di, dj], dout,
                                                     axes=([0], [1])).transpose(1, 0, 2, 3)
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


class ConvNet:
    def __init__(self, num_filters=8, filter_size=3, hidden_dim=64, num_classes=10,
                 weight_scale=1e-2, reg=0.0, seed=None):
        self.filter_size = filter_size
        self.reg = reg
        self.params = {}
        if seed is not None:
            np.random.seed(seed)
        F, fs = num_filters, filter_size
        self.params["W1"] = weight_scale * np.random.randn(F, 1, fs, fs)
        self.params["b1"] = np.zeros(F)
        self.params["W2"] = weight_scale * np.random.randn(F * 4 * 4, hidden_dim)
        self.params["b2"] = np.zeros(hidden_dim)
        self.params["W3"] = weight_scale * np.random.randn(hidden_dim, num_classes)
        self.params["b3"] = np.zeros(num_classes)

    def loss(self, X, y=None):
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        W3, b3 = self.params["W3"], self.params["b3"]
        conv_param = {"stride": 1, "pad": (self.filter_size - 1) // 2}
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        a1, conv_cache = conv_forward_fast(X, W1, b1, conv_param)
        r1, relu1_cache = relu_forward(a1)
        p1, pool_cache = max_pool_forward_fast(r1, pool_param)
        a2, fc2_cache = affine_forward(p1, W2, b2)
        r2, relu2_cache = relu_forward(a2)
        scores, fc3_cache = affine_forward(r2, W3, b3)
        if y is None:
            return scores

        loss, dscores = softmax_loss(scores, y)
        loss += 0.5 * self.reg * (np.sum(W1 ** 2) + np.sum(W2 ** 2) + np.sum(W3 ** 2))
        dr2, dW3, db3 = affine_backward(dscores, fc3_cache)
        da2 = relu_backward(dr2, relu2_cache)
        dp1, dW2, db2 = affine_backward(da2, fc2_cache)
        dr1 = max_pool_backward_fast(dp1, pool_cache)
        da1 = relu_backward(dr1, relu1_cache)
        _, dW1, db1 = conv_backward_fast(da1, conv_cache)
        grads = {"W1": dW1 + self.reg * W1, "b1": db1,
                 "W2": dW2 + self.reg * W2, "b2": db2,
                 "W3": dW3 + self.reg * W3, "b3": db3}
        return loss, grads
