"""Write solutions/hw1_backprop.ipynb, the instructor's master notebook for hw1_backprop.

The student notebook is generated from the master by `dlgrade release hw1_backprop`, which
replaces every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block by a NotImplementedError.
Edit this script, not the notebook, then run it:

    python solutions/_build_hw1_master.py

If reference code changes, check that every ``old`` text in
assignments/hw1_backprop/mutants.py still occurs in the notebook.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from autograder.release import assemble_notebook, write_master
from autograder.release import code_cell as code
from autograder.release import markdown_cell as md

OUT = Path(__file__).resolve().parent / "hw1_backprop.ipynb"


INTRO = r"""
# Homework 1: backprop by hand

In this homework you write the forward and backward passes of a small fully connected
network yourself, then train it with four update rules on the 8x8 handwritten digits.

You will implement:

- `affine_forward`, `affine_backward`: a fully connected layer
- `relu_forward`, `relu_backward`: the ReLU nonlinearity
- `softmax_loss`: the softmax cross-entropy loss and its gradient
- `FullyConnectedNet`: a network of any depth built from the layers above
- `sgd`, `sgd_momentum`, `rmsprop`, `adam`: update rules

**Only numpy is allowed.** The point is to derive every gradient yourself: importing
`torch`, `jax`, `autograd` or any other automatic-differentiation library is refused by the
grader.

Every layer follows the same convention. A forward function returns its output and a
`cache` of whatever the backward pass needs; the backward function takes the upstream
gradient `dout` (the gradient of the loss with respect to the layer's output, written
$\bar{y} = \partial \ell / \partial y$ in the notes) together with that cache, and returns
the gradient with respect to each input. Everything is float64.

**Arguments are read-only.** No function modifies an array it is given (`x`, `w`, `b`,
`dout`, caches); compute new ones. One exception: an update rule may update `w` in place,
provided it returns the updated array as `next_w`; it never modifies `dw`. The grader checks
this rule only for a function that computes something (not zeros, a constant or its input).

In each function, replace the `raise NotImplementedError` line under `# TODO: your code here`
with your code. After each function, `check("name")` runs a few public checks: small
hand-computed cases and comparisons against numerical gradients. Passing them is a good
sign, not a guarantee: the grader runs more thorough hidden tests. Grading runs this
notebook's definitions: imports, functions, classes, and the module-level values they use
(such as `EPS = 1e-8`), in notebook order. Top-level training loops, plots and prints that
nothing reads are not run, so your experiments cost nothing.
"""

IMPORTS = """
import numpy as np

from autograder import check
"""

# ---- affine ------------------------------------------------------------------------------

AFFINE_FORWARD_MD = r"""
## Affine layer: forward

An affine (fully connected) layer maps each example to `out = x @ w + b`. The input may
have any shape `(N, d_1, ..., d_k)`, for instance a batch of images; each example is first
flattened into a row of length `D = d_1 * ... * d_k`, giving a matrix of shape `(N, D)`.
With `w` of shape `(D, M)` and `b` of shape `(M,)` the output has shape `(N, M)`; `b` is
broadcast over the batch.

Keep `(x, w, b)` in the cache: the backward pass needs all three.
"""

AFFINE_FORWARD = '''
def affine_forward(x, w, b):
    """Forward pass of an affine layer.

    x: input of shape (N, d_1, ..., d_k); each row is flattened to length D.
    w: weights of shape (D, M).
    b: biases of shape (M,).
    Returns (out, cache): out of shape (N, M) and cache = (x, w, b).
    Arguments are read-only: x, w and b are not modified; compute new arrays.
    """
    # BEGIN SOLUTION
    out = x.reshape(x.shape[0], -1) @ w + b
    # END SOLUTION
    cache = (x, w, b)
    return out, cache
'''

AFFINE_BACKWARD_MD = r"""
## Affine layer: backward

Given `dout` of shape `(N, M)`, the gradient of the loss with respect to `out`, and writing
`x2` for `x` flattened to `(N, D)`:

- `dx2 = dout @ w.T`, shape `(N, D)`, reshaped back to the original shape of `x`;
- `dw = x2.T @ dout`, shape `(D, M)`: every example contributes, so the products are summed
  over the batch;
