"""Build the convention-variant submissions: the released student notebook of an assignment with
every stub replaced by a variant's source.

A variant is a Python file ``tests/variants/<assignment>/<style>.py`` that defines every function
and class the student notebook leaves to the student (its stubs: top-level definitions in a code
cell that raises NotImplementedError), each written in that file's style. Its top-level
statements are spliced in file order: the definition of a stub's name replaces that stub's cell,
and the statements before it that are not stubs themselves (module constants, helpers, classes
of the student's own, extra imports) go into the same cell, before it, as a student would write
them. Imports the notebook already has are dropped; so is the module docstring, which describes
the style. Every other cell (markdown, imports, given code, check() calls, experiments) is the
student notebook's own.
"""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ASSIGNMENTS = ("hw1_backprop", "hw2_conv", "hw3_bptt")


def styles(assignment: str) -> list[str]:
    """The variant files of an assignment, by style name."""
    return sorted(p.stem for p in (HERE / assignment).glob("*.py") if not p.stem.startswith("_"))


def variant_path(assignment: str, style: str) -> Path:
    return HERE / assignment / f"{style}.py"


def describe(assignment: str, style: str) -> str:
    """The first paragraph of the variant's docstring: what the style is."""
    tree = ast.parse(variant_path(assignment, style).read_text())
    return " ".join((ast.get_docstring(tree) or style).split("\n\n")[0].split())


def student_notebook(assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "assignments" / assignment / f"{assignment}.ipynb", as_version=4)


def _defined_names(tree: ast.Module) -> list[str]:
    return [s.name for s in tree.body
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def stubs(nb: nbformat.NotebookNode) -> dict[str, int]:
    """name -> index of the code cell holding that stub."""
    found = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "NotImplementedError" in cell.source:
            for name in _defined_names(ast.parse(cell.source)):
                found[name] = index
    return found


def _notebook_imports(nb: nbformat.NotebookNode) -> set[str]:
    lines = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            for stmt in ast.parse(cell.source).body:
                if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    lines.add(ast.unparse(stmt))
    return lines


def cell_sources(source: str, stub_names, known_imports=frozenset()) -> dict[str, str]:
    """The new source of each stub cell, keyed by the stub's name, from a variant's text."""
    lines = source.splitlines()
    tree = ast.parse(source)
    body = list(tree.body)
    previous_end = 0
    if ast.get_docstring(tree) is not None:
        previous_end = body.pop(0).end_lineno
    chunks: dict[str, str] = {}
    pending: list[str] = []
    for stmt in body:
        text = lines[previous_end:stmt.end_lineno]
        previous_end = stmt.end_lineno
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) and ast.unparse(stmt) in known_imports:
            continue
        pending.extend(text)
        name = getattr(stmt, "name", None)
        if name in stub_names:
            if name in chunks:
                raise ValueError(f"{name} is defined twice")
            chunks[name] = "\n".join(
                line for line in pending if not line.startswith("# ruff:")).strip("\n")
            pending = []
    if any(line.strip() for line in pending):
        raise ValueError("statements after the last stub definition have no cell to go to")
    return chunks


def build_notebook(assignment: str, style: str) -> nbformat.NotebookNode:
    """The student notebook with every stub cell replaced by the variant's code."""
    nb = student_notebook(assignment)
    where = stubs(nb)
    chunks = cell_sources(variant_path(assignment, style).read_text(), set(where),
                          _notebook_imports(nb))
    missing = sorted(set(where) - set(chunks))
    if missing:
        raise ValueError(f"{assignment}/{style}.py does not define {missing}")
    for name, index in where.items():
        nb.cells[index].source = chunks[name]
        nb.cells[index].outputs = []
        nb.cells[index].execution_count = None
    return nb


def write_notebook(assignment: str, style: str, path: Path) -> Path:
    nbformat.write(build_notebook(assignment, style), path)
    return path


if __name__ == "__main__":  # write every variant next to each other, to open or grade by hand
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "variants-out")
    out.mkdir(parents=True, exist_ok=True)
    for name in ASSIGNMENTS:
        for style_name in styles(name):
            print(write_notebook(name, style_name, out / f"{name}-{style_name}.ipynb"))
