"""The helpers and probes of hw4_vae's hidden tests (test_hw4_vae.py): tensors on the device,
autograd through the worker, the contract's composites around a student's own parts, the gate
against trivial implementations, the grader's ELBO estimator and the train_vae probe.

The test module gets them through the ``probes`` fixture below: run with
``--import-mode=importlib``, it cannot import this conftest.
"""

import numpy as np
import torch

from autograder.testing import (CheckFailure, StudentCodeError, StudentTimeout, UpstreamFailure,
                                disguise, expect_scalar, expect_tensor, expect_tuple, own_parts,
                                probes_fixture, type_name)
from autograder.testing import checked_grad_call as grad_call


# ---- tensors, autograd through the worker, the student's own parts -------------------------------

def tensor(array, device, *, dtype=torch.float64, requires_grad=False):
    return torch.tensor(np.asarray(array), dtype=dtype, device=device,
                        requires_grad=requires_grad)


def expect_gradient(grad, of, what, *, shape, device, inputs=None) -> np.ndarray:
    if grad is None:
        raise CheckFailure(
            f"no gradient reached {of} through {what}: the output must be computed from {of} "
            "with differentiable torch operations (no .detach(), .item(), numpy or "
            ".sample() on the way)", what=what, inputs=inputs)
    return expect_tensor(grad, f"gradient of {what} with respect to {of}", shape=shape,
                         dtype=np.float64, device=device, inputs=inputs)


def reference_outputs(fn, arrays, upstream=None):
    """The reference in this process on CPU float64: output and the gradient of each input."""
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    objective = out if upstream is None else (out * torch.tensor(upstream)).sum()
    objective.backward()
    return out.detach().numpy(), [leaf.grad.numpy() for leaf in leaves]


class StudentOp(torch.autograd.Function):
    """A student's function inside this process's autograd: forward runs it in the worker,
    backward asks the worker for its vector-Jacobian product. With it the grader computes a
    composite as the contract defines it around the student's own parts, so a wrong part costs
    only in its own tests (see one_of)."""

    @staticmethod
    def forward(ctx, fn, name, device, *args):
        ctx.fn, ctx.name, ctx.device = fn, name, device
        ctx.arrays = [a.detach().numpy() for a in args]
        try:
            value = expect_tensor(fn(*(tensor(a, device) for a in ctx.arrays)), name,
                                  shape=None, device=device)
        except (CheckFailure, StudentCodeError, StudentTimeout) as exc:
            raise UpstreamFailure(f"your {name} fails here: {exc}") from None
        return torch.tensor(value)

    @staticmethod
    def backward(ctx, grad_out):
        wanted = ctx.needs_input_grad[3:]
        try:
            _, grads = grad_call(ctx.fn, ctx.name, *(tensor(a, ctx.device, requires_grad=w)
                                                     for a, w in zip(ctx.arrays, wanted,
                                                                     strict=True)),
                                 upstream=grad_out.numpy())
            out = [torch.tensor(expect_gradient(g, f"argument {i + 1}", ctx.name,
                                                shape=a.shape, device=ctx.device))
                   if w else None
                   for i, (g, a, w) in enumerate(zip(grads, ctx.arrays, wanted, strict=True))]
        except (CheckFailure, StudentCodeError, StudentTimeout) as exc:
            raise UpstreamFailure(f"your {ctx.name} fails here: {exc}") from None
        return (None, None, None, *out)


def with_own_parts(compute):
    """``compute()`` when the student's parts allow it; None when one of them fails or gives
    something the contract's composite cannot use (the composite is then judged against the
    reference's parts alone), and None when every number it gives is zero: a composite of
    do-nothing parts is matched by a do-nothing composite, which must earn nothing."""
    value = own_parts(compute, errors=(Exception,))  # torch adds RuntimeError and more
    if value is None:
        return None
    numbers = [np.asarray(v, dtype=np.float64) for v in _numbers(value)]
    if numbers and not any(np.any(n) for n in numbers):
        return None
    return value


def _numbers(value):
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, (tuple, list)):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, (float, int, np.ndarray, np.floating)) else []


def runnable_rows(student, device, n, latent):
    """``n``, or ``latent`` where the student's kl_divergence gives n rows another shape than
    (n,) (summed over the batch axis, it gives (latent,)): that mistake costs in its own
    tests, and with as many rows as latent dimensions the composites built on it still run
    and are judged with it."""
    try:
        kl = student.kl_divergence(tensor(np.zeros((n, latent)), device),
                                   tensor(np.zeros((n, latent)), device))
        shape = expect_tensor(kl, "kl_divergence", shape=None).shape
    except Exception:  # noqa: BLE001 - a failing kl_divergence is its tests' business
        return n
    return n if shape in ((n,), ()) else latent