- `db = dout` summed over the batch, shape `(M,)`, because `b` was added to every row.

A quick sanity check: each gradient has exactly the shape of the variable it belongs to.
"""

AFFINE_BACKWARD = '''
def affine_backward(dout, cache):
    """Backward pass of an affine layer.

    dout: upstream gradient of shape (N, M).
    cache: (x, w, b) as returned by affine_forward.
    Returns (dx, dw, db) with the shapes of x, w and b.
    Arguments are read-only: dout and the cache are not modified; compute new arrays.
    """
    x, w, b = cache
    # BEGIN SOLUTION
    x2 = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape)
    dw = x2.T @ dout
    db = dout.sum(axis=0)
    # END SOLUTION
    return dx, dw, db
'''

# ---- relu --------------------------------------------------------------------------------

RELU_FORWARD_MD = r"""
## ReLU: forward

The rectified linear unit is applied elementwise: `out = max(0, x)`. The input may have any
shape, and the output has the same shape. Do not modify `x` in place: the caller may still
need it.
"""

RELU_FORWARD = '''
def relu_forward(x):
    """Forward pass of a ReLU, elementwise on an array of any shape.

    Returns (out, cache): out = max(0, x) with the shape of x, and cache = x.
    Arguments are read-only: x is not modified; compute a new array.
    """
    # BEGIN SOLUTION
    out = np.maximum(0, x)
    # END SOLUTION
    cache = x
    return out, cache
'''

RELU_BACKWARD_MD = r"""
## ReLU: backward

The derivative of `max(0, x)` is 1 where `x > 0` and 0 where `x < 0`, so the upstream
gradient flows through unchanged where the input was positive and is blocked elsewhere:
`dx = dout * (x > 0)`. At exactly `x = 0` the function has a kink; either 0 or 1 is an
acceptable (sub)gradient there.
"""

RELU_BACKWARD = '''
def relu_backward(dout, cache):
    """Backward pass of a ReLU.

    dout: upstream gradient, any shape.
    cache: the input x of relu_forward, same shape as dout.
    Returns dx, the gradient with respect to x.
    Arguments are read-only: dout and the cache are not modified; compute a new array.
    """
    x = cache
    # BEGIN SOLUTION
    dx = dout * (x > 0)
    # END SOLUTION
    return dx
'''

# ---- softmax -----------------------------------------------------------------------------

SOFTMAX_MD = r"""
## Softmax cross-entropy loss

For scores `x` of shape `(N, C)` and integer labels `y` of shape `(N,)` with `0 <= y[i] < C`,
the softmax turns each row into probabilities
$p_{ij} = e^{x_{ij}} / \sum_k e^{x_{ik}}$, and the loss is the average negative log
probability of the true class:

$$\ell = -\frac{1}{N} \sum_i \log p_{i, y_i}.$$

Its gradient is $\partial \ell / \partial x_{ij} = (p_{ij} - [j = y_i]) / N$: the predicted
probabilities, minus one at the true class, divided by the batch size.

**Numerical stability.** `np.exp(1000)` overflows to `inf`. Subtracting a constant from a
row does not change its softmax, so subtract each row's maximum first: the largest exponent
is then 0. Compute the log-probabilities directly (log-sum-exp) rather than taking the log of
probabilities that may have underflowed to 0. Your loss and gradient must be finite for
logits of ±1000.
"""

SOFTMAX = '''
def softmax_loss(x, y):
    """Softmax cross-entropy loss, averaged over the batch, and its gradient.

    x: scores of shape (N, C).
    y: integer labels of shape (N,), 0 <= y[i] < C.
    Returns (loss, dx): a float and the gradient of the loss with respect to x, shape (N, C).
    Numerically stable: finite and accurate for logits of +-1000.
    Arguments are read-only: x and y are not modified; compute new arrays.
    """
    # BEGIN SOLUTION
    N = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)  # same softmax, and exp() can no longer overflow
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(N), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1
    dx /= N
    # END SOLUTION
    return loss, dx
'''

# ---- network -----------------------------------------------------------------------------

NET_MD = r"""
## A fully connected network

