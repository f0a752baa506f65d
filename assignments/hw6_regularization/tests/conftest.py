"""Helpers and probes of hw6_regularization's hidden tests (test_hw6_regularization.py): the
generators built in the student's process, the gates, inputs, attempts and net cases the tests
use. A test module cannot import its conftest, so the tests reach them through the ``probes``
fixture at the end.
"""
import copy

import numpy as np

from autograder.testing import (CheckFailure, GATE_NOTE, StudentCodeError, assert_close,
                                assert_gradient, assert_not_mutated, dicts_close, expect_array,
                                expect_scalar, expect_tuple, gradient_tolerance, norm_error,
                                numeric_vjp, one_of, own_parts, probes_fixture,
                                require_nontrivial_gradient, trivial_reason, type_name,
                                without_null_parts)

# Entries of a float64 array a correct implementation may compute in another order: exact
# zeros in theory (sums of dx, the bias gradient before batchnorm) are rounding noise in
# practice, judged against the scale of the other entries.
ZERO_TOL = 1e-9


# ---- generators in the student's process --------------------------------------------------------

def rng_maker(make):
    """``new_rng(seed)``: ``np.random.default_rng(seed)`` built in the student's process by the
    engine's trusted factory (``make``), where dropout_forward draws from it;
    ``new_rng(seed, spawned=True)``: the second generator of ``default_rng(seed).spawn(2)``,
    which FullyConnectedNet's given code keeps as its ``dropout_rng``;
    ``new_rng.seed_global(seed)``: ``np.random.seed(seed)`` there."""
    def new_rng(seed, spawned=False):
        generator = make("numpy.random.default_rng", int(seed))
        return generator.spawn(2)[1] if spawned else generator

    new_rng.seed_global = lambda seed: make("numpy.random.seed", int(seed))
    return new_rng


def local_rng(seed, spawned=False):
    generator = np.random.default_rng(int(seed))
    return generator.spawn(2)[1] if spawned else generator


def draw_seed(rng) -> int:
    return int(rng.integers(1, 2**31))


# ---- nothing for nothing ------------------------------------------------------------------------

def gate(what: str, label: str, got, want, inputs: dict) -> np.ndarray:
    """The gate of a property test: ``got`` (the student's ``label``) has the shape of the
    reference's ``want`` and is not zeros, one number everywhere or an input returned
    unchanged, where ``want`` is not. A wrong but real result passes: value tests take its
    points."""
    want = np.asarray(want, dtype=np.float64)
    if np.ndim(want) == 0 and type(got) is not np.ndarray:
        try:
            got = np.asarray(expect_scalar(got, f"{what} {label}"))
        except CheckFailure as exc:
            raise CheckFailure(f"not checked: {exc}; {GATE_NOTE}", what=what) from None
    else:
        try:
            got = expect_array(got, f"{what} {label}", shape=want.shape, dtype=None,
                               finite=False)
        except CheckFailure as exc:
            raise CheckFailure(f"not checked: {exc}; {GATE_NOTE}", what=what) from None
    reason = trivial_reason(got, want, inputs)
    if reason:
        raise CheckFailure(f"not checked: your {what} returned {reason} as {label}, while the "
                           f"expected {label} is not; {GATE_NOTE}", what=what)
    return got


# ---- judging a result computed in more than one way ---------------------------------------------

class Attempts:
    """Calls of the student's code, each made once when first needed: its result, or the
    failure it gave (a CheckFailure, the student's exception) raised again on every use."""

    def __init__(self, *calls):
        self.calls = calls
        self.done: dict[int, tuple[bool, object]] = {}

    def get(self, i):
        if i not in self.done:
            try:
                self.done[i] = (True, self.calls[i]())
            except (CheckFailure, StudentCodeError) as exc:
                self.done[i] = (False, exc)
        ok, value = self.done[i]
        if not ok:
            raise value
        return value

    def judge(self, check) -> None:
        """Passes when ``check(result)`` passes for one attempt; else raises the first
        attempt's failure."""
        first = None
        for i in range(len(self.calls)):
            try:
                check(self.get(i))
                return
            except (CheckFailure, StudentCodeError) as exc:
                first = first or exc
        raise first


