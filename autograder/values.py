"""The values student code returns as the grader holds them: an object left in the worker, a
tensor as an array with its metadata. Shared by the grader (wire, checks, diagnoses) and the
student release's checks, so it imports nothing of the engine (no worker code ships to
students)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RemoteRef:
    """An object that stays in the worker; the grader holds only its number and type name."""

    handle: int
    type_name: str
    is_callable: bool = False


@dataclass(frozen=True)
class TensorValue:
    """A torch tensor returned by student code, carried as a numpy array plus its metadata."""

    array: np.ndarray
    requires_grad: bool
    device: str
