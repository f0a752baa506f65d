"""Write solutions/hw2_conv.ipynb, the instructor's master notebook for hw2_conv.

The student notebook is generated from the master by `dlgrade release hw2_conv`, which
replaces every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block by a NotImplementedError.
Edit this script, not the notebook, then run it:

    python solutions/_build_hw2_master.py

If reference code changes, check that every ``old`` text in
assignments/hw2_conv/mutants.py still occurs in the notebook.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from autograder.release import assemble_notebook, write_master
from autograder.release import code_cell as code
from autograder.release import markdown_cell as md

OUT = Path(__file__).resolve().parent / "hw2_conv.ipynb"


INTRO = r"""
# Homework 2: convolution and pooling

In this homework you write the layers of a small convolutional network yourself: a
convolution and a max-pooling layer, each forward and backward, first with plain loops and
then, for the convolution, vectorised so that it is fast enough to train with. Then you put
them together into a ConvNet and train it on the 8x8 handwritten digits.

You will implement:

- `conv_forward_naive`, `conv_backward_naive`: a convolutional layer, with loops
- `max_pool_forward_naive`, `max_pool_backward_naive`: a max-pooling layer, with loops
- `conv_forward_fast`, `conv_backward_fast`: the same convolution without loops over the
  batch or the image
- `ConvNet`: conv - relu - 2x2 max pool - affine - relu - affine

**Only numpy is allowed**, as in homework 1: importing `torch`, `jax`, `autograd` or any
other automatic-differentiation library is refused by the grader.

The conventions are those of homework 1. A forward function returns its output and a
`cache`; the backward function takes the upstream gradient `dout` ($\bar{y}$ in the notes)
and that cache and returns the gradient with respect to each input, with that input's shape.
Images are stored as `(N, C, H, W)`: batch, channels, height, width. Everything is float64.

Replace each `raise NotImplementedError` under `# TODO: your code here` with your code and run
the `check("name")` cell after it. The public checks use small hand-computed cases,
invariants and numerical gradients; the grader runs more thorough hidden tests. Grading runs
this notebook's definitions: imports, functions, classes, and the module-level values they use
(such as `EPS = 1e-8`), in notebook order. Top-level training loops, plots and prints that
nothing reads are not run, so your experiments cost nothing.
"""

IMPORTS = """
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from autograder import check
"""

# ---- given layers from homework 1 --------------------------------------------------------

GIVEN_MD = r"""
## Layers from homework 1 (given)

The ConvNet at the end needs the affine layer, the ReLU and the softmax loss from homework 1.
They are given here so that this notebook is self-contained; run the cell and move on.
"""

GIVEN = '''
def affine_forward(x, w, b):
    """out = x @ w + b, with x of shape (N, d_1, ..., d_k) flattened to (N, D)."""
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Returns (dx, dw, db) for affine_forward; dx has the shape of x."""
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    """out = max(0, x) elementwise; the cache is x."""
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    """The upstream gradient where the input was positive, zero elsewhere."""
    return dout * (cache > 0)


def softmax_loss(x, y):
    """Softmax cross-entropy averaged over the batch, and its gradient with respect to x."""
    N = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(N), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1
    return loss, dx / N
