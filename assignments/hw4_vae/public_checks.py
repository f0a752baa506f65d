"""Public checks for hw4_vae, run in the student's notebook with ``check("name")``.

Only hand-computable values, exact gradient identities and properties every correct answer
has: no reference answers. They run in the student's own process, on the CPU.
"""
import numpy as np
import torch

from autograder.checks import (CheckFailure, assert_close, expect_array, expect_scalar,
                               expect_tuple, type_name)
from autograder.public import public_check


def _t(values, dtype=torch.float64, requires_grad=False):
    return torch.tensor(np.asarray(values, dtype=np.float64), dtype=dtype,
                        requires_grad=requires_grad)


def _array(value, what, shape, dtype=torch.float64):
    """A returned tensor as a numpy array, after checking its type, shape and dtype."""
    if type(value) is not torch.Tensor:
        raise CheckFailure(f"{what}: expected a torch.Tensor, got {type_name(value)}")
    if dtype is not None and value.dtype != dtype:
        raise CheckFailure(f"{what}: dtype {value.dtype}, expected {dtype} (compute in the "
                           "dtype of the inputs)")
    return expect_array(value.detach().cpu().double().numpy(), what, shape=shape)


@public_check("reparameterize")
def reparameterize_gradients(impl):
    """reparameterize: dz/dmu = 1 and dz/dlogvar = (z - mu) / 2"""
    mu = _t([[0.5, -1.0, 2.0], [0.0, 1.0, -0.5]], requires_grad=True)
    logvar = _t([[0.0, -1.0, 1.0], [0.5, -2.0, 0.0]], requires_grad=True)
    z = impl.reparameterize(mu, logvar)
    z_values = _array(z, "reparameterize", (2, 3))
    if not z.requires_grad:
        raise CheckFailure("reparameterize: z does not require grad, so no gradient can reach "
                           "mu and logvar (was it detached or drawn with .sample()?)")
    z.sum().backward()
    if mu.grad is None or logvar.grad is None:
        raise CheckFailure("reparameterize: no gradient reached mu or logvar")
    assert_close(mu.grad.numpy(), np.ones((2, 3)), "d sum(z) / d mu (should be 1 everywhere)")
    expected = 0.5 * (z_values - mu.detach().numpy())
    assert_close(logvar.grad.numpy(), expected,
                 "d sum(z) / d logvar (should be (z - mu) / 2, i.e. std * eps / 2)")


@public_check("reparameterize")
def reparameterize_statistics(impl):
    """reparameterize: 20000 draws have mean mu, std exp(logvar / 2) and independent noise"""
    mu = _t(np.tile([1.0, -2.0], (10000, 1)))
    logvar = _t(np.tile([np.log(4.0), np.log(0.25)], (10000, 1)))  # stds 2 and 0.5
    z = _array(impl.reparameterize(mu, logvar), "reparameterize", (10000, 2))
    for j, (m, s) in enumerate(((1.0, 2.0), (-2.0, 0.5))):
        mean, std = z[:, j].mean(), z[:, j].std()
        if abs(mean - m) > 0.1 * s or abs(std - s) > 0.08 * s:
            raise CheckFailure(f"reparameterize with mu = {m}, std = {s} (logvar = "
                               f"log({s ** 2:g})): the draws have mean {mean:.3f} and std "
                               f"{std:.3f}")
    eps = (z - np.array([1.0, -2.0])) / np.array([2.0, 0.5])
    if abs(np.corrcoef(eps[:, 0], eps[:, 1])[0, 1]) > 0.1:
        raise CheckFailure("reparameterize: the noise of the two latent dimensions is "
                           "correlated; every entry needs its own eps")
    if abs(np.corrcoef(eps[:-1, 0], eps[1:, 0])[0, 1]) > 0.1 or np.std(eps[:, 0]) < 0.5:
        raise CheckFailure("reparameterize: the rows do not get independent noise")


