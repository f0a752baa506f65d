"""Known mistakes for hw3_bptt, as text edits of solutions/hw3_bptt.ipynb.

Each non-equivalent mutant must lose points under the hidden tests; ``old`` is exact text of
the master's code cells (the notebook is the source: an edit of it must keep each ``old``
text, or that mutant no longer applies).
"""
from autograder.mutants import Mutant

# rnn_backward's loop, replaced whole by the truncated-BPTT mutant below.
_BPTT_LOOP = """    for t in reversed(range(T)):
        step = rnn_step_backward(dh[:, t] + dprev_h, cache[t])
        dx[:, t], dprev_h, dWx_t, dWh_t, db_t = step
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
"""

# Truncated BPTT with a window of 2: the gradient of each h[:, t] is followed back through at
# most two dprev_h links, so nothing from step t reaches step t - 3.
_TRUNCATED_LOOP = """    for t_end in reversed(range(T)):
        dcarry = dh[:, t_end]
        for t in range(t_end, max(t_end - 3, -1), -1):
            step = rnn_step_backward(dcarry, cache[t])
            dx_t, dcarry, dWx_t, dWh_t, db_t = step
            dx[:, t] += dx_t
            dWx += dWx_t
            dWh += dWh_t
            db += db_t
"""

MUTANTS = [
    # ---- rnn_step_forward ---------------------------------------------------------------------
    Mutant(
        name="step_forward_wh_transposed",
        function="rnn_step_forward",
        public_check_catches=True,
        diagnosis="the recurrent term looks like prev_h @ Wh.T: with a square Wh the shapes "
                  "fit either way, but the contract is prev_h @ Wh",
        old="next_h = np.tanh(x @ Wx + prev_h @ Wh + b)",
        new="next_h = np.tanh(x @ Wx + prev_h @ Wh.T + b)",
    ),
    Mutant(
        name="step_forward_no_bias",
        function="rnn_step_forward",
        public_check_catches=True,
        diagnosis="next_h looks like tanh(x Wx + prev_h Wh) without the bias b",
        old="next_h = np.tanh(x @ Wx + prev_h @ Wh + b)",
        new="next_h = np.tanh(x @ Wx + prev_h @ Wh)",
    ),
    # ---- rnn_step_backward --------------------------------------------------------------------
    Mutant(
        name="step_forward_bias_outside_tanh",
        function="rnn_step_forward",
        public_check_catches=True,
        diagnosis="the bias is added after the tanh; it belongs inside: "
                  "next_h = tanh(x @ Wx + prev_h @ Wh + b)",
        old="next_h = np.tanh(x @ Wx + prev_h @ Wh + b)",
        new="next_h = np.tanh(x @ Wx + prev_h @ Wh) + b",
    ),
    Mutant(
        name="step_backward_no_tanh_derivative",
        function="rnn_step_backward",
        public_check_catches=True,
        diagnosis="the backward pass skips the tanh: dnext_h must be multiplied by "
                  "tanh'(a) = 1 - next_h**2 before the affine part",
        old="da = dnext_h * (1 - next_h ** 2)",
        new="da = dnext_h",
    ),
    Mutant(
        name="step_backward_tanh_of_output",
        function="rnn_step_backward",
        public_check_catches=True,
        diagnosis="the tanh derivative is taken at next_h instead of at a: 1 - tanh(next_h)**2 "
                  "applies tanh twice; since next_h = tanh(a), tanh'(a) = 1 - next_h**2",
        old="da = dnext_h * (1 - next_h ** 2)",
        new="da = dnext_h * (1 - np.tanh(next_h) ** 2)",
    ),
    Mutant(
        name="step_backward_dprev_untransposed",
        function="rnn_step_backward",
        public_check_catches=True,
        diagnosis="dprev_h looks like da @ Wh instead of da @ Wh.T (Wh is square, so the "
                  "shape is right but the values are not)",
        old="dprev_h = da @ Wh.T",
        new="dprev_h = da @ Wh",
    ),
    Mutant(
        name="step_backward_dwh_from_next_h",
        function="rnn_step_backward",
        public_check_catches=True,
        diagnosis="dWh is computed with next_h instead of prev_h: Wh multiplies the previous "
                  "hidden state, so dWh = prev_h.T @ da",
        old="dWh = prev_h.T @ da",
        new="dWh = next_h.T @ da",
    ),
    Mutant(
        name="step_backward_db_mean",
        function="rnn_step_backward",
        public_check_catches=True,
        diagnosis="db looks averaged over the batch instead of summed",
        old="db = da.sum(axis=0)",
        new="db = da.mean(axis=0)",
    ),
    # ---- rnn_forward --------------------------------------------------------------------------
    Mutant(
        name="rnn_forward_ignores_h0",
        function="rnn_forward",
        public_check_catches=True,
        diagnosis="the first step starts from zeros instead of the given h0",
        old="    prev_h = h0\n",
        new="    prev_h = np.zeros_like(h0)\n",
    ),
    Mutant(
        name="rnn_forward_always_from_h0",
        function="rnn_forward",
        public_check_catches=True,
        diagnosis="every step starts from h0 instead of the hidden state of the step before",
        old="rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)",
        new="rnn_step_forward(x[:, t], h0, Wx, Wh, b)",
    ),
    # ---- rnn_backward -------------------------------------------------------------------------
    Mutant(
        name="bptt_no_dprev",
        function="rnn_backward",
        public_check_catches=True,
        diagnosis="the gradient from later steps is not carried back: each step's backward "
                  "must get dh[:, t] plus the dprev_h returned by step t + 1",
        old="rnn_step_backward(dh[:, t] + dprev_h, cache[t])",
        new="rnn_step_backward(dh[:, t], cache[t])",
    ),
    Mutant(
        name="bptt_forward_in_time",
        function="rnn_backward",
        public_check_catches=True,
        diagnosis="the backward pass walks the steps forwards in time; dprev_h of step t "
                  "belongs to step t - 1, so go from t = T-1 down to 0",
        old="for t in reversed(range(T)):",
        new="for t in range(T):",
    ),
    Mutant(
        name="bptt_truncated_2_steps",
        function="rnn_backward",
        public_check_catches=True,
        diagnosis="the gradient of each hidden state is followed back only two steps "
                  "(truncated backprop through time): it must reach every earlier step",
        old=_BPTT_LOOP,
        new=_TRUNCATED_LOOP,
    ),
    Mutant(
        name="bptt_truncated_chunks_of_3",
        function="rnn_backward",
        public_check_catches=True,
        diagnosis="dprev_h is reset to zero every 3 steps (truncated backprop through time in "
                  "chunks): the gradient must be carried back through every step",
        old="        dx[:, t], dprev_h, dWx_t, dWh_t, db_t = step\n",
        new="        dx[:, t], dprev_h, dWx_t, dWh_t, db_t = step\n"
            "        if t % 3 == 0:\n"
            "            dprev_h = np.zeros_like(dprev_h)\n",
    ),
    Mutant(
        name="bptt_parameter_grads_overwritten",
        function="rnn_backward",
        public_check_catches=True,
        diagnosis="dWh keeps only the contribution of the last step processed; the weights are "
                  "shared by all steps, so their gradients must be summed over the steps",
        old="        dWh += dWh_t\n",
        new="        dWh = dWh_t\n",
    ),
    Mutant(
        name="bptt_dh0_zero",
        function="rnn_backward",
        public_check_catches=True,
        diagnosis="dh0 is zero: it is the dprev_h left over after the backward of step 0",
        old="    dh0 = dprev_h\n",
        new="    dh0 = np.zeros_like(dprev_h)\n",
    ),
    # ---- word embedding -----------------------------------------------------------------------
    Mutant(
        name="embedding_backward_fancy_index",
        function="word_embedding_backward",
        public_check_catches=True,
        diagnosis="gradients of repeated words do not add up: dW[x] += dout writes each "
                  "repeated row once; use np.add.at(dW, x, dout)",
        old="np.add.at(dW, x, dout)",
        new="dW[x] += dout",
    ),
    # ---- temporal affine ----------------------------------------------------------------------
    Mutant(
        name="temporal_affine_db_over_batch_only",
        function="temporal_affine_backward",
        public_check_catches=True,
        diagnosis="db is summed over the batch only, giving shape (T, M); b is shared by all "
                  "steps too, so sum over axes 0 and 1",
        old="db = dout.sum(axis=(0, 1))",
        new="db = dout.sum(axis=0)",
    ),
    Mutant(
        name="temporal_affine_no_bias",
        function="temporal_affine_forward",
        public_check_catches=True,
        diagnosis="the temporal affine output is missing the bias b",
        old="out = (x.reshape(N * T, D) @ w + b).reshape(N, T, w.shape[1])",
        new="out = (x.reshape(N * T, D) @ w).reshape(N, T, w.shape[1])",
    ),
    # ---- temporal softmax loss ----------------------------------------------------------------
    Mutant(
        name="softmax_mask_ignored",
        function="temporal_softmax_loss",
        public_check_catches=True,
        diagnosis="the mask is not applied: padded steps count in the loss and get gradients",
        old="mask_flat = mask.reshape(N * T)",
        new="mask_flat = np.ones(N * T)",
    ),
    Mutant(
        name="softmax_mask_only_in_loss",
        function="temporal_softmax_loss",
        public_check_catches=True,
        diagnosis="the mask is applied to the loss but not to dx: masked steps must get a zero "
                  "gradient",
        old="dx_flat *= mask_flat[:, None] / N",
        new="dx_flat /= N",
    ),
    Mutant(
        name="softmax_divides_by_nt",
        function="temporal_softmax_loss",
        public_check_catches=True,
        diagnosis="the loss and gradient are divided by N * T; the loss is summed over time "
                  "and averaged over the batch only, so divide by N",
        old="    loss = -np.sum(mask_flat * log_probs[rows, y_flat]) / N\n"
            "    dx_flat = np.exp(log_probs)\n"
            "    dx_flat[rows, y_flat] -= 1\n"
            "    dx_flat *= mask_flat[:, None] / N\n",
        new="    loss = -np.sum(mask_flat * log_probs[rows, y_flat]) / (N * T)\n"
            "    dx_flat = np.exp(log_probs)\n"
            "    dx_flat[rows, y_flat] -= 1\n"
            "    dx_flat *= mask_flat[:, None] / (N * T)\n",
    ),
    Mutant(
        name="softmax_divides_by_mask_count",
        function="temporal_softmax_loss",
        public_check_catches=True,
        diagnosis="the loss is averaged over the counted steps; it is summed over time and "
                  "divided by the batch size N",
        old="    loss = -np.sum(mask_flat * log_probs[rows, y_flat]) / N\n"
            "    dx_flat = np.exp(log_probs)\n"
            "    dx_flat[rows, y_flat] -= 1\n"
            "    dx_flat *= mask_flat[:, None] / N\n",
        new="    loss = -np.sum(mask_flat * log_probs[rows, y_flat]) / mask_flat.sum()\n"
            "    dx_flat = np.exp(log_probs)\n"
            "    dx_flat[rows, y_flat] -= 1\n"
            "    dx_flat *= mask_flat[:, None] / mask_flat.sum()\n",
    ),
    Mutant(
        name="softmax_no_max_shift",
        function="temporal_softmax_loss",
        diagnosis="the loss overflows for large scores: subtract each row's maximum before "
                  "exponentiating",
        old="shifted = x_flat - x_flat.max(axis=1, keepdims=True)",
        new="shifted = x_flat",
    ),
    Mutant(
        name="softmax_log_of_underflowing_probability",
        function="temporal_softmax_loss",
        diagnosis="the loss is infinite or NaN for large scores: np.log(probs) of a "
                  "probability that rounded to 0 is -inf; take the log-softmax directly, "
                  "shifted - log(sum(exp(shifted)))",
        old="loss = -np.sum(mask_flat * log_probs[rows, y_flat]) / N",
        new="probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)\n"
            "    loss = -np.sum(mask_flat * np.log(probs[rows, y_flat])) / N",
    ),
    Mutant(
        name="softmax_dx_not_divided_by_n",
        function="temporal_softmax_loss",
        public_check_catches=True,
        diagnosis="dx is N times too large: the loss is divided by the batch size N, so its "
                  "gradient is divided by N too",
        old="dx_flat *= mask_flat[:, None] / N",
        new="dx_flat *= mask_flat[:, None]",
    ),
    # ---- clip_grad_norm -----------------------------------------------------------------------
    Mutant(
        name="clip_per_array",
        function="clip_grad_norm",
        public_check_catches=True,
        diagnosis="each gradient array is clipped to max_norm on its own; the norm to clip is "
                  "the global one, over all arrays together",
        old="    clipped = {name: g * scale for name, g in grads.items()}\n",
        new="    clipped = {name: g * min(1.0, max_norm / np.linalg.norm(g))\n"
            "               for name, g in grads.items()}\n",
    ),
    Mutant(
        name="clip_sum_of_norms",
        function="clip_grad_norm",
        public_check_catches=True,
        diagnosis="the global norm looks like the sum of the arrays' norms; it is the square "
                  "root of the sum of all squared entries, sqrt(sum of np.sum(g * g))",
        old="total_norm = np.sqrt(sum(np.sum(g * g) for g in grads.values()))",
        new="total_norm = sum(np.linalg.norm(g) for g in grads.values())",
    ),
    Mutant(
        name="clip_always_rescales",
        function="clip_grad_norm",
        public_check_catches=True,
        diagnosis="gradients are rescaled to norm max_norm even when their norm is smaller; "
                  "small gradients must be left unchanged",
        old="scale = max_norm / total_norm if total_norm > max_norm else 1.0",
        new="scale = max_norm / total_norm",
    ),
    Mutant(
        name="clip_elementwise",
        function="clip_grad_norm",
        public_check_catches=True,
        diagnosis="every entry is clipped to [-max_norm, max_norm], which changes the direction "
                  "of the gradient; rescale all arrays by one factor instead",
        old="    clipped = {name: g * scale for name, g in grads.items()}\n",
        new="    clipped = {name: np.clip(g, -max_norm, max_norm) for name, g in grads.items()}\n",
    ),
    Mutant(
        name="clip_in_place",
        function="clip_grad_norm",
        diagnosis="clip_grad_norm scales the given arrays in place; build new arrays instead",
        old="    clipped = {name: g * scale for name, g in grads.items()}\n",
        new="    for g in grads.values():\n"
            "        g *= scale\n"
            "    clipped = dict(grads)\n",
    ),
    # ---- RNNLanguageModel ---------------------------------------------------------------------
    Mutant(
        name="lm_targets_not_shifted",
        function="RNNLanguageModel",
        diagnosis="the targets are the inputs themselves; the model predicts the next word, so "
                  "targets = seqs[:, 1:]",
        old="targets = seqs[:, 1:]",
        new="targets = seqs[:, :-1]",
    ),
    Mutant(
        name="lm_mask_from_inputs",
        function="RNNLanguageModel",
        diagnosis="the mask is built from the inputs; a step counts when its target is not "
                  "null_idx (mask = targets != null_idx)",
        old="mask = targets != self.null_idx",
        new="mask = inputs != self.null_idx",
    ),
    Mutant(
        name="lm_null_idx_hardcoded",
        function="RNNLanguageModel",
        diagnosis="the padding index is taken as 0 instead of self.null_idx",
        old="mask = targets != self.null_idx",
        new="mask = targets != 0",
    ),
    Mutant(
        name="lm_output_bias_wrong_size",
        function="RNNLanguageModel",
        public_check_catches=True,
        diagnosis="b_out has the size of the hidden state; it biases the scores, so its shape "
                  "is (vocab_size,)",
        old='"b_out": np.zeros(V),',
        new='"b_out": np.zeros(H),',
    ),
    Mutant(
        name="lm_embedding_not_scaled",
        function="RNNLanguageModel",
        diagnosis="W_embed starts with standard deviation 1 instead of 0.1",
        old='"W_embed": 0.1 * rng.standard_normal((V, D)),',
        new='"W_embed": rng.standard_normal((V, D)),',
        equivalent=True,  # the contract fixes names and shapes of the parameters, not their scale
    ),
]
