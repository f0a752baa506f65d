"""Write solutions/hw4_vae.ipynb, the instructor's master notebook for hw4_vae.

The student notebook is generated from the master by `dlgrade release hw4_vae`, which
replaces every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block by a NotImplementedError.
Edit this script, not the notebook, then run it:

    python solutions/_build_hw4_master.py

If reference code changes, check that every ``old`` text in
assignments/hw4_vae/mutants.py still occurs in the notebook.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from autograder.release import assemble_notebook, write_master
from autograder.release import code_cell as code
from autograder.release import markdown_cell as md

OUT = Path(__file__).resolve().parent / "hw4_vae.ipynb"


INTRO = r"""
# Homework 4: the variational autoencoder and its ELBO

A variational autoencoder (VAE) is a generative model with a latent variable: to make an
image, draw a code $z \sim p(z) = \mathcal{N}(0, I)$ from the prior, then draw the pixels from
$p_\theta(x \mid z)$, whose parameters a neural network, the **decoder**, computes from $z$.
Training maximises the likelihood of the data, which cannot be computed exactly; a second
network, the **encoder**, proposes for each image a Gaussian
$q_\phi(z \mid x) = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$ over the codes that could
have produced it, and both networks maximise a lower bound on the log-likelihood, the
**evidence lower bound** (ELBO):

$$\log p_\theta(x) \;\ge\; \mathrm{ELBO}(x) =
\mathbb{E}_{z \sim q_\phi(z \mid x)}\big[\log p_\theta(x \mid z)\big]
- \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big).$$

The first term asks the decoder to reconstruct $x$ from a code drawn for $x$; the second
keeps the codes close to the prior, so that codes drawn from the prior decode to plausible
images. In this homework you write every piece of the loss yourself and train a small VAE on
the 8x8 digits of scikit-learn.

You will implement:

- `reparameterize`: a differentiable sample from $q_\phi(z \mid x)$
- `kl_divergence`: the KL term, in closed form
- `bernoulli_log_likelihood`: the reconstruction term for pixels in $[0, 1]$
- `neg_elbo`: the loss, averaged over a batch
- `VAE`: the encoder and the decoder as one `nn.Module`
- `train_vae`: the training loop

**PyTorch and its autograd are allowed** (and expected): you write the formulas, torch
computes their gradients. Every function takes and returns torch tensors, works on whatever
device and in whatever floating dtype its inputs are on (`torch.float64` in some checks), and
must not move data to the CPU or to numpy on the way. Shapes use `N` for the batch size, `D`
for the number of pixels (`input_dim`) and `L` for the size of the code (`latent_dim`).

In each function, replace the `raise NotImplementedError` line under `# TODO: your code here`
with your code. After each function, `check("name")` runs a few public checks: small
hand-computed cases and properties every correct answer has. Passing them is a good sign, not
a guarantee: the grader runs more thorough hidden tests. Grading runs this notebook's definitions:
imports, functions, classes, and the module-level values they use (such as
`device = torch.device(...)` or a loss object), in notebook order. Top-level training loops,
plots and prints that nothing reads are not run, so your experiments cost nothing.
"""

IMPORTS = """
import torch
import torch.nn.functional as F
from torch import nn

from autograder import check
"""

# ---- reparameterize ------------------------------------------------------------------------

REPARAM_MD = r"""
## The reparameterisation trick

The encoder outputs, for each image, the mean `mu` and the **log-variance**
`logvar` $= \log \sigma^2$ of $q_\phi(z \mid x)$, both of shape `(N, L)`. (Predicting the
logarithm lets the network output any real number while $\sigma^2 = e^{\text{logvar}}$ stays
positive.) The standard deviation is therefore

$$\sigma = e^{\frac{1}{2}\text{logvar}}, \qquad \text{not } e^{\text{logvar}}.$$

To train the encoder, the gradient of the loss has to flow *through* the sample $z$ back to
`mu` and `logvar`. Sampling with `torch.normal(mu, sigma)` or
`torch.distributions.Normal(mu, sigma).sample()` gives the right distribution but cuts the
graph: no gradient reaches the encoder. Instead, draw the randomness first and make $z$ a
differentiable function of it:

$$\varepsilon \sim \mathcal{N}(0, I), \qquad z = \mu + \sigma \odot \varepsilon.$$

Then $\partial z / \partial \mu = 1$ and
$\partial z / \partial\, \text{logvar} = \tfrac{1}{2} \sigma \varepsilon = \tfrac{1}{2}(z - \mu)$.

Draw `eps` inside the function, with the shape, dtype and device of `mu`
(`torch.randn_like` does exactly that), independently for every entry: every image and every
latent dimension gets its own noise.
"""

REPARAM = '''
def reparameterize(mu, logvar):
    """A sample z ~ N(mu, diag(exp(logvar))) that gradients can flow through.

    mu, logvar: tensors of shape (N, L), the mean and the log-variance of q(z | x).
    Returns z of shape (N, L): z = mu + exp(0.5 * logvar) * eps, with eps ~ N(0, I) drawn
    here, one independent value per entry, on the device and with the dtype of mu.
    The arguments are read-only: do not modify them.
    """
    # BEGIN SOLUTION
    std = torch.exp(0.5 * logvar)
    eps = torch.randn_like(std)
    z = mu + std * eps
    # END SOLUTION
    return z
'''

# ---- KL ----------------------------------------------------------------------------------

KL_MD = r"""
## The KL term

Between two Gaussians the KL divergence has a closed form. For one latent dimension with
mean $\mu$ and log-variance $\ell = \log\sigma^2$, against the prior $\mathcal{N}(0, 1)$:

$$\mathrm{KL}\big(\mathcal{N}(\mu, \sigma^2) \,\|\, \mathcal{N}(0, 1)\big)
= \tfrac{1}{2}\big(\mu^2 + \sigma^2 - 1 - \log\sigma^2\big)
= \tfrac{1}{2}\big(\mu^2 + e^{\ell} - 1 - \ell\big).$$

The dimensions of $q_\phi(z \mid x)$ are independent, so the KL of the whole code is the
**sum** over the `L` latent dimensions (not the mean). Return one value per image, shape
`(N,)`; averaging over the batch happens later, in `neg_elbo`.

Sanity checks you can do in your head: the KL is zero exactly when $q$ is the prior
($\mu = 0$, $\ell = 0$), it is never negative, and it depends on $\mu$ only through $\mu^2$.
With $\mu = 2, \ell = 0$ it is 2; with $\mu = 0, \ell = 1$ it is $\tfrac{1}{2}(e - 2)$.
"""

KL = '''
def kl_divergence(mu, logvar):
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) of each row, summed over the latent dims.

    mu, logvar: tensors of shape (N, L).
    Returns a tensor of shape (N,).
    The arguments are read-only: do not modify them.
    """
    # BEGIN SOLUTION
    kl = 0.5 * torch.sum(mu ** 2 + torch.exp(logvar) - 1 - logvar, dim=1)
    # END SOLUTION
    return kl
'''

# ---- Bernoulli -------------------------------------------------------------------------------

BERNOULLI_MD = r"""
## The reconstruction term

The decoder outputs one **logit** $l_d$ per pixel; the pixel's Bernoulli mean is
$p_d = \operatorname{sigmoid}(l_d)$. The images are grey levels in $[0, 1]$, which we use
directly as the targets $x_d$ (no rounding to 0 or 1), so the log-likelihood of an image is

$$\log p_\theta(x \mid z) = \sum_{d=1}^{D} \big[x_d \log p_d + (1 - x_d) \log(1 - p_d)\big],$$

**summed** over the pixels, one value per image, shape `(N,)`. This is minus the binary
cross-entropy, and the function takes the *logits*, not the probabilities: do not apply a
sigmoid to them first.

Computing `torch.log(torch.sigmoid(l))` is numerically fragile: for a logit of 50,
`sigmoid` rounds to exactly 1 and `log(1 - p)` is `-inf`, although the true value is about
$-50$. Work with the logits instead: $\log p_d = -\operatorname{softplus}(-l_d)$ and
$\log(1 - p_d) = -\operatorname{softplus}(l_d)$, or use
`F.binary_cross_entropy_with_logits(..., reduction="none")` (mind the order of its
arguments and its sign). Your function must give finite, correct values for logits of ±50.
"""

BERNOULLI = '''
def bernoulli_log_likelihood(x, x_logits):
    """log p(x | z) of each image under independent Bernoulli pixels, summed over pixels.

    x: targets of shape (N, D), values in [0, 1].
    x_logits: the decoder's logits, shape (N, D); the pixel means are sigmoid(x_logits).
    Returns a tensor of shape (N,); stable for logits of +-50.
    The arguments are read-only: do not modify them.
    """
    # BEGIN SOLUTION
    log_p = -F.binary_cross_entropy_with_logits(x_logits, x, reduction="none")
    log_likelihood = log_p.sum(dim=1)
    # END SOLUTION
    return log_likelihood
