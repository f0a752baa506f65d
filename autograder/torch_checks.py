"""Checks of tensors the student's torch code returns (they reach the grader as TensorValue)."""
from __future__ import annotations

import sys

import numpy as np

from .checks import CheckFailure, describe_inputs, expect_array, expect_tuple, type_name
from .values import TensorValue


def expect_tensor(value, what, *, shape, dtype=None, device=None, inputs=None,
                  finite: bool = True) -> np.ndarray:
    """A tensor returned by student code, as a float64 array: exact type, shape, dtype (any
    float when None), finite values (unless ``finite`` is False) and device. Real tensors are
    accepted too, for in-process runs of a test's helpers; the worker can only ever send
    TensorValue."""
    where = describe_inputs(inputs)
    torch = sys.modules.get("torch")  # a real tensor exists only where torch is imported
    if torch is not None and type(value) is torch.Tensor:
        value = TensorValue(value.detach().cpu().numpy(), value.requires_grad, str(value.device))
    if type(value) is not TensorValue:
        raise CheckFailure(f"{what}{where}: expected a torch.Tensor, got {type_name(value)}",
                           what=what, actual=value, inputs=inputs)
    array = value.array
    if dtype is not None and array.dtype != np.dtype(dtype):
        raise CheckFailure(f"{what}{where}: dtype torch.{array.dtype}, expected torch."
                           f"{np.dtype(dtype)} (compute in the dtype of the inputs)",
                           what=what, actual=array, inputs=inputs)
    if array.dtype.kind != "f":
        raise CheckFailure(f"{what}{where}: dtype torch.{array.dtype}, expected a float dtype",
                           what=what, actual=array, inputs=inputs)
    expect_array(array, what, shape=shape, dtype=None, finite=finite, inputs=inputs)
    if device is not None and value.device.split(":")[0] != device:
        raise CheckFailure(f"{what}{where}: on device {value.device!r}, expected {device!r} "
                           "(keep results where the inputs are)", what=what, inputs=inputs)
    return array.astype(np.float64)


def checked_grad_call(fn, what: str, *args, upstream=None):
    """Run the student's ``fn(*args)`` on tensors and backpropagate in the worker (``upstream``:
    the gradient of the output, None for a scalar): (output, one gradient per argument),
    checked to be that pair."""
    out, grads = expect_tuple(fn.grad_call(*args, upstream=upstream), 2, f"{what} (grad_call)")
    if type(grads) is not list or len(grads) != len(args):
        raise CheckFailure(f"{what}: malformed gradients")
    return out, grads
