"""The helpers and probes of hw5_gan's hidden tests (test_hw5_gan.py): the tests reach them
through the ``probes`` fixture below, since the grader imports test modules with
``--import-mode=importlib`` and a test module cannot import its conftest."""
import copy
import math
from pathlib import Path

import numpy as np
import torch

from autograder.testing import (CheckFailure, LocalFactory, StudentCodeError, StudentTimeout,
                                TensorValue, UpstreamFailure, expect_tensor, norm_error, one_of,
                                probes_fixture, type_name)
from autograder.testing import checked_grad_call as grad_call


# This assignment's folder: its worker_objects.py builds the in-process samplers.
ASSIGNMENT_DIR = Path(__file__).resolve().parents[1]


# ---- helpers ------------------------------------------------------------------------------------

def tensor(array, device, *, dtype=torch.float64, requires_grad=False):
    return torch.tensor(np.asarray(array), dtype=dtype, device=device,
                        requires_grad=requires_grad)


def expect_loss(value, what, device, inputs=None) -> float:
    return float(expect_tensor(value, what, shape=(), device=device, inputs=inputs))


def expect_float(value, what) -> float:
    if type(value) is not float:
        raise CheckFailure(f"{what} should be a Python float, got {type_name(value)} (return "
                           "loss.item(), not the tensor)", what=what, actual=value)
    if not math.isfinite(value):
        raise CheckFailure(f"{what} is {value}, expected a finite number", what=what)
    return value


def expect_gradient(grad, of, what, *, shape, device, inputs=None) -> np.ndarray:
    if grad is None:
        raise CheckFailure(
            f"no gradient reached {of} through {what}: the loss must be computed from {of} "
            "with differentiable torch operations (no .detach(), .item() or numpy on the way)",
            what=what, inputs=inputs)
    return expect_tensor(grad, f"gradient of {what} with respect to {of}", shape=shape,
                         device=device, inputs=inputs)


def reference_loss(fn, arrays):
    """The reference in this process on CPU float64: the loss and the gradient of each input."""
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    out.backward()
    return float(out), [leaf.grad.numpy() for leaf in leaves]


# ---- the gate against trivial implementations (the null audit) ------------------------------
# Why the tests gate, and on what: this section's introduction in test_hw5_gan.py.

def degenerate(values, what) -> str:
    """Why ``values`` (a student's result, numbers) shows a function that computes nothing:
    all equal; "" when they vary, or when there are none to look at."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0 or not np.all(flat == flat[0]):
        return ""
    word = {0.0: "zeros", 1.0: "ones"}.get(float(flat[0]), f"the constant {flat[0]:.4g}")
    return (f"{what}: this property is checked only for a function that computes something: "
            f"yours returned {word} for every input")


def require_computed(reason: str) -> None:
    """Inside a part: lose it when ``reason`` (from degenerate) is not empty."""
    if reason:
        raise CheckFailure(reason)


# ---- sample_noise -------------------------------------------------------------------------------

def noise_statistics(z: np.ndarray) -> dict:
    """Summaries a uniform (-1, 1) sampler pins down, each within a few standard errors."""
    centred = z - z.mean(axis=0)
    return {
        "min": np.array(z.min()), "max": np.array(z.max()),
        "mean": z.mean(axis=0), "std": z.std(axis=0),
        "negative": np.array(np.mean(z < 0)),
        "quarters": np.histogram(z, bins=4, range=(-1, 1))[0] / z.size,
        "row correlation": np.array(np.mean(centred[1:] * centred[:-1]) / z.var()),
    }


# ---- the GAN losses -----------------------------------------------------------------------------

def random_logits(rng, n, scale=2.0):
    return scale * rng.standard_normal((n, 1))


# ---- the networks -------------------------------------------------------------------------------

SMALL_G = dict(noise_dim=3, hidden_dim=8, out_dim=2)
SMALL_D = dict(in_dim=2, hidden_dim=8)


def layer_shapes(in_dim, hidden_dim, out_dim):
    """The contract's parameters, in layer order: three Linear layers (weight, bias)."""
    return [(hidden_dim, in_dim), (hidden_dim,), (hidden_dim, hidden_dim), (hidden_dim,),
            (out_dim, hidden_dim), (out_dim,)]