def own_neg_elbo(student, device):
    """The contract's neg_elbo built on the student's bernoulli_log_likelihood and
    kl_divergence, differentiable here."""
    def neg_elbo(x, x_logits, mu, logvar):
        log_likelihood = StudentOp.apply(student.bernoulli_log_likelihood,
                                         "bernoulli_log_likelihood", device, x, x_logits)
        kl = StudentOp.apply(student.kl_divergence, "kl_divergence", device, mu, logvar)
        return (kl - log_likelihood).mean()
    return neg_elbo


def images(rng, n, d):
    """Grey levels in [0, 1] with exact 0s and 1s among them, like the digits."""
    x = rng.uniform(0, 1, size=(n, d))
    x[rng.uniform(size=(n, d)) < 0.3] = 0.0
    x[rng.uniform(size=(n, d)) < 0.1] = 1.0
    return x


def latent_params(rng, n, latent):
    return 1.5 * rng.standard_normal((n, latent)), rng.uniform(-2.0, 1.5, size=(n, latent))


# ---- the gate against trivial implementations (the null audit): see the test module --------------

def _constant(values) -> str:
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0 or not np.all(flat == flat[0]):
        return ""
    word = {0.0: "zeros", 1.0: "ones"}.get(float(flat[0]), f"the constant {flat[0]:.4g}")
    return f"yours returned {word} for every input"


def degenerate(values, what, *, inputs=None) -> str:
    """Why ``values`` (a student's result) shows a function that computes nothing: constant,
    or equal to one of ``inputs`` (name -> array); "" when it computes something."""
    why = _constant(values)
    for name, array in (inputs or {}).items():
        if not why and np.shape(values) == np.shape(array) and np.array_equal(values, array):
            why = f"yours returned its input {name} unchanged"
    if not why:
        return ""
    return (f"{what}: this property is checked only for a function that computes something: "
            f"{why}")


def require_computed(reason: str) -> None:
    """Inside a part: lose it when ``reason`` (from degenerate) is not empty."""
    if reason:
        raise CheckFailure(reason)


# ---- neg_elbo ------------------------------------------------------------------------------------

def expect_loss(value, what, device, inputs=None) -> float:
    return float(expect_tensor(value, what, shape=(), dtype=np.float64, device=device,
                               inputs=inputs))


# ---- reparameterize ------------------------------------------------------------------------------

def correlation(a, b):
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / denom) if denom > 0 else 1.0


# ---- the model -----------------------------------------------------------------------------------

SMALL = dict(input_dim=10, hidden_dim=7, latent_dim=3)


def small_model(student, device):
    model = student.VAE(**SMALL)
    model.to(device)
    return model


def reparameterize_is_random(student, mu, logvar, device) -> bool:
    """Whether the student's reparameterize draws a new z per call: a forward that decodes
    its output can be random only then (otherwise that is reparameterize's mistake, charged in
    its own tests). True where it cannot be told (it fails: forward may not use it)."""
    try:
        draws = [expect_tensor(student.reparameterize(tensor(mu, device, dtype=torch.float32),
                                                      tensor(logvar, device,
                                                             dtype=torch.float32)),
                               "reparameterize", shape=mu.shape, device=device)
                 for _ in range(2)]
    except (CheckFailure, StudentCodeError, StudentTimeout):
        return True
    return not np.allclose(*draws, rtol=1e-6, atol=1e-7)


def sample_reproducibility(model, make, device) -> dict:
    """Whether model.sample draws with its generator: images for generators seeded 5, 5, 6."""
    draws = []
    for seed in (5, 5, 6):
        generator = make("torch.Generator")  # on the CPU, as the notebook says
        generator.manual_seed(seed)
        draws.append(expect_tensor(model.sample(4, generator=generator),
                                   "VAE.sample(4, generator=...)", shape=(4, 10), device=device))
    return {"same seed, same images": np.array_equal(draws[0], draws[1]),
            "other seed, other images": not np.array_equal(draws[0], draws[2])}


# ---- training ------------------------------------------------------------------------------------

LATENT, PIXELS = 4, 64
ESTIMATOR_SEED = 20240604
ESTIMATOR_SAMPLES = 8


