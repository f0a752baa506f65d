"""The convention-variants corpus of the torch assignments (issue 12, item 3): correct code
written the way real students write it earns full marks in hw4_vae and hw5_gan.

Each style, ``tests/variants/<assignment>/<style>.py``, is one complete, correct submission in
which every contract function is written in that style (its docstring lists the choices);
``tests/variants/build.py`` splices it into the released student notebook, keeping every other
cell, and the real grader grades it. Together the styles cover how correct solutions differ:
stable losses through ``F.binary_cross_entropy_with_logits``, a module-level loss object,
softplus, a clamp form or log-sum-exp; logits of shape (N, 1) or flattened to (N,);
``.detach()`` or ``requires_grad_(False)`` for the network not being trained; module-level
constants and objects built by calls (``device = torch.device(...)``,
``bce = nn.BCEWithLogitsLoss()``, ``NOISE_DIM``, ``dtype``); helpers of the student's own;
``nn.Sequential`` or an ``nn.Module`` with an explicit forward; means, or sums divided by the
count; ``torch.randn_like``, ``torch.randn(shape)`` or ``Normal(...).rsample()`` for the noise;
the KL through the log-variance or the standard deviation; one optimizer per run, zeroed on the
optimizer or on the model, with or without ``set_to_none=True``; a ``DataLoader`` or index loops.

What this proves: the hidden tests accept whatever the contract (shared/ASSIGNMENTS.md and the
notebook's text) allows, and definitions mode runs the module-level lines such code needs. A
style that loses a point means a hidden test demands more than the contract (fix the test or
the contract, never the variant to suit the test); the failure lists each lost test's output.

Full marks could also come from a variant that is right only on the hidden tests' inputs, so
every variant is also checked in process against the reference on what they need not try:
batches of one, logits of shape (N,) and (N, 1), float32 and float64, the stated extremes, and
arguments left unmodified. Grading is seeded, so a style earns the same score on every run.

Cost: the in-process checks take a few seconds in all; grading takes 10-30 s per style on the
2-core machine (both assignments train), six gradings.
"""
from __future__ import annotations

import ast
import copy
import functools

import nbformat
import numpy as np
import pytest
import torch

from autograder.assignment import load_assignment, load_reference
from autograder.checks import assert_close
from autograder.grade import grade_notebook
from autograder.notebook import extract_code
from autograder.definitions import plan_definitions
from variants.build import build_notebook, describe, student_notebook, styles, stubs

TORCH_ASSIGNMENTS = ("hw4_vae", "hw5_gan")
CASES = [pytest.param(name, style, id=f"{name}-{style}")
         for name in TORCH_ASSIGNMENTS for style in styles(name)]


@functools.cache
def assignment(name):
    return load_assignment(name)


@functools.cache
def variant_module(name, style):
    """The style's notebook loaded in this process, by the grader's definitions rule."""
    return load_reference(assignment(name).master, f"torch_variant_{name}_{style}",
                          nb=build_notebook(name, style))


def test_every_torch_assignment_has_several_styles():
    for name in TORCH_ASSIGNMENTS:
        assert len(styles(name)) >= 3, name


@pytest.mark.parametrize(("name", "style"), CASES)
def test_style_notebook_is_the_release_and_every_spliced_line_runs(name, style):
    """Only the stub cells change, and definitions mode runs every line the variant put in
    them: its module-level calls (``bce = nn.BCEWithLogitsLoss()``) are part of what is
    graded, not skipped as if they were experiments."""
    released, built = student_notebook(name), build_notebook(name, style)
    changed = {index + 1 for index in stubs(released).values()}  # extract_code counts from 1
    assert len(built.cells) == len(released.cells)
    for number, (old, new) in enumerate(zip(released.cells, built.cells, strict=True), start=1):
        assert old.cell_type == new.cell_type
        if number not in changed:
            assert old.source == new.source, f"cell {number} is not the student notebook's"
    cells = extract_code(built).cells
    plan = plan_definitions(cells)
    for number, code in cells:
        if number in changed:
            body = ast.parse(code).body
            skipped = [ast.unparse(body[i]).splitlines()[0] for i in range(len(body))
                       if i not in plan[number]]
            assert not skipped, f"cell {number}: definitions mode would not run {skipped}"


# ---- in process: the rules the hidden tests need not try -----------------------------------------

