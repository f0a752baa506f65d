"""Coming from otter-grader: import an otter master notebook, and run its converted tests.

``dlgrade import-otter MASTER.ipynb --out DIR`` reads otter's master-notebook format (raw
``# BEGIN/END QUESTION|SOLUTION|TESTS|PROMPT`` cells, in-cell ``# BEGIN/END SOLUTION``,
``# SOLUTION``, ``# SEED``, ``# HIDDEN``, ``# IGNORE``, ``TEST CONFIG`` and ``ASSIGNMENT CONFIG``
YAML) and writes a dlgrade assignment folder: ``assignment.toml``, the master notebook
(``master/NAME.ipynb``), the student notebook, hidden tests (``tests/test_NAME.py``) and
public checks. Whatever it cannot convert is listed line by line in the report.

The converted tests run in dlgrade's trusted grader, never in the student's process:

- a doctest-style case (a test cell and the output it showed in the master) runs its cell in
  the student's worker, as a notebook would; the value of the last expression comes back as
  plain data and is formatted and compared here, so the expected output never reaches the
  student's process. Only values that cannot travel (the student's own objects) are shown with
  their own ``repr``, and such a value never matches an expected plain literal (``True``, ``4``).
- an exception-style case (``def test_q1(x): assert ...``) runs here; its arguments are the
  notebook's values of the same names, fetched from the worker (functions and objects are
  proxies that call into the worker), so every comparison happens in the grader.

Otter's grading weaknesses are not inherited: no test code runs next to the student's, nothing
is unpickled, and every case has a time limit.

The runtime half of this module (``DoctestCase``, ``FunctionCase``, ``run_question``,
``run_public_cases``) is imported by the generated tests and public checks.
"""
from __future__ import annotations

import ast
import builtins
import copy
import inspect
import json
import linecache
import os
import re
import shutil
import tempfile
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# =============================================================================================
# Runtime: the converted test cases
# =============================================================================================


@dataclass(frozen=True)
class DoctestCase:
    """An otter doctest-style case: a test cell and the output it showed in the master."""

    name: str
    source: str
    want: str
    points: float = 1.0
    success_message: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True)
class FunctionCase:
    """An otter exception-style case: a function whose arguments are notebook values."""

    name: str
    function: Callable
    points: float = 1.0
    success_message: str | None = None
    failure_message: str | None = None


def normalise_output(text: str) -> str:
    """Otter compares output as text; trailing spaces and surrounding blank lines don't count."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _plain_literal(want: str) -> bool:
    """Whether the expected output is a Python literal such as ``True``, ``4`` or ``(2, 3)``."""
    try:
        ast.literal_eval(want.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return bool(want.strip())


def _from_wire(value):
    """Grader-side values for what the worker sent: tensors become torch tensors again."""
    from .values import TensorValue

    if isinstance(value, TensorValue):
        import torch

        return torch.from_numpy(value.array.copy()).requires_grad_(value.requires_grad)
    import numpy as np

    if type(value) is np.ndarray and value.ndim == 0:
        # numpy scalars cross the channel as 0-d arrays: shown as the scalar they were
        # (np.float64(172.0)), as Jupyter showed them in the master
        return value[()]
    if type(value) is list:
        return [_from_wire(v) for v in value]
    if type(value) is tuple:
        return tuple(_from_wire(v) for v in value)
    if type(value) is dict:
        return {k: _from_wire(v) for k, v in value.items()}
    return value


def display_text(value) -> str:
    """What Jupyter shows for a value (``text/plain``): IPython's pretty printer."""
    try:
        from IPython.lib.pretty import pretty
    except ImportError:  # a student machine without IPython
        return repr(value)
    return pretty(value)


def shown_output(reply) -> tuple[str, str]:
    """``(text the cell showed, how its value was shown)`` from an ``exec_cell`` reply, which
    comes from the untrusted worker: every field is checked before use."""
    if type(reply) is not dict or type(reply.get("printed")) is not str:
        raise ValueError("malformed reply")
    kind = reply.get("kind")
    if kind == "none":
        return reply["printed"], kind
    if kind == "text":
        if type(reply.get("text")) is not str:
            raise ValueError("malformed reply")
        return reply["printed"] + reply["text"], kind
    if kind == "scalar":
        import numpy as np

        value = reply.get("value")
        if type(value) is not np.ndarray or value.ndim != 0:
            raise ValueError("malformed reply")
        return reply["printed"] + display_text(value[()]), kind
    if kind == "plain":
        from .session import StudentObject

        value = _from_wire(reply.get("value"))
        if _contains(value, StudentObject):
            raise ValueError("malformed reply")
        return reply["printed"] + display_text(value), kind
    raise ValueError("malformed reply")


def _contains(value, kind, depth=0) -> bool:
    if isinstance(value, kind):
        return True
    if depth > 40:
        return False
    if type(value) in (list, tuple):
        return any(_contains(v, kind, depth + 1) for v in value)
    if type(value) is dict:
        return any(_contains(v, kind, depth + 1) for v in value.values())
    return False


def compare_output(got: str, want: str, kind: str) -> str | None:
    """None if the output matches, else what to tell the student."""
    if normalise_output(got) == normalise_output(want):
        if kind == "text" and _plain_literal(want):
            return ("the value shown is an object of the notebook's own making whose text "
                    f"happens to read {want.strip()[:80]!r}; expected plain data")
        return None
    return f"expected output:\n{_indent(want)}\nyour output:\n{_indent(got)}"


def _indent(text: str, limit: int = 1500) -> str:
    text = text.strip("\n")
    if len(text) > limit:
        text = text[:limit] + " ..."
    return "\n".join("    " + line for line in text.splitlines()) or "    (nothing)"


# ---- exception-style cases: notebook values in the grader -----------------------------------

class StudentEnv:
    """Otter's ``env`` argument: the notebook's global names, fetched on demand."""

    def __init__(self, student):
        self._student = student

    def __getitem__(self, name: str):
        value = _fetch(self._student, name, missing=KeyError)
        return value

    def get(self, name: str, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: str) -> bool:
        return self.get(name, _MISSING) is not _MISSING

    def __repr__(self):
        return "<the notebook's global names>"


_MISSING = object()


def _fetch(student, name: str, missing=None):
    """A notebook value by name; otter passes None for a name the notebook does not define."""
    from .session import StudentCodeError

    try:
        value = student.value(name)
    except StudentCodeError as exc:
        if exc.exc_type == "NameError":
            if missing is not None:
                raise missing(name) from None
            return None
        raise
    except AttributeError:  # in-process: the reference module has no such name
        if missing is not None:
            raise missing(name) from None
        return None
    return _wrap(value)


def _wrap(value):
    from .session import StudentObject

    if isinstance(value, StudentObject):
        return StudentProxy(value)
    return _from_wire(value)


def _unwrap(value):
    if isinstance(value, StudentProxy):
        return object.__getattribute__(value, "_obj")
    if type(value) is list:
        return [_unwrap(v) for v in value]
    if type(value) is tuple:
        return tuple(_unwrap(v) for v in value)
    if type(value) is dict:
        return {k: _unwrap(v) for k, v in value.items()}
    return value


_RAISED_AS: dict[type, type] = {}


def _as_builtin(exc):
    """What a call into the worker raised, as the test in the grader must see it: a built-in
    exception type raised by the student's code is raised here as that type, so a test's
    ``except ValueError`` (or ``pytest.raises``) catches it as it would in the notebook. Only
    built-in types: no class of the student's is ever instantiated in the grader. The
    original stays on ``.student_error`` for the feedback."""
    cls = getattr(builtins, exc.exc_type, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)) or \
            exc.exc_type.startswith("Student"):
        return exc
    raised = _RAISED_AS.get(cls)
    if raised is None:
        raised = _RAISED_AS[cls] = type(cls.__name__, (cls,), {"__module__": "builtins"})
    error = raised(exc.message)
    error.student_error = exc
    return error