@public_check("kl_divergence")
def kl_divergence_by_hand(impl):
    """kl_divergence: hand-computed values, shape (N,), summed over the latent dims"""
    mu = _t([[0.0, 0.0], [2.0, 0.0], [0.0, 0.0], [-2.0, 0.0]])
    logvar = _t([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    kl = _array(impl.kl_divergence(mu, logvar), "kl_divergence", (4,))
    expected = np.array([0.0, 2.0, 0.5 * (np.e - 2), 2.0 + 0.5 * (np.e - 2)])
    assert_close(kl, expected, "kl_divergence of the rows mu = (0, 0), (2, 0), (0, 0), (-2, 0) "
                 "with logvar = (0, 0), (0, 0), (1, 0), (0, 1)")


@public_check("kl_divergence")
def kl_divergence_properties(impl):
    """kl_divergence: never negative and the same for mu and -mu"""
    rng = np.random.default_rng(4)
    mu, logvar = rng.standard_normal((6, 3)), rng.uniform(-2, 1.5, size=(6, 3))
    kl = _array(impl.kl_divergence(_t(mu), _t(logvar)), "kl_divergence", (6,))
    if np.any(kl < 0):
        raise CheckFailure(f"kl_divergence is negative ({kl.min():.4g}); a KL never is")
    assert_close(_array(impl.kl_divergence(_t(-mu), _t(logvar)), "kl_divergence", (6,)), kl,
                 "kl_divergence with mu negated")


@public_check("bernoulli_log_likelihood")
def bernoulli_by_hand(impl):
    """bernoulli_log_likelihood: hand-computed values, summed over pixels"""
    x = _t([[1.0, 0.0, 0.5], [0.3, 0.9, 0.0]])
    logits = _t([[np.log(3), np.log(3), 0.0], [0.0, 0.0, 0.0]])
    # sigmoid(log 3) = 3/4; at logit 0 every pixel costs log(1/2) whatever its value.
    expected = np.array([np.log(0.75) + np.log(0.25) + np.log(0.5), 3 * np.log(0.5)])
    assert_close(_array(impl.bernoulli_log_likelihood(x, logits), "bernoulli_log_likelihood",
                        (2,)), expected, "bernoulli_log_likelihood of x = [[1, 0, 0.5], "
                 "[0.3, 0.9, 0]] with logits [[log 3, log 3, 0], [0, 0, 0]]")


@public_check("bernoulli_log_likelihood")
def bernoulli_stable(impl):
    """bernoulli_log_likelihood: finite and right for logits of +-50"""
    x = _t([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    logits = _t([[50.0, -50.0, 50.0], [-50.0, 50.0, -50.0]])
    # log(1 - sigmoid(50)) = -50 - log(1 + e^-50) ~ -50; confident right pixels cost ~ e^-50.
    expected = np.array([-100.0 - 3 * np.log1p(np.exp(-50.0)), -3 * np.log1p(np.exp(-50.0))])
    assert_close(_array(impl.bernoulli_log_likelihood(x, logits), "bernoulli_log_likelihood",
                        (2,)), expected, "bernoulli_log_likelihood at logits of +-50")


@public_check("neg_elbo")
def neg_elbo_sanity(impl):
    """neg_elbo: logits 0 and q = prior give D log 2, a scalar, for any batch size"""
    for n in (1, 4):
        x = _t(np.linspace(0, 1, n * 5).reshape(n, 5))
        loss = impl.neg_elbo(x, _t(np.zeros((n, 5))), _t(np.zeros((n, 2))),
                             _t(np.zeros((n, 2))))
        assert_close(_array(loss, "neg_elbo", ()), 5 * np.log(2),
                     f"neg_elbo of {n} image(s) of 5 pixels, logits 0, mu = 0, logvar = 0")


@public_check("neg_elbo")
def neg_elbo_adds_kl(impl):
    """neg_elbo: a KL of 2 per image adds 2 to the loss"""
    x = _t(np.linspace(0, 1, 8).reshape(2, 4))
    zeros = _t(np.zeros((2, 4)))
    base = _array(impl.neg_elbo(x, zeros, _t(np.zeros((2, 2))), _t(np.zeros((2, 2)))),
                  "neg_elbo", ())
    moved = _array(impl.neg_elbo(x, zeros, _t([[2.0, 0.0], [0.0, -2.0]]), _t(np.zeros((2, 2)))),
                   "neg_elbo", ())
    assert_close(moved - base, 2.0, "neg_elbo with mu moved to (2, 0) and (0, -2) minus "
                 "neg_elbo with mu = 0 (KL of 2 for each image)")


@public_check("VAE")
def vae_shapes(impl):
    """VAE: shapes of encode, decode, forward and sample"""
    torch.manual_seed(0)
    model = impl.VAE(input_dim=10, hidden_dim=6, latent_dim=3)
    x = torch.rand(5, 10)
    mu, logvar = expect_tuple(model.encode(x), 2, "VAE.encode")
    _array(mu, "VAE.encode mu", (5, 3), dtype=None)
    _array(logvar, "VAE.encode logvar", (5, 3), dtype=None)
    _array(model.decode(torch.randn(5, 3)), "VAE.decode", (5, 10), dtype=None)
    out = expect_tuple(model(x), 3, "VAE.forward")
    shapes = ((5, 10), (5, 3), (5, 3))
    for name, value, shape in zip(("x_logits", "mu", "logvar"), out, shapes, strict=True):
        _array(value, f"VAE.forward {name}", shape, dtype=None)
    samples = _array(model.sample(4), "VAE.sample(4)", (4, 10), dtype=None)
    if samples.min() < 0 or samples.max() > 1:
        raise CheckFailure("VAE.sample: values outside [0, 1]; return sigmoid(logits)")
    first = _array(model.sample(4, generator=torch.Generator().manual_seed(1)), "VAE.sample",
                   (4, 10), dtype=None)
    again = _array(model.sample(4, generator=torch.Generator().manual_seed(1)), "VAE.sample",
                   (4, 10), dtype=None)
    if not np.array_equal(first, again):
        raise CheckFailure("VAE.sample: two generators with the same seed gave different "
                           "images; draw z with the generator")


@public_check("train_vae")
def train_vae_runs(impl):
    """train_vae: returns one float per epoch, and the loss goes down"""
    torch.manual_seed(0)
    model = impl.VAE(input_dim=16, hidden_dim=16, latent_dim=2)
    X = (torch.rand(96, 16) < torch.linspace(0.1, 0.9, 16)).float()
    losses = impl.train_vae(model, X, epochs=4, batch_size=32)
    if type(losses) is not list or len(losses) != 4:
        raise CheckFailure(f"train_vae(..., epochs=4) should return a list of 4 losses, got "
                           f"{type_name(losses)}"
                           + (f" of length {len(losses)}" if type(losses) is list else ""))
    losses = [expect_scalar(v, f"train_vae loss of epoch {i + 1} (use loss.item())")
              for i, v in enumerate(losses)]
    if not losses[-1] < losses[0]:
        raise CheckFailure(f"train_vae: the losses {np.round(losses, 3).tolist()} do not go "
                           "down")
