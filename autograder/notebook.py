"""Reading submitted notebooks: size caps, nbformat validation, IPython syntax neutralised.

Parsing Python happens in the worker (the compiler itself can be crashed by hostile input);
here we only read JSON and rewrite IPython-specific lines as text.
"""
from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

MAX_NOTEBOOK_BYTES = 512 << 20
MAX_CELL_CHARS = 1 << 20
# Cell magics whose body is ordinary Python: keep the body, drop the magic line.
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}
UNKNOWN_TYPE_KEY = "dlgrade_unknown_cell_type"


# Streaming: a notebook is read in chunks and the values of "outputs" (and "attachments")
# are dropped on the way, so memory stays near the size of the code, not of the file.
CHUNK_BYTES = 1 << 20
MAX_CODE_BYTES = 32 << 20  # the document once outputs are dropped
_DROPPED = {b"outputs": (ord("["), b"[]"), b"attachments": (ord("{"), b"{}")}
# Atomic groups, not possessive quantifiers: those are broken in early Python 3.11 releases.
_STRING_BODY = re.compile(rb'(?>[^"\\]*(?:\\.[^"\\]*)*)', re.DOTALL)
# Inside a dropped value: everything up to the next bracket, short plain strings included
# (long ones and those with escapes go through _string_end).
_SKIPPED = re.compile(rb'(?>(?:[^"\[\]{}]+|"[^"\\]{0,4096}")*)')
_PLAIN = re.compile(rb'[^"\[\]{}:,]*')
_OPEN = frozenset(b"[{")


def _string_end(buf: bytes, i: int) -> int:
    """Where the string whose body starts at ``i`` ends: its closing quote, a lone backslash
    as the last byte, or ``len(buf)``. Image data has no escapes: ``find`` then suffices."""
    quote = buf.find(b'"', i)
    end = quote if quote >= 0 else len(buf)
    if buf.find(b"\\", i, end) < 0:
        return end
    return _STRING_BODY.match(buf, i).end()


class _OutputDropper:
    """Copies JSON text, replacing the value of every "outputs" key by [] and of every
    "attachments" key by {}. Malformed input is copied as it comes: json.loads judges it."""

    def __init__(self, limit: int):
        self.out = bytearray()
        self.limit = limit
        self.in_string = False
        self.key = bytearray()  # the current string's first bytes: is it a dropped key?
        self.key_len = 0
        self.last_key: bytes | None = None  # a dropped key name just closed, before its ':'
        self.dropping: tuple[int, bytes] | None = None  # after "outputs": (opening, stand-in)
        self.skip_depth = 0
        self.carry = b""

    def feed(self, chunk: bytes) -> None:
        buf = self.carry + chunk if self.carry else chunk
        self.carry = b""
        i, n = 0, len(buf)
        while i < n:
            if self.in_string:
                j = _string_end(buf, i)
                if not self.skip_depth:
                    self.out += buf[i:j]
                    if self.key_len < 16:
                        self.key += buf[i:min(j, i + 16)]
                    self.key_len += j - i
                if j == n:
                    break
                if buf[j] == 0x5C:  # a lone backslash at the end: its escaped byte is next
                    self.carry = buf[j:]
                    break
                self.in_string = False
                i = j + 1
                if not self.skip_depth:
                    self.out.append(0x22)
                    name = bytes(self.key) if self.key_len < 16 else None
                    self.last_key = name if name in _DROPPED else None
                continue
            if self.skip_depth:
                j = _SKIPPED.match(buf, i).end()
                if j == n:
                    break
                c = buf[j]
                i = j + 1
                if c == 0x22:
                    self.in_string = True
                elif c in _OPEN:
                    self.skip_depth += 1
                else:
                    self.skip_depth -= 1
                continue
            j = _PLAIN.match(buf, i).end()
            if j > i:
                self.out += buf[i:j]
                if buf[i:j].strip():
                    self.last_key = self.dropping = None
            if j == n:
                break
            c = buf[j]
            i = j + 1
            if c == 0x3A and self.last_key is not None:  # ':'
                self.dropping = _DROPPED[self.last_key]
                self.last_key = None
                self.out.append(c)
                continue
            if self.dropping is not None and c == self.dropping[0]:
                self.out += self.dropping[1]
                self.skip_depth = 1
            else:
                self.out.append(c)
                if c == 0x22:
                    self.in_string = True
                    self.key.clear()
                    self.key_len = 0
            self.last_key = self.dropping = None
        if len(self.out) > self.limit:
            raise OverflowError

    def finish(self) -> bytes:
        self.out += self.carry
        return bytes(self.out)


class NotebookError(Exception):
    """The file is not a notebook we can grade; the message says what to fix."""