class StudentProxy:
    """An object that stays in the worker (a function, a model, a data frame), as test code in
    the grader sees it: attributes, calls, ``len``, indexing and ``in`` go to the worker; any
    comparison is by identity, so the student's ``__eq__`` never decides a test."""

    def __init__(self, obj):
        object.__setattr__(self, "_obj", obj)

    def __getattr__(self, name):
        return _wrap(getattr(object.__getattribute__(self, "_obj"), name))

    def __call__(self, *args, **kwargs):
        from .session import StudentCodeError

        obj = object.__getattribute__(self, "_obj")
        try:
            return _wrap(obj(*_unwrap(args), **_unwrap(kwargs)))
        except StudentCodeError as exc:
            raise _as_builtin(exc) from None

    def _dunder(self, name, *args):
        from .session import StudentCodeError

        obj = object.__getattribute__(self, "_obj")
        obj._check_alive(f"{obj._label}.{name}")
        try:
            value = obj._session.request(
                "call", {"target": {"handle": obj._dlgrade_ref.handle, "path": [name]},
                         "args": [_unwrap(a) for a in args], "kwargs": {}},
                f"{obj._label}.{name}")
        except StudentCodeError as exc:
            # The iteration protocol relies on IndexError and KeyError.
            raise _as_builtin(exc) from None
        return _wrap(value)

    def __len__(self):
        n = self._dunder("__len__")
        if type(n) is not int:
            raise TypeError("len() of the notebook's object did not return an int")
        return n

    def __getitem__(self, key):
        return self._dunder("__getitem__", key)

    def __contains__(self, item):
        return bool(self._dunder("__contains__", item) is True)

    def __repr__(self):
        return f"<notebook {object.__getattribute__(self, '_obj')._label} object>"


def _failure_line(exc: BaseException, function: Callable) -> str:
    """Otter's message names the line of the test that failed."""
    code = function.__code__
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename == code.co_filename and f.lineno >= code.co_firstlineno]
    if not frames:
        return ""
    frame = frames[-1]
    line = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
    return f"at line {frame.lineno - code.co_firstlineno + 1} of the test: {line}\n"


def run_function_case(student, case: FunctionCase) -> str | None:
    from .plugin import describe_exception
    from .session import StudentCodeError, StudentCrash, StudentTimeout

    try:
        kwargs = {p: (StudentEnv(student) if p == "env" else _fetch(student, p))
                  for p in inspect.signature(case.function).parameters}
        case.function(**kwargs)
    except (StudentCodeError, StudentTimeout, StudentCrash) as exc:
        return describe_exception(exc)
    except Exception as exc:  # noqa: BLE001 - the test's own assertion or any error it hit
        if hasattr(exc, "student_error"):  # the student's call raised it, uncaught
            return describe_exception(exc.student_error)
        message = str(exc).strip("'")
        return f"{_failure_line(exc, case.function)}{type(exc).__name__}" + \
            (f": {message}" if message else "")
    return None


def run_doctest_case(student, case: DoctestCase, modules=None) -> str | None:
    """Evaluate the case's cell here, in the grader, as Jupyter would in the notebook: names
    the master imports are the grader's own modules, builtins are the grader's, and every
    other name is the notebook's (data fetched as data, functions and objects as proxies
    whose calls run in the worker, their prints captured in order). Student code can change
    neither ``np.allclose`` nor the comparison, and the case's source, hidden or not, never
    reaches the worker: only the arguments of the calls it makes do."""
    from .plugin import describe_exception
    from .session import StudentCodeError, StudentCrash, StudentTimeout
    from .worker import run_cell

    printed: list[str] = []
    try:
        namespace = case_namespace(student, case.source, modules or {})
        with captured_prints(student, printed):
            text, has_value, value = run_cell(case.source, namespace, f"<test {case.name}>")
    except (StudentCodeError, StudentTimeout, StudentCrash) as exc:
        return describe_exception(exc)
    except Exception as exc:  # noqa: BLE001 - the case's own code raised, as in the notebook
        if hasattr(exc, "student_error"):  # a call into the notebook raised it
            return describe_exception(exc.student_error)
        message = str(exc).strip("'")
        return f"the test raised {type(exc).__name__}" + (f": {message}" if message else "")
    got = "".join(printed) + text
    if not has_value:
        return compare_output(got, case.want, "none")
    if _contains(value, StudentProxy):
        if not isinstance(value, StudentProxy):
            return compare_output(got + "<an object of the notebook>", case.want, "text")
        try:
            shown = value._dunder("__repr__")
        except (StudentCodeError, StudentTimeout, StudentCrash) as exc:
            return describe_exception(exc)
        if type(shown) is not str:
            return "the notebook's object did not show as text"
        return compare_output(got + shown, case.want, "text")
    return compare_output(got + display_text(value), case.want, "plain")


def case_namespace(student, source: str, modules: dict) -> dict:
    """The globals a case's cell runs with: every name it reads, resolved before it runs
    (comprehensions and lambdas in the cell look names up in globals)."""
    import importlib

    tree = compile(source, "<test cell>", "exec", ast.PyCF_ONLY_AST)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    namespace: dict = {"__builtins__": builtins}
    for name in sorted(names):
        if name in modules:
            module, _, attr = modules[name].partition(":")
            value = importlib.import_module(module)  # the master's own imports: trusted
            namespace[name] = getattr(value, attr) if attr else value
        elif hasattr(builtins, name):
            continue  # the grader's: a notebook that rebinds `all` or `abs` changes nothing
        else:
            try:
                namespace[name] = _trusted_module(_fetch(student, name, missing=KeyError))
            except KeyError:
                pass  # not the notebook's either: a name the cell assigns, or a NameError
    return namespace


def _trusted_module(value):
    """A module of the notebook's, as the grader's own copy: only one the grader has already
    imported (a master's import; tests converted before ``modules`` existed need this)."""
    import sys

    if isinstance(value, StudentProxy) and \
            object.__getattribute__(value, "_obj")._dlgrade_ref.type_name == "module":
        name = value.__name__
        if type(name) is str and name in sys.modules:
            return sys.modules[name]
    return value


class captured_prints:
    """While a case runs: what the notebook's functions print, in the order of the calls."""

    def __init__(self, student, sink: list):
        self.session = getattr(student, "_session", None)
        self.sink = sink

    def __enter__(self):
        if self.session is not None:
            self.session.capture = self.sink
        return self

    def __exit__(self, *exc):
        if self.session is not None:
            self.session.capture = None
        return False


def run_case(student, case, modules=None) -> str | None:
    """None if the case passes, else the failure text."""
    if isinstance(case, DoctestCase):
        return run_doctest_case(student, case, modules)
    return run_function_case(student, case)


def _case_failure(case, message: str) -> str:
    text = message
    if case.failure_message:
        text = f"{case.failure_message}\n{text}"
    return text


def run_question(student, partial, cases, *, all_or_nothing: bool = False,
                 modules=None, files=None) -> None:
    """Run one question's cases as parts of one test: each case earns its points, or (otter's
    ``all_or_nothing``) the test earns all or nothing. Success messages are shown on a pass.
    ``modules``: the master's imports, ``{"np": "numpy", "sqrt": "math:sqrt"}``. ``files``:
    (folder, data files, student files): the cases run in a directory holding the
    assignment's files and the files the notebook wrote, as the notebook's own did."""
    with case_directory(student, *(files or (None, (), ()))):
        _run_question(student, partial, cases, all_or_nothing, modules)


@contextmanager
def case_directory(student, folder, data_files, student_files):
    """The grader's working directory while a question's cases run in it: a fresh folder with
    copies of the assignment's data files and of the student's files as the worker holds
    them (read by the worker, so nothing student code could not read). Nothing changes
    without files."""
    if not data_files and not student_files:
        yield
        return
    scratch = Path(tempfile.mkdtemp(prefix="dlgrade-case-"))
    previous = os.getcwd()
    try:
        for name in data_files:
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(folder) / name, scratch / name)
        reader = getattr(student, "read_file", None)
        for name in student_files if reader is not None else ():
            data = reader(name)
            if data is not None:
                (scratch / name).parent.mkdir(parents=True, exist_ok=True)
                (scratch / name).write_bytes(data)
        os.chdir(scratch)
        yield
    finally:
        os.chdir(previous)
        shutil.rmtree(scratch, ignore_errors=True)


