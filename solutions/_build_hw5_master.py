"""Write solutions/hw5_gan.ipynb, the instructor's master notebook for hw5_gan.

The student notebook is generated from the master by `dlgrade release hw5_gan`, which
replaces every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block by a NotImplementedError.
Edit this script, not the notebook, then run it:

    python solutions/_build_hw5_master.py

If reference code changes, check that every ``old`` text in
assignments/hw5_gan/mutants.py still occurs in the notebook.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from autograder.release import assemble_notebook, write_master
from autograder.release import code_cell as code
from autograder.release import markdown_cell as md

OUT = Path(__file__).resolve().parent / "hw5_gan.ipynb"


INTRO = r"""
# Homework 5: training a generative adversarial network

A generative adversarial network (GAN) learns to produce samples that look like the training
data without ever writing down a likelihood. Two networks play a game:

- the **generator** $G$ turns a noise vector $z$, drawn from a simple distribution, into a
  sample $G(z)$;
- the **discriminator** $D$ looks at a sample and outputs a score: how real it believes the
  sample is.

The discriminator is trained to tell real samples from generated ones; the generator is
trained to fool the discriminator. In the original formulation (Goodfellow et al., 2014) $D$
outputs a probability $D(x) \in (0, 1)$ and the two networks play the minimax game

$$\min_G \max_D \;\; \mathbb{E}_{x \sim p_\text{data}}\big[\log D(x)\big]
+ \mathbb{E}_{z \sim p(z)}\big[\log\big(1 - D(G(z))\big)\big].$$

Training alternates one gradient step for each player. Getting the details of that loop
right (which network gets which gradient, what is detached, what is zeroed when) is the
point of this homework: each mistake still "runs", but the GAN silently learns something
else or nothing at all.

The data are points in the plane drawn from a ring of four Gaussians: easy to look at, and a
classic test of **mode collapse**, the failure in which the generator covers only some of the
modes of the data.

You will implement:

- `sample_noise`: the generator's input
- `discriminator_loss`, `generator_loss`: the GAN losses, on logits
- `ls_discriminator_loss`, `ls_generator_loss`: the least-squares GAN losses
- `build_generator`, `build_discriminator`: two small multilayer perceptrons
- `gan_step`: one update of each network
- `train_gan`: the training loop

**PyTorch and its autograd are allowed** (and expected). Every function takes and returns
torch tensors and must work on whatever device its inputs (or the models) are on: do not
move data to the CPU or to numpy on the way. In each function, replace the
`raise NotImplementedError` line under `# TODO: your code here` with your code. After each
function, `check("name")` runs a few public checks: small hand-computed cases and properties
every correct answer has. Passing them is a good sign, not a guarantee: the grader runs more
thorough hidden tests. Grading runs this notebook's definitions:
imports, functions, classes, and the module-level values they use (such as
`device = torch.device(...)` or a loss object), in notebook order. Top-level training loops,
plots and prints that nothing reads are not run, so your experiments cost nothing.
"""

IMPORTS = """
import math

import torch
import torch.nn.functional as F
from torch import nn

from autograder import check
"""

# ---- noise -----------------------------------------------------------------------------------

NOISE_MD = r"""
## The generator's noise

The generator's input is a noise vector $z$ with `dim` entries, each **uniform on
$(-1, 1)$**, independently for every entry of the batch. `torch.rand` draws uniformly on
$[0, 1)$; rescale it. (Whether the endpoint $-1$ itself can occur does not matter.)

`generator` is an optional `torch.Generator`: when it is given, draw with it (pass
`generator=generator` to `torch.rand`), so that the same seed gives the same noise; draw on
the generator's device (`generator.device`), since torch refuses to draw on another device
with it. When it is `None`, use torch's global random state. Return a float tensor of shape
`(batch_size, dim)`.

Sanity values: the entries have mean 0 and standard deviation $1/\sqrt{3} \approx 0.577$.
"""

NOISE = '''
def sample_noise(batch_size, dim, generator=None):
    """Noise for the generator: a tensor (batch_size, dim), uniform on (-1, 1).

    generator: a torch.Generator to draw with (on its device), or None for torch's global
    random state.
    The arguments are read-only: do not modify them.
    """
    # BEGIN SOLUTION
    device = generator.device if generator is not None else None
    noise = 2 * torch.rand(batch_size, dim, generator=generator, device=device) - 1
    # END SOLUTION
    return noise
'''

# ---- the GAN losses ----------------------------------------------------------------------------

LOSSES_MD = r"""
## The GAN losses, on logits

