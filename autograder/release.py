"""Build the student's notebook from the instructor's master: one source for both."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")


class ReleaseError(Exception):
    pass


def strip_solutions(source: str, where: str) -> str:
    """Replace each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block by a NotImplementedError."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ReleaseError(f"{where}, line {number}: nested BEGIN SOLUTION")
            inside = True
            out.append(f"{begin.group(1)}# TODO: your code here")
            out.append(f'{begin.group(1)}raise NotImplementedError("not implemented yet")')
        elif END.match(line):
            if not inside:
                raise ReleaseError(f"{where}, line {number}: END SOLUTION without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ReleaseError(f"{where}: BEGIN SOLUTION is never closed")
    return "\n".join(out)


def make_skeleton(master: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(master)
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"cell {number}")
            cell.outputs = []
            cell.execution_count = None
    return nb


def write_skeleton(master_path: Path, out_path: Path) -> Path:
    master = nbformat.read(master_path, as_version=4)
    skeleton = make_skeleton(master)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(skeleton, out_path)
    return out_path


# ---- helpers for the scripts that write master notebooks (solutions/_build_*_master.py) ----

def markdown_cell(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code_cell(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(text.strip("\n"))


def assemble_notebook(cells: list, id_prefix: str) -> nbformat.NotebookNode:
    """A Python 3 notebook with stable cell ids, so rebuilding gives an identical file."""
    for number, cell in enumerate(cells):
        cell.id = f"{id_prefix}-{number:02d}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write_master(nb: nbformat.NotebookNode, out: Path) -> None:
    nbformat.validate(nb)
    nbformat.write(nb, out)
    print(f"wrote {out}")