def cache_arrays(cache) -> dict:
    """The arrays of a cache (a tuple, list or dict), by position or key: what must come back
    unchanged."""
    if type(cache) in (tuple, list):
        return {f"cache[{i}]": v for i, v in enumerate(cache) if isinstance(v, np.ndarray)}
    if type(cache) is dict:
        return {f"cache[{k!r}]": v for k, v in cache.items() if isinstance(v, np.ndarray)}
    return {}


def unchanged_attempts(student, name: str, dout, contract_cache, own_forward):
    """Your backward called on the contract's cache, then on your own forward's cache, each
    returning ``(result, the arguments as the call left them, the cache it was given)``."""
    def on(cache_of):
        def call():
            cache = cache_of()
            result, args, _ = getattr(student, name).call_returning_args(dout, cache)
            return result, args, cache
        return call

    return Attempts(on(lambda: contract_cache),
                    on(lambda: expect_tuple(own_forward(), 2,
                                            name.replace("backward", "forward"))[1]))


def assert_backward_unchanged(name: str, dout, called) -> None:
    """dout and the cache arrays as ``called`` (from unchanged_attempts) left them."""
    _, args, cache = called
    before = cache_arrays(cache)
    after = cache_arrays(args[1]) if type(args) is list and len(args) > 1 else {}
    assert_not_mutated({"dout": dout, **before},
                       {"dout": args[0], **{key: after.get(key) for key in before}}, name)


def backward_attempts(student, name: str, dout, contract_cache, own_forward, outputs: int):
    """Your backward on the contract's cache (what a correct forward builds), then on your own
    forward's cache: a mistake of your forward costs only in the forward's tests, and a cache
    of your own design is judged too."""
    def on(cache_of):
        def call():
            result = getattr(student, name)(dout, cache_of())
            return expect_tuple(result, outputs, name) if outputs > 1 else result
        return call

    def own_cache():
        result = expect_tuple(own_forward(), 2, name.replace("backward", "forward"))
        return result[1]

    return Attempts(on(lambda: contract_cache), on(own_cache))


# ---- dropout ------------------------------------------------------------------------------------

def dropout_inputs(rng, shape=(6, 5)):
    return rng.standard_normal(shape), draw_seed(rng)


def out_of(result, what):
    return expect_tuple(result, 2, what)[0]


def observed_out(value) -> dict | None:
    """What a known mistake of dropout_forward is matched on: the output, when it is a float
    array."""
    if type(value) is np.ndarray and value.dtype.kind == "f":
        return {"out": value}
    return None


def name_dropout_mistakes(partial, known_mistakes, observed, outcome):
    if partial.fraction < 1 and observed is not None:
        partial.name_mistakes(known_mistakes("dropout_forward", outcome, observed,
                                             dicts_close(1e-6)))


def out_of_cache(result):
    return expect_tuple(result, 2, "dropout_forward")[1]


# ---- batch normalization ------------------------------------------------------------------------

def bn_inputs(rng, n=5, d=4):
    x = 2.0 * rng.standard_normal((n, d)) + rng.standard_normal(d)
    gamma = rng.uniform(0.5, 1.5, d)
    beta = rng.standard_normal(d)
    return x, gamma, beta


def bn_call(impl, x, gamma, beta, bn_param):
    """batchnorm_forward on a copy of bn_param: (out, cache, bn_param as written)."""
    result, args, _ = impl.batchnorm_forward.call_returning_args(x, gamma, beta,
                                                                  copy.deepcopy(bn_param))
    out, cache = expect_tuple(result, 2, "batchnorm_forward")
    return out, cache, args[3]


def ref_bn(reference, x, gamma, beta, bn_param):
    bn_param = copy.deepcopy(bn_param)
    out, cache = reference.batchnorm_forward(x, gamma, beta, bn_param)
    return out, cache, bn_param


def running(bn_param, key: str, d: int, what: str):
    if type(bn_param) is not dict:
        raise CheckFailure(f"{what}: bn_param came back as {type_name(bn_param)}")
    if key not in bn_param:
        raise CheckFailure(f"{what}: train mode did not store {key!r} in bn_param (write the "
                           "updated running statistics into bn_param)")
    return expect_array(bn_param[key], f"{what}: bn_param[{key!r}]", shape=(d,))


def bn_backward_case(student, reference, rng, n=5, d=4):
    x, gamma, beta = bn_inputs(rng, n, d)
    dout = rng.standard_normal((n, d))
    _, cache = reference.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    expected = reference.batchnorm_backward(dout, cache)
    attempts = backward_attempts(
        student, "batchnorm_backward", dout, cache,
        lambda: student.batchnorm_forward(x, gamma, beta, {"mode": "train"}), 3)
    return x, gamma, beta, dout, cache, expected, attempts


