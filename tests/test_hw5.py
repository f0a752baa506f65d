"""hw5_gan: what the generic checks of test_assignments.py do not cover.

The hidden tests compare update rules on weights and batches of their own choosing, so these
tests check that those choices make the comparisons sound: float32 rounding (as on a GPU) far
below the tolerances, every known mistake far above them, the optimiser check independent of
the random draws. They also check that the trained check fails GANs that do not learn, that
the public checks catch the common mistakes, and that a correct solution written differently
from the reference (other modules, other order of random draws) still earns full marks.
"""
from __future__ import annotations

import functools

import nbformat
import numpy as np
import pytest
import torch

from autograder.assignment import load_assignment
from autograder.checks import norm_error
from autograder.grade import grade_notebook
from autograder.mutants import apply_to_notebook, load_mutants
from autograder.plugin import _seed_of
from autograder.proxies import LocalFactory, LocalNamespace
from conftest import hidden_tests, make_notebook, mutant_reference

ASSIGNMENT = load_assignment("hw5_gan")
MASTER = nbformat.read(ASSIGNMENT.master, as_version=4)
MUTANTS = {m.name: m for m in load_mutants(ASSIGNMENT.mutants_file)}
REFERENCE = ASSIGNMENT.reference


def hidden():
    return hidden_tests("hw5_gan")


@functools.cache
def mutated_reference(name):
    return mutant_reference(ASSIGNMENT, MASTER, MUTANTS[name])


def mutants_of(function):
    return [m.name for m in MUTANTS.values() if m.function == function and not m.equivalent]


def largest_difference(a: dict, b: dict) -> float:
    return max(norm_error(a[k], b[k]) for k in a)


def as_float64(model):
    return model.double()


# ---- the update comparison of gan_step ---------------------------------------------------------

def step_case():
    """The weights and batches test_gan_step_matches_reference draws, from the same seed."""
    h = hidden()
    rng = np.random.default_rng(_seed_of("test_hw5_gan.py::test_gan_step_matches_reference"))
    weights = (h.random_weights(rng, h.shapes_of("generator", h.SMALL_G)),
               h.random_weights(rng, h.shapes_of("discriminator", h.SMALL_D)))
    initial = tuple([w.astype(np.float64) for w in ws] for ws in weights)
    return weights, h.step_batches(rng, 2), initial


def float64_steps(gan_step, weights, batches, initial):
    """The same two steps as hidden().reference_steps, in float64."""
    h = hidden()
    G = as_float64(REFERENCE.build_generator(**h.SMALL_G))
    D = as_float64(REFERENCE.build_discriminator(**h.SMALL_D))
    for model, ws in ((G, weights[0]), (D, weights[1])):
        model.load_state_dict({k: torch.tensor(w, dtype=torch.float64)
                               for k, w in zip(model.state_dict(), ws, strict=True)})
    opt_G = torch.optim.SGD(G.parameters(), lr=h.STEP_LR)
    opt_D = torch.optim.SGD(D.parameters(), lr=h.STEP_LR)
    losses, states = [], []
    for batch in batches:
        x_real, z_d, z_g = (torch.tensor(a, dtype=torch.float64) for a in batch)
        losses.append(gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g))
        states.append((h.params_of(G), h.params_of(D)))
    return h.step_outcome(losses, states, initial)


def test_gan_step_tolerance_separates_rounding_from_mistakes():
    """float32 against float64 (what a GPU may change) stays 20x inside the tolerance; every
    gan_step mistake lands 20x outside it, on the hidden test's own weights and batches."""
    h = hidden()
    weights, batches, initial = step_case()
    float32 = h.reference_steps(REFERENCE.gan_step, REFERENCE, weights, batches, initial)
    exact = float64_steps(REFERENCE.gan_step, weights, batches, initial)
    assert largest_difference(float32, exact) < h.UPDATE_TOL / 20
    for name in mutants_of("gan_step"):
        mutant = h.reference_steps(mutated_reference(name).gan_step, REFERENCE, weights, batches,
                                   initial)
        assert largest_difference(mutant, float32) > 20 * h.UPDATE_TOL, name