`FullyConnectedNet(hidden_dims, ...)` has `L = len(hidden_dims) + 1` affine layers; every
layer but the last is followed by a ReLU, and the last layer's outputs are the class scores:

```
{affine - relu} x (L - 1) - affine - softmax
```

**Parameters.** `self.params` is a dict with keys `W1, b1, ..., WL, bL`. Layer `i` maps
dimension `dims[i-1]` to `dims[i]`, where `dims = [input_dim, *hidden_dims, num_classes]`.
Draw every weight from a normal distribution with mean 0 and standard deviation
`weight_scale`, using `rng.normal`, where `rng = np.random.default_rng(seed)` (so the same
seed gives the same network); start every bias at zero.

**Loss.** `loss(X)` returns the scores, shape `(N, num_classes)`. `loss(X, y)` returns
`(loss, grads)`, where `grads` has the same keys as `self.params`. Use the layer functions you
wrote above: run the forward pass keeping every cache, compute `softmax_loss`, then walk the
layers backwards. L2 regularisation adds `0.5 * reg * sum(W**2)` to the loss for every weight
matrix (biases are not regularised), so each `grads["Wi"]` gains `reg * Wi`; the factor 0.5
is there to make that gradient tidy.

Read the parameters from `self.params` every time `loss` is called: training code replaces
them between calls.
"""

NET = '''
class FullyConnectedNet:
    """{affine - relu} x (L - 1) - affine - softmax, with L2 regularisation of the weights.

    hidden_dims: list of hidden layer sizes (L - 1 of them).
    input_dim, num_classes: sizes of the input and of the output scores.
    weight_scale: standard deviation of the initial weights; biases start at zero.
    reg: strength of the L2 penalty 0.5 * reg * sum of squared weights.
    dtype: dtype of the parameters and of the computation.
    seed: seed of np.random.default_rng used for the initial weights.
    """

    def __init__(self, hidden_dims, input_dim=64, num_classes=10, weight_scale=1e-2, reg=0.0,
                 dtype=np.float64, seed=None):
        self.num_layers = len(hidden_dims) + 1
        self.reg = reg
        self.dtype = dtype
        self.params = {}
        rng = np.random.default_rng(seed)
        # W1, b1, ..., WL, bL: weights ~ N(0, weight_scale^2) drawn with rng, biases zero.
        # BEGIN SOLUTION
        dims = [input_dim, *hidden_dims, num_classes]
        for i in range(1, self.num_layers + 1):
            self.params[f"W{i}"] = rng.normal(0.0, weight_scale, (dims[i - 1], dims[i]))
            self.params[f"b{i}"] = np.zeros(dims[i])
        # END SOLUTION
        self.params = {name: p.astype(dtype) for name, p in self.params.items()}

    def loss(self, X, y=None):
        """Scores (N, num_classes) if y is None, else (loss, grads) with grads keyed like params."""
        X = X.astype(self.dtype)
        L = self.num_layers
        # Forward pass to the scores, keeping every layer's cache for the backward pass.
        # BEGIN SOLUTION
        caches = []
        h = X
        for i in range(1, L):
            h, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            h, relu_cache = relu_forward(h)
            caches.append((affine_cache, relu_cache))
        scores, last_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        # END SOLUTION
        if y is None:
            return scores

        # Loss and gradients: softmax_loss, the layers in reverse order, then the L2 term.
        # BEGIN SOLUTION
        loss, dscores = softmax_loss(scores, y)
        grads = {}
        dh, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, last_cache)
        for i in range(L - 1, 0, -1):
            affine_cache, relu_cache = caches[i - 1]
            dh = relu_backward(dh, relu_cache)
            dh, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(dh, affine_cache)
        for i in range(1, L + 1):
            W = self.params[f"W{i}"]
            loss += 0.5 * self.reg * np.sum(W * W)
            grads[f"W{i}"] += self.reg * W
        # END SOLUTION
        return loss, grads
'''

# ---- optimizers --------------------------------------------------------------------------

OPTIMIZERS_MD = r"""
## Update rules