GRAD_NAMES = ("dx", "dgamma", "dbeta")


def numerical_backward_test(student, reference, rng, partial, layer: str, param: dict, x,
                            gamma, beta):
    """``layer``_backward against the numerical gradient of your own ``layer``_forward (train
    mode), or, where that forward is wrong (its own tests), against the reference's gradient
    on the contract's cache."""
    forward_name, backward_name = f"{layer}_forward", f"{layer}_backward"
    forward, backward = getattr(reference, forward_name), getattr(reference, backward_name)
    dout = rng.standard_normal(x.shape)
    inputs = dict(x=x, gamma=gamma, dout=dout)
    _, cache = forward(x, gamma, beta, dict(param))
    expected = backward(dout, cache)

    def ref_forward(*args):
        return forward(*args, dict(param))[0]

    ref_err = max(norm_error(g, numeric_vjp(ref_forward, [x, gamma, beta], i, dout))
                  for i, g in enumerate(expected))
    tol = gradient_tolerance(ref_err)
    attempts = backward_attempts(
        student, backward_name, dout, cache,
        lambda: getattr(student, forward_name)(x, gamma, beta, dict(param)), 3)

    def own_forward(*args):
        return out_of(getattr(student, forward_name)(*args, dict(param)), forward_name)

    for i, name in enumerate(GRAD_NAMES):
        with partial.part(name):
            def of_own_forward(_, i=i, name=name):
                got = attempts.get(1)[i]
                numeric = numeric_vjp(own_forward, [x, gamma, beta], i, dout)
                require_nontrivial_gradient(got, numeric, expected[i],
                                            f"{backward_name} {name}", forward_name,
                                            ("x", "gamma", "beta")[i])
                assert_gradient(got, numeric, f"{backward_name} {name}", tol=tol,
                                inputs=inputs)

            def of_contract_forward(_, i=i, name=name):
                assert_gradient(attempts.get(0)[i], expected[i], f"{backward_name} {name}",
                                tol=tol)
            one_of(lambda check: check(None), [of_own_forward, of_contract_forward])


def assert_sums_to_zero(value, axis: int, what: str, description: str) -> None:
    """Each sum of ``value`` along ``axis`` is zero up to rounding (relative to the sum of the
    absolute values)."""
    total = np.abs(value).sum(axis=axis)
    residual = np.abs(value.sum(axis=axis))
    bad = residual > ZERO_TOL * np.maximum(total, 1e-300) + 1e-300
    if np.any(bad):
        worst = int(np.argmax(residual / np.maximum(total, 1e-300)))
        raise CheckFailure(f"{what}: {description} should be zero, got {residual.flat[worst]:.3g}"
                           f" (entries of size {total.flat[worst]:.3g})", what=what)


def assert_invariants(attempts, expected, dout, layer: str, axis: int, partial,
                      inputs: dict) -> None:
    """dbeta sums what dout sums; dx sums to zero along the normalised axis (shifting the
    input of a normalization along it changes nothing). (dx is not exactly orthogonal to xhat:
    eps makes the normalization not quite scale-free.)"""
    what = f"{layer}_backward"
    along = "every column (over the batch)" if axis == 0 else "every row (over the features)"
    def dbeta_sums_dout(grads):
        dbeta = gate(what, "dbeta", grads[2], expected[2], inputs)
        if abs(dbeta.sum() - dout.sum()) > ZERO_TOL * np.abs(dout).sum():
            raise CheckFailure(f"{what}: sum(dbeta) = {dbeta.sum():.6g}, while sum(dout) = "
                               f"{dout.sum():.6g}; dbeta sums dout over the batch", what=what)

    def dx_sums_to_zero(grads):
        dx = gate(what, "dx", grads[0], expected[0], inputs)
        assert_sums_to_zero(dx, axis, what, f"the sum of dx along {along}")

    with partial.part("sum(dbeta) == sum(dout)"):
        attempts.judge(dbeta_sums_dout)
    with partial.part("dx sums to zero"):
        attempts.judge(dx_sums_to_zero)


def first_three(args) -> dict:
    """x, gamma and beta as the call left them."""
    return dict(zip(("x", "gamma", "beta"), args[:3], strict=False))


# ---- layer normalization ------------------------------------------------------------------------