def shapes_of(kind, kwargs):
    if kind == "generator":
        return layer_shapes(kwargs["noise_dim"], kwargs["hidden_dim"], kwargs["out_dim"])
    return layer_shapes(kwargs["in_dim"], kwargs["hidden_dim"], 1)


def student_state(model, what) -> dict:
    """The model's state_dict as {name: float64 array}, in the model's own order."""
    state = model.state_dict()
    if type(state) is not dict:
        raise CheckFailure(f"{what}.state_dict() returned {type_name(state)}, not a dict")
    return {key: expect_tensor(value, f"{what} parameter {key!r}", shape=None)
            for key, value in state.items()}


def parameter_count(model, what) -> int:
    return sum(v.size for v in student_state(model, what).values())


def random_weights(rng, shapes, scale=1.5):
    """Weights with every unit alive and pre-activations of both signs: N(0, scale^2 / fan_in)
    weights and N(0, 0.3^2) biases."""
    return [(scale / math.sqrt(s[1]) * rng.standard_normal(s) if len(s) == 2
             else 0.3 * rng.standard_normal(s)).astype(np.float32) for s in shapes]


def load_weights(model, weights, what, device) -> list[str]:
    """Load the grader's weights into a student model, layer by layer (in state_dict order).
    Returns the model's parameter names in that order."""
    state = student_state(model, what)
    shapes = [tuple(v.shape) for v in state.values()]
    expected = [tuple(w.shape) for w in weights]
    if shapes != expected:
        raise CheckFailure(f"{what} has parameters of shapes {shapes} (in state_dict order); "
                           f"the contract's network has {expected}: three Linear layers, "
                           "registered in order")
    model.load_state_dict({key: tensor(w, device, dtype=torch.float32)
                           for key, w in zip(state, weights, strict=True)})
    return list(state)


def reference_model(reference, kind, kwargs, weights):
    """The reference network with the given weights, in this process on the CPU."""
    build = reference.build_generator if kind == "generator" else reference.build_discriminator
    model = build(**kwargs)
    keys = list(model.state_dict())
    model.load_state_dict({k: torch.tensor(w) for k, w in zip(keys, weights, strict=True)})
    return model


def student_model(student, kind, kwargs, device):
    build = student.build_generator if kind == "generator" else student.build_discriminator
    model = build(**kwargs)
    model.to(device)
    return model


def label(kind, kwargs):
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return f"build_{kind}({args})"


# The outputs of a network are compared by their relative norm error: float32 rounding on a
# CPU or a GPU stays below 1e-6; a wrong activation or an extra output layer is above 1e-2.
FORWARD_TOL = 1e-4


def check_forward(reference, model, kind, kwargs, weights, inputs, device):
    """The student's network with the grader's weights computes the reference's function."""
    what = label(kind, kwargs)
    expected = reference_model(reference, kind, kwargs, weights)(
        torch.tensor(inputs, dtype=torch.float32)).detach().numpy().astype(np.float64)
    got = expect_tensor(model(tensor(inputs, device, dtype=torch.float32)), what,
                        shape=expected.shape, device=device)
    err = norm_error(got, expected)
    if err > FORWARD_TOL:
        row = int(np.argmax(np.abs(got - expected).max(axis=1)))
        raise CheckFailure(
            f"{what} with the grader's weights loaded layer by layer computes another function "
            f"than Linear, LeakyReLU(0.2), Linear, LeakyReLU(0.2), Linear: relative error "
            f"{err:.2e} (allowed {FORWARD_TOL:.0e}) on {len(inputs)} inputs; for input "
            f"{np.round(inputs[row].astype(np.float64), 3).tolist()} it returns "
            f"{np.round(got[row], 4).tolist()}, "
            f"expected {np.round(expected[row], 4).tolist()}", what=what, actual=got,
            expected=expected)


