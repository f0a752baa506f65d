"""hw5_gan in the CS231n style: a hand-written stable BCE, (N,) labels, run_a_gan's loop.

What a student coming from the CS231n GAN notebook writes: module-level ``NOISE_DIM`` and
``dtype`` constants used as defaults, a ``bce_loss(scores, target)`` helper in the clamp form
``max(s, 0) - s y + log1p(exp(-|s|))`` (exact for logits of any size), logits flattened to
``(N,)`` against ``torch.ones(N)`` / ``torch.zeros(N)`` labels, networks as ``nn.Sequential``
of named layers (an ``OrderedDict``), the ``G(z).detach()`` discriminator step with
``zero_grad`` before the forward pass, and a ``get_optimizer`` helper of their own.
"""
from collections import OrderedDict

import torch
from torch import nn

NOISE_DIM = 4
dtype = torch.float32


def sample_noise(batch_size, dim, generator=None):
    device = None if generator is None else generator.device
    noise = 2 * torch.rand(batch_size, dim, generator=generator, device=device, dtype=dtype) - 1
    return noise


def bce_loss(scores, target):
    """Mean binary cross-entropy of logits ``scores`` against ``target``, stably."""
    neg_abs = -scores.abs()
    loss = scores.clamp(min=0) - scores * target + torch.log1p(neg_abs.exp())
    return loss.mean()


def discriminator_loss(logits_real, logits_fake):
    logits_real = logits_real.reshape(-1)
    logits_fake = logits_fake.reshape(-1)
    true_labels = torch.ones(logits_real.size(0), dtype=logits_real.dtype,
                             device=logits_real.device)
    fake_labels = torch.zeros(logits_fake.size(0), dtype=logits_fake.dtype,
                              device=logits_fake.device)
    loss = bce_loss(logits_real, true_labels) + bce_loss(logits_fake, fake_labels)
    return loss


def generator_loss(logits_fake):
    logits_fake = logits_fake.reshape(-1)
    true_labels = torch.ones(logits_fake.size(0), dtype=logits_fake.dtype,
                             device=logits_fake.device)
    loss = bce_loss(logits_fake, true_labels)
    return loss


def ls_discriminator_loss(scores_real, scores_fake):
    loss = 0.5 * ((scores_real - 1) ** 2).mean() + 0.5 * (scores_fake ** 2).mean()
    return loss


def ls_generator_loss(scores_fake):
    loss = 0.5 * ((scores_fake - 1) ** 2).mean()
    return loss


def build_generator(noise_dim=NOISE_DIM, hidden_dim=64, out_dim=2):
    model = nn.Sequential(OrderedDict([
        ("fc1", nn.Linear(noise_dim, hidden_dim)),
        ("act1", nn.LeakyReLU(0.2)),
        ("fc2", nn.Linear(hidden_dim, hidden_dim)),
        ("act2", nn.LeakyReLU(0.2)),
        ("out", nn.Linear(hidden_dim, out_dim)),
    ]))
    return model


def build_discriminator(in_dim=2, hidden_dim=64):
    model = nn.Sequential(OrderedDict([
        ("fc1", nn.Linear(in_dim, hidden_dim)),
        ("act1", nn.LeakyReLU(0.2)),
        ("fc2", nn.Linear(hidden_dim, hidden_dim)),
        ("act2", nn.LeakyReLU(0.2)),
        ("logit", nn.Linear(hidden_dim, 1)),
    ]))
    return model


def gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g):
    opt_D.zero_grad()
    logits_real = D(x_real)
    fake_images = G(z_d).detach()
    logits_fake = D(fake_images)
    d_total_error = discriminator_loss(logits_real, logits_fake)
    d_total_error.backward()
    opt_D.step()

    opt_G.zero_grad()
    gen_logits_fake = D(G(z_g))
    g_error = generator_loss(gen_logits_fake)
    g_error.backward()
    opt_G.step()
    return d_total_error.item(), g_error.item()


def get_optimizer(model):
    """Adam with lr 1e-3 and beta1 0.5, as GANs usually take it."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    return optimizer


def train_gan(G, D, data_sampler, steps=1000, batch_size=256, noise_dim=NOISE_DIM, seed=0):
    parameter = next(G.parameters())
    G_solver = get_optimizer(G)
    D_solver = get_optimizer(D)
    g = torch.Generator().manual_seed(seed)
    history = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
        real_data = data_sampler(batch_size, g).to(parameter)
        z_d = sample_noise(batch_size, noise_dim, g).to(parameter)
        z_g = sample_noise(batch_size, noise_dim, g).to(parameter)
        d_loss, g_loss = gan_step(G, D, G_solver, D_solver, real_data, z_d, z_g)
        history["d_loss"].append(d_loss)
        history["g_loss"].append(g_loss)
    return history
