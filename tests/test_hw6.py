"""hw6_regularization: what the generic checks of test_assignments.py do not cover.

The trained threshold must hold on every seed we might use, the public checks must catch the
commonest mistakes before the student submits, a correct solution written differently from the
reference (caches of its own layout, another derivation of the backward passes) must still
earn full marks, and the notebook must state what the hidden tests grade.
"""
from __future__ import annotations

import ast

import nbformat
import numpy as np
import pytest

from autograder.assignment import load_assignment
from autograder.data import disguise, load_digits_split
from autograder.grade import grade_notebook
from autograder.mutants import apply_to_notebook, load_mutants
from autograder.release import make_skeleton
from autograder.proxies import LocalNamespace
from conftest import hidden_tests, mutant_reference

ASSIGNMENT = load_assignment("hw6_regularization")
MASTER = nbformat.read(ASSIGNMENT.master, as_version=4)
MUTANTS = {m.name: m for m in load_mutants(ASSIGNMENT.mutants_file)}
API = ("dropout_forward", "dropout_backward", "batchnorm_forward", "batchnorm_backward",
       "layernorm_forward", "layernorm_backward", "softmax_loss_smoothed",
       "dropout_ridge_penalty", "FullyConnectedNet")


def hidden_tests_module():
    return hidden_tests("hw6_regularization")


def mutated_reference(name):
    return mutant_reference(ASSIGNMENT, MASTER, MUTANTS[name])


def definitions(nb) -> dict:
    """The notebook's imports and top-level definitions, executed (no training, no checks)."""
    namespace: dict = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or "check(" in cell.source:
            continue
        tree = ast.parse(cell.source)
        tree.body = [s for s in tree.body
                     if isinstance(s, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))]
        exec(compile(tree, "notebook", "exec"), namespace)
    return namespace


# ---- the trained check --------------------------------------------------------------------------

def trained_accuracy(module, seed):
    hidden = hidden_tests_module()
    digits = disguise(load_digits_split(), hidden.DISGUISE_SEED + seed, flip="sign")
    return hidden.train_net(LocalNamespace(module), ASSIGNMENT.reference, digits,
                            dict(hidden.TRAIN, seed=seed))


def test_the_reference_clears_the_trained_threshold_on_many_seeds():
    """In process (fast): 12 seeds, more than the audit's 5; the worst stays 1 point above."""
    hidden = hidden_tests_module()
    accuracies = [trained_accuracy(ASSIGNMENT.reference, seed) for seed in range(12)]
    assert min(accuracies) >= hidden.THRESHOLD + 0.01, accuracies


def test_running_statistics_never_stored_fail_the_trained_check():
    """The grader evaluates in test mode with the running statistics the student's net kept."""
    from autograder.checks import CheckFailure

    with pytest.raises(CheckFailure, match="running_mean"):
        trained_accuracy(mutated_reference("bn_running_stats_not_stored"), 0)


def test_the_notebook_states_what_is_graded():
    """The threshold, the recipe and the ridge convention the hidden tests use are the
    notebook's."""
    hidden = hidden_tests_module()
    text = "\n".join(c.source for c in make_skeleton(MASTER).cells if c.cell_type == "markdown")
    assert f"at least {hidden.THRESHOLD:.0%} test accuracy" in text
    for fragment in ("hidden_dims=[64]", 'normalization="batchnorm"', "dropout=0.2",
                     "weight_scale=0.1", "reg=1e-4"):
        assert fragment in text, fragment
    assert hidden.TRAIN["epochs"] == 10 and "10 epochs" in text
    assert "not graded" in text  # the comparison with and without regularization
    assert r"\lVert y - X w \rVert^2" in text and "(no 1/N)" in text
    assert r"\lambda = \frac{p}{1 - p}\,\operatorname{diag}(X^\top X)" in text


def test_the_ridge_penalty_is_the_average_of_the_dropout_objective():
    """The master's closed form against a large Monte-Carlo average (what the notebook claims
    and the hidden test checks)."""
    rng = np.random.default_rng(3)
    X, y, w, p = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal(3), 0.4
    masks = (rng.random((400_000, *X.shape)) >= p) / (1 - p)
    extra = np.mean(np.sum((y - (X * masks) @ w) ** 2, axis=1)) - np.sum((y - X @ w) ** 2)
    lam = ASSIGNMENT.reference.dropout_ridge_penalty(X, p)
    assert abs(np.sum(lam * w ** 2) - extra) < 0.01 * extra


# ---- public checks ------------------------------------------------------------------------------


# ---- a correct solution written differently -----------------------------------------------------