def read_only_call(fn, *args):
    """``fn(*args)``, asserting that it modifies none of its tensor arguments."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    before = [(t._version, t.detach().clone()) for t in tensors]
    out = fn(*args)
    for i, (t, (version, values)) in enumerate(zip(tensors, before, strict=True)):
        assert t._version == version and torch.equal(t.detach(), values), \
            f"{getattr(fn, '__name__', type(fn).__name__)} modified its tensor argument {i}"
    return out


def value_and_grads(fn, arrays, dtype, upstream=None):
    """fn on leaves made from ``arrays`` (read-only), and the gradient of each leaf."""
    leaves = [torch.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = read_only_call(fn, *leaves)
    assert out.dtype == dtype, f"{fn.__name__} returned {out.dtype} for {dtype} inputs"
    weight = torch.ones_like(out) if upstream is None else torch.tensor(upstream, dtype=dtype)
    (out * weight).sum().backward()
    return out.detach().numpy(), [leaf.grad.numpy() for leaf in leaves]


def same_as_reference(student, reference, fn_name, arrays, dtype, tol, shape, upstream=None):
    got, got_grads = value_and_grads(getattr(student, fn_name), arrays, dtype, upstream)
    want, want_grads = value_and_grads(getattr(reference, fn_name), arrays, torch.float64,
                                       upstream)
    what = f"{fn_name} on {[np.shape(a) for a in arrays]} {dtype}"
    assert got.shape == shape, f"{what}: shape {got.shape}, expected {shape}"
    close(got, want, what, tol)
    for i, (g, w) in enumerate(zip(got_grads, want_grads, strict=True)):
        close(g, w, f"{what}: gradient of argument {i}", tol)


def close(got, want, what, tol):
    """assert_close at float64, whatever the dtype computed in."""
    assert_close(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64), what,
                 tol=tol)


def params(model):
    return [v.detach().clone() for v in model.state_dict().values()]


def check_hw4(student, reference):
    rng = np.random.default_rng(0)
    for n in (1, 5):
        mu, logvar = 1.5 * rng.standard_normal((n, 3)), rng.uniform(-2, 1.5, (n, 3))
        x = rng.uniform(0, 1, (n, 8))
        x[:, :3] = [0.0, 1.0, 0.0]
        logits = 2.0 * rng.standard_normal((n, 8))
        logits[:, :4] = [50.0, -50.0, -50.0, 50.0]  # the stated extremes, right and wrong
        upstream = rng.standard_normal(n)
        for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-5)):
            same_as_reference(student, reference, "kl_divergence", [mu, logvar], dtype, tol,
                              (n,), upstream)
            same_as_reference(student, reference, "bernoulli_log_likelihood", [x, logits],
                              dtype, tol, (n,), upstream)
            same_as_reference(student, reference, "neg_elbo", [x, logits, mu, logvar], dtype,
                              tol, ())
            m = torch.tensor(mu, dtype=dtype, requires_grad=True)
            lv = torch.tensor(logvar, dtype=dtype, requires_grad=True)
            z = read_only_call(student.reparameterize, m, lv)
            assert z.shape == (n, 3) and z.dtype == dtype
            up = torch.tensor(rng.standard_normal((n, 3)), dtype=dtype)
            (z * up).sum().backward()
            close(m.grad.numpy(), up.numpy(), "reparameterize: dz/dmu", tol)
            close(lv.grad.numpy(), (0.5 * (z - m) * up).detach().numpy(),
                  "reparameterize: dz/dlogvar", tol)

    torch.manual_seed(0)
    model = student.VAE(input_dim=8, hidden_dim=6, latent_dim=3)
    x1 = torch.rand(1, 8)
    mu1, logvar1 = read_only_call(model.encode, x1)
    assert mu1.shape == logvar1.shape == (1, 3)
    assert read_only_call(model.decode, torch.randn(1, 3)).shape == (1, 8)
    assert [t.shape for t in read_only_call(model, x1)] == [(1, 8), (1, 3), (1, 3)]
    for images in (model.sample(1), model.sample(3, torch.Generator().manual_seed(1))):
        assert images.shape[1] == 8 and 0 <= images.min() and images.max() <= 1
    assert torch.equal(model.sample(2, torch.Generator().manual_seed(4)),
                       model.sample(2, torch.Generator().manual_seed(4)))
    assert student.VAE().encode(torch.rand(1, 64))[0].shape == (1, 4)

    # 7 rows in minibatches of 3: the last minibatch holds one image.
    X = torch.rand(7, 8)
    start = params(model)
    losses = read_only_call(student.train_vae, model, X, 2, 1e-2, 3, 0)
    assert type(losses) is list and len(losses) == 2
    assert all(type(v) is float and np.isfinite(v) for v in losses), losses
    assert any(not torch.equal(a, b) for a, b in zip(start, params(model), strict=True))


def gan_nets(module):
    torch.manual_seed(0)
    return (module.build_generator(noise_dim=3, hidden_dim=5, out_dim=2),
            module.build_discriminator(in_dim=2, hidden_dim=5))


def load_params(model, values):
    model.load_state_dict(dict(zip(model.state_dict(), values, strict=True)))


def check_hw5(student, reference):
    rng = np.random.default_rng(0)
    assert student.sample_noise(1, 3).shape == (1, 3)
    noise = [student.sample_noise(500, 2, torch.Generator().manual_seed(s)) for s in (2, 2)]
    assert torch.equal(noise[0], noise[1]) and noise[0].abs().max() <= 1
    for n in (1, 4):
        real = 2.0 * rng.standard_normal(n)
        fake = 2.0 * rng.standard_normal(n + 2)
        real[0], fake[0] = -200.0, 200.0  # the stable forms' extremes, confidently wrong
        for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-5)):
            for shape in ((-1,), (-1, 1)):  # logits (N,) and (N, 1)
                r, f = real.reshape(shape), fake.reshape(shape)
                for fn, arrays in (("discriminator_loss", [r, f]), ("generator_loss", [f]),
                                   ("ls_discriminator_loss", [r / 50, f / 50]),
                                   ("ls_generator_loss", [f / 50])):
                    same_as_reference(student, reference, fn, arrays, dtype, tol, ())

    G, D = gan_nets(student)
    for builder, count in ((student.build_generator, 4610), (student.build_discriminator, 4417)):
        assert sum(p.numel() for p in builder().parameters()) == count
    assert read_only_call(G, torch.zeros(1, 3)).shape == (1, 2)
    assert read_only_call(D, torch.zeros(1, 2)).shape == (1, 1)

    # gan_step on batches of one, against the reference's from the same weights, with SGD.
    RG, RD = gan_nets(reference)
    load_params(RG, params(G))
    load_params(RD, params(D))
    batches = [[torch.tensor(rng.uniform(-2, 2, (1, k)), dtype=torch.float32) for k in (2, 3, 3)]
               for _ in range(2)]
    opts = [torch.optim.SGD(net.parameters(), lr=0.1) for net in (G, D, RG, RD)]
    for batch in batches:
        got = read_only_call(student.gan_step, G, D, opts[0], opts[1], *batch)
        want = reference.gan_step(RG, RD, opts[2], opts[3], *batch)
        assert type(got) is tuple and all(type(v) is float for v in got), got
        close(got, want, "gan_step losses, N = 1", 1e-5)
        for net, ref_net in ((G, RG), (D, RD)):
            for a, b in zip(params(net), params(ref_net), strict=True):
                close(a.numpy(), b.numpy(), "gan_step updates, N = 1", 1e-5)
    assert all(p.requires_grad for net in (G, D) for p in net.parameters()), \
        "gan_step left a network frozen"

    def sampler(batch_size, generator):
        return torch.randn(batch_size, 2, generator=generator)

    runs = []
    for _ in range(2):
        g, d = copy.deepcopy(G), copy.deepcopy(D)
        history = student.train_gan(g, d, sampler, steps=3, batch_size=1, noise_dim=3, seed=5)
        assert type(history) is dict and sorted(history) == ["d_loss", "g_loss"]
        assert all(type(v) is list and len(v) == 3 for v in history.values())
        assert all(type(x) is float for v in history.values() for x in v)
        runs.append((history, params(g) + params(d)))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0][1], params(G) + params(D),
                                                     strict=True))


CHECKS = {"hw4_vae": check_hw4, "hw5_gan": check_hw5}


# float(loss) on a tensor that requires grad is a style of its own; torch warns about it.
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True to a scalar")
@pytest.mark.parametrize(("name", "style"), CASES)
def test_style_keeps_the_contract_rules(name, style):
    """In process, against the reference: N = 1, (N,) and (N, 1) logits, float32 and float64,
    the stated extremes, read-only arguments, reproducible runs."""
    state = torch.random.get_rng_state()
    try:
        CHECKS[name](variant_module(name, style), assignment(name).reference)
    finally:
        torch.random.set_rng_state(state)


# ---- graded: full marks --------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "style"), CASES)
def test_style_gets_full_marks(name, style, tmp_path):
    path = tmp_path / f"{name}-{style}.ipynb"
    nbformat.write(build_notebook(name, style), path)
    results = grade_notebook(path, assignment(name)).results
    lost = [f"- {t.name} ({t.status}, {t.score:g}/{t.max_score:g}):\n{t.output}"
            for t in results.tests if t.status != "passed" or t.score != t.max_score]
    assert not lost, (f"{name} in the {style!r} style ({describe(name, style)}) lost points in "
                      f"{len(lost)} tests:\n" + "\n".join(lost))
    assert len(results.tests) >= 15 and results.score == results.max_score, results.output
    assert "GRADER ERROR" not in results.output, results.output
