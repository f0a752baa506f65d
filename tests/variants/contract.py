"""In-process checks of the contract's rules that hold for every call, on a variant's loaded
definitions: batches of one (N = 1), read-only arguments (every array passed in is made
non-writeable, so an in-place change raises), float64 results and the stated extremes, each
against the reference solution on the same inputs.

The hidden tests check these rules on the inputs they pick; these checks make sure that no
variant is correct only on those inputs. They run in milliseconds, in the test process.
"""
from __future__ import annotations

import numpy as np

from autograder.checks import assert_close


def frozen(*values):
    """Read-only copies of the arrays among ``values`` (an in-place change of one raises
    ValueError); other values as they are. One value alone, or a list of them."""
    out = []
    for value in values:
        if isinstance(value, np.ndarray):
            value = value.copy()
            value.setflags(write=False)
        out.append(value)
    return out if len(out) > 1 else out[0]


def freeze_tree(value):
    """Make every array inside a cache (tuples, lists, dicts) read-only."""
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    elif isinstance(value, (tuple, list)):
        for v in value:
            freeze_tree(v)
    elif isinstance(value, dict):
        for v in value.values():
            freeze_tree(v)
    return value


def close_all(got, want, what):
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_close(g, w, f"{what}[{i}]")


def _forward_backward(student, reference, forward, backward, args, dout_shape, rng, what):
    args = [frozen(a) for a in args]
    out, cache = getattr(student, forward)(*args)
    ref_out, ref_cache = getattr(reference, forward)(*args)
    assert_close(out, ref_out, f"{what} {forward} out")
    dout = frozen(rng.standard_normal(dout_shape))
    grads = getattr(student, backward)(dout, freeze_tree(cache))
    ref_grads = getattr(reference, backward)(dout, ref_cache)
    if isinstance(ref_grads, tuple):
        close_all(grads, ref_grads, f"{what} {backward}")
    else:
        assert_close(grads, ref_grads, f"{what} {backward}")


# ---- hw1_backprop ------------------------------------------------------------------------------

def check_hw1_backprop(student, reference):
    rng = np.random.default_rng(12)
    for N in (1, 3):
        x, w, b = (rng.standard_normal((N, 3, 2)), rng.standard_normal((6, 4)),
                   rng.standard_normal(4))
        _forward_backward(student, reference, "affine_forward", "affine_backward", (x, w, b),
                          (N, 4), rng, f"N={N}")
        x = rng.standard_normal((N, 5))
        x[np.abs(x) < 1e-3] = 0.5  # no kink: the subgradient at 0 is the student's choice
        _forward_backward(student, reference, "relu_forward", "relu_backward", (x,), (N, 5),
                          rng, f"N={N}")
        for scale in (1.0, 1000.0):
            x, y = frozen(scale * rng.standard_normal((N, 6)), rng.integers(0, 6, N))
            close_all(student.softmax_loss(x, y), reference.softmax_loss(x, y),
                      f"softmax_loss N={N} scale={scale}")
    net_args = dict(hidden_dims=[5, 4, 3], input_dim=6, num_classes=4, weight_scale=0.5, reg=0.2)
    a, b = student.FullyConnectedNet(**net_args, seed=5), student.FullyConnectedNet(**net_args,
                                                                                     seed=5)
    for key in a.params:
        assert np.array_equal(a.params[key], b.params[key]), f"seeded init differs in {key}"
    ref = reference.FullyConnectedNet(**net_args, seed=0)
    params = {k: frozen(rng.standard_normal(v.shape)) for k, v in ref.params.items()}
    a.params, ref.params = params, params
    for N in (1, 3):
        X, y = frozen(rng.standard_normal((N, 2, 3)), rng.integers(0, 4, N))
        assert_close(a.loss(X), ref.loss(X), f"FullyConnectedNet scores N={N}")
        loss, grads = a.loss(X, y)
        ref_loss, ref_grads = ref.loss(X, y)
        assert_close(loss, ref_loss, f"FullyConnectedNet loss N={N}")
        for key in ref_grads:
            assert_close(grads[key], ref_grads[key], f"FullyConnectedNet grads[{key}] N={N}")
    for rule in ("sgd", "sgd_momentum", "rmsprop", "adam"):
        w = rng.standard_normal((3, 2))
        configs = [None, None]
        for step in range(3):
            dw = frozen(rng.standard_normal((3, 2)))
            w_got, configs[0] = getattr(student, rule)(w.copy(), dw, configs[0])
            w_want, configs[1] = getattr(reference, rule)(w.copy(), dw, configs[1])
            assert_close(w_got, w_want, f"{rule} step {step + 1}")
            w = w_want