def check_architecture(student, reference, device, rng, partial, known_mistakes, kind, counts):
    """Parameter counts of two sizes, the output shape, and the function computed with the
    grader's weights loaded layer by layer."""
    build = student.build_generator if kind == "generator" else student.build_discriminator
    observed = {}
    small = SMALL_G if kind == "generator" else SMALL_D
    model = student_model(student, kind, small, device)
    # Gate (null audit): every part pays only when the freshly built network's parameters
    # are not all equal (a network of zeros or ones has the right sizes but computes nothing;
    # a fresh torch layer is randomly initialised).
    fresh = [v.ravel() for v in student_state(model, label(kind, small)).values()]
    gate = degenerate(np.concatenate(fresh) if fresh else np.zeros(0),
                      f"the parameters of a fresh {label(kind, small)}")
    with partial.part("parameter counts"):
        require_computed(gate)
        for kwargs, _ in counts:
            observed[label(kind, kwargs)] = parameter_count(build(**kwargs), label(kind, kwargs))
        for kwargs, count in counts:
            if observed[label(kind, kwargs)] != count:
                raise CheckFailure(f"{label(kind, kwargs)} has {observed[label(kind, kwargs)]} "
                                   f"parameters; the contract's network (two hidden layers) has "
                                   f"{count}")
    if len(observed) == len(counts) and partial.fraction < 1:
        def outcome(module):
            builder = getattr(module, f"build_{kind}")
            return {label(kind, kw): sum(p.numel() for p in builder(**kw).parameters())
                    for kw, _ in counts}
        partial.name_mistakes(known_mistakes(f"build_{kind}", outcome, observed,
                                                    lambda a, b: a == b))
    in_dim, out_dim = (3, 2) if kind == "generator" else (2, 1)
    with partial.part(f"output shape (N, {out_dim})"):
        require_computed(gate)
        x = rng.uniform(-1, 1, size=(7, in_dim))
        expect_tensor(model(tensor(x, device, dtype=torch.float32)), label(kind, small),
                      shape=(7, out_dim), device=device)
    # Inputs far outside (-1, 1): a tanh or sigmoid at the output cannot follow them.
    x = 4.0 * rng.standard_normal((32, in_dim))
    if kind == "discriminator":
        with partial.part("returns logits (no sigmoid)"):
            require_computed(gate)
            out = expect_tensor(model(tensor(x, device, dtype=torch.float32)),
                                label(kind, small), shape=(32, 1), device=device)
            if out.min() >= 0 and out.max() <= 1:
                raise CheckFailure(f"{label(kind, small)} returned values in [{out.min():.3g}, "
                                   f"{out.max():.3g}] for inputs of size ~4: it should return "
                                   "logits (any real number), not probabilities; the losses "
                                   "apply the sigmoid")
    with partial.part("layers: Linear, LeakyReLU(0.2), linear output", 2):
        require_computed(gate)
        weights = random_weights(rng, shapes_of(kind, small))
        load_weights(model, weights, label(kind, small), device)
        check_forward(reference, model, kind, small, weights, x, device)


# ---- gan_step -----------------------------------------------------------------------------------

STEP_LR = 0.05
STEP_BATCH = 16
# Parameter updates are compared by their relative norm error: float32 rounding (CPU or GPU)
# stays below 1e-5, every mistake in mutants.py is above 1e-1.
UPDATE_TOL = 1e-3


def step_batches(rng, n_steps):
    """(x_real, z_d, z_g) for each step, float32."""
    centers = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
    return [(
        (centers[rng.integers(4, size=STEP_BATCH)]
         + 0.1 * rng.standard_normal((STEP_BATCH, 2))).astype(np.float32),
        rng.uniform(-1, 1, size=(STEP_BATCH, SMALL_G["noise_dim"])).astype(np.float32),
        rng.uniform(-1, 1, size=(STEP_BATCH, SMALL_G["noise_dim"])).astype(np.float32),
    ) for _ in range(n_steps)]