Our discriminator outputs a **logit** $s = \operatorname{logit} D(x)$, any real number,
instead of the probability $D(x) = \sigma(s)$; the losses apply the sigmoid themselves, in
the numerically stable form of the binary cross-entropy on logits,

$$\operatorname{BCE}(s, y) = -\big[y \log\sigma(s) + (1 - y)\log\big(1 - \sigma(s)\big)\big],$$

which `F.binary_cross_entropy_with_logits(s, y)` computes (averaged over its entries) without
ever forming $\log\sigma(s)$ for a logit of $-200$, where $\sigma(s)$ rounds to 0.

**The discriminator** maximises the objective above, i.e. it minimises the cross-entropy of
a classifier that labels real samples 1 and generated samples 0:

$$\ell_D = \frac{1}{N_r}\sum_i \operatorname{BCE}\big(s^\text{real}_i, 1\big)
+ \frac{1}{N_f}\sum_j \operatorname{BCE}\big(s^\text{fake}_j, 0\big):$$

the **sum of two means**, one over the real batch and one over the fake batch (not their
average). With every logit 0 (the discriminator cannot tell), $\ell_D = 2\log 2$.

**The generator** should minimise $\log(1 - D(G(z)))$ according to the minimax game. That
objective *saturates*: early in training the discriminator rejects the fakes confidently,
$D(G(z)) \approx 0$, and $\log(1 - D)$ is flat there, so the generator gets almost no gradient
exactly when it most needs one. The **non-saturating** loss instead maximises
$\log D(G(z))$, i.e. it labels the fakes as real:

$$\ell_G = \frac{1}{N_f}\sum_j \operatorname{BCE}\big(s^\text{fake}_j, 1\big).$$

Its gradient with respect to a fake logit $s$ is $(\sigma(s) - 1)/N_f$, close to $-1/N_f$
when $D$ rejects the fake ($s \ll 0$). With every logit 0, $\ell_G = \log 2$.

Both functions take logits of any shape (the discriminator returns `(N, 1)`) and return a
scalar tensor (shape `()`), so that `loss.backward()` works. Build the labels with
`torch.ones_like` / `torch.zeros_like`, which follow the logits' shape, dtype and device.
"""

D_LOSS = '''
def discriminator_loss(logits_real, logits_fake):
    """The discriminator's loss: BCE(logits_real, 1) + BCE(logits_fake, 0), two means summed.

    logits_real: D's logits for real samples; logits_fake: D's logits for generated samples.
    Returns a scalar tensor. Any batch size works (N = 1 too, and the two batches may differ
    in size); finite and right for logits of +-200.
    The arguments are read-only: do not modify them.
    """
    # BEGIN SOLUTION
    loss_real = F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
    loss_fake = F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
    loss = loss_real + loss_fake
    # END SOLUTION
    return loss
'''

G_LOSS = '''
def generator_loss(logits_fake):
    """The non-saturating generator loss: BCE(logits_fake, 1), a mean over the fakes.

    logits_fake: D's logits for generated samples. Returns a scalar tensor.
    Any batch size works, N = 1 included; finite and right for logits of +-200.
    The arguments are read-only: do not modify them.
    """
    # BEGIN SOLUTION
    loss = F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))
    # END SOLUTION
    return loss
'''

# ---- least squares -----------------------------------------------------------------------------

LS_MD = r"""
## Least-squares GAN losses

The least-squares GAN (Mao et al., 2017) replaces the cross-entropy by squared errors on the
discriminator's raw scores $s$ (no sigmoid), with target 1 for real and 0 for fake samples:

$$\ell_D^\text{LS} = \tfrac{1}{2}\,\operatorname{mean}_i\big(s^\text{real}_i - 1\big)^2
+ \tfrac{1}{2}\,\operatorname{mean}_j\big(s^\text{fake}_j\big)^2, \qquad
\ell_G^\text{LS} = \tfrac{1}{2}\,\operatorname{mean}_j\big(s^\text{fake}_j - 1\big)^2.$$

