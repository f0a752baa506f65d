"""hw4_vae written out by hand: explicit formulas, an nn.Module with named layers, index loops.

What a student who writes every formula from the notes writes: the noise from
``torch.randn(shape, dtype=..., device=...)`` and ``z = eps.mul(std).add_(mu)`` (in-place
only on its own new tensors), the KL through the standard deviation (``sigma**2`` and
``2 log sigma``), the log-likelihood in the simplified softplus form ``x * l - softplus(l)``,
``torch.mean`` for the batch, a VAE in the style of the PyTorch example (``fc1, fc21, fc22,
fc3, fc4`` with ``F.relu``) built from module-level constants (``dtype = torch.float32``), and
a training loop over index slices that zeroes the gradients on the model
(``model.zero_grad()``).
"""
import torch
import torch.nn.functional as F
from torch import nn


def reparameterize(mu, logvar):
    std = logvar.mul(0.5).exp_()
    eps = torch.randn(std.size(), dtype=std.dtype, device=std.device)
    z = eps.mul(std).add_(mu)
    return z


def kl_divergence(mu, logvar):
    # 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2), with sigma = exp(logvar / 2)
    sigma = torch.exp(0.5 * logvar)
    per_dim = 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma))
    kl = per_dim.sum(dim=-1)
    return kl


def bernoulli_log_likelihood(x, x_logits):
    # x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) = x l - softplus(l), never log(sigmoid)
    log_likelihood = torch.sum(x * x_logits - F.softplus(x_logits), dim=-1)
    return log_likelihood


def neg_elbo(x, x_logits, mu, logvar):
    loss = torch.mean(kl_divergence(mu, logvar) - bernoulli_log_likelihood(x, x_logits))
    return loss


dtype = torch.float32
HIDDEN = 128
LATENT = 4


class VAE(nn.Module):
    def __init__(self, input_dim=64, hidden_dim=HIDDEN, latent_dim=LATENT):
        super().__init__()
        self.input_dim = input_dim
        self.latent_dim = latent_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim, dtype=dtype)
        self.fc21 = nn.Linear(hidden_dim, latent_dim, dtype=dtype)
        self.fc22 = nn.Linear(hidden_dim, latent_dim, dtype=dtype)
        self.fc3 = nn.Linear(latent_dim, hidden_dim, dtype=dtype)
        self.fc4 = nn.Linear(hidden_dim, input_dim, dtype=dtype)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        mu = self.fc21(h1)
        logvar = self.fc22(h1)
        return mu, logvar

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        x_logits = self.fc4(h3)
        return x_logits

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        x_logits = self.decode(z)
        return x_logits, mu, logvar

    def sample(self, n, generator=None):
        parameter = next(self.parameters())
        draw_on = parameter.device if generator is None else generator.device
        with torch.no_grad():
            z = torch.randn((n, self.latent_dim), generator=generator, device=draw_on,
                            dtype=parameter.dtype)
            x_mean = self.decode(z.to(parameter.device)).sigmoid()
        return x_mean


def train_vae(model, X, epochs=30, lr=2e-3, batch_size=64, seed=0):
    parameter = next(model.parameters())
    X = X.to(device=parameter.device, dtype=parameter.dtype)
    n = X.shape[0]
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr)
    losses = []
    for _epoch in range(epochs):
        perm = torch.randperm(n, generator=g).to(X.device)
        epoch_sum = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            x = X[idx]
            recon, mu, logvar = model(x)
            loss = neg_elbo(x, recon, mu, logvar)
            model.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_sum += loss.item() * len(idx)
        losses.append(epoch_sum / n)
    return losses