def _run_question(student, partial, cases, all_or_nothing, modules) -> None:
    from .checks import CheckFailure

    failures = []
    for case in cases:
        message = run_case(student, case, modules)
        if message is None:
            if case.success_message:
                partial.messages.append(f"[{case.name}] {case.success_message}")
            if not all_or_nothing:
                with partial.part(case.name, weight=case.points):
                    pass
        else:
            failures.append((case, message))
            if not all_or_nothing:
                with partial.part(case.name, weight=case.points):
                    raise CheckFailure(_case_failure(case, message))
    if all_or_nothing:
        with partial.part("all cases", weight=1.0):
            if failures:
                raise CheckFailure("all or nothing: " + "\n".join(
                    f"[{c.name}] {_case_failure(c, m)}" for c, m in failures))


# ---- public checks: the same cases in the student's own notebook ----------------------------

class _LocalStudent:
    """The student's own namespace, as the cases see it in their notebook."""

    def __init__(self, namespace: dict):
        self.namespace = namespace

    def exec_cell(self, source, what=""):
        from .worker import run_cell

        printed, has_value, value = run_cell(source, self.namespace)
        return {"printed": printed, "kind": "plain" if has_value else "none", "value": value}


def run_public_cases(impl, cases) -> None:
    """For ``public_checks.py``: run the public cases on the student's notebook namespace."""
    from .checks import CheckFailure

    student = _LocalStudent(dict(vars(impl)))
    failures = []
    for case in cases:
        try:
            if isinstance(case, DoctestCase):
                reply = student.exec_cell(case.source)
                value = reply["value"] if reply["kind"] == "plain" else None
                got = reply["printed"] + (display_text(value) if value is not None else "")
                message = compare_output(got, case.want, "plain")
            else:
                kwargs = {p: (student.namespace if p == "env" else student.namespace.get(p))
                          for p in inspect.signature(case.function).parameters}
                case.function(**kwargs)
                message = None
        except Exception as exc:  # noqa: BLE001 - show the student what happened
            message = f"{type(exc).__name__}: {exc}"
        if message is None:
            if case.success_message:
                print(f"  {case.name}: {case.success_message}")
        else:
            text = _case_failure(case, message).replace("\n", "\n    ")
            failures.append(f"[{case.name}] {text}")
    if failures:
        raise CheckFailure("\n".join(failures))


# =============================================================================================
# Conversion
# =============================================================================================

QUESTION_KEYS = {"name", "points", "all_or_nothing"}
TEST_KEYS = {"hidden", "points", "success_message", "failure_message"}
ASSIGNMENT_KEYS = {"name", "seed", "tests", "generate", "files", "student_files",
                   "requirements"}
# Assignment keys about otter's own packaging: nothing to convert, but still listed.
OTTER_ONLY_KEYS = {"init_cell", "check_all_cell", "export_cell", "run_tests", "solutions_pdf",
                   "template_pdf", "show_question_points", "runs_on", "python_version",
                   "channel_priority_strict", "save_environment", "suppress_no_tests_warning",
                   "overwrite_requirements", "ignore_modules", "config_file"}

BLOCK = re.compile(r"#\s+(begin|end)\s+(question|prompt|solution|tests)\b", re.IGNORECASE)
ASSIGNMENT_CONFIG = re.compile(r"#\s+assignment\s+config\s*", re.IGNORECASE)
IGNORE_CELL = re.compile(r"(##\s*ignore\s*##\s*|#\s*ignore\s*)", re.IGNORECASE)
BEGIN_TEST_CONFIG = re.compile(r'(?:.\s*=\s*)?""?"?\s*#\s*BEGIN\s*TEST\s*CONFIG', re.IGNORECASE)
END_TEST_CONFIG = re.compile(r'""?"?\s*#\s*END\s*TEST\s*CONFIG', re.IGNORECASE)
BEGIN_SOLUTION = re.compile(r"^(\s*)# BEGIN SOLUTION( NO PROMPT)?\s*$")
SOLUTION_LINE = re.compile(r"^(\s*)(.*?)\s*# ?SOLUTION( NO PROMPT)?\s*$")
BEGIN_IGNORE = re.compile(r"\s*#\s*BEGIN\s*IGNORE\s*", re.IGNORECASE)
GRADER_NAME = re.compile(r"^\s*(\w+)\s*=\s*(?:otter\.)?Notebook\(", re.MULTILINE)


def _otter_line_pattern(grader_names) -> re.Pattern:
    """Lines that use otter's client (``import otter``, ``grader.check("q1")``)."""
    calls = "|".join(re.escape(n) for n in sorted(grader_names))
    calls = rf"|(?:{calls})\s*\." if calls else ""
    return re.compile(rf"^\s*(?:import otter\b|from otter\b{calls})")


class OtterImportError(Exception):
    """The master notebook cannot be imported at all (the message says where and why)."""


@dataclass
class Note:
    """One line of the import report."""

    where: str
    text: str
    what: str
    converted: bool = False  # True: converted, with a difference worth knowing

    def render(self) -> str:
        text = f" `{self.text.strip()[:100]}`" if self.text.strip() else ""
        return f"- {self.where}:{text} {self.what}"


@dataclass
class Case:
    name: str
    kind: str  # "doctest" | "function"
    source: str
    want: str = ""
    hidden: bool = False
    points: float | None = None
    success_message: str | None = None
    failure_message: str | None = None
    cell: int = 0
    function_name: str = ""


@dataclass
class Question:
    name: str
    cell: int
    points: object = None
    all_or_nothing: bool = False
    manual: bool = False
    cases: list[Case] = field(default_factory=list)


@dataclass
class Conversion:
    name: str
    master: object  # nbformat.NotebookNode: the dlgrade master
    questions: list[Question]
    notes: list[Note]
    mode: str = "definitions"
    mode_reason: str = ""
    cell_prefix: str = ""
    hidden_visibility: str = "hidden"
    title: str = ""
    # otter's `files` and `student_files`: paths beside the master the notebook reads
    files: list[str] = field(default_factory=list)
    # The master's imports, {"np": "numpy", "sqrt": "math:sqrt"}: doctest cases see these
    # names as the grader's own modules, whatever the notebook binds to them.
    modules: dict = field(default_factory=dict)
    # otter's `requirements`: a list, or a file beside the master (read by import_otter)
    requirements: list[str] = field(default_factory=list)
    requirements_file: str = ""
    # otter's `generate: points_possible`: the Gradescope total scaled to it
    points_possible: float | None = None
    # otter's `student_files`: files the notebook writes; tests read the worker's copies
    student_files: list[str] = field(default_factory=list)

    @property
    def total_points(self) -> float:
        return sum(c.points or 0.0 for q in self.questions for c in q.cases)


def _source_lines(cell) -> list[str]:
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(source)
    return re.split(r"\r?\n", source)


def _yaml(text: str, where: str):
    try:
        import yaml
    except ImportError:
        raise OtterImportError("reading otter's YAML config needs PyYAML: pip install pyyaml") \
            from None

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OtterImportError(f"{where}: invalid YAML ({str(exc).splitlines()[0]})") from None


def _key_lines(lines: list[str], key: str) -> tuple[int, str]:
    for number, line in enumerate(lines, start=1):
        if re.match(rf"\s*{re.escape(str(key))}\s*:", line):
            return number, line
    return 1, ""


def _split_fenced(cells) -> list[tuple[int, object]]:
    """Otter also accepts config in Markdown cells fenced as ```otter: make them raw cells."""
    import nbformat

    out = []
    for number, cell in enumerate(cells, start=1):
        lines = _source_lines(cell)
        if cell.get("cell_type") != "markdown" or not any(
                line.strip() == "```otter" for line in lines):
            out.append((number, cell))
            continue
        chunk, kind = [], "markdown"
        for line in lines:
            if kind == "markdown" and line.strip() == "```otter":
                if any(s.strip() for s in chunk):
                    out.append((number, nbformat.v4.new_markdown_cell("\n".join(chunk))))
                chunk, kind = [], "raw"
            elif kind == "raw" and line.strip() == "```":
                out.append((number, nbformat.v4.new_raw_cell("\n".join(chunk))))
                chunk, kind = [], "markdown"
            else:
                chunk.append(line)
        if kind == "raw":
            raise OtterImportError(f"cell {number}: unclosed ```otter block")
        if any(s.strip() for s in chunk):
            out.append((number, nbformat.v4.new_markdown_cell("\n".join(chunk))))
    return out


