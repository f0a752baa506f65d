"""Hidden tests for hw5_gan: every function of the contract, against the reference.

Losses are compared on fixed logits, with their autograd gradients; noise is judged by the
statistics of many draws; the update rules by running the same steps from the same weights
on the same batches in the worker (the student's code) and here (the reference). Training is
never compared draw for draw: where a test runs ``train_gan`` it either compares two runs of
the student's own code, or sets up the networks so that the result does not depend on the
random draws at all. The trained check samples the student's generator with the grader's noise.

Every test is device-agnostic: tensors made here are put on ``device`` and student models are
moved there with ``model.to(device)``; the reference runs in this process on the CPU, and all
comparisons happen here in float64 numpy.
"""
import math

import numpy as np
import pytest
import torch

from autograder.testing import (CheckFailure, StudentCodeError, UpstreamFailure, assert_close,
                                assert_metric, dicts_close, expect_tensor, expect_tuple,
                                norm_error, one_of)


# ---- the gate against trivial implementations (the null audit) ------------------------------
#
# Some properties hold for a function that computes nothing: zeros have the right shape and
# pass "the same seed gives the same noise", a perfect discriminator's least-squares loss is 0,
# and a gan_step or train_gan that returns zeros may still update the networks. A test that
# checks such a property pays for it only when the same call shows the function computes
# something: its result is not constant where the reference's varies. Each gated test says
# which result it looks at.

# Student losses may come out in float32 (labels made with torch.ones(...) are float32, and
# torch then computes BCE in float32): compare at float32 precision.
LOSS_TOL = 1e-5


# ---- sample_noise -------------------------------------------------------------------------------

NOISE_ROWS, NOISE_DIM = 20000, 4


@pytest.mark.points(3)
@pytest.mark.covers("sample_noise")
def test_sample_noise(student, partial, probes):
    """sample_noise: shape, range (-1, 1), both signs, mean 0, uniform, independent entries"""
    # Gates (null audit): the shapes pay only when the (5, 3) draw is not constant, every
    # other part only when the big draw is not (a constant has no correlations to measure).
    with partial.part("shape (batch_size, dim)"):
        for n, dim in ((5, 3), (1, 7)):
            small = expect_tensor(student.sample_noise(n, dim), f"sample_noise({n}, {dim})",
                                  shape=(n, dim))
            if n > 1:
                probes.require_computed(probes.degenerate(small, f"sample_noise({n}, {dim})"))
    what = f"sample_noise({NOISE_ROWS}, {NOISE_DIM})"
    z = expect_tensor(student.sample_noise(NOISE_ROWS, NOISE_DIM), what,
                      shape=(NOISE_ROWS, NOISE_DIM))
    gate = probes.degenerate(z, what)
    if gate:
        raise CheckFailure(gate)
    stats = probes.noise_statistics(z)
    # Tolerances are 6 or more standard errors of a correct sampler: a correct solution
    # passes whatever random numbers it draws, in whatever order.
    with partial.part("range (-1, 1), reaching both ends"):
        if stats["min"] < -1 or stats["max"] > 1 or stats["min"] > -0.99 or stats["max"] < 0.99:
            raise CheckFailure(f"{what} has values in [{float(stats['min']):.3f}, "
                               f"{float(stats['max']):.3f}]; uniform noise on (-1, 1) has "
                               "values in (-1, 1), reaching close to both ends")
    with partial.part("both signs, mean 0"):
        if abs(stats["negative"] - 0.5) > 0.012 or np.any(np.abs(stats["mean"]) > 0.025):
            raise CheckFailure(f"{what}: {100 * float(stats['negative']):.1f}% of the values "
                               f"are negative and the column means are "
                               f"{np.round(stats['mean'], 3).tolist()}; noise on (-1, 1) is "
                               "negative half the time, with mean 0")
    with partial.part("uniform, std 1/sqrt(3)"):
        quarters = stats["quarters"]
        if np.any(np.abs(quarters - 0.25) > 0.01) or np.any(np.abs(stats["std"] - 3 ** -0.5)
                                                             > 0.015):
            raise CheckFailure(f"{what}: the quarters (-1, -0.5), ..., (0.5, 1) hold "
                               f"{np.round(100 * quarters, 1).tolist()}% of the values and the "
                               f"column stds are {np.round(stats['std'], 3).tolist()}; uniform "
                               "noise puts 25% in each and has std 1/sqrt(3) = 0.577")
    with partial.part("independent entries"):
        corr = np.corrcoef(z.T)[np.triu_indices(NOISE_DIM, 1)]
        if abs(stats["row correlation"]) > 0.05 or np.any(np.abs(corr) > 0.05):
            raise CheckFailure(f"{what}: consecutive rows have correlation "
                               f"{float(stats['row correlation']):.3f} and the columns "
                               f"{np.round(corr, 3).tolist()}; every entry needs its own draw")


