"""The helpers and probes of hw1_backprop's hidden tests (test_hw1_backprop.py): the tests reach
them through the ``probes`` fixture below, since the grader imports test modules with
``--import-mode=importlib`` and a test module cannot import its conftest."""

import numpy as np

from autograder.testing import (CheckFailure, GATE_NOTE, expect_array, expect_scalar, expect_tuple,
                                own_parts, probes_fixture, trivial_reason, type_name,
                                without_null_parts)


def affine_inputs(rng):
    x = rng.standard_normal((4, 3, 2))  # flattened to D = 6 inside
    w = rng.standard_normal((6, 5))
    b = rng.standard_normal(5)
    return x, w, b


def logits_and_labels(rng, n=7, c=5, scale=1.0):
    x = scale * rng.standard_normal((n, c))
    y = rng.permutation(np.arange(n) % c)  # every class present, in no particular order
    return x, y


# ---- nothing for nothing ---------------------------------------------------------------------
# Why the tests gate: this section's introduction in test_hw1_backprop.py.

def _as_array(value, want, what: str) -> np.ndarray:
    """``value`` as an array shaped like the reference's ``want`` (a scalar where it is one)."""
    if np.ndim(want) == 0 and type(value) is not np.ndarray:
        return np.asarray(expect_scalar(value, what))
    return expect_array(value, what, shape=np.shape(want), dtype=None, finite=False)


def require_nontrivial(what: str, outputs, got, want, inputs: dict, again=None) -> None:
    """The gate of a non-mutation test (nothing for nothing): the call must compute something.

    ``outputs(result)`` names the arrays of a result to look at. Each of the student's (from
    ``got``) must have the shape of the reference's (from ``want``, on the same ``inputs``) and
    must not be all zeros, one number everywhere, or an input returned unchanged, where the
    reference's is not. ``again``, the student's and the reference's results on other inputs:
    each output must change where the reference's does (it depends on the inputs as the
    reference's does). A wrong but real result passes: the value tests take its points.
    """
    try:
        wanted = [(label, np.asarray(value)) for label, value in outputs(want)]
        gotten = [(label, _as_array(value, ref, f"{what} {label}"))
                  for (label, value), (_, ref) in zip(outputs(got), wanted, strict=True)]
        if again is not None:
            again_got, again_want = again
            again_pairs = [(_as_array(value, ref, f"{what} {label}"), np.asarray(ref))
                           for (label, value), (_, ref) in zip(outputs(again_got),
                                                               outputs(again_want), strict=True)]
    except CheckFailure as exc:
        raise CheckFailure(f"not checked: {exc}; {GATE_NOTE}", what=what) from None
    for (label, value), (_, ref) in zip(gotten, wanted, strict=True):
        reason = trivial_reason(value, ref, inputs)
        if reason:
            raise CheckFailure(f"not checked: your {what} returned {reason} as {label}, while "
                               f"the expected {label} is not; {GATE_NOTE}", what=what)
    if again is None:
        return
    for (label, value), (_, ref), (value2, ref2) in zip(gotten, wanted, again_pairs,
                                                         strict=True):
        if (value2.shape == value.shape and np.array_equal(value2, value)
                and not np.array_equal(ref2, ref)):
            raise CheckFailure(f"not checked: your {what} returned the same {label} for other "
                               f"inputs, while the expected {label} changes; {GATE_NOTE}",
                               what=what)


def first_output(what: str, label: str):
    """``outputs`` for require_nontrivial: the first of a pair ``(out, cache)``."""
    return lambda result: [(label, expect_tuple(result, 2, what)[0])]


# ---- FullyConnectedNet -----------------------------------------------------------------------

NET_ARGS = dict(hidden_dims=[6, 4], input_dim=5, num_classes=3, weight_scale=0.5, reg=0.3)


def net_data(rng, n=4):
    X = rng.standard_normal((n, NET_ARGS["input_dim"]))
    y = np.arange(n) % NET_ARGS["num_classes"]
    return X, y