# ---- the optimiser check of train_gan ----------------------------------------------------------

def wiring_case():
    h = hidden()
    rng = np.random.default_rng(_seed_of("test_hw5_gan.py::test_train_gan_optimizers"))
    weights = h.wiring_weights(rng)
    return weights, tuple([w.astype(np.float64) for w in ws] for ws in weights)


def test_optimizer_check_does_not_depend_on_the_draws(monkeypatch):
    """Other seeds (another order of draws) change only the signs of the first layer's steps;
    float64 agrees with float32 far inside the tolerance."""
    h = hidden()
    weights, initial = wiring_case()
    base = h.reference_wiring(REFERENCE.train_gan, REFERENCE, weights, initial)
    assert abs(base["G 0"][0] - h.FIRST_STEP_SIZE) < 0.005 * h.FIRST_STEP_SIZE
    for seed in (1, 2, 3):
        monkeypatch.setitem(h.WIRING, "seed", seed)
        other = h.reference_wiring(REFERENCE.train_gan, REFERENCE, weights, initial)
        assert abs(other.pop("G 0")[0] - h.FIRST_STEP_SIZE) < 0.005 * h.FIRST_STEP_SIZE
        assert largest_difference(other, base) == 0.0, seed
    monkeypatch.setitem(h.WIRING, "seed", 0)

    def as_double(original):
        def build(**kwargs):
            return as_float64(original(**kwargs))
        return build

    monkeypatch.setattr(REFERENCE, "build_generator", as_double(REFERENCE.build_generator))
    monkeypatch.setattr(REFERENCE, "build_discriminator",
                        as_double(REFERENCE.build_discriminator))
    exact = h.reference_wiring(REFERENCE.train_gan, REFERENCE, weights, initial)
    assert largest_difference(exact, base) < h.UPDATE_TOL / 20


@pytest.mark.parametrize("name", ["train_default_betas", "train_wrong_learning_rate",
                                  "train_history_swapped"])
def test_optimizer_check_catches_wrong_optimizers(name):
    h = hidden()
    weights, initial = wiring_case()
    base = h.reference_wiring(REFERENCE.train_gan, REFERENCE, weights, initial)
    mutant = h.reference_wiring(mutated_reference(name).train_gan, REFERENCE, weights, initial)
    # The histories are compared at LOSS_TOL, the updates at UPDATE_TOL.
    assert max(norm_error(mutant[k], base[k]) / (h.LOSS_TOL if "loss" in k else h.UPDATE_TOL)
               for k in base) > 10


# ---- the trained check ---------------------------------------------------------------------------

def test_ring_scores():
    h = hidden()
    rng = np.random.default_rng(0)
    centers = np.array(h.RING)
    on_ring = centers[np.arange(400) % 4] + 0.05 * rng.standard_normal((400, 2))
    quality, shares = h.ring_scores(on_ring)
    assert quality == 1.0 and np.allclose(shares, 0.25)
    three_modes = on_ring[np.arange(400) % 4 != 2]
    three_modes[:30] = 0.0  # the centre of the ring is 2 away from every mode
    quality, shares = h.ring_scores(three_modes)
    assert quality == pytest.approx(270 / 300) and shares[2] == 0.0


@pytest.mark.parametrize("name", ["step_g_output_detached", "train_default_betas"])
def test_trained_check_fails_gans_that_do_not_learn(name):
    """A generator that never moves, and Adam with its default betas: in 1000 steps neither
    reaches the quality the check asks for (in-process, CPU)."""
    h = hidden()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    local = LocalFactory(load_assignment("hw5_gan").directory)
    history, samples = h.trained_samples(LocalNamespace(mutated_reference(name)), local, "cpu",
                                         seed=0)
    quality, shares = h.ring_scores(samples)
    assert quality < h.QUALITY_THRESHOLD or shares.min() < h.MODE_THRESHOLD, (quality, shares)


# ---- public checks -------------------------------------------------------------------------------