def _convert_solution_cell(lines: list[str], number: int, notes: list[Note],
                           strip_markers: bool, otter_line: re.Pattern) -> list[str]:
    """Otter's in-cell markers as dlgrade's: ``# BEGIN/END SOLUTION`` blocks, one line each.

    ``x = 5  # SOLUTION`` becomes a one-line block (the student sees a NotImplementedError
    instead of otter's ``x = ...``); ``# SEED`` lines and ``# IGNORE`` lines leave the master,
    as they leave otter's student notebook; ``import otter`` / ``grader.check`` lines go too.
    """
    out: list[str] = []
    indent = ""
    inside_solution = inside_ignore = inside_prompt = False
    pending: list[str] = []  # consecutive one-line solutions, merged into one block
    pending_indent = ""

    def flush():
        nonlocal pending
        if pending:
            out.append(f"{pending_indent}# BEGIN SOLUTION")
            out.extend(pending)
            out.append(f"{pending_indent}# END SOLUTION")
            pending = []

    for line_no, line in enumerate(lines, start=1):
        where = f"cell {number}, line {line_no}"
        stripped = line.rstrip()
        if inside_ignore:
            if stripped.endswith("# END IGNORE"):
                inside_ignore = False
            continue
        if BEGIN_IGNORE.match(line):
            flush()
            inside_ignore = True
            notes.append(Note(where, line, "otter IGNORE block: left out of the master",
                              converted=True))
            continue
        if stripped.endswith("# IGNORE"):
            notes.append(Note(where, line, "otter IGNORE line: left out of the master",
                              converted=True))
            continue
        if strip_markers and stripped.endswith("# SEED"):
            flush()
            notes.append(Note(where, line, "SEED line: left out, as from otter's student "
                                           "notebook (only the `seed` config seeds graded "
                                           "notebooks)", converted=True))
            continue
        if inside_prompt:
            if stripped.endswith("# END PROMPT"):
                inside_prompt = False
            else:
                text = line.replace('"""', "").rstrip()
                prompt_indent = text[:len(text) - len(text.lstrip())]
                out.append(f"{prompt_indent}# {text.strip()}".rstrip())
            continue
        if strip_markers and stripped.endswith("# BEGIN PROMPT"):
            # otter shows the prompt to students in place of the solution; as comments it
            # stays visible in both notebooks without becoming a dead string in the master.
            flush()
            inside_prompt = True
            notes.append(Note(where, line, "in-cell PROMPT block: kept as comments",
                              converted=True))
            continue
        if otter_line.match(line) and not inside_solution:
            flush()
            notes.append(Note(where, line, "otter client call: left out (dlgrade's check() "
                                           "cells replace it; graded notebooks may keep it)",
                              converted=True))
            continue
        if not strip_markers:
            out.append(line)
            continue
        if inside_solution:
            if stripped.endswith("# END SOLUTION"):
                code = stripped[: -len("# END SOLUTION")].rstrip()
                if code.strip():
                    out.append(code)
                out.append(f"{indent}# END SOLUTION")
                inside_solution = False
            else:
                out.append(line)
            continue
        begin = BEGIN_SOLUTION.match(line)
        if begin:
            flush()
            indent = begin.group(1)
            inside_solution = True
            out.append(f"{indent}# BEGIN SOLUTION")
            if begin.group(2):
                notes.append(Note(where, line, "BEGIN SOLUTION NO PROMPT: the student notebook "
                                               "shows a NotImplementedError line here",
                                  converted=True))
            continue
        if stripped.endswith("# END SOLUTION"):
            raise OtterImportError(f"{where}: END SOLUTION without BEGIN SOLUTION")
        one = SOLUTION_LINE.match(line)
        if one and one.group(2).strip() and not one.group(2).lstrip().startswith("#"):
            if pending and one.group(1) != pending_indent:
                flush()
            if not pending:
                notes.append(Note(where, line, "one-line SOLUTION: a BEGIN/END SOLUTION block "
                                               "(students see a NotImplementedError line, not "
                                               "otter's `...`)", converted=True))
            pending_indent = one.group(1)
            pending.append(one.group(1) + one.group(2))
            continue
        flush()
        out.append(line)
    flush()
    if inside_solution:
        raise OtterImportError(f"cell {number}: BEGIN SOLUTION is never closed")
    return out


def _cell_output(cell, number: int, notes: list[Note]) -> str:
    """The output the master showed for a test cell: what otter takes as the expected output
    (printed text, then the value shown). stderr (warnings) is not compared."""
    text = ""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            chunk = output.get("text", "")
            chunk = "".join(chunk) if isinstance(chunk, list) else chunk
            if output.get("name") == "stderr":
                notes.append(Note(f"cell {number}", chunk.splitlines()[0] if chunk else "",
                                  "stderr output of the test cell is not compared",
                                  converted=True))
                continue
            text += chunk
        elif output.get("output_type") in ("execute_result", "display_data"):
            data = output.get("data", {}).get("text/plain")
            if data:
                text += "".join(data) if isinstance(data, list) else data
    return text


def _read_test(cell, number: int, question: Question, ok_format: bool, notes: list[Note]):
    lines = _source_lines(cell)
    where = f"cell {number}"
    hidden = bool(lines and lines[0].lstrip().startswith("#")
                  and re.search(r"\bhidden\b", lines[0], re.IGNORECASE))
    start = 1 if hidden else 0
    config: dict = {}
    if lines and BEGIN_TEST_CONFIG.match(lines[0]):
        end = next((i for i, line in enumerate(lines) if END_TEST_CONFIG.match(line)), None)
        if end is None:
            raise OtterImportError(f"{where}: BEGIN TEST CONFIG without END TEST CONFIG")
        config = _yaml("\n".join(lines[1:end]), where) or {}
        if not isinstance(config, dict):
            raise OtterImportError(f"{where}: TEST CONFIG is not a mapping")
        for key in config:
            if key not in TEST_KEYS:
                line_no, line = _key_lines(lines, key)
                notes.append(Note(f"{where}, line {line_no}", line,
                                  f"TEST CONFIG key `{key}` is not supported: ignored"))
        start = end + 1
    hidden = bool(config.get("hidden", hidden))
    points = config.get("points")
    if points is not None and not isinstance(points, (int, float)):
        notes.append(Note(where, f"points: {points}", "test points must be a number: ignored"))
        points = None
    source = "\n".join(lines[start:]).strip("\n")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        bad = lines[start + (exc.lineno or 1) - 1] if exc.lineno else ""
        notes.append(Note(f"{where}, line {start + (exc.lineno or 1)}", bad,
                          f"test cell is not valid Python ({exc.msg}): test case not converted"))
        return
    if not tree.body:
        notes.append(Note(where, "", "test cell without code: nothing to convert"))
        return
    case = Case(name=f"{question.name} - {len(question.cases) + 1}", kind="doctest",
                source=source, hidden=hidden, points=points,
                success_message=config.get("success_message"),
                failure_message=config.get("failure_message"), cell=number)
    if ok_format:
        case.want = _cell_output(cell, number, notes)
        if not case.want.strip() and tree.body and isinstance(tree.body[-1], ast.Expr):
            notes.append(Note(where, source.splitlines()[-1],
                              "this test cell showed no output in the master (was it run?): "
                              "the case expects no output", converted=True))
    else:
        funcs = tree.body[:1]
        if len(tree.body) > 2 or not funcs or not isinstance(funcs[0], ast.FunctionDef):
            notes.append(Note(where, lines[start] if start < len(lines) else "",
                              "an exception-style test cell must hold one function definition "
                              "(and at most a call to it): test case not converted"))
            return
        if len(tree.body) == 2:
            notes.append(Note(f"{where}, line {start + tree.body[1].lineno}",
                              lines[start + tree.body[1].lineno - 1],
                              "call of the test function: not needed, dropped", converted=True))
        func = funcs[0]
        for deco in func.decorator_list:
            notes.append(Note(f"{where}, line {start + deco.lineno}",
                              lines[start + deco.lineno - 1],
                              "decorator of a test function: dropped (use TEST CONFIG)"))
        case.kind = "function"
        case.function_name = func.name
        case.source = "\n".join(source.splitlines()[func.lineno - 1:func.end_lineno])
    question.cases.append(case)


