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

    def __call__(self, *args, **kwargs):
        return self._session.request(
            "call", {"target": {"name": self._name}, "args": list(args), "kwargs": kwargs},
            self._name)

    def call_returning_args(self, *args, **kwargs):
        """Call, and also return the arguments as the worker saw them afterwards."""
        return self._session.request(
            "call", {"target": {"name": self._name}, "args": list(args), "kwargs": kwargs,
                     "return_args": True}, self._name)

    def grad_call(self, *args, upstream=None, output_index=None, **kwargs):
        """Call with torch tensors and backpropagate in the worker: ``(out, grads)``."""
        return self._session.request(
            "grad_call", {"target": {"name": self._name}, "args": list(args), "kwargs": kwargs,
                          "upstream": upstream, "output_index": output_index}, self._name)

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

    def _check_alive(self, what):
        if self._epoch != self._session.epoch:
            raise StudentCrash(what, "an earlier crash or timeout lost this object")

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        what = f"{self._label}.{name}"
        self._check_alive(what)
        value = self._session.request(
            "get", {"target": {"handle": self._dlgrade_ref.handle, "path": [name]}}, what)
        if isinstance(value, StudentObject):
            object.__setattr__(value, "_label", what)
        return value

    def __setattr__(self, name: str, value):
        what = f"setting {self._label}.{name}"
        self._check_alive(what)
        self._session.request("set", {"target": {"handle": self._dlgrade_ref.handle},
                                      "attr": name, "value": value}, what)

    def __call__(self, *args, **kwargs):
        what = self._label
        self._check_alive(what)
        return self._session.request(
            "call", {"target": {"handle": self._dlgrade_ref.handle}, "args": list(args),
                     "kwargs": kwargs}, what)

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