@pytest.mark.points(2)
@pytest.mark.covers("sample_noise")
def test_sample_noise_generator(student, reference, make, partial, known_mistakes, probes):
    """sample_noise: draws with the given torch.Generator (the same seed, the same noise)"""
    draws = []
    for seed in (3, 3, 4):
        generator = make("torch.Generator")  # on the CPU, as train_gan makes it
        generator.manual_seed(seed)
        draws.append(expect_tensor(student.sample_noise(200, 3, generator=generator),
                                   "sample_noise(200, 3, generator=g)", shape=(200, 3)))
    observed = {"same": np.array_equal(draws[0], draws[1]),
                "other": not np.array_equal(draws[0], draws[2])}
    # Gate (null audit): constant noise is the same for every seed; this part pays only when
    # the noise is not constant.
    with partial.part("the same seed gives the same noise"):
        probes.require_computed(probes.degenerate(draws[0],
                                                  "sample_noise(200, 3, generator=g)"))
        if not observed["same"]:
            raise CheckFailure("sample_noise(200, 3, generator=g) gave different noise for two "
                               "generators seeded with 3: draw with the generator "
                               "(torch.rand(..., generator=generator))")
    with partial.part("another seed gives other noise"):
        if not observed["other"]:
            raise CheckFailure("sample_noise(200, 3, generator=g) gave the same noise for "
                               "generators seeded with 3 and 4: draw with the generator")
    with partial.part("values in (-1, 1)"):
        if np.abs(draws[0]).max() > 1 or draws[0].min() >= 0:
            raise CheckFailure("sample_noise(200, 3, generator=g) has values in "
                               f"[{draws[0].min():.3f}, {draws[0].max():.3f}]; expected (-1, 1)")
    if partial.fraction < 1:
        def outcome(module):
            out = [module.sample_noise(200, 3, generator=torch.Generator().manual_seed(s))
                   for s in (3, 3, 4)]
            return {"same": torch.equal(out[0], out[1]), "other": not torch.equal(out[0],
                                                                                 out[2])}
        partial.name_mistakes(known_mistakes("sample_noise", outcome, observed,
                                                    lambda a, b: a == b))


# ---- the GAN losses -----------------------------------------------------------------------------

@pytest.mark.points(3)
@pytest.mark.covers("discriminator_loss", "generator_loss")
def test_gan_losses_at_zero_logits(student, device, partial, probes):
    """GAN losses: logits 0 give 2 log 2 for D and log 2 for G, for any batch sizes"""
    for n_real, n_fake in ((4, 6), (1, 1)):
        with partial.part(f"discriminator_loss, {n_real} real and {n_fake} fake logits 0"):
            loss = probes.expect_loss(
                student.discriminator_loss(probes.tensor(np.zeros((n_real, 1)), device),
                                           probes.tensor(np.zeros((n_fake, 1)), device)),
                "discriminator_loss", device)
            assert_close(loss, 2 * np.log(2), f"discriminator_loss of {n_real} real and "
                         f"{n_fake} fake logits, all 0 (expected 2 log 2: BCE(0, 1) = "
                         "BCE(0, 0) = log 2, the sum of two means)", tol=LOSS_TOL)
    with partial.part("generator_loss, 5 fake logits 0"):
        loss = probes.expect_loss(student.generator_loss(probes.tensor(np.zeros((5, 1)), device)),
                                  "generator_loss", device)
        assert_close(loss, np.log(2), "generator_loss of 5 fake logits, all 0 (expected log 2)",
                     tol=LOSS_TOL)