Every update rule has the same interface, `(w, dw, config) -> (next_w, config)`: `w` is a
parameter array, `dw` the gradient of the loss with respect to it, and `config` a dict with
the hyperparameters and any state the rule keeps between steps (one dict per parameter).
`config=None` means "use the defaults"; the code filling those in is given. Store the state
the next step needs back into `config`.

**Read-only gradient.** An update rule may update `w` in place, provided it returns the
updated array as `next_w`; it never modifies `dw`. Returning a new array for `next_w` is just
as good.
"""

SGD_MD = r"""
### SGD

Take a step against the gradient: `next_w = w - learning_rate * dw`.
"""

SGD = '''
def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent.

    config: learning_rate (default 1e-2).
    Returns (next_w, config). w may be updated in place, provided it is returned as next_w;
    dw is read-only (never modified).
    """
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    # BEGIN SOLUTION
    next_w = w - config["learning_rate"] * dw
    # END SOLUTION
    return next_w, config
'''

MOMENTUM_MD = r"""
### SGD with momentum

Keep a velocity `v`, a running sum of past steps that decays by `momentum` each step, and move
along it:

```
v = momentum * v - learning_rate * dw
next_w = w + v
```

The velocity starts at zero and lives in `config["velocity"]`.
"""

MOMENTUM = '''
def sgd_momentum(w, dw, config=None):
    """Stochastic gradient descent with momentum.

    config: learning_rate (default 1e-2), momentum (default 0.9),
            velocity (same shape as w, starts at zero).
    Returns (next_w, config). w may be updated in place, provided it is returned as next_w;
    dw is read-only (never modified).
    """
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    config.setdefault("velocity", np.zeros_like(w))
    # BEGIN SOLUTION
    v = config["momentum"] * config["velocity"] - config["learning_rate"] * dw
    next_w = w + v
    config["velocity"] = v
    # END SOLUTION
    return next_w, config
'''

RMSPROP_MD = r"""
### RMSProp

Divide each coordinate's step by a running root-mean-square of its recent gradients, so that
coordinates with large gradients take smaller steps:

```
cache = decay_rate * cache + (1 - decay_rate) * dw**2
next_w = w - learning_rate * dw / (sqrt(cache) + epsilon)
```

`cache` starts at zero and lives in `config["cache"]`; `epsilon` only guards the division.
"""

RMSPROP = '''
def rmsprop(w, dw, config=None):
    """RMSProp: per-coordinate steps scaled by a moving average of squared gradients.

    config: learning_rate (default 1e-2), decay_rate (default 0.99), epsilon (default 1e-8),
            cache (same shape as w, starts at zero).
    Returns (next_w, config). w may be updated in place, provided it is returned as next_w;
    dw is read-only (never modified).
    """
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("cache", np.zeros_like(w))
    # BEGIN SOLUTION
    decay = config["decay_rate"]
    cache = decay * config["cache"] + (1 - decay) * dw ** 2
    next_w = w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"])
    config["cache"] = cache
    # END SOLUTION
    return next_w, config
'''

ADAM_MD = r"""
### Adam

Adam keeps moving averages of the gradient (`m`, the first moment) and of its square (`v`,
the second moment), and steps along `m` scaled like RMSProp. Both averages start at zero, so
early on they are biased towards zero; dividing by `1 - beta**t` corrects that. The step
counter `t` is incremented **before** it is used, so the first step has `t = 1`:

```
t = t + 1
m = beta1 * m + (1 - beta1) * dw
v = beta2 * v + (1 - beta2) * dw**2
m_hat = m / (1 - beta1**t)
v_hat = v / (1 - beta2**t)
next_w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)
```

Store `m`, `v` and `t` back into `config`. A useful check: on the first step `m_hat = dw` and
`v_hat = dw**2`, so every coordinate moves by almost exactly `learning_rate`.
"""

ADAM = '''
def adam(w, dw, config=None):
    """Adam: bias-corrected moving averages of the gradient and of its square.

    config: learning_rate (default 1e-3), beta1 (default 0.9), beta2 (default 0.999),
            epsilon (default 1e-8), m and v (same shape as w, start at zero),
            t (number of steps taken, starts at 0).
    Returns (next_w, config). w may be updated in place, provided it is returned as next_w;
    dw is read-only (never modified).
    """
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    config.setdefault("t", 0)
    # BEGIN SOLUTION
    beta1, beta2 = config["beta1"], config["beta2"]
    config["t"] += 1
    config["m"] = beta1 * config["m"] + (1 - beta1) * dw
    config["v"] = beta2 * config["v"] + (1 - beta2) * dw ** 2
    m_hat = config["m"] / (1 - beta1 ** config["t"])
    v_hat = config["v"] / (1 - beta2 ** config["t"])
    next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
    # END SOLUTION
    return next_w, config