def ln_inputs(rng, n=4, d=6):
    x = 2.0 * rng.standard_normal((n, d)) + rng.standard_normal((n, 1))
    gamma = rng.uniform(0.5, 1.5, d)
    beta = rng.standard_normal(d)
    return x, gamma, beta


def ln_backward_case(student, reference, rng, n=4, d=6):
    x, gamma, beta = ln_inputs(rng, n, d)
    dout = rng.standard_normal((n, d))
    _, cache = reference.layernorm_forward(x, gamma, beta, {})
    expected = reference.layernorm_backward(dout, cache)
    attempts = backward_attempts(student, "layernorm_backward", dout, cache,
                                 lambda: student.layernorm_forward(x, gamma, beta, {}), 3)
    return x, gamma, beta, dout, cache, expected, attempts


# ---- label smoothing ----------------------------------------------------------------------------

def logits_and_labels(rng, n=7, c=5, scale=1.0):
    x = scale * rng.standard_normal((n, c))
    y = rng.permutation(np.arange(n) % c)  # every class present, in no particular order
    return x, y


def smoothed(impl, x, y, epsilon):
    loss, dx = expect_tuple(impl.softmax_loss_smoothed(x, y, epsilon), 2,
                            "softmax_loss_smoothed")
    return loss, dx


# ---- dropout as a ridge penalty -----------------------------------------------------------------

def ridge_data(rng, n=7, d=4):
    return rng.standard_normal((n, d)) * np.array([0.5, 1.0, 2.0, 3.0])[:d]


# ---- FullyConnectedNet --------------------------------------------------------------------------

NET_ARGS = dict(hidden_dims=[6, 4], input_dim=5, num_classes=3, weight_scale=0.5, reg=0.3)
NET_ROWS = 6


def net_data(rng, n=NET_ROWS):
    X = rng.standard_normal((n, NET_ARGS["input_dim"]))
    y = np.arange(n) % NET_ARGS["num_classes"]
    return X, y


def random_params(rng, normalization):
    """Parameters with non-zero biases and betas and gammas away from 1, so a missing term or
    gradient shows."""
    dims = [NET_ARGS["input_dim"], *NET_ARGS["hidden_dims"], NET_ARGS["num_classes"]]
    params = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True), start=1):
        params[f"W{i}"] = 0.5 * rng.standard_normal((a, b))
        params[f"b{i}"] = 0.1 * rng.standard_normal(b)
        if normalization is not None and i < len(dims) - 1:
            params[f"gamma{i}"] = rng.uniform(0.5, 1.5, b)
            params[f"beta{i}"] = 0.2 * rng.standard_normal(b)
    return params


def random_running(rng, momentum=None):
    bn_params = []
    for d in NET_ARGS["hidden_dims"]:
        bn = {"running_mean": 0.3 * rng.standard_normal(d),
              "running_var": rng.uniform(0.5, 2.0, d)}
        if momentum is not None:
            bn["momentum"] = momentum
        bn_params.append(bn)
    return bn_params


# FullyConnectedNet calls these; the contract's net run here around the student's own ones is
# a candidate: their mistakes cost in their own tests only.
NET_PARTS = ("dropout_forward", "dropout_backward", "batchnorm_backward", "layernorm_forward",
             "layernorm_backward")


def with_own_parts(reference_with, student):
    """The reference module with the student's layers. batchnorm_forward runs in the student's
    process, where it writes its running statistics into a copy of bn_param: they are copied
    back into the contract net's bn_param here, as in a notebook."""
    def batchnorm_forward(x, gamma, beta, bn_param):
        result, args, _ = student.batchnorm_forward.call_returning_args(x, gamma, beta,
                                                                         bn_param)
        written = args[3] if type(args) is list and len(args) == 4 else None
        if type(written) is dict and written is not bn_param:
            bn_param.clear()
            bn_param.update(written)
        return result

    return reference_with(batchnorm_forward=batchnorm_forward,
                          **{name: getattr(student, name) for name in NET_PARTS})


def build_net(impl, normalization, dropout, params, bn_params=None, dropout_rng=None):
    net = impl.FullyConnectedNet(**NET_ARGS, normalization=normalization, dropout=dropout,
                                 seed=0)
    net.params = copy.deepcopy(params)
    if bn_params is not None:
        net.bn_params = copy.deepcopy(bn_params)
    if dropout_rng is not None:
        net.dropout_rng = dropout_rng
    return net


