"""Trained checks measure learning: three ways of passing one without training earn nothing.

Each trick is the master notebook plus one cell that replaces what training should have
produced with something that reads the answers: a digits net that looks the test rows up in
scikit-learn's bundled copy (or was fitted to it before training began), a VAE whose encode
remembers every image it is shown so that decode can give it back, and a generator that returns
what the grader's own data sampler draws. Each earned the full 10 points of its trained check
before the checks trained on disguised data, evaluated reloaded or trusted copies of the
trained model, and drew samples from the generator's parameters. Only the trained test runs.
"""
from __future__ import annotations

import nbformat
import pytest

from autograder.assignment import load_assignment
from autograder.grade import grade_notebook

# hw1: scores looked up in the bundled digits; training steps change nothing.
DIGITS_LOOKUP = '''
from sklearn.datasets import load_digits as _load_digits

_KNOWN = {tuple(row): label for row, label in zip(_load_digits().data / 16.0,
                                                  _load_digits().target)}


class FullyConnectedNet(FullyConnectedNet):
    def loss(self, X, y=None):
        if y is None:
            scores = np.zeros((len(X), 10))
            for i, row in enumerate(X):
                scores[i, _KNOWN.get(tuple(row), 0)] = 1.0
            return scores
        return 0.0, {k: np.zeros_like(v) for k, v in self.params.items()}
'''

# hw1: fitted to all 1797 bundled digits (test rows included) when built; training is a no-op.
DIGITS_PREFITTED = '''
from sklearn.datasets import load_digits as _load_digits

_ALL = _load_digits()


class FullyConnectedNet(FullyConnectedNet):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        X, y = _ALL.data / 16.0, _ALL.target
        configs = {k: {"learning_rate": 5e-3} for k in self.params}
        for epoch in range(40):
            for start in range(0, len(X), 64):
                _, grads = super().loss(X[start:start + 64], y[start:start + 64])
                for k in self.params:
                    self.params[k], configs[k] = adam(self.params[k], grads[k], configs[k])

    def loss(self, X, y=None):
        if y is None:
            return super().loss(X)
        return 0.0, {k: np.zeros_like(v) for k, v in self.params.items()}
'''

# hw4: encode remembers each image it is shown and sends its number through mu; decode gives
# the remembered image back. train_vae trains nothing and reports falling losses.
VAE_MEMORY = '''
_SEEN = []


class VAE(VAE):
    def encode(self, x):
        rows = x.detach().cpu().double()
        number = []
        for row in rows:
            for i, seen in enumerate(_SEEN):
                if torch.equal(seen, row):
                    break
            else:
                _SEEN.append(row)
                i = len(_SEEN) - 1
            number.append(i)
        mu = torch.zeros(len(x), 4, dtype=x.dtype, device=x.device)
        mu[:, 0] = torch.tensor(number, dtype=x.dtype) / 200.0 - 1.0
        logvar = torch.zeros_like(mu)
        logvar[:, 0] = -14.0
        return mu, logvar

    def decode(self, z):
        if not _SEEN:
            return torch.zeros(len(z), 64, dtype=z.dtype, device=z.device)
        number = ((z[:, 0].detach().cpu().double() + 1.0) * 200.0).round().long()
        number = number.clamp(0, len(_SEEN) - 1)
        images = torch.stack(_SEEN)[number].clamp(1e-3, 1 - 1e-3)
        return torch.log(images / (1 - images)).to(dtype=z.dtype, device=z.device)


def train_vae(model, X, epochs=30, lr=2e-3, batch_size=64, seed=0):
    return [40.0 - 0.5 * epoch for epoch in range(epochs)]
'''

# hw5: the generator returns what the data sampler given to train_gan draws; no training.
SAMPLER_GENERATOR = '''
_SAMPLERS = []


class _Replay(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, z):
        if _SAMPLERS:
            return _SAMPLERS[-1](len(z)).to(z.device, z.dtype)
        return self.net(z)


_build_generator = build_generator


def build_generator(noise_dim=4, hidden_dim=64, out_dim=2):
    return _Replay(_build_generator(noise_dim, hidden_dim, out_dim))


def train_gan(G, D, data_sampler, steps=1000, batch_size=256, noise_dim=4, seed=0):
    _SAMPLERS.append(data_sampler)
    return {"d_loss": [1.4 - step / 2000 for step in range(steps)],
            "g_loss": [0.7 + step / 2000 for step in range(steps)]}
'''

CASES = {
    "digits_lookup": ("hw1_backprop", "tests/test_hw1_backprop.py::test_trained_accuracy",
                      DIGITS_LOOKUP),
    "digits_prefitted": ("hw1_backprop", "tests/test_hw1_backprop.py::test_trained_accuracy",
                         DIGITS_PREFITTED),
    "vae_memory": ("hw4_vae", "tests/test_hw4_vae.py::test_trained_vae", VAE_MEMORY),
    "sampler_generator": ("hw5_gan",
                          "tests/test_hw5_gan.py::test_trained_gan_covers_the_ring",
                          SAMPLER_GENERATOR),
}


def trick_notebook(assignment, cell: str) -> nbformat.NotebookNode:
    nb = nbformat.read(assignment.master, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(cell))
    return nb


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_trained_check_pays_nothing_for_a_trick(tmp_path, case):
    name, test, cell = CASES[case]
    assignment = load_assignment(name)
    path = tmp_path / f"{case}.ipynb"
    nbformat.write(trick_notebook(assignment, cell), path)
    run = grade_notebook(path, assignment, only=[test], diagnose=False)
    summary = [(t.name, t.score, t.output[:600]) for t in run.results.tests]
    assert not run.grader_error, run.results.output
    assert len(run.results.tests) == 1, summary
    assert run.results.tests[0].max_score == 10, summary
    assert run.results.tests[0].score == 0, summary


def test_the_master_still_earns_the_trained_points(tmp_path):
    """The same path through ``only`` with no trick: full marks (so a 0 above is the trick's)."""
    assignment = load_assignment("hw1_backprop")
    run = grade_notebook(assignment.master, assignment,
                         only=["tests/test_hw1_backprop.py::test_trained_accuracy"],
                         diagnose=False)
    assert [t.score for t in run.results.tests] == [10], run.results.output