@pytest.mark.points(4)
@pytest.mark.covers("discriminator_loss")
def test_discriminator_loss_against_reference(student, reference, device, rng, partial, probes):
    """discriminator_loss: value, gradients and their signs on random logits"""
    # Batches of different sizes: a mean over the concatenated logits differs from the sum of
    # the two means.
    real, fake = probes.random_logits(rng, 6), probes.random_logits(rng, 4)
    inputs = dict(logits_real=real, logits_fake=fake)
    ref_loss, (ref_real, ref_fake) = probes.reference_loss(reference.discriminator_loss,
                                                           [real, fake])
    out, grads = probes.grad_call(student.discriminator_loss, "discriminator_loss",
                                  probes.tensor(real, device, requires_grad=True),
                                  probes.tensor(fake, device, requires_grad=True))
    with partial.part("value"):
        assert_close(probes.expect_loss(out, "discriminator_loss", device, inputs), ref_loss,
                     "discriminator_loss", inputs=inputs, tol=LOSS_TOL)
    got_real = probes.expect_gradient(grads[0], "logits_real", "discriminator_loss", shape=(6, 1),
                                      device=device, inputs=inputs)
    got_fake = probes.expect_gradient(grads[1], "logits_fake", "discriminator_loss", shape=(4, 1),
                                      device=device, inputs=inputs)
    with partial.part("gradient signs"):
        if not (np.all(got_real < 0) and np.all(got_fake > 0)):
            raise CheckFailure(
                "discriminator_loss: the gradient with respect to the real logits should be "
                "negative everywhere (raising a real logit lowers D's loss) and with respect to "
                f"the fake logits positive everywhere; got {np.round(got_real.ravel(), 4)} and "
                f"{np.round(got_fake.ravel(), 4)} (are the labels swapped?)", inputs=inputs)
    with partial.part("gradients", 2):
        assert_close(got_real, ref_real, "gradient of discriminator_loss with respect to "
                     "logits_real", inputs=inputs, tol=LOSS_TOL)
        assert_close(got_fake, ref_fake, "gradient of discriminator_loss with respect to "
                     "logits_fake", inputs=inputs, tol=LOSS_TOL)


@pytest.mark.points(3)
@pytest.mark.covers("generator_loss")
def test_generator_loss_against_reference(student, reference, device, rng, partial, probes):
    """generator_loss: value, gradient and its sign on random logits"""
    fake = probes.random_logits(rng, 5)
    inputs = dict(logits_fake=fake)
    ref_loss, (ref_grad,) = probes.reference_loss(reference.generator_loss, [fake])
    out, grads = probes.grad_call(student.generator_loss, "generator_loss",
                                  probes.tensor(fake, device, requires_grad=True))
    with partial.part("value"):
        assert_close(probes.expect_loss(out, "generator_loss", device, inputs), ref_loss,
                     "generator_loss", inputs=inputs, tol=LOSS_TOL)
    got = probes.expect_gradient(grads[0], "logits_fake", "generator_loss", shape=(5, 1),
                                 device=device, inputs=inputs)
    with partial.part("gradient sign"):
        if not np.all(got < 0):
            raise CheckFailure("generator_loss: the gradient with respect to the fake logits "
                               "should be negative everywhere (the generator wants D to call "
                               f"its samples real); got {np.round(got.ravel(), 4)}",
                               inputs=inputs)
    with partial.part("gradient"):
        assert_close(got, ref_grad, "gradient of generator_loss with respect to logits_fake",
                     inputs=inputs, tol=LOSS_TOL)


@pytest.mark.points(2)
@pytest.mark.covers("generator_loss")
def test_generator_loss_non_saturating(student, device, probes):
    """generator_loss: keeps a gradient of about -1/N where D rejects the fakes"""
    fake = np.array([[-20.0], [-12.0], [-30.0], [-16.0]])
    out, grads = probes.grad_call(student.generator_loss, "generator_loss",
                                  probes.tensor(fake, device, requires_grad=True))
    probes.expect_loss(out, "generator_loss", device, dict(logits_fake=fake))
    got = probes.expect_gradient(grads[0], "logits_fake", "generator_loss", shape=(4, 1),
                                 device=device)
    # d BCE(s, 1) / ds = sigmoid(s) - 1, divided by N = 4 for the mean: -0.25 at s << 0.
    if not np.all(np.abs(got + 0.25) < 1e-3):
        raise CheckFailure(
            f"generator_loss at fake logits {fake.ravel().tolist()} (D rejects every fake): the "
            f"gradient is {got.ravel().tolist()}, expected about -1/4 for each of the 4 logits. "
            "A gradient near 0 here is the saturating loss log(1 - D(G(z))), which stops "
            "training the generator exactly when it is worst; minimise -log D(G(z)), i.e. "
            "BCE(logits_fake, 1)")