# Every stub of the student notebook, written as another student would: caches of its own
# (dicts, so the grader's contract caches do not fit its backward functions), batchnorm
# backward through the staged computational graph, running statistics updated in place,
# layernorm through the transpose, smoothed loss as a mix of two cross-entropies, einsum.
VARIANT = {
    "dropout_forward": '''
def dropout_forward(x, p, mode, rng):
    """Inverted dropout."""
    if mode != "train":
        return x, {"mode": mode}
    keep = rng.random(x.shape) >= p
    scale = 1.0 / (1.0 - p)
    return np.where(keep, x * scale, 0.0), {"mode": mode, "keep": keep, "scale": scale}
''',
    "dropout_backward": '''
def dropout_backward(dout, cache):
    if cache["mode"] != "train":
        return dout
    return np.where(cache["keep"], dout * cache["scale"], 0.0)
''',
    "batchnorm_forward": '''
def batchnorm_forward(x, gamma, beta, bn_param):
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    N, D = x.shape
    if mode == "test":
        mean = bn_param.get("running_mean", np.zeros(D))
        var = bn_param.get("running_var", np.ones(D))
        return gamma * (x - mean) / np.sqrt(var + eps) + beta, None
    mu = np.sum(x, axis=0) / N
    xc = x - mu
    var = np.sum(xc ** 2, axis=0) / N
    std = np.sqrt(var + eps)
    xn = xc / std
    for key, value, start in (("running_mean", mu, 0.0), ("running_var", var, 1.0)):
        if key in bn_param:
            bn_param[key] *= momentum
            bn_param[key] += (1 - momentum) * value
        else:
            bn_param[key] = momentum * np.full(D, start) + (1 - momentum) * value
    return xn * gamma + beta, {"xc": xc, "std": std, "xn": xn, "gamma": gamma}
''',
    "batchnorm_backward": '''
def batchnorm_backward(dout, cache):
    xc, std, xn, gamma = cache["xc"], cache["std"], cache["xn"], cache["gamma"]
    N = dout.shape[0]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * xn, axis=0)
    dxn = dout * gamma
    dxc = dxn / std
    dstd = -np.sum(dxn * xc / std ** 2, axis=0)
    dvar = 0.5 * dstd / std
    dxc = dxc + 2.0 * xc * dvar / N
    dmu = -np.sum(dxc, axis=0)
    return dxc + dmu / N, dgamma, dbeta
''',
    "layernorm_forward": '''
def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    xt = x.T
    mu = xt.mean(axis=0)
    inv = 1.0 / np.sqrt(((xt - mu) ** 2).mean(axis=0) + eps)
    xn = ((xt - mu) * inv).T
    return xn * gamma + beta, {"xn": xn, "inv": inv, "gamma": gamma}
''',
    "layernorm_backward": '''
def layernorm_backward(dout, cache):
    xn, inv, gamma = cache["xn"], cache["inv"][:, None], cache["gamma"]
    D = dout.shape[1]
    dxn = dout * gamma
    dx = inv / D * (D * dxn - dxn.sum(axis=1, keepdims=True)
                    - xn * (dxn * xn).sum(axis=1, keepdims=True))
    return dx, np.sum(dout * xn, axis=0), np.sum(dout, axis=0)
''',
    "softmax_loss_smoothed": '''
def softmax_loss_smoothed(x, y, epsilon):
    N, C = x.shape
    top = x.max(axis=1, keepdims=True)
    logp = x - (top + np.log(np.exp(x - top).sum(axis=1, keepdims=True)))
    rows = np.arange(N)
    loss = np.mean(-(1 - epsilon) * logp[rows, y] - epsilon * logp.mean(axis=1))
    grad = np.exp(logp) - epsilon / C
    grad[rows, y] -= 1 - epsilon
    return float(loss), grad / N
''',
    "dropout_ridge_penalty": '''
def dropout_ridge_penalty(X, p):
    return p / (1 - p) * np.einsum("ij,ij->j", X, X)
''',
    "FullyConnectedNet": '''
class FullyConnectedNet:
    def __init__(self, hidden_dims, input_dim=64, num_classes=10, normalization=None,
                 dropout=0.0, weight_scale=1e-2, reg=0.0, dtype=np.float64, seed=None):
        self.normalization = normalization
        self.dropout = dropout
        self.num_layers = len(hidden_dims) + 1
        self.reg = reg
        self.dtype = dtype
        self.params = {}
        self.bn_params = [{} for _ in hidden_dims]
        rng, self.dropout_rng = np.random.default_rng(seed).spawn(2)
        sizes = [input_dim] + list(hidden_dims) + [num_classes]
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            self.params["W%d" % layer] = weight_scale * rng.standard_normal((fan_in, fan_out))
            self.params["b%d" % layer] = np.zeros(fan_out)
        if normalization:
            for layer, size in enumerate(hidden_dims, start=1):
                self.params["gamma%d" % layer] = np.ones(size)
                self.params["beta%d" % layer] = np.zeros(size)
        self.params = {name: p.astype(dtype) for name, p in self.params.items()}

    def _norm(self, layer):
        return {"batchnorm": (batchnorm_forward, batchnorm_backward),
                "layernorm": (layernorm_forward, layernorm_backward)}.get(self.normalization)

    def loss(self, X, y=None):
        X = X.astype(self.dtype)
        mode = "test" if y is None else "train"
        for bn_param in self.bn_params:
            bn_param["mode"] = mode
        caches = {}
        h = X
        for layer in range(1, self.num_layers):
            h, caches["affine", layer] = affine_forward(h, self.params["W%d" % layer],
                                                        self.params["b%d" % layer])
            if self._norm(layer):
                h, caches["norm", layer] = self._norm(layer)[0](
                    h, self.params["gamma%d" % layer], self.params["beta%d" % layer],
                    self.bn_params[layer - 1])
            h, caches["relu", layer] = relu_forward(h)
            if self.dropout:
                h, caches["drop", layer] = dropout_forward(h, self.dropout, mode,
                                                           self.dropout_rng)
        last = self.num_layers
        scores, caches["affine", last] = affine_forward(h, self.params["W%d" % last],
                                                        self.params["b%d" % last])
        if y is None:
            return scores
        data_loss, dh = softmax_loss(scores, y)
        weights = [self.params["W%d" % layer] for layer in range(1, last + 1)]
        loss = data_loss + 0.5 * self.reg * sum(np.sum(W ** 2) for W in weights)
        grads = {}
        for layer in range(last, 0, -1):
            if layer < last:
                if self.dropout:
                    dh = dropout_backward(dh, caches["drop", layer])
                dh = relu_backward(dh, caches["relu", layer])
                if self._norm(layer):
                    dh, grads["gamma%d" % layer], grads["beta%d" % layer] = \\
                        self._norm(layer)[1](dh, caches["norm", layer])
            dh, dW, grads["b%d" % layer] = affine_backward(dh, caches["affine", layer])
            grads["W%d" % layer] = dW + self.reg * self.params["W%d" % layer]
        return loss, grads
''',
}