@dataclass
class StudentCode:
    cells: list[tuple[int, str]]  # (cell number as shown in Jupyter, 1-based; code)
    notes: list[str] = field(default_factory=list)


def read_notebook(path: Path) -> nbformat.NotebookNode:
    try:
        # Never through a symbolic link: one to the hidden tests would be read by the grader.
        fh = os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotebookError(f"{path.name} is a symbolic link, not a notebook: submit the "
                                ".ipynb file itself") from None
        raise NotebookError(f"cannot read {path.name}: {exc.strerror}") from None
    info = os.fstat(fh.fileno())
    size = info.st_size
    if not stat.S_ISREG(info.st_mode):
        fh.close()
        raise NotebookError(f"cannot read {path.name}: it is not a regular file")
    if size == 0:
        fh.close()
        raise NotebookError(f"{path.name} is empty: upload the saved .ipynb file from Jupyter")
    if size > MAX_NOTEBOOK_BYTES:
        fh.close()
        raise NotebookError(
            f"{path.name} is {size >> 20} MB (limit {MAX_NOTEBOOK_BYTES >> 20} MB): clear all "
            "outputs (Kernel > Restart & Clear Output), save, and submit again")
    with fh:
        first = fh.read(CHUNK_BYTES)
        if first[:5] == b"%PDF-":
            raise NotebookError(f"{path.name} is a PDF, not a notebook: submit the .ipynb file")
        dropper = _OutputDropper(MAX_CODE_BYTES)
        try:
            chunk = first.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
            while chunk:
                dropper.feed(chunk)
                chunk = fh.read(CHUNK_BYTES)
        except OverflowError:
            raise NotebookError(
                f"{path.name} holds more than {MAX_CODE_BYTES >> 20} MB besides cell outputs: "
                "remove embedded data from the code and markdown cells and submit again") from None
    raw = dropper.finish()
    del dropper
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise NotebookError(f"{path.name} is not UTF-8 text: submit the .ipynb file saved by "
                            "Jupyter") from None
    except (ValueError, RecursionError):
        hint = ""
        if first.lstrip()[:6] in (b"import", b"def ", b"from ") or first.lstrip()[:1] == b"#":
            hint = " (it looks like a Python script: paste it into the notebook instead)"
        raise NotebookError(f"{path.name} is not valid notebook JSON{hint}: re-download or "
                            "re-save the notebook from Jupyter") from None
    del raw, first
    if not isinstance(data, dict):
        raise NotebookError(f"{path.name} is JSON but not a notebook (top level is "
                            f"{type(data).__name__}, expected an object with 'cells')")
    if data.get("nbformat") == 4 and not isinstance(data.get("cells"), list):
        raise NotebookError(f"{path.name} is not a valid notebook: it has no list of cells "
                            "('cells' is missing or not a list); open it in Jupyter, save it, "
                            "and submit the saved file")
    _strip_outputs(data)
    if data.get("nbformat") == 4:
        _retype_unknown_cells(data["cells"])
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
        where = list(getattr(exc, "absolute_path", None) or [])
        if len(where) >= 2 and where[0] == "cells" and isinstance(where[1], int):
            # Say where, as Jupyter numbers cells: "cell 4, 'source': 42 is not valid ..."
            message = f"{', '.join([f'cell {where[1] + 1}', *map(repr, where[2:3])])}: {message}"
        raise NotebookError(f"{path.name} is not a valid notebook ({message}); open it in "
                            "Jupyter, save it, and submit the saved file") from None
    return nb


def _retype_unknown_cells(cells: list) -> None:
    """Cells of a type nbformat does not know (a newer Jupyter, an extension) become raw cells
    with a note, rather than failing validation of the whole notebook."""
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") in ("code", "markdown", "raw"):
            continue
        kind = cell.get("cell_type")
        source = cell.get("source")
        cells[index] = {"cell_type": "raw", "source": source if isinstance(source, str) else "",
                        "metadata": {UNKNOWN_TYPE_KEY: str(kind)[:40]}}
        if isinstance(cell.get("id"), str):
            cells[index]["id"] = cell["id"]


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
        if cell.get("cell_type") == "raw" and UNKNOWN_TYPE_KEY in cell.get("metadata", {}):
            notes.append(f"cell {number}: unknown cell type "
                         f"{cell.metadata[UNKNOWN_TYPE_KEY]!r}; ignored")
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


def top_level_statements(nb):
    """Every top-level statement of a trusted notebook's code cells (magics neutralised),
    for tools reading the instructor's own notebooks; cells that do not parse are skipped."""
    import ast

    for _number, code in extract_code(nb).cells:
        try:
            yield from ast.parse(code).body
        except SyntaxError:
            continue