'''

# ---- neg ELBO -------------------------------------------------------------------------------

ELBO_MD = r"""
## The loss: the negative ELBO

With one sample $z$ per image (drawn with `reparameterize`), the ELBO of image $n$ is
estimated by $\log p_\theta(x_n \mid z_n) - \mathrm{KL}_n$. We *minimise* its negative,
**averaged over the batch**:

$$\mathcal{L} = \frac{1}{N} \sum_{n=1}^{N}
\Big(-\log p_\theta(x_n \mid z_n) + \mathrm{KL}\big(q_\phi(z \mid x_n) \,\|\, p(z)\big)\Big).$$

Both terms are per image and are averaged the same way: summing the KL over the batch while
averaging the reconstruction (or the other way round) weighs them differently for every
batch size. Return a scalar tensor (shape `()`), so that `loss.backward()` works.

A useful sanity value: for logits of 0 (every pixel predicted as 1/2) and $q$ equal to the
prior, the loss is $D \log 2$, whatever the images.
"""

ELBO = '''
def neg_elbo(x, x_logits, mu, logvar):
    """The negative ELBO averaged over the batch: mean of (-log p(x | z) + KL).

    x: images (N, D) in [0, 1]; x_logits: the decoder's logits for z ~ q(z | x), (N, D);
    mu, logvar: the parameters of q(z | x), (N, L).
    Returns a scalar tensor. Any batch size works, N = 1 included.
    The arguments are read-only: do not modify them.
    """
    # BEGIN SOLUTION
    per_image = -bernoulli_log_likelihood(x, x_logits) + kl_divergence(mu, logvar)
    loss = per_image.mean()
    # END SOLUTION
    return loss
