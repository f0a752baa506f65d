"""Known student mistakes, written as small text edits of the reference solution.

A mutant names the function it breaks, the exact reference text it replaces and the
plain-words diagnosis a student should see when their output matches it.
"""
from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import nbformat


@dataclass(frozen=True)
class Mutant:
    name: str
    function: str
    diagnosis: str
    old: str
    new: str
    # An equivalent mutant computes the same thing as the reference; it is listed, not graded.
    equivalent: bool = False
    # Some edits legitimately repeat (e.g. the same line in two optimizers); say which occurrence.
    occurrence: int = 1
    # The student notebook's public check of ``function`` catches it (dlgrade's tests hold it to
    # that): a student sees this mistake before submitting.
    public_check_catches: bool = False


def load_mutants(path: Path) -> list[Mutant]:
    spec = importlib.util.spec_from_file_location(f"_dlgrade_mutants_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.MUTANTS)


def apply_to_source(source: str, mutant: Mutant) -> str:
    """Replace the chosen occurrence of ``mutant.old``; fail loudly if the reference moved on."""
    count = source.count(mutant.old)
    if count < mutant.occurrence:
        raise ValueError(
            f"mutant {mutant.name!r}: text {mutant.old!r} occurs {count} time(s) in the reference, "
            f"occurrence {mutant.occurrence} was asked for; update mutants.py to the reference"
        )
    start = -1
    for _ in range(mutant.occurrence):
        start = source.index(mutant.old, start + 1)
    return source[:start] + mutant.new + source[start + len(mutant.old):]


def apply_to_notebook(nb: nbformat.NotebookNode, mutant: Mutant) -> nbformat.NotebookNode:
    """Return a copy of ``nb`` with the mutant applied to its code cells (counted across cells)."""
    joined_sep = "\n#<dlgrade-cell-break>\n"
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    joined = joined_sep.join(c.source for c in code_cells)
    mutated = apply_to_source(joined, mutant).split(joined_sep)
    if len(mutated) != len(code_cells):
        raise ValueError(f"mutant {mutant.name!r} must not span cells")
    out = copy.deepcopy(nb)
    for cell, src in zip((c for c in out.cells if c.cell_type == "code"), mutated, strict=False):
        cell.source = src
    return out