'''

# ---- convolution, naive ------------------------------------------------------------------

CONV_FORWARD_MD = r"""
## Convolution: forward

A convolutional layer slides `F` filters over the image. Each filter `w[f]` has shape
`(C, HH, WW)`: it spans all `C` input channels and a window of `HH` rows and `WW` columns.
At every position the layer takes the window of the input under the filter, multiplies it
elementwise with the filter, sums everything and adds the filter's bias:

$$\text{out}[n, f, i, j] = b[f] + \sum_{c, a, b'} x_p[n, c, i s + a, j s + b'] \; w[f, c, a, b'],$$

where `s` is the stride and $x_p$ is the input padded with `pad` zeros on **every** side (top,
bottom, left and right). Note that the filter is not flipped: deep-learning libraries call
this cross-correlation a convolution, and so do we. The output has shape `(N, F, Ho, Wo)`
with

```
Ho = 1 + (H + 2 * pad - HH) // stride
Wo = 1 + (W + 2 * pad - WW) // stride
```

The floor division means that when the stride does not fit exactly, the last rows or columns
of the padded input are never covered by a window. Height and width need not be equal, and
neither do `HH` and `WW`: keep them apart.

`np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))` pads only the two spatial axes. Write
this first version with plain loops (over examples, filters and output positions); it only has
to be correct, and the grader only runs it on small inputs. You will make it fast later.
"""

CONV_FORWARD = '''
def conv_forward_naive(x, w, b, conv_param):
    """Forward pass of a convolutional layer, with loops.

    x: input of shape (N, C, H, W).
    w: filters of shape (F, C, HH, WW).
    b: biases of shape (F,).
    conv_param: dict with 'stride' (step between windows) and 'pad' (zeros added on each side).
    Returns (out, cache): out of shape (N, F, Ho, Wo) and cache = (x, w, b, conv_param).
    Leaves its arguments unmodified: x, w, b and conv_param are read-only.
    """
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    # BEGIN SOLUTION
    Ho = 1 + (H + 2 * pad - HH) // stride
    Wo = 1 + (W + 2 * pad - WW) // stride
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    # END SOLUTION
    cache = (x, w, b, conv_param)
    return out, cache
'''

CONV_BACKWARD_MD = r"""
## Convolution: backward

Every output `out[n, f, i, j]` is a sum of products `window * w[f]` plus `b[f]`, so its
upstream gradient `dout[n, f, i, j]` flows back along each of those products:

- to the filter: `dw[f] += dout[n, f, i, j] * window`, where `window` is the patch of the
  padded input that produced this output;
- to the input: the same patch of the padded input's gradient receives
  `dout[n, f, i, j] * w[f]`;
- to the bias: `db[f]` is the sum of `dout[:, f]` over the batch and all positions.

Neighbouring windows overlap (whenever the stride is smaller than the filter), so an input
pixel receives gradient from several outputs: **accumulate** with `+=`. Work on the gradient
of the *padded* input, then cut the padding off at the end so that `dx` has exactly the
shape of `x`. Think about what your slicing does when `pad` is 0.

No filter flipping is needed here: loop over the same windows as in the forward pass and send
each output's gradient back to where it came from.
"""

CONV_BACKWARD = '''
def conv_backward_naive(dout, cache):
    """Backward pass of a convolutional layer, with loops.

    dout: upstream gradient of shape (N, F, Ho, Wo).
    cache: (x, w, b, conv_param) as returned by conv_forward_naive.
    Returns (dx, dw, db) with the shapes of x, w and b.
    Leaves its arguments unmodified: dout and the cache (with the arrays in it) are read-only.
    """
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    # BEGIN SOLUTION
    _, _, Ho, Wo = dout.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    rows = slice(i * stride, i * stride + HH)
                    cols = slice(j * stride, j * stride + WW)
                    dw[f] += dout[n, f, i, j] * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += dout[n, f, i, j] * w[f]
    dx = dxp[:, :, pad:pad + H, pad:pad + W]
    # END SOLUTION
    return dx, dw, db