# ---- hw2_conv -----------------------------------------------------------------------------------

def _conv_out(x_shape, w_shape, stride, pad):
    (N, _, H, W), (F, _, HH, WW) = x_shape, w_shape
    return N, F, 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride


def check_hw2_conv(student, reference):
    rng = np.random.default_rng(22)
    cases = [((1, 2, 7, 6), (3, 2, 3, 2), 2, 1), ((2, 1, 5, 8), (2, 1, 2, 3), 3, 0),
             ((1, 3, 4, 4), (1, 3, 4, 4), 1, 0)]
    for x_shape, w_shape, stride, pad in cases:
        x, w, b = (rng.standard_normal(x_shape), rng.standard_normal(w_shape),
                   rng.standard_normal(w_shape[0]))
        conv_param = {"stride": stride, "pad": pad}
        for impl in ("naive", "fast"):
            fwd, bwd = f"conv_forward_{impl}", f"conv_backward_{impl}"
            xs, ws, bs = frozen(x, w, b)
            out, cache = getattr(student, fwd)(xs, ws, bs, conv_param)
            ref_out, ref_cache = reference.conv_forward_naive(xs, ws, bs, conv_param)
            assert_close(out, ref_out, f"{fwd} {x_shape} stride {stride} pad {pad}")
            dout = frozen(rng.standard_normal(_conv_out(x_shape, w_shape, stride, pad)))
            close_all(getattr(student, bwd)(dout, freeze_tree(cache)),
                      reference.conv_backward_naive(dout, ref_cache),
                      f"{bwd} {x_shape} stride {stride} pad {pad}")
    for x_shape, pool in [((1, 2, 5, 6), (2, 3, 1)), ((1, 1, 4, 4), (2, 2, 2))]:
        x = frozen(rng.permutation(np.prod(x_shape)).reshape(x_shape) / 7.0)  # no ties
        pool_param = dict(zip(("pool_height", "pool_width", "stride"), pool, strict=True))
        N, C, H, W = x_shape
        out_shape = (N, C, 1 + (H - pool[0]) // pool[2], 1 + (W - pool[1]) // pool[2])
        _forward_backward(student, reference, "max_pool_forward_naive", "max_pool_backward_naive",
                          (x, pool_param), out_shape, rng, f"pool {pool}")
    net_args = dict(num_filters=2, filter_size=5, hidden_dim=3, num_classes=4, weight_scale=0.3,
                    reg=0.1)
    a, b = student.ConvNet(**net_args, seed=5), student.ConvNet(**net_args, seed=5)
    for key in a.params:
        assert np.array_equal(a.params[key], b.params[key]), f"seeded init differs in {key}"
    ref = reference.ConvNet(**net_args, seed=0)
    params = {k: frozen(rng.standard_normal(v.shape)) for k, v in ref.params.items()}
    a.params, ref.params = params, params
    X, y = frozen(rng.standard_normal((1, 1, 8, 8)), np.array([2]))
    assert_close(a.loss(X), ref.loss(X), "ConvNet scores N=1")
    loss, grads = a.loss(X, y)
    ref_loss, ref_grads = ref.loss(X, y)
    assert_close(loss, ref_loss, "ConvNet loss N=1")
    for key in ref_grads:
        assert_close(grads[key], ref_grads[key], f"ConvNet grads[{key}] N=1")


# ---- hw3_bptt -----------------------------------------------------------------------------------

def check_hw3_bptt(student, reference):
    rng = np.random.default_rng(32)
    D, H, V = 3, 4, 5
    for N in (1, 2):
        Wx, Wh, b = rng.standard_normal((D, H)), rng.standard_normal((H, H)), rng.standard_normal(H)
        _forward_backward(student, reference, "rnn_step_forward", "rnn_step_backward",
                          (rng.standard_normal((N, D)), rng.standard_normal((N, H)), Wx, Wh, b),
                          (N, H), rng, f"N={N}")
        for T in (1, 6):
            _forward_backward(student, reference, "rnn_forward", "rnn_backward",
                              (rng.standard_normal((N, T, D)), rng.standard_normal((N, H)),
                               Wx, Wh, b), (N, T, H), rng, f"N={N} T={T}")
        x = rng.integers(0, V, size=(N, 4))
        x[0, :2] = 1  # a repeated word
        _forward_backward(student, reference, "word_embedding_forward", "word_embedding_backward",
                          (x, rng.standard_normal((V, D))), (N, 4, D), rng, f"N={N}")
        _forward_backward(student, reference, "temporal_affine_forward",
                          "temporal_affine_backward",
                          (rng.standard_normal((N, 3, D)), rng.standard_normal((D, V)),
                           rng.standard_normal(V)), (N, 3, V), rng, f"N={N}")
        y = rng.integers(0, V, size=(N, 3))
        masks = [rng.integers(0, 2, size=(N, 3)), np.zeros((N, 3), dtype=bool),
                 np.ones((N, 3), dtype=bool)]
        for scale in (1.0, 1000.0):
            for mask in masks:
                args = frozen(scale * rng.standard_normal((N, 3, V)), y, mask)
                close_all(student.temporal_softmax_loss(*args),
                          reference.temporal_softmax_loss(*args),
                          f"temporal_softmax_loss N={N} scale={scale} mask={mask.tolist()}")
    for scale in (0.01, 10.0):
        grads = {k: frozen(scale * rng.standard_normal(s)) for k, s in
                 (("Wx", (D, H)), ("Wh", (H, H)), ("b", (H,)))}
        got, want = student.clip_grad_norm(grads, 1.0), reference.clip_grad_norm(grads, 1.0)
        assert sorted(got) == sorted(want), "clip_grad_norm keys"
        for key in want:
            assert_close(got[key], want[key], f"clip_grad_norm[{key}] scale={scale}")
    a, b = (student.RNNLanguageModel(6, 3, 4, seed=5), student.RNNLanguageModel(6, 3, 4, seed=5))
    for key in a.params:
        assert np.array_equal(a.params[key], b.params[key]), f"seeded init differs in {key}"
    for null_idx in (0, 2):
        model = student.RNNLanguageModel(6, 3, 4, null_idx=null_idx, seed=0)
        ref = reference.RNNLanguageModel(6, 3, 4, null_idx=null_idx, seed=0)
        params = {k: frozen(rng.standard_normal(v.shape)) for k, v in ref.params.items()}
        model.params, ref.params = params, params
        seqs = frozen(np.array([[1, 4, 3, 5, null_idx, null_idx]]))
        loss, grads = model.loss(seqs)
        ref_loss, ref_grads = ref.loss(seqs)
        assert_close(loss, ref_loss, f"RNNLanguageModel loss N=1 null_idx={null_idx}")
        for key in ref_grads:
            assert_close(grads[key], ref_grads[key], f"RNNLanguageModel grads[{key}] N=1")


CHECKS = {"hw1_backprop": check_hw1_backprop, "hw2_conv": check_hw2_conv,
          "hw3_bptt": check_hw3_bptt}
