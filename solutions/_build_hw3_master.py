"""Write solutions/hw3_bptt.ipynb, the instructor's master notebook for hw3_bptt.

The student notebook is generated from the master by `dlgrade release hw3_bptt`, which
replaces every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block by a NotImplementedError.
Edit this script, not the notebook, then run it:

    python solutions/_build_hw3_master.py

If reference code changes, check that every ``old`` text in
assignments/hw3_bptt/mutants.py still occurs in the notebook.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from autograder.release import assemble_notebook, write_master
from autograder.release import code_cell as code
from autograder.release import markdown_cell as md

OUT = Path(__file__).resolve().parent / "hw3_bptt.ipynb"


INTRO = r"""
# Homework 3: recurrent nets and backprop through time

A recurrent neural network reads a sequence one step at a time and carries a hidden state
from each step to the next. In this homework you write the forward and backward passes of a
vanilla (tanh) RNN yourself, unroll it over whole sequences, and train it on two small
problems: a memory task that can only be solved if gradients flow back through time, and a
tiny language model.

You will implement:

- `rnn_step_forward`, `rnn_step_backward`: one time step of the RNN
- `rnn_forward`, `rnn_backward`: the RNN unrolled over a sequence (backprop through time)
- `word_embedding_forward`, `word_embedding_backward`: looking up word vectors
- `temporal_affine_forward`, `temporal_affine_backward`: an affine layer applied at every step
- `temporal_softmax_loss`: cross-entropy summed over time, with a mask for padding
- `clip_grad_norm`: rescaling gradients whose global norm is too large
- `RNNLanguageModel`: all of the above, put together

**Only numpy is allowed.** Importing `torch`, `jax`, `autograd` or any other
automatic-differentiation library is refused by the grader.

The layers follow the convention of homework 1: a forward function returns its output and a
`cache`; the backward function takes the upstream gradient `dout`
($\bar{y} = \partial \ell / \partial y$ in the notes) and that cache, and returns the gradient
with respect to each input. Everything is float64. Shapes use `N` for the batch size, `T` for
the number of time steps, `D` for the input size, `H` for the hidden size and `V` for the
vocabulary size.

In each function, replace the `raise NotImplementedError` line under `# TODO: your code here`
with your code. After each function, `check("name")` runs a few public checks: small
hand-computed cases and comparisons against numerical gradients. Passing them is a good
sign, not a guarantee: the grader runs more thorough hidden tests. Grading runs this
notebook's definitions: imports, functions, classes, and the module-level values they use
(such as `EPS = 1e-8`), in notebook order. Top-level training loops, plots and prints that
nothing reads are not run, so your experiments cost nothing.

**Arguments are read-only.** No function may modify an array it is given (inputs, weights,
upstream gradients, caches, gradient dicts); compute new arrays instead. The hidden tests
check this.
"""

IMPORTS = """
import numpy as np

from autograder import check
"""

# ---- one step ------------------------------------------------------------------------------

STEP_FORWARD_MD = r"""
## One RNN step: forward

At each step the RNN combines the current input `x` (shape `(N, D)`) with the previous hidden
state `prev_h` (shape `(N, H)`):

$$a = x W_x + h_{prev} W_h + b, \qquad h_{next} = \tanh(a),$$

with `Wx` of shape `(D, H)`, `Wh` of shape `(H, H)` and `b` of shape `(H,)`. The same three
parameters are used at every time step.

The cache is given: it keeps the inputs, the weights and the output `next_h`, which is all
the backward pass needs (see below why `a` itself is not needed).
"""

STEP_FORWARD = '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """Forward pass of one time step of a tanh RNN.

    x: input of shape (N, D).
    prev_h: hidden state of the previous step, shape (N, H).
    Wx: input-to-hidden weights (D, H); Wh: hidden-to-hidden weights (H, H); b: bias (H,).
    Returns (next_h, cache): next_h of shape (N, H) and cache = (x, prev_h, Wx, Wh, next_h).
    The arguments are read-only: do not modify them.
    """
    # BEGIN SOLUTION
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    # END SOLUTION
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache
'''

STEP_BACKWARD_MD = r"""
## One RNN step: backward

Given `dnext_h`, the gradient of the loss with respect to `next_h`, first go back through the
tanh. Its derivative can be written with its own output, $\tanh'(a) = 1 - \tanh(a)^2$, which
is why the cache holds `next_h` rather than `a`:

$$\bar{a} = \bar{h}_{next} \odot (1 - h_{next}^2).$$

From there it is an affine layer with two inputs: `dx = da @ Wx.T`, `dprev_h = da @ Wh.T`,
`dWx = x.T @ da`, `dWh = prev_h.T @ da`, and `db` is `da` summed over the batch. Each gradient
has the shape of its variable. Beware: `Wh` is square, so `da @ Wh` has the right shape too,
and is wrong.
"""

STEP_BACKWARD = '''
def rnn_step_backward(dnext_h, cache):
    """Backward pass of one time step of a tanh RNN.

    dnext_h: upstream gradient with respect to next_h, shape (N, H).
    cache: (x, prev_h, Wx, Wh, next_h) as returned by rnn_step_forward.
    Returns (dx, dprev_h, dWx, dWh, db) with the shapes of x, prev_h, Wx, Wh and b.
    The arguments are read-only: do not modify dnext_h or the cache.
    """
    x, prev_h, Wx, Wh, next_h = cache
    # BEGIN SOLUTION
    da = dnext_h * (1 - next_h ** 2)  # tanh'(a) written with tanh(a) = next_h
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    # END SOLUTION
    return dx, dprev_h, dWx, dWh, db
'''

# ---- whole sequence ------------------------------------------------------------------------

RNN_FORWARD_MD = r"""
## The RNN over a whole sequence: forward

Now unroll the step over `T` time steps. The input `x` has shape `(N, T, D)`: `x[:, t]` is the
input of step `t`. Starting from the initial hidden state `h0` (shape `(N, H)`), run
`rnn_step_forward` at `t = 0, 1, ..., T-1`, each time feeding in the hidden state produced by
the step before, and collect every hidden state in `h` of shape `(N, T, H)`: `h[:, t]` is the
state *after* step `t` (so `h0` itself is not part of `h`).

The cache is yours to design: whatever `rnn_backward` needs, typically the list of the step
caches.
"""

RNN_FORWARD = '''
def rnn_forward(x, h0, Wx, Wh, b):
    """Forward pass of a tanh RNN over a sequence of T steps.

    x: inputs of shape (N, T, D).
    h0: initial hidden state, shape (N, H).
    Wx (D, H), Wh (H, H), b (H,): the parameters, shared by all steps.
    Returns (h, cache): the hidden states h of shape (N, T, H), and whatever rnn_backward needs.
    The arguments are read-only: do not modify them.
    """
    N, T, _ = x.shape
    # BEGIN SOLUTION
    h = np.zeros((N, T, h0.shape[1]))
    cache = []
    prev_h = h0
    for t in range(T):
        prev_h, step_cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        h[:, t] = prev_h
        cache.append(step_cache)
    # END SOLUTION
    return h, cache
'''

RNN_BACKWARD_MD = r"""
## Backprop through time

`dh` has shape `(N, T, H)`: `dh[:, t]` is the gradient of the loss with respect to `h[:, t]`
coming from *outside* the RNN, for instance from the output layer at step `t`. But `h[:, t]`
is also the `prev_h` of step `t + 1`, so its total gradient is

$$\bar{h}_t = \texttt{dh[:, t]} + \texttt{dprev\_h} \text{ returned by the backward of step } t+1.$$

That is why the backward pass has to walk the steps **in reverse**, `t = T-1, ..., 0`,
carrying `dprev_h` from each step to the one before. At the last step nothing comes from the
future (start with zeros), and the `dprev_h` left over after step 0 is the gradient with respect
to the initial state, `dh0`.

The parameters are shared by all steps, so their gradients are **sums** over the steps. `dx`
has shape `(N, T, D)`; `dx[:, t]` comes from step `t`.