@pytest.mark.points(2)
@pytest.mark.covers("discriminator_loss", "generator_loss")
def test_gan_losses_stable(student, reference, device, partial, probes):
    """GAN losses: finite and right for float32 logits of +-200"""
    real = np.array([[-200.0], [150.0], [3.0]])
    fake = np.array([[200.0], [-120.0]])
    inputs = dict(logits_real=real, logits_fake=fake)
    with partial.part("discriminator_loss"):
        expected = float(reference.discriminator_loss(torch.tensor(real), torch.tensor(fake)))
        got = probes.expect_loss(
            student.discriminator_loss(probes.tensor(real, device, dtype=torch.float32),
                                       probes.tensor(fake, device, dtype=torch.float32)),
            "discriminator_loss of float32 logits of +-200", device, inputs)
        assert_close(got, expected, "discriminator_loss of float32 logits of +-200 (work with "
                     "the logits, e.g. F.binary_cross_entropy_with_logits, not with "
                     "log(sigmoid(...)))", inputs=inputs, tol=LOSS_TOL)
    with partial.part("generator_loss"):
        expected = float(reference.generator_loss(torch.tensor(fake)))
        got = probes.expect_loss(
            student.generator_loss(probes.tensor(fake, device, dtype=torch.float32)),
            "generator_loss of float32 logits of +-200", device, dict(logits_fake=fake))
        assert_close(got, expected, "generator_loss of float32 logits of +-200 (work with the "
                     "logits, not with log(sigmoid(...)))", inputs=dict(logits_fake=fake),
                     tol=LOSS_TOL)


# ---- least-squares losses -----------------------------------------------------------------------

@pytest.mark.points(3)
@pytest.mark.covers("ls_discriminator_loss")
def test_ls_discriminator_loss(student, reference, device, rng, partial, probes):
    """ls_discriminator_loss: hand values, then value and gradients on random scores"""
    # Gate (null audit): a loss of zeros also gives the perfect D's 0; that case is checked
    # last and pays only when some other case gave another value.
    cases = [("all scores 0", [0.0, 0.0], [0.0], 0.5),
             ("real scores 3, fake scores 2", [3.0, 3.0, 3.0], [2.0], 4.0),
             ("real scores 1, fake scores 0 (a perfect D)", [1.0, 1.0], [0.0, 0.0, 0.0], 0.0)]
    values = []
    for label, real, fake, expected in cases:
        with partial.part(label):
            got = probes.expect_loss(
                student.ls_discriminator_loss(probes.tensor(np.c_[real], device),
                                              probes.tensor(np.c_[fake], device)),
                "ls_discriminator_loss", device)
            values.append(got)
            if expected == 0.0:
                probes.require_computed(
                    probes.degenerate(values, f"ls_discriminator_loss with {label}"))
            assert_close(got, expected, f"ls_discriminator_loss with {label}", tol=LOSS_TOL)
    real, fake = probes.random_logits(rng, 5), probes.random_logits(rng, 3)
    inputs = dict(scores_real=real, scores_fake=fake)
    ref_loss, ref_grads = probes.reference_loss(reference.ls_discriminator_loss, [real, fake])
    out, grads = probes.grad_call(student.ls_discriminator_loss, "ls_discriminator_loss",
                                  probes.tensor(real, device, requires_grad=True),
                                  probes.tensor(fake, device, requires_grad=True))
    with partial.part("value and gradients on random scores", 2):
        assert_close(probes.expect_loss(out, "ls_discriminator_loss", device, inputs), ref_loss,
                     "ls_discriminator_loss", inputs=inputs, tol=LOSS_TOL)
        for name, grad, expected, n in zip(("scores_real", "scores_fake"), grads, ref_grads,
                                           (5, 3), strict=True):
            got = probes.expect_gradient(grad, name, "ls_discriminator_loss", shape=(n, 1),
                                         device=device, inputs=inputs)
            assert_close(got, expected, f"gradient of ls_discriminator_loss with respect to "
                         f"{name}", inputs=inputs, tol=LOSS_TOL)


@pytest.mark.points(2)
@pytest.mark.covers("ls_generator_loss")
def test_ls_generator_loss(student, reference, device, rng, partial, probes):
    """ls_generator_loss: hand values, then value and gradient on random scores"""
    cases = [("fake scores 0", [0.0, 0.0], 0.5), ("fake scores 1", [1.0], 0.0),
             ("fake scores 3 and -1", [3.0, -1.0], 2.0)]
    with partial.part("hand values"):
        for label, fake, expected in cases:
            got = probes.expect_loss(
                student.ls_generator_loss(probes.tensor(np.c_[fake], device)),
                "ls_generator_loss", device)
            assert_close(got, expected, f"ls_generator_loss with {label}", tol=LOSS_TOL)
    fake = probes.random_logits(rng, 4)
    inputs = dict(scores_fake=fake)
    ref_loss, (ref_grad,) = probes.reference_loss(reference.ls_generator_loss, [fake])
    out, grads = probes.grad_call(student.ls_generator_loss, "ls_generator_loss",
                                  probes.tensor(fake, device, requires_grad=True))
    with partial.part("value and gradient on random scores"):
        assert_close(probes.expect_loss(out, "ls_generator_loss", device, inputs), ref_loss,
                     "ls_generator_loss", inputs=inputs, tol=LOSS_TOL)
        got = probes.expect_gradient(grads[0], "scores_fake", "ls_generator_loss", shape=(4, 1),
                                     device=device, inputs=inputs)
        assert_close(got, ref_grad, "gradient of ls_generator_loss with respect to "
                     "scores_fake", inputs=inputs, tol=LOSS_TOL)