The generator's gradient does not vanish while its fakes score far from 1, however
confidently they are rejected. Return scalar tensors. Sanity values: a perfect discriminator
(real scores 1, fake scores 0) has $\ell_D^\text{LS} = 0$ and leaves the generator with
$\ell_G^\text{LS} = \tfrac{1}{2}$.
"""

LS_D = '''
def ls_discriminator_loss(scores_real, scores_fake):
    """0.5 * mean((scores_real - 1)^2) + 0.5 * mean(scores_fake^2), a scalar tensor.

    The arguments are read-only: do not modify them.
    """
    # BEGIN SOLUTION
    loss = 0.5 * torch.mean((scores_real - 1) ** 2) + 0.5 * torch.mean(scores_fake ** 2)
    # END SOLUTION
    return loss
'''

LS_G = '''
def ls_generator_loss(scores_fake):
    """0.5 * mean((scores_fake - 1)^2), a scalar tensor.

    The arguments are read-only: do not modify them.
    """
    # BEGIN SOLUTION
    loss = 0.5 * torch.mean((scores_fake - 1) ** 2)
    # END SOLUTION
    return loss
'''

# ---- the networks -------------------------------------------------------------------------------

NETS_MD = r"""
## The two networks

Both networks are multilayer perceptrons with **two hidden layers** of `hidden_dim` units,
each followed by a `LeakyReLU` with negative slope 0.2 (a plain ReLU can leave units dead for
good, which hurts the small networks of a GAN), and a **linear output layer**:

```
generator:      z (N, noise_dim) -> Linear(noise_dim, H) -> LeakyReLU(0.2)
                                 -> Linear(H, H) -> LeakyReLU(0.2) -> Linear(H, out_dim)
discriminator:  x (N, in_dim)    -> Linear(in_dim, H) -> LeakyReLU(0.2)
                                 -> Linear(H, H) -> LeakyReLU(0.2) -> Linear(H, 1)
```

No activation at the end: the generator's samples may lie anywhere in the plane (our data
sit on a circle of radius 2, out of reach of a `tanh`), and the discriminator returns
**logits**, shape `(N, 1)`, which the losses turn into probabilities. Return the networks as
`nn.Module`s, for example `nn.Sequential`, with their layers registered in this order (the
grader loads its own weights into your networks layer by layer, and counts their parameters:
4610 for `build_generator()` and 4417 for `build_discriminator()`).
"""

BUILD_G = '''
def build_generator(noise_dim=4, hidden_dim=64, out_dim=2):
    """The generator: an MLP noise_dim -> H -> H -> out_dim, LeakyReLU(0.2), linear output."""
    # BEGIN SOLUTION
    model = nn.Sequential(
        nn.Linear(noise_dim, hidden_dim), nn.LeakyReLU(0.2),
        nn.Linear(hidden_dim, hidden_dim), nn.LeakyReLU(0.2),
        nn.Linear(hidden_dim, out_dim),
    )
    # END SOLUTION
    return model
'''

BUILD_D = '''
def build_discriminator(in_dim=2, hidden_dim=64):
    """The discriminator: an MLP in_dim -> H -> H -> 1, LeakyReLU(0.2), returning logits."""
    # BEGIN SOLUTION
    model = nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.LeakyReLU(0.2),
        nn.Linear(hidden_dim, hidden_dim), nn.LeakyReLU(0.2),
        nn.Linear(hidden_dim, 1),
    )
    # END SOLUTION
    return model
'''

# ---- one step ---------------------------------------------------------------------------------

STEP_MD = r"""
## One training step

`gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g)` updates each network once, **discriminator
first**:

1. **Discriminator.** Generate the fakes `G(z_d)` and **detach** them: this step trains `D`
   only, and no gradient should flow into `G`. Compute `discriminator_loss` on `D(x_real)` and
   `D` of the fakes; zero `D`'s gradients, backpropagate, and step `opt_D`.