Cutting the chain, i.e. not adding `dprev_h` or stopping after a few steps ("truncated"
backprop through time), gives gradients that are cheaper but biased: the network can no longer
learn to remember anything for longer than the cut. The memory task at the end of this
notebook shows the difference.
"""

RNN_BACKWARD = '''
def rnn_backward(dh, cache):
    """Backward pass of a tanh RNN over a whole sequence (backprop through time).

    dh: upstream gradients of every hidden state, shape (N, T, H).
    cache: as returned by rnn_forward.
    Returns (dx, dh0, dWx, dWh, db) with the shapes of x, h0, Wx, Wh and b.
    The arguments are read-only: do not modify dh or the cache.
    """
    N, T, H = dh.shape
    # BEGIN SOLUTION
    x0, _, Wx, Wh, _ = cache[0]
    dx = np.zeros((N, T, x0.shape[1]))
    dWx = np.zeros_like(Wx)
    dWh = np.zeros_like(Wh)
    db = np.zeros(H)
    dprev_h = np.zeros((N, H))  # nothing flows back from beyond the last step
    for t in reversed(range(T)):
        step = rnn_step_backward(dh[:, t] + dprev_h, cache[t])
        dx[:, t], dprev_h, dWx_t, dWh_t, db_t = step
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    dh0 = dprev_h
    # END SOLUTION
    return dx, dh0, dWx, dWh, db
'''

# ---- embedding -----------------------------------------------------------------------------

EMBED_FORWARD_MD = r"""
## Word embeddings: forward

A language model reads words, given as integer indices into a vocabulary of size `V`. An
embedding layer turns each index into a learned vector: `W` has shape `(V, D)`, row `i` is the
vector of word `i`, and for an integer array `x` of shape `(N, T)` the output has shape
`(N, T, D)` with `out[n, t] = W[x[n, t]]`. Numpy's integer-array indexing does this in one
expression.
"""

EMBED_FORWARD = '''
def word_embedding_forward(x, W):
    """Look up the vectors of a batch of index sequences.

    x: integer array of shape (N, T), each entry in 0..V-1.
    W: embedding matrix of shape (V, D).
    Returns (out, cache): out of shape (N, T, D) and cache = (x, W).
    The arguments are read-only: do not modify them.
    """
    # BEGIN SOLUTION
    out = W[x]
    # END SOLUTION
    cache = (x, W)
    return out, cache
'''

EMBED_BACKWARD_MD = r"""
## Word embeddings: backward

Row `i` of `dW` collects `dout[n, t]` from every position where `x[n, t] == i`. A word usually
appears more than once in a batch, so these contributions must **add up**. Careful: with an
index array that repeats entries, `dW[x] += dout` does *not* accumulate (each repeated row is
written, not added, and only one write survives). `np.add.at(dW, x, dout)` does accumulate.
"""

EMBED_BACKWARD = '''
def word_embedding_backward(dout, cache):
    """Gradient of the embedding matrix.

    dout: upstream gradient of shape (N, T, D).
    cache: (x, W) as returned by word_embedding_forward.
    Returns dW of shape (V, D); repeated indices accumulate.
    The arguments are read-only: do not modify dout or the cache.
    """
    x, W = cache
    # BEGIN SOLUTION
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)
    # END SOLUTION
    return dW
'''

# ---- temporal affine -----------------------------------------------------------------------

TAFFINE_FORWARD_MD = r"""
## Temporal affine layer: forward

The output layer maps the hidden state of every step to scores over the vocabulary, with the
same weights at every step: for `x` of shape `(N, T, D)`, `w` of shape `(D, M)` and `b` of
shape `(M,)`, `out[:, t] = x[:, t] @ w + b`, so `out` has shape `(N, T, M)`. No loop is needed:
reshape `x` to `(N * T, D)`, apply the affine map, reshape back.
"""

TAFFINE_FORWARD = '''
def temporal_affine_forward(x, w, b):
    """An affine layer applied at every time step.

    x: inputs of shape (N, T, D); w: weights (D, M); b: biases (M,).
    Returns (out, cache): out of shape (N, T, M) and cache = (x, w, b).
    The arguments are read-only: do not modify them.
    """
    N, T, D = x.shape
    # BEGIN SOLUTION
    out = (x.reshape(N * T, D) @ w + b).reshape(N, T, w.shape[1])
    # END SOLUTION
    cache = (x, w, b)
    return out, cache
'''

TAFFINE_BACKWARD_MD = r"""
## Temporal affine layer: backward