class NetCase:
    """One configuration of the net, run by the student's net, by the reference and by the
    contract's net around the student's layers (the candidates)."""

    def __init__(self, student, make, reference, reference_with, normalization, dropout,
                 params, bn_params=None, seed=None):
        self.student, self.make, self.reference = student, make, reference
        self.reference_with = reference_with
        self.normalization, self.dropout = normalization, dropout
        self.params, self.bn_params, self.seed = params, bn_params, seed
        self._hybrid = None

    def rngs(self):
        """The dropout generators of the student's net and of the reference's, seeded alike;
        None (the nets keep the ones they made from seed 0) when this case has no seed."""
        if self.seed is None:
            return None, None
        return rng_maker(self.make)(self.seed), local_rng(self.seed)

    def seed_global(self):
        """np.random.seed(0) in the student's process before the student's net and the hybrid
        run, when this case draws masks: a dropout_forward that draws from np.random instead of
        its rng argument (its own tests say so) then draws the same masks in both."""
        if self.seed is not None:
            rng_maker(self.make).seed_global(0)

    def hybrid_rng(self):
        """The hybrid's generator, in the student's process (it runs the student's
        dropout_forward): what the nets of this case draw from."""
        if self.seed is None:
            return rng_maker(self.make)(0, spawned=True)
        return rng_maker(self.make)(self.seed)

    def run(self, X, y=None):
        """Each net's result, and each net: (student, [reference, hybrid or None])."""
        student_rng, ref_rng = self.rngs()
        net = build_net(self.student, self.normalization, self.dropout, self.params,
                        self.bn_params, student_rng)
        self.seed_global()
        got = net.loss(X) if y is None else net.loss(X, y)
        ref_net = build_net(self.reference, self.normalization, self.dropout, self.params,
                            self.bn_params, ref_rng)
        expected = ref_net.loss(X) if y is None else ref_net.loss(X, y)
        hybrid_net = None

        def hybrid_run():
            nonlocal hybrid_net
            module = with_own_parts(self.reference_with, self.student)
            hybrid_net = build_net(module, self.normalization, self.dropout, self.params,
                                   self.bn_params, self.hybrid_rng())
            self.seed_global()
            return hybrid_net.loss(X) if y is None else hybrid_net.loss(X, y)

        own = own_parts(hybrid_run)
        return got, net, [(expected, ref_net), (own, hybrid_net)]


def loss_and_grads(result):
    loss, grads = expect_tuple(result, 2, "FullyConnectedNet.loss")
    if type(grads) is not dict:
        raise CheckFailure(f"the gradients should be a dict, got {type_name(grads)}")
    return loss, grads


def grad_scale(grads: dict) -> float:
    return max(float(np.max(np.abs(v))) for v in grads.values())


def assert_grad(got, want, what: str, scale: float, inputs=None) -> None:
    """assert_close, except for a gradient that is zero in exact arithmetic (the bias of a
    hidden layer right before batchnorm, whose shift the normalization removes): there any
    value that is rounding noise next to the other gradients passes."""
    want = np.asarray(want, dtype=np.float64)
    if want.size and float(np.max(np.abs(want))) <= ZERO_TOL * scale:
        got = expect_array(got, what, shape=want.shape, inputs=inputs)
        if float(np.max(np.abs(got))) > 1e-7 * scale:
            raise CheckFailure(f"{what}: entries up to {float(np.max(np.abs(got))):.3g}, expected "
                               "zero: batchnorm removes any constant shift of its input, so the "
                               "bias of the affine layer before it gets no gradient", what=what)
        return
    assert_close(got, want, what, inputs=inputs)


def judge_loss_and_grads(result, candidates, partial, inputs, what="FullyConnectedNet"):
    """The student's (loss, grads) against each candidate (reference, own layers): the loss is
    worth 2 parts, each gradient one."""
    loss, grads = loss_and_grads(result)
    expected = candidates[0]
    candidates = [expected, without_null_parts(candidates[1], expected)]
    scale = grad_scale(expected[1])
    with partial.part("loss", 2):
        one_of(lambda want: assert_close(loss, want[0], f"{what} loss", inputs=inputs),
               candidates)
    for key in sorted(expected[1]):
        with partial.part(f"grads[{key!r}]"):
            if key not in grads:
                raise CheckFailure(f"grads has no {key!r}")

            def check(want, key=key):
                if want[1].get(key) is None:
                    raise CheckFailure(f"grads[{key!r}]: not comparable")
                assert_grad(grads[key], want[1][key], f"{what} grads[{key!r}]", scale, inputs)
            one_of(check, candidates)
    return loss, grads