2. **Generator.** Generate *fresh* fakes `G(z_g)` (not detached: this time the gradient must
   reach `G`'s parameters, through `D`), compute `generator_loss` on `D`'s logits for them
   (the discriminator just updated in step 1), zero `G`'s gradients, backpropagate, and step
   `opt_G` only.

Mind what `backward()` does: it **adds** the new gradients to whatever the parameters'
`.grad` already hold, which is why each optimizer's `zero_grad()` comes before its network's
`backward()`. The generator's `backward()` also fills `D`'s `.grad` (the graph runs through
`D`); those gradients must never reach `opt_D.step()`.

Return the two losses as Python floats (`loss.item()`), `d_loss` before `g_loss`. `x_real`,
`z_d` and `z_g` are already on the models' device.
"""

STEP = '''
def gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g):
    """One discriminator update on x_real and G(z_d) (detached), then one generator update
    on G(z_g). Returns (d_loss, g_loss) as Python floats.
    x_real, z_d and z_g are read-only; the networks and optimizers are updated in place.
    """
    # BEGIN SOLUTION
    # The discriminator: real samples against fakes that no gradient flows back from.
    fake = G(z_d).detach()
    d_loss = discriminator_loss(D(x_real), D(fake))
    opt_D.zero_grad()
    d_loss.backward()
    opt_D.step()

    # The generator: fresh fakes, judged by the discriminator just updated.
    g_loss = generator_loss(D(G(z_g)))
    opt_G.zero_grad()
    g_loss.backward()
    opt_G.step()
    # END SOLUTION
    return d_loss.item(), g_loss.item()
'''

# ---- training -------------------------------------------------------------------------------

TRAIN_MD = r"""
## Training

`train_gan(G, D, data_sampler, steps=1000, batch_size=256, noise_dim=4, seed=0)` trains both
networks in place and returns the history of the losses:

- one Adam optimizer per network, each with learning rate `1e-3` and
  `betas=(0.5, 0.999)` (a smaller first-moment decay than Adam's default 0.9, the usual
  choice for GANs: the target each network chases keeps moving);
- one `torch.Generator` seeded with `seed` (`torch.Generator().manual_seed(seed)`, on the
  CPU) draws **all** the randomness of the loop: the real batches, from
  `data_sampler(batch_size, generator)`, which returns a `(batch_size, 2)` tensor, and the noise
  batches `z_d` and `z_g`, from your `sample_noise(batch_size, noise_dim, generator)`. The same
  seed then gives the same training run;
- each of the `steps` steps draws a real batch and two noise batches, moves them to the
  models' device and dtype, and calls your `gan_step` once;
- the history is a dict `{"d_loss": [...], "g_loss": [...]}` of the `steps` losses returned by
  `gan_step`, in order.
"""

TRAIN = '''
def train_gan(G, D, data_sampler, steps=1000, batch_size=256, noise_dim=4, seed=0):
    """Train G and D in place with Adam (lr 1e-3, betas (0.5, 0.999)), one gan_step per step.

    data_sampler(batch_size, generator) -> (batch_size, 2) tensor of real samples.
    All randomness comes from one torch.Generator seeded with seed.
    Returns {"d_loss": [steps floats], "g_loss": [steps floats]}.
    G and D are trained in place; data_sampler is only called.
    """
    parameter = next(G.parameters())  # tells the models' device and dtype
    # BEGIN SOLUTION
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    generator = torch.Generator().manual_seed(seed)
    history = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
        x_real = data_sampler(batch_size, generator)
        z_d = sample_noise(batch_size, noise_dim, generator)
        z_g = sample_noise(batch_size, noise_dim, generator)
        x_real, z_d, z_g = (t.to(device=parameter.device, dtype=parameter.dtype)
                            for t in (x_real, z_d, z_g))
        d_loss, g_loss = gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g)
        history["d_loss"].append(d_loss)
        history["g_loss"].append(g_loss)
    # END SOLUTION
    return history
'''

# ---- experiments ---------------------------------------------------------------------------

RING_MD = r"""
## Experiments: the ring of four Gaussians

Nothing below is graded, but the grader runs the same experiment. It trains
`build_generator()` and `build_discriminator()` with
`train_gan(G, D, sampler, steps=1000, batch_size=256, noise_dim=4)` on four Gaussians of
standard deviation 0.1 centred on a circle of radius 2, then draws 2001 samples with noise
of its own from the trained generator's parameters (its three `Linear` layers, as
`state_dict()` lists them, run by the grader as the contract's network) and scores them as
`ring_scores` below does (the history earns its point only when the samples meet one of the
two measures):

- a sample is **high quality** if it lies within 3 standard deviations (0.3) of the nearest
  centre; more than **60%** of the samples must be;
- a mode is **covered** if at least **5%** of all samples are high-quality samples of it (a
  fifth of its fair share of 25%: a mode the generator has dropped gets almost none); all
  **four** modes must be covered.

A correct solution reaches a quality of about 0.8-0.9 with every mode holding 10-30% of the
samples, on every seed we tried.
"""

RING = '''
# The ring: four Gaussians of standard deviation 0.1 centred on a circle of radius 2.
RING_CENTERS = [[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]]
RING_STD = 0.1


def ring_sampler():
    """data_sampler(batch_size, generator): an equal mixture of the ring's Gaussians."""
    centers = torch.tensor(RING_CENTERS)

    def sample(batch_size, generator=None):
        which = torch.randint(len(centers), (batch_size,), generator=generator)
        return centers[which] + RING_STD * torch.randn(batch_size, 2, generator=generator)
    return sample


def ring_scores(samples):
    """(fraction of high-quality samples, fraction of all samples near each centre)."""
    centers = torch.tensor(RING_CENTERS, dtype=torch.float64)
    distance = torch.cdist(samples.detach().cpu().double(), centers)
    nearest = distance.argmin(dim=1)
    good = distance.min(dim=1).values < 3 * RING_STD
    shares = [float((good & (nearest == k)).double().mean()) for k in range(len(centers))]
    return float(good.double().mean()), shares


def show_points(points, size=2.6, width=41, height=21):
    """A text scatter plot of 2-D points in [-size, size]^2."""
    grid = [[" "] * width for _ in range(height)]
    for x, y in points.detach().cpu().tolist():
        col = round((x + size) / (2 * size) * (width - 1))
        row = round((size - y) / (2 * size) * (height - 1))
        if 0 <= row < height and 0 <= col < width:
            grid[row][col] = "#" if grid[row][col] != " " else "."
    print("\\n".join("".join(line) for line in grid))
'''

RING_RUN = '''
torch.manual_seed(0)
G, D = build_generator(), build_discriminator()
history = train_gan(G, D, ring_sampler(), steps=1000, batch_size=256, noise_dim=4, seed=0)
for step in (0, 99, 499, 999):
    print(f"step {step + 1:4d}: d_loss {history['d_loss'][step]:.3f}  "
          f"g_loss {history['g_loss'][step]:.3f}")
with torch.no_grad():
    samples = G(sample_noise(2001, 4, torch.Generator().manual_seed(1)))
quality, shares = ring_scores(samples)
print(f"high-quality fraction {quality:.3f}; share of each mode "
      f"{[round(s, 3) for s in shares]}")
show_points(samples)
'''

LOSS_CURVES_MD = r"""
### What the losses say

GAN losses do not go down the way a classifier's loss does: the two players chase each
other. At the equilibrium the discriminator cannot tell real from fake, $D = \tfrac{1}{2}$
everywhere, so $\ell_D$ hovers around $2\log 2 \approx 1.386$ and $\ell_G$ around
$\log 2 \approx 0.693$. A discriminator loss that falls to 0 while the generator loss grows
means the discriminator has won and the generator no longer learns. Try it: train with the
saturating generator loss, or without the `detach`, or without `opt_D.zero_grad()`, and see
what becomes of the samples and of the losses.
"""

LOSS_CURVES = '''
window = 50
for start in range(0, len(history["d_loss"]), 200):
    d = sum(history["d_loss"][start:start + window]) / window
    g = sum(history["g_loss"][start:start + window]) / window
    print(f"steps {start + 1:4d}-{start + window:4d}: mean d_loss {d:.3f}, mean g_loss {g:.3f}")
print(f"2 log 2 = {2 * math.log(2):.3f}, log 2 = {math.log(2):.3f}")
'''

ALL_CHECKS_MD = r"""
## All public checks

Run every public check once more before you submit.
"""

ALL_CHECKS = '''
for name in ["sample_noise", "discriminator_loss", "generator_loss", "ls_discriminator_loss",
             "ls_generator_loss", "build_generator", "build_discriminator", "gan_step",
             "train_gan"]:
    check(name)
'''


def build() -> nbformat.NotebookNode:
    cells = [md(INTRO), code(IMPORTS)]
    sections = [
        (NOISE_MD, [("sample_noise", NOISE)]),
        (LOSSES_MD, [("discriminator_loss", D_LOSS), ("generator_loss", G_LOSS)]),
        (LS_MD, [("ls_discriminator_loss", LS_D), ("ls_generator_loss", LS_G)]),
        (NETS_MD, [("build_generator", BUILD_G), ("build_discriminator", BUILD_D)]),
        (STEP_MD, [("gan_step", STEP)]),
        (TRAIN_MD, [("train_gan", TRAIN)]),
    ]
    for text, functions in sections:
        cells.append(md(text))
        for name, source in functions:
            cells += [code(source), code(f'check("{name}")')]
    cells += [md(RING_MD), code(RING), code(RING_RUN), md(LOSS_CURVES_MD), code(LOSS_CURVES),
              md(ALL_CHECKS_MD), code(ALL_CHECKS)]
    return assemble_notebook(cells, "hw5")


def main() -> None:
    write_master(build(), OUT)


if __name__ == "__main__":
    main()
