"""Shared helpers for dlgrade's own tests."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


def make_notebook(*cells: str, markdown: str | None = None) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    if markdown:
        nb.cells.append(nbformat.v4.new_markdown_cell(markdown))
    nb.cells.extend(nbformat.v4.new_code_cell(src) for src in cells)
    return nb


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