It is the affine backward of homework 1 on the `N * T` rows: `dx` is `dout @ w.T` reshaped to
`(N, T, D)`, while `dw` and `db` sum over **both** the batch and the time axes, since the same
`w` and `b` are used at every step of every sequence.
"""

TAFFINE_BACKWARD = '''
def temporal_affine_backward(dout, cache):
    """Backward pass of temporal_affine_forward.

    dout: upstream gradient of shape (N, T, M).
    cache: (x, w, b) as returned by temporal_affine_forward.
    Returns (dx, dw, db) with the shapes of x, w and b.
    The arguments are read-only: do not modify dout or the cache.
    """
    x, w, b = cache
    N, T, D = x.shape
    M = w.shape[1]
    # BEGIN SOLUTION
    dout2 = dout.reshape(N * T, M)
    dx = (dout2 @ w.T).reshape(N, T, D)
    dw = x.reshape(N * T, D).T @ dout2
    db = dout.sum(axis=(0, 1))
    # END SOLUTION
    return dx, dw, db
'''

# ---- loss ----------------------------------------------------------------------------------

TSOFTMAX_MD = r"""
## Temporal softmax loss

At every step `t` of every sequence `n` there are scores `x[n, t]` over `V` classes and a
target `y[n, t]`. Sequences in a batch have different lengths, so shorter ones are padded, and
padded steps must not count: `mask[n, t]` is 1 (or `True`) where the step counts and 0 (or
`False`) where it is padding. The loss is the masked cross-entropy **summed over time and
averaged over the batch**:

$$\ell = -\frac{1}{N} \sum_{n} \sum_{t} \text{mask}_{n,t} \, \log p_{n,t,y_{n,t}},
\qquad p_{n,t,j} = \frac{e^{x_{n,t,j}}}{\sum_k e^{x_{n,t,k}}}.$$

Note the division by `N`, not by `N * T` and not by the number of unmasked steps. The gradient
is the one of homework 1, `(p - onehot(y)) / N`, multiplied by the mask: masked steps get a
zero gradient. As before, subtract each row's maximum before exponentiating, so that the loss
stays finite for scores of ±1000. (`y` holds a valid class index even at masked steps.)
"""

TSOFTMAX = '''
def temporal_softmax_loss(x, y, mask):
    """Masked softmax cross-entropy, summed over time and averaged over the batch.

    x: scores of shape (N, T, V).
    y: integer targets of shape (N, T), each in 0..V-1.
    mask: shape (N, T), boolean or 0/1; only steps where it is true count.
    Returns (loss, dx): a float and the gradient with respect to x, shape (N, T, V).
    Where mask is all false the loss is 0 and dx is zero.
    Numerically stable: finite and accurate for scores of +-1000.
    The arguments are read-only: do not modify x, y or mask.
    """
    N, T, V = x.shape
    # BEGIN SOLUTION
    x_flat = x.reshape(N * T, V)
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)
    rows = np.arange(N * T)
    shifted = x_flat - x_flat.max(axis=1, keepdims=True)  # same softmax, no overflow
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -np.sum(mask_flat * log_probs[rows, y_flat]) / N
    dx_flat = np.exp(log_probs)
    dx_flat[rows, y_flat] -= 1
    dx_flat *= mask_flat[:, None] / N
    dx = dx_flat.reshape(N, T, V)
    # END SOLUTION
    return loss, dx
'''

# ---- clipping ------------------------------------------------------------------------------

CLIP_MD = r"""
## Gradient clipping

Backprop through time multiplies by `Wh.T` (and by tanh derivatives) once per step, so
gradients can grow very large on long sequences ("exploding gradients"). A standard remedy is
to clip the **global** norm of all gradients together,

$$\|g\| = \sqrt{\textstyle\sum_{\text{name}} \sum_{\text{entries}} g_{\text{name}}^2},$$

and, if it exceeds `max_norm`, to multiply every gradient by `max_norm / ||g||`. The direction
of the overall update is kept, only its length is capped; gradients whose norm is at most
`max_norm` are left as they are. Return a new dict with the same keys and do not change the
arrays you were given.
"""

CLIP = '''
def clip_grad_norm(grads, max_norm):
    """Rescale a dict of gradients so that their global L2 norm is at most max_norm.

    grads: dict of name -> array.
    max_norm: positive float.
    Returns a new dict with the same keys. If the global norm is at most max_norm, the
    gradients are returned unchanged; otherwise every array is multiplied by the same factor
    max_norm / global norm. The arguments are read-only: the input dict and its arrays are
    left unchanged.
    """
    # BEGIN SOLUTION
    total_norm = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
    scale = max_norm / total_norm if total_norm > max_norm else 1.0
    clipped = {name: g * scale for name, g in grads.items()}
    # END SOLUTION
    return clipped
'''

# ---- language model ------------------------------------------------------------------------

LM_MD = r"""
## An RNN language model

