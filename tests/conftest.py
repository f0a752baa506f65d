"""Shared helpers for dlgrade's own tests."""
from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


def make_notebook(*cells: str, markdown: str | None = None) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    if markdown:
        nb.cells.append(nbformat.v4.new_markdown_cell(markdown))
    nb.cells.extend(nbformat.v4.new_code_cell(src) for src in cells)
    return nb


@functools.cache
def hidden_tests(assignment_name: str) -> SimpleNamespace:
    """A bundled assignment's hidden tests as one namespace, for meta-tests that use their
    probes, recipes and thresholds: its tests/conftest.py (helpers, probes, fixtures) and its
    test module, whose names win (their markers are registered in pyproject.toml)."""
    from autograder.assignment import load_assignment

    tests_dir = load_assignment(assignment_name).tests_dir
    names: dict = {}
    for path in (tests_dir / "conftest.py", tests_dir / f"test_{assignment_name}.py"):
        if path.exists():
            spec = importlib.util.spec_from_file_location(
                f"{assignment_name}_hidden_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            names.update(vars(module))
    return SimpleNamespace(**names)


def mutant_reference(assignment, master: nbformat.NotebookNode, mutant):
    """The master with one known mistake applied, loaded in-process as the reference is."""
    from autograder.assignment import load_reference
    from autograder.mutants import apply_to_notebook

    return load_reference(assignment.master, f"{assignment.name}_mutant_{mutant.name}",
                          nb=apply_to_notebook(master, mutant))


@pytest.fixture
def write_nb(tmp_path):
    def write(*cells: str, name: str = "submission.ipynb") -> Path:
        path = tmp_path / name
        nbformat.write(make_notebook(*cells), path)
        return path
    return write


@pytest.fixture(autouse=True, scope="session")
def _private_state_dir(tmp_path_factory):
    """``dlgrade release`` records what it wrote (confinement.record_release): tests keep
    that record out of the machine's own."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))


@pytest.fixture
def world_dir():
    """A folder every uid may read and write: permissions protect nothing in it."""
    folder = Path(tempfile.mkdtemp(prefix="dlgrade-corpus-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


requires_root = pytest.mark.skipif(os.geteuid() != 0,
                                   reason="uid isolation needs the grader to run as root")
