"""Check helpers for hidden and public tests.

Every failure says what was compared, on which inputs, where it missed and by how much.
All comparisons happen here, in the trusted grader, on plain numpy arrays from the worker.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


# Exact numpy scalar types (in-process public checks see these; the worker sends 0-d arrays).
NUMPY_SCALARS = frozenset(np.dtype(c).type for c in "efdbhilqBHILQ")


# Callbacks told about every tolerance check and trained metric (the audit's margins).
_observers: list[Callable[[dict], None]] = []


def observe(callback: Callable[[dict], None]):
    """Register ``callback(measure)``; returns a function that unregisters it."""
    _observers.append(callback)
    return lambda: _observers.remove(callback)


def _measured(**measure) -> None:
    for callback in list(_observers):
        callback(measure)


class CheckFailure(AssertionError):
    """A student result that does not meet a check; the message is shown to the student."""

    def __init__(self, message: str, *, what: str = "", actual=None, expected=None, inputs=None):
        super().__init__(message)
        self.what = what
        self.actual = actual
        self.expected = expected
        self.inputs = inputs or {}


class UpstreamFailure(CheckFailure):
    """A function that a composite calls fails on its own (its tests say how), so the
    composite cannot be judged with it."""


def one_of(check, candidates) -> None:
    """Passes when ``check(expected)`` passes for one of the candidate expectations (None ones
    are skipped); else raises the first one's failure.

    A composite may call the student's own parts or compute them itself: it is right when it
    matches the contract built on the reference's parts or on the student's, whose mistakes
    cost in their own tests only.
    """
    first = None
    for expected in candidates:
        if expected is None:
            continue
        try:
            check(expected)
            return
        except CheckFailure as exc:
            first = first or exc
    if first is None:
        raise ValueError("one_of needs at least one candidate")
    raise first


# Said by a property test (agreement with your own numerical gradient, an invariant) that does
# not pay a function computing nothing: such properties hold trivially for zeros.
GATE_NOTE = "this property is checked only for a function that computes something"


def trivial_reason(got: np.ndarray, want: np.ndarray, inputs: dict) -> str:
    """How ``got`` is trivial where the reference's ``want`` is not ("" when it is not):
    all zeros, one number everywhere, or one of ``inputs`` returned unchanged."""
    if np.any(want) and not np.any(got):
        return "zeros"
    if want.size > 1 and np.any(want != want.flat[0]) and np.all(got == got.flat[0]):
        return "the same number everywhere"
    for name, value in inputs.items():
        if (isinstance(value, np.ndarray) and value.shape == got.shape
                and np.array_equal(got, value) and not np.array_equal(want, value)):
            return f"its input {name!r} unchanged"
    return ""


def require_nontrivial_gradient(analytic, numeric, reference_grad, what: str, forward: str,
                                wrt: str) -> None:
    """The gate of a numerical-gradient self-consistency test: where the reference's gradient
    is not zero, your forward must change when ``wrt`` changes (its numerical gradient is not
    zero) and your backward must not return zeros."""
    if not np.any(np.asarray(reference_grad, dtype=np.float64)):
        return
    if type(numeric) is np.ndarray and not np.any(numeric):
        raise CheckFailure(
            f"not checked: your {forward}'s output does not change when {wrt} changes (its "
            f"numerical gradient is zero), while the expected output does; {GATE_NOTE}",
            what=what)
    if type(analytic) is np.ndarray and not np.any(analytic):
        raise CheckFailure(f"not checked: your {what} is all zeros, while the expected gradient "
                           f"is not; {GATE_NOTE}", what=what)


def describe_inputs(inputs: dict | None) -> str:
    if not inputs:
        return ""
    parts = []
    for key, value in inputs.items():
        if isinstance(value, np.ndarray):
            parts.append(f"{key} {value.shape}" if value.ndim else f"{key}={value.item():.4g}")
        elif isinstance(value, (int, float)):
            parts.append(f"{key}={value}")
        elif isinstance(value, (list, tuple)) and len(value) <= 6:
            parts.append(f"{key}={value!r}")
    return " on " + ", ".join(parts) if parts else ""


def type_name(value) -> str:
    from .values import RemoteRef, TensorValue

    if isinstance(value, TensorValue):
        return "torch.Tensor"
    if isinstance(value, RemoteRef):
        return value.type_name
    ref = getattr(value, "_dlgrade_ref", None)
    if ref is not None:
        return ref.type_name
    return type(value).__name__


def rel_error(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Elementwise |a - e| / (|a| + |e|): scale-free, 1 means 'unrelated'.

    Entries far smaller than the array's largest are judged against that scale instead, so
    rounding noise on a value that should be ~0 does not read as a 100% error.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    scale = 1e-6 * float(np.abs(e).max()) if e.size else 0.0
    return np.abs(a - e) / np.maximum(np.abs(a) + np.abs(e), max(scale, 1e-300))


def norm_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """||a - e|| / (||a|| + ||e||): the usual summary for comparing gradients."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    denom = float(np.linalg.norm(a) + np.linalg.norm(e))
    return float(np.linalg.norm(a - e)) / denom if denom > 0 else 0.0