A language model predicts every next word of a sequence from the words before it. Its
training data are integer sequences `seqs` of shape `(N, T + 1)`; shorter sentences are padded
at the end with the special index `null_idx`. The model reads `inputs = seqs[:, :-1]` and, at
each step, predicts the word that follows: `targets = seqs[:, 1:]`. A step counts only if its
*target* is a real word, so `mask = targets != null_idx`: the step that reads the last real
word of a padded sentence has padding as its target and does **not** count, while the step
whose target is that last word does.

```
embedding (W_embed) -> RNN (Wx, Wh, b; h0 = 0) -> temporal affine (W_out, b_out)
                    -> temporal softmax loss
```

**Parameters.** `self.params` is a dict with keys `W_embed` `(V, D)`, `Wx` `(D, H)`, `Wh`
`(H, H)`, `b` `(H,)`, `W_out` `(H, V)`, `b_out` `(V,)`, where `V = vocab_size`,
`D = wordvec_dim` and `H = hidden_dim`. Draw them with `rng = np.random.default_rng(seed)`:
`W_embed` from a standard normal scaled by 0.1, each of `Wx`, `Wh` and `W_out` from a standard
normal divided by the square root of its number of rows (its fan-in), and start the biases at
zero.

**Loss.** `loss(seqs)` returns `(loss, grads)` with `grads` keyed like `self.params`. The
initial hidden state is zero. Use your layers: forward through all four, then backward through
them in reverse order. Read the parameters from `self.params` every time `loss` is called.
"""

LM = '''
class RNNLanguageModel:
    """Word embedding -> tanh RNN -> temporal affine -> masked temporal softmax loss.

    vocab_size V, wordvec_dim D, hidden_dim H: the sizes of the model.
    null_idx: the padding index; steps whose target is null_idx do not count.
    seed: seed of np.random.default_rng used for the initial parameters (the same seed gives
    the same parameters).
    loss(seqs) does not modify seqs or self.params.
    """

    def __init__(self, vocab_size, wordvec_dim, hidden_dim, null_idx=0, seed=None):
        self.vocab_size = vocab_size
        self.null_idx = null_idx
        rng = np.random.default_rng(seed)
        V, D, H = vocab_size, wordvec_dim, hidden_dim
        # self.params: W_embed, Wx, Wh, b, W_out, b_out, drawn with rng as described above.
        # BEGIN SOLUTION
        self.params = {
            "W_embed": 0.1 * rng.standard_normal((V, D)),
            "Wx": rng.standard_normal((D, H)) / np.sqrt(D),
            "Wh": rng.standard_normal((H, H)) / np.sqrt(H),
            "b": np.zeros(H),
            "W_out": rng.standard_normal((H, V)) / np.sqrt(H),
            "b_out": np.zeros(V),
        }
        # END SOLUTION

    def loss(self, seqs):
        """seqs: integer array (N, T + 1). Returns (loss, grads), grads keyed like params."""
        p = self.params
        N = seqs.shape[0]
        # Shifted inputs and targets, the mask, then forward and backward through the layers.
        # BEGIN SOLUTION
        inputs = seqs[:, :-1]
        targets = seqs[:, 1:]
        mask = targets != self.null_idx
        h0 = np.zeros((N, p["Wh"].shape[0]))
        emb, embed_cache = word_embedding_forward(inputs, p["W_embed"])
        h, rnn_cache = rnn_forward(emb, h0, p["Wx"], p["Wh"], p["b"])
        scores, out_cache = temporal_affine_forward(h, p["W_out"], p["b_out"])
        loss, dscores = temporal_softmax_loss(scores, targets, mask)
        grads = {}
        dh, grads["W_out"], grads["b_out"] = temporal_affine_backward(dscores, out_cache)
        demb, _, grads["Wx"], grads["Wh"], grads["b"] = rnn_backward(dh, rnn_cache)
        grads["W_embed"] = word_embedding_backward(demb, embed_cache)
        # END SOLUTION
        return loss, grads
'''

# ---- experiments ---------------------------------------------------------------------------

ADAM_MD = r"""
## Experiments