'''

# ---- max pooling -------------------------------------------------------------------------

POOL_FORWARD_MD = r"""
## Max pooling: forward

Max pooling keeps the largest value of each window, separately for every example and every
channel. `pool_param` holds `pool_height`, `pool_width` and `stride`. There is no padding,
so the output has shape `(N, C, Ho, Wo)` with

```
Ho = 1 + (H - pool_height) // stride
Wo = 1 + (W - pool_width) // stride
```

The usual setting is 2x2 windows with stride 2, which halves height and width, but your code
must handle any setting: windows that are not square (`pool_height != pool_width`) and
windows that overlap (stride smaller than the window).

Loops over the output positions are fine; you may take the maximum over a whole
`(N, C, pool_height, pool_width)` block at once with `max(axis=(2, 3))`.
"""

POOL_FORWARD = '''
def max_pool_forward_naive(x, pool_param):
    """Forward pass of a max-pooling layer.

    x: input of shape (N, C, H, W).
    pool_param: dict with 'pool_height', 'pool_width' and 'stride'.
    Returns (out, cache): out of shape (N, C, Ho, Wo) and cache = (x, pool_param).
    Leaves its arguments unmodified: x and pool_param are read-only.
    """
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    # BEGIN SOLUTION
    Ho = 1 + (H - ph) // stride
    Wo = 1 + (W - pw) // stride
    out = np.zeros((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            out[:, :, i, j] = window.max(axis=(2, 3))
    # END SOLUTION
    cache = (x, pool_param)
    return out, cache
'''

POOL_BACKWARD_MD = r"""
## Max pooling: backward

The maximum of a window depends only on its largest entry: nudging any other entry does not
change it. So the gradient `dout[n, c, i, j]` goes entirely to the position of the maximum in
window `(i, j)`, and every other position of that window gets nothing from it.

When windows overlap, one input pixel can be the maximum of several windows, and then it
receives the sum of their gradients: **accumulate** with `+=`, do not overwrite. (With the
usual 2x2 windows and stride 2 each pixel belongs to one window and both give the same
result, so test the overlapping case too.)

Ties, where two entries of a window are both the maximum, do not occur with real-valued data
and are not graded: either send the gradient to one of them or to all of them.
"""

POOL_BACKWARD = '''
def max_pool_backward_naive(dout, cache):
    """Backward pass of a max-pooling layer.

    dout: upstream gradient of shape (N, C, Ho, Wo).
    cache: (x, pool_param) as returned by max_pool_forward_naive.
    Returns dx, the gradient with respect to x, of shape (N, C, H, W).
    Leaves its arguments unmodified: dout and the cache (with x in it) are read-only.
    """
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    # BEGIN SOLUTION
    _, _, Ho, Wo = dout.shape
    dx = np.zeros_like(x)
    for i in range(Ho):
        for j in range(Wo):
            rows = slice(i * stride, i * stride + ph)
            cols = slice(j * stride, j * stride + pw)
            window = x[:, :, rows, cols]
            # True at each (n, c)'s maximum: the only entry the output depends on.
            mask = window == window.max(axis=(2, 3), keepdims=True)
            dx[:, :, rows, cols] += mask * dout[:, :, i, j][:, :, None, None]
    # END SOLUTION
    return dx
'''

# ---- convolution, fast -------------------------------------------------------------------

CONV_FAST_FORWARD_MD = r"""
## A fast convolution: forward

The naive convolution runs a Python loop iteration for every example, filter and output
position: far too slow to train with. The fast version computes the same thing with no
Python loop over the batch or the image (`N`, `H` or `W`); it must be at least ten times
faster than the naive one on a batch of images, and give the same values (to rounding).

The standard trick is **im2col**: gather every window of the padded input into one row of a
matrix, of shape `(N * Ho * Wo, C * HH * WW)`; then the whole convolution is one matrix
product with the filters reshaped to `(C * HH * WW, F)`, plus the bias. numpy can give you all
the windows without copying anything:

```python
windows = sliding_window_view(xp, (HH, WW), axis=(2, 3))  # (N, C, H', W', HH, WW)
```

where `windows[n, c, p, q]` is the `HH x WW` patch of `xp[n, c]` whose top-left corner is
`(p, q)`, for every `p` and `q`, that is for stride 1. Slicing its axes 2 and 3 with step
`stride` keeps the windows a strided convolution uses. From there, reshape and transpose
carefully (the order of `(c, a, b)` in a row must match the order in the reshaped filters),
or let `np.tensordot` / `np.einsum` do the contraction over `(c, a, b)` for you. Return the
output as an array of shape `(N, F, Ho, Wo)`.

Keep the cache in the same format as the naive version, `(x, w, b, conv_param)`.
"""

CONV_FAST_FORWARD = '''
def conv_forward_fast(x, w, b, conv_param):
    """Forward pass of a convolutional layer, vectorised: same contract as conv_forward_naive.

    Returns (out, cache): out of shape (N, F, Ho, Wo) and cache = (x, w, b, conv_param).
    Leaves its arguments unmodified: x, w, b and conv_param are read-only.
    """
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    # BEGIN SOLUTION
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    # windows[n, c, i, j, a, b] = xp[n, c, i * stride + a, j * stride + b], a view without copies
    windows = sliding_window_view(xp, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]
    # Contracting over (c, a, b) copies the windows into an im2col matrix and does one matrix
    # product; the result is indexed (n, i, j, f).
    out = np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    out = out + b[None, :, None, None]
    # END SOLUTION
    cache = (x, w, b, conv_param)
    return out, cache
'''

CONV_FAST_BACKWARD_MD = r"""
## A fast convolution: backward

The gradients again without loops over `N`, `H` or `W`:

- `db`: a sum of `dout` over the batch and the positions.
- `dw[f, c, a, b]` is the sum over `n, i, j` of `dout[n, f, i, j] * windows[n, c, i, j, a, b]`,
  with the same `windows` as in the forward pass: one contraction.
- `dx` is the tricky one, because the windows overlap: in im2col terms you would compute the
  gradient of every row of the im2col matrix and then add each row back onto the pixels it
  was copied from (col2im), with `np.add.at` or a loop. A loop over the `HH x WW` **kernel
  offsets** `(di, dj)` is allowed and usually simplest: the filter entry `w[:, :, di, dj]`
  touched the input pixels `xp[:, :, di + i * stride, dj + j * stride]` for all output
  positions `(i, j)`, a strided grid of rows `di, di + stride, ...` (`Ho` of them) and
  likewise of columns. Each offset sends `dout`, mixed across filters by `w[:, :, di, dj]`,
  back onto its grid; grids of different offsets overlap, so accumulate.

As in the naive version, accumulate into the gradient of the padded input and crop at the end.
"""

CONV_FAST_BACKWARD = '''
def conv_backward_fast(dout, cache):
    """Backward pass of a convolutional layer, vectorised: same contract as conv_backward_naive.

    Returns (dx, dw, db) with the shapes of x, w and b.
    Leaves its arguments unmodified: dout and the cache (with the arrays in it) are read-only.
    """
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    # BEGIN SOLUTION
    _, _, Ho, Wo = dout.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(xp, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]
    db = dout.sum(axis=(0, 2, 3))
    # dw[f, c, a, b] = sum over n, i, j of dout[n, f, i, j] * windows[n, c, i, j, a, b]
    dw = np.tensordot(dout, windows, axes=([0, 2, 3], [0, 2, 3]))
    dxp = np.zeros_like(xp)
    for di in range(HH):
        for dj in range(WW):
            # Filter entry (di, dj) read the pixels (di + i * stride, dj + j * stride).
            rows = slice(di, di + stride * Ho, stride)
            cols = slice(dj, dj + stride * Wo, stride)
            back = np.tensordot(dout, w[:, :, di, dj], axes=([1], [0]))  # (N, Ho, Wo, C)
            dxp[:, :, rows, cols] += back.transpose(0, 3, 1, 2)
    dx = dxp[:, :, pad:pad + H, pad:pad + W]
    # END SOLUTION
    return dx, dw, db
'''

TIMING_MD = r"""
### How much faster?

Compare the two versions on a batch of 32 three-channel 32x32 images. The grader runs a
similar comparison and expects the fast version, forward and backward, to be at least ten
times faster than a loop-per-output naive version; a good vectorised one is a hundred times
faster.
"""

TIMING = '''
import time

rng = np.random.default_rng(0)
x = rng.standard_normal((32, 3, 32, 32))
w = rng.standard_normal((8, 3, 5, 5))
b = rng.standard_normal(8)
conv_param = {"stride": 1, "pad": 2}

start = time.perf_counter()
out_naive, cache_naive = conv_forward_naive(x, w, b, conv_param)
naive_seconds = time.perf_counter() - start
start = time.perf_counter()
out_fast, cache_fast = conv_forward_fast(x, w, b, conv_param)
fast_seconds = time.perf_counter() - start
print(f"forward:  naive {naive_seconds:.3f} s, fast {fast_seconds:.4f} s, "
      f"{naive_seconds / fast_seconds:.0f}x faster; "
      f"largest difference {np.abs(out_naive - out_fast).max():.1e}")

dout = rng.standard_normal(out_naive.shape)
start = time.perf_counter()
grads_naive = conv_backward_naive(dout, cache_naive)
naive_seconds = time.perf_counter() - start
start = time.perf_counter()
grads_fast = conv_backward_fast(dout, cache_fast)
fast_seconds = time.perf_counter() - start
difference = max(np.abs(g1 - g2).max() for g1, g2 in zip(grads_naive, grads_fast, strict=True))
print(f"backward: naive {naive_seconds:.3f} s, fast {fast_seconds:.4f} s, "
      f"{naive_seconds / fast_seconds:.0f}x faster; largest difference {difference:.1e}")
'''

# ---- the network -------------------------------------------------------------------------

FAST_POOL_MD = r"""
## A fast 2x2 max pool (given)

The ConvNet pools with 2x2 windows and stride 2. Such windows tile the image exactly, so a
reshape puts each window on two axes of its own and a single `max` does the whole layer. These
two functions do that for you; they only accept windows that tile the input
(`pool_height == pool_width == stride`, dividing `H` and `W`). You may use them or your own
`max_pool_forward_naive` / `max_pool_backward_naive` in the ConvNet: the results are the same
and the loops of the naive pool over the 4x4 output positions are cheap.
"""

FAST_POOL = '''
def max_pool_forward_fast(x, pool_param):
    """Max pooling for windows that tile the input: same contract as max_pool_forward_naive."""
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    if not (ph == pw == stride and H % ph == 0 and W % pw == 0):
        raise ValueError("max_pool_forward_fast only handles windows that tile the input "
                         "(pool_height == pool_width == stride, dividing H and W); use "
                         "max_pool_forward_naive")
    # Window (i, j) is blocks[:, :, i, :, j, :].
    blocks = x.reshape(N, C, H // ph, ph, W // pw, pw)
    return blocks.max(axis=(3, 5)), (x, pool_param)


def max_pool_backward_fast(dout, cache):
    """Backward pass of max_pool_forward_fast: each gradient goes to its window's maximum."""
    x, pool_param = cache
    ph, pw = pool_param["pool_height"], pool_param["pool_width"]
    N, C, H, W = x.shape
    Ho, Wo = H // ph, W // pw
    # Each window's entries on one last axis, so that argmax picks exactly one of them.
    flat = x.reshape(N, C, Ho, ph, Wo, pw).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Ho, Wo, -1)
    dflat = np.zeros_like(flat)
    np.put_along_axis(dflat, flat.argmax(axis=4)[..., None], dout[..., None], axis=4)
    return dflat.reshape(N, C, Ho, Wo, ph, pw).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H, W)
'''

NET_MD = r"""
## A convolutional network

`ConvNet` classifies 8x8 single-channel images, input shape `(N, 1, 8, 8)`:

```
conv - relu - 2x2 max pool - affine - relu - affine - softmax
```

- The convolution has `num_filters` filters of size `filter_size x filter_size`, stride 1 and
  "same" padding, `pad = (filter_size - 1) // 2`, so that its output keeps the 8x8 size
  (`filter_size` is odd). Use your `conv_forward_fast` / `conv_backward_fast`.
- The max pool has 2x2 windows with stride 2: the output is `(N, num_filters, 4, 4)`.
- The first affine layer flattens that to `num_filters * 4 * 4` features and maps them to
  `hidden_dim`; the second maps `hidden_dim` to `num_classes` scores.

**Parameters.** `self.params` has keys `W1, b1` (the filters, shape
`(num_filters, 1, filter_size, filter_size)`, and their biases), `W2, b2` (first affine
layer) and `W3, b3` (second affine layer). Draw the weights from
`rng.normal(0.0, weight_scale, shape)`, in the order W1, W2, W3, with
`rng = np.random.default_rng(seed)`; the biases start at zero.

**Loss.** As in homework 1: `loss(X)` returns the scores, `loss(X, y)` returns
`(loss, grads)` with `grads` keyed like `self.params`, and the loss includes
`0.5 * reg * sum(W**2)` for each of the three weight arrays (not the biases). Read the
parameters from `self.params` on every call.
"""

NET = '''
class ConvNet:
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax, for (N, 1, 8, 8) inputs.

    num_filters, filter_size: number and (odd) size of the convolution filters.
    hidden_dim: size of the hidden affine layer; num_classes: number of scores.
    weight_scale: standard deviation of the initial weights; biases start at zero.
    reg: strength of the L2 penalty 0.5 * reg * sum of squared weights.
    seed: seed of np.random.default_rng used for the initial weights.
    """

    def __init__(self, num_filters=8, filter_size=3, hidden_dim=64, num_classes=10,
                 weight_scale=1e-2, reg=0.0, seed=None):
        self.filter_size = filter_size
        self.reg = reg
        self.params = {}
        rng = np.random.default_rng(seed)
        # W1, b1, W2, b2, W3, b3: weights ~ N(0, weight_scale^2) drawn in that order, biases 0.
        # BEGIN SOLUTION
        F, fs = num_filters, filter_size
        pooled_dim = F * 4 * 4  # "same" padding keeps 8x8; the 2x2 pool halves it to 4x4
        self.params["W1"] = rng.normal(0.0, weight_scale, (F, 1, fs, fs))
        self.params["b1"] = np.zeros(F)
        self.params["W2"] = rng.normal(0.0, weight_scale, (pooled_dim, hidden_dim))
        self.params["b2"] = np.zeros(hidden_dim)
        self.params["W3"] = rng.normal(0.0, weight_scale, (hidden_dim, num_classes))
        self.params["b3"] = np.zeros(num_classes)
        # END SOLUTION

    def loss(self, X, y=None):
        """Scores (N, num_classes) if y is None, else (loss, grads) with grads keyed like params.

        Leaves its arguments unmodified: X and y are read-only.
        """
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        W3, b3 = self.params["W3"], self.params["b3"]
        # Forward pass to the scores, keeping every layer's cache.
        # BEGIN SOLUTION
        conv_param = {"stride": 1, "pad": (self.filter_size - 1) // 2}
        pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        h, conv_cache = conv_forward_fast(X, W1, b1, conv_param)
        h, relu1_cache = relu_forward(h)
        h, pool_cache = max_pool_forward_fast(h, pool_param)
        h, affine2_cache = affine_forward(h, W2, b2)
        h, relu2_cache = relu_forward(h)
        scores, affine3_cache = affine_forward(h, W3, b3)
        # END SOLUTION
        if y is None:
            return scores

        # Loss and gradients: softmax_loss, the layers in reverse order, then the L2 term.
        # BEGIN SOLUTION
        loss, dscores = softmax_loss(scores, y)
        grads = {}
        dh, grads["W3"], grads["b3"] = affine_backward(dscores, affine3_cache)
        dh = relu_backward(dh, relu2_cache)
        dh, grads["W2"], grads["b2"] = affine_backward(dh, affine2_cache)
        dh = max_pool_backward_fast(dh, pool_cache)
        dh = relu_backward(dh, relu1_cache)
        _, grads["W1"], grads["b1"] = conv_backward_fast(dh, conv_cache)
        for key in ("W1", "W2", "W3"):
            weights = self.params[key]
            loss += 0.5 * self.reg * np.sum(weights * weights)
            grads[key] += self.reg * weights
        # END SOLUTION
        return loss, grads
'''

TRAIN_MD = r"""
## Training on digits

A ConvNet with 16 filters of size 3 and 64 hidden units, trained with Adam on the 8x8 digits
(pixel values scaled to [0, 1], reshaped to `(N, 1, 8, 8)`), minibatches of 64 in a fresh
random order each epoch. Homework 1's optimizers are not part of this homework, so a short Adam
step is written out below. The grader trains in the same way and expects at least 94% test
accuracy; a correct implementation gets about 97% in a few seconds.
"""

TRAIN = '''
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

digits = load_digits()
X_train, X_test, y_train, y_test = train_test_split(
    digits.data / 16.0, digits.target, test_size=0.2, random_state=0, stratify=digits.target)
X_train, X_test = X_train.reshape(-1, 1, 8, 8), X_test.reshape(-1, 1, 8, 8)

net = ConvNet(num_filters=16, filter_size=3, hidden_dim=64, weight_scale=0.2, reg=1e-4, seed=0)
learning_rate, beta1, beta2 = 5e-3, 0.9, 0.999
m = {key: np.zeros_like(p) for key, p in net.params.items()}
v = {key: np.zeros_like(p) for key, p in net.params.items()}
step = 0
rng = np.random.default_rng(0)
for epoch in range(10):
    order = rng.permutation(len(X_train))
    for start in range(0, len(order), 64):
        batch = order[start:start + 64]
        loss, grads = net.loss(X_train[batch], y_train[batch])
        step += 1
        for key in net.params:
            m[key] = beta1 * m[key] + (1 - beta1) * grads[key]
            v[key] = beta2 * v[key] + (1 - beta2) * grads[key] ** 2
            m_hat, v_hat = m[key] / (1 - beta1 ** step), v[key] / (1 - beta2 ** step)
            net.params[key] = net.params[key] - learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)
    train_acc = np.mean(net.loss(X_train).argmax(axis=1) == y_train)
    print(f"epoch {epoch + 1}: last batch loss {loss:.3f}, train accuracy {train_acc:.3f}")

test_acc = np.mean(net.loss(X_test).argmax(axis=1) == y_test)
print(f"test accuracy: {test_acc:.3f}")
'''

ALL_CHECKS_MD = r"""
## All public checks

Run every public check once more before you submit.
"""

ALL_CHECKS = '''
for name in ["conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive",
             "max_pool_backward_naive", "conv_forward_fast", "conv_backward_fast", "ConvNet"]:
    check(name)
'''


def build() -> nbformat.NotebookNode:
    cells = [md(INTRO), code(IMPORTS), md(GIVEN_MD), code(GIVEN)]
    sections = [
        ("conv_forward_naive", CONV_FORWARD_MD, CONV_FORWARD),
        ("conv_backward_naive", CONV_BACKWARD_MD, CONV_BACKWARD),
        ("max_pool_forward_naive", POOL_FORWARD_MD, POOL_FORWARD),
        ("max_pool_backward_naive", POOL_BACKWARD_MD, POOL_BACKWARD),
        ("conv_forward_fast", CONV_FAST_FORWARD_MD, CONV_FAST_FORWARD),
        ("conv_backward_fast", CONV_FAST_BACKWARD_MD, CONV_FAST_BACKWARD),
    ]
    for name, text, source in sections:
        cells += [md(text), code(source), code(f'check("{name}")')]
    cells += [md(TIMING_MD), code(TIMING), md(FAST_POOL_MD), code(FAST_POOL),
              md(NET_MD), code(NET), code('check("ConvNet")'),
              md(TRAIN_MD), code(TRAIN), md(ALL_CHECKS_MD), code(ALL_CHECKS)]
    return assemble_notebook(cells, "hw2")


def main() -> None:
    write_master(build(), OUT)


if __name__ == "__main__":
    main()