# ---- the networks -------------------------------------------------------------------------------

@pytest.mark.points(3)
@pytest.mark.covers("build_generator")
def test_build_generator(student, reference, device, rng, partial, known_mistakes, probes):
    """build_generator: parameter counts, output shape, LeakyReLU(0.2) layers, linear output"""
    probes.check_architecture(student, reference, device, rng, partial, known_mistakes, "generator",
                              [({}, 4610), (dict(noise_dim=3, hidden_dim=10, out_dim=5), 205)])


@pytest.mark.points(3)
@pytest.mark.covers("build_discriminator")
def test_build_discriminator(student, reference, device, rng, partial, known_mistakes, probes):
    """build_discriminator: parameter counts, output shape, LeakyReLU(0.2) layers, logits"""
    probes.check_architecture(student, reference, device, rng, partial, known_mistakes,
                              "discriminator",
                              [({}, 4417), (dict(in_dim=3, hidden_dim=10), 161)])


# ---- gan_step -----------------------------------------------------------------------------------

@pytest.mark.points(8)
@pytest.mark.covers("gan_step")
def test_gan_step_matches_reference(student, reference, make, device, rng, partial,
                                    known_mistakes, probes):
    """gan_step: two steps from the grader's weights update both networks as expected"""
    weights = (probes.random_weights(rng, probes.shapes_of("generator", probes.SMALL_G)),
               probes.random_weights(rng, probes.shapes_of("discriminator", probes.SMALL_D)))
    # gan_step alone is judged: on the contract's networks built by the grader, against the
    # contract's steps computed here around the student's own losses (StudentLoss).
    G = probes.contract_network(make, "generator", probes.SMALL_G, weights[0], device)
    D = probes.contract_network(make, "discriminator", probes.SMALL_D, weights[1], device)
    batches = probes.step_batches(rng, 2)

    # Plain SGD: an update is the gradient itself, so every change of scale shows (Adam's
    # first steps would hide, e.g., a halved loss).
    opt_G = make("torch.optim.SGD", G.parameters(), lr=probes.STEP_LR)
    opt_D = make("torch.optim.SGD", D.parameters(), lr=probes.STEP_LR)
    returned, states = [], []
    for x_real, z_d, z_g in batches:
        returned.append(student.gan_step(G, D, opt_G, opt_D,
                                         *(probes.tensor(a, device, dtype=torch.float32)
                                           for a in (x_real, z_d, z_g))))
        states.append((list(probes.student_state(G, "G").values()),
                       list(probes.student_state(D, "D").values())))
    losses = [(math.nan, math.nan)] * len(batches)
    # Gate (null audit): a gan_step that returns zeros may still update the networks; the
    # float returns and the updates pay only when the returned losses (2 steps, read as
    # numbers where they are floats or one-element tensors) are not all equal.
    gate = probes.degenerate(probes.loose_losses(returned), "gan_step's returned (d_loss, g_loss)")
    with partial.part("returns (d_loss, g_loss) as floats"):
        probes.require_computed(gate)
        losses = [tuple(probes.expect_float(v, f"gan_step's {name}") for v, name in
                        zip(expect_tuple(out, 2, "gan_step"), ("d_loss", "g_loss"), strict=True))
                  for out in returned]
    initial = tuple([w.astype(np.float64) for w in ws] for ws in weights)
    observed = probes.step_outcome(losses, states, initial)
    # Right with the student's own losses or with the contract's (a gan_step may compute
    # them itself): each part passes when it matches one of the two.
    try:
        own = probes.reference_steps(probes.contract_gan_step(student, device), reference,
                                     weights, batches, initial)
    except UpstreamFailure:
        own = None
    candidates = [own, probes.reference_steps(reference.gan_step, reference, weights, batches,
                                              initial)]
    with partial.part("the returned losses"):
        if np.isnan(observed["losses"]).any():
            raise CheckFailure("gan_step's losses could not be compared: it should return "
                               "(d_loss.item(), g_loss.item())")
        one_of(lambda expected: assert_close(
            observed["losses"], expected["losses"], "gan_step's (d_loss, g_loss) in steps 1 "
            "and 2 (each computed before its network's update)", tol=LOSS_TOL), candidates)
    n_g, n_d = len(initial[0]), len(initial[1])
    probes.compare_updates(partial, "the discriminator's update in step 1", observed, candidates,
                           [("D", i, 1) for i in range(n_d)], gate=gate)
    probes.compare_updates(partial, "the generator's update in step 1", observed, candidates,
                           [("G", i, 1) for i in range(n_g)], gate=gate)
    probes.compare_updates(partial, "both networks' updates in step 2", observed, candidates,
                           [(net, i, 2) for net, n in (("D", n_d), ("G", n_g)) for i in range(n)],
                           gate=gate)
    if partial.fraction < 1:
        partial.name_mistakes(known_mistakes(
            "gan_step",
            lambda module: probes.reference_steps(module.gan_step, reference, weights, batches,
                                                  initial),
            observed, dicts_close(probes.UPDATE_TOL)))


