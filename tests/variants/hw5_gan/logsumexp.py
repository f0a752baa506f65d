"""hw5_gan with log-sum-exp losses, a builder helper and one discriminator pass per step.

What a student who derives the losses writes: ``BCE(s, 1) = log(1 + e^-s)`` and
``BCE(s, 0) = log(1 + e^s)`` as a ``torch.logsumexp`` of ``(0, s)`` (stable for any logit),
logits flattened to ``(N,)``, every mean written as a sum divided by the count,
``F.binary_cross_entropy_with_logits(..., reduction="sum")`` for the generator, both networks
from one ``mlp`` helper with a module-level ``LEAK = 0.2``, noise by in-place arithmetic on its
own fresh tensor, and a ``gan_step`` that scores real and fake samples in one discriminator
pass over ``torch.cat`` (no batch statistics, so the same gradients) with
``zero_grad(set_to_none=True)`` on the optimizers, returning ``float(loss)``.
"""
import torch
import torch.nn.functional as F
from torch import nn

LEAK = 0.2


def sample_noise(batch_size, dim, generator=None):
    if generator is None:
        u = torch.rand(batch_size, dim)
    else:
        u = torch.rand(batch_size, dim, generator=generator, device=generator.device)
    return u.mul_(2).sub_(1)


def softplus_lse(t):
    """log(1 + exp(t)) as the log-sum-exp of (0, t): finite for any t."""
    return torch.logsumexp(torch.stack((torch.zeros_like(t), t)), dim=0)


def discriminator_loss(logits_real, logits_fake):
    real = logits_real.flatten()
    fake = logits_fake.flatten()
    # BCE(s, 1) = log(1 + exp(-s)), BCE(s, 0) = log(1 + exp(s)); one mean per batch.
    return softplus_lse(-real).sum() / real.numel() + softplus_lse(fake).sum() / fake.numel()


def generator_loss(logits_fake):
    fake = logits_fake.flatten()
    targets = torch.ones(fake.shape, dtype=fake.dtype, device=fake.device)
    return F.binary_cross_entropy_with_logits(fake, targets, reduction="sum") / fake.numel()


def ls_discriminator_loss(scores_real, scores_fake):
    return torch.square(scores_real - 1).mean() / 2 + torch.square(scores_fake).mean() / 2


def ls_generator_loss(scores_fake):
    return torch.square(scores_fake - 1).mean() / 2


def mlp(in_dim, hidden_dim, out_dim, hidden_layers=2):
    """Linear + LeakyReLU(LEAK) hidden layers, then a linear output layer."""
    layers, width = [], in_dim
    for _ in range(hidden_layers):
        layers += [nn.Linear(width, hidden_dim), nn.LeakyReLU(LEAK)]
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def build_generator(noise_dim=4, hidden_dim=64, out_dim=2):
    return mlp(noise_dim, hidden_dim, out_dim)


def build_discriminator(in_dim=2, hidden_dim=64):
    return mlp(in_dim, hidden_dim, 1)


def gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g):
    n_real = x_real.shape[0]
    fake = G(z_d).detach()
    logits = D(torch.cat([x_real, fake], dim=0))
    d_loss = discriminator_loss(logits[:n_real], logits[n_real:])
    opt_D.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_D.step()

    g_loss = generator_loss(D(G(z_g)))
    opt_G.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_G.step()
    return float(d_loss), float(g_loss)


def train_gan(G, D, data_sampler, steps=1000, batch_size=256, noise_dim=4, seed=0):
    parameter = next(G.parameters())
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    generator = torch.Generator().manual_seed(seed)
    d_losses, g_losses = [], []
    for _ in range(steps):
        x_real = data_sampler(batch_size, generator).to(parameter)
        z_g = sample_noise(batch_size, noise_dim, generator).to(parameter)
        z_d = sample_noise(batch_size, noise_dim, generator).to(parameter)
        d_loss, g_loss = gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g)
        d_losses.append(d_loss)
        g_losses.append(g_loss)
    return {"d_loss": d_losses, "g_loss": g_losses}