def contract_network(make, kind, kwargs, weights, device):
    """The contract's network built in the worker from torch's own layers (not the student's
    build_*), with the grader's weights: composites are judged on it, so a mistake in
    build_generator or build_discriminator costs only in their own tests."""
    shapes = shapes_of(kind, kwargs)
    layers = []
    for i, (fan_out, fan_in) in enumerate(shapes[0::2]):
        layers.append(make("torch.nn.Linear", fan_in, fan_out))
        if i < 2:
            layers.append(make("torch.nn.LeakyReLU", 0.2))
    net = make("torch.nn.Sequential", *layers)
    net.to(device)
    keys = [f"{layer}.{name}" for layer in (0, 2, 4) for name in ("weight", "bias")]
    net.load_state_dict({key: tensor(w, device, dtype=torch.float32)
                         for key, w in zip(keys, weights, strict=True)})
    return net


class StudentLoss(torch.autograd.Function):
    """A loss computed by the student's function in the worker, inside this process's
    autograd: forward sends the logits, backward uses the gradient the worker computed. With
    it the grader runs the contract's composite around the student's own losses, so a wrong
    loss costs only in the loss's tests."""

    @staticmethod
    def forward(ctx, fn, name, device, *logits):
        try:
            out, grads = grad_call(fn, name, *(tensor(x.detach().numpy(), device,
                                                      dtype=torch.float32, requires_grad=True)
                                               for x in logits))
            value = expect_loss(out, name, device)
            ctx.grads = [torch.tensor(expect_gradient(g, f"argument {i + 1}", name,
                                                      shape=tuple(x.shape), device=device),
                                      dtype=x.dtype)
                         for i, (g, x) in enumerate(zip(grads, logits, strict=True))]
        except (CheckFailure, StudentCodeError, StudentTimeout) as exc:
            raise UpstreamFailure(
                f"this test runs your {name} inside the contract's steps, and {name} fails "
                f"on the logits here ({exc}); fix {name} first: its own tests say how") from None
        return torch.tensor(value, dtype=logits[0].dtype)

    @staticmethod
    def backward(ctx, grad_out):
        return (None, None, None, *(grad_out * g for g in ctx.grads))


def contract_gan_step(student, device):
    """The contract's gan_step around the student's discriminator_loss and generator_loss."""
    def d_loss(real, fake):
        return StudentLoss.apply(student.discriminator_loss, "discriminator_loss", device,
                                 real, fake)

    def g_loss(fake):
        return StudentLoss.apply(student.generator_loss, "generator_loss", device, fake)

    def gan_step(G, D, opt_G, opt_D, x_real, z_d, z_g):
        opt_D.zero_grad()
        loss_d = d_loss(D(x_real), D(G(z_d).detach()))
        loss_d.backward()
        opt_D.step()
        opt_G.zero_grad()
        loss_g = g_loss(D(G(z_g)))
        loss_g.backward()
        opt_G.step()
        return loss_d.item(), loss_g.item()
    return gan_step


def params_of(model) -> list[np.ndarray]:
    """Copies of the parameters (numpy() alone would share the memory the next step updates)."""
    return [v.detach().cpu().numpy().astype(np.float64) for v in model.state_dict().values()]


def step_outcome(losses, states, initial) -> dict:
    """{"losses": (steps, 2), (net, i, step): the update of parameter i of the network}."""
    out = {"losses": np.array(losses, dtype=np.float64)}
    for step, (g_params, d_params) in enumerate(states, 1):
        for net, params, start in (("G", g_params, initial[0]), ("D", d_params, initial[1])):
            for i, (p, p0) in enumerate(zip(params, start, strict=True)):
                out[(net, i, step)] = p - p0
    return out


