"""The null audit: trivial implementations of the contract must earn nothing.

For every contract function (a function the skeleton leaves for the student) the audit
grades the master with that one function replaced by a trivial stand-in, and once with all
of them replaced together:

- ``zeros`` / ``ones``: the reference's output structure (tuples, lists, dicts kept) with every
  array, tensor and number replaced by zeros / ones, and every weight of a torch module;
- ``input``: the first argument, returned unchanged;
- ``constant``: the number 1.0 whatever the inputs;
- ``not_implemented``: the skeleton's own ``raise NotImplementedError``.

A contract class gets ``not_implemented`` only (a trivial class has no output structure to
copy). The tests that pay out for a stand-in are the audit's findings: a test about the
replaced function alone (``@pytest.mark.covers``) must give it 0 points, and the submission
with everything replaced must score 0 in all.

The stand-ins call the reference to learn the output structure, so they exist only in the
audit, which grades the instructor's own master.
"""
from __future__ import annotations

import ast
import copy
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

KINDS = ("zeros", "ones", "input", "constant", "not_implemented")

HELPERS = '''import numpy as _dlgrade_np

def _dlgrade_fill(value, kind):
    """The same structure, every number or array set to 0 (zeros) or 1 (ones)."""
    one = 1.0 if kind == "ones" else 0.0
    if isinstance(value, tuple):
        return tuple(_dlgrade_fill(v, kind) for v in value)
    if isinstance(value, list):
        return [_dlgrade_fill(v, kind) for v in value]
    if isinstance(value, dict):
        return {k: _dlgrade_fill(v, kind) for k, v in value.items()}
    if isinstance(value, _dlgrade_np.ndarray):
        return _dlgrade_np.full_like(value, one)
    if isinstance(value, (bool, _dlgrade_np.bool_)):
        return value
    if isinstance(value, (int, float, _dlgrade_np.number)):
        return type(value)(one)
    if hasattr(value, "detach") and hasattr(value, "requires_grad"):
        return value * 0 + one  # a tensor: still on the graph, gradient zero
    if callable(getattr(value, "parameters", None)):  # a torch module: every weight set
        import torch

        with torch.no_grad():
            for parameter in value.parameters():
                parameter.fill_(one)
    return value
'''


@dataclass
class NullResult:
    function: str   # the replaced function, or "(all)"
    kind: str
    score: float
    paid: list[tuple[str, float]] = field(default_factory=list)  # (test, points) it must not


def contract_names(skeleton: Path) -> tuple[list[str], list[str]]:
    """(functions, classes) the skeleton leaves to the student: top-level definitions that
    raise NotImplementedError somewhere inside."""
    from .notebook import top_level_statements

    functions, classes = [], []
    for stmt in top_level_statements(nbformat.read(skeleton, as_version=4)):
        if not isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
            continue
        raises = any(isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n)
                     for n in ast.walk(stmt))
        if raises:
            (classes if isinstance(stmt, ast.ClassDef) else functions).append(stmt.name)
    return functions, classes


def stand_in(name: str, kind: str, is_class: bool = False) -> str:
    """Code that rebinds ``name`` to its trivial stand-in (appended after the master)."""
    if kind == "not_implemented":
        if is_class:
            return (f"class {name}:\n    def __init__(self, *args, **kwargs):\n"
                    "        raise NotImplementedError\n")
        return f"def {name}(*args, **kwargs):\n    raise NotImplementedError\n"
    body = {"zeros": f"return _dlgrade_fill(_dlgrade_ref_{name}(*args, **kwargs), 'zeros')",
            "ones": f"return _dlgrade_fill(_dlgrade_ref_{name}(*args, **kwargs), 'ones')",
            "input": "return args[0] if args else None",
            "constant": "return 1.0"}[kind]
    return f"_dlgrade_ref_{name} = {name}\ndef {name}(*args, **kwargs):\n    {body}\n"


def null_notebook(master: nbformat.NotebookNode, replaced: list[tuple[str, str, bool]]
                  ) -> nbformat.NotebookNode:
    """The master with each (name, kind, is_class) replaced by its stand-in."""
    nb = copy.deepcopy(master)
    nb.cells.append(nbformat.v4.new_code_cell(HELPERS))
    for name, kind, is_class in replaced:
        nb.cells.append(nbformat.v4.new_code_cell(stand_in(name, kind, is_class)))
    return nb


def _paid(run, function: str | None) -> list[tuple[str, float]]:
    """The tests that gave points: those about ``function`` alone (every test when None). A
    test covering several functions may pay for the others' parts; the submission with
    every function replaced checks it."""
    paid = []
    for test, outcome in zip(run.results.tests, run.outcomes, strict=False):
        if test.score > 0 and (function is None or outcome.tags == [function]):
            paid.append((test.name, test.score))
    return paid


def null_audit(assignment, progress=lambda msg: None) -> list[NullResult]:
    from .grade import grade_notebook

    functions, classes = contract_names(assignment.skeleton)
    master = nbformat.read(assignment.master, as_version=4)
    results = []
    with tempfile.TemporaryDirectory(prefix="dlgrade-null-") as tmp:
        def grade(replaced, label):
            path = Path(tmp) / f"{label}.ipynb"
            nbformat.write(null_notebook(master, replaced), path)
            return grade_notebook(path, assignment, diagnose=False)

        cases = [(f, kind, False) for f in functions for kind in KINDS]
        cases += [(c, "not_implemented", True) for c in classes]
        for name, kind, is_class in cases:
            progress(f"null {kind} {name}")
            run = grade([(name, kind, is_class)], f"{name}-{kind}")
            results.append(NullResult(name, kind, run.results.score, _paid(run, name)))
        for kind in ("zeros", "input", "constant"):
            progress(f"null {kind}, every function at once")
            replaced = [(f, kind, False) for f in functions]
            replaced += [(c, "not_implemented", True) for c in classes]
            run = grade(replaced, f"all-{kind}")
            results.append(NullResult("(all)", kind, run.results.score, _paid(run, None)))
    return results