def expect_tuple(value, length: int, what: str) -> tuple:
    if type(value) is not tuple or len(value) != length:
        got = f"a tuple of length {len(value)}" if type(value) is tuple else type_name(value)
        raise CheckFailure(f"{what} should return a tuple of {length} values; it returned {got}",
                           what=what)
    return value


def expect_array(value, what: str, *, shape=None, dtype=np.float64, finite=True,
                 inputs=None) -> np.ndarray:
    where = describe_inputs(inputs)
    if type(value) is not np.ndarray:
        hint = ""
        if isinstance(value, (list, tuple)):
            hint = " (convert it with np.array)"
        elif value is None:
            hint = " (is a return statement missing?)"
        raise CheckFailure(f"{what}{where}: expected a numpy array, got {type_name(value)}{hint}",
                           what=what, actual=value, inputs=inputs)
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise CheckFailure(
            f"{what}{where}: shape {tuple(value.shape)}, expected {tuple(shape)}",
            what=what, actual=value, inputs=inputs)
    if dtype is not None and value.dtype != np.dtype(dtype):
        raise CheckFailure(f"{what}{where}: dtype {value.dtype}, expected {np.dtype(dtype)}",
                           what=what, actual=value, inputs=inputs)
    if finite and not np.all(np.isfinite(value)):
        bad = np.argwhere(~np.isfinite(value))
        first = tuple(int(i) for i in bad[0]) if value.ndim else ()
        raise CheckFailure(
            f"{what}{where}: {len(bad)} non-finite value(s) (NaN or Inf), first at index {first}"
            f" ({float(value[first]) if value.ndim else float(value)}). "
            f"{nonfinite_hint(value)}", what=what, actual=value, inputs=inputs)
    return value


def nonfinite_hint(value) -> str:
    """Where NaN and Inf usually come from in this course's code, in a student's words."""
    value = np.asarray(value, dtype=np.float64)
    if np.isneginf(value).any():
        return ("-inf is the log of a probability that underflowed to 0: work in log space "
                "(log-sum-exp, or log-softmax computed as x - max - log(sum(exp(x - max)))).")
    if np.isposinf(value).any():
        return ("inf is an overflow, usually exp of a large number: subtract the maximum before "
                "exp, or use a numerically stable formulation (log-sum-exp, softplus).")
    return ("NaN usually comes from inf - inf, 0 * inf or 0 / 0, for instance exp overflowing "
            "before a normalisation: subtract the maximum before exp, and never divide by a sum "
            "that can be 0.")


def expect_scalar(value, what: str, *, inputs=None) -> float:
    where = describe_inputs(inputs)
    if type(value) in (float, int) or type(value) in NUMPY_SCALARS:
        result = float(value)
    elif type(value) is np.ndarray and value.shape == () and value.dtype.kind in "fiu":
        result = float(value)
    elif type(value) is np.ndarray and value.size == 1 and value.dtype.kind == "f":
        raise CheckFailure(f"{what}{where}: expected a scalar, got an array of shape {value.shape}",
                           what=what, actual=value, inputs=inputs)
    else:
        raise CheckFailure(f"{what}{where}: expected a number, got {type_name(value)}",
                           what=what, actual=value, inputs=inputs)
    if not np.isfinite(result):
        raise CheckFailure(f"{what}{where}: got {result}, expected a finite number. "
                           f"{nonfinite_hint(result)}", what=what, actual=value, inputs=inputs)
    return result