def estimate_neg_elbo(reference, model, X, device, samples=ESTIMATOR_SAMPLES, decoder=None):
    """The grader's estimate of the mean negative ELBO of the rows of X under the model.

    Only encode and decode of the student's model are used: mu and logvar come from encode,
    the codes z are drawn here with a fixed seed (``samples`` per image), and the loss is the
    reference's neg_elbo in float64 on this process's CPU. ``decoder``, when given, is called
    after encode and returns the model whose decode is used (the trained check's copy in a
    fresh worker, which has never seen X).
    """
    x = tensor(X, device, dtype=torch.float32)
    n = len(X)
    mu, logvar = (expect_tensor(v, f"VAE.encode {name}", shape=(n, LATENT), device=device)
                  for name, v in zip(("mu", "logvar"),
                                     expect_tuple(model.encode(x), 2, "VAE.encode"), strict=True))
    eps = np.random.default_rng(ESTIMATOR_SEED).standard_normal((samples, n, LATENT))
    with np.errstate(over="ignore", invalid="ignore"):
        z = (mu + np.exp(0.5 * logvar) * eps).reshape(samples * n, LATENT)
    if not np.all(np.isfinite(z)):
        raise CheckFailure("VAE.encode returned a logvar so large that exp(logvar / 2) "
                           "overflows")
    decoding = decoder() if decoder is not None else model
    logits = expect_tensor(decoding.decode(tensor(z, device, dtype=torch.float32)), "VAE.decode",
                           shape=(samples * n, PIXELS), device=device)
    with torch.no_grad():
        loss = reference.neg_elbo(torch.tensor(np.tile(X, (samples, 1))), torch.tensor(logits),
                                  torch.tensor(np.tile(mu, (samples, 1))),
                                  torch.tensor(np.tile(logvar, (samples, 1))))
    return float(loss)


def expect_losses(value, epochs, what="train_vae"):
    if type(value) is not list:
        raise CheckFailure(f"{what} should return a list of epoch losses, got "
                           f"{type_name(value)}")
    if len(value) != epochs:
        raise CheckFailure(f"{what} returned {len(value)} epoch losses for epochs={epochs}")
    return [expect_scalar(v, f"{what} loss of epoch {i + 1}") for i, v in enumerate(value)]


def probe_outputs(model, device, rng):
    """encode and decode outputs on fixed inputs: they change exactly when the model does."""
    x = tensor(images(rng, 5, PIXELS), device, dtype=torch.float32)
    z = tensor(rng.standard_normal((5, LATENT)), device, dtype=torch.float32)
    mu, _ = expect_tuple(model.encode(x), 2, "VAE.encode")
    return (expect_tensor(mu, "VAE.encode mu", shape=(5, LATENT), device=device),
            expect_tensor(model.decode(z), "VAE.decode", shape=(5, PIXELS), device=device))


def training_rows(digits, device, n):
    return tensor(digits[0][:n], device, dtype=torch.float32)


# train_vae on the grader's probe VAE (worker.trusted_factory): encode returns learned
# constants and decode a learned logit per pixel, so with every row in one minibatch the run
# depends neither on the noise nor on the shuffling, and can be compared step for step with
# the reference's (within the test module's PROBE_TOL).
PROBE_ROWS, PROBE_EPOCHS, PROBE_LR = 48, 3, 0.05


def probe_start(rng, rows=PROBE_ROWS):
    """The probe's initial (mu, logvar, logits) and its data (one minibatch of ``rows``)."""
    initial = (rng.standard_normal(LATENT), rng.uniform(-1.0, 1.0, LATENT),
               rng.standard_normal(PIXELS))
    return initial, images(rng, rows, PIXELS)


def probe_run(train_vae, make, initial, X, device, seed=3):
    """Train a probe with ``train_vae``; the epoch losses and the probe's parameters after.
    ``make`` builds the probe in the worker (the student's run) or here (the reference's)."""
    model = make("probe_vae", *(torch.tensor(a) for a in initial))
    model.to(device)
    losses = train_vae(model, tensor(X, device), epochs=PROBE_EPOCHS, lr=PROBE_LR,
                       batch_size=PROBE_ROWS, seed=seed)
    return losses, model.state_dict()


def own_student_loss(student, device):
    """The student's neg_elbo, differentiable here (StudentOp)."""
    def neg_elbo(x, x_logits, mu, logvar):
        return StudentOp.apply(student.neg_elbo, "neg_elbo", device, x, x_logits, mu, logvar)
    return neg_elbo


def own_epoch_loss(student, model, X, device, batch_size=64, seed=0):
    """One epoch of the contract's train_vae with lr = 0 around the student's own neg_elbo:
    the mean per-image loss over the minibatches a seeded torch.Generator gives."""
    neg_elbo = own_student_loss(student, device)
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    with torch.no_grad():
        for index in torch.randperm(len(X), generator=generator).split(batch_size):
            x = tensor(X[index.numpy()], device, dtype=torch.float32)
            outputs = [torch.tensor(expect_tensor(v, f"VAE.forward {name}", shape=None))
                       for v, name in zip(expect_tuple(model(x), 3, "VAE.forward"),
                                          ("x_logits", "mu", "logvar"), strict=True)]
            total += float(neg_elbo(torch.tensor(X[index.numpy()]), *outputs)) * len(index)
    return total / len(X)


