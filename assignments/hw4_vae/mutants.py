"""Known mistakes for hw4_vae, as text edits of solutions/hw4_vae.ipynb.

Each non-equivalent mutant must lose points under the hidden tests; ``old`` is exact text of
the master's code cells (the notebook is the source: an edit of it must keep each ``old``
text, or that mutant no longer applies).
"""
from autograder.mutants import Mutant

_KL = "kl = 0.5 * torch.sum(mu ** 2 + torch.exp(logvar) - 1 - logvar, dim=1)"
_BCE = 'log_p = -F.binary_cross_entropy_with_logits(x_logits, x, reduction="none")'
_ELBO = """    per_image = -bernoulli_log_likelihood(x, x_logits) + kl_divergence(mu, logvar)
    loss = per_image.mean()"""

MUTANTS = [
    # ---- reparameterize -----------------------------------------------------------------------
    Mutant(
        name="reparam_variance_as_std",
        function="reparameterize",
        public_check_catches=True,
        diagnosis="the noise looks scaled by exp(logvar), the variance, instead of by the "
                  "standard deviation exp(logvar / 2): logvar is log(sigma^2), not log(sigma)",
        old="std = torch.exp(0.5 * logvar)",
        new="std = torch.exp(logvar)",
    ),
    Mutant(
        name="reparam_logvar_as_variance",
        function="reparameterize",
        public_check_catches=True,
        diagnosis="the noise looks scaled by sqrt(logvar): logvar is the logarithm of the "
                  "variance, so the standard deviation is exp(logvar / 2)",
        old="std = torch.exp(0.5 * logvar)",
        new="std = torch.sqrt(torch.abs(logvar))",
    ),
    Mutant(
        name="reparam_logvar_as_std",
        function="reparameterize",
        public_check_catches=True,
        diagnosis="the noise looks scaled by logvar itself: logvar is log(sigma^2), so the "
                  "standard deviation is exp(logvar / 2)",
        old="std = torch.exp(0.5 * logvar)",
        new="std = logvar",
    ),
    Mutant(
        name="reparam_detached_sample",
        function="reparameterize",
        public_check_catches=True,
        diagnosis="z is detached from the graph: no gradient reaches mu and logvar, so the "
                  "encoder cannot learn",
        old="z = mu + std * eps",
        new="z = (mu + std * eps).detach()",
    ),
    Mutant(
        name="reparam_not_reparameterised",
        function="reparameterize",
        public_check_catches=True,
        diagnosis="z is drawn with torch.normal(mu, std), which has the right distribution but "
                  "passes zero gradients to mu and logvar; write z = mu + std * eps",
        old="z = mu + std * eps",
        new="z = torch.normal(mu, std)",
    ),
    Mutant(
        name="reparam_no_noise",
        function="reparameterize",
        public_check_catches=True,
        diagnosis="z equals mu: no noise is added, so the samples have no spread",
        old="z = mu + std * eps",
        new="z = mu + 0 * std * eps",
    ),
    Mutant(
        name="reparam_noise_shared_across_batch",
        function="reparameterize",
        public_check_catches=True,
        diagnosis="every row of the batch gets the same noise eps; draw one eps per image "
                  "(torch.randn_like(std))",
        old="eps = torch.randn_like(std)",
        new="eps = torch.randn_like(std[:1])",
    ),
    Mutant(
        name="reparam_noise_shared_across_latents",
        function="reparameterize",
        public_check_catches=True,
        diagnosis="all latent dimensions of a row get the same noise eps; draw one eps per "
                  "entry (torch.randn_like(std))",
        old="eps = torch.randn_like(std)",
        new="eps = torch.randn_like(std[:, :1])",
    ),
    Mutant(
        name="reparam_uniform_noise",
        function="reparameterize",
        public_check_catches=True,
        diagnosis="the noise looks uniform on [0, 1) (torch.rand) instead of standard normal "
                  "(torch.randn)",
        old="eps = torch.randn_like(std)",
        new="eps = torch.rand_like(std)",
    ),
    # ---- kl_divergence --------------------------------------------------------------------
    Mutant(
        name="kl_sign",
        function="kl_divergence",
        public_check_catches=True,
        diagnosis="the KL has the wrong sign: it must be >= 0, zero only when mu = 0 and "
                  "logvar = 0",
        old=_KL,
        new="kl = -0.5 * torch.sum(mu ** 2 + torch.exp(logvar) - 1 - logvar, dim=1)",
    ),
    Mutant(
        name="kl_mean_over_latent_dims",
        function="kl_divergence",
        public_check_catches=True,
        diagnosis="the KL looks averaged over the latent dimensions instead of summed",
        old=_KL,
        new="kl = 0.5 * torch.mean(mu ** 2 + torch.exp(logvar) - 1 - logvar, dim=1)",
    ),
    Mutant(
        name="kl_summed_over_batch",
        function="kl_divergence",
        public_check_catches=True,
        diagnosis="the KL is one number for the whole batch; return one value per row, shape "
                  "(N,)",
        old=_KL,
        new="kl = 0.5 * torch.sum(mu ** 2 + torch.exp(logvar) - 1 - logvar)",
    ),
    Mutant(
        name="kl_summed_over_batch_axis",
        function="kl_divergence",
        public_check_catches=True,
        diagnosis="the KL is summed over the batch (dim=0) instead of over the latent "
                  "dimensions (dim=1): it has one value per latent dimension, not per row",
        old=_KL,
        new="kl = 0.5 * torch.sum(mu ** 2 + torch.exp(logvar) - 1 - logvar, dim=0)",
    ),
    Mutant(
        name="kl_missing_half",
        function="kl_divergence",
        public_check_catches=True,
        diagnosis="the KL looks twice too large: the factor 1/2 is missing",
        old=_KL,
        new="kl = torch.sum(mu ** 2 + torch.exp(logvar) - 1 - logvar, dim=1)",
    ),
    Mutant(
        name="kl_logvar_as_log_std",
        function="kl_divergence",
        public_check_catches=True,
        diagnosis="the KL treats logvar as log(sigma): with logvar = log(sigma^2) the terms "
                  "are exp(logvar) and logvar, not exp(2 logvar) and 2 logvar",
        old=_KL,
        new="kl = 0.5 * torch.sum(mu ** 2 + torch.exp(2 * logvar) - 1 - 2 * logvar, dim=1)",
    ),
    Mutant(
        name="kl_std_as_variance",
        function="kl_divergence",
        public_check_catches=True,
        diagnosis="the KL uses the standard deviation exp(logvar / 2) where the variance "
                  "exp(logvar) belongs",
        old=_KL,
        new="kl = 0.5 * torch.sum(mu ** 2 + torch.exp(0.5 * logvar) - 1 - logvar, dim=1)",
    ),
    Mutant(
        name="kl_missing_minus_one",
        function="kl_divergence",
        public_check_catches=True,
        diagnosis="the KL is not zero when q is the prior (mu = 0, logvar = 0): the -1 term "
                  "is missing",
        old=_KL,
        new="kl = 0.5 * torch.sum(mu ** 2 + torch.exp(logvar) - logvar, dim=1)",
    ),
    Mutant(
        name="kl_mu_not_squared",
        function="kl_divergence",
        public_check_catches=True,
        diagnosis="the KL depends on the sign of mu: the mean enters as mu^2",
        old=_KL,
        new="kl = 0.5 * torch.sum(mu + torch.exp(logvar) - 1 - logvar, dim=1)",
    ),
    Mutant(
        name="kl_squeezed",
        function="kl_divergence",
        diagnosis="the KL of a batch of one comes back as a 0-d tensor: .squeeze() also drops "
                  "the batch dimension when N = 1; return shape (N,) without squeezing",
        old=_KL,
        new="kl = 0.5 * torch.sum(mu ** 2 + torch.exp(logvar) - 1 - logvar, dim=1).squeeze()",
    ),
    # ---- bernoulli_log_likelihood -------------------------------------------------------------
    Mutant(
        name="bernoulli_mean_over_pixels",
        function="bernoulli_log_likelihood",
        public_check_catches=True,
        diagnosis="the log-likelihood looks averaged over the pixels instead of summed",
        old="log_likelihood = log_p.sum(dim=1)",
        new="log_likelihood = log_p.mean(dim=1)",
    ),
    Mutant(
        name="bernoulli_sigmoid_twice",
        function="bernoulli_log_likelihood",
        public_check_catches=True,
        diagnosis="a sigmoid seems applied to the logits before a loss that applies its own: "
                  "binary_cross_entropy_with_logits takes the raw logits",
        old=_BCE,
        new='log_p = -F.binary_cross_entropy_with_logits(torch.sigmoid(x_logits), x, '
            'reduction="none")',
    ),
    Mutant(
        name="bernoulli_sign",
        function="bernoulli_log_likelihood",
        public_check_catches=True,
        diagnosis="the log-likelihood has the wrong sign: it is minus the binary cross-entropy, "
                  "always <= 0",
        old=_BCE,
        new='log_p = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none")',
    ),
    Mutant(
        name="bernoulli_arguments_swapped",
        function="bernoulli_log_likelihood",
        public_check_catches=True,
        diagnosis="the images and the logits look swapped: binary_cross_entropy_with_logits "
                  "takes the logits first and the targets second",
        old=_BCE,
        new='log_p = -F.binary_cross_entropy_with_logits(x, x_logits, reduction="none")',
    ),
    Mutant(
        name="bernoulli_log_of_sigmoid",
        function="bernoulli_log_likelihood",
        public_check_catches=True,
        diagnosis="the log-likelihood is -inf or NaN for large logits: log(sigmoid(l)) rounds "
                  "to log(0); use the logits directly (softplus or "
                  "binary_cross_entropy_with_logits)",
        old=_BCE,
        new="log_p = x * torch.log(torch.sigmoid(x_logits)) + (1 - x) * torch.log("
            "1 - torch.sigmoid(x_logits))",
    ),
    Mutant(
        name="bernoulli_squared_error",
        function="bernoulli_log_likelihood",
        public_check_catches=True,
        diagnosis="the reconstruction term looks like minus a squared error between x and "
                  "sigmoid(x_logits), not the Bernoulli log-likelihood",
        old=_BCE,
        new="log_p = -(x - torch.sigmoid(x_logits)) ** 2",
    ),
    Mutant(
        name="bernoulli_bce_on_probabilities",
        function="bernoulli_log_likelihood",
        public_check_catches=True,
        diagnosis="the log-likelihood is wrong for confident pixels: "
                  "F.binary_cross_entropy(torch.sigmoid(x_logits), x) works on probabilities "
                  "that round to 0 or 1 (and clamps log(0) to -100); pass the logits to "
                  "binary_cross_entropy_with_logits",
        old=_BCE,
        new='log_p = -F.binary_cross_entropy(torch.sigmoid(x_logits), x, reduction="none")',
    ),
    Mutant(
        name="bernoulli_summed_over_batch",
        function="bernoulli_log_likelihood",
        public_check_catches=True,
        diagnosis="the log-likelihood is one number for the whole batch (reduction=\"sum\" "
                  "adds up every image); sum over the pixels only, dim=1, for one value per "
                  "image",
        old=_BCE + "\n    log_likelihood = log_p.sum(dim=1)",
        new='log_likelihood = -F.binary_cross_entropy_with_logits(x_logits, x, '
            'reduction="sum")',
    ),
    # ---- neg_elbo ------------------------------------------------------------------------------
    Mutant(
        name="elbo_sum_over_batch",
        function="neg_elbo",
        public_check_catches=True,
        diagnosis="the loss grows with the batch size: average over the batch, do not sum",
        old="loss = per_image.mean()",
        new="loss = per_image.sum()",
    ),
    Mutant(
        name="elbo_mean_over_pixels_too",
        function="neg_elbo",
        public_check_catches=True,
        diagnosis="the loss looks divided by the number of pixels: average over the batch only",
        old="loss = per_image.mean()",
        new="loss = per_image.mean() / x.shape[1]",
    ),
    Mutant(
        name="elbo_kl_sign",
        function="neg_elbo",
        public_check_catches=True,
        diagnosis="the KL is subtracted: the negative ELBO is -log p(x | z) + KL",
        old=_ELBO,
        new="""    per_image = -bernoulli_log_likelihood(x, x_logits) - kl_divergence(mu, logvar)
    loss = per_image.mean()""",
    ),
    Mutant(
        name="elbo_likelihood_sign",
        function="neg_elbo",
        public_check_catches=True,
        diagnosis="the log-likelihood is added instead of subtracted: the negative ELBO is "
                  "-log p(x | z) + KL",
        old=_ELBO,
        new="""    per_image = bernoulli_log_likelihood(x, x_logits) + kl_divergence(mu, logvar)
    loss = per_image.mean()""",
    ),
    Mutant(
        name="elbo_kl_summed_over_batch",
        function="neg_elbo",
        public_check_catches=True,
        diagnosis="the KL looks summed over the batch while the reconstruction is averaged: "
                  "average both per image",
        old=_ELBO,
        new="""    per_image = -bernoulli_log_likelihood(x, x_logits)
    loss = per_image.mean() + kl_divergence(mu, logvar).sum()""",
    ),
    # ---- VAE -------------------------------------------------------------------------------
    Mutant(
        name="vae_decoder_ends_with_sigmoid",
        function="VAE",
        diagnosis="decode seems to return probabilities (a sigmoid at the end of the decoder), "
                  "which the loss squashes again: decode must return logits",
        old="nn.Linear(hidden_dim, input_dim))",
        new="nn.Linear(hidden_dim, input_dim), nn.Sigmoid())",
    ),
    Mutant(
        name="vae_forward_decodes_mu",
        function="VAE",
        diagnosis="forward decodes mu instead of a sample z = reparameterize(mu, logvar)",
        old="x_logits = self.decode(z)",
        new="x_logits = self.decode(mu)",
    ),
    Mutant(
        name="vae_forward_returns_std",
        function="VAE",
        diagnosis="forward's third output is not encode's logvar",
        old="return x_logits, mu, logvar",
        new="return x_logits, mu, torch.exp(0.5 * logvar)",
    ),
    Mutant(
        name="vae_sample_returns_logits",
        function="VAE",
        public_check_catches=True,
        diagnosis="sample returns logits, not pixel means in [0, 1]: apply a sigmoid",
        old="x_mean = torch.sigmoid(self.decode(z.to(parameter.device)))",
        new="x_mean = self.decode(z.to(parameter.device))",
    ),
    Mutant(
        name="vae_sample_ignores_generator",
        function="VAE",
        public_check_catches=True,
        diagnosis="sample ignores its generator: the same seed does not give the same images",
        old="z = torch.randn(n, self.latent_dim, generator=generator, device=noise_device,",
        new="z = torch.randn(n, self.latent_dim, device=noise_device,",
    ),
    # ---- train_vae ------------------------------------------------------------------------------
    Mutant(
        name="train_no_zero_grad",
        function="train_vae",
        diagnosis="gradients seem to pile up across minibatches: call optimizer.zero_grad() "
                  "before each backward",
        old="            optimizer.zero_grad()\n",
        new="",
    ),
    Mutant(
        name="train_no_step",
        function="train_vae",
        diagnosis="the model never changes: optimizer.step() is missing",
        old="            optimizer.step()\n",
        new="",
    ),
    Mutant(
        name="train_new_optimizer_every_epoch",
        function="train_vae",
        diagnosis="a new optimizer was created during the run: a new Adam at the start of "
                  "every epoch throws away its moving averages; build the optimizer once, "
                  "before the epoch loop",
        old="""    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _epoch in range(epochs):
""",
        new="""    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _epoch in range(epochs):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
""",
    ),
    Mutant(
        name="train_epoch_loss_not_weighted",
        function="train_vae",
        diagnosis="the epoch loss adds up the minibatch means and then divides by len(X), so "
                  "it is about batch_size times too small; add loss.item() * len(batch)",
        old="total += loss.item() * len(batch)",
        new="total += loss.item()",
    ),
    Mutant(
        name="train_ignores_lr",
        function="train_vae",
        diagnosis="the lr argument is not passed to the optimizer",
        old="optimizer = torch.optim.Adam(model.parameters(), lr=lr)",
        new="optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)",
    ),
    Mutant(
        name="train_sgd",
        function="train_vae",
        diagnosis="training is far too slow: the contract asks for Adam",
        old="optimizer = torch.optim.Adam(model.parameters(), lr=lr)",
        new="optimizer = torch.optim.SGD(model.parameters(), lr=lr)",
    ),
    Mutant(
        name="train_losses_summed_over_batches",
        function="train_vae",
        diagnosis="the epoch loss looks like a sum over minibatches: divide by len(X) to get "
                  "the mean per-image loss",
        old="losses.append(total / len(X))",
        new="losses.append(total)",
    ),
    Mutant(
        name="train_one_epoch_short",
        function="train_vae",
        public_check_catches=True,
        diagnosis="train_vae runs one epoch fewer than asked",
        old="for _epoch in range(epochs):",
        new="for _epoch in range(epochs - 1):",
    ),
    Mutant(
        name="train_no_shuffle",
        function="train_vae",
        diagnosis="minibatches are not shuffled",
        old="order = torch.randperm(len(X), generator=generator).to(X.device)",
        new="order = torch.arange(len(X), device=X.device)",
        equivalent="digits come in no particular order, so training without shuffling ends as "
                   "well; how the shuffle is drawn cannot be tested without tying a test to "
                   "the order of random calls",
    ),
]
