"""hw3_bptt: what the generic checks of test_assignments.py do not cover.

The memory task must separate full from truncated backprop through time on every seed we
might use, public checks must catch the commonest mistakes before the student submits, and a
correct solution written differently from the reference must still earn full marks.
"""
from __future__ import annotations


import nbformat
import pytest

from autograder.assignment import load_assignment
from autograder.grade import grade_notebook
from autograder.mutants import load_mutants
from autograder.proxies import LocalNamespace
from conftest import hidden_tests, make_notebook, mutant_reference

ASSIGNMENT = load_assignment("hw3_bptt")
MASTER = nbformat.read(ASSIGNMENT.master, as_version=4)
MUTANTS = {m.name: m for m in load_mutants(ASSIGNMENT.mutants_file)}


def hidden_tests_module():
    return hidden_tests("hw3_bptt")


def mutated_reference(name):
    return mutant_reference(ASSIGNMENT, MASTER, MUTANTS[name])


# ---- the training task ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_recall_task_separates_full_from_truncated_bptt(seed):
    """In process (fast): the reference passes and every cut of the chain fails, per seed."""
    hidden = hidden_tests_module()
    recipe = {**hidden.RECALL, "seed": seed}
    assert hidden.train_recall(LocalNamespace(ASSIGNMENT.reference), recipe) >= 0.99
    for name in ("bptt_no_dprev", "bptt_truncated_2_steps", "bptt_truncated_chunks_of_3"):
        accuracy = hidden.train_recall(LocalNamespace(mutated_reference(name)), recipe)
        assert accuracy < 0.8, (name, seed, accuracy)


# ---- public checks -------------------------------------------------------------------------------


# ---- a different but correct solution ----------------------------------------------------------

ALTERNATIVE = '''
import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    a = np.dot(x, Wx) + np.dot(prev_h, Wh) + b
    out = np.tanh(a)
    return out, {"x": x, "h": prev_h, "Wx": Wx, "Wh": Wh, "a": a}


def rnn_step_backward(dnext_h, cache):
    da = dnext_h / np.cosh(cache["a"]) ** 2
    return (da @ cache["Wx"].T, da @ cache["Wh"].T, cache["x"].T @ da, cache["h"].T @ da,
            np.sum(da, axis=0))


def rnn_forward(x, h0, Wx, Wh, b):
    hs, caches, h = [], [], h0
    for t in range(x.shape[1]):
        h, c = rnn_step_forward(x[:, t, :], h, Wx, Wh, b)
        hs.append(h)
        caches.append(c)
    return np.stack(hs, axis=1), {"steps": caches, "D": x.shape[2]}


def rnn_backward(dh, cache):
    steps = cache["steps"]
    grads = [np.zeros_like(steps[0]["Wx"]), np.zeros_like(steps[0]["Wh"]),
             np.zeros(dh.shape[2])]
    dxs = [None] * dh.shape[1]
    carry = 0.0
    for t in range(dh.shape[1] - 1, -1, -1):
        dxs[t], carry, *rest = rnn_step_backward(dh[:, t, :] + carry, steps[t])
        grads = [g + r for g, r in zip(grads, rest)]
    dh0 = carry if isinstance(carry, np.ndarray) else np.zeros((dh.shape[0], dh.shape[2]))
    return (np.stack(dxs, axis=1), dh0, *grads)


def word_embedding_forward(x, W):
    return np.take(W, x, axis=0), (x, W.shape)


def word_embedding_backward(dout, cache):
    x, shape = cache
    dW = np.zeros(shape)
    for idx, grad in zip(x.ravel(), dout.reshape(-1, shape[1])):
        dW[idx] += grad
    return dW


def temporal_affine_forward(x, w, b):
    return np.einsum("ntd,dm->ntm", x, w) + b, (x, w)


def temporal_affine_backward(dout, cache):
    x, w = cache
    return (np.einsum("ntm,dm->ntd", dout, w), np.einsum("ntd,ntm->dm", x, dout),
            dout.sum(axis=(0, 1)))


def temporal_softmax_loss(x, y, mask):
    N = x.shape[0]
    z = x - np.max(x, axis=2, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=2, keepdims=True))
    onehot = np.eye(x.shape[2])[y]
    m = np.asarray(mask, dtype=float)[:, :, None]
    loss = -np.sum(onehot * logp * m) / N
    return float(loss), (np.exp(logp) - onehot) * m / N


def clip_grad_norm(grads, max_norm):
    norm = np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    if norm <= max_norm:
        return {k: g.copy() for k, g in grads.items()}
    return {k: g * (max_norm / norm) for k, g in grads.items()}


class RNNLanguageModel:
    def __init__(self, vocab_size, wordvec_dim, hidden_dim, null_idx=0, seed=None):
        rng = np.random.default_rng(seed)
        V, D, H = vocab_size, wordvec_dim, hidden_dim
        self.null_idx = null_idx
        self.params = {"W_embed": rng.normal(size=(V, D)) / 100,
                       "Wx": rng.normal(size=(D, H)) / np.sqrt(D),
                       "Wh": rng.normal(size=(H, H)) / np.sqrt(H), "b": np.zeros(H),
                       "W_out": rng.normal(size=(H, V)) / np.sqrt(H), "b_out": np.zeros(V)}

    def loss(self, seqs):
        p = self.params
        x_in, y = seqs[:, :-1], seqs[:, 1:]
        emb, c1 = word_embedding_forward(x_in, p["W_embed"])
        h, c2 = rnn_forward(emb, np.zeros((seqs.shape[0], p["Wh"].shape[0])), p["Wx"], p["Wh"],
                            p["b"])
        scores, c3 = temporal_affine_forward(h, p["W_out"], p["b_out"])
        loss, ds = temporal_softmax_loss(scores, y, (y != self.null_idx).astype(float))
        dh, dWo, dbo = temporal_affine_backward(ds, c3)
        demb, _, dWx, dWh, db = rnn_backward(dh, c2)
        return loss, {"W_embed": word_embedding_backward(demb, c1), "Wx": dWx, "Wh": dWh,
                      "b": db, "W_out": dWo, "b_out": dbo}
'''


def test_a_different_correct_solution_gets_full_marks(tmp_path):
    """Dict caches, other formulas, float masks, a Python loop for the embedding gradient."""
    path = tmp_path / "alternative.ipynb"
    nbformat.write(make_notebook(ALTERNATIVE), path)
    results = grade_notebook(path, ASSIGNMENT).results
    failed = [(t.name, t.output) for t in results.tests if t.status != "passed"]
    assert not failed
    assert results.score == results.max_score