def assert_close(actual, expected, what: str, *, tol: float = 1e-7, inputs=None,
                 dtype=np.float64) -> None:
    """Shape, dtype and finiteness first, then the largest elementwise relative error."""
    expected = np.asarray(expected)
    if np.ndim(expected) == 0 and type(actual) is not np.ndarray:
        actual_value = np.asarray(expect_scalar(actual, what, inputs=inputs))
    else:
        actual_value = expect_array(actual, what, shape=expected.shape, dtype=dtype, inputs=inputs)
    err = rel_error(actual_value, expected)
    _measured(kind="tolerance", what=what, error=float(err.max()) if err.size else 0.0, limit=tol)
    if err.size == 0 or float(err.max()) <= tol:
        return
    idx = np.unravel_index(int(np.argmax(err)), err.shape)
    at = f" at index {tuple(int(i) for i in idx)}" if err.ndim else ""
    raise CheckFailure(
        f"{what}{describe_inputs(inputs)}: largest relative error {float(err.max()):.2e}{at} "
        f"(yours {float(actual_value[idx]):.6g}, expected {float(expected[idx]):.6g}); "
        f"allowed {tol:.0e}; {int((err > tol).sum())} of {err.size} entries differ",
        what=what, actual=actual_value, expected=expected, inputs=inputs)


def numeric_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5
                     ) -> np.ndarray:
    """Centred differences of a scalar function, in float64, without mutating ``x``."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = f(x.copy())
        flat[i] = old - h
        minus = f(x.copy())
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def numeric_vjp(forward: Callable, args: list, index: int, upstream: np.ndarray,
                h: float = 1e-5) -> np.ndarray:
    """Vector-Jacobian product of ``forward(*args)`` w.r.t. ``args[index]`` with ``upstream``.

    ``forward`` returns the output array; projecting on a random upstream gradient checks the
    whole Jacobian at once while keeping the check a cheap scalar function.
    """
    def scalar(value):
        call_args = list(args)
        call_args[index] = value
        out = forward(*call_args)
        # Say what is wrong rather than broadcast: a wrong shape would otherwise either raise
        # a numpy error or, worse, compare a broadcast product.
        if type(out) is not np.ndarray and np.ndim(upstream) == 0 \
                and type(out) in (float, int, *NUMPY_SCALARS):
            out = np.asarray(out, dtype=np.float64)  # a scalar output, a scalar upstream
        if type(out) is not np.ndarray or out.shape != np.shape(upstream):
            shape = out.shape if type(out) is np.ndarray else type_name(out)
            raise CheckFailure(f"your forward returned {shape}, expected an array of shape "
                               f"{tuple(np.shape(upstream))}, while computing the numerical "
                               "gradient", actual=out)
        if not np.all(np.isfinite(out)):
            raise CheckFailure("your forward returned non-finite values while computing the "
                               f"numerical gradient. {nonfinite_hint(out)}", actual=out)
        return float(np.sum(np.asarray(out, dtype=np.float64) * upstream))

    return numeric_gradient(scalar, args[index], h)


def assert_gradient(analytic, numeric: np.ndarray, what: str, *, tol: float, inputs=None
                    ) -> None:
    """Compare an analytic gradient with a numerical one by their relative norm error."""
    analytic = expect_array(analytic, what, shape=numeric.shape, inputs=inputs)
    err = norm_error(analytic, numeric)
    _measured(kind="tolerance", what=what, error=err, limit=tol)
    if err <= tol:
        return
    idx = np.unravel_index(int(np.argmax(np.abs(analytic - numeric))), numeric.shape)
    raise CheckFailure(
        f"{what}{describe_inputs(inputs)} disagrees with the numerical gradient of your forward "
        f"function (centred differences): relative error {err:.2e}, allowed {tol:.0e}; largest "
        f"difference at index {tuple(int(i) for i in idx)} (yours {float(analytic[idx]):.6g}, "
        f"numerical {float(numeric[idx]):.6g})",
        what=what, actual=analytic, expected=numeric, inputs=inputs)


def gradient_tolerance(reference_error: float, *, factor: float = 100.0,
                       floor: float = 1e-7) -> float:
    """A tolerance set from the reference's own numerical error, never tighter than ``floor``."""
    return max(floor, factor * float(reference_error))


