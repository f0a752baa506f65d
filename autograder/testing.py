"""Everything a hidden test imports from dlgrade, in one place: ``from autograder.testing import
assert_close, expect_tensor, own_parts, ...``. Fixtures (student, reference, make, ...) come
from the pytest plugin and need no import."""
from __future__ import annotations

import sys

import pytest

from .checks import (GATE_NOTE, CheckFailure, UpstreamFailure, assert_close, assert_gradient,
                     assert_initial_parameter, assert_metric, assert_not_mutated,
                     assert_params_gradients, check_initial_params, describe_inputs,
                     expect_array, expect_scalar, expect_tuple, gradient_tolerance, norm_error,
                     numeric_gradient, numeric_vjp, one_of, rel_error,
                     require_nontrivial_gradient, trivial_reason, type_name)
from .composite import comparable, own_parts, without_null_parts
from .data import disguise, load_digits_split
from .diagnose import dicts_close
from .proxies import LocalFactory
from .student_errors import StudentCodeError, StudentTimeout
from .torch_checks import checked_grad_call, expect_tensor
from .values import RemoteRef, TensorValue

__all__ = [
    # checks: compare a student's value with the expected one, say what differs
    "CheckFailure", "UpstreamFailure", "assert_close", "assert_gradient",
    "assert_initial_parameter", "assert_metric", "assert_not_mutated", "assert_params_gradients",
    "check_initial_params", "checked_grad_call", "describe_inputs", "expect_array",
    "expect_scalar", "expect_tensor", "expect_tuple", "gradient_tolerance", "norm_error",
    "numeric_gradient", "numeric_vjp",
    "one_of", "rel_error", "type_name", "dicts_close", "GATE_NOTE", "require_nontrivial_gradient",
    "trivial_reason",
    # composites judged on the student's own parts
    "comparable", "own_parts", "without_null_parts",
    # data the grader controls
    "disguise", "load_digits_split",
    # an assignment's conftest.py: its helpers as the probes fixture
    "probes_fixture",
    # what student code raises, and what it returns
    "StudentCodeError", "StudentTimeout", "RemoteRef", "TensorValue",
    # in-process stand-in for the make fixture
    "LocalFactory",
]


def probes_fixture(module_name: str):
    """The ``probes`` fixture of an assignment's tests/conftest.py, which ends with
    ``probes = probes_fixture(__name__)``: that module itself, so that tests reach its helpers,
    probes and constants as ``probes.name`` (a test module cannot import its conftest: the
    grader imports tests with --import-mode=importlib)."""
    @pytest.fixture(scope="session", name="probes")
    def probes():
        return sys.modules[module_name]

    return probes