def reference_steps(gan_step, reference, weights, batches, initial) -> dict:
    """step_outcome of ``gan_step`` on the reference's networks with plain SGD, in this
    process."""
    G = reference_model(reference, "generator", SMALL_G, weights[0])
    D = reference_model(reference, "discriminator", SMALL_D, weights[1])
    opt_G = torch.optim.SGD(G.parameters(), lr=STEP_LR)
    opt_D = torch.optim.SGD(D.parameters(), lr=STEP_LR)
    losses, states = [], []
    for x_real, z_d, z_g in batches:
        d_loss, g_loss = gan_step(G, D, opt_G, opt_D, torch.tensor(x_real), torch.tensor(z_d),
                                  torch.tensor(z_g))
        losses.append((float(d_loss), float(g_loss)))
        states.append((params_of(G), params_of(D)))
    return step_outcome(losses, states, initial)


NETWORK = {"G": "generator", "D": "discriminator"}


def loose_losses(returned) -> list[float]:
    """The numbers among gan_step's returns: floats and one-element tensors of (d_loss,
    g_loss) pairs; other returns are left out (the float check reports them)."""
    numbers = []
    for out in returned:
        for value in (out if type(out) is tuple and len(out) == 2 else ()):
            if type(value) in (float, int):
                numbers.append(float(value))
            elif type(value) is TensorValue and value.array.size == 1:
                numbers.append(float(value.array.ravel()[0]))
    return numbers


def compare_updates(partial, label_, observed, candidates, keys, weight=2, gate=""):
    """The part passes when the updates match one of the candidate expectations (one_of)."""
    with partial.part(label_, weight):
        require_computed(gate)
        one_of(lambda expected: _same_updates(observed, expected, keys), candidates)


def _same_updates(observed, expected, keys):
    for net, i, step in keys:
        err = norm_error(observed[(net, i, step)], expected[(net, i, step)])
        if err > UPDATE_TOL:
            raise CheckFailure(
                f"gan_step (with plain SGD, lr {STEP_LR:g}): the update of the "
                f"{NETWORK[net]}'s parameter {i} (in state_dict order) in step {step} "
                f"differs from the expected one by {err:.2e} (relative norm; allowed "
                f"{UPDATE_TOL:.0e}); its norm is "
                f"{np.linalg.norm(observed[(net, i, step)]):.4g}, expected "
                f"{np.linalg.norm(expected[(net, i, step)]):.4g}")


# ---- train_gan ----------------------------------------------------------------------------------

RING = [[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]]
RING_STD = 0.1


def ring_sampler(make, device, centers=RING, std=RING_STD):
    """A data_sampler built in the worker: the mixture of Gaussians at ``centers``."""
    return make("mixture_sampler", tensor(centers, device, dtype=torch.float32), std)


def expect_history(history, steps, what="train_gan") -> dict:
    if type(history) is not dict:
        raise CheckFailure(f"{what} should return a dict of loss lists, got "
                           f"{type_name(history)}")
    if sorted(history) != ["d_loss", "g_loss"]:
        raise CheckFailure(f"{what} returned a dict with keys {sorted(history)}; expected "
                           "exactly 'd_loss' and 'g_loss'")
    out = {}
    for key in ("d_loss", "g_loss"):
        values = history[key]
        if type(values) is not list or len(values) != steps:
            got = f"{len(values)} values" if type(values) is list else type_name(values)
            raise CheckFailure(f"{what}: history[{key!r}] should be a list of {steps} losses "
                               f"(one per step), got {got}")
        out[key] = np.array([expect_float(v, f"{what}: history[{key!r}][{i}]")
                             for i, v in enumerate(values)])
    return out


def history_gate(history: dict, what) -> str:
    """The null audit's gate for train_gan: "" when the history (from expect_history) holds
    losses that are not all equal, else why the tests do not pay."""
    return degenerate(np.concatenate([history["d_loss"], history["g_loss"]]),
                      f"{what}'s history")


def run_summary(history) -> dict:
    """What the tests below learn from a returned history, for naming known mistakes."""
    if type(history) is not dict:
        return {"type": type_name(history)}
    return {"lengths": tuple(len(v) if type(v) is list else -1 for _, v in
                             sorted(history.items(), key=lambda item: str(item[0])))}


