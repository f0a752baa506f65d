"""hw5_gan with nn.Module classes: a loss object, frozen networks instead of detach.

What a student who writes classes writes: a module-level ``bce = nn.BCEWithLogitsLoss()``
(a call the grader must run, because the losses read it) on ``(N, 1)`` logits with
``torch.ones_like`` labels, noise from ``torch.empty(...).uniform_(-1, 1, generator=...)``,
least-squares losses summed and then divided by the number of scores, ``Generator`` and
``Discriminator`` ``nn.Module`` subclasses with an explicit ``forward``, a ``gan_step`` that
freezes the network not being trained with ``requires_grad_(False)`` (no ``.detach()``) and
zeroes the gradients on the models (``D.zero_grad()``, ``G.zero_grad(set_to_none=True)``),
and module-level optimiser constants and ``cpu = torch.device("cpu")`` for the generator.
"""
import torch
from torch import nn

bce = nn.BCEWithLogitsLoss()


def sample_noise(batch_size, dim, generator=None):
    where = generator.device if generator is not None else None
    noise = torch.empty(batch_size, dim, device=where).uniform_(-1, 1, generator=generator)
    return noise


def discriminator_loss(logits_real, logits_fake):
    real_loss = bce(logits_real, torch.ones_like(logits_real))
    fake_loss = bce(logits_fake, torch.zeros_like(logits_fake))
    return real_loss + fake_loss


def generator_loss(logits_fake):
    return bce(logits_fake, torch.ones_like(logits_fake))


def ls_discriminator_loss(scores_real, scores_fake):
    real_term = torch.sum((scores_real - 1) ** 2) / scores_real.numel()
    fake_term = torch.sum(scores_fake ** 2) / scores_fake.numel()
    return 0.5 * (real_term + fake_term)


def ls_generator_loss(scores_fake):
    return torch.sum((scores_fake - 1) ** 2) / (2 * scores_fake.numel())


class Generator(nn.Module):
    def __init__(self, noise_dim, hidden_dim, out_dim):
        super().__init__()
        self.fc1 = nn.Linear(noise_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, out_dim)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, z):
        h = self.act(self.fc1(z))
        h = self.act(self.fc2(h))
        return self.out(h)


def build_generator(noise_dim=4, hidden_dim=64, out_dim=2):
    return Generator(noise_dim, hidden_dim, out_dim)


class Discriminator(nn.Module):
    def __init__(self, in_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.fc3 = nn.Linear(hidden_dim, 1)
        self.act = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, x):
        h = self.act(self.fc1(x))
        h = self.act(self.fc2(h))
        return self.fc3(h)  # logits, (N, 1)


def build_discriminator(in_dim=2, hidden_dim=64):
    return Discriminator(in_dim, hidden_dim)


def set_requires_grad(net, flag):
    for p in net.parameters():
        p.requires_grad_(flag)


def gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g):
    # Discriminator: G is frozen, so G(z_d) carries no graph back into G.
    set_requires_grad(G, False)
    D.zero_grad()
    d_loss = discriminator_loss(D(x_real), D(G(z_d)))
    d_loss.backward()
    opt_D.step()
    set_requires_grad(G, True)

    # Generator: D is frozen, so backward fills G's gradients only.
    set_requires_grad(D, False)
    G.zero_grad(set_to_none=True)
    g_loss = generator_loss(D(G(z_g)))
    g_loss.backward()
    opt_G.step()
    set_requires_grad(D, True)
    return float(d_loss), float(g_loss)


LR = 1e-3
BETAS = (0.5, 0.999)
cpu = torch.device("cpu")


def make_optimizer(net):
    return torch.optim.Adam(net.parameters(), lr=LR, betas=BETAS)


def train_gan(G, D, data_sampler, steps=1000, batch_size=256, noise_dim=4, seed=0):
    parameter = next(G.parameters())
    opt_G, opt_D = make_optimizer(G), make_optimizer(D)
    rng = torch.Generator(device=cpu)
    rng.manual_seed(seed)
    history = dict(d_loss=[], g_loss=[])
    for _ in range(steps):
        z_d = sample_noise(batch_size, noise_dim, rng)
        z_g = sample_noise(batch_size, noise_dim, rng)
        x_real = data_sampler(batch_size, rng)
        x_real, z_d, z_g = [t.to(parameter.device, parameter.dtype) for t in (x_real, z_d, z_g)]
        d_loss, g_loss = gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g)
        history["d_loss"].append(d_loss)
        history["g_loss"].append(g_loss)
    return history
