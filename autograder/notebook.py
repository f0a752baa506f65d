"""Reading submitted notebooks: size caps, nbformat validation, IPython syntax neutralised.

Parsing Python happens in the worker (the compiler itself can be crashed by hostile input);
here we only read JSON and rewrite IPython-specific lines as text.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

MAX_NOTEBOOK_BYTES = 256 << 20
MAX_CELL_CHARS = 1 << 20
# Cell magics whose body is ordinary Python: keep the body, drop the magic line.
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}


class NotebookError(Exception):
    """The file is not a notebook we can grade; the message says what to fix."""


@dataclass
class StudentCode:
    cells: list[tuple[int, str]]  # (cell number as shown in Jupyter, 1-based; code)
    notes: list[str] = field(default_factory=list)


def read_notebook(path: Path) -> nbformat.NotebookNode:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise NotebookError(f"cannot read {path.name}: {exc.strerror}") from None
    if size == 0:
        raise NotebookError(f"{path.name} is empty: upload the saved .ipynb file from Jupyter")
    if size > MAX_NOTEBOOK_BYTES:
        raise NotebookError(
            f"{path.name} is {size >> 20} MB (limit {MAX_NOTEBOOK_BYTES >> 20} MB): clear all "
            "outputs (Kernel > Restart & Clear Output), save, and submit again")
    raw = path.read_bytes()
    if raw[:5] == b"%PDF-":
        raise NotebookError(f"{path.name} is a PDF, not a notebook: submit the .ipynb file")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise NotebookError(f"{path.name} is not UTF-8 text: submit the .ipynb file saved by "
                            "Jupyter") from None
    except (ValueError, RecursionError):
        hint = ""
        if raw.lstrip()[:6] in (b"import", b"def ", b"from ", b"# ") or raw.lstrip()[:1] == b"#":
            hint = " (it looks like a Python script: paste it into the notebook instead)"
        raise NotebookError(f"{path.name} is not valid notebook JSON{hint}: re-download or "
                            "re-save the notebook from Jupyter") from None
    del raw
    if not isinstance(data, dict):
        raise NotebookError(f"{path.name} is JSON but not a notebook (top level is "
                            f"{type(data).__name__}, expected an object with 'cells')")
    _strip_outputs(data)
    try:
        nb = nbformat.from_dict(data)
        major = nb.get("nbformat")
        if major is None:
            raise NotebookError(f"{path.name} has no 'nbformat' version field")
        if major != 4:
            nb = nbformat.convert(nb, 4)
        nbformat.validate(nb)
    except NotebookError:
        raise
    except Exception as exc:  # nbformat raises many kinds on malformed input
        message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise NotebookError(f"{path.name} is not a valid notebook ({message}); open it in "
                            "Jupyter, save it, and submit the saved file") from None
    return nb


def _strip_outputs(data: dict) -> None:
    """Outputs are never needed for grading and can be most of a notebook's size."""
    for key in ("cells", "worksheets"):
        items = data.get(key)
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict):
                continue
            if key == "worksheets":
                _strip_outputs(item)
                continue
            if isinstance(item.get("outputs"), list):
                item["outputs"] = []
            if "execution_count" in item and item.get("cell_type") == "code":
                item["execution_count"] = None


def extract_code(nb: nbformat.NotebookNode) -> StudentCode:
    from IPython.core.inputtransformer2 import TransformerManager

    transformer = TransformerManager()
    cells, notes = [], []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str):
            notes.append(f"cell {number}: source is not text; skipped")
            continue
        if len(source) > MAX_CELL_CHARS:
            notes.append(f"cell {number}: longer than {MAX_CELL_CHARS} characters; skipped")
            continue
        code = neutralise_ipython(source, transformer, number, notes)
        if code is not None:
            cells.append((number, code))
    return StudentCode(cells, notes)


def neutralise_ipython(source: str, transformer, number: int, notes: list[str]) -> str | None:
    stripped = source.lstrip()
    if stripped.startswith("%%"):
        first, _, body = stripped.partition("\n")
        magic = first[2:].split(maxsplit=1)[0] if len(first) > 2 else ""
        if magic not in PYTHON_CELL_MAGICS:
            notes.append(f"cell {number}: %%{magic} cell is not Python; not run")
            return None
        source = body
    try:
        # Rewrites `!cmd`, `%magic`, `x?` into get_ipython() calls, which the worker stubs out.
        return transformer.transform_cell(source)
    except Exception:  # noqa: BLE001 - the tokenizer rejects some broken code; let it fail later
        return source
