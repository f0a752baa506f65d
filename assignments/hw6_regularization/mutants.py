"""Known mistakes for hw6_regularization, as text edits of solutions/hw6_regularization.ipynb.

Each non-equivalent mutant must lose points under the hidden tests; ``old`` is exact text of
the master's code cells (the master notebook is the source: edit it, then check that every
``old`` below still occurs in it).
"""
from autograder.mutants import Mutant

BN_RUNNING = ('        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mean\n'
              '        bn_param["running_var"] = momentum * running_var + (1 - momentum) * var\n')
BN_DX = ("dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / "
         "np.sqrt(var + eps)")
LN_DX = ("dx = (dxhat - dxhat.mean(axis=1, keepdims=True)\n"
         "          - xhat * (dxhat * xhat).mean(axis=1, keepdims=True)) / np.sqrt(var + eps)")
XHAT = "xhat = (x - mean) / np.sqrt(var + eps)"
SMOOTH_TARGET = ("    target = np.full((N, C), epsilon / C)\n"
                 "    target[np.arange(N), y] += 1 - epsilon\n")
RIDGE = "lam = p / (1 - p) * (X ** 2).sum(axis=0)"
NET_FORWARD_LAYER = '''            norm_cache = None
            if self.normalization == "batchnorm":
                h, norm_cache = batchnorm_forward(h, self.params[f"gamma{i}"],
                                                  self.params[f"beta{i}"], self.bn_params[i - 1])
            elif self.normalization == "layernorm":
                h, norm_cache = layernorm_forward(h, self.params[f"gamma{i}"],
                                                  self.params[f"beta{i}"], self.bn_params[i - 1])
            h, relu_cache = relu_forward(h)
'''

