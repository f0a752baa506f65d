"""Public checks for hw5_gan, run in the student's notebook with ``check("name")``.

Only hand-computable values, exact gradient identities and properties every correct answer
has: no reference answers. They run in the student's own process, on the CPU.
"""
import math

import numpy as np
import torch

from autograder.checks import (CheckFailure, assert_close, expect_array, expect_tuple,
                               type_name)
from autograder.public import public_check

LOG2 = math.log(2.0)


def _t(values, dtype=torch.float64, requires_grad=False):
    return torch.tensor(np.asarray(values, dtype=np.float64), dtype=dtype,
                        requires_grad=requires_grad)


def _array(value, what, shape):
    """A returned tensor as a float64 numpy array, after checking its type and shape."""
    if type(value) is not torch.Tensor:
        raise CheckFailure(f"{what}: expected a torch.Tensor, got {type_name(value)}")
    if not value.dtype.is_floating_point:
        raise CheckFailure(f"{what}: dtype {value.dtype}, expected a float dtype")
    return expect_array(value.detach().cpu().double().numpy(), what, shape=shape)


def _loss_and_grads(fn, *arrays):
    leaves = [_t(a, requires_grad=True) for a in arrays]
    loss = fn(*leaves)
    value = _array(loss, fn.__name__, ())
    if not loss.requires_grad:
        raise CheckFailure(f"{fn.__name__}: the loss does not require grad, so no gradient "
                           "reaches the logits (was something detached or computed in numpy?)")
    loss.backward()
    if any(leaf.grad is None for leaf in leaves):
        raise CheckFailure(f"{fn.__name__}: no gradient reached the logits")
    return float(value), [leaf.grad.numpy() for leaf in leaves]


@public_check("sample_noise")
def sample_noise_distribution(impl):
    """sample_noise: shape, values in (-1, 1), both signs, mean 0"""
    torch.manual_seed(0)
    z = _array(impl.sample_noise(10000, 2), "sample_noise(10000, 2)", (10000, 2))
    if z.min() < -1 or z.max() > 1:
        raise CheckFailure(f"sample_noise: values in [{z.min():.3f}, {z.max():.3f}], expected "
                           "(-1, 1)")
    if z.min() > -0.95 or z.max() < 0.95:
        raise CheckFailure(f"sample_noise: values in [{z.min():.3f}, {z.max():.3f}]; uniform "
                           "noise on (-1, 1) comes close to both ends")
    if abs(np.mean(z < 0) - 0.5) > 0.03 or np.any(np.abs(z.mean(axis=0)) > 0.05):
        raise CheckFailure(f"sample_noise: {100 * np.mean(z < 0):.1f}% negative values, column "
                           f"means {np.round(z.mean(axis=0), 3).tolist()}; expected half "
                           "negative, mean 0")
    if abs(z.std() - 3 ** -0.5) > 0.03:
        raise CheckFailure(f"sample_noise: std {z.std():.3f}; uniform noise on (-1, 1) has std "
                           "1/sqrt(3) = 0.577")


@public_check("sample_noise")
def sample_noise_generator(impl):
    """sample_noise: the same seeded torch.Generator gives the same noise"""
    first = _array(impl.sample_noise(5, 3, generator=torch.Generator().manual_seed(1)),
                   "sample_noise(5, 3, generator=g)", (5, 3))
    again = _array(impl.sample_noise(5, 3, generator=torch.Generator().manual_seed(1)),
                   "sample_noise(5, 3, generator=g)", (5, 3))
    if not np.array_equal(first, again):
        raise CheckFailure("sample_noise: two generators with seed 1 gave different noise; "
                           "draw with the generator")
    if len({tuple(row) for row in first}) < 5:
        raise CheckFailure("sample_noise: some rows are identical; draw every entry")


@public_check("discriminator_loss")
def discriminator_loss_zero_logits(impl):
    """discriminator_loss: logits 0 give 2 log 2, whatever the batch sizes"""
    loss, _ = _loss_and_grads(impl.discriminator_loss, np.zeros((3, 1)), np.zeros((5, 1)))
    assert_close(loss, 2 * LOG2, "discriminator_loss of 3 real and 5 fake logits, all 0 "
                 "(expected 2 log 2)")


