"""Name the known mistake a failing submission looks like.

While a test runs, every call into the student's worker is recorded with its inputs and the
result that came back. When the test loses points, the recorded calls are replayed in the
grader on the reference and on every mutant from ``mutants.py`` (the instructor's own code, so
trusted). A mutant explains the failure when, on the same inputs, its output matches the
student's in exactly the places where the student's output differs from the reference's.
"""
from __future__ import annotations

import copy
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .bounded import DEFAULT_MEMORY_BYTES, run_bounded
from .calling import grad_call, seed_everything
from .checks import norm_error, rel_error
from .values import RemoteRef, TensorValue

# Outputs agreeing this closely are "the same computation": far below any mistake's effect,
# far above float64 rounding on the small inputs tests use.
MATCH_TOL = 1e-6
# A call slower than this (e.g. a whole training run) is not replayed for every mutant.
MAX_CALL_SECONDS = 0.5
# What a test may spend recomputing its own outcome for the mistakes of one function.
OUTCOME_BUDGET_S = 10.0
# The budgets above are checked between replays; a single replay on hostile inputs can run
# for ever, so the child doing the work is killed this long after its budget (an honest
# replay overruns by one call at most: well under a second). Its diagnoses are then lost.
HARD_GRACE_S = 2.0
# New address space a diagnosis may use (see bounded.run_bounded).
MEMORY_BYTES = DEFAULT_MEMORY_BYTES


class NotReplayable(Exception):
    pass


def mistake_message(diagnosis: str) -> str:
    return f"This looks like a known mistake: {diagnosis}"


def dicts_close(tol: float):
    """A ``match`` for ``Diagnoser.explain_outcome``: the same keys, and every entry of the
    same shape within ``tol`` (norm error); NaN (a result that could not be read) matches
    only NaN."""
    def match(a, b) -> bool:
        if a.keys() != b.keys():
            return False
        for key in a:
            x = np.asarray(a[key], dtype=np.float64)
            y = np.asarray(b[key], dtype=np.float64)
            if x.shape != y.shape or not np.array_equal(np.isnan(x), np.isnan(y)):
                return False
            if norm_error(np.nan_to_num(x), np.nan_to_num(y)) > tol:
                return False
        return True
    return match


# Longest history of operations on one worker object that is still replayed.
MAX_LINEAGE_OPS = 40
# What the calls recorded in one test may hold in the grader (inputs and results, some of them
# the student's): past it the oldest calls are dropped, the last ones being those replayed
# first. A training test of the bundled assignments records up to ~100 MB; others below 10 MB.
MAX_RECORDED_BYTES = 64 << 20


def approx_nbytes(value, limit: int = MAX_RECORDED_BYTES) -> int:
    """About how much memory ``value`` holds (arrays, text, containers); counting stops once
    past ``limit``. Iterative: a value from the worker nests at most wire.MAX_DEPTH deep, but
    a grader-side one need not."""
    total, stack, seen = 0, [value], set()
    while stack and total <= limit:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, TensorValue):
            node = node.array
        if isinstance(node, np.ndarray):
            total += node.nbytes + 112
        elif isinstance(node, (str, bytes)):
            total += len(node) + 50
        elif isinstance(node, (list, tuple)):
            total += 56 + 8 * len(node)
            stack.extend(node)
        elif isinstance(node, dict):
            total += 64 + 100 * len(node)
            stack.extend(node.keys())
            stack.extend(node.values())
        else:
            total += 32
    return total


class CallLog:
    """The calls recorded during one test, newest kept, at most ``max_bytes`` of them."""

    def __init__(self, max_bytes: int = MAX_RECORDED_BYTES):
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._records: deque = deque()

    def fits(self, *values) -> bool:
        """Whether a call with these inputs could be kept at all (checked before copying)."""
        return approx_nbytes(values, self.max_bytes) <= self.max_bytes

    def append(self, record: CallRecord) -> None:
        size = approx_nbytes((record.args, record.kwargs, record.extra, record.result),
                             self.max_bytes)
        if size > self.max_bytes:
            return
        self._records.append((record, size))
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            self.nbytes -= self._records.popleft()[1]

    def __iter__(self):
        return (record for record, _ in self._records)

    def __reversed__(self):
        return (record for record, _ in reversed(self._records))

    def __len__(self) -> int:
        return len(self._records)


@dataclass
class Lineage:
    """How to rebuild an object of the student's in the grader: the call that made it, then
    every attribute write and method call made on it since (all with grader-side inputs)."""
    name: str
    args: list
    kwargs: dict
    log: list = field(default_factory=list)  # ("set", path, attr, value) | ("call", path, a, kw)
    replayable: bool = True
    nbytes: int = 0

    def append(self, op: tuple) -> None:
        if len(self.log) >= MAX_LINEAGE_OPS:
            self.replayable = False
        if self.replayable:
            # The values set or passed may be the student's (a dict it returned): capped too.
            self.nbytes += approx_nbytes(op)
            if self.nbytes > MAX_RECORDED_BYTES:
                self.replayable = False
                self.log.clear()
                return
            self.log.append(op)


