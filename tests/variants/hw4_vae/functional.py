"""hw4_vae in the library style: torch.distributions, loss objects, nn.Sequential, DataLoader.

What a student who leans on PyTorch's own building blocks writes: ``Normal(...).rsample()``
for the reparameterised draw, the KL from ``torch.distributions.kl_divergence`` (through the
standard deviation, not the log-variance), the reconstruction term from a module-level
``nn.BCEWithLogitsLoss`` object, ``neg_elbo`` as the PyTorch VAE example writes it (summed BCE
plus summed KL, then divided by the batch size), ``nn.Sequential`` blocks, a module-level
``device = torch.device(...)`` line (a call the grader must run, because ``sample`` reads it),
and a ``DataLoader`` whose shuffling draws from the seeded ``torch.Generator``.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal
from torch.utils.data import DataLoader, TensorDataset

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def reparameterize(mu, logvar):
    """z ~ N(mu, diag(exp(logvar))), drawn with rsample (the reparameterised sample)."""
    std = torch.exp(0.5 * logvar)
    z = Normal(mu, std).rsample()
    return z


def kl_divergence(mu, logvar):
    """KL(q || N(0, I)) from torch.distributions, summed over the latent dimensions."""
    q = Normal(mu, logvar.mul(0.5).exp())
    prior = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    kl = torch.distributions.kl_divergence(q, prior).sum(dim=1)
    return kl


# One loss object for the whole notebook; reduction="none" keeps one value per pixel.
bce = nn.BCEWithLogitsLoss(reduction="none")


def bernoulli_log_likelihood(x, x_logits):
    """Minus the binary cross-entropy on the logits, summed over the pixels of each image."""
    log_likelihood = -bce(x_logits, x).sum(dim=1)
    return log_likelihood


def neg_elbo(x, x_logits, mu, logvar):
    """BCE summed over the batch plus KL summed over the batch, divided by the batch size."""
    reconstruction = F.binary_cross_entropy_with_logits(x_logits, x, reduction="sum")
    kld = kl_divergence(mu, logvar).sum()
    loss = (reconstruction + kld) / x.size(0)
    return loss


class VAE(nn.Module):
    """Sequential encoder trunk, two linear heads, Sequential decoder."""

    def __init__(self, input_dim=64, hidden_dim=128, latent_dim=4):
        super().__init__()
        self.input_dim = input_dim
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.ReLU())
        self.fc_mu = nn.Linear(hidden_dim, latent_dim)
        self.fc_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, input_dim),
        )

    def encode(self, x):
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar)), mu, logvar

    @torch.no_grad()
    def sample(self, n, generator=None):
        parameter = next(self.parameters())
        if generator is None:
            # torch's global random state of the notebook's device, then to the model.
            z = torch.randn(n, self.latent_dim, device=device)
        else:
            z = torch.randn(n, self.latent_dim, generator=generator, device=generator.device)
        x_mean = torch.sigmoid(self.decode(z.to(parameter)))
        return x_mean


def train_vae(model, X, epochs=30, lr=2e-3, batch_size=64, seed=0):
    parameter = next(model.parameters())
    X = X.to(device=parameter.device, dtype=parameter.dtype)
    generator = torch.Generator()
    generator.manual_seed(seed)
    loader = DataLoader(TensorDataset(X), batch_size=batch_size, shuffle=True,
                        generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(epochs):
        running = 0.0
        for (xb,) in loader:
            optimizer.zero_grad(set_to_none=True)
            x_logits, mu, logvar = model(xb)
            loss = neg_elbo(xb, x_logits, mu, logvar)
            loss.backward()
            optimizer.step()
            running += loss.item() * xb.size(0)
        losses.append(running / len(loader.dataset))
    return losses