def contract_train_vae(neg_elbo):
    """train_vae as the contract states it, around a given neg_elbo: one Adam for the run,
    gradients zeroed before every step, shuffled with a seeded torch.Generator, epoch loss the
    mean per-image loss."""
    def train_vae(model, X, epochs=30, lr=2e-3, batch_size=64, seed=0):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)
        losses = []
        for _ in range(epochs):
            total = 0.0
            for index in torch.randperm(len(X), generator=generator).split(batch_size):
                x = X[index]
                optimizer.zero_grad()
                loss = neg_elbo(x, *model(x))
                loss.backward()
                optimizer.step()
                total += loss.item() * len(x)
            losses.append(total / len(X))
        return losses
    return train_vae


def probe_outcome(losses, state) -> dict:
    """What a probe run left, as float64 arrays for comparing runs (losses NaN where they are
    not a list of floats); CheckFailure where the probe's parameters cannot be read."""
    try:
        losses = np.array(expect_losses(losses, PROBE_EPOCHS), dtype=np.float64)
    except CheckFailure:
        losses = np.full(PROBE_EPOCHS, np.nan)
    if not isinstance(state, dict):  # from the worker, exactly a dict; here, OrderedDict
        raise CheckFailure(f"the probe's state_dict() came back as {type_name(state)}: "
                           "train_vae must not replace the model's methods")
    out = {"losses": losses}
    for name, size in (("mu", LATENT), ("logvar", LATENT), ("logits", PIXELS)):
        if name not in state:
            raise CheckFailure(f"the probe VAE lost its parameter {name!r} in train_vae")
        out[name] = expect_tensor(state[name], f"the probe's {name} after train_vae",
                                  shape=(size,))
    return out


# ---- the trained check ---------------------------------------------------------------------------

# The trained check trains on a disguised copy of digits (pixels shuffled; data.disguise) and
# measures copies of the trained model reloaded from its state_dict in fresh workers: encode in
# one, decode in another, so no code that saw the test images can hand them to decode, and no
# model fitted to the bundled digits helps. A fully connected VAE learns the shuffled digits
# exactly as well (24.55-24.69 nats on seeds 0-3; complementing pixels too cost up to 0.5).
DISGUISE_SEED = 51_407


def disguised_digits(digits, seed):
    return disguise(digits, DISGUISE_SEED + seed)


def trained_state(model) -> dict:
    """The trained model's state_dict, as float64 arrays here."""
    state = model.state_dict()
    if not isinstance(state, dict):  # from the worker, exactly a dict; here, OrderedDict
        raise CheckFailure(f"the trained VAE's state_dict() returned {type_name(state)}: "
                           "train_vae must leave the model an ordinary nn.Module")
    return {key: expect_tensor(value, f"the trained VAE's parameter {key!r}", shape=None)
            for key, value in state.items()}


def reloaded_vae(student, state, device, fresh_worker):
    """A new VAE() in a fresh worker, loaded with ``state``: the trained model as its
    parameters and buffers hold it, without anything else training left behind."""
    fresh_worker()
    model = student.VAE()
    model.to(device)
    model.load_state_dict({key: torch.tensor(value) for key, value in state.items()})
    model.eval()
    return model


def input_blind_neg_elbo(X_train, X_test) -> float:
    """Nats per test image of the best model that ignores its input: each pixel a Bernoulli
    with its training mean. A VAE that learned anything does better."""
    p = np.clip(X_train.mean(axis=0), 1e-6, 1 - 1e-6)
    return float(-np.mean(X_test @ np.log(p) + (1 - X_test) @ np.log(1 - p)))


def train_and_measure(student, reference, digits, device, seed=0, fresh_worker=lambda: None):
    """Train a fresh VAE() with the student's train_vae and its defaults on the disguised
    training split; return the epoch losses (unchecked), the grader's negative ELBO of the
    disguised test split under reloaded copies of the trained model, and what a model that
    ignores its input scores."""
    X_train, X_test, _, _ = disguised_digits(digits, seed)
    model = student.VAE()
    model.to(device)
    losses = student.train_vae(model, tensor(X_train, device, dtype=torch.float32), seed=seed)
    state = trained_state(model)
    value = estimate_neg_elbo(reference, reloaded_vae(student, state, device, fresh_worker),
                              X_test, device,
                              decoder=lambda: reloaded_vae(student, state, device, fresh_worker))
    return losses, value, input_blind_neg_elbo(X_train, X_test)


probes = probes_fixture(__name__)