def reference_runs(reference, train_gan, seeds, **run):
    """``train_gan`` from identical reference networks (as the reference builds them, from a
    fixed torch seed) on the ring, once per seed, in this process: [(history, G, D)]."""
    torch.manual_seed(0)
    G, D = reference.build_generator(**SMALL_G), reference.build_discriminator(**SMALL_D)
    sampler = LocalFactory(ASSIGNMENT_DIR)("mixture_sampler", torch.tensor(RING), RING_STD)
    runs = []
    for seed in seeds:
        g, d = copy.deepcopy(G), copy.deepcopy(D)
        runs.append((train_gan(g, d, sampler, seed=seed, **run), params_of(g), params_of(d)))
    return runs


def run_history(history) -> dict:
    return {key: np.asarray(history[key], dtype=np.float64) for key in ("d_loss", "g_loss")}


def same_run(a, b) -> bool:
    """Two (history, G params, D params) runs are identical, bit for bit."""
    return all(np.array_equal(a[0][k], b[0][k]) for k in a[0]) and all(
        np.array_equal(x, y) for xs, ys in zip(a[1:], b[1:], strict=True)
        for x, y in zip(xs, ys, strict=True))


# The optimiser check: with the generator's first two weight matrices zero, G(z) is the same
# point for every z, and the real data is one point, so two steps of train_gan do not depend
# on any random draw, except the generator's first weight matrix, whose gradient at step 2
# depends on the noise; but Adam's second step moves every entry that got no gradient in step
# 1 by exactly lr * sqrt(1 + beta2) / (1 + beta1), whatever its gradient (up to Adam's eps).
WIRING_POINT = [[1.5, -0.5]]
WIRING = dict(steps=2, batch_size=64, noise_dim=3, seed=0)
ADAM_LR, ADAM_BETAS = 1e-3, (0.5, 0.999)
FIRST_STEP_SIZE = ADAM_LR * math.sqrt(1 + ADAM_BETAS[1]) / (1 + ADAM_BETAS[0])


def wiring_weights(rng):
    g = random_weights(rng, shapes_of("generator", SMALL_G))
    g[0][:] = 0.0
    g[2][:] = 0.0
    return g, random_weights(rng, shapes_of("discriminator", SMALL_D))


def wiring_outcome(history, g_params, d_params, initial) -> dict:
    out = {key: np.asarray(history[key], dtype=np.float64) for key in ("d_loss", "g_loss")}
    for i, (p, p0) in enumerate(zip(d_params, initial[1], strict=True)):
        out[f"D {i}"] = p - p0
    for i, (p, p0) in enumerate(zip(g_params, initial[0], strict=True)):
        out[f"G {i}"] = p - p0
    # Only the size of the first layer's steps is fixed; their signs follow the noise.
    out["G 0"] = np.array([np.median(np.abs(out["G 0"]))])
    return out


def reference_wiring(train_gan, reference, weights, initial) -> dict:
    G = reference_model(reference, "generator", SMALL_G, weights[0])
    D = reference_model(reference, "discriminator", SMALL_D, weights[1])
    sampler = LocalFactory(ASSIGNMENT_DIR)("mixture_sampler", torch.tensor(WIRING_POINT), 0.0)
    history = train_gan(G, D, sampler, **WIRING)
    return wiring_outcome(history, params_of(G), params_of(D), initial)


