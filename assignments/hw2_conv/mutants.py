"""Known mistakes for hw2_conv, as text edits of solutions/hw2_conv.ipynb.

Each non-equivalent mutant must lose points under the hidden tests; ``old`` is exact text of
the master's code cells (the notebook is the source: an edit of it must keep each ``old``
text, or that mutant no longer applies). Where the naive and the fast version share a line,
``occurrence`` picks one: 1 is the naive version, which comes first in the notebook.
"""
from autograder.mutants import Mutant

MUTANTS = [
    # ---- conv_forward_naive -------------------------------------------------------------------
    Mutant(
        name="conv_output_size_off_by_one",
        function="conv_forward_naive",
        public_check_catches=True,
        diagnosis="the output has one row too few: Ho = 1 + (H + 2 * pad - HH) // stride "
                  "(the first window counts too)",
        old="Ho = 1 + (H + 2 * pad - HH) // stride",
        new="Ho = (H + 2 * pad - HH) // stride",
    ),
    Mutant(
        name="conv_window_height_width_swapped",
        function="conv_forward_naive",
        public_check_catches=True,
        diagnosis="the window under the filter spans WW rows and HH columns; with a non-square "
                  "kernel it must span HH rows (height) and WW columns (width)",
        old="window = xp[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]",
        new="window = xp[n, :, i * stride:i * stride + WW, j * stride:j * stride + HH]",
    ),
    Mutant(
        name="conv_kernel_flipped",
        function="conv_forward_naive",
        public_check_catches=True,
        diagnosis="the output looks like a true convolution with the kernel flipped; the layer "
                  "computes a cross-correlation: multiply each window by w[f] as it is",
        old="out[n, f, i, j] = np.sum(window * w[f]) + b[f]",
        new="out[n, f, i, j] = np.sum(window * w[f, :, ::-1, ::-1]) + b[f]",
    ),
    Mutant(
        name="conv_forward_no_bias",
        function="conv_forward_naive",
        public_check_catches=True,
        diagnosis="the output is missing the bias b[f] of each filter",
        old="out[n, f, i, j] = np.sum(window * w[f]) + b[f]",
        new="out[n, f, i, j] = np.sum(window * w[f])",
    ),
    Mutant(
        name="conv_padding_one_side",
        function="conv_forward_naive",
        public_check_catches=True,
        diagnosis="the input is padded only at the bottom and right; pad adds zeros on every "
                  "side: ((pad, pad), (pad, pad)) on the two spatial axes",
        old="xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))",
        new="xp = np.pad(x, ((0, 0), (0, 0), (0, 2 * pad), (0, 2 * pad)))",
    ),
    Mutant(
        name="conv_output_width_from_kernel_height",
        function="conv_forward_naive",
        public_check_catches=True,
        diagnosis="the output has the wrong number of columns, as if the kernel were square: "
                  "Wo = 1 + (W + 2 * pad - WW) // stride uses the kernel width WW, not HH",
        old="Wo = 1 + (W + 2 * pad - WW) // stride",
        new="Wo = 1 + (W + 2 * pad - HH) // stride",
        occurrence=1,
    ),
    Mutant(
        name="conv_output_width_from_height",
        function="conv_forward_naive",
        public_check_catches=True,
        diagnosis="Wo is computed from the input height H, as if images were square: "
                  "Wo = 1 + (W + 2 * pad - WW) // stride",
        old="Wo = 1 + (W + 2 * pad - WW) // stride",
        new="Wo = 1 + (H + 2 * pad - HH) // stride",
        occurrence=1,
    ),
    # ---- conv_backward_naive ------------------------------------------------------------------
    Mutant(
        name="conv_backward_ignores_stride",
        function="conv_backward_naive",
        public_check_catches=True,
        diagnosis="the backward pass uses windows one pixel apart whatever the stride; output "
                  "(i, j) read the window starting at (i * stride, j * stride)",
        old="                    rows = slice(i * stride, i * stride + HH)\n"
            "                    cols = slice(j * stride, j * stride + WW)\n",
        new="                    rows = slice(i, i + HH)\n"
            "                    cols = slice(j, j + WW)\n",
    ),
    Mutant(
        name="conv_dx_not_cropped",
        function="conv_backward_naive",
        public_check_catches=True,
        diagnosis="dx has the shape of the padded input; cut the padding off so that dx has "
                  "the shape of x",
        old="dx = dxp[:, :, pad:pad + H, pad:pad + W]",
        new="dx = dxp",
    ),
    Mutant(
        name="conv_dx_cropped_with_negative_index",
        function="conv_backward_naive",
        public_check_catches=True,
        diagnosis="dx is empty when pad is 0: dxp[:, :, pad:-pad] becomes dxp[:, :, 0:0]; crop "
                  "with pad:pad + H instead",
        old="dx = dxp[:, :, pad:pad + H, pad:pad + W]",
        new="dx = dxp[:, :, pad:-pad, pad:-pad]",
    ),
    Mutant(
        name="conv_dw_overwritten",
        function="conv_backward_naive",
        public_check_catches=True,
        diagnosis="dw keeps only the last window's contribution: it must add up the "
                  "contributions of every example and every output position (+=)",
        old="dw[f] += dout[n, f, i, j] * xp[n, :, rows, cols]",
        new="dw[f] = dout[n, f, i, j] * xp[n, :, rows, cols]",
    ),
    Mutant(
        name="conv_dx_kernel_flipped",
        function="conv_backward_naive",
        public_check_catches=True,
        diagnosis="dx is computed with the kernel flipped; when you send each output's gradient "
                  "back to the window it came from, multiply by w[f] as it is",
        old="dxp[n, :, rows, cols] += dout[n, f, i, j] * w[f]",
        new="dxp[n, :, rows, cols] += dout[n, f, i, j] * w[f, :, ::-1, ::-1]",
    ),
    Mutant(
        name="conv_db_not_summed_over_positions",
        function="conv_backward_naive",
        public_check_catches=True,
        diagnosis="db is summed over the batch only; the bias was added at every output "
                  "position too, so sum over axes (0, 2, 3)",
        old="db = dout.sum(axis=(0, 2, 3))",
        new="db = dout.sum(axis=0)",
    ),
    # ---- max pooling --------------------------------------------------------------------------
    Mutant(
        name="pool_output_size_ignores_window",
        function="max_pool_forward_naive",
        public_check_catches=True,
        diagnosis="the output has H // stride rows; with windows larger than the stride that "
                  "is too many: Ho = 1 + (H - pool_height) // stride",
        old="Ho = 1 + (H - ph) // stride",
        new="Ho = H // stride",
    ),
    Mutant(
        name="pool_window_height_width_swapped",
        function="max_pool_forward_naive",
        public_check_catches=True,
        diagnosis="the pooling windows are pool_width tall and pool_height wide: height goes "
                  "with rows, width with columns",
        old="window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]",
        new="window = x[:, :, i * stride:i * stride + pw, j * stride:j * stride + ph]",
    ),
    Mutant(
        name="pool_output_width_from_pool_height",
        function="max_pool_forward_naive",
        public_check_catches=True,
        diagnosis="the output has the wrong number of columns, as if the windows were square: "
                  "Wo = 1 + (W - pool_width) // stride",
        old="Wo = 1 + (W - pw) // stride",
        new="Wo = 1 + (W - ph) // stride",
    ),
    Mutant(
        name="pool_forward_max_over_whole_batch",
        function="max_pool_forward_naive",
        diagnosis="every image and channel gets the same pooled value: window.max() without an "
                  "axis takes the maximum over the whole batch; take it over the window only, "
                  "axis=(2, 3)",
        old="out[:, :, i, j] = window.max(axis=(2, 3))",
        new="out[:, :, i, j] = window.max()",
    ),
    Mutant(
        name="pool_backward_overwrites",
        function="max_pool_backward_naive",
        public_check_catches=True,
        diagnosis="where pooling windows overlap, dx keeps only the last window's gradient: "
                  "accumulate with += instead of assigning",
        old="dx[:, :, rows, cols] += mask * dout[:, :, i, j][:, :, None, None]",
        new="dx[:, :, rows, cols] = mask * dout[:, :, i, j][:, :, None, None]",
    ),
    Mutant(
        name="pool_backward_spreads_evenly",
        function="max_pool_backward_naive",
        public_check_catches=True,
        diagnosis="dx spreads each gradient evenly over its window, which is the gradient of "
                  "average pooling; for max pooling all of it goes to the window's maximum",
        old="dx[:, :, rows, cols] += mask * dout[:, :, i, j][:, :, None, None]",
        new="dx[:, :, rows, cols] += dout[:, :, i, j][:, :, None, None] / (ph * pw)",
    ),
    Mutant(
        name="pool_backward_ignores_dout",
        function="max_pool_backward_naive",
        public_check_catches=True,
        diagnosis="dx is 1 at each window's maximum: the upstream gradient dout must be "
                  "multiplied in",
        old="dx[:, :, rows, cols] += mask * dout[:, :, i, j][:, :, None, None]",
        new="dx[:, :, rows, cols] += mask",
    ),
    Mutant(
        name="pool_backward_ignores_stride",
        function="max_pool_backward_naive",
        diagnosis="the backward pass uses windows one pixel apart whatever the stride; window "
                  "(i, j) starts at (i * stride, j * stride)",
        old="            rows = slice(i * stride, i * stride + ph)\n"
            "            cols = slice(j * stride, j * stride + pw)\n",
        new="            rows = slice(i, i + ph)\n"
            "            cols = slice(j, j + pw)\n",
    ),
    Mutant(
        name="pool_backward_assigns_at_argmax",
        function="max_pool_backward_naive",
        public_check_catches=True,
        diagnosis="dx[..., argmax] = dout assigns the gradient at each window's maximum, so "
                  "where overlapping windows share a maximum only the last window's gradient "
                  "is kept; add it with += instead",
        old="            dx[:, :, rows, cols] += mask * dout[:, :, i, j][:, :, None, None]\n",
        new="            for n in range(N):\n"
            "                for c in range(C):\n"
            "                    a, b = np.unravel_index(np.argmax(window[n, c]), (ph, pw))\n"
            "                    dx[n, c, i * stride + a, j * stride + b] = dout[n, c, i, j]\n",
    ),
    Mutant(
        name="pool_backward_square_window",
        function="max_pool_backward_naive",
        public_check_catches=True,
        diagnosis="the backward pass looks at windows pool_height wide, as if they were "
                  "square: a window spans pool_width columns",
        old="            cols = slice(j * stride, j * stride + pw)\n",
        new="            cols = slice(j * stride, j * stride + ph)\n",
    ),
    Mutant(
        name="pool_backward_mask_from_batch_max",
        function="max_pool_backward_naive",
        public_check_catches=True,
        diagnosis="the gradient goes only to the largest value of the whole batch: compare "
                  "each window with its own maximum, window.max(axis=(2, 3), keepdims=True)",
        old="mask = window == window.max(axis=(2, 3), keepdims=True)",
        new="mask = window == window.max()",
    ),
    # ---- conv_forward_fast --------------------------------------------------------------------
    Mutant(
        name="fast_forward_ignores_stride",
        function="conv_forward_fast",
        public_check_catches=True,
        diagnosis="conv_forward_fast keeps the windows at every pixel: with a stride, keep "
                  "every stride-th window along height and width",
        old="windows = sliding_window_view(xp, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]",
        new="windows = sliding_window_view(xp, (HH, WW), axis=(2, 3))",
    ),
    Mutant(
        name="fast_forward_kernel_transposed",
        function="conv_forward_fast",
        public_check_catches=True,
        diagnosis="the window's rows are matched with the kernel's columns: the order of the "
                  "window entries must match the order of the kernel entries",
        old="axes=([1, 4, 5], [1, 2, 3])",
        new="axes=([1, 4, 5], [1, 3, 2])",
    ),
    Mutant(
        name="fast_forward_output_height_width_swapped",
        function="conv_forward_fast",
        public_check_catches=True,
        diagnosis="the output comes back as (N, F, Wo, Ho): height and width are swapped when "
                  "moving the filter axis into place",
        old=".transpose(0, 3, 1, 2)\n    out = out + b[None, :, None, None]",
        new=".transpose(0, 3, 2, 1)\n    out = out + b[None, :, None, None]",
    ),
    Mutant(
        name="fast_forward_not_padded",
        function="conv_forward_fast",
        public_check_catches=True,
        diagnosis="conv_forward_fast does not pad the input",
        old="xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))",
        new="xp = x",
        occurrence=3,
    ),
    # ---- conv_backward_fast -------------------------------------------------------------------
    Mutant(
        name="fast_backward_dx_overwritten",
        function="conv_backward_fast",
        public_check_catches=True,
        diagnosis="dx keeps only the last kernel offset's contribution where the strided grids "
                  "of different offsets overlap: accumulate with += instead of assigning",
        old="dxp[:, :, rows, cols] += back.transpose(0, 3, 1, 2)",
        new="dxp[:, :, rows, cols] = back.transpose(0, 3, 1, 2)",
    ),
    Mutant(
        name="fast_backward_ignores_stride",
        function="conv_backward_fast",
        public_check_catches=True,
        diagnosis="dx scatters the gradients onto a grid one pixel apart whatever the stride; "
                  "kernel offset (a, b) touched the pixels a + i * stride, b + j * stride",
        old="            rows = slice(di, di + stride * Ho, stride)\n"
            "            cols = slice(dj, dj + stride * Wo, stride)\n",
        new="            rows = slice(di, di + Ho)\n"
            "            cols = slice(dj, dj + Wo)\n",
    ),
    Mutant(
        name="fast_backward_dx_not_cropped",
        function="conv_backward_fast",
        public_check_catches=True,
        diagnosis="dx has the shape of the padded input; cut the padding off so that dx has "
                  "the shape of x",
        old="dx = dxp[:, :, pad:pad + H, pad:pad + W]",
        new="dx = dxp",
        occurrence=2,
    ),
    Mutant(
        name="fast_backward_dx_cropped_with_negative_index",
        function="conv_backward_fast",
        diagnosis="conv_backward_fast's dx is empty when pad is 0: dxp[:, :, pad:-pad] becomes "
                  "dxp[:, :, 0:0]; crop with pad:pad + H instead",
        old="dx = dxp[:, :, pad:pad + H, pad:pad + W]",
        new="dx = dxp[:, :, pad:-pad, pad:-pad]",
        occurrence=2,
    ),
    Mutant(
        name="fast_backward_dw_from_unpadded_input",
        function="conv_backward_fast",
        public_check_catches=True,
        diagnosis="dw is computed from windows of the unpadded input; the forward pass read "
                  "the padded one",
        old="windows = sliding_window_view(xp, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]",
        new="windows = sliding_window_view(x, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]",
        occurrence=2,
    ),
    Mutant(
        name="fast_backward_dx_kernel_flipped",
        function="conv_backward_fast",
        public_check_catches=True,
        diagnosis="dx is computed with the kernel flipped; kernel offset (a, b) sends the "
                  "gradient back through w[:, :, a, b] itself",
        old="w[:, :, di, dj]",
        new="w[:, :, HH - 1 - di, WW - 1 - dj]",
    ),
    # ---- ConvNet ------------------------------------------------------------------------------
    Mutant(
        name="convnet_no_padding",
        function="ConvNet",
        public_check_catches=True,
        diagnosis="the convolution has no padding, so its output shrinks below 8x8; 'same' "
                  "padding is (filter_size - 1) // 2",
        old='conv_param = {"stride": 1, "pad": (self.filter_size - 1) // 2}',
        new='conv_param = {"stride": 1, "pad": 0}',
    ),
    Mutant(
        name="convnet_padding_hardcoded",
        function="ConvNet",
        public_check_catches=True,
        diagnosis="the padding is 1 whatever the filter size; 'same' padding is "
                  "(filter_size - 1) // 2",
        old='conv_param = {"stride": 1, "pad": (self.filter_size - 1) // 2}',
        new='conv_param = {"stride": 1, "pad": 1}',
    ),
    Mutant(
        name="convnet_hidden_layer_sized_before_pooling",
        function="ConvNet",
        public_check_catches=True,
        diagnosis="W2 has num_filters * 8 * 8 rows, the size before pooling; after the 2x2 "
                  "pool the features are num_filters * 4 * 4",
        old="pooled_dim = F * 4 * 4",
        new="pooled_dim = F * 8 * 8",
    ),
    Mutant(
        name="convnet_conv_weights_not_regularised",
        function="ConvNet",
        diagnosis="the L2 penalty leaves out the convolution filters W1; all three weight "
                  "arrays are regularised",
        old='for key in ("W1", "W2", "W3"):',
        new='for key in ("W2", "W3"):',
    ),
    Mutant(
        name="convnet_reg_loss_missing_half",
        function="ConvNet",
        public_check_catches=True,
        diagnosis="the regularisation term in the loss is reg * sum(W**2), without the factor "
                  "0.5 that matches the gradient reg * W",
        old="loss += 0.5 * self.reg * np.sum(weights * weights)",
        new="loss += self.reg * np.sum(weights * weights)",
    ),
    Mutant(
        name="convnet_init_not_scaled",
        function="ConvNet",
        diagnosis="the initial filters have standard deviation 1 instead of weight_scale",
        old="rng.normal(0.0, weight_scale, (F, 1, fs, fs))",
        new="rng.normal(0.0, 1.0, (F, 1, fs, fs))",
    ),
    Mutant(
        name="convnet_skips_relu_backward",
        function="ConvNet",
        public_check_catches=True,
        diagnosis="the backward pass skips the ReLU after the convolution",
        old="        dh = max_pool_backward_fast(dh, pool_cache)\n"
            "        dh = relu_backward(dh, relu1_cache)\n",
        new="        dh = max_pool_backward_fast(dh, pool_cache)\n",
    ),
    Mutant(
        name="convnet_padding_half_filter",
        function="ConvNet",
        diagnosis="the padding is filter_size // 2",
        old='conv_param = {"stride": 1, "pad": (self.filter_size - 1) // 2}',
        new='conv_param = {"stride": 1, "pad": self.filter_size // 2}',
        # Not graded: filter_size is odd by the contract, and then filter_size // 2 equals
        # (filter_size - 1) // 2.
        equivalent=True,
    ),
]
