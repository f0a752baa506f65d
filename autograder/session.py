"""The grader's handle on one student's code: load it into a worker, call into it, restart it.

A session speaks to its worker through a transport: a :class:`~autograder.sandbox.Sandbox` (the
student's confined process) or, for trusted code, :class:`~autograder.in_process.InProcessWorker`.
Tests see the student through the proxies of :mod:`autograder.proxies`
(``student.affine_forward(x, w, b)``), which turn into this session's requests.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Protocol

from .proxies import StudentObject
from .sandbox import InfrastructureError, WorkerError
from .student_errors import StudentCodeError, StudentCrash, StudentTimeout
from .values import RemoteRef
from .wire import ProtocolError

# A load reply is the worker's word, so the student's: its fields are checked and cut to these.
MAX_LOAD_ITEMS = 1000  # problems, skipped statements or names, per cell
MAX_KIND_CHARS = 200
MAX_MESSAGE_CHARS = 2000
MAX_TRACEBACK_CHARS = 6000
MAX_NAME_CHARS = 200
# Without a total load limit, this many times the per-cell limit. A notebook's definitions load
# in a second or two, so three cells at the per-cell limit are already abnormal; and as the
# last cell started may run its own limit on top, a load ends within 4 x load_time_limit, the
# time batch.py allows it.
TOTAL_LOAD_FACTOR = 3


class Transport(Protocol):
    """A worker as a session uses it; a request answers ``{"ok", "value" | "error"}`` or raises
    WorkerError ("timeout", "crash", "protocol"); ``start`` (re)starts it fresh."""

    device: str

    @property
    def alive(self) -> bool: ...

    def start(self) -> object: ...

    def request(self, op: str, params: dict, timeout: float) -> dict: ...

    def close(self) -> None: ...


@dataclass
class LoadReport:
    problems: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    defined: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        # Entries are checked as they arrive (StudentSession._load_reply); .get() all the
        # same, so that this report, written after the tests, can never fail the grading.
        lines = [str(n) for n in self.notes]
        for p in self.problems:
            where = f"cell {p.get('cell')}" + (f", line {p['line']}" if p.get("line") else "")
            lines.append(f"{where}: {p.get('kind')}: {p.get('message')}")
        return "\n".join(lines)

    def hint_for_missing(self, name: str) -> str:
        hint = self.explain_unbound(name)
        if hint:
            return hint
        if self.problems:
            return "These cells failed to load, which may explain it:\n" + self.summary()
        return f"define {name} in your notebook with exactly this name"

    def explain_unbound(self, name: str) -> str:
        """Why a name student code reads is not defined, when loading knows: the statement
        that assigns it failed, or was not run; '' otherwise."""
        for p in self.problems:
            if name in p.get("names", ()):
                return (f"{name!r} is assigned by top-level code in cell {p.get('cell')} (line "
                        f"{p.get('line')}), which failed while your notebook was loaded: "
                        f"{p.get('kind')}: {p.get('message')}. Fix that line first.")
        for item in self.skipped:
            if name in item.get("names", ()):
                return (f"{name!r} is assigned by top-level code in cell {item.get('cell')} "
                        f"(line {item.get('line')}), which grading did not run: top-level "
                        "statements run only when one of your functions, classes or constants "
                        f"reads a name they assign, and none reads {name!r} by name. Assign it "
                        "in a statement your code reads, or inside the function that needs it.")
        return ""


class StudentSession:
    """Owns the worker for one submission; restarts it (and reloads the code) after a crash."""

    def __init__(self, cells, *, transport: Transport, mode: str, forbidden: list[str],
                 assignment: str, load_time_limit: float = 30.0, notes=(),
                 cell_prefix: str = "", total_load_time_limit: float | None = None,
                 worker_objects: tuple[str, str] | None = None, forbidden_reason: str = ""):
        self.cells = cells
        self.transport = transport
        self.forbidden_reason = forbidden_reason  # why, in the ImportError students see
        self.worker_objects = worker_objects  # (file name, source): loaded before any cell
        self.cell_prefix = cell_prefix
        self.mode = mode
        self.forbidden = forbidden
        self.assignment = assignment
        self.load_time_limit = load_time_limit
        self.total_load_time_limit = (total_load_time_limit if total_load_time_limit is not None
                                      else TOTAL_LOAD_FACTOR * load_time_limit)
        self.report = LoadReport(notes=list(notes))
        self.bad_cells: set[int] = set()  # not loaded: failed, or not reached in time
        self.plan: dict | None = None  # cell -> statement positions (definitions mode)
        # A list while an otter case runs: what the calls it makes print (otter.runtime).
        self.capture: list | None = None
        self._reported_cells: set[int] = set()
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
    def start(self, probe_paths=None):
        """(Re)start the worker and load the notebook. ``probe_paths``: on the first start,
        before any student code, ask the worker which of these it can read (``self.probe``)."""
        first = self.worker_starts == 0
        try:
            self.transport.start()
        except InfrastructureError:
            self.transport.start()  # one retry: a worker that never said "ready" is not a 0
        self.worker_starts += 1
        self.epoch += 1
        if first and probe_paths is not None:
            self.probe = self.transport.request(
                "probe", {"paths": [str(p) for p in probe_paths]}, 10)["value"]
        if self.worker_objects:
            self._load_worker_objects()
        self._load(first)

    def _load_worker_objects(self):
        """The assignment's worker_objects.py, before any student cell: the instructor's
        code, so a failure is a grader error, never the student's."""
        filename, source = self.worker_objects
        try:
            reply = self.transport.request("objects", {"source": source, "filename": filename},
                                         self.load_time_limit)
        except WorkerError as exc:
            raise InfrastructureError(f"the assignment's {filename} did not load in the "
                                      f"worker: {exc}") from None
        if not reply["ok"]:
            err = reply["error"]
            raise InfrastructureError(f"the assignment's {filename} fails in the worker: "
                                      f"{err['type']}: {err['message']}")

    def _load(self, record: bool):
        """Load cell by cell, so a cell that hangs or kills the worker costs only that cell.

        ``total_load_time_limit`` bounds one load's wall clock, restarts after bad cells
        included: no cell starts after it (one that started before may finish under its own
        limit), and the cells not reached are dropped for good, restarts included. Every
        (re)start gets the whole budget, so a restart during the tests is never starved by
        the first load. ``record``: report problems (the first load only).
        """
        deadline = time.monotonic() + self.total_load_time_limit
        if self.mode == "definitions" and self.plan is None:
            self.plan = self._plan()
        while True:
            pending = [c for c in self.cells if c[0] not in self.bad_cells]
            for index, (number, code) in enumerate(pending):
                if time.monotonic() >= deadline:
                    self._stop_loading([n for n, _ in pending[index:]], record)
                    return
                try:
                    reply = self.transport.request(
                        "load", {"cells": [(number, code)], "mode": self.mode,
                                 "forbidden": self.forbidden if index == 0 else [],
                                 "forbidden_reason": self.forbidden_reason,
                                 "assignment": self.assignment, "prefix": self.cell_prefix,
                                 "keep": (self.plan or {}).get(number)},
                        self.load_time_limit)
                    value = self._load_reply(reply, number)
                except WorkerError as exc:
                    self.bad_cells.add(number)
                    if record:
                        cause = ("did not finish loading within "
                                 f"{self.load_time_limit:g} s" if exc.kind == "timeout"
                                 else str(exc))
                        self.report.problems.append(
                            {"cell": number, "kind": "LoadFailure",
                             "message": f"{cause}; the cell was skipped", "line": None})
                    self.transport.start()  # kills what is left of the worker
                    break  # start over without the bad cell
                if record:
                    if number not in self._reported_cells:  # reloads repeat the cells before
                        self._reported_cells.add(number)
                        self.report.problems += value["problems"]
                        self.report.skipped += value["skipped"]
                    self.report.defined = value["defined"]
            else:
                return

    def _plan(self) -> dict:
        """Which statements ``definitions`` mode runs (``definitions.plan_definitions``), decided
        in the worker, which parses the notebook (the grader never compiles student code).
        ``{}`` when the worker cannot say: each cell then runs its definitions only."""
        try:
            reply = self.transport.request("plan", {"cells": self.cells}, self.load_time_limit)
        except WorkerError:
            self.transport.start()
            return {}
        value = reply["value"] if reply["ok"] else None
        numbers = {number for number, _ in self.cells}
        plan = {}
        if type(value) is not list:
            return {}
        for entry in value:
            if (type(entry) is not list or len(entry) != 2 or entry[0] not in numbers
                    or type(entry[0]) is not int or type(entry[1]) is not list
                    or any(type(p) is not int for p in entry[1])):
                return {}  # forged or broken: the definitions rule alone
            plan[entry[0]] = entry[1]
        return plan

    def _stop_loading(self, numbers: list[int], record: bool):
        self.bad_cells.update(numbers)
        if record:
            listed = ", ".join(map(str, numbers[:10])) + (", ..." if len(numbers) > 10 else "")
            self.report.problems.append(
                {"cell": numbers[0], "kind": "LoadStopped", "line": None,
                 "message": f"loading stopped: the notebook's cells took more than "
                            f"{self.total_load_time_limit:g} s in all; later cells were not "
                            f"run (cells {listed})"})

    def _load_reply(self, reply: dict, number: int) -> dict:
        """The load reply of cell ``number``, checked field by field (the worker is the
        student's: a cell can write its own reply to the grader's pipe); WorkerError
        ("protocol") for anything that is not what the worker's op_load sends."""
        if not reply["ok"]:
            # op_load catches what a statement raises except KeyboardInterrupt (by design).
            err = reply["error"]
            return {"problems": [{"cell": number, "kind": err["type"][:MAX_KIND_CHARS],
                                  "message": err["message"][:MAX_MESSAGE_CHARS], "line": None}],
                    "skipped": [], "defined": self.report.defined}
        try:
            return _checked_load_value(reply["value"], number)
        except ProtocolError as exc:
            raise WorkerError("protocol", f"the worker sent an invalid reply ({exc})") from None

    def close(self):
        self.transport.close()

    def restart(self):
        """A new worker with the notebook loaded again: nothing the old one was shown or kept
        (globals, files, caches) survives. The reload is the grader's time, not the test's."""
        began = time.monotonic()
        self.start()
        if self.deadline is not None:
            self.deadline += time.monotonic() - began

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
        if not self.transport.alive:
            self.start()
            if self.deadline is not None:
                # Reloading the notebook after a crash is the grader's cost, not the test's.
                self.deadline = time.monotonic() + self.limit
        try:
            if self._seeded_epoch != self.epoch:
                self.transport.request("seed", {"seed": self.seed}, max(self._remaining(), 1.0))
                self._seeded_epoch = self.epoch
            remaining = self._remaining()
            if remaining <= 0:
                raise StudentTimeout(what, self.limit)
            capture = self.capture is not None and op == "call"
            if capture:
                params = {**params, "capture": True}
            reply = self.transport.request(op, params, remaining)
            if capture and reply["ok"]:
                reply = self._captured(reply)
        except WorkerError as exc:
            if exc.kind == "timeout":
                raise StudentTimeout(what, self.limit) from None
            raise StudentCrash(what, str(exc), protocol=exc.kind == "protocol") from None
        except InfrastructureError:
            raise
        return self._finish(reply, op, params, what)

    def _captured(self, reply: dict) -> dict:
        """Split a captured call's ``(result, printed)`` reply; the text goes to the sink."""
        value = reply["value"]
        if type(value) is not tuple or len(value) != 2 or type(value[1]) is not str:
            raise StudentCrash("a call", "the worker sent an invalid reply (a captured call "
                                         "without its printed text)", protocol=True)
        self.capture.append(value[1])
        return {"ok": True, "value": value[0]}

    def _finish(self, reply: dict, op: str, params: dict, what: str):
        if reply["ok"]:
            return self._wrap(reply["value"])
        err = reply["error"]
        hint = ""
        unbound = re.search(r"name '(\w+)' is not defined", err["message"])
        if err["type"] == "NameError" and unbound:
            name = unbound.group(1)
            target = params.get("target", {}).get("name") if op == "call" else None
            if name == target and not err["traceback"].count("cell["):
                hint = self.report.hint_for_missing(name)  # the function itself is missing
            else:
                hint = self.report.explain_unbound(name)  # a global the function reads
        elif err["type"] == "UnsupportedReturnType":
            hint = ("The grader accepts numbers, strings, numpy arrays of numbers (not of dtype "
                    "object), and tuples, lists and dicts of these.")
        elif "CUDA" in err["message"] and self.transport.device == "cpu":
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


