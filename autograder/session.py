"""The grader's handle on one student's code: load it into a worker, call into it, restart it.

Tests see the student through :class:`StudentNamespace` (``student.affine_forward(x, w, b)``)
and get back plain data or :class:`StudentObject` proxies for objects that stay in the worker.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .sandbox import InfrastructureError, Sandbox, SandboxConfig, WorkerError
from .wire import RemoteRef


class StudentCodeError(Exception):
    """Student code raised; carries the student's own traceback."""

    def __init__(self, what: str, exc_type: str, message: str, traceback: str, hint: str = ""):
        self.what, self.exc_type, self.message = what, exc_type, message
        self.traceback, self.hint = traceback, hint
        super().__init__(f"{what} raised {exc_type}: {message}")


class StudentTimeout(Exception):
    def __init__(self, what: str, limit: float):
        self.what, self.limit = what, limit
        super().__init__(f"{what} did not finish within the {limit:g} s time limit of this test "
                         "(an infinite loop, or much slower than needed?)")


class StudentCrash(Exception):
    def __init__(self, what: str, cause: str):
        self.what, self.cause = what, cause
        super().__init__(f"{cause} while running {what}: the process running your code died "
                         "(os._exit/sys.exit, a segfault, or memory exhaustion?)")


@dataclass
class LoadReport:
    problems: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    defined: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = list(self.notes)
        for p in self.problems:
            where = f"cell {p['cell']}" + (f", line {p['line']}" if p.get("line") else "")
            lines.append(f"{where}: {p['kind']}: {p['message']}")
        return "\n".join(lines)

    def hint_for_missing(self, name: str) -> str:
        for item in self.skipped:
            if name in item["names"]:
                return (f"{name!r} is assigned by top-level code in cell {item['cell']} (line "
                        f"{item['line']}), which is not run when grading: only imports, functions,"
                        " classes and simple constants are. Move it inside the function that "
                        "needs it.")
        if self.problems:
            return "These cells failed to load, which may explain it:\n" + self.summary()
        return f"define {name} in your notebook with exactly this name"


class StudentSession:
    """Owns the worker for one submission; restarts it (and reloads the code) after a crash."""

    def __init__(self, cells, *, mode: str, forbidden: list[str], assignment: str,
                 sandbox_config: SandboxConfig, load_time_limit: float = 30.0, notes=(),
                 cell_prefix: str = ""):
        self.cells = cells
        self.cell_prefix = cell_prefix
        self.mode = mode
        self.forbidden = forbidden
        self.assignment = assignment
        self.sandbox = Sandbox(sandbox_config)
        self.load_time_limit = load_time_limit
        self.report = LoadReport(notes=list(notes))
        self.bad_cells: set[int] = set()
        self.deadline: float | None = None
        self.limit = 0.0
        self.seed = 0
        self._seeded_epoch = -1
        # While a test runs: every call's inputs and result, for naming known mistakes.
        self.recorder: list | None = None
        self.epoch = 0  # bumps on every worker (re)start; handles die with their worker
        self.worker_starts = 0
        self.probe: dict = {}

    # ---- lifecycle -------------------------------------------------------------------
    def start(self, probe_paths=()):
        first = self.worker_starts == 0
        try:
            self.sandbox.start()
        except InfrastructureError:
            self.sandbox.start()  # one retry: a worker that never said "ready" is not a 0
        self.worker_starts += 1
        self.epoch += 1
        if first:
            self.probe = self.sandbox.request("probe", {"paths": [str(p) for p in probe_paths]},
                                              10)["value"]
        self._load(first)

    def _load(self, record: bool):
        """Load cell by cell, so a cell that hangs or kills the worker costs only that cell."""
        pending = [c for c in self.cells if c[0] not in self.bad_cells]
        for index, (number, code) in enumerate(pending):
            try:
                reply = self.sandbox.request(
                    "load", {"cells": [(number, code)], "mode": self.mode,
                             "forbidden": self.forbidden if index == 0 else [],
                             "assignment": self.assignment, "prefix": self.cell_prefix},
                    self.load_time_limit)
            except WorkerError as exc:
                self.bad_cells.add(number)
                if record:
                    cause = ("did not finish loading within "
                             f"{self.load_time_limit:g} s" if exc.kind == "timeout" else str(exc))
                    self.report.problems.append(
                        {"cell": number, "kind": "LoadFailure",
                         "message": f"{cause}; the cell was skipped", "line": None})
                self.sandbox.start()
                return self._load(record)  # start over without the bad cell
            value = reply["value"]
            if record:
                self.report.problems += value["problems"]
                self.report.skipped += value["skipped"]
                self.report.defined = value["defined"]

    def close(self):
        self.sandbox.close()

    # ---- per-test state ----------------------------------------------------------------
    def begin_test(self, seed: int, limit: float):
        self.seed = seed
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self._seeded_epoch = -1

    def end_test(self):
        self.deadline = None

    def _remaining(self) -> float:
        if self.deadline is None:
            return 60.0
        return max(0.0, self.deadline - time.monotonic())

    def request(self, op: str, params: dict, what: str):
        if not self.sandbox.alive:
            self.start()
            if self.deadline is not None:
                # Reloading the notebook after a crash is the grader's cost, not the test's.
                self.deadline = time.monotonic() + self.limit
        try:
            if self._seeded_epoch != self.epoch:
                self.sandbox.request("seed", {"seed": self.seed}, max(self._remaining(), 1.0))
                self._seeded_epoch = self.epoch
            remaining = self._remaining()
            if remaining <= 0:
                raise StudentTimeout(what, self.limit)
            reply = self.sandbox.request(op, params, remaining)
        except WorkerError as exc:
            if exc.kind == "timeout":
                raise StudentTimeout(what, self.limit) from None
            raise StudentCrash(what, str(exc)) from None
        except InfrastructureError:
            raise
        return self._finish(reply, op, params, what)

    def _finish(self, reply: dict, op: str, params: dict, what: str):
        if reply["ok"]:
            return self._wrap(reply["value"])
        err = reply["error"]
        hint = ""
        if err["type"] == "NameError" and op == "call" and "name" in params.get("target", {}):
            name = params["target"]["name"]
            if f"'{name}'" in err["message"] and not err["traceback"].count("cell["):
                hint = self.report.hint_for_missing(name)
        elif err["type"] == "UnsupportedReturnType":
            hint = ("The grader accepts numbers, strings, numpy arrays of numbers (not of dtype "
                    "object), and tuples, lists and dicts of these.")
        elif "CUDA" in err["message"] and self.sandbox.config.device == "cpu":
            hint = ("Your code is graded on a machine without a GPU: put new tensors on the "
                    "device of the inputs (x.device) instead of calling .cuda() or naming 'cuda'.")
        raise StudentCodeError(what, err["type"], err["message"], err["traceback"], hint)

    def _wrap(self, value):
        if isinstance(value, RemoteRef):
            return StudentObject(self, value, self.epoch)
        if type(value) is tuple:
            return tuple(self._wrap(v) for v in value)
        if type(value) is list:
            return [self._wrap(v) for v in value]
        if type(value) is dict:
            return {k: self._wrap(v) for k, v in value.items()}
        return value