class Raised:
    """The result of a recorded call that raised in the worker: the exception's type name and
    message (only ever compared as text)."""

    def __init__(self, exc_type: str, message: str = ""):
        self.exc_type = exc_type
        self.message = message

    def __repr__(self):
        return f"Raised({self.exc_type})"


@dataclass
class CallRecord:
    name: str
    kind: str  # "call", "call_returning_args", "grad_call", "object_call" or "object_get"
    args: list
    kwargs: dict
    result: object
    seconds: float
    extra: dict = field(default_factory=dict)
    # For operations on an object: its lineage, how many logged ops precede this one, the
    # attribute path from the object to what is called or read.
    lineage: Lineage | None = None
    upto: int = 0
    path: tuple = ()


def snapshot(value):
    """A private copy of grader-side arguments, or NotReplayable if they refer to objects
    living in the worker (those cannot be replayed in the grader)."""
    def check(node):
        if isinstance(node, RemoteRef) or getattr(node, "_dlgrade_ref", None) is not None:
            raise NotReplayable
        if isinstance(node, TensorValue):
            raise NotReplayable
        if isinstance(node, (list, tuple)):
            for v in node:
                check(v)
        elif isinstance(node, dict):
            for v in node.values():
                check(v)
    check(value)
    return copy.deepcopy(value)


def leaves(value, path=()) -> dict:
    """Flatten a result into {path: comparable leaf}; arrays and numbers become float arrays."""
    ref = getattr(value, "_dlgrade_ref", None)
    if isinstance(ref, RemoteRef):  # an object left in the worker: compare its type only
        return {path: ("object", ref.type_name)}
    if isinstance(value, TensorValue):
        value = value.array
    elif type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        out = {path: ("sequence", len(value))}
        for i, v in enumerate(value):
            out.update(leaves(v, path + (i,)))
        return out
    if isinstance(value, dict):
        out = {path: ("keys", tuple(sorted(map(str, value))))}
        for k, v in value.items():
            out.update(leaves(v, path + (str(k),)))
        return out
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, str):
        return {path: value}
    if isinstance(value, (int, float, np.number)):
        return {path: np.asarray(value, dtype=np.float64)}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {path: value.astype(np.float64)}
    return {path: ("object", type(value).__name__)}


def same(a, b) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.shape != b.shape:
            return False
        if a.size == 0:
            return True
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            return bool(np.array_equal(a, b, equal_nan=True))
        return float(rel_error(a, b).max()) <= MATCH_TOL
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return False
    return a == b


def _resolve(obj, path):
    for attr in path:
        obj = getattr(obj, attr)
    return obj


def replay(module, record: CallRecord):
    if record.lineage is not None:
        lineage = record.lineage
        obj = getattr(module, lineage.name)(*copy.deepcopy(lineage.args),
                                            **copy.deepcopy(lineage.kwargs))
        for op in lineage.log[:record.upto]:
            if op[0] == "set":
                setattr(_resolve(obj, op[1]), op[2], copy.deepcopy(op[3]))
            else:
                _resolve(obj, op[1])(*copy.deepcopy(op[2]), **copy.deepcopy(op[3]))
        target = _resolve(obj, record.path)
        if record.kind == "object_get":
            return target
        return target(*copy.deepcopy(record.args), **copy.deepcopy(record.kwargs))
    fn = getattr(module, record.name)
    args, kwargs = copy.deepcopy(record.args), copy.deepcopy(record.kwargs)
    if record.kind == "grad_call":
        return grad_call(fn, args, kwargs, **record.extra)
    out = fn(*args, **kwargs)
    if record.kind == "call_returning_args":
        return (out, list(args), kwargs)
    return out


def _seeded_replay(module, record: CallRecord, seed: int = 0):
    """Replays of random functions start from the same state, so they can agree at all: the
    state the worker was seeded with at the start of the test, so that the replay of a test's
    first random call (or of an object's lineage from its creation) draws what the student's
    code drew."""
    seed_everything(seed)
    return replay(module, record)


