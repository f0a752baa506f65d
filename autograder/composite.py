"""Composites judged on the student's own parts (grader side only: it reaches the session,
so it must not sit in `checks`, which the student release bundles)."""
from __future__ import annotations

import numpy as np

from .checks import CheckFailure


def own_parts(compute, errors: tuple = ()):
    """``compute()``: a composite computed in the grader around the student's own parts; None
    where one of them fails or returns something the composite cannot use (their own tests
    say so), so the composite is judged against the reference alone. ``errors``: further
    exception types that mean the same (torch raises RuntimeError on mismatched shapes)."""
    from .student_errors import StudentCodeError, StudentTimeout

    try:
        return compute()
    except (CheckFailure, StudentCodeError, StudentTimeout, TypeError, ValueError, IndexError,
            KeyError, AttributeError, *errors):
        return None


def without_null_parts(composed, expected):
    """A composite's (loss, grads) with every gradient that is all zeros where the expected
    one is not set to None: a part computed by do-nothing layers pays nothing."""
    if composed is None or type(composed) is not tuple or len(composed) != 2 \
            or not isinstance(composed[1], dict):
        return None
    grads = {key: None if not np.any(np.asarray(value)) and np.any(expected[1].get(key, 0))
             else value for key, value in composed[1].items()}
    return composed[0], grads


def comparable(want, key):
    """A candidate (loss, grads)'s gradient for ``key``; CheckFailure where it has none."""
    if want[1].get(key) is None:
        raise CheckFailure(f"grads[{key!r}]: not comparable")
    return want[1][key]