class InProcessSession(StudentSession):
    """The student side run in this process on trusted code (the reference): the same
    requests, encodings and proxies as a real worker, without the process. For baselines and
    audits, never for student code."""

    def __init__(self, module, name: str = "reference"):
        from .worker import Worker

        self.assignment = name
        self.report = LoadReport()
        self.recorder = None
        self.epoch = 1
        self.deadline = None
        self.limit = 0.0
        self.seed = 0
        self.worker = Worker(-1, -1)
        self.worker.namespace = module.__dict__

    def start(self, probe_paths=()):
        pass

    def close(self):
        pass

    def begin_test(self, seed: int, limit: float):
        self.seed, self.limit = seed, limit
        self.worker.op_seed(seed)

    def request(self, op: str, params: dict, what: str):
        import io

        from .wire import encode_request, read_message
        from .worker import frame, read_request

        request = io.BytesIO(encode_request(op, params))
        reply, buffers = self.worker.handle(*read_request(request.read))
        answer = io.BytesIO(frame(reply, buffers))
        return self._finish(read_message(answer.read), op, params, what)


class WorkerFactory:
    """``make("torch.optim.Adam", model.parameters(), lr=1e-3)``: a trusted object (optimizer,
    copy, data sampler; see ``worker.trusted_factory``) built inside the student's worker."""

    def __init__(self, session: StudentSession):
        self._session = session

    def __call__(self, factory: str, *args, **kwargs):
        return self._session.request(
            "make", {"factory": factory, "args": list(args), "kwargs": kwargs},
            f"building {factory}")


class LocalFactory:
    """In-process stand-in for WorkerFactory."""

    def __call__(self, factory: str, *args, **kwargs):
        from .worker import trusted_factory

        return trusted_factory(factory)(*args, **kwargs)


class StudentFunction:
    """A name in the student's notebook; calling it runs it in the worker."""

    def __init__(self, session: StudentSession, name: str):
        self._session, self._name = session, name

    def _recorded(self, kind, op, params, args, kwargs, extra=None):
        recorder = self._session.recorder
        if recorder is None:
            return self._session.request(op, params, self._name)
        from .diagnose import CallRecord, Lineage, NotReplayable, snapshot

        try:
            saved = (snapshot(list(args)), snapshot(kwargs), snapshot(extra or {}))
        except NotReplayable:
            saved = None
        start = time.monotonic()
        result = self._session.request(op, params, self._name)
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

    def _log(self, op_builder):
        """Add an operation to this object's lineage (or mark it unreplayable)."""
        lineage = self._recordable()
        if lineage is None:
            return
        from .diagnose import NotReplayable

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

        self._log(lambda: ("set", self._path, name, snapshot(value)))

    def __call__(self, *args, **kwargs):
        what = self._label
        self._check_alive(what)
        lineage = self._recordable()
        saved = None
        if lineage is not None:
            from .diagnose import NotReplayable, snapshot

            try:
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