def _resolve_points(question: Question, notes: list[Note]) -> None:
    """Otter's rules: per-case points first; a question total is shared by the other cases;
    no points at all means one point for the question."""
    cases, total = question.cases, question.points
    where = f"cell {question.cell}"
    if isinstance(total, dict):
        total = float(total.get("each", 1)) * len(cases)
    if isinstance(total, list):
        if len(total) != len(cases):
            raise OtterImportError(f"{where}: question {question.name} lists {len(total)} "
                                   f"points for {len(cases)} test cases")
        for case, p in zip(cases, total, strict=True):
            case.points = p
        total = None
    if total is not None and not isinstance(total, (int, float)):
        raise OtterImportError(f"{where}: question {question.name}: invalid points {total!r}")
    fixed = sum(c.points for c in cases if c.points is not None)
    free = [c for c in cases if c.points is None]
    if total is not None:
        if fixed > total:
            raise OtterImportError(f"{where}: question {question.name}: its test cases have "
                                   f"more points ({fixed:g}) than the question ({total:g})")
        share = (total - fixed) / len(free) if free else 0.0
    elif fixed == 0:
        share = 1.0 / len(free) if free else 0.0
    else:
        share = 0.0
    for case in free:
        case.points = share
    for case in cases:
        case.points = float(case.points)


def _seed_prefix(seed, notes: list[Note], lines: list[str], number: int) -> tuple[str, dict]:
    """Otter's intercell seeding as code run before every cell; returns (prefix, variable info)."""
    where = f"cell {number}, line {_key_lines(lines, 'seed')[0]}"
    if seed is None:
        return "", {}
    if isinstance(seed, int) and not isinstance(seed, bool):
        seed = {"autograder_value": seed}
    if not isinstance(seed, dict) or seed.get("autograder_value") is None:
        notes.append(Note(where, "seed", "seed config without an autograder_value: ignored"))
        return "", {}
    value = seed["autograder_value"]
    if not isinstance(value, int):
        raise OtterImportError(f"{where}: seed autograder_value must be an integer")
    variable = seed.get("variable")
    if variable:
        if not str(variable).isidentifier():
            raise OtterImportError(f"{where}: seed variable {variable!r} is not a Python name")
        return f"{variable} = {value}", {"variable": variable,
                                          "student_value": seed.get("student_value")}
    return (f'__import__("numpy").random.seed({value}); __import__("random").seed({value})',
            {})


def _names_loaded(tree) -> set[str]:
    """Names a test cell reads that it does not bind itself (assignments, imports, defs)."""
    stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
              and isinstance(n.ctx, ast.Store)}
    for n in ast.walk(tree):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            stored.update((a.asname or a.name).split(".")[0] for a in n.names)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stored.add(n.name)
        elif isinstance(n, ast.arg):
            stored.add(n.arg)
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
              and isinstance(n.ctx, ast.Load)}
    return loaded - stored - set(dir(builtins))


def _merge_config_file(config: dict, config_lines: list[str], config_cell: int,
                       base_dir: Path | None, notes: list[Note]) -> None:
    """otter's ``config_file``: a YAML file of assignment settings beside the master; the
    notebook's own settings win where both give one (as in otter)."""
    name = config.get("config_file")
    if not name:
        return
    line_no, line = _key_lines(config_lines, "config_file")
    where = f"cell {config_cell}, line {line_no}"
    if not isinstance(name, str):
        raise OtterImportError(f"{where}: config_file must be a file name")
    if base_dir is None:
        notes.append(Note(where, line, "config_file: the master's folder is unknown here, so "
                                       "its settings are not read"))
        return
    path = Path(base_dir) / name
    if not path.is_file():
        raise OtterImportError(f"{where}: config_file {name} does not exist beside the master "
                               f"(looked for {path})")
    extra = _yaml(path.read_text(), f"config_file {name}") or {}
    if not isinstance(extra, dict):
        raise OtterImportError(f"config_file {name}: expected a mapping of settings")
    used = sorted(key for key in extra if key not in config and key != "config_file")
    for key in used:
        config[key] = extra[key]
        config_lines.append(f"{key}: (from {name})")
    notes.append(Note(where, line, f"config_file {name} read: "
                                   f"{', '.join(used) if used else 'nothing the notebook lacks'}",
                      converted=True))


def _choose_mode(master, questions: list[Question]) -> tuple[str, str]:
    """"definitions" when every notebook name the tests use is a function, class, import or
    constant (dlgrade's default: top-level training code is not run); else "all", as otter."""
    from .notebook import top_level_statements
    from .worker import _keep_definition

    defined: set[str] = set()
    for stmt in top_level_statements(master):
        if not _keep_definition(stmt):
            continue
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        else:
            defined.update(n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)
                           and isinstance(n.ctx, ast.Store))
    needed: dict[str, str] = {}
    for question in questions:
        for case in question.cases:
            tree = ast.parse(case.source)
            if case.kind == "function":
                func = tree.body[0]
                names = [a.arg for a in func.args.args + func.args.kwonlyargs]
                if "env" in names:
                    return "all", f"{case.name} takes `env`, the whole notebook namespace"
            else:
                names = sorted(_names_loaded(tree))
            for name in names:
                if name not in defined:
                    needed.setdefault(name, case.name)
    if needed:
        listed = ", ".join(f"`{n}` ({c})" for n, c in sorted(needed.items())[:8])
        return "all", f"the tests use values computed by top-level code: {listed}"
    return "definitions", "the tests use only functions, classes, imports and constants"