@public_check("discriminator_loss")
def discriminator_loss_gradients(impl):
    """discriminator_loss: gradients (sigmoid(s) - 1) / N_real and sigmoid(s) / N_fake"""
    real, fake = np.array([[0.0], [math.log(3)]]), np.array([[0.0], [-math.log(3)], [1.0]])
    _, (d_real, d_fake) = _loss_and_grads(impl.discriminator_loss, real, fake)
    sigmoid = lambda s: 1 / (1 + np.exp(-s))  # noqa: E731
    assert_close(d_real, (sigmoid(real) - 1) / 2, "gradient of discriminator_loss with "
                 "respect to 2 real logits (0, log 3): (sigmoid(s) - 1) / 2 = (-1/4, -1/8)")
    assert_close(d_fake, sigmoid(fake) / 3, "gradient of discriminator_loss with respect to "
                 "3 fake logits (0, -log 3, 1): sigmoid(s) / 3")


@public_check("generator_loss")
def generator_loss_values(impl):
    """generator_loss: log 2 at logit 0; about -1/N gradient where D rejects the fakes"""
    loss, _ = _loss_and_grads(impl.generator_loss, np.zeros((4, 1)))
    assert_close(loss, LOG2, "generator_loss of 4 fake logits 0 (expected log 2)")
    _, (grad,) = _loss_and_grads(impl.generator_loss, np.array([[-20.0], [-25.0]]))
    if np.any(np.abs(grad + 0.5) > 1e-3):
        raise CheckFailure(f"generator_loss at fake logits (-20, -25): gradient "
                           f"{grad.ravel().tolist()}, expected about -1/2 each (the "
                           "non-saturating loss BCE(logits_fake, 1) keeps its gradient when "
                           "D rejects the fakes)")


@public_check("ls_discriminator_loss")
def ls_discriminator_values(impl):
    """ls_discriminator_loss: 0 for a perfect D, 1/2 for all scores 0"""
    perfect, _ = _loss_and_grads(impl.ls_discriminator_loss, np.ones((3, 1)), np.zeros((2, 1)))
    assert_close(perfect, 0.0, "ls_discriminator_loss with real scores 1 and fake scores 0")
    zeros, _ = _loss_and_grads(impl.ls_discriminator_loss, np.zeros((3, 1)), np.zeros((2, 1)))
    assert_close(zeros, 0.5, "ls_discriminator_loss with all scores 0")


@public_check("ls_generator_loss")
def ls_generator_values(impl):
    """ls_generator_loss: 1/2 for fake scores 0, 0 for fake scores 1"""
    value, _ = _loss_and_grads(impl.ls_generator_loss, np.zeros((4, 1)))
    assert_close(value, 0.5, "ls_generator_loss with fake scores 0")
    value, _ = _loss_and_grads(impl.ls_generator_loss, np.ones((2, 1)))
    assert_close(value, 0.0, "ls_generator_loss with fake scores 1")


def _count(model):
    if not isinstance(model, torch.nn.Module):
        raise CheckFailure(f"expected an nn.Module, got {type_name(model)}")
    return sum(p.numel() for p in model.parameters())


@public_check("build_generator")
def generator_shapes(impl):
    """build_generator: 4610 parameters by default, output (N, out_dim)"""
    count = _count(impl.build_generator())
    if count != 4610:
        raise CheckFailure(f"build_generator() has {count} parameters, expected 4610 (4 -> 64 "
                           "-> 64 -> 2)")
    model = impl.build_generator(noise_dim=3, hidden_dim=5, out_dim=6)
    _array(model(torch.rand(7, 3)), "build_generator(3, 5, 6) on 7 noise vectors", (7, 6))


@public_check("build_discriminator")
def discriminator_shapes(impl):
    """build_discriminator: 4417 parameters by default, output (N, 1) logits"""
    count = _count(impl.build_discriminator())
    if count != 4417:
        raise CheckFailure(f"build_discriminator() has {count} parameters, expected 4417 "
                           "(2 -> 64 -> 64 -> 1)")
    torch.manual_seed(0)
    out = _array(impl.build_discriminator()(10 * torch.randn(50, 2)),
                 "build_discriminator() on 50 points", (50, 1))
    if out.min() >= 0 and out.max() <= 1:
        raise CheckFailure("build_discriminator: every output is in [0, 1]; return logits "
                           "(no sigmoid at the end)")