MUTANTS = [
    # ---- dropout_forward -----------------------------------------------------------------------
    Mutant(
        name="dropout_not_scaled",
        function="dropout_forward",
        public_check_catches=True,
        diagnosis="the kept activations are not divided by the keep probability 1 - p: inverted "
                  "dropout scales them in train mode, mask = (rng.random(x.shape) >= p) / (1 - p)",
        old="mask = (rng.random(x.shape) >= p) / (1 - p)",
        new="mask = (rng.random(x.shape) >= p).astype(x.dtype)",
    ),
    Mutant(
        name="dropout_multiplied_by_keep_prob",
        function="dropout_forward",
        public_check_catches=True,
        diagnosis="the kept activations are multiplied by 1 - p instead of divided by it",
        old="mask = (rng.random(x.shape) >= p) / (1 - p)",
        new="mask = (rng.random(x.shape) >= p) * (1 - p)",
    ),
    Mutant(
        name="dropout_scaled_at_test_time",
        function="dropout_forward",
        public_check_catches=True,
        diagnosis="test mode scales the output by 1 - p (the rule of dropout without inverted "
                  "scaling); with inverted dropout, test mode returns x unchanged",
        old="out = x.copy()",
        new="out = x * (1 - p)",
    ),
    Mutant(
        name="dropout_applied_in_test_mode",
        function="dropout_forward",
        public_check_catches=True,
        diagnosis="dropout_forward drops entries in test mode too; at test time it is the "
                  "identity, out = x",
        old="        mask = None\n        out = x.copy()\n",
        new="        mask = (rng.random(x.shape) >= p) / (1 - p)\n        out = x * mask\n",
    ),
    Mutant(
        name="dropout_one_mask_for_the_batch",
        function="dropout_forward",
        public_check_catches=True,
        diagnosis="one mask is shared by every example of the batch (drawn with the shape of "
                  "one example): draw a mask entry for every entry of x, rng.random(x.shape)",
        old="mask = (rng.random(x.shape) >= p) / (1 - p)",
        new="mask = (rng.random(x.shape[1:]) >= p) / (1 - p)",
    ),
    Mutant(
        name="dropout_p_is_keep_probability",
        function="dropout_forward",
        public_check_catches=True,
        diagnosis="p is used as the probability of keeping an entry; it is the probability of "
                  "dropping it (keep where rng.random(x.shape) >= p, scale by 1 / (1 - p))",
        old="mask = (rng.random(x.shape) >= p) / (1 - p)",
        new="mask = (rng.random(x.shape) < p) / p",
    ),
    Mutant(
        name="dropout_keeps_below_one_minus_p",
        function="dropout_forward",
        public_check_catches=True,
        diagnosis="entries are kept where rng.random(x.shape) < 1 - p: the same probability, "
                  "but not the contract's mask, which keeps them where rng.random(x.shape) >= p",
        old="mask = (rng.random(x.shape) >= p) / (1 - p)",
        new="mask = (rng.random(x.shape) < 1 - p) / (1 - p)",
    ),
    Mutant(
        name="dropout_draws_from_np_random",
        function="dropout_forward",
        public_check_catches=True,
        diagnosis="the mask is drawn from np.random instead of the rng argument, so generators "
                  "with the same seed do not give the same mask",
        old="mask = (rng.random(x.shape) >= p) / (1 - p)",
        new="mask = (np.random.rand(*x.shape) >= p) / (1 - p)",
    ),
    Mutant(
        name="dropout_mask_strictly_above_p",
        function="dropout_forward",
        diagnosis="entries are kept where rng.random(x.shape) > p instead of >= p",
        old="mask = (rng.random(x.shape) >= p) / (1 - p)",
        new="mask = (rng.random(x.shape) > p) / (1 - p)",
        equivalent=True,  # differs only where a draw equals p exactly: probability zero
    ),
    # ---- dropout_backward ----------------------------------------------------------------------
    Mutant(
        name="dropout_backward_ignores_mask",
        function="dropout_backward",
        public_check_catches=True,
        diagnosis="dropout_backward passes dout through unchanged in train mode: multiply it by "
                  "the cached mask",
        old="dx = dout * mask",
        new="dx = dout.copy()",
    ),
    Mutant(
        name="dropout_backward_scales_twice",
        function="dropout_backward",
        public_check_catches=True,
        diagnosis="dx is divided by 1 - p once more: the cached mask already holds the "
                  "1 / (1 - p) scaling, so dx = dout * mask",
        old="dx = dout * mask",
        new="dx = dout * mask / (1 - p)",
    ),
    Mutant(
        name="dropout_backward_mask_in_test_mode",
        function="dropout_backward",
        public_check_catches=True,
        diagnosis="in test mode dropout_backward multiplies by the mask, which is None there: "
                  "test mode is the identity, dx = dout",
        old="dx = dout.copy()",
        new="dx = dout * mask",
    ),
    # ---- batchnorm_forward ---------------------------------------------------------------------
    Mutant(
        name="bn_unbiased_variance",
        function="batchnorm_forward",
        public_check_catches=True,
        diagnosis="the batch variance is the unbiased one (divided by N - 1); batch "
                  "normalization uses the biased variance, divided by N",
        old="var = x.var(axis=0)",
        new="var = x.var(axis=0, ddof=1)",
    ),
    Mutant(
        name="bn_momentum_on_the_wrong_side",
        function="batchnorm_forward",
        public_check_catches=True,
        diagnosis="the running averages weigh the new batch statistics by momentum; momentum "
                  "weighs the old average: momentum * running_mean + (1 - momentum) * mean",
        old=BN_RUNNING,
        new='        bn_param["running_mean"] = (1 - momentum) * running_mean + momentum * mean\n'
            '        bn_param["running_var"] = (1 - momentum) * running_var + momentum * var\n',
    ),
    Mutant(
        name="bn_running_stats_not_stored",
        function="batchnorm_forward",
        public_check_catches=True,
        diagnosis="the updated running statistics are not stored in bn_param, so test mode "
                  "never sees them: write bn_param['running_mean'] and bn_param['running_var']",
        old=BN_RUNNING,
        new="        running_mean = momentum * running_mean + (1 - momentum) * mean\n"
            "        running_var = momentum * running_var + (1 - momentum) * var\n",
    ),
    Mutant(
        name="bn_running_var_unbiased",
        function="batchnorm_forward",
        public_check_catches=True,
        diagnosis="the running variance averages the unbiased batch variance (as torch does); "
                  "this homework averages the biased variance the layer normalises with",
        old="(1 - momentum) * var\n",
        new="(1 - momentum) * x.var(axis=0, ddof=1)\n",
    ),
    Mutant(
        name="bn_running_var_of_std",
        function="batchnorm_forward",
        public_check_catches=True,
        diagnosis="the running variance averages the batch standard deviation instead of the "
                  "variance",
        old="(1 - momentum) * var\n",
        new="(1 - momentum) * np.sqrt(var)\n",
    ),
    Mutant(
        name="bn_test_mode_uses_batch_statistics",
        function="batchnorm_forward",
        public_check_catches=True,
        diagnosis="test mode normalises with the statistics of the batch it is given; it uses "
                  "the running averages kept in bn_param",
        old="mean, var = running_mean, running_var",
        new="mean, var = x.mean(axis=0), x.var(axis=0)",
    ),
    Mutant(
        name="bn_eps_outside_sqrt",
        function="batchnorm_forward",
        diagnosis="eps is added after the square root, (x - mean) / (sqrt(var) + eps); it goes "
                  "inside, (x - mean) / sqrt(var + eps)",
        old=XHAT,
        new="xhat = (x - mean) / (np.sqrt(var) + eps)",
    ),
    Mutant(
        name="bn_statistics_over_features",
        function="batchnorm_forward",
        public_check_catches=True,
        diagnosis="the statistics are computed over the features of each example (axis 1): "
                  "batch normalization normalises every feature over the batch (axis 0)",
        old="        mean = x.mean(axis=0)\n        var = x.var(axis=0)\n",
        new="        mean = x.mean(axis=1, keepdims=True)\n"
            "        var = x.var(axis=1, keepdims=True)\n",
    ),
    # ---- batchnorm_backward --------------------------------------------------------------------
    Mutant(
        name="bn_backward_no_mean_terms",
        function="batchnorm_backward",
        public_check_catches=True,
        diagnosis="dx ignores that the batch mean and variance depend on x (dx = dout * gamma / "
                  "sqrt(var + eps)): subtract the mean of dxhat and xhat times the mean of "
                  "dxhat * xhat",
        old=BN_DX,
        new="dx = dxhat / np.sqrt(var + eps)",
    ),
    Mutant(
        name="bn_backward_no_variance_term",
        function="batchnorm_backward",
        public_check_catches=True,
        diagnosis="dx has the term from the batch mean but not the one from the batch variance "
                  "(- xhat * mean(dxhat * xhat))",
        old=BN_DX,
        new="dx = (dxhat - dxhat.mean(axis=0)) / np.sqrt(var + eps)",
    ),
    Mutant(
        name="bn_backward_dgamma_without_xhat",
        function="batchnorm_backward",
        public_check_catches=True,
        diagnosis="dgamma sums dout without multiplying it by xhat: dgamma = sum(dout * xhat) "
                  "over the batch",
        old="dgamma = (dout * xhat).sum(axis=0)",
        new="dgamma = dout.sum(axis=0)",
    ),
    Mutant(
        name="bn_backward_dbeta_mean",
        function="batchnorm_backward",
        public_check_catches=True,
        diagnosis="dbeta is averaged over the batch instead of summed",
        old="dbeta = dout.sum(axis=0)",
        new="dbeta = dout.mean(axis=0)",
    ),
    Mutant(
        name="bn_backward_no_gamma",
        function="batchnorm_backward",
        public_check_catches=True,
        diagnosis="dx is missing the factor gamma: the gradient reaching xhat is dout * gamma",
        old="dxhat = dout * gamma",
        new="dxhat = dout",
    ),
    Mutant(
        name="bn_backward_means_over_features",
        function="batchnorm_backward",
        public_check_catches=True,
        diagnosis="the means in dx run over the features of each example (layer "
                  "normalization's formula); for batch normalization they run over the batch",
        old=BN_DX,
        new="dx = (dxhat - dxhat.mean(axis=1, keepdims=True)"
            " - xhat * (dxhat * xhat).mean(axis=1, keepdims=True)) / np.sqrt(var + eps)",
    ),
    # ---- layernorm_forward ---------------------------------------------------------------------
    Mutant(
        name="ln_statistics_over_the_batch",
        function="layernorm_forward",
        public_check_catches=True,
        diagnosis="the statistics are computed over the batch (axis 0), as batch normalization "
                  "does; layer normalization normalises each example over its features (axis 1)",
        old="    mean = x.mean(axis=1, keepdims=True)\n    var = x.var(axis=1, keepdims=True)\n",
        new="    mean = x.mean(axis=0, keepdims=True)\n    var = x.var(axis=0, keepdims=True)\n",
    ),
    Mutant(
        name="ln_unbiased_variance",
        function="layernorm_forward",
        public_check_catches=True,
        diagnosis="the variance of each row is the unbiased one (divided by D - 1); layer "
                  "normalization divides by D",
        old="var = x.var(axis=1, keepdims=True)",
        new="var = x.var(axis=1, keepdims=True, ddof=1)",
    ),
    Mutant(
        name="ln_eps_outside_sqrt",
        function="layernorm_forward",
        diagnosis="eps is added after the square root, (x - mean) / (sqrt(var) + eps); it goes "
                  "inside, (x - mean) / sqrt(var + eps)",
        old=XHAT,
        new="xhat = (x - mean) / (np.sqrt(var) + eps)",
        occurrence=2,
    ),
    Mutant(
        name="ln_ignores_beta",
        function="layernorm_forward",
        diagnosis="the output is gamma * xhat without the shift beta",
        old="out = gamma * xhat + beta",
        new="out = gamma * xhat",
        occurrence=2,
    ),
    # ---- layernorm_backward --------------------------------------------------------------------
    Mutant(
        name="ln_backward_means_over_the_batch",
        function="layernorm_backward",
        public_check_catches=True,
        diagnosis="the means in dx run over the batch (batch normalization's formula); for "
                  "layer normalization they run over the features of each example (axis 1)",
        old=LN_DX,
        new="dx = (dxhat - dxhat.mean(axis=0)\n"
            "          - xhat * (dxhat * xhat).mean(axis=0)) / np.sqrt(var + eps)",
    ),
    Mutant(
        name="ln_backward_no_mean_terms",
        function="layernorm_backward",
        public_check_catches=True,
        diagnosis="dx ignores that each row's mean and variance depend on x (dx = dout * gamma "
                  "/ sqrt(var + eps)): subtract the row means of dxhat and of dxhat * xhat "
                  "times xhat",
        old=LN_DX,
        new="dx = dxhat / np.sqrt(var + eps)",
    ),
    Mutant(
        name="ln_backward_dgamma_per_example",
        function="layernorm_backward",
        public_check_catches=True,
        diagnosis="dgamma is summed over the features of each example; gamma is shared by the "
                  "whole batch, so sum dout * xhat over the batch (axis 0)",
        old="dgamma = (dout * xhat).sum(axis=0)",
        new="dgamma = (dout * xhat).sum(axis=1)",
        occurrence=2,
    ),
    Mutant(
        name="ln_backward_dbeta_per_example",
        function="layernorm_backward",
        public_check_catches=True,
        diagnosis="dbeta is summed over the features of each example; sum dout over the batch "
                  "(axis 0)",
        old="dbeta = dout.sum(axis=0)",
        new="dbeta = dout.sum(axis=1)",
        occurrence=2,
    ),
    Mutant(
        name="ln_backward_no_gamma",
        function="layernorm_backward",
        public_check_catches=True,
        diagnosis="dx is missing the factor gamma: the gradient reaching xhat is dout * gamma",
        old="dxhat = dout * gamma",
        new="dxhat = dout",
        occurrence=2,
    ),
    # ---- softmax_loss_smoothed -----------------------------------------------------------------
    Mutant(
        name="smoothing_over_c_minus_1_classes",
        function="softmax_loss_smoothed",
        public_check_catches=True,
        diagnosis="the smoothing is spread over the C - 1 wrong classes (1 - epsilon on the true "
                  "class); here every class, the true one included, gets epsilon / C",
        old=SMOOTH_TARGET,
        new="    target = np.full((N, C), epsilon / (C - 1))\n"
            "    target[np.arange(N), y] = 1 - epsilon\n",
    ),
    Mutant(
        name="smoothing_true_class_share_missing",
        function="softmax_loss_smoothed",
        public_check_catches=True,
        diagnosis="the true class gets 1 - epsilon instead of 1 - epsilon + epsilon / C (its "
                  "share of the smoothing is missing, and the targets do not sum to 1)",
        old="target[np.arange(N), y] += 1 - epsilon",
        new="target[np.arange(N), y] = 1 - epsilon",
    ),
    Mutant(
        name="smoothing_not_divided_by_c",
        function="softmax_loss_smoothed",
        public_check_catches=True,
        diagnosis="every class gets epsilon instead of epsilon / C",
        old="target = np.full((N, C), epsilon / C)",
        new="target = np.full((N, C), epsilon)",
    ),
    Mutant(
        name="smoothed_dx_hard_targets",
        function="softmax_loss_smoothed",
        public_check_catches=True,
        diagnosis="dx uses the one-hot target; the gradient of the smoothed loss is "
                  "(softmax - smoothed target) / N",
        old="dx = (np.exp(log_probs) - target) / N",
        new="onehot = np.zeros((N, C))\n    onehot[np.arange(N), y] = 1\n"
            "    dx = (np.exp(log_probs) - onehot) / N",
    ),
    Mutant(
        name="smoothed_no_max_shift",
        function="softmax_loss_smoothed",
        public_check_catches=True,
        diagnosis="softmax_loss_smoothed overflows for large logits: subtract each row's "
                  "maximum before exponentiating",
        old="shifted = x - x.max(axis=1, keepdims=True)",
        new="shifted = x",
    ),
    Mutant(
        name="smoothed_log_of_probabilities",
        function="softmax_loss_smoothed",
        public_check_catches=True,
        diagnosis="the loss is infinite for logits of +-1000: np.log of a probability that "
                  "underflowed to 0 is -inf, and with label smoothing every class counts; take "
                  "the log-softmax directly, shifted - log(sum(exp(shifted)))",
        old="log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))",
        new="log_probs = np.log(np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True))",
    ),
    Mutant(
        name="smoothed_loss_sum_not_mean",
        function="softmax_loss_smoothed",
        public_check_catches=True,
        diagnosis="the loss looks summed over the batch instead of averaged",
        old="loss = -(target * log_probs).sum() / N",
        new="loss = -(target * log_probs).sum()",
    ),
    Mutant(
        name="smoothed_dx_not_divided_by_n",
        function="softmax_loss_smoothed",
        public_check_catches=True,
        diagnosis="dx is N times too large: the loss is a mean over the batch, so its gradient "
                  "is divided by N",
        old="dx = (np.exp(log_probs) - target) / N",
        new="dx = np.exp(log_probs) - target",
    ),
    # ---- dropout_ridge_penalty -----------------------------------------------------------------
    Mutant(
        name="ridge_p_instead_of_odds",
        function="dropout_ridge_penalty",
        public_check_catches=True,
        diagnosis="lam uses p instead of p / (1 - p): an inverted-dropout entry X_ij m_ij / "
                  "(1 - p) has variance p / (1 - p) X_ij^2",
        old=RIDGE,
        new="lam = p * (X ** 2).sum(axis=0)",
    ),
    Mutant(
        name="ridge_inverse_odds",
        function="dropout_ridge_penalty",
        public_check_catches=True,
        diagnosis="lam uses (1 - p) / p instead of p / (1 - p) (the odds of dropping, p / "
                  "(1 - p), grow with p)",
        old=RIDGE,
        new="lam = (1 - p) / p * (X ** 2).sum(axis=0)",
    ),
    Mutant(
        name="ridge_without_inverted_scaling",
        function="dropout_ridge_penalty",
        public_check_catches=True,
        diagnosis="lam = p (1 - p) diag(X^T X) is the penalty of dropout without the 1 / (1 - p) "
                  "scaling; with inverted dropout it is p / (1 - p) diag(X^T X)",
        old=RIDGE,
        new="lam = p * (1 - p) * (X ** 2).sum(axis=0)",
    ),
    Mutant(
        name="ridge_mean_over_examples",
        function="dropout_ridge_penalty",
        public_check_catches=True,
        diagnosis="lam averages X_ij^2 over the examples; the objective sums the squared errors "
                  "(no 1/N), so lam sums them: diag(X^T X)",
        old=RIDGE,
        new="lam = p / (1 - p) * (X ** 2).mean(axis=0)",
    ),
    Mutant(
        name="ridge_square_of_column_sums",
        function="dropout_ridge_penalty",
        public_check_catches=True,
        diagnosis="lam squares the column sums of X; diag(X^T X) is the sum of the squares",
        old=RIDGE,
        new="lam = p / (1 - p) * X.sum(axis=0) ** 2",
    ),
    # ---- FullyConnectedNet ---------------------------------------------------------------------
    Mutant(
        name="net_gamma_starts_at_zero",
        function="FullyConnectedNet",
        public_check_catches=True,
        diagnosis="the gammas start at zero, which blocks every signal and gradient; they start "
                  "at one (and the betas at zero)",
        old='self.params[f"gamma{i}"] = np.ones(dims[i])',
        new='self.params[f"gamma{i}"] = np.zeros(dims[i])',
    ),
    Mutant(
        name="net_normalizes_the_output_layer",
        function="FullyConnectedNet",
        public_check_catches=True,
        diagnosis="the last (output) layer gets a gamma and a beta too; only the hidden layers "
                  "are normalised",
        old="if normalization is not None and i < self.num_layers:",
        new="if normalization is not None:",
    ),
    Mutant(
        name="net_normalization_after_relu",
        function="FullyConnectedNet",
        public_check_catches=True,
        diagnosis="the normalization layer comes after the ReLU; it goes between the affine "
                  "layer and the ReLU",
        old=NET_FORWARD_LAYER,
        new=NET_FORWARD_LAYER.replace("            h, relu_cache = relu_forward(h)\n", "")
        .replace("            norm_cache = None\n",
                 "            h, relu_cache = relu_forward(h)\n            norm_cache = None\n"),
    ),
    Mutant(
        name="net_new_bn_param_every_call",
        function="FullyConnectedNet",
        diagnosis="batchnorm_forward gets a new bn_param dict on every call, so the running "
                  "statistics are never kept: pass self.bn_params[i - 1]",
        old='''self.params[f"beta{i}"], self.bn_params[i - 1])
            elif''',
        new='''self.params[f"beta{i}"], {"mode": mode})
            elif''',
    ),
    Mutant(
        name="net_dropout_keep_probability",
        function="FullyConnectedNet",
        diagnosis="dropout_forward gets the keep probability 1 - dropout; its p is the drop "
                  "probability, self.dropout",
        old="dropout_forward(h, self.dropout, mode, self.dropout_rng)",
        new="dropout_forward(h, 1 - self.dropout, mode, self.dropout_rng)",
    ),
    Mutant(
        name="net_dropout_always_train",
        function="FullyConnectedNet",
        public_check_catches=True,
        diagnosis="dropout runs in train mode even when loss(X) computes test-mode scores",
        old="dropout_forward(h, self.dropout, mode, self.dropout_rng)",
        new='dropout_forward(h, self.dropout, "train", self.dropout_rng)',
    ),
    Mutant(
        name="net_dropout_on_the_scores",
        function="FullyConnectedNet",
        diagnosis="dropout is applied to the class scores too; it follows the hidden ReLUs only",
        old='scores, last_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])',
        new='scores, last_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])'
            '\n        if self.dropout > 0:'
            '\n            scores, _ = dropout_forward(scores, self.dropout, mode,'
            ' self.dropout_rng)',
    ),
    Mutant(
        name="net_backward_skips_dropout",
        function="FullyConnectedNet",
        diagnosis="the backward pass skips the dropout layers: pass dh through dropout_backward "
                  "with each layer's cache",
        old="            if drop_cache is not None:\n"
            "                dh = dropout_backward(dh, drop_cache)\n",
        new="",
    ),
    Mutant(
        name="net_backward_around_batchnorm",
        function="FullyConnectedNet",
        public_check_catches=True,
        diagnosis="the gradient goes around the batchnorm layers: dx of batchnorm_backward is "
                  "not passed on to the affine layer below",
        old='dh, grads[f"gamma{i}"], grads[f"beta{i}"] = batchnorm_backward(dh, norm_cache)',
        new='_, grads[f"gamma{i}"], grads[f"beta{i}"] = batchnorm_backward(dh, norm_cache)',
    ),
    Mutant(
        name="net_layernorm_with_batchnorm_backward",
        function="FullyConnectedNet",
        public_check_catches=True,
        diagnosis="the layernorm layers are backpropagated with batchnorm_backward",
        old='dh, grads[f"gamma{i}"], grads[f"beta{i}"] = layernorm_backward(dh, norm_cache)',
        new='dh, grads[f"gamma{i}"], grads[f"beta{i}"] = batchnorm_backward(dh, norm_cache)',
    ),
    Mutant(
        name="net_reg_penalises_gammas",
        function="FullyConnectedNet",
        diagnosis="the gammas are regularised too; only the weight matrices W are",
        old='            grads[f"W{i}"] += self.reg * W\n',
        new='            grads[f"W{i}"] += self.reg * W\n'
            '            if f"gamma{i}" in self.params:\n'
            '                loss += 0.5 * self.reg * np.sum(self.params[f"gamma{i}"] ** 2)\n'
            '                grads[f"gamma{i}"] += self.reg * self.params[f"gamma{i}"]\n',
    ),
    Mutant(
        name="net_dropout_before_relu",
        function="FullyConnectedNet",
        diagnosis="dropout comes before the ReLU instead of after it",
        old="            h, relu_cache = relu_forward(h)\n"
            "            drop_cache = None\n"
            "            if self.dropout > 0:\n"
            "                h, drop_cache = dropout_forward(h, self.dropout, mode, "
            "self.dropout_rng)\n",
        new="            drop_cache = None\n"
            "            if self.dropout > 0:\n"
            "                h, drop_cache = dropout_forward(h, self.dropout, mode, "
            "self.dropout_rng)\n"
            "            h, relu_cache = relu_forward(h)\n",
        equivalent=True,  # the mask is >= 0, so relu(mask * h) = mask * relu(h), and backward
        # through either order gives the same gradient
    ),
]