def assert_initial_parameter(value, key: str, shape, weight_scale: float, *,
                             std_band: float = 0.2, mean_band: float = 0.2) -> np.ndarray:
    """An initial parameter: biases (``b*``) exactly zero, weights (``W*``) ~ N(0, scale^2).

    The bands are relative to ``weight_scale``; widen them for small weight matrices, whose
    sample std strays further from the true one.
    """
    value = expect_array(value, f"params[{key!r}]", shape=shape)
    if key.startswith("b") and np.any(value != 0):
        raise CheckFailure(f"params[{key!r}] should start at zero", what=key, actual=value)
    if key.startswith("W"):
        std, mean = float(value.std()), float(value.mean())
        if (not (1 - std_band) * weight_scale < std < (1 + std_band) * weight_scale
                or abs(mean) > mean_band * weight_scale):
            raise CheckFailure(
                f"params[{key!r}] has mean {mean:.3g} and std {std:.3g}; expected "
                f"N(0, weight_scale^2) with weight_scale={weight_scale}", what=key, actual=value)
    return value


def check_initial_params(params, expected: dict, weight_scale: float, partial, what: str,
                         **bands) -> None:
    """A model's fresh ``params``: exact key set, then each entry as assert_initial_parameter,
    every check a part of ``partial`` credit."""
    if type(params) is not dict:
        raise CheckFailure(f"{what}.params should be a dict, got {type(params).__name__}")
    with partial.part("parameter names"):
        if sorted(params) != sorted(expected):
            raise CheckFailure(f"params keys are {sorted(params)}, expected {sorted(expected)}")
    for key, shape in expected.items():
        if key in params:
            with partial.part(f"{key} shape and values", 0.5):
                assert_initial_parameter(params[key], key, shape, weight_scale, **bands)


def assert_params_gradients(net, X, y, grads: dict, *, tol: float = 1e-6,
                            keys=None) -> None:
    """Each ``grads[key]`` against centred differences of ``net.loss(X, y)`` in that parameter
    (``keys``: those parameters only; default every one, in sorted order).

    For in-process use (public checks): it edits ``net.params`` in place and restores it.
    """
    for key in sorted(net.params) if keys is None else keys:
        def loss_at(value, key=key):
            saved = net.params[key]
            net.params[key] = value
            try:
                return float(net.loss(X, y)[0])
            finally:
                net.params[key] = saved
        numeric = numeric_gradient(loss_at, net.params[key])
        assert_gradient(grads.get(key), numeric, f"grads[{key!r}]", tol=tol)


def assert_not_mutated(before: dict, after: dict, what: str) -> None:
    for key, old in before.items():
        new = after.get(key)
        if isinstance(old, np.ndarray) and (type(new) is not np.ndarray or new.shape != old.shape
                                            or not np.array_equal(new, old)):
            raise CheckFailure(f"{what} modified its input {key!r} in place; compute on a copy "
                               "or build a new array instead", what=what)


def assert_metric(value: float, threshold: float, what: str, *, higher_is_better: bool = True,
                  detail: str = "") -> None:
    """A trained model's metric against its threshold; the audit reports the margin."""
    _measured(kind="metric", what=what, value=float(value), limit=float(threshold),
              higher_is_better=higher_is_better)
    ok = value >= threshold if higher_is_better else value <= threshold
    if not (ok and np.isfinite(value)):
        need = "at least" if higher_is_better else "at most"
        raise CheckFailure(f"{what} is {value:.4g}; {need} {threshold:.4g} needed"
                           + (f" ({detail})" if detail else ""), what=what, actual=value)