'''

# ---- the model ----------------------------------------------------------------------------

VAE_MD = r"""
## The model

Write the VAE as an `nn.Module` with multilayer perceptrons:

```
encoder:  x (N, D) -> Linear(D, H) -> ReLU -> two heads: Linear(H, L) -> mu
                                                          Linear(H, L) -> logvar
decoder:  z (N, L) -> Linear(L, H) -> ReLU -> Linear(H, D) -> x_logits
```

with `D = input_dim`, `H = hidden_dim`, `L = latent_dim`. The grader checks the contract,
not the layers: the methods, their shapes, and how well the trained model fits the data. A
deeper network is allowed as long as it trains within the time limit.

- `encode(x) -> (mu, logvar)`, each of shape `(N, L)`.
- `decode(z) -> x_logits` of shape `(N, D)`: **logits**, so no sigmoid at the end of the
  decoder (the loss applies it, inside `bernoulli_log_likelihood`).
- `forward(x) -> (x_logits, mu, logvar)`: encode, draw `z` with `reparameterize`, decode.
- `sample(n, generator=None)`: `n` new images: draw `z` of shape `(n, L)` from the prior
  $\mathcal{N}(0, I)$ with `torch.randn(..., generator=generator)`, decode, and return the pixel
  means `sigmoid(x_logits)`, shape `(n, D)`, values in $[0, 1]$. The generator makes samples
  reproducible (the same seed gives the same images); it may live on the CPU while the model
  is on a GPU, so draw `z` on the generator's device (`generator.device`), then move it to
  the model's device. With `generator=None`, use torch's global random state.
"""

VAE = '''
class VAE(nn.Module):
    """A variational autoencoder with Gaussian codes and Bernoulli pixels.

    input_dim D: pixels per image; hidden_dim H: width of the hidden layers;
    latent_dim L: size of the code z.
    """

    def __init__(self, input_dim=64, hidden_dim=128, latent_dim=4):
        super().__init__()
        self.input_dim = input_dim
        self.latent_dim = latent_dim
        # BEGIN SOLUTION
        self.encoder = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.ReLU())
        self.to_mu = nn.Linear(hidden_dim, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, input_dim))
        # END SOLUTION

    def encode(self, x):
        """x (N, D) -> (mu, logvar), each of shape (N, L)."""
        # BEGIN SOLUTION
        h = self.encoder(x)
        mu, logvar = self.to_mu(h), self.to_logvar(h)
        # END SOLUTION
        return mu, logvar

    def decode(self, z):
        """z (N, L) -> x_logits (N, D): logits, no sigmoid."""
        # BEGIN SOLUTION
        x_logits = self.decoder(z)
        # END SOLUTION
        return x_logits

    def forward(self, x):
        """x (N, D) -> (x_logits, mu, logvar), with z drawn by reparameterize."""
        # BEGIN SOLUTION
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        x_logits = self.decode(z)
        # END SOLUTION
        return x_logits, mu, logvar

    def sample(self, n, generator=None):
        """n images from the prior, as pixel means in [0, 1] of shape (n, D).

        generator: a torch.Generator (possibly on the CPU) drawing z, or None.
        """
        parameter = next(self.parameters())  # tells the model's device and dtype
        # BEGIN SOLUTION
        noise_device = generator.device if generator is not None else parameter.device
        z = torch.randn(n, self.latent_dim, generator=generator, device=noise_device,
                        dtype=parameter.dtype)
        with torch.no_grad():
            x_mean = torch.sigmoid(self.decode(z.to(parameter.device)))
        # END SOLUTION
        return x_mean
'''

# ---- training -------------------------------------------------------------------------------

TRAIN_MD = r"""
## Training

`train_vae(model, X, epochs=30, lr=2e-3, batch_size=64, seed=0)` trains the model in place
with Adam (learning rate `lr`) on `neg_elbo`, and returns the list of the `epochs` epoch
losses as Python floats. Each epoch visits every row of `X` once, in a new random order drawn
with a `torch.Generator` seeded with `seed` (`torch.randperm(len(X), generator=...)`), in
minibatches of `batch_size` rows (the last one may be smaller). For each minibatch: forward
pass, loss, `zero_grad`, `backward`, `step`. The loss of an epoch is the average of the
per-image losses over the epoch: the sum over batches of `loss.item() * len(batch)`, divided
by `len(X)`.

`X` is a float tensor of shape `(N, D)` with values in $[0, 1]$; the first line of the function
moves it to the model's device and dtype.
"""

TRAIN = '''
def train_vae(model, X, epochs=30, lr=2e-3, batch_size=64, seed=0):
    """Train model with Adam on neg_elbo; return the list of epoch losses (floats).

    X: float tensor (N, D) with values in [0, 1]. Shuffles every epoch with a
    torch.Generator seeded by seed; the epoch loss is the mean per-image loss of the epoch.
    X is read-only (do not modify it); the model is trained in place.
    """
    parameter = next(model.parameters())
    X = X.to(device=parameter.device, dtype=parameter.dtype)
    # BEGIN SOLUTION
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _epoch in range(epochs):
        order = torch.randperm(len(X), generator=generator).to(X.device)
        total = 0.0
        for start in range(0, len(X), batch_size):
            batch = X[order[start:start + batch_size]]
            x_logits, mu, logvar = model(batch)
            loss = neg_elbo(batch, x_logits, mu, logvar)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / len(X))
    # END SOLUTION
    return losses