def convert(nb, name: str, *, mode: str = "auto", base_dir: Path | None = None) -> Conversion:
    """Parse an otter master notebook into a dlgrade master, questions and report notes.
    ``base_dir``: the master's folder, where a ``config_file`` is read from."""
    import nbformat

    notes: list[Note] = []
    config: dict = {}
    config_lines: list[str] = []
    config_cell = 0
    cells_out = []
    questions: list[Question] = []
    blocks: list[str] = []
    question: Question | None = None
    question_end: dict[str, int] = {}  # question name -> index of its last cell in cells_out
    deferred_tests: list[tuple[object, int, Question]] = []
    grader_names = {m.group(1) for cell in nb.cells if cell.get("cell_type") == "code"
                    for m in GRADER_NAME.finditer("\n".join(_source_lines(cell)))}
    otter_line = _otter_line_pattern(grader_names)

    for number, cell in _split_fenced(nb.cells):
        lines = _source_lines(cell)
        first = lines[0] if lines else ""
        where = f"cell {number}"
        if IGNORE_CELL.match(first):
            notes.append(Note(where, first, "otter ignore cell: left out", converted=True))
            continue
        if cell.get("cell_type") == "raw" and ASSIGNMENT_CONFIG.match(first):
            config_lines, config_cell = lines, number
            config.update(_yaml("\n".join(lines), where) or {})
            continue
        boundary = BLOCK.match(first) if cell.get("cell_type") == "raw" else None
        if boundary:
            kind = boundary.group(2).lower()
            if boundary.group(1).lower() == "end":
                if not blocks or blocks[-1] != kind:
                    raise OtterImportError(f"{where}: END {kind.upper()} does not close "
                                           f"{'a ' + blocks[-1].upper() if blocks else 'any'} "
                                           "block")
                blocks.pop()
                if kind == "question":
                    question_end[question.name] = len(cells_out) - 1
                    question = None
                continue
            if kind == "question":
                if blocks:
                    raise OtterImportError(f"{where}: BEGIN QUESTION inside a {blocks[-1]} block")
                qconfig = _yaml("\n".join(lines), where) or {}
                if not isinstance(qconfig, dict) or "name" not in qconfig:
                    raise OtterImportError(f"{where}: a question needs a `name`")
                question = Question(name=str(qconfig["name"]), cell=number,
                                    points=qconfig.get("points"),
                                    all_or_nothing=bool(qconfig.get("all_or_nothing", False)),
                                    manual=bool(qconfig.get("manual", False)))
                if any(q.name == question.name for q in questions):
                    raise OtterImportError(f"{where}: question {question.name} appears twice")
                for key in qconfig:
                    if key not in QUESTION_KEYS:
                        line_no, line = _key_lines(lines, key)
                        if key == "manual" and not qconfig[key]:
                            continue  # `manual: false` is the default: autograded
                        what = ("manually graded question: not autograded, left to the "
                                "instructor" if key == "manual" else
                                f"question key `{key}` is not supported: ignored")
                        notes.append(Note(f"{where}, line {line_no}", line, what))
                questions.append(question)
            elif not blocks:
                raise OtterImportError(f"{where}: BEGIN {kind.upper()} outside a question")
            elif len(blocks) > 1:
                raise OtterImportError(f"{where}: BEGIN {kind.upper()} inside a "
                                       f"{blocks[-1]} block")
            blocks.append(kind)
            continue
        inner = blocks[-1] if blocks else None
        if inner == "tests":
            if cell.get("cell_type") != "code":
                raise OtterImportError(f"{where}: a tests block holds code cells only")
            deferred_tests.append((cell, number, question))
            continue
        new = copy.deepcopy(cell)
        for key in ("outputs",):
            if key in new:
                new[key] = []
        if "execution_count" in new:
            new["execution_count"] = None
        if cell.get("cell_type") == "code":
            strip = inner == "solution" or config.get("strip_solutions_from_all_cells", False)
            new["source"] = "\n".join(_convert_solution_cell(lines, number, notes, strip,
                                                              otter_line))
            if not new["source"].strip():
                continue
            if inner == "solution" and new["source"] == "\n".join(lines) and not any(
                    "# BEGIN SOLUTION" in line for line in lines):
                notes.append(Note(where, first, "solution cell without solution markers: "
                                                "students see it in full (as in otter)"))
        elif inner == "solution" and cell.get("cell_type") == "markdown":
            notes.append(Note(where, first, "written (Markdown) solution: manual grading is not "
                                            "converted; left out so students do not see it"))
            continue
        cells_out.append(new)

    if blocks:
        raise OtterImportError(f"the {blocks[-1].upper()} block opened last is never closed")

    _merge_config_file(config, config_lines, config_cell, base_dir, notes)
    for key in config:
        line_no, line = _key_lines(config_lines, key)
        at = f"cell {config_cell}, line {line_no}"
        if key in OTTER_ONLY_KEYS:
            notes.append(Note(at, line, f"`{key}` is about otter's own output: not needed"))
        elif key not in ASSIGNMENT_KEYS | {"strip_solutions_from_all_cells"}:
            notes.append(Note(at, line, f"ASSIGNMENT CONFIG key `{key}` is not converted "
                                        "(dlgrade has no equivalent here): ignored"))
    tests_config = config.get("tests") or {}
    ok_format = bool(tests_config.get("ok_format", True)) if isinstance(tests_config,
                                                                        dict) else True
    if isinstance(tests_config, dict):
        for key in tests_config:
            if key not in ("ok_format", "files"):
                line_no, line = _key_lines(config_lines, key)
                notes.append(Note(f"cell {config_cell}, line {line_no}", line,
                                  f"tests key `{key}` is not converted: ignored"))
    generate = config.get("generate")
    hidden_visibility, points_possible = "hidden", None
    if isinstance(generate, dict):
        if generate.get("show_hidden"):
            hidden_visibility = "after_published"
        for key in generate:
            line_no, line = _key_lines(config_lines, key)
            at = f"cell {config_cell}, line {line_no}"
            if key == "zips" and generate[key]:
                notes.append(Note(at, line, "zips: a submission that is a zip holding the "
                                            "notebook is graded from the notebook inside it "
                                            "(dlgrade does so for every assignment)",
                                  converted=True))
            elif key not in ("show_hidden", "seed", "points_possible", "zips"):
                notes.append(Note(at, line, f"generate key `{key}` is not converted: ignored"))
        points_possible = generate.get("points_possible")
        if points_possible is not None:
            line_no, line = _key_lines(config_lines, "points_possible")
            if isinstance(points_possible, bool) or not isinstance(points_possible,
                                                                   (int, float)) \
                    or points_possible <= 0:
                notes.append(Note(f"cell {config_cell}, line {line_no}", line,
                                  "`points_possible` is not a positive number: ignored"))
                points_possible = None
    for cell, number, q in deferred_tests:
        _read_test(cell, number, q, ok_format, notes)
    for q in questions:
        if q.cases:
            _resolve_points(q, notes)
        elif not q.manual:
            notes.append(Note(f"cell {q.cell}", f"name: {q.name}",
                              "question without test cases: nothing to grade"))

    seed = config.get("seed")
    if seed is None and isinstance(generate, dict):
        seed = generate.get("seed")  # the older place of otter's intercell seed
    prefix, seed_variable = _seed_prefix(seed, notes, config_lines, config_cell)
    if seed_variable.get("student_value") is not None:
        pattern = re.compile(rf"^(\s*){re.escape(seed_variable['variable'])}\s*=\s*.*$")
        for cell in cells_out:
            if cell.get("cell_type") == "code":
                cell["source"] = "\n".join(
                    pattern.sub(rf"\g<1>{seed_variable['variable']} = "
                                f"{int(seed_variable['student_value'])}", line)
                    for line in _source_lines(cell))

    # dlgrade's own check() cell after each question with public cases.
    check_after = {question_end[q.name]: q.name for q in questions
                   if q.name in question_end and any(not c.hidden for c in q.cases)}
    final_cells = []
    for index, cell in enumerate(cells_out):
        final_cells.append(cell)
        if index in check_after:
            qname = check_after[index]
            check = nbformat.v4.new_code_cell(f"check({json.dumps(qname)}, {json.dumps(name)})")
            check.id = f"dlgrade-check-{_ident(qname)}"[:64]
            final_cells.append(check)
    if check_after:
        first_code = next((i for i, c in enumerate(final_cells) if c.cell_type == "code"),
                          len(final_cells))
        setup = nbformat.v4.new_code_cell("from autograder import check")
        setup.id = "dlgrade-import-check"
        final_cells.insert(first_code, setup)
    master = copy.deepcopy(nb)
    master.cells = final_cells
    master.nbformat, master.nbformat_minor = 4, max(master.get("nbformat_minor", 0), 5)
    seen: set[str] = set()
    for index, cell in enumerate(master.cells):
        if not cell.get("id") or cell["id"] in seen:
            cell["id"] = f"otter-{index:03d}"
        seen.add(cell["id"])
    master = nbformat.from_dict(master)
    files, student_files = [], []
    for key, into in (("files", files), ("student_files", student_files)):
        listed = config.get(key) or []
        if not isinstance(listed, list) or not all(isinstance(f, str) for f in listed):
            line_no, line = _key_lines(config_lines, key)
            notes.append(Note(f"cell {config_cell}, line {line_no}", line,
                              f"`{key}` is not a list of paths: ignored"))
            continue
        into += [f for f in listed if f not in into]
    if student_files:
        line_no, line = _key_lines(config_lines, "student_files")
        notes.append(Note(f"cell {config_cell}, line {line_no}", line,
                          "student_files are the student's: written by the notebook as it runs "
                          "in the worker, and read back from there for the tests (not copied "
                          "from beside the master)", converted=True))
    conv = Conversion(name=name, master=master, questions=questions, notes=notes,
                      cell_prefix=prefix, hidden_visibility=hidden_visibility,
                      title=str(config.get("name") or name), files=files,
                      points_possible=points_possible, student_files=student_files)
    conv.modules = master_imports(master)
    files += _helper_modules(conv.modules, base_dir, files, notes)
    requirements = config.get("requirements")
    if isinstance(requirements, str):
        conv.requirements_file = requirements
    elif isinstance(requirements, list) and all(isinstance(r, str) for r in requirements):
        conv.requirements = list(requirements)
    elif requirements is not None:
        line_no, line = _key_lines(config_lines, "requirements")
        notes.append(Note(f"cell {config_cell}, line {line_no}", line,
                          "`requirements` is neither a file nor a list of packages: ignored"))
    if mode == "auto":
        conv.mode, conv.mode_reason = _choose_mode(master, questions)
    else:
        conv.mode, conv.mode_reason = mode, "chosen on the command line"
    return conv