class Diagnoser:
    """Built once per grading; mutant modules are made only when a test first fails."""

    def __init__(self, assignment, budget_s: float = 3.0):
        self.assignment = assignment
        self.budget_s = budget_s
        self._mutants = None

    def mutant_modules(self):
        if self._mutants is None:
            import nbformat

            from .assignment import load_reference
            from .mutants import apply_to_notebook, load_mutants

            self._mutants = []
            path = self.assignment.mutants_file
            if path.exists() and self.assignment.master is not None:
                master = nbformat.read(self.assignment.master, as_version=4)
                for mutant in load_mutants(path):
                    if mutant.equivalent:
                        continue
                    try:
                        with self.assignment.beside_files():
                            module = load_reference(self.assignment.master,
                                                    f"dlgrade_mutant_{mutant.name}",
                                                    nb=apply_to_notebook(master, mutant),
                                                    mode=self.assignment.mode)
                    except Exception:  # noqa: BLE001 - a stale mutant must not break grading
                        continue
                    self._mutants.append((mutant, module))
        return self._mutants

    def explain_outcome(self, function: str, outcome, observed, match) -> list[str]:
        """Diagnoses of the mistakes in ``function`` that explain what a test observed, for
        tests whose calls cannot be replayed (models, optimizers and generators living in the
        worker; random draws). ``outcome(module)`` recomputes in this process what the test
        observed, with the definitions of ``module``; a mistake explains ``observed`` when its
        outcome matches it (``match(outcome, observed)``) and the reference's does not.
        Runs in a bounded child process: none when it takes too long or too much memory."""
        reference, mutants = self.assignment.reference, self.mutant_modules()
        return run_bounded(
            lambda: self._explain_outcome(function, outcome, observed, match, reference, mutants),
            seconds=OUTCOME_BUDGET_S + HARD_GRACE_S, memory_bytes=MEMORY_BYTES, default=[])

    @staticmethod
    def _explain_outcome(function, outcome, observed, match, reference, mutants) -> list[str]:
        if match(outcome(reference), observed):
            return []
        deadline = time.monotonic() + OUTCOME_BUDGET_S
        found = []
        for mutant, module in mutants:
            if mutant.function != function:
                continue
            if time.monotonic() > deadline:
                break
            try:
                result = outcome(module)
            except Exception:  # noqa: BLE001 - this mistake crashes here: not the student's
                continue
            if match(result, observed):
                found.append(mutant.diagnosis)
        return found[:2]

    def explain(self, records: list[CallRecord] | CallLog, seed: int = 0) -> list[str]:
        """Diagnoses (plain words) of the mutants that best explain the recorded calls;
        ``seed``: the one the worker was seeded with for this test. Runs in a bounded child
        process: none when the replays take too long or too much memory."""
        # Built here (once, then kept), not in every child: the instructor's code, trusted.
        reference, mutants = self.assignment.reference, self.mutant_modules()
        return run_bounded(lambda: self._explain(records, seed, reference, mutants),
                           seconds=self.budget_s + HARD_GRACE_S, memory_bytes=MEMORY_BYTES,
                           default=[])

    @staticmethod
    def _explain_raised(record, seed, reference, mutants, best, deadline) -> None:
        """A student call that raised: a known mistake of that same function explains it when
        it raises the same exception type on the same inputs and the reference does not."""
        try:
            _seeded_replay(reference, record, seed)
        except Exception:  # noqa: BLE001 - inputs the reference fails on explain nothing
            return
        function = record.name.split(".")[0]
        exact, loose = [], []
        for mutant, module in mutants:
            if time.monotonic() > deadline:
                break
            if mutant.function != function:
                continue
            try:
                _seeded_replay(module, record, seed)
            except Exception as exc:  # noqa: BLE001 - the mistake's own crash
                if type(exc).__name__ == record.result.exc_type:
                    # The same message (numpy's, say, with the same shapes) is the same crash.
                    same_text = str(exc) == record.result.message
                    (exact if same_text else loose).append(mutant.diagnosis)
        for diagnosis in exact or loose:
            best[diagnosis] = max(best.get(diagnosis, (0, 0)), (2 if exact else 1, 1))

    def _explain(self, records, seed, reference, mutants) -> list[str]:
        deadline = time.monotonic() + self.budget_s
        best: dict[str, tuple[int, int]] = {}  # diagnosis -> (leaves it changes, name matches)
        for record in reversed(records):  # the call that failed is usually the last one
            if record.seconds > MAX_CALL_SECONDS or time.monotonic() > deadline:
                continue
            if isinstance(record.result, Raised):
                self._explain_raised(record, seed, reference, mutants, best, deadline)
                if best:
                    break
                continue
            try:
                ref_leaves = leaves(_seeded_replay(reference, record, seed))
            except Exception:  # noqa: BLE001
                continue
            student_leaves = leaves(record.result)
            if all(p in ref_leaves and same(v, ref_leaves[p])
                   for p, v in student_leaves.items()):
                continue  # this call was right
            for mutant, module in mutants:
                if time.monotonic() > deadline:
                    break
                try:
                    mutant_leaves = leaves(_seeded_replay(module, record, seed))
                except Exception:  # noqa: BLE001 - a mutant may crash on these inputs
                    continue
                # Wherever this mistake changes the result, the student's result must agree
                # with it; elsewhere (caches, other outputs) the student may differ freely.
                changed = [p for p in set(mutant_leaves) | set(ref_leaves)
                           if p not in mutant_leaves or p not in ref_leaves
                           or not same(mutant_leaves[p], ref_leaves[p])]
                if changed and all(p in student_leaves and p in mutant_leaves
                                   and same(student_leaves[p], mutant_leaves[p])
                                   for p in changed):
                    score = (len(changed), int(mutant.function == record.name.split(".")[0]))
                    best[mutant.diagnosis] = max(best.get(mutant.diagnosis, (0, 0)), score)
            if best:
                break
        ranked = sorted(best, key=lambda d: best[d], reverse=True)
        return ranked[:2]