API = ["sample_noise", "discriminator_loss", "generator_loss", "ls_discriminator_loss",
       "ls_generator_loss", "build_generator", "build_discriminator", "gan_step", "train_gan"]


# ---- a different but correct solution ----------------------------------------------------------

ALTERNATIVE = '''
import torch
import torch.nn.functional as F
from torch import nn


def sample_noise(batch_size, dim, generator=None):
    options = {} if generator is None else {"generator": generator, "device": generator.device}
    flat = torch.rand(batch_size * dim, **options)
    return (flat * 2 - 1).view(batch_size, dim)


def discriminator_loss(logits_real, logits_fake):
    return -F.logsigmoid(logits_real).mean() - F.logsigmoid(-logits_fake).mean()


def generator_loss(logits_fake):
    return F.softplus(-logits_fake).mean()


def ls_discriminator_loss(scores_real, scores_fake):
    return (F.mse_loss(scores_real, torch.ones_like(scores_real))
            + scores_fake.pow(2).mean()) / 2


def ls_generator_loss(scores_fake):
    return F.mse_loss(scores_fake, torch.ones_like(scores_fake)) / 2


class MLP(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.leaky_relu(x, negative_slope=0.2)
        return x


def build_generator(noise_dim=4, hidden_dim=64, out_dim=2):
    return MLP([noise_dim, hidden_dim, hidden_dim, out_dim])


def build_discriminator(in_dim=2, hidden_dim=64):
    return MLP([in_dim, hidden_dim, hidden_dim, 1])


def gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g):
    with torch.no_grad():
        fake = G(z_d)
    D.zero_grad(set_to_none=True)
    d_loss = discriminator_loss(D(x_real), D(fake))
    d_loss.backward()
    opt_D.step()
    # Freeze D while the generator learns: its gradients are not even computed.
    for p in D.parameters():
        p.requires_grad_(False)
    G.zero_grad()
    g_loss = generator_loss(D(G(z_g)))
    g_loss.backward()
    opt_G.step()
    for p in D.parameters():
        p.requires_grad_(True)
    return float(d_loss), float(g_loss)


def train_gan(G, D, data_sampler, steps=1000, batch_size=256, noise_dim=4, seed=0):
    device = next(G.parameters()).device
    rng = torch.Generator()
    rng.manual_seed(seed)
    opt_G, opt_D = (torch.optim.Adam(net.parameters(), lr=0.001, betas=(0.5, 0.999))
                    for net in (G, D))
    history = {"g_loss": [], "d_loss": []}
    for _ in range(steps):
        # Noise first, both batches in one draw, then the data: another order than the
        # reference's, which the tests must not care about.
        z = sample_noise(2 * batch_size, noise_dim, rng).to(device)
        x = data_sampler(batch_size, rng).to(device).float()
        d_loss, g_loss = gan_step(G, D, opt_G, opt_D, x, z[:batch_size], z[batch_size:])
        history["d_loss"].append(d_loss)
        history["g_loss"].append(g_loss)
    return history
'''


def test_a_different_correct_solution_gets_full_marks(tmp_path):
    path = tmp_path / "alternative.ipynb"
    nbformat.write(make_notebook(ALTERNATIVE), path)
    run = grade_notebook(path, ASSIGNMENT)
    failed = {t.name: t.output for t in run.results.tests if t.status != "passed"}
    assert not failed
    assert run.results.score == run.results.max_score


def test_quick_kill_stops_at_a_partial_loss(tmp_path):
    """Quick grading (audits of known mistakes) stops at the first test that loses points,
    also when that test keeps part of them: here the second, so the training never runs."""
    path = tmp_path / "mutant.ipynb"
    nbformat.write(apply_to_notebook(MASTER, MUTANTS["noise_ignores_generator"]), path)
    run = grade_notebook(path, ASSIGNMENT, stop_at_first_loss=True)
    assert [t.status for t in run.results.tests] == ["passed", "failed"]
    assert 0 < run.results.tests[1].score < run.results.tests[1].max_score