'''

# ---- experiments ---------------------------------------------------------------------------

DIGITS_MD = r"""
## Experiments

Nothing below is graded, but the grader runs the same experiment: it trains a fresh
`VAE()` with your `train_vae(model, X_train)` (the default arguments) on the training split of
the digits, then measures the negative ELBO of the **test** split with its own estimator:
it takes `mu, logvar` from your `encode`, draws 8 codes per image itself, decodes them with
your `decode`, and averages $-\log p(x \mid z) + \mathrm{KL}$. It must be below **26.0 nats per
image**; a correct solution reaches about 24.7 (for comparison, an untrained model scores about
45, i.e. $64 \log 2$). `estimate_neg_elbo` below does the same with your functions.

Two details of the grader's run: the digits are disguised (their pixels shuffled; a fully
connected VAE learns them exactly as well), and the test images
go to copies of your trained model: a new `VAE()` loaded with its `state_dict()` in a fresh
process for `encode`, another for `decode`. Keep everything the model needs in its parameters
and buffers (an `nn.Module` does this by itself). The falling epoch losses earn their 2 points
only when the trained model beats one that ignores its input.
"""

DIGITS = '''
def load_digits_tensors():
    """The course split of sklearn's digits, scaled to [0, 1], as float32 tensors."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X_train, X_test = train_test_split(digits.data / 16.0, test_size=0.2, random_state=0,
                                       stratify=digits.target)
    return (torch.tensor(X_train, dtype=torch.float32),
            torch.tensor(X_test, dtype=torch.float32))


def estimate_neg_elbo(model, X, samples=8):
    """The average negative ELBO of the images X, with `samples` codes drawn per image."""
    with torch.no_grad():
        mu, logvar = model.encode(X)
        total = sum(neg_elbo(X, model.decode(reparameterize(mu, logvar)), mu, logvar).item()
                    for _ in range(samples))
    return total / samples


def show(images, columns=8):
    """Print 8x8 images in [0, 1] as text, side by side."""
    shades = " .:-=+*#%@"
    rows = images.detach().cpu().reshape(-1, 8, 8)
    for start in range(0, len(rows), columns):
        block = rows[start:start + columns]
        for line in range(8):
            print("  ".join("".join(shades[min(int(v * 10), 9)] for v in image[line])
                            for image in block))
        print()
'''

TRAIN_RUN = '''
torch.manual_seed(0)
X_train, X_test = load_digits_tensors()
model = VAE()
print(f"before training: test negative ELBO {estimate_neg_elbo(model, X_test):.2f}")
losses = train_vae(model, X_train)
for epoch in (1, 5, 10, 20, 30):
    print(f"epoch {epoch:2d}: training loss {losses[epoch - 1]:.2f}")
print(f"after training: test negative ELBO {estimate_neg_elbo(model, X_test):.2f} nats per image")
'''

SAMPLES_MD = r"""
### Reconstructions and samples

Top: test images; middle: their reconstructions (the decoded means, for $z = \mu$); bottom:
new images decoded from codes drawn from the prior. With only 4 latent dimensions the samples
are blurry, but most should look like digits.
"""

SAMPLES = '''
with torch.no_grad():
    mu, _ = model.encode(X_test[:8])
    show(X_test[:8])
    show(torch.sigmoid(model.decode(mu)))
show(model.sample(16, generator=torch.Generator().manual_seed(0)))
'''

ALL_CHECKS_MD = r"""
## All public checks

Run every public check once more before you submit.
"""

ALL_CHECKS = '''
for name in ["reparameterize", "kl_divergence", "bernoulli_log_likelihood", "neg_elbo", "VAE",
             "train_vae"]:
    check(name)
'''


def build() -> nbformat.NotebookNode:
    cells = [md(INTRO), code(IMPORTS)]
    sections = [
        ("reparameterize", REPARAM_MD, REPARAM),
        ("kl_divergence", KL_MD, KL),
        ("bernoulli_log_likelihood", BERNOULLI_MD, BERNOULLI),
        ("neg_elbo", ELBO_MD, ELBO),
        ("VAE", VAE_MD, VAE),
        ("train_vae", TRAIN_MD, TRAIN),
    ]
    for name, text, source in sections:
        cells += [md(text), code(source), code(f'check("{name}")')]
    cells += [md(DIGITS_MD), code(DIGITS), code(TRAIN_RUN), md(SAMPLES_MD), code(SAMPLES),
              md(ALL_CHECKS_MD), code(ALL_CHECKS)]
    return assemble_notebook(cells, "hw4")


def main() -> None:
    write_master(build(), OUT)


if __name__ == "__main__":
    main()
