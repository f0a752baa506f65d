"""hw4_vae in a compact style: one-liners, a stable clamp form, one encoder head, tensor sums.

What a student who writes short tensor expressions writes: ``torch.randn_like`` in a one-line
draw, the KL in the log-variance form (``logvar.exp() - logvar``), the reconstruction term in
the clamp form of the stable binary cross-entropy (``max(l, 0) - l x + log1p(exp(-|l|))``,
exact for any logit), a loss summed over the batch and then divided by its size, an encoder
with a single ``2L`` output sliced into ``mu`` and ``logvar`` by a helper of their own, and an
epoch loop over a shuffled copy of the data that keeps the running sum on the device (in
float64) and calls ``.item()`` once per epoch.
"""
import torch
from torch import nn


def reparameterize(mu, logvar):
    return mu + torch.exp(logvar / 2) * torch.randn_like(mu)


def kl_divergence(mu, logvar):
    return 0.5 * (mu * mu + logvar.exp() - logvar - 1).sum(axis=1)


def stable_bce(logits, targets):
    """Elementwise BCE on logits: max(l, 0) - l * t + log(1 + exp(-|l|))."""
    return logits.clamp(min=0) - logits * targets + torch.log1p(torch.exp(-logits.abs()))


def bernoulli_log_likelihood(x, x_logits):
    return -stable_bce(x_logits, x).sum(axis=1)


def neg_elbo(x, x_logits, mu, logvar):
    per_image = kl_divergence(mu, logvar) - bernoulli_log_likelihood(x, x_logits)
    return per_image.sum() / x.shape[0]


def split_code(h, latent_dim):
    """The encoder's (N, 2L) output as (mu, logvar)."""
    return h[:, :latent_dim], h[:, latent_dim:]


class VAE(nn.Module):
    def __init__(self, input_dim=64, hidden_dim=128, latent_dim=4):
        super().__init__()
        self.input_dim = input_dim
        self.latent_dim = latent_dim
        self.enc = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, 2 * latent_dim))
        self.dec = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, input_dim))

    def encode(self, x):
        return split_code(self.enc(x), self.latent_dim)

    def decode(self, z):
        return self.dec(z)

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar)), mu, logvar

    def sample(self, n, generator=None):
        parameter = next(self.parameters())
        if generator is None:
            z = torch.randn(n, self.latent_dim)  # the global (CPU) random state
        else:
            z = torch.randn(n, self.latent_dim, generator=generator, device=generator.device)
        return self.decode(z.to(parameter)).sigmoid().detach()


def train_vae(model, X, epochs=30, lr=2e-3, batch_size=64, seed=0):
    parameter = next(model.parameters())
    X = X.to(device=parameter.device, dtype=parameter.dtype)
    shuffle = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        shuffled = X[torch.randperm(len(X), generator=shuffle).to(X.device)]
        total = torch.zeros((), dtype=torch.float64, device=X.device)
        for batch in shuffled.split(batch_size):
            loss = neg_elbo(batch, *model(batch))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach().double() * len(batch)
        losses.append((total / len(X)).item())
    return losses