def _checked_load_value(value, number: int) -> dict:
    """What op_load returns, with every field type-checked and every text cut to size."""
    if type(value) is not dict or set(value) != {"problems", "skipped", "defined"}:
        raise ProtocolError("load reply: not the expected record")
    problems, skipped = [], []
    for p in _items(value["problems"], "problems"):
        if (type(p.get("kind")) is not str or type(p.get("message")) is not str
                or not _optional_int(p.get("line"))
                or not (p.get("traceback") is None or type(p.get("traceback")) is str)):
            raise ProtocolError("load reply: bad problem entry")
        _same_cell(p, number)
        problem = {"cell": number, "kind": p["kind"][:MAX_KIND_CHARS],
                   "message": p["message"][:MAX_MESSAGE_CHARS], "line": p.get("line")}
        if p.get("traceback") is not None:
            problem["traceback"] = p["traceback"][:MAX_TRACEBACK_CHARS]
        if p.get("names") is not None:  # what the failed statement would have assigned
            if type(p["names"]) is not list:
                raise ProtocolError("load reply: bad problem entry")
            problem["names"] = _names(p["names"][:MAX_LOAD_ITEMS])
        problems.append(problem)
    for item in _items(value["skipped"], "skipped"):
        if type(item.get("line")) is not int or type(item.get("names")) is not list:
            raise ProtocolError("load reply: bad skipped entry")
        _same_cell(item, number)
        skipped.append({"cell": number, "line": item["line"],
                        "names": _names(item["names"][:MAX_LOAD_ITEMS])})
    if type(value["defined"]) is not list:
        raise ProtocolError("load reply: bad list of definitions")
    # Every name the namespace holds so far, not only this cell's: a longer list is cut.
    defined = _names(value["defined"][:50 * MAX_LOAD_ITEMS])
    return {"problems": problems, "skipped": skipped, "defined": defined}


def _items(value, what: str) -> list[dict]:
    if type(value) is not list or any(type(v) is not dict for v in value):
        raise ProtocolError(f"load reply: bad list of {what}")
    return value[:MAX_LOAD_ITEMS]


def _optional_int(value) -> bool:
    return value is None or type(value) is int


def _same_cell(entry: dict, number: int) -> None:
    if entry.get("cell") != number or type(entry.get("cell")) is not int:
        raise ProtocolError(f"load reply: an entry about another cell than {number}")


def _names(values: list) -> list[str]:
    if any(type(v) is not str for v in values):
        raise ProtocolError("load reply: a name is not text")
    return [v[:MAX_NAME_CHARS] for v in values]
