"""Public checks: what students can run in their own notebook, with no reference solution.

They test invariants and numerical gradients only, so shipping them reveals no answer.
Each assignment registers its checks in ``assignments/<name>/public_checks.py``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import types
from contextvars import ContextVar
from typing import Callable

from .assignment import ASSIGNMENTS_DIR
from .checks import CheckFailure

Registry = dict[str, list[Callable]]

# Set while the grader runs the master in-process: its check() cells are the author's demo
# (`make test` runs them), not part of grading; off, they run nothing and print nothing.
_CHECKS_OFF: ContextVar[bool] = ContextVar("dlgrade_checks_off", default=False)


@contextlib.contextmanager
def checks_off():
    token = _CHECKS_OFF.set(True)
    try:
        yield
    finally:
        _CHECKS_OFF.reset(token)


def checks_are_off() -> bool:
    return _CHECKS_OFF.get()


def public_check(name: str):
    """Decorator used in public_checks.py: register a check for function ``name``."""
    def register(fn):
        fn._dlgrade_checks = name
        return fn
    return register


def load_public_checks(directory) -> Registry:
    path = directory / "public_checks.py"
    registry: Registry = {}
    if not path.exists():
        return registry
    spec = importlib.util.spec_from_file_location(f"dlgrade_public_{directory.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for value in vars(module).values():
        name = getattr(value, "_dlgrade_checks", None)
        if name:
            registry.setdefault(name, []).append(value)
    return registry


def find_checks(name: str, assignment: str | None) -> tuple[str, list[Callable]]:
    dirs = [ASSIGNMENTS_DIR / assignment] if assignment else sorted(
        p for p in ASSIGNMENTS_DIR.iterdir() if (p / "public_checks.py").exists())
    for directory in dirs:
        checks = load_public_checks(directory).get(name)
        if checks:
            return directory.name, checks
    raise KeyError(f"no public checks named {name!r}")


def run_public_check(name: str, namespace: dict, assignment: str | None = None,
                     printer=print) -> bool:
    try:
        where, checks = find_checks(name, assignment)
    except KeyError as exc:
        printer(f"? {exc.args[0]}")
        return False
    impl = types.SimpleNamespace(**{k: v for k, v in namespace.items() if not k.startswith("__")})
    failures = []
    for fn in checks:
        label = (fn.__doc__ or fn.__name__).strip().splitlines()[0]
        try:
            fn(impl)
        except CheckFailure as exc:
            failures.append(f"  x {label}: {exc}")
        except NotImplementedError:
            failures.append(f"  x {label}: {name} is not implemented yet")
        except Exception as exc:  # noqa: BLE001 - show the student what their code raised
            failures.append(f"  x {label}: {type(exc).__name__}: {exc}")
    if failures:
        printer(f"{name}: {len(failures)} of {len(checks)} public checks failed ({where})")
        for line in failures:
            printer(line)
        return False
    printer(f"{name}: all {len(checks)} public checks passed")
    return True
