"""How hidden tests see the student's code: ``student.affine_forward(x, w, b)`` and the objects
it returns are proxies whose calls and attribute reads become requests of the student's session;
``make(...)`` builds trusted objects in the worker. The Local* classes are the same interface
over a module in this process (trusted code: references, benchmarks)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from .student_errors import StudentCodeError, StudentCrash
from .values import RemoteRef

if TYPE_CHECKING:
    from .session import StudentSession


class WorkerFactory:
    """``make("torch.optim.Adam", model.parameters(), lr=1e-3)``: a trusted object (optimizer,
    copy, or one of the assignment's worker_objects.py; see ``worker.trusted_factory``) built
    inside the student's worker."""

    def __init__(self, session: StudentSession):
        self._session = session

    def __call__(self, factory: str, *args, **kwargs):
        return self._session.request(
            "make", {"factory": factory, "args": list(args), "kwargs": kwargs},
            f"building {factory}")


class LocalFactory:
    """In-process stand-in for WorkerFactory; ``directory``: the assignment folder whose
    worker_objects.py it builds from too."""

    def __init__(self, directory: Path | None = None):
        from .assignment import worker_objects_of
        from .worker import load_worker_objects

        found = worker_objects_of(directory) if directory is not None else None
        self._objects = load_worker_objects(found[1], found[0]) if found else {}

    def __call__(self, factory: str, *args, **kwargs):
        from .worker import trusted_factory

        return trusted_factory(factory, self._objects)(*args, **kwargs)


class StudentFunction:
    """A name in the student's notebook; calling it runs it in the worker."""

    def __init__(self, session: StudentSession, name: str):
        self._session, self._name = session, name

    def _recorded(self, kind, op, params, args, kwargs, extra=None):
        recorder = self._session.recorder
        if recorder is None:
            return self._session.request(op, params, self._name)
        from .diagnose import CallRecord, Lineage, NotReplayable, snapshot

        saved = None
        if recorder.fits(args, kwargs, extra):  # no copy of what could never be kept
            try:
                saved = (snapshot(list(args)), snapshot(kwargs), snapshot(extra or {}))
            except NotReplayable:
                pass
        start = time.monotonic()
        try:
            result = self._session.request(op, params, self._name)
        except StudentCodeError as exc:
            if saved is not None:  # a mistake that crashes can be named too
                from .diagnose import Raised

                recorder.append(CallRecord(self._name, kind, saved[0], saved[1],
                                           Raised(exc.exc_type, exc.message),
                                           time.monotonic() - start,
                                           saved[2]))
            raise
        if saved is not None:
            recorder.append(CallRecord(self._name, kind, saved[0], saved[1], result,
                                       time.monotonic() - start, saved[2]))
            if isinstance(result, StudentObject) and kind == "call":
                object.__setattr__(result, "_lineage", Lineage(self._name, saved[0], saved[1]))
        return result

    def __call__(self, *args, **kwargs):
        return self._recorded(
            "call", "call",
            {"target": {"name": self._name}, "args": list(args), "kwargs": kwargs}, args, kwargs)

    def call_returning_args(self, *args, **kwargs):
        """Call, and also return the arguments as the worker saw them afterwards."""
        return self._recorded(
            "call_returning_args", "call",
            {"target": {"name": self._name}, "args": list(args), "kwargs": kwargs,
             "return_args": True}, args, kwargs)

    def grad_call(self, *args, upstream=None, output_index=None, **kwargs):
        """Call with torch tensors and backpropagate in the worker: ``(out, grads)``."""
        return self._recorded(
            "grad_call", "grad_call",
            {"target": {"name": self._name}, "args": list(args), "kwargs": kwargs,
             "upstream": upstream, "output_index": output_index}, args, kwargs,
            {"upstream": upstream, "output_index": output_index})

    def __repr__(self):
        return f"<student function {self._name}>"


class StudentNamespace:
    """``student.NAME``: functions and classes from the submitted notebook."""

    def __init__(self, session: StudentSession):
        self._session = session

    def __getattr__(self, name: str) -> StudentFunction:
        if name.startswith("_"):
            raise AttributeError(name)
        return StudentFunction(self._session, name)

    def value(self, name: str):
        return self._session.request("get", {"target": {"name": name}}, name)

    def exec_cell(self, source: str, what: str = "the test cell"):
        """Run trusted test code in the student's namespace like a notebook cell (otter's
        doctest cases): ``{"printed", "kind", "value" or "text"}``, compared by the caller."""
        return self._session.request("exec_cell", {"source": source}, what)

    def read_file(self, name: str) -> bytes | None:
        """A file the notebook wrote in its working directory, read by the worker (so only
        what student code could read anyway); None where it has none."""
        import numpy as np

        value = self._session.request("read_file", {"name": name}, f"reading {name}")
        if value is None:
            return None
        if not isinstance(value, np.ndarray) or value.dtype != np.uint8 or value.ndim != 1:
            raise StudentCodeError(f"reading {name}", "ProtocolError",
                                   "the worker's reply is not the file's bytes", "", "")
        return value.tobytes()


class StudentObject:
    """An object living in the worker. Attribute reads fetch plain data; writes send it."""

    def __init__(self, session: StudentSession, ref: RemoteRef, epoch: int):
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_dlgrade_ref", ref)
        object.__setattr__(self, "_epoch", epoch)
        object.__setattr__(self, "_label", ref.type_name)
        # Set when the grader can rebuild this object (see diagnose.Lineage); _path leads from
        # the rebuilt object to this one (a method or attribute of it).
        object.__setattr__(self, "_lineage", None)
        object.__setattr__(self, "_path", ())

    def _check_alive(self, what):
        if self._epoch != self._session.epoch:
            raise StudentCrash(what, "an earlier crash or timeout lost this object")

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        what = f"{self._label}.{name}"
        self._check_alive(what)
        start = time.monotonic()
        value = self._session.request(
            "get", {"target": {"handle": self._dlgrade_ref.handle, "path": [name]}}, what)
        lineage = self._recordable()
        if isinstance(value, StudentObject):
            object.__setattr__(value, "_label", what)
            if lineage is not None:
                object.__setattr__(value, "_lineage", lineage)
                object.__setattr__(value, "_path", self._path + (name,))
        elif lineage is not None:
            from .diagnose import CallRecord

            self._session.recorder.append(CallRecord(
                what, "object_get", [], {}, value, time.monotonic() - start,
                lineage=lineage, upto=len(lineage.log), path=self._path + (name,)))
        return value

    def _recordable(self):
        lineage = self._lineage
        if self._session.recorder is None or lineage is None or not lineage.replayable:
            return None
        return lineage

    def _log(self, op_builder, *values):
        """Add an operation to this object's lineage (or mark it unreplayable); ``values``:
        what ``op_builder`` copies, too large to copy past the recording cap."""
        lineage = self._recordable()
        if lineage is None:
            return
        from .diagnose import NotReplayable

        if not self._session.recorder.fits(*values):
            lineage.replayable = False
            return
        try:
            lineage.append(op_builder())
        except NotReplayable:
            lineage.replayable = False

    def __setattr__(self, name: str, value):
        what = f"setting {self._label}.{name}"
        self._check_alive(what)
        self._session.request("set", {"target": {"handle": self._dlgrade_ref.handle},
                                      "attr": name, "value": value}, what)
        from .diagnose import snapshot

        self._log(lambda: ("set", self._path, name, snapshot(value)), value)

    def __call__(self, *args, **kwargs):
        what = self._label
        self._check_alive(what)
        lineage = self._recordable()
        saved = None
        if lineage is not None:
            from .diagnose import NotReplayable, snapshot

            try:
                if not self._session.recorder.fits(args, kwargs):
                    raise NotReplayable
                saved = (snapshot(list(args)), snapshot(kwargs))
            except NotReplayable:
                lineage.replayable = False
        start = time.monotonic()
        result = self._session.request(
            "call", {"target": {"handle": self._dlgrade_ref.handle}, "args": list(args),
                     "kwargs": kwargs}, what)
        if saved is not None and lineage.replayable:
            from .diagnose import CallRecord

            self._session.recorder.append(CallRecord(
                what, "object_call", saved[0], saved[1], result, time.monotonic() - start,
                lineage=lineage, upto=len(lineage.log), path=self._path))
            # The call may change the object's state: later replays must repeat it.
            lineage.append(("call", self._path, saved[0], saved[1]))
        return result

    def __repr__(self):
        return f"<student {self._label} object>"


class LocalFunction:
    """In-process stand-in for StudentFunction (benchmarks, audits of the reference)."""

    def __init__(self, fn, name: str):
        self._fn, self._name = fn, name

    def __call__(self, *args, **kwargs):
        return self._fn(*args, **kwargs)

    def call_returning_args(self, *args, **kwargs):
        result = self._fn(*args, **kwargs)
        return result, list(args), kwargs


class LocalNamespace:
    """The same interface as StudentNamespace over a module in this process."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self._module, name)
        return LocalFunction(value, name) if callable(value) and not isinstance(value, type) \
            else value

    def value(self, name: str):
        return getattr(self._module, name)

    def exec_cell(self, source: str, what: str = "the test cell"):
        from .worker import run_cell

        printed, has_value, value = run_cell(source, self._module.__dict__)
        return {"printed": printed, "kind": "plain" if has_value else "none", "value": value}

    def read_file(self, name: str) -> bytes | None:
        """In-process (trusted code): the file in this process's working directory."""
        path = Path(name)
        return path.read_bytes() if not path.is_absolute() and path.is_file() else None