# ---- training -----------------------------------------------------------------------------------

# The trained check's recipe: here, not in the test module, because train_net defaults to it;
# test_trained_accuracy reads it as probes.TRAIN.
TRAIN = dict(hidden_dims=[64], normalization="batchnorm", dropout=0.2, weight_scale=0.1,
             reg=1e-4, learning_rate=5e-3, batch_size=64, epochs=10, seed=0)


class Adam:
    """The grader's own Adam (homework 1's rule, default betas), one state per parameter."""

    def __init__(self, learning_rate):
        self.learning_rate = learning_rate
        self.state = {}

    def step(self, key, w, dw):
        m, v, t = self.state.get(key, (0.0, 0.0, 0))
        t += 1
        m = 0.9 * m + 0.1 * dw
        v = 0.999 * v + 0.001 * dw ** 2
        self.state[key] = (m, v, t)
        return w - self.learning_rate * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t))
                                                                 + 1e-8)


def train_net(impl, reference, digits, recipe=TRAIN, curve=None):
    """Train ``impl``'s net with the grader's Adam on the gradients its loss returns; the test
    accuracy of the trained params and running statistics, by the reference's forward pass in
    this process. ``curve``: a list that gets the test accuracy after every epoch."""
    X_train, X_test, y_train, y_test = digits
    shape = dict(input_dim=64, num_classes=10, normalization=recipe["normalization"],
                 dropout=recipe["dropout"], weight_scale=recipe["weight_scale"],
                 reg=recipe["reg"], seed=recipe["seed"])
    net = impl.FullyConnectedNet(recipe["hidden_dims"], **shape)
    judge = reference.FullyConnectedNet(recipe["hidden_dims"], **shape)
    params = net.params
    if type(params) is not dict or sorted(params) != sorted(judge.params):
        raise CheckFailure(f"net.params has the keys "
                           f"{sorted(params) if isinstance(params, dict) else type_name(params)}"
                           f"; the contract's are {sorted(judge.params)}")
    params = {key: expect_array(params[key], f"params[{key!r}]", shape=judge.params[key].shape)
              for key in judge.params}
    adam = Adam(recipe["learning_rate"])
    order_rng = np.random.default_rng(recipe["seed"])
    for _ in range(recipe["epochs"]):
        order = order_rng.permutation(len(X_train))
        for start in range(0, len(order), recipe["batch_size"]):
            idx = order[start:start + recipe["batch_size"]]
            _, grads = loss_and_grads(net.loss(X_train[idx], y_train[idx]))
            for key in params:
                dw = expect_array(grads.get(key), f"grads[{key!r}]", shape=params[key].shape)
                params[key] = adam.step(key, params[key], dw)
            net.params = params
        if curve is not None:
            curve.append(judged_accuracy(net, judge, params, recipe, X_test, y_test))
    return judged_accuracy(net, judge, params, recipe, X_test, y_test)


def judged_accuracy(net, judge, params, recipe, X_test, y_test) -> float:
    """Test accuracy of the student's trained ``params`` (and running statistics, with
    batchnorm) by the reference's forward pass ``judge``, in test mode."""
    judge.params = params
    if recipe["normalization"] != "batchnorm":
        scores = judge.loss(X_test)
        return float(np.mean(np.argmax(scores, axis=1) == y_test))
    stats = net.bn_params
    if type(stats) is not list or len(stats) != len(recipe["hidden_dims"]):
        raise CheckFailure(f"after training, net.bn_params is {type_name(stats)}; expected a "
                           "list with one dict per hidden layer")
    for layer, (bn, d) in enumerate(zip(stats, recipe["hidden_dims"], strict=True)):
        for key in ("running_mean", "running_var"):
            if type(bn) is not dict or key not in bn:
                raise CheckFailure(f"after training, net.bn_params[{layer}] has no {key!r}: "
                                   "train mode must store the running statistics there")
            judge.bn_params[layer][key] = expect_array(
                bn[key], f"the trained bn_params[{layer}][{key!r}]", shape=(d,))
    scores = judge.loss(X_test)
    return float(np.mean(np.argmax(scores, axis=1) == y_test))


probes = probes_fixture(__name__)