'''

# ---- training ----------------------------------------------------------------------------

TRAIN_MD = r"""
## Training on digits

Everything together: a network with one hidden layer of 64 units, trained with your `adam`
on scikit-learn's 8x8 digits (1797 images, pixel values scaled to [0, 1]). Each epoch visits
the training examples in a fresh random order, in minibatches of 64. The grader trains in the
same way and expects at least 95% test accuracy; a correct implementation gets about 97%
within a second or two. Try the other update rules too: how do they compare?

How the grader measures it: it trains your net on a disguised copy of the digits (the pixels
shuffled and half of them negated, the labels renamed; a fully connected net learns that copy
exactly as well), then computes the test accuracy itself, with the contract's forward pass and
your trained `params`, on test images your code is never given. So only what your net learned
counts.
"""

TRAIN = '''
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

digits = load_digits()
X_train, X_test, y_train, y_test = train_test_split(
    digits.data / 16.0, digits.target, test_size=0.2, random_state=0, stratify=digits.target)

net = FullyConnectedNet([64], input_dim=64, num_classes=10, weight_scale=0.1, reg=1e-4, seed=0)
configs = {name: {"learning_rate": 5e-3} for name in net.params}
rng = np.random.default_rng(0)
for epoch in range(15):
    order = rng.permutation(len(X_train))
    for start in range(0, len(order), 64):
        batch = order[start:start + 64]
        loss, grads = net.loss(X_train[batch], y_train[batch])
        for name in net.params:
            net.params[name], configs[name] = adam(net.params[name], grads[name], configs[name])
    train_acc = np.mean(net.loss(X_train).argmax(axis=1) == y_train)
    print(f"epoch {epoch + 1:2d}: last batch loss {loss:.3f}, train accuracy {train_acc:.3f}")

test_acc = np.mean(net.loss(X_test).argmax(axis=1) == y_test)
print(f"test accuracy: {test_acc:.3f}")
'''

ALL_CHECKS_MD = r"""
## All public checks

Run every public check once more before you submit.
"""

ALL_CHECKS = '''
for name in ["affine_forward", "affine_backward", "relu_forward", "relu_backward",
             "softmax_loss", "FullyConnectedNet", "sgd", "sgd_momentum", "rmsprop", "adam"]:
    check(name)
'''


def build() -> nbformat.NotebookNode:
    cells = [md(INTRO), code(IMPORTS)]
    sections = [
        ("affine_forward", AFFINE_FORWARD_MD, AFFINE_FORWARD),
        ("affine_backward", AFFINE_BACKWARD_MD, AFFINE_BACKWARD),
        ("relu_forward", RELU_FORWARD_MD, RELU_FORWARD),
        ("relu_backward", RELU_BACKWARD_MD, RELU_BACKWARD),
        ("softmax_loss", SOFTMAX_MD, SOFTMAX),
        ("FullyConnectedNet", NET_MD, NET),
        ("sgd", OPTIMIZERS_MD + "\n" + SGD_MD, SGD),
        ("sgd_momentum", MOMENTUM_MD, MOMENTUM),
        ("rmsprop", RMSPROP_MD, RMSPROP),
        ("adam", ADAM_MD, ADAM),
    ]
    for name, text, source in sections:
        cells += [md(text), code(source), code(f'check("{name}")')]
    cells += [md(TRAIN_MD), code(TRAIN), md(ALL_CHECKS_MD), code(ALL_CHECKS)]
    return assemble_notebook(cells, "hw1")


def main() -> None:
    write_master(build(), OUT)


if __name__ == "__main__":
    main()