def random_params(rng):
    """Parameters with non-zero biases, so a missing bias term or gradient shows."""
    dims = [NET_ARGS["input_dim"], *NET_ARGS["hidden_dims"], NET_ARGS["num_classes"]]
    params = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=False), start=1):
        params[f"W{i}"] = 0.5 * rng.standard_normal((a, b))
        params[f"b{i}"] = 0.1 * rng.standard_normal(b)
    return params


LAYERS = ("affine_forward", "affine_backward", "relu_forward", "relu_backward", "softmax_loss")


def net_candidates(reference, reference_with, student, params, X, y):
    """What a correct FullyConnectedNet.loss may return: the reference's (loss, grads), or the
    contract's net run here around the student's own layers (their mistakes cost in their own
    tests). A composite of layers that compute nothing (all-zero gradients) is no candidate."""
    hybrid = reference_with(**{name: getattr(student, name) for name in LAYERS})
    expected = net_with_params(reference, params).loss(X, y)
    return [expected, without_null_parts(
        own_parts(lambda: net_with_params(hybrid, params).loss(X, y)), expected)]


def net_with_params(impl, params):
    """A net of NET_ARGS's shape whose parameters are replaced by ``params``."""
    net = impl.FullyConnectedNet(**NET_ARGS, seed=0)
    net.params = params
    return net


def loss_and_grads(net, X, y):
    loss, grads = expect_tuple(net.loss(X, y), 2, "FullyConnectedNet.loss")
    if type(grads) is not dict:
        raise CheckFailure(f"the gradients should be a dict, got {type(grads).__name__}")
    return loss, grads


# ---- optimizers ------------------------------------------------------------------------------

def run_steps(impl, rule, w, dws, config):
    """Apply ``rule`` for each gradient in turn, threading the config through. The rule gets
    copies of ``w`` and ``dw``: it may update w in place (the contract allows it)."""
    outs = []
    for dw in dws:
        result = expect_tuple(getattr(impl, rule)(np.array(w), np.array(dw), config), 2, rule)
        w, config = result
        outs.append((w, config))
    return outs


# ---- training --------------------------------------------------------------------------------

TRAIN = dict(hidden_dims=[64], weight_scale=0.1, reg=1e-4, optimizer="adam",
             learning_rate=5e-3, batch_size=64, epochs=15, seed=0)


def train_net(impl, reference, digits, recipe=TRAIN):
    """Train ``impl``'s net with its optimizer; the test accuracy of the trained params, by the
    reference's forward pass in this process."""
    X_train, X_test, y_train, y_test = digits
    shape = dict(input_dim=64, num_classes=10, weight_scale=recipe["weight_scale"],
                 reg=recipe["reg"], seed=recipe["seed"])
    net = impl.FullyConnectedNet(recipe["hidden_dims"], **shape)
    params = net.params
    configs = {k: {"learning_rate": recipe["learning_rate"]} for k in params}
    update = getattr(impl, recipe["optimizer"])
    order_rng = np.random.default_rng(recipe["seed"])
    for _ in range(recipe["epochs"]):
        order = order_rng.permutation(len(X_train))
        for start in range(0, len(order), recipe["batch_size"]):
            idx = order[start:start + recipe["batch_size"]]
            _, grads = expect_tuple(net.loss(X_train[idx], y_train[idx]), 2, "loss")
            for key in params:
                params[key], configs[key] = expect_tuple(
                    update(params[key], grads[key], configs[key]), 2, recipe["optimizer"])
            net.params = params
    judge = reference.FullyConnectedNet(recipe["hidden_dims"], **shape)
    if type(params) is not dict or sorted(params) != sorted(judge.params):
        raise CheckFailure(f"after training, net.params has the keys "
                           f"{sorted(params) if isinstance(params, dict) else type_name(params)}"
                           f"; the contract's are {sorted(judge.params)}")
    judge.params = {key: expect_array(params[key], f"the trained params[{key!r}]",
                                      shape=judge.params[key].shape) for key in judge.params}
    scores = judge.loss(X_test)
    return float(np.mean(np.argmax(scores, axis=1) == y_test))


probes = probes_fixture(__name__)
