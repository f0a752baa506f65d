"""Shared helpers for dlgrade's own tests."""
from __future__ import annotations

import os
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


requires_root = pytest.mark.skipif(os.geteuid() != 0,
                                   reason="uid isolation needs the grader to run as root")