def contract_train_gan(student, make, device, weights, batches):
    """The contract's train_gan loop around the student's gan_step, run by the grader: the
    contract's networks with ``weights``, one Adam (lr 1e-3, betas (0.5, 0.999)) each, one
    gan_step per batch. Returns (history, G parameters, D parameters): what the student's
    train_gan must give on the same networks, whatever their gan_step does."""
    G = contract_network(make, "generator", SMALL_G, weights[0], device)
    D = contract_network(make, "discriminator", SMALL_D, weights[1], device)
    opt_G = make("torch.optim.Adam", G.parameters(), lr=ADAM_LR, betas=ADAM_BETAS)
    opt_D = make("torch.optim.Adam", D.parameters(), lr=ADAM_LR, betas=ADAM_BETAS)
    history = {"d_loss": [], "g_loss": []}
    try:
        for x_real, z_d, z_g in batches:
            out = student.gan_step(G, D, opt_G, opt_D, *(tensor(a, device, dtype=torch.float32)
                                                         for a in (x_real, z_d, z_g)))
            numbers = loose_losses([out])
            if len(numbers) != 2:
                raise CheckFailure(f"it returned {type_name(out)}, not (d_loss, g_loss)")
            history["d_loss"].append(numbers[0])
            history["g_loss"].append(numbers[1])
        params = (list(student_state(G, "G").values()), list(student_state(D, "D").values()))
    except (CheckFailure, StudentCodeError, StudentTimeout) as exc:
        raise UpstreamFailure(f"this test runs your gan_step inside the contract's train_gan "
                              f"loop, and gan_step fails here ({exc}); fix gan_step first: "
                              "its own test says how") from None
    return history, *params


def wiring_batches(rng, steps):
    """Batches as train_gan draws them in the wiring check: the single data point, any noise."""
    x_real = np.tile(np.array(WIRING_POINT, dtype=np.float32), (WIRING["batch_size"], 1))
    return [(x_real, *(rng.uniform(-1, 1, size=(WIRING["batch_size"], SMALL_G["noise_dim"]))
                       .astype(np.float32) for _ in range(2))) for _ in range(steps)]


# ---- the trained GAN ----------------------------------------------------------------------------

# An odd count, so that "at least 60%" and "more than 60%" are the same test.
EVAL_SAMPLES = 2001
EVAL_SEED = 20240611
TRAIN = dict(steps=1000, batch_size=256, noise_dim=4)


def ring_scores(samples: np.ndarray) -> tuple[float, np.ndarray]:
    """(high-quality fraction, fraction of all samples that are high-quality near each mode)"""
    centers = np.array(RING)
    distance = np.linalg.norm(samples[:, None, :] - centers[None], axis=2)
    nearest, good = distance.argmin(axis=1), distance.min(axis=1) < 3 * RING_STD
    return float(good.mean()), np.array([np.mean(good & (nearest == k)) for k in range(4)])


# Samples come from the trained generator's parameters, through the contract's network run here
# (the reference's build_generator loaded with the student's weights): a generator whose
# forward returns something else (the data sampler's draws, a ring of its own) gains nothing.
GENERATOR = dict(noise_dim=TRAIN["noise_dim"], hidden_dim=64, out_dim=2)


def trained_samples(student, make, device, seed, reference=None) -> tuple[dict, np.ndarray]:
    """Train build_generator() and build_discriminator() with the student's train_gan; the
    history and EVAL_SAMPLES samples of the trained generator's parameters, computed by the
    contract's network here (``reference``; by G itself when None, for in-process studies)."""
    G = student.build_generator()
    D = student.build_discriminator()
    G.to(device)
    D.to(device)
    history = student.train_gan(G, D, ring_sampler(make, device), seed=seed, **TRAIN)
    z = np.random.default_rng(EVAL_SEED).uniform(-1, 1, size=(EVAL_SAMPLES, TRAIN["noise_dim"]))
    if reference is None:
        return history, expect_tensor(G(tensor(z, device, dtype=torch.float32)),
                                      "G(z) after train_gan", shape=(EVAL_SAMPLES, 2),
                                      device=device)
    weights = list(student_state(G, "the trained generator").values())
    shapes = [tuple(w.shape) for w in weights]
    if shapes != shapes_of("generator", GENERATOR):
        raise CheckFailure(f"the trained generator has parameters of shapes {shapes} (in "
                           f"state_dict order); the contract's build_generator() has "
                           f"{shapes_of('generator', GENERATOR)}: three Linear layers, "
                           "registered in order")
    judge = reference_model(reference, "generator", GENERATOR, weights)
    with torch.no_grad():
        samples = judge(torch.tensor(z, dtype=torch.float32)).double().numpy()
    return history, samples


probes = probes_fixture(__name__)