# ---- train_gan ----------------------------------------------------------------------------------

SHORT_RUN = dict(steps=5, batch_size=32, noise_dim=3)


@pytest.mark.points(2)
@pytest.mark.covers("train_gan")
def test_train_gan_history(student, reference, make, device, partial, known_mistakes, probes):
    """train_gan: returns one d_loss and one g_loss float per step, and trains both networks"""
    weights = (probes.random_weights(np.random.default_rng(5),
                                     probes.shapes_of("generator", probes.SMALL_G)),
               probes.random_weights(np.random.default_rng(6),
                                     probes.shapes_of("discriminator", probes.SMALL_D)))
    G = probes.contract_network(make, "generator", probes.SMALL_G, weights[0], device)
    D = probes.contract_network(make, "discriminator", probes.SMALL_D, weights[1], device)
    before = [probes.student_state(m, n) for m, n in ((G, "G"), (D, "D"))]
    observed = {}
    # Gate (null audit): a train_gan that returns zeros may still train; both parts pay only
    # when the returned losses are not all equal.
    gate = "train_gan(..., steps=5) returned no history that could be read"
    with partial.part("history of 5 steps"):
        try:
            history = student.train_gan(G, D, probes.ring_sampler(make, device), seed=0,
                                        **SHORT_RUN)
        except StudentCodeError as exc:
            observed = {"error": (exc.exc_type, exc.message)}
            raise
        observed = probes.run_summary(history)
        checked = probes.expect_history(history, 5, "train_gan(..., steps=5)")
        gate = probes.history_gate(checked, "train_gan(..., steps=5)")
        probes.require_computed(gate)
    with partial.part("both networks are trained in place"):
        probes.require_computed(gate)
        # A network the student's gan_step itself leaves unchanged is gan_step's mistake
        # (its own test), not train_gan's: only the others must change.
        try:
            _, g_after, d_after = probes.contract_train_gan(
                student, make, device, weights, probes.wiring_batches(np.random.default_rng(7), 1))
        except UpstreamFailure:
            g_after = d_after = None  # judged as with the contract's gan_step: both move
        for model, name, old, after in ((G, "generator", before[0], g_after),
                                        (D, "discriminator", before[1], d_after)):
            if after is not None and all(np.array_equal(a, b) for a, b in
                                         zip(after, old.values(), strict=True)):
                continue
            new = probes.student_state(model, name)
            if all(np.array_equal(new[k], old[k]) for k in old):
                raise CheckFailure(f"after train_gan(G, D, ...) the {name}'s parameters are "
                                   "unchanged: each network needs its own optimizer, stepped "
                                   "in gan_step")
    if partial.fraction < 1 and observed:
        def outcome(module):
            try:
                return probes.run_summary(probes.reference_runs(reference, module.train_gan, [0],
                                                                **SHORT_RUN)[0][0])
            except Exception as exc:  # noqa: BLE001 - the mistake may be a crash
                return {"error": (type(exc).__name__, str(exc))}
        partial.name_mistakes(known_mistakes("train_gan", outcome, observed,
                                                    lambda a, b: a == b))