def _helper_modules(modules: dict, base_dir: Path | None, files: list[str],
                    notes: list[Note]) -> list[str]:
    """Modules the master imports that live beside it (``utils.py``, a package folder) and that
    ``files`` does not list: the notebook cannot load without them, so they are copied too."""
    if base_dir is None:
        return []
    listed = {Path(f).parts[0] for f in files if Path(f).parts}
    found = []
    for target in dict.fromkeys(m.split(":")[0].split(".")[0] for m in modules.values()):
        for candidate in (f"{target}.py", target):
            path = base_dir / candidate
            is_module = path.is_file() if candidate.endswith(".py") else \
                (path / "__init__.py").is_file()
            if is_module and candidate not in listed and candidate not in found:
                found.append(candidate)
                notes.append(Note("imports", f"import {target}",
                                  f"helper module {candidate} beside the master is not in "
                                  "otter's files: copied with the assignment all the same",
                                  converted=True))
    return found


def master_imports(master) -> dict:
    """Names the master's top-level imports bind, and what they are: ``import numpy as np``
    gives ``{"np": "numpy"}``, ``from math import sqrt`` gives ``{"sqrt": "math:sqrt"}``.
    Only whole-package names: ``import a.b`` binds ``a``."""
    from .notebook import extract_code

    found = {}
    for _number, code in extract_code(master).cells:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for stmt in tree.body:
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.asname:
                        found[alias.asname] = alias.name
                    else:
                        found[alias.name.split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
                for alias in stmt.names:
                    if alias.name != "*":
                        found[alias.asname or alias.name] = f"{stmt.module}:{alias.name}"
    return found


# ---- writing the assignment folder ------------------------------------------------------------

def _ident(name: str) -> str:
    ident = re.sub(r"\W+", "_", name).strip("_").lower() or "question"
    return ident if not ident[0].isdigit() else f"q_{ident}"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _case_literal(case: Case, function: str | None = None) -> str:
    extra = ""
    if case.success_message:
        extra += f",\n                success_message={str(case.success_message)!r}"
    if case.failure_message:
        extra += f",\n                failure_message={str(case.failure_message)!r}"
    if case.kind == "doctest":
        return (f"    DoctestCase({case.name!r}, {case.source!r},\n"
                f"                want={case.want!r}, points={_number(case.points)}{extra}),")
    return (f"    FunctionCase({case.name!r}, {function}, "
            f"points={_number(case.points)}{extra}),")


def _function_source(case: Case, new_name: str) -> str:
    """The test function as written in the master, renamed so pytest does not collect it."""
    lines = case.source.splitlines()
    tree = ast.parse(case.source)
    func = tree.body[0]
    row = func.lineno - 1
    lines[row] = re.sub(rf"\bdef\s+{re.escape(func.name)}\b", f"def {new_name}", lines[row],
                        count=1)
    return "\n".join(lines)


def _idents(questions: list[Question]) -> dict[str, str]:
    """A distinct Python name for every question (``q1.a`` and ``q1_a`` both exist in the wild)."""
    out: dict[str, str] = {}
    for q in questions:
        ident, n = _ident(q.name), 2
        while ident in out.values():
            ident, n = f"{_ident(q.name)}_{n}", n + 1
        out[q.name] = ident
    return out


def _imports(conv: Conversion, cases, runner: str) -> str:
    kinds = sorted({"DoctestCase" if c.kind == "doctest" else "FunctionCase" for c in cases})
    return f"from autograder.otter_import import {', '.join(kinds + [runner])}"


def _functions(ident: str, q: Question, cases) -> tuple[list[str], dict[str, str]]:
    """The exception-style test functions as written, renamed so pytest does not collect them."""
    blocks, names = [], {}
    for n, case in enumerate(q.cases, start=1):
        if case.kind == "function" and case in cases:
            names[case.name] = f"_{ident}_case_{n}"
            blocks.append(f"# master notebook cell {case.cell}\n"
                          + _function_source(case, names[case.name]))
    return blocks, names


def _case_list(var: str, cases, names) -> str:
    return "\n".join([f"{var} = ["] + [_case_literal(c, names.get(c.name)) for c in cases]
                     + ["]"])


def render_tests(conv: Conversion, master_name: str, case_time_limit: float,
                 files: list[str] = ()) -> str:
    cases = [c for q in conv.questions for c in q.cases]
    sections = ["\n".join([
        f'"""Tests of {conv.name}, converted from the otter master notebook {master_name} by',
        "`dlgrade import-otter`: each otter test case is a part of a test and earns its points.",
        "",
        "Both kinds of case run here, in the grader, on the notebook's values: doctest-style",
        "cells with the master's imports below as their modules, exception-style test functions",
        "as written (see autograder.otter_import). Re-importing overwrites this file.",
        '"""',
        *(["from pathlib import Path", ""] if files or conv.student_files else []),
        "import pytest",
        "",
        _imports(conv, cases, "run_question"),
        "",
        f"MODULES = {json.dumps(conv.modules, sort_keys=True)}",
        *([
            "# The working directory the cases run in: the assignment's files (from this",
            "# folder) and the files the notebook wrote (otter's student_files, read back).",
            "FOLDER = Path(__file__).resolve().parents[1]",
            f"DATA_FILES = {json.dumps(list(files))}",
            f"STUDENT_FILES = {json.dumps(conv.student_files)}"]
          if files or conv.student_files else [])])]
    idents = _idents(conv.questions)
    for q in conv.questions:
        if not q.cases:
            continue
        ident = idents[q.name]
        sections.append(f"# ---- {q.name} (master notebook cell {q.cell}) ".ljust(99, "-"))
        blocks, names = _functions(ident, q, q.cases)
        sections += blocks
        groups = ([("", q.cases)] if q.all_or_nothing else
                  [("public", [c for c in q.cases if not c.hidden]),
                   ("hidden", [c for c in q.cases if c.hidden])])
        for label, group in groups:
            if not group:
                continue
            var = f"{ident}_{label}_cases".replace("__", "_").upper()
            marks = [f"@pytest.mark.points({_number(round(sum(c.points for c in group), 10))})"]
            if any(c.hidden for c in group):
                marks.append(f"@pytest.mark.{conv.hidden_visibility}")
            marks.append(f"@pytest.mark.time_limit({case_time_limit * len(group):g})")
            marks.append(f"@pytest.mark.covers({json.dumps(q.name)})")
            title = f"{q.name}: {label} tests" if label else f"{q.name} (all or nothing)"
            aon = ", all_or_nothing=True" if q.all_or_nothing else ""
            sections.append(_case_list(var, group, names))
            sections.append("\n".join(marks + [
                f"def test_{ident}_{label}".rstrip("_") + "(student, partial):",
                f'    """{title}"""',
                f"    run_question(student, partial, {var}{aon}, modules=MODULES"
                + (", files=(FOLDER, DATA_FILES, STUDENT_FILES))"
                   if files or conv.student_files else ")")]))
    return "\n\n\n".join(sections) + "\n"


def render_public_checks(conv: Conversion) -> str:
    public = [c for q in conv.questions for c in q.cases if not c.hidden]
    sections = ["\n".join([
        f'"""Public checks of {conv.name}: the public otter test cases of each question, run in',
        'your notebook with `check("question")`."""',
        _imports(conv, public, "run_public_cases"),
        "from autograder.public import public_check"])]
    idents = _idents(conv.questions)
    for q in conv.questions:
        cases = [c for c in q.cases if not c.hidden]
        if not cases:
            continue
        ident = idents[q.name]
        blocks, names = _functions(ident, q, cases)
        var = f"{ident}_cases".upper()
        sections += blocks + [_case_list(var, cases, names), "\n".join([
            f"@public_check({json.dumps(q.name)})", f"def check_{ident}(impl):",
            f'    """{q.name}: public tests"""', f"    run_public_cases(impl, {var})"])]
    return "\n\n\n".join(sections) + "\n"


MUTANTS_TEMPLATE = '''"""Known mistakes in {name}, for `dlgrade audit`: otter has none to convert.

Add some (see autograder/mutants.py) to prove that the converted tests catch them.
"""
from autograder.mutants import Mutant  # noqa: F401

MUTANTS: list = []
'''


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def render_toml(conv: Conversion, master_rel: str, case_time_limit: float,
                files: list[str] = ()) -> str:
    lines = ["# Converted from an otter master notebook by `dlgrade import-otter`.",
             f"name = {_toml_str(conv.name)}",
             f"title = {_toml_str(conv.title)}",
             f"master = {_toml_str(master_rel)}",
             f"# {conv.mode_reason}",
             f"mode = {_toml_str(conv.mode)}",
             f"time_limit = {case_time_limit:g}",
             "total_time_limit = 600",
             f"load_time_limit = {60 if conv.mode == 'all' else 30}",
             "# No known-mistake mutants come from otter; add mutants.py to audit the tests.",
             "min_mutants = 0"]
    if conv.cell_prefix:
        lines += ["# otter's intercell seeding: run before every notebook cell",
                  f"cell_prefix = {_toml_str(conv.cell_prefix)}"]
    if files:
        lines += ["# otter's files and student_files: in the worker's working directory",
                  f"files = [{', '.join(_toml_str(f) for f in files)}]"]
    if conv.points_possible is not None:
        lines += ["# otter's points_possible: the total is scaled to it",
                  f"points_possible = {_number(conv.points_possible)}"]
    if conv.requirements:
        lines += ["# otter's requirements: installed by the Gradescope setup, checked when grading",
                  f"requirements = [{', '.join(_toml_str(r) for r in conv.requirements)}]"]
    return "\n".join(lines) + "\n"


def read_requirements(path: Path) -> list[str]:
    """The package lines of a requirements file (comments, blank lines and pip options are
    not packages)."""
    if not path.is_file():
        raise OtterImportError(f"requirements file {path} does not exist (copy it beside the "
                               "master notebook)")
    found = []
    for line in path.read_text().splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith(("#", "-")):
            found.append(line)
    return found


def copy_files(conv: Conversion, source: Path, out: Path) -> list[str]:
    """Copy otter's ``files`` (files or folders beside the master) into the assignment folder;
    returns every file, relative, for assignment.toml."""
    copied = []
    for entry in conv.files:
        rel = Path(entry)
        path = source / rel
        if rel.is_absolute() or ".." in rel.parts:
            raise OtterImportError(f"files entry {entry!r}: only paths beside the master "
                                   "notebook can be converted")
        if not path.exists():
            raise OtterImportError(f"files entry {entry!r}: {path} does not exist (copy it "
                                   "beside the master notebook)")
        found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in found:
            name = file.relative_to(source)
            if any(part.startswith(".") or part == "__pycache__" for part in name.parts):
                continue
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, out / name)
            copied.append(name.as_posix())
    return copied


