"""An end-to-end check that fails names the functions it uses that already fail their own
visible tests, so a student fixes those first instead of suspecting the training loop."""
from autograder.grade import to_results
from autograder.plugin import Outcome


def outcome(name, fraction, tags, *, integration=False, visibility="visible"):
    return Outcome(name, name, 2.0, fraction, "message", visibility, list(tags),
                   integration=integration)


def test_a_failing_trained_check_names_its_failing_parts():
    outcomes = [outcome("neg_elbo: value", 0.5, ["neg_elbo"]),
                outcome("kl_divergence: values", 1.0, ["kl_divergence"]),
                outcome("train_vae: steps", 0.0, ["train_vae"], visibility="hidden"),
                outcome("Training: the VAE", 0.2, ["VAE", "train_vae", "neg_elbo",
                                                   "kl_divergence"], integration=True)]
    trained = to_results(outcomes, execution_time=1.0, output="").tests[3]
    assert "these fail their own tests: neg_elbo (test 1). Fix them first" in trained.output
    assert "kl_divergence" not in trained.output.split("message", 1)[1]  # it passes
    assert "train_vae" not in trained.output.split("message", 1)[1]  # hidden: not revealed


def test_nothing_is_added_when_the_parts_pass_or_the_check_passes():
    parts = [outcome("neg_elbo: value", 1.0, ["neg_elbo"])]
    failing = outcome("Training", 0.0, ["neg_elbo"], integration=True)
    assert to_results([*parts, failing], execution_time=0, output="").tests[1].output == "message"
    broken = [outcome("neg_elbo: value", 0.0, ["neg_elbo"]),
              outcome("Training", 1.0, ["neg_elbo"], integration=True)]
    assert to_results(broken, execution_time=0, output="").tests[1].output == "message"