@pytest.mark.points(2)
@pytest.mark.covers("train_gan", "sample_noise")
def test_train_gan_reproducible(student, reference, make, device, partial, known_mistakes, probes):
    """train_gan: the same seed gives the same run, another seed another run"""
    G = probes.student_model(student, "generator", probes.SMALL_G, device)
    D = probes.student_model(student, "discriminator", probes.SMALL_D, device)
    copies = [(make("copy.deepcopy", G), make("copy.deepcopy", D)) for _ in range(2)]
    sampler = probes.ring_sampler(make, device)
    runs = []
    for (g, d), seed in zip([(G, D), *copies], (7, 7, 8), strict=True):
        history = probes.expect_history(student.train_gan(g, d, sampler, seed=seed, **REPRO_RUN),
                                        REPRO_RUN["steps"])
        runs.append((history, list(probes.student_state(g, "G").values()),
                     list(probes.student_state(d, "D").values())))
    observed = {"same seed, same run": probes.same_run(runs[0], runs[1]),
                "other seed, other run": not probes.same_run(runs[0], runs[2])}
    # Gate (null audit): constant histories are the same for every seed; both parts pay only
    # when the first run's losses are not all equal.
    gate = probes.history_gate(runs[0][0], "train_gan(..., seed=7)")
    with partial.part("the same seed, the same run"):
        probes.require_computed(gate)
        if not observed["same seed, same run"]:
            raise CheckFailure("two runs of train_gan(..., seed=7) from identical networks "
                               "gave different losses or weights: draw every random number "
                               "(real batches and noise) with one torch.Generator seeded with "
                               "seed, and pass it to data_sampler and sample_noise")
    with partial.part("another seed, another run"):
        probes.require_computed(gate)
        if not observed["other seed, other run"]:
            raise CheckFailure("train_gan(..., seed=7) and train_gan(..., seed=8) from identical "
                               "networks gave identical runs: seed the generator with seed "
                               "(torch.Generator().manual_seed(seed))")
    if partial.fraction < 1:
        def outcome(module):
            runs = [(probes.run_history(h), g, d) for h, g, d in
                    probes.reference_runs(reference, module.train_gan, (7, 7, 8), **REPRO_RUN)]
            return {"same seed, same run": probes.same_run(runs[0], runs[1]),
                    "other seed, other run": not probes.same_run(runs[0], runs[2])}
        partial.name_mistakes(known_mistakes("train_gan", outcome, observed,
                                                    lambda a, b: a == b))


REPRO_RUN = dict(steps=4, batch_size=32, noise_dim=3)