def render_report(conv: Conversion, master_path: Path, checks: list[str]) -> str:
    total = conv.total_points
    cases = sum(len(q.cases) for q in conv.questions)
    hidden = sum(c.hidden for q in conv.questions for c in q.cases)
    lines = [f"# otter import: {conv.name}", "",
             f"From `{master_path.name}`: {len(conv.questions)} questions, {cases} test cases "
             f"({hidden} hidden), {total:g} points. Mode `{conv.mode}`: {conv.mode_reason}.", ""]
    for q in conv.questions:
        pts = sum(c.points for c in q.cases)
        lines.append(f"- {q.name}: {len(q.cases)} case{'s' * (len(q.cases) != 1)}, "
                     f"{pts:g} point{'s' * (pts != 1)}"
                     + (" (all or nothing)" if q.all_or_nothing else ""))
    skipped = [n for n in conv.notes if not n.converted]
    changed = [n for n in conv.notes if n.converted]
    lines += ["", "## Not converted", ""]
    lines += [n.render() for n in skipped] or ["Nothing: every line was converted."]
    lines += ["", "## Converted with a difference", ""]
    lines += [n.render() for n in changed] or ["None."]
    if checks:
        lines += ["", "## Self-check", ""] + checks
    return "\n".join(lines) + "\n"


@dataclass
class ImportResult:
    directory: Path
    conversion: Conversion
    report: str
    ok: bool
    master_score: tuple[float, float] | None = None
    skeleton_score: tuple[float, float] | None = None


def import_otter(master_path: Path, out: Path, *, name: str | None = None, mode: str = "auto",
                 case_time_limit: float = 10.0, self_check: bool = True,
                 force: bool = False) -> ImportResult:
    """Write the assignment folder; with ``self_check``, grade the master (every case must
    pass) and the student notebook with dlgrade and add the scores to the report."""
    import nbformat

    from .release import write_skeleton

    master_path = Path(master_path)
    out = Path(out)
    name = name or out.name
    if not re.fullmatch(r"[A-Za-z_][\w-]*", name):
        raise OtterImportError(f"assignment name {name!r}: use letters, digits, _ and -")
    if out.exists() and any(out.iterdir()) and not force:
        raise OtterImportError(f"{out} exists and is not empty (pass --force to overwrite)")
    try:
        nb = nbformat.read(master_path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds
        raise OtterImportError(f"cannot read {master_path}: {exc}") from None
    conv = convert(nb, name, mode=mode, base_dir=master_path.parent)
    if not any(q.cases for q in conv.questions):
        raise OtterImportError(f"{master_path.name} has no otter test cases to convert")
    (out / "master").mkdir(parents=True, exist_ok=True)
    (out / "tests").mkdir(exist_ok=True)
    master_rel = f"master/{name}.ipynb"
    nbformat.write(conv.master, out / master_rel)
    write_skeleton(out / master_rel, out / f"{name}.ipynb")
    files = copy_files(conv, master_path.parent, out)
    (out / "tests" / f"test_{_ident(name)}.py").write_text(
        render_tests(conv, master_path.name, case_time_limit, files))
    (out / "public_checks.py").write_text(render_public_checks(conv))
    if conv.requirements_file:
        conv.requirements += read_requirements(master_path.parent / conv.requirements_file)
    (out / "assignment.toml").write_text(render_toml(conv, master_rel, case_time_limit, files))
    mutants = out / "mutants.py"
    if not mutants.exists():  # the instructor's own, kept across re-imports
        mutants.write_text(MUTANTS_TEMPLATE.format(name=name))
    checks, ok = [], True
    result = ImportResult(out, conv, "", True)
    if self_check:
        from .assignment import load_assignment
        from .grade import grade_notebook

        assignment = load_assignment(str(out))
        run = grade_notebook(assignment.master, assignment)
        res = run.results
        result.master_score = (res.score, res.max_score)
        failed = [t for t in res.tests if t.status != "passed"]
        ok = not failed and not run.grader_error and bool(res.tests)
        checks.append(f"- master notebook: {res.score:g} / {res.max_score:g}"
                      + ("" if ok else " (every converted case should pass on the master)"))
        for t in failed:
            first = "\n".join(t.output.strip().splitlines()[:6])
            checks.append(f"  - {t.name}: {_indent(first, 600).strip()}")
        if run.grader_error or not res.tests:
            checks.append(f"  - grader error: {res.output.strip()[:600]}")
        skeleton = grade_notebook(assignment.skeleton, assignment)
        result.skeleton_score = (skeleton.results.score, skeleton.results.max_score)
        checks.append(f"- student notebook (no work done): {skeleton.results.score:g} / "
                      f"{skeleton.results.max_score:g}")
    result.ok = ok
    result.report = render_report(conv, master_path, checks)
    (out / "otter-import-report.md").write_text(result.report)
    return result
