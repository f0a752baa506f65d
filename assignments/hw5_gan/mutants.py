"""Known mistakes for hw5_gan, as text edits of solutions/hw5_gan.ipynb.

Each non-equivalent mutant must lose points under the hidden tests; ``old`` is exact text of
the master's code cells (the notebook is the source: an edit of it must keep each ``old``
text, or that mutant no longer applies).
"""
from autograder.mutants import Mutant

_NOISE = "noise = 2 * torch.rand(batch_size, dim, generator=generator, device=device) - 1"
_D_REAL = ("loss_real = F.binary_cross_entropy_with_logits(logits_real, "
           "torch.ones_like(logits_real))")
_D_FAKE = ("loss_fake = F.binary_cross_entropy_with_logits(logits_fake, "
           "torch.zeros_like(logits_fake))")
_G_LOSS = "loss = F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))"
_LS_D = "loss = 0.5 * torch.mean((scores_real - 1) ** 2) + 0.5 * torch.mean(scores_fake ** 2)"
_LS_G = "loss = 0.5 * torch.mean((scores_fake - 1) ** 2)"
_OPTIMIZERS = """    opt_G = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))"""

MUTANTS = [
    # ---- sample_noise -------------------------------------------------------------------------
    Mutant(
        name="noise_unit_interval",
        function="sample_noise",
        public_check_catches=True,
        diagnosis="the noise looks uniform on [0, 1) (torch.rand as it is) instead of on "
                  "(-1, 1): rescale it with 2 * u - 1",
        old=_NOISE,
        new="noise = torch.rand(batch_size, dim, generator=generator, device=device)",
    ),
    Mutant(
        name="noise_half_width",
        function="sample_noise",
        public_check_catches=True,
        diagnosis="the noise looks uniform on (-0.5, 0.5) (torch.rand minus 0.5) instead of "
                  "on (-1, 1)",
        old=_NOISE,
        new="noise = torch.rand(batch_size, dim, generator=generator, device=device) - 0.5",
    ),
    Mutant(
        name="noise_gaussian",
        function="sample_noise",
        public_check_catches=True,
        diagnosis="the noise looks standard normal (torch.randn), with values beyond +-1, "
                  "instead of uniform on (-1, 1)",
        old=_NOISE,
        new="noise = torch.randn(batch_size, dim, generator=generator, device=device)",
    ),
    Mutant(
        name="noise_same_row_for_the_batch",
        function="sample_noise",
        public_check_catches=True,
        diagnosis="every row of the noise batch is the same vector: draw batch_size rows, "
                  "one per sample",
        old=_NOISE,
        new="noise = (2 * torch.rand(1, dim, generator=generator, device=device) - 1)"
            ".expand(batch_size, dim)",
    ),
    Mutant(
        name="noise_ignores_generator",
        function="sample_noise",
        public_check_catches=True,
        diagnosis="the noise ignores the generator argument: it is drawn from torch's global "
                  "random state, so the same seed does not give the same noise",
        old=_NOISE,
        new="noise = 2 * torch.rand(batch_size, dim, device=device) - 1",
    ),
    # ---- discriminator_loss -------------------------------------------------------------------
    Mutant(
        name="d_loss_swapped_labels",
        function="discriminator_loss",
        public_check_catches=True,
        diagnosis="the discriminator loss labels the real samples 0 and the fakes 1: it "
                  "trains D to call fakes real",
        old=f"{_D_REAL}\n    {_D_FAKE}",
        new="loss_real = F.binary_cross_entropy_with_logits(logits_real, "
            "torch.zeros_like(logits_real))\n    loss_fake = "
            "F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))",
    ),
    Mutant(
        name="d_loss_averaged",
        function="discriminator_loss",
        public_check_catches=True,
        diagnosis="the discriminator loss looks halved: the two means (real and fake) are "
                  "averaged instead of summed",
        old="loss = loss_real + loss_fake",
        new="loss = 0.5 * (loss_real + loss_fake)",
    ),
    Mutant(
        name="d_loss_sigmoid_before_bce",
        function="discriminator_loss",
        public_check_catches=True,
        diagnosis="a sigmoid is applied to the logits before binary_cross_entropy_with_logits,"
                  " which applies its own: the loss sees sigmoid(sigmoid(logit))",
        old=f"{_D_REAL}\n    {_D_FAKE}",
        new="loss_real = F.binary_cross_entropy_with_logits(torch.sigmoid(logits_real), "
            "torch.ones_like(logits_real))\n    loss_fake = F.binary_cross_entropy_with_logits("
            "torch.sigmoid(logits_fake), torch.zeros_like(logits_fake))",
    ),
    Mutant(
        name="d_loss_mean_over_both_batches",
        function="discriminator_loss",
        public_check_catches=True,
        diagnosis="the discriminator loss looks like one mean over the real and fake logits "
                  "together, not the sum of a mean over each batch",
        old="loss = loss_real + loss_fake",
        new="n_real, n_fake = logits_real.numel(), logits_fake.numel()\n"
            "    loss = (n_real * loss_real + n_fake * loss_fake) / (n_real + n_fake)",
    ),
    Mutant(
        name="d_loss_log_of_sigmoid",
        function="discriminator_loss",
        diagnosis="the loss is computed as log(sigmoid(logit)), which gives inf for large "
                  "logits in float32; use binary_cross_entropy_with_logits (or logsigmoid)",
        old=f"{_D_REAL}\n    {_D_FAKE}",
        new="loss_real = -torch.log(torch.sigmoid(logits_real)).mean()\n"
            "    loss_fake = -torch.log(1 - torch.sigmoid(logits_fake)).mean()",
    ),
    Mutant(
        name="d_loss_label_smoothing",
        function="discriminator_loss",
        public_check_catches=True,
        diagnosis="the real samples look labelled 0.9 (one-sided label smoothing); the "
                  "contract asks for plain targets: 1 for real, 0 for fake",
        old=_D_REAL,
        new="loss_real = F.binary_cross_entropy_with_logits(logits_real, "
            "torch.full_like(logits_real, 0.9))",
    ),
    Mutant(
        name="d_loss_fakes_labelled_real",
        function="discriminator_loss",
        public_check_catches=True,
        diagnosis="the fake term uses the label 1, like the real term: the discriminator must "
                  "label its fakes 0, BCE(logits_fake, 0)",
        old=_D_FAKE,
        new="loss_fake = F.binary_cross_entropy_with_logits(logits_fake, "
            "torch.ones_like(logits_fake))",
    ),
    Mutant(
        name="d_loss_logits_squeezed",
        function="discriminator_loss",
        diagnosis="the logits are squeezed to match targets of shape (N,): for a batch of one "
                  "squeeze() also drops the batch dimension, and the shapes no longer match; "
                  "build the targets with torch.ones_like(logits_real) instead",
        old=_D_REAL,
        new="loss_real = F.binary_cross_entropy_with_logits(logits_real.squeeze(), "
            "torch.ones(logits_real.shape[0], dtype=logits_real.dtype, "
            "device=logits_real.device))",
    ),
    # ---- generator_loss -------------------------------------------------------------------------
    Mutant(
        name="g_loss_saturating",
        function="generator_loss",
        public_check_catches=True,
        diagnosis="the generator loss looks like the saturating log(1 - D(G(z))), i.e. "
                  "-BCE(logits_fake, 0): its gradient vanishes when D rejects the fakes; "
                  "use the non-saturating BCE(logits_fake, 1)",
        old=_G_LOSS,
        new="loss = -F.binary_cross_entropy_with_logits(logits_fake, "
            "torch.zeros_like(logits_fake))",
    ),
    Mutant(
        name="g_loss_fake_label",
        function="generator_loss",
        public_check_catches=True,
        diagnosis="the generator loss labels the fakes 0, as the discriminator does: the "
                  "generator then learns to be caught; label them 1",
        old=_G_LOSS,
        new="loss = F.binary_cross_entropy_with_logits(logits_fake, "
            "torch.zeros_like(logits_fake))",
    ),
    Mutant(
        name="g_loss_summed",
        function="generator_loss",
        public_check_catches=True,
        diagnosis="the generator loss looks summed over the fakes instead of averaged",
        old=_G_LOSS,
        new="loss = F.binary_cross_entropy_with_logits(logits_fake, "
            "torch.ones_like(logits_fake), reduction=\"sum\")",
    ),
    # ---- least squares -----------------------------------------------------------------------
    Mutant(
        name="ls_d_without_half",
        function="ls_discriminator_loss",
        public_check_catches=True,
        diagnosis="the least-squares discriminator loss looks twice too large: each mean is "
                  "weighted by 1/2",
        old=_LS_D,
        new="loss = torch.mean((scores_real - 1) ** 2) + torch.mean(scores_fake ** 2)",
    ),
    Mutant(
        name="ls_g_target_zero",
        function="ls_generator_loss",
        public_check_catches=True,
        diagnosis="the least-squares generator loss pulls the fake scores to 0 (the "
                  "discriminator's target for fakes) instead of to 1",
        old=_LS_G,
        new="loss = 0.5 * torch.mean(scores_fake ** 2)",
    ),
    Mutant(
        name="ls_g_square_of_mean",
        function="ls_generator_loss",
        diagnosis="the least-squares generator loss squares the mean of (scores_fake - 1) "
                  "instead of averaging the squares: write torch.mean((scores_fake - 1) ** 2)",
        old=_LS_G,
        new="loss = 0.5 * torch.mean(scores_fake - 1) ** 2",
    ),
    # ---- the networks ----------------------------------------------------------------------
    Mutant(
        name="generator_relu",
        function="build_generator",
        diagnosis="the generator's hidden layers look like plain ReLUs instead of "
                  "LeakyReLU(0.2): negative pre-activations give 0",
        old="nn.Linear(noise_dim, hidden_dim), nn.LeakyReLU(0.2),",
        new="nn.Linear(noise_dim, hidden_dim), nn.ReLU(),",
    ),
    Mutant(
        name="generator_tanh_output",
        function="build_generator",
        diagnosis="the generator's output looks squashed by a tanh into (-1, 1): the data lie "
                  "on a circle of radius 2, so the output layer must be linear",
        old="nn.Linear(hidden_dim, out_dim),",
        new="nn.Linear(hidden_dim, out_dim), nn.Tanh(),",
    ),
    Mutant(
        name="generator_one_hidden_layer",
        function="build_generator",
        public_check_catches=True,
        diagnosis="the generator has one hidden layer; the contract asks for two",
        old="""        nn.Linear(noise_dim, hidden_dim), nn.LeakyReLU(0.2),
        nn.Linear(hidden_dim, hidden_dim), nn.LeakyReLU(0.2),""",
        new="""        nn.Linear(noise_dim, hidden_dim), nn.LeakyReLU(0.2),""",
    ),
    Mutant(
        name="discriminator_sigmoid_output",
        function="build_discriminator",
        public_check_catches=True,
        diagnosis="the discriminator ends with a sigmoid and returns probabilities; it should "
                  "return logits, since the losses apply the sigmoid themselves",
        old="nn.Linear(hidden_dim, 1),",
        new="nn.Linear(hidden_dim, 1), nn.Sigmoid(),",
    ),
    Mutant(
        name="discriminator_default_leak",
        function="build_discriminator",
        diagnosis="the discriminator's LeakyReLUs look like they have the default negative "
                  "slope 0.01 instead of 0.2",
        old="nn.Linear(in_dim, hidden_dim), nn.LeakyReLU(0.2),\n"
            "        nn.Linear(hidden_dim, hidden_dim), nn.LeakyReLU(0.2),",
        new="nn.Linear(in_dim, hidden_dim), nn.LeakyReLU(),\n"
            "        nn.Linear(hidden_dim, hidden_dim), nn.LeakyReLU(),",
    ),
    # ---- gan_step -------------------------------------------------------------------------
    Mutant(
        name="step_no_d_zero_grad",
        function="gan_step",
        diagnosis="the discriminator's gradients are not zeroed before its backward pass: its "
                  "second update also carries the gradients of the first step (and of the "
                  "generator's loss); call opt_D.zero_grad() first",
        old="    opt_D.zero_grad()\n",
        new="",
    ),
    Mutant(
        name="step_no_g_zero_grad",
        function="gan_step",
        diagnosis="the generator's gradients are not zeroed before its backward pass: each "
                  "update adds up the gradients of all earlier steps; call opt_G.zero_grad()",
        old="    opt_G.zero_grad()\n",
        new="",
    ),
    Mutant(
        name="step_g_zero_grad_after_backward",
        function="gan_step",
        public_check_catches=True,
        diagnosis="opt_G.zero_grad() comes after g_loss.backward(): it erases the gradients "
                  "just computed, so the generator never moves",
        old="    opt_G.zero_grad()\n    g_loss.backward()\n",
        new="    g_loss.backward()\n    opt_G.zero_grad()\n",
    ),
    Mutant(
        name="step_g_output_detached",
        function="gan_step",
        public_check_catches=True,
        diagnosis="the generator's samples are detached in the generator's step as well: no "
                  "gradient reaches G, so it never learns; detach only for the "
                  "discriminator's step",
        old="g_loss = generator_loss(D(G(z_g)))",
        new="g_loss = generator_loss(D(G(z_g).detach()))",
    ),
    Mutant(
        name="step_g_trained_on_d_fakes",
        function="gan_step",
        public_check_catches=True,
        diagnosis="the generator's loss reuses the discriminator step's fakes, which are "
                  "detached: no gradient reaches G, so it never learns; compute fresh fakes "
                  "G(z_g) for the generator's step",
        old="g_loss = generator_loss(D(G(z_g)))",
        new="g_loss = generator_loss(D(fake))",
    ),
    Mutant(
        name="step_d_fakes_from_z_g",
        function="gan_step",
        public_check_catches=True,
        diagnosis="the discriminator's fakes come from z_g instead of z_d",
        old="fake = G(z_d).detach()",
        new="fake = G(z_g).detach()",
    ),
    Mutant(
        name="step_g_loss_steps_d",
        function="gan_step",
        public_check_catches=True,
        diagnosis="after the generator's backward pass, opt_D is stepped instead of opt_G: the "
                  "discriminator moves along the generator's loss and the generator never "
                  "moves",
        old="    opt_G.step()",
        new="    opt_D.step()",
    ),
    Mutant(
        name="step_g_loss_also_steps_d",
        function="gan_step",
        public_check_catches=True,
        diagnosis="opt_D is stepped again after the generator's backward pass: the "
                  "discriminator also follows the generator's loss",
        old="    opt_G.step()",
        new="    opt_G.step()\n    opt_D.step()",
    ),
    Mutant(
        name="step_fakes_not_detached",
        function="gan_step",
        diagnosis="the fakes are not detached in the discriminator's step",
        old="fake = G(z_d).detach()",
        new="fake = G(z_d)",
        equivalent="the gradients this sends into G are erased by opt_G.zero_grad() before "
                   "the generator's backward pass: the updates are the same, only slower",
    ),
    # ---- train_gan --------------------------------------------------------------------------
    Mutant(
        name="train_new_optimizers_every_step",
        function="train_gan",
        diagnosis="a new optimizer was created during the run: new Adam optimizers at every "
                  "step throw away their moving averages; build opt_G and opt_D once, before "
                  "the loop",
        old=_OPTIMIZERS + """
    generator = torch.Generator().manual_seed(seed)
    history = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
""",
        new="""    generator = torch.Generator().manual_seed(seed)
    history = {"d_loss": [], "g_loss": []}
    for _ in range(steps):
""" + _OPTIMIZERS.replace("    opt_", "        opt_") + "\n",
    ),
    Mutant(
        name="train_default_betas",
        function="train_gan",
        diagnosis="Adam looks like it runs with its default betas (0.9, 0.999) instead of "
                  "(0.5, 0.999)",
        old=_OPTIMIZERS,
        new="""    opt_G = torch.optim.Adam(G.parameters(), lr=1e-3)
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-3)""",
    ),
    Mutant(
        name="train_wrong_learning_rate",
        function="train_gan",
        diagnosis="Adam's learning rate looks like 2e-4 instead of 1e-3",
        old=_OPTIMIZERS,
        new=_OPTIMIZERS.replace("lr=1e-3", "lr=2e-4"),
    ),
    Mutant(
        name="train_unseeded_generator",
        function="train_gan",
        diagnosis="the torch.Generator is not seeded with seed: every seed gives the same run",
        old="generator = torch.Generator().manual_seed(seed)",
        new="generator = torch.Generator()",
    ),
    Mutant(
        name="train_global_random_state",
        function="train_gan",
        diagnosis="the noise is drawn from torch's global random state instead of the seeded "
                  "generator: the same seed does not give the same run",
        old="""        z_d = sample_noise(batch_size, noise_dim, generator)
        z_g = sample_noise(batch_size, noise_dim, generator)""",
        new="""        z_d = sample_noise(batch_size, noise_dim)
        z_g = sample_noise(batch_size, noise_dim)""",
    ),
    Mutant(
        name="train_history_swapped",
        function="train_gan",
        diagnosis="history['d_loss'] holds the generator's losses and history['g_loss'] the "
                  "discriminator's",
        old="""        history["d_loss"].append(d_loss)
        history["g_loss"].append(g_loss)""",
        new="""        history["d_loss"].append(g_loss)
        history["g_loss"].append(d_loss)""",
    ),
    Mutant(
        name="train_one_step_short",
        function="train_gan",
        public_check_catches=True,
        diagnosis="train_gan runs one step fewer than steps",
        old="for _ in range(steps):",
        new="for _ in range(steps - 1):",
    ),
    Mutant(
        name="train_noise_dim_fixed",
        function="train_gan",
        public_check_catches=True,
        diagnosis="the noise always has 4 entries: use noise_dim",
        old="""        z_d = sample_noise(batch_size, noise_dim, generator)
        z_g = sample_noise(batch_size, noise_dim, generator)""",
        new="""        z_d = sample_noise(batch_size, 4, generator)
        z_g = sample_noise(batch_size, 4, generator)""",
    ),
]