@pytest.mark.points(4)
@pytest.mark.covers("train_gan")
def test_train_gan_optimizers(student, reference, make, device, rng, partial, known_mistakes,
                              probes):
    """train_gan: Adam (lr 1e-3, betas (0.5, 0.999)) for each network, one gan_step per step"""
    weights = probes.wiring_weights(rng)
    # train_gan alone is judged: on the contract's networks built by the grader, against the
    # contract's loop run by the grader around the student's own gan_step.
    G = probes.contract_network(make, "generator", probes.SMALL_G, weights[0], device)
    D = probes.contract_network(make, "discriminator", probes.SMALL_D, weights[1], device)
    sampler = make("mixture_sampler",
                   probes.tensor(probes.WIRING_POINT, device, dtype=torch.float32), 0.0)
    history = probes.expect_history(student.train_gan(G, D, sampler, **probes.WIRING), 2,
                                    "train_gan(..., steps=2)")
    initial = tuple([w.astype(np.float64) for w in ws] for ws in weights)
    observed = probes.wiring_outcome(history, list(probes.student_state(G, "G").values()),
                                     list(probes.student_state(D, "D").values()), initial)
    # Right with the student's own gan_step or with the contract's: each part passes when it
    # matches one of the two.
    try:
        own = probes.wiring_outcome(
            *probes.contract_train_gan(student, make, device, weights,
                                       probes.wiring_batches(rng, probes.WIRING["steps"])),
            initial)
    except UpstreamFailure:
        own = None
    if own is not None and len({*own["d_loss"], *own["g_loss"]}) == 1:
        own = None  # a gan_step that computes nothing: matching its run pays nothing
    candidates = [own, probes.reference_wiring(reference.train_gan, reference, weights, initial)]
    what = ("train_gan(G, D, sampler, steps=2) from networks whose output does not depend on "
            "the noise, on data that is a single point")
    # Gate (null audit): a train_gan that returns zeros may still make the right Adam steps;
    # the updates and betas pay only when the returned losses are not all equal.
    gate = probes.history_gate(history, "train_gan(G, D, sampler, steps=2)")
    def same_history(expected):
        for key in ("d_loss", "g_loss"):
            assert_close(observed[key], expected[key], f"{what}: history[{key!r}]",
                         tol=LOSS_TOL)

    def same_updates(net, name, expected):
        for key in [k for k in expected if k.startswith(net) and k != "G 0"]:
            err = norm_error(observed[key], expected[key])
            if err > probes.UPDATE_TOL:
                raise CheckFailure(
                    f"{what}: the update of the {name}'s parameter {key.split()[1]} (in "
                    f"state_dict order) differs from Adam's with lr {probes.ADAM_LR:g} and "
                    f"betas {probes.ADAM_BETAS} by {err:.2e} (relative norm; allowed "
                    f"{probes.UPDATE_TOL:.0e})")

    def same_first_step(expected):
        got, want = float(observed["G 0"][0]), float(expected["G 0"][0])
        if abs(got - want) > 0.03 * max(want, probes.FIRST_STEP_SIZE):
            raise CheckFailure(
                f"{what}: the generator's first weight matrix got its first nonzero gradient in "
                f"step 2, so Adam should move each entry by lr * sqrt(1 + beta2) / (1 + beta1) "
                f"= {probes.FIRST_STEP_SIZE:.4g} for lr 1e-3 and betas (0.5, 0.999) (by {want:.4g} "
                f"with the gan_step used); the median move is {got:.4g}")

    with partial.part("the history of losses"):
        one_of(same_history, candidates)
    for net, name in (("D", "discriminator"), ("G", "generator")):
        with partial.part(f"the {name}'s Adam updates"):
            probes.require_computed(gate)
            one_of(lambda expected, n=net, w=name: same_updates(n, w, expected), candidates)
    with partial.part("Adam's betas"):
        probes.require_computed(gate)
        one_of(same_first_step, candidates)
    if partial.fraction < 1:
        partial.name_mistakes(known_mistakes(
            "train_gan",
            lambda module: probes.reference_wiring(module.train_gan, reference, weights, initial),
            observed, dicts_close(probes.UPDATE_TOL)))


# ---- the trained GAN ----------------------------------------------------------------------------

# A sample is high quality within 3 standard deviations (0.3) of the nearest centre. A mode
# counts as covered when at least 5% of all samples are high-quality samples of it: a fifth of
# its fair share of 25%, where a dropped mode keeps almost none. The reference (1000 steps of
# train_gan) reaches a quality of 0.78-0.90 with every mode above 10% on 16 seeds of
# initialisation and training (CPU, torch 2.13): wide margins for GPUs and other correct code.
QUALITY_THRESHOLD = 0.6
MODE_THRESHOLD = 0.05


@pytest.mark.points(10)
@pytest.mark.time_limit(90)
@pytest.mark.covers("train_gan", "gan_step", "build_generator", "build_discriminator")
@pytest.mark.integration  # end to end: any upstream mistake costs here
def test_trained_gan_covers_the_ring(student, reference, make, device, train_seed, partial, probes):
    """Training: your GAN covers all 4 modes of the ring with mostly high-quality samples"""
    history, samples = probes.trained_samples(student, make, device, train_seed, reference)
    quality, shares = probes.ring_scores(samples)
    learned = quality > QUALITY_THRESHOLD or shares.min() > MODE_THRESHOLD
    # Gates: the history pays only when its losses are not all equal (null audit) and the
    # generator learned something by either measure below.
    with partial.part("history"):
        checked = probes.expect_history(history, probes.TRAIN["steps"],
                                        "train_gan(..., steps=1000)")
        probes.require_computed(probes.history_gate(checked, "train_gan(..., steps=1000)"))
        if not learned:
            raise CheckFailure("the history is credited only with a generator that learned: "
                               "its samples miss both measures below")
    detail = (f"after train_gan(build_generator(), build_discriminator(), ring, steps=1000), "
              f"{probes.EVAL_SAMPLES} samples of the trained generator's parameters (the "
              f"contract's network, run by the grader on its own noise): {100 * quality:.1f}% "
              f"are within 0.3 of a centre; the modes hold {np.round(100 * shares, 1).tolist()}%")
    with partial.part("high-quality fraction above 0.6", 4):
        assert_metric(quality, QUALITY_THRESHOLD, "the fraction of high-quality samples",
                      detail=detail)
    with partial.part("all 4 modes covered", 5):
        assert_metric(float(shares.min()), MODE_THRESHOLD, "the share of the least covered "
                      "mode", detail=detail)