The rest of the notebook trains your layers; nothing below is graded, but the grader runs the
same memory task (see the next section). First, the Adam update rule of homework 1, given:
"""

ADAM = '''
def adam_step(params, grads, state, learning_rate=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step on every entry of a dict of parameters; state starts as {}."""
    state["t"] = state.get("t", 0) + 1
    t = state["t"]
    new_params = {}
    for name, w in params.items():
        m = beta1 * state.get(("m", name), 0.0) + (1 - beta1) * grads[name]
        v = beta2 * state.get(("v", name), 0.0) + (1 - beta2) * grads[name] ** 2
        state[("m", name)], state[("v", name)] = m, v
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        new_params[name] = w - learning_rate * m_hat / (np.sqrt(v_hat) + eps)
    return new_params
'''

RECALL_MD = r"""
### Delayed recall: a memory task

Each sequence is `T = 12` random symbols out of `V = 4`, fed as one-hot vectors. At every step
`t >= 3` the network must output the symbol it saw **3 steps earlier**; the first 3 steps have
nothing to recall and are masked out of the loss. Since every symbol is drawn independently,
the current input says nothing about the answer: the network has to store each symbol in its
hidden state and carry it for 3 steps. To learn to do that, the gradient of the loss at step
`t` has to reach step `t - 3`, through three `dprev_h`s.

The model is built from your layer functions: one-hot inputs `(N, T, 4)` -> `rnn_forward`
with `h0 = 0` -> `temporal_affine_forward` -> `temporal_softmax_loss` with the mask; backward
through `temporal_affine_backward` and `rnn_backward`, then `clip_grad_norm` at 5 and Adam with
learning rate 0.01, for 250 minibatches of 64 fresh sequences. The grader trains exactly like
this from a fixed seed and measures the accuracy at the unmasked steps of 500 new sequences:
it must be at least 0.95. A correct implementation gets there in about 100 minibatches and
ends at 1.00; with backprop through time cut short (try it), accuracy stays far below.
"""

RECALL = '''
VOCAB, STEPS, DELAY, HIDDEN = 4, 12, 3, 32


def recall_batch(rng, n):
    """One-hot inputs, targets (the symbol DELAY steps earlier) and the mask of counted steps."""
    symbols = rng.integers(0, VOCAB, size=(n, STEPS))
    targets = np.zeros_like(symbols)
    targets[:, DELAY:] = symbols[:, :-DELAY]
    mask = np.zeros((n, STEPS), dtype=bool)
    mask[:, DELAY:] = True
    return np.eye(VOCAB)[symbols], targets, mask


rng = np.random.default_rng(0)
params = {"Wx": rng.standard_normal((VOCAB, HIDDEN)) / np.sqrt(VOCAB),
          "Wh": 0.1 * rng.standard_normal((HIDDEN, HIDDEN)) / np.sqrt(HIDDEN),
          "b": np.zeros(HIDDEN),
          "W_out": rng.standard_normal((HIDDEN, VOCAB)) / np.sqrt(HIDDEN),
          "b_out": np.zeros(VOCAB)}
x_test, y_test, mask_test = recall_batch(rng, 500)
state = {}
for iteration in range(1, 251):
    x, y, mask = recall_batch(rng, 64)
    h0 = np.zeros((64, HIDDEN))
    h, rnn_cache = rnn_forward(x, h0, params["Wx"], params["Wh"], params["b"])
    scores, out_cache = temporal_affine_forward(h, params["W_out"], params["b_out"])
    loss, dscores = temporal_softmax_loss(scores, y, mask)
    grads = {}
    dh, grads["W_out"], grads["b_out"] = temporal_affine_backward(dscores, out_cache)
    _, _, grads["Wx"], grads["Wh"], grads["b"] = rnn_backward(dh, rnn_cache)
    params = adam_step(params, clip_grad_norm(grads, 5.0), state)
    if iteration % 50 == 0:
        h0 = np.zeros((500, HIDDEN))
        h, _ = rnn_forward(x_test, h0, params["Wx"], params["Wh"], params["b"])
        predictions = (h @ params["W_out"] + params["b_out"]).argmax(axis=2)
        accuracy = np.mean(predictions[mask_test] == y_test[mask_test])
        print(f"iteration {iteration}: loss {loss:.3f}, recall accuracy {accuracy:.3f}")
