"""The runtime of converted otter tests: what the generated ``tests/test_NAME.py`` and
``public_checks.py`` import (``DoctestCase``, ``FunctionCase``, ``run_question``,
``run_public_cases``).

Every case runs in dlgrade's trusted grader, never in the student's process. A doctest-style
case (a test cell and the output the master showed) is evaluated here as Jupyter would in the
notebook: the master's imports are the grader's own modules, builtins are the grader's, and
the notebook's values are fetched as data (functions and objects as proxies whose calls run in
the worker); the output is formatted and compared here, so neither the expected output nor the
case's source reaches the worker. An exception-style case (``def test_q1(x): assert ...``)
runs here on the notebook's values of its argument names. Nothing is unpickled, and every case
has a time limit.
"""
from __future__ import annotations

import ast
import builtins
import inspect
import linecache
import os
import shutil
import tempfile
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
    from ..values import TensorValue

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
        from ..proxies import StudentObject

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
    from ..student_errors import StudentCodeError

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
    from ..proxies import StudentObject

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
        from ..student_errors import StudentCodeError

        obj = object.__getattribute__(self, "_obj")
        try:
            return _wrap(obj(*_unwrap(args), **_unwrap(kwargs)))
        except StudentCodeError as exc:
            raise _as_builtin(exc) from None

    def _dunder(self, name, *args):
        from ..student_errors import StudentCodeError

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
    from ..plugin import describe_exception
    from ..student_errors import StudentCodeError, StudentCrash, StudentTimeout

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
    from ..plugin import describe_exception
    from ..student_errors import StudentCodeError, StudentCrash, StudentTimeout
    from ..worker import run_cell

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
    from ..checks import CheckFailure

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
        from ..worker import run_cell

        printed, has_value, value = run_cell(source, self.namespace)
        return {"printed": printed, "kind": "plain" if has_value else "none", "value": value}


def run_public_cases(impl, cases) -> None:
    """For ``public_checks.py``: run the public cases on the student's notebook namespace."""
    from ..checks import CheckFailure

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