def variant_notebook() -> nbformat.NotebookNode:
    """The student notebook with every stub's cell replaced by the variant's definition."""
    nb = make_skeleton(MASTER)
    for cell in nb.cells:
        if cell.cell_type != "code" or "NotImplementedError" not in cell.source:
            continue
        names = [s.name for s in ast.parse(cell.source).body
                 if isinstance(s, (ast.FunctionDef, ast.ClassDef))]
        assert len(names) == 1 and names[0] in VARIANT, names
        cell.source = VARIANT[names[0]].strip("\n")
    assert "NotImplementedError" not in "\n".join(c.source for c in nb.cells
                                                   if c.cell_type == "code")
    return nb


def test_the_variant_is_right_in_process():
    """The variant against the reference, on what the hidden tests need not try exhaustively."""
    variant, reference = definitions(variant_notebook()), ASSIGNMENT.reference
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    gamma, beta = rng.uniform(0.5, 1.5, 4), rng.standard_normal(4)
    for name, param in (("batchnorm", {"mode": "train"}), ("layernorm", {})):
        got_param, want_param = dict(param), dict(param)
        got, cache = variant[f"{name}_forward"](x, gamma, beta, got_param)
        want, ref_cache = getattr(reference, f"{name}_forward")(x, gamma, beta, want_param)
        np.testing.assert_allclose(got, want, rtol=1e-10)
        for a, b in zip(variant[f"{name}_backward"](dout, cache),
                        getattr(reference, f"{name}_backward")(dout, ref_cache), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
        if name == "batchnorm":
            for key in ("running_mean", "running_var"):
                np.testing.assert_allclose(got_param[key], want_param[key], rtol=1e-12)
    for epsilon in (0.0, 0.3):
        got = variant["softmax_loss_smoothed"](1000 * x, np.arange(5) % 4, epsilon)
        want = reference.softmax_loss_smoothed(1000 * x, np.arange(5) % 4, epsilon)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-15)


def test_a_correct_solution_written_differently_earns_full_marks(tmp_path):
    path = tmp_path / "variant.ipynb"
    nbformat.write(variant_notebook(), path)
    run = grade_notebook(path, ASSIGNMENT)
    lost = [f"{t.name}: {t.score:g}/{t.max_score:g}\n{t.output}" for t in run.results.tests
            if t.score != t.max_score]
    assert not lost, "\n\n".join(lost)
    assert run.results.score == run.results.max_score


# ---- feedback -----------------------------------------------------------------------------------

def test_a_known_mistake_is_named_and_costs_only_its_own_function(tmp_path):
    """Momentum on the wrong side of the running averages: the running-statistics test names
    it, and no test of another function (the net's included: it is judged with the student's
    own batchnorm_forward too) loses a point."""
    nb = apply_to_notebook(MASTER, MUTANTS["bn_momentum_on_the_wrong_side"])
    path = tmp_path / "momentum.ipynb"
    nbformat.write(nb, path)
    run = grade_notebook(path, ASSIGNMENT)
    lost = {t.name: t for t in run.results.tests if t.score < t.max_score}
    assert lost
    for name in lost:
        outcome = next(o for o in run.outcomes if o.name == name)
        assert "batchnorm_forward" in outcome.tags, (name, outcome.tags)
    statistics = next(t for name, t in lost.items() if "running_mean and running_var" in name)
    assert ("This looks like a known mistake: the running averages weigh the new batch "
            "statistics by momentum") in statistics.output