'''

LM_DEMO_MD = r"""
### A tiny language model

A toy language: every "sentence" starts with the start word 1 and then counts upwards in
steps of one or of two, modulo 10, from a random number, for a random length; sentences are
padded with `null_idx = 0` (so the words are 2..11 and the vocabulary has 12 entries). After
training, the model continues a sentence from its first two words by always picking the most
likely next word (greedy decoding, written below with your `rnn_step_forward`). The loss
cannot go to zero: the first number and the step size of each sentence are random, which costs
about log 10 + log 2 = 3.0 per sentence however good the model is; the rest is predictable.
"""

LM_DEMO = '''
def toy_sentences(rng, n, max_len=10):
    seqs = np.zeros((n, max_len + 1), dtype=np.int64)  # 0 is the padding
    for row in range(n):
        length = rng.integers(4, max_len + 1)
        start, stride = rng.integers(0, 10), rng.integers(1, 3)
        seqs[row, 0] = 1  # the start word
        seqs[row, 1:length] = 2 + (start + stride * np.arange(length - 1)) % 10
    return seqs


def greedy_continue(model, prefix, steps):
    p = model.params
    h = np.zeros((1, p["Wh"].shape[0]))
    words = list(prefix)
    for position in range(len(prefix) + steps - 1):
        h, _ = rnn_step_forward(p["W_embed"][[words[position]]], h, p["Wx"], p["Wh"], p["b"])
        if position + 1 >= len(words):
            words.append(int(np.argmax(h @ p["W_out"] + p["b_out"])))
    return words


rng = np.random.default_rng(1)
model = RNNLanguageModel(vocab_size=12, wordvec_dim=8, hidden_dim=32, seed=0)
state = {}
for iteration in range(1, 601):
    loss, grads = model.loss(toy_sentences(rng, 32))
    model.params = adam_step(model.params, clip_grad_norm(grads, 5.0), state)
    if iteration % 100 == 0:
        print(f"iteration {iteration}: loss {loss:.3f}")
for prefix in ([1, 5, 6], [1, 3, 5], [1, 10, 11]):
    print(prefix, "->", greedy_continue(model, prefix, 6))
'''

ALL_CHECKS_MD = r"""
## All public checks

Run every public check once more before you submit.
"""

ALL_CHECKS = '''
for name in ["rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
             "word_embedding_forward", "word_embedding_backward", "temporal_affine_forward",
             "temporal_affine_backward", "temporal_softmax_loss", "clip_grad_norm",
             "RNNLanguageModel"]:
    check(name)
'''


def build() -> nbformat.NotebookNode:
    cells = [md(INTRO), code(IMPORTS)]
    sections = [
        ("rnn_step_forward", STEP_FORWARD_MD, STEP_FORWARD),
        ("rnn_step_backward", STEP_BACKWARD_MD, STEP_BACKWARD),
        ("rnn_forward", RNN_FORWARD_MD, RNN_FORWARD),
        ("rnn_backward", RNN_BACKWARD_MD, RNN_BACKWARD),
        ("word_embedding_forward", EMBED_FORWARD_MD, EMBED_FORWARD),
        ("word_embedding_backward", EMBED_BACKWARD_MD, EMBED_BACKWARD),
        ("temporal_affine_forward", TAFFINE_FORWARD_MD, TAFFINE_FORWARD),
        ("temporal_affine_backward", TAFFINE_BACKWARD_MD, TAFFINE_BACKWARD),
        ("temporal_softmax_loss", TSOFTMAX_MD, TSOFTMAX),
        ("clip_grad_norm", CLIP_MD, CLIP),
        ("RNNLanguageModel", LM_MD, LM),
    ]
    for name, text, source in sections:
        cells += [md(text), code(source), code(f'check("{name}")')]
    cells += [md(ADAM_MD), code(ADAM), md(RECALL_MD), code(RECALL), md(LM_DEMO_MD),
              code(LM_DEMO), md(ALL_CHECKS_MD), code(ALL_CHECKS)]
    return assemble_notebook(cells, "hw3")


def main() -> None:
    write_master(build(), OUT)


if __name__ == "__main__":
    main()
