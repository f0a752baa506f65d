"""Known mistakes for hw1_backprop, as text edits of solutions/hw1_backprop.ipynb.

Each non-equivalent mutant must lose points under the hidden tests; ``old`` is exact text of
the master's code cells (the notebook is the source: an edit of it must keep each ``old``
text, or that mutant no longer applies).
"""
from autograder.mutants import Mutant

MUTANTS = [
    # ---- affine_forward -----------------------------------------------------------------------
    Mutant(
        name="affine_forward_no_bias",
        function="affine_forward",
        public_check_catches=True,
        diagnosis="the output looks like x @ w without the bias b added",
        old="out = x.reshape(x.shape[0], -1) @ w + b",
        new="out = x.reshape(x.shape[0], -1) @ w",
    ),
    # ---- affine_backward ----------------------------------------------------------------------
    Mutant(
        name="affine_dx_not_reshaped",
        function="affine_backward",
        public_check_catches=True,
        diagnosis="dx has the flattened shape (N, D) instead of the shape of the input x",
        old="dx = (dout @ w.T).reshape(x.shape)",
        new="dx = dout @ w.T",
    ),
    Mutant(
        name="affine_dx_transposed_product",
        function="affine_backward",
        public_check_catches=True,
        diagnosis="dx looks like w @ dout.T reshaped to x's shape: the right numbers in the "
                  "wrong places; compute dout @ w.T, then reshape",
        old="dx = (dout @ w.T).reshape(x.shape)",
        new="dx = (w @ dout.T).reshape(x.shape)",
    ),
    Mutant(
        name="affine_dw_unflattened_x",
        function="affine_backward",
        public_check_catches=True,
        diagnosis="dw is computed from x without flattening it to (N, D) first, so its shape "
                  "is wrong for inputs with more than two dimensions",
        old="dw = x2.T @ dout",
        new="dw = x.T @ dout",
    ),
    Mutant(
        name="affine_db_mean_not_sum",
        function="affine_backward",
        public_check_catches=True,
        diagnosis="db looks like it was averaged over the batch instead of summed",
        old="db = dout.sum(axis=0)",
        new="db = dout.mean(axis=0)",
    ),
    Mutant(
        name="affine_db_wrong_axis",
        function="affine_backward",
        public_check_catches=True,
        diagnosis="db has one entry per example: sum dout over the batch (axis 0), not over "
                  "the outputs (axis 1)",
        old="db = dout.sum(axis=0)",
        new="db = dout.sum(axis=1)",
    ),
    # ---- relu ---------------------------------------------------------------------------------
    Mutant(
        name="relu_backward_ge_zero",
        function="relu_backward",
        diagnosis="the gradient at exactly x = 0 is taken as 1 instead of 0",
        old="dx = dout * (x > 0)",
        new="dx = dout * (x >= 0)",
        equivalent=True,  # both are valid subgradients; they differ only where x == 0 exactly
    ),
    Mutant(
        name="relu_cache_out_not_x",
        function="relu_forward",
        diagnosis="the ReLU caches its output instead of its input",
        old="    cache = x\n    return out, cache",
        new="    cache = out\n    return out, cache",
        equivalent=True,  # out > 0 exactly where x > 0, so relu_backward gives the same dx
    ),
    Mutant(
        name="relu_backward_passes_dout",
        function="relu_backward",
        public_check_catches=True,
        diagnosis="relu_backward passes dout through unchanged: the gradient must be zero "
                  "where the input was negative",
        old="dx = dout * (x > 0)",
        new="dx = dout.copy()",
    ),
    Mutant(
        name="relu_backward_ignores_dout",
        function="relu_backward",
        public_check_catches=True,
        diagnosis="relu_backward returns the local derivative (x > 0) without multiplying it "
                  "by the upstream gradient dout",
        old="dx = dout * (x > 0)",
        new="dx = (x > 0).astype(dout.dtype)",
    ),
    Mutant(
        name="relu_backward_masks_by_dout",
        function="relu_backward",
        public_check_catches=True,
        diagnosis="the mask looks like it was taken from dout > 0 instead of from the cached "
                  "input x > 0",
        old="dx = dout * (x > 0)",
        new="dx = dout * (dout > 0)",
    ),
    Mutant(
        name="relu_backward_modifies_dout",
        function="relu_backward",
        diagnosis="relu_backward zeroes entries of dout itself (dx = dout; dx[x <= 0] = 0 "
                  "changes dout, since dx is the same array); start from a copy or compute "
                  "dout * (x > 0)",
        old="dx = dout * (x > 0)",
        new="dx = dout\n    dx[x <= 0] = 0",
    ),
    # ---- softmax_loss -------------------------------------------------------------------------
    Mutant(
        name="softmax_no_max_shift",
        function="softmax_loss",
        public_check_catches=True,
        diagnosis="softmax_loss overflows for large logits: subtract each row's maximum "
                  "before exponentiating",
        old="shifted = x - x.max(axis=1, keepdims=True)",
        new="shifted = x",
    ),
    Mutant(
        name="softmax_global_max_shift",
        function="softmax_loss",
        diagnosis="the logits are shifted by the maximum of the whole batch rather than of "
                  "each row, so a row of very negative logits underflows to log(0)",
        old="shifted = x - x.max(axis=1, keepdims=True)",
        new="shifted = x - x.max()",
    ),
    Mutant(
        name="softmax_normaliser_wrong_axis",
        function="softmax_loss",
        public_check_catches=True,
        diagnosis="the softmax normalises over the batch (axis 0) instead of over the classes "
                  "of each example (axis 1)",
        old="np.exp(shifted).sum(axis=1, keepdims=True)",
        new="np.exp(shifted).sum(axis=0, keepdims=True)",
    ),
    Mutant(
        name="softmax_loss_sum_not_mean",
        function="softmax_loss",
        public_check_catches=True,
        diagnosis="the loss looks summed over the batch instead of averaged",
        old="loss = -log_probs[np.arange(N), y].mean()",
        new="loss = -log_probs[np.arange(N), y].sum()",
    ),
    Mutant(
        name="softmax_loss_wrong_indexing",
        function="softmax_loss",
        public_check_catches=True,
        diagnosis="log_probs[:, y] picks an N x N block instead of one entry per example; "
                  "use log_probs[np.arange(N), y]",
        old="loss = -log_probs[np.arange(N), y].mean()",
        new="loss = -log_probs[:, y].mean()",
    ),
    Mutant(
        name="softmax_dx_not_divided_by_n",
        function="softmax_loss",
        public_check_catches=True,
        diagnosis="dx is N times too large: the loss is a mean over the batch, so its "
                  "gradient is divided by N",
        old="    dx /= N\n",
        new="",
    ),
    Mutant(
        name="softmax_dx_missing_minus_one",
        function="softmax_loss",
        public_check_catches=True,
        diagnosis="dx looks like the softmax probabilities without subtracting 1 at the true "
                  "class",
        old="    dx[np.arange(N), y] -= 1\n",
        new="",
    ),
    Mutant(
        name="softmax_log_of_underflowing_probability",
        function="softmax_loss",
        public_check_catches=True,
        diagnosis="the loss is infinite for large logits: np.log(probs) of a probability that "
                  "rounded to 0 is -inf; take the log-softmax directly, shifted - "
                  "log(sum(exp(shifted)))",
        old="loss = -log_probs[np.arange(N), y].mean()",
        new="probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)\n"
            "    loss = -np.log(probs[np.arange(N), y]).mean()",
    ),
    Mutant(
        name="softmax_shifts_x_in_place",
        function="softmax_loss",
        diagnosis="softmax_loss subtracts the row maxima from x in place (x -= ...), which "
                  "changes the caller's scores; write shifted = x - x.max(axis=1, "
                  "keepdims=True)",
        old="shifted = x - x.max(axis=1, keepdims=True)",
        new="x -= x.max(axis=1, keepdims=True)\n    shifted = x",
    ),
    Mutant(
        name="softmax_dx_wrong_indexing",
        function="softmax_loss",
        public_check_catches=True,
        diagnosis="dx[:, y] -= 1 subtracts 1 in every row at every label of the batch; "
                  "subtract it once per example, at its own label: dx[np.arange(N), y] -= 1",
        old="dx[np.arange(N), y] -= 1",
        new="dx[:, y] -= 1",
    ),
    # ---- FullyConnectedNet --------------------------------------------------------------------
    Mutant(
        name="net_init_not_scaled",
        function="FullyConnectedNet",
        diagnosis="the initial weights have standard deviation 1 instead of weight_scale",
        old="rng.normal(0.0, weight_scale, (dims[i - 1], dims[i]))",
        new="rng.normal(0.0, 1.0, (dims[i - 1], dims[i]))",
    ),
    Mutant(
        name="net_init_scale_as_variance",
        function="FullyConnectedNet",
        diagnosis="the initial weights have standard deviation weight_scale**2: weight_scale "
                  "is the standard deviation, not the variance",
        old="rng.normal(0.0, weight_scale, (dims[i - 1], dims[i]))",
        new="rng.normal(0.0, weight_scale ** 2, (dims[i - 1], dims[i]))",
    ),
    Mutant(
        name="net_biases_not_zero",
        function="FullyConnectedNet",
        diagnosis="the biases are initialised randomly; they should start at zero",
        old='self.params[f"b{i}"] = np.zeros(dims[i])',
        new='self.params[f"b{i}"] = rng.normal(0.0, weight_scale, dims[i])',
    ),
    Mutant(
        name="net_relu_on_scores",
        function="FullyConnectedNet",
        public_check_catches=True,
        diagnosis="a ReLU is applied to the class scores of the last layer; the last affine "
                  "layer feeds the softmax directly",
        old='scores, last_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])',
        new='scores, last_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])'
            '\n        scores, _ = relu_forward(scores)',
    ),
    Mutant(
        name="net_backward_skips_relu",
        function="FullyConnectedNet",
        public_check_catches=True,
        diagnosis="the backward pass goes through the affine layers but not through the ReLUs",
        old="            dh = relu_backward(dh, relu_cache)\n",
        new="",
    ),
    Mutant(
        name="net_backward_caches_forward_order",
        function="FullyConnectedNet",
        diagnosis="the backward pass uses the layer caches in forward order; walk them from "
                  "the last layer to the first",
        old="affine_cache, relu_cache = caches[i - 1]",
        new="affine_cache, relu_cache = caches[L - 1 - i]",
    ),
    Mutant(
        name="net_reg_gradient_missing",
        function="FullyConnectedNet",
        public_check_catches=True,
        diagnosis="the regularisation term is in the loss but not in the weight gradients "
                  "(add reg * W to each dW)",
        old='            grads[f"W{i}"] += self.reg * W\n',
        new="",
    ),
    Mutant(
        name="net_reg_loss_missing_half",
        function="FullyConnectedNet",
        public_check_catches=True,
        diagnosis="the regularisation term in the loss is reg * sum(W**2), without the factor "
                  "0.5 that matches the gradient reg * W",
        old="loss += 0.5 * self.reg * np.sum(W * W)",
        new="loss += self.reg * np.sum(W * W)",
    ),
    Mutant(
        name="net_reg_gradient_doubled",
        function="FullyConnectedNet",
        public_check_catches=True,
        diagnosis="the regularisation gradient is 2 * reg * W; with the 0.5 in the loss it is "
                  "reg * W",
        old='grads[f"W{i}"] += self.reg * W',
        new='grads[f"W{i}"] += 2 * self.reg * W',
    ),
    Mutant(
        name="net_reg_penalises_biases",
        function="FullyConnectedNet",
        diagnosis="the biases are regularised too; only the weight matrices should be",
        old='            grads[f"W{i}"] += self.reg * W\n',
        new='            grads[f"W{i}"] += self.reg * W\n'
            '            b = self.params[f"b{i}"]\n'
            '            loss += 0.5 * self.reg * np.sum(b * b)\n'
            '            grads[f"b{i}"] += self.reg * b\n',
    ),
    # ---- optimizers ---------------------------------------------------------------------------
    Mutant(
        name="sgd_ascends",
        function="sgd",
        public_check_catches=True,
        diagnosis="sgd steps along the gradient instead of against it",
        old='next_w = w - config["learning_rate"] * dw',
        new='next_w = w + config["learning_rate"] * dw',
    ),
    Mutant(
        name="sgd_in_place",
        function="sgd",
        diagnosis="sgd changes w in place and returns it as next_w",
        old='next_w = w - config["learning_rate"] * dw',
        new='w -= config["learning_rate"] * dw\n    next_w = w',
        equivalent=True,  # the contract allows an optimizer to update w in place if returned
    ),
    Mutant(
        name="sgd_modifies_dw",
        function="sgd",
        diagnosis="sgd scales dw in place (dw *= learning_rate): the gradient is read-only; "
                  "compute learning_rate * dw as a new array",
        old='next_w = w - config["learning_rate"] * dw',
        new='dw *= config["learning_rate"]\n    next_w = w - dw',
    ),
    Mutant(
        name="momentum_wrong_sign",
        function="sgd_momentum",
        public_check_catches=True,
        diagnosis="the velocity adds learning_rate * dw instead of subtracting it, so the "
                  "updates climb the loss",
        old='v = config["momentum"] * config["velocity"] - config["learning_rate"] * dw',
        new='v = config["momentum"] * config["velocity"] + config["learning_rate"] * dw',
    ),
    Mutant(
        name="momentum_velocity_not_stored",
        function="sgd_momentum",
        public_check_catches=True,
        diagnosis="the velocity is not stored back into config['velocity'], so each step "
                  "starts again from zero velocity",
        old='    config["velocity"] = v\n',
        new="",
    ),
    Mutant(
        name="momentum_step_before_velocity",
        function="sgd_momentum",
        public_check_catches=True,
        diagnosis="the step uses the previous velocity; update the velocity first, then "
                  "move w by the new one",
        old='next_w = w + v',
        new='next_w = w + config["velocity"]',
    ),
    Mutant(
        name="rmsprop_no_sqrt",
        function="rmsprop",
        diagnosis="rmsprop divides by the running mean of squared gradients itself instead of "
                  "by its square root",
        old='dw / (np.sqrt(cache) + config["epsilon"])',
        new='dw / (cache + config["epsilon"])',
    ),
    Mutant(
        name="rmsprop_decay_swapped",
        function="rmsprop",
        public_check_catches=True,
        diagnosis="decay_rate and 1 - decay_rate are swapped in the running average: the old "
                  "cache should keep the weight decay_rate",
        old="cache = decay * config[\"cache\"] + (1 - decay) * dw ** 2",
        new="cache = (1 - decay) * config[\"cache\"] + decay * dw ** 2",
    ),
    Mutant(
        name="rmsprop_cache_not_stored",
        function="rmsprop",
        diagnosis="the running average is not stored back into config['cache']",
        old='    config["cache"] = cache\n',
        new="",
    ),
    Mutant(
        name="rmsprop_eps_inside_sqrt",
        function="rmsprop",
        diagnosis="epsilon is added inside the square root instead of after it: "
                  "sqrt(cache + eps) differs noticeably from sqrt(cache) + eps for small gradients",
        old='dw / (np.sqrt(cache) + config["epsilon"])',
        new='dw / np.sqrt(cache + config["epsilon"])',
        # Relative change of the step ~ eps / (2 * sqrt(cache)): with decay_rate 0.9-0.99 the
        # first steps have sqrt(cache) ~ 0.1-0.3 |dw|, so entries with |dw| below ~1e-2 exceed
        # the 1e-7 tolerance. (The same edit in adam is not listed: there sqrt(v_hat) ~ |dw|
        # and only gradients below ~1e-4 would show it.)
    ),
    Mutant(
        name="adam_t_incremented_after_use",
        function="adam",
        public_check_catches=True,
        diagnosis="the step counter t is incremented after it is used, so the first step "
                  "divides by 1 - beta**0 = 0",
        old='    config["t"] += 1\n'
            '    config["m"] = beta1 * config["m"] + (1 - beta1) * dw\n'
            '    config["v"] = beta2 * config["v"] + (1 - beta2) * dw ** 2\n'
            '    m_hat = config["m"] / (1 - beta1 ** config["t"])\n'
            '    v_hat = config["v"] / (1 - beta2 ** config["t"])\n',
        new='    config["m"] = beta1 * config["m"] + (1 - beta1) * dw\n'
            '    config["v"] = beta2 * config["v"] + (1 - beta2) * dw ** 2\n'
            '    m_hat = config["m"] / (1 - beta1 ** config["t"])\n'
            '    v_hat = config["v"] / (1 - beta2 ** config["t"])\n'
            '    config["t"] += 1\n',
    ),
    Mutant(
        name="adam_t_not_stored",
        function="adam",
        public_check_catches=True,
        diagnosis="the step counter is computed as t = config['t'] + 1 but never stored back, "
                  "so every step is bias-corrected as if it were the first; write "
                  "config['t'] = t",
        old='    config["t"] += 1\n'
            '    config["m"] = beta1 * config["m"] + (1 - beta1) * dw\n'
            '    config["v"] = beta2 * config["v"] + (1 - beta2) * dw ** 2\n'
            '    m_hat = config["m"] / (1 - beta1 ** config["t"])\n'
            '    v_hat = config["v"] / (1 - beta2 ** config["t"])\n',
        new='    t = config["t"] + 1\n'
            '    config["m"] = beta1 * config["m"] + (1 - beta1) * dw\n'
            '    config["v"] = beta2 * config["v"] + (1 - beta2) * dw ** 2\n'
            '    m_hat = config["m"] / (1 - beta1 ** t)\n'
            '    v_hat = config["v"] / (1 - beta2 ** t)\n',
    ),
    Mutant(
        name="adam_no_bias_correction",
        function="adam",
        public_check_catches=True,
        diagnosis="adam's moving averages are used without bias correction "
                  "(divide m by 1 - beta1**t and v by 1 - beta2**t)",
        old='    m_hat = config["m"] / (1 - beta1 ** config["t"])\n'
            '    v_hat = config["v"] / (1 - beta2 ** config["t"])\n',
        new='    m_hat = config["m"]\n'
            '    v_hat = config["v"]\n',
    ),
    Mutant(
        name="adam_uses_m_not_m_hat",
        function="adam",
        public_check_catches=True,
        diagnosis="the update uses the raw first moment m instead of the bias-corrected m_hat",
        old='config["learning_rate"] * m_hat /',
        new='config["learning_rate"] * config["m"] /',
    ),
    Mutant(
        name="adam_no_sqrt",
        function="adam",
        public_check_catches=True,
        diagnosis="adam divides by v_hat instead of by its square root",
        old="np.sqrt(v_hat)",
        new="v_hat",
    ),
    Mutant(
        name="adam_second_moment_not_squared",
        function="adam",
        public_check_catches=True,
        diagnosis="the second moment averages dw instead of dw**2, so its square root is "
                  "undefined for negative gradients",
        old='(1 - beta2) * dw ** 2',
        new='(1 - beta2) * dw',
    ),
    Mutant(
        name="adam_eps_inside_sqrt",
        function="adam",
        public_check_catches=True,
        diagnosis="epsilon is added inside the square root instead of after it: "
                  "sqrt(v_hat + eps) is far from sqrt(v_hat) + eps when gradients are tiny",
        old="np.sqrt(v_hat) + config[\"epsilon\"]",
        new="np.sqrt(v_hat + config[\"epsilon\"])",
    ),
    Mutant(
        name="relu_forward_in_place",
        function="relu_forward",
        diagnosis="relu_forward changes its input array in place (x[x < 0] = 0) instead of "
                  "building a new one",
        old="out = np.maximum(0, x)",
        new="x[x < 0] = 0\n    out = x",
    ),
]