def _tiny_networks():
    torch.manual_seed(0)
    G = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.LeakyReLU(0.2),
                            torch.nn.Linear(8, 2))
    D = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.LeakyReLU(0.2),
                            torch.nn.Linear(8, 1))
    return G, D


@public_check("gan_step")
def gan_step_updates(impl):
    """gan_step: returns two floats; D's loss is the one before the step; both networks move"""
    G, D = _tiny_networks()
    opt_G = torch.optim.SGD(G.parameters(), lr=0.1)
    opt_D = torch.optim.SGD(D.parameters(), lr=0.1)
    x_real, z_d, z_g = torch.randn(8, 2) + 2, torch.rand(8, 2) * 2 - 1, torch.rand(8, 2) * 2 - 1
    with torch.no_grad():
        d_before = float(impl.discriminator_loss(D(x_real), D(G(z_d))))
    g_params = [p.detach().clone() for p in G.parameters()]
    d_params = [p.detach().clone() for p in D.parameters()]
    out = expect_tuple(impl.gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g), 2, "gan_step")
    for value, name in zip(out, ("d_loss", "g_loss"), strict=True):
        if type(value) is not float:
            raise CheckFailure(f"gan_step's {name} should be a Python float (loss.item()), got "
                               f"{type_name(value)}")
    if abs(out[0] - d_before) > 1e-5 * max(1.0, abs(d_before)):
        raise CheckFailure(f"gan_step returned d_loss {out[0]:.6g}, but discriminator_loss of "
                           f"D(x_real) and D(G(z_d)) before the step is {d_before:.6g}")
    for params, model, name in ((g_params, G, "generator"), (d_params, D, "discriminator")):
        if all(torch.equal(a, b) for a, b in zip(params, model.parameters(), strict=True)):
            raise CheckFailure(f"gan_step did not change the {name}'s parameters")


@public_check("gan_step")
def gan_step_generator_sees_updated_discriminator(impl):
    """gan_step: g_loss is the generator's loss under the discriminator after its update"""
    G, D = _tiny_networks()
    # lr 0 for G: the generator stays put, so g_loss can be recomputed afterwards.
    opt_G = torch.optim.SGD(G.parameters(), lr=0.0)
    opt_D = torch.optim.SGD(D.parameters(), lr=0.1)
    x_real, z_d, z_g = torch.randn(8, 2) + 2, torch.rand(8, 2) * 2 - 1, torch.rand(8, 2) * 2 - 1
    _, g_loss = expect_tuple(impl.gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g), 2,
                             "gan_step")
    with torch.no_grad():
        after = float(impl.generator_loss(D(G(z_g))))
    if abs(float(g_loss) - after) > 1e-5 * max(1.0, abs(after)):
        raise CheckFailure(f"gan_step returned g_loss {float(g_loss):.6g}; generator_loss of "
                           f"D(G(z_g)) with the updated D is {after:.6g}: update D first, "
                           "then compute the generator's loss on fresh fakes G(z_g)")


@public_check("train_gan")
def train_gan_history(impl):
    """train_gan: returns {"d_loss": [...], "g_loss": [...]} with one float per step"""
    G, D = _tiny_networks()

    def sampler(batch_size, generator=None):
        return torch.randn(batch_size, 2, generator=generator) + 2

    history = impl.train_gan(G, D, sampler, steps=3, batch_size=8, noise_dim=2, seed=0)
    if type(history) is not dict or sorted(history) != ["d_loss", "g_loss"]:
        raise CheckFailure(f"train_gan should return a dict with keys 'd_loss' and 'g_loss', "
                           f"got {type_name(history)}"
                           + (f" with keys {sorted(history)}" if type(history) is dict else ""))
    for key, values in history.items():
        if type(values) is not list or len(values) != 3 or any(type(v) is not float
                                                               for v in values):
            raise CheckFailure(f"train_gan(..., steps=3): history[{key!r}] should be a list of "
                               "3 floats")
