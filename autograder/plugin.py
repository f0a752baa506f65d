"""The pytest plugin that turns hidden tests into a Gradescope score.

Markers: ``points(n)``, ``visible`` / ``hidden`` / ``after_due_date`` / ``after_published``,
``time_limit(seconds)``, ``partial`` (use the ``partial`` fixture), ``covers("function")``.
Fixtures: ``student``, ``reference``, ``rng``, ``partial``, ``digits``, ``device``, ``make``,
``train_seed``, ``figures``, ``known_mistakes``, ``fresh_worker``, ``reference_with``.
"""
from __future__ import annotations

import re
import sys
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pytest

from .calling import seed_everything
from .checks import CheckFailure, observe
from .diagnose import CallLog, mistake_message
from .proxies import LocalFactory, StudentNamespace, WorkerFactory
from .session import StudentSession
from .student_errors import StudentCodeError, StudentCrash, StudentTimeout

VISIBILITY_MARKERS = ("visible", "hidden", "after_due_date", "after_published")


class BudgetExceeded(Exception):
    pass


@dataclass
class Outcome:
    nodeid: str
    name: str
    points: float
    fraction: float
    message: str
    visibility: str
    tags: list[str]
    seconds: float = 0.0
    grader_error: bool = False
    # Tolerance checks and trained metrics this test made (checks.observe): audit margins.
    measures: list[dict] = field(default_factory=list)
    # @pytest.mark.integration: end to end, may lose points for a mistake anywhere upstream
    integration: bool = False


class PartialCredit:
    """Named parts of one test, each worth a weight; failures are collected, not raised."""

    def __init__(self):
        self.earned = 0.0
        self.total = 0.0
        self.messages: list[str] = []

    @contextmanager
    def part(self, label: str, weight: float = 1.0):
        self.total += weight
        try:
            yield
        except (CheckFailure, StudentCodeError) as exc:
            self.messages.append(f"[{label}] {describe_exception(exc)}")
        else:
            self.earned += weight

    @property
    def fraction(self) -> float:
        return self.earned / self.total if self.total else 0.0

    def name_mistakes(self, diagnoses: list[str]) -> None:
        """Add the known mistakes (from the ``known_mistakes`` fixture) to the feedback."""
        self.messages += [mistake_message(d) for d in diagnoses]


def describe_exception(exc: BaseException) -> str:
    if isinstance(exc, CheckFailure):
        return str(exc)
    if isinstance(exc, StudentCodeError):
        text = f"{exc.what} raised {exc.exc_type}: {exc.message}"
        if exc.exc_type == "NotImplementedError":
            text = f"{exc.what} is not implemented yet (it raised NotImplementedError)"
        if exc.hint:
            text += f"\n{exc.hint}"
        tb = exc.traceback.strip()
        if tb and "cell[" in tb and exc.exc_type != "NotImplementedError":
            tb = re.sub(r'File "cell\[(\d+)\]", line (\d+)', r"cell \1, line \2", tb)
            text += "\nYour code's traceback:\n" + tb
        return text
    if isinstance(exc, (StudentTimeout, StudentCrash, BudgetExceeded)):
        return str(exc)
    return ""


def _marker_arg(item, name, default):
    marker = item.get_closest_marker(name)
    return marker.args[0] if marker and marker.args else default


class GradingPlugin:
    def __init__(self, session: StudentSession | None, reference, *, default_time_limit: float,
                 total_time_limit: float, default_visibility: str = "visible",
                 student_override=None, digits_loader=None, time_limit_cap=None,
                 device: str = "cpu", diagnoser=None, seed_offset: int = 0,
                 assignment_dir=None):
        self.session = session
        self.assignment_dir = assignment_dir  # where in-process ``make`` finds worker_objects.py
        self.reference_module = reference
        self.default_time_limit = default_time_limit
        self.total_time_limit = total_time_limit
        self.default_visibility = default_visibility
        self.student_override = student_override  # in-process mode: the reference itself
        self.digits_loader = digits_loader
        self.time_limit_cap = time_limit_cap
        self.device_name = device
        self.diagnoser = diagnoser
        # Audits rerun trained tests with other seeds to measure the margin of thresholds.
        self.seed_offset = seed_offset
        self.measures: dict[str, list[dict]] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.order: list[str] = []
        self.started = time.monotonic()

    # ---- configuration ------------------------------------------------------------------
    def pytest_configure(self, config):
        for line in (
            "points(n): points this test is worth",
            "visible: results shown to students at once",
            "hidden: never shown to students",
            "after_due_date: shown after the due date",
            "after_published: shown once grades are published",
            "time_limit(seconds): wall-clock limit for the student code in this test",
            "partial: the test gives partial credit through the partial fixture",
            "covers(name): the student function or class this test is about",
            "integration: an end-to-end test (a training run) that may lose points for a "
            "mistake in any function it uses; at most 20% of an assignment's points",
        ):
            config.addinivalue_line("markers", line)

    def pytest_collection_modifyitems(self, items):
        self.order = [item.nodeid for item in items]

    # ---- fixtures -------------------------------------------------------------------------
    @pytest.fixture
    def student(self):
        if self.student_override is not None:
            return self.student_override
        return StudentNamespace(self.session)

    @pytest.fixture
    def reference(self):
        return self.reference_module

    @pytest.fixture
    def rng(self, request):
        return np.random.default_rng(_seed_of(request.node.nodeid) + self.seed_offset)

    @pytest.fixture
    def train_seed(self):
        """The seed a trained check trains with: 0 when grading; audits vary it to show the
        reference clears the threshold on every seed, not just a lucky one."""
        return self.seed_offset

    @pytest.fixture
    def partial(self, request):
        credit = PartialCredit()
        request.node._dlgrade_partial = credit
        return credit

    @pytest.fixture
    def device(self):
        """"cpu" or "cuda": where tests put tensors and student models (``model.to(device)``)."""
        return self.device_name

    @pytest.fixture
    def make(self):
        """Build a trusted object (optimizer, model copy, data sampler) next to the student's."""
        if self.student_override is not None:
            return LocalFactory(self.assignment_dir)
        return WorkerFactory(self.session)

    @pytest.fixture
    def reference_with(self):
        """``reference_with(name=part, ...)``: a fresh copy of the reference whose named
        functions are the given ones (e.g. ``student.rnn_step_forward``), for judging a
        composite with the student's own parts (``assignment.with_parts``)."""
        from .assignment import with_parts

        return lambda **parts: with_parts(self.reference_module, **parts)

    @pytest.fixture
    def fresh_worker(self):
        """``fresh_worker()``: restart the student's worker with the notebook reloaded, so
        what runs next cannot reach anything earlier calls were shown or kept (a trained
        check evaluates a reloaded copy of the model on data training never saw). Handles
        to the old worker's objects die; a no-op for trusted code run in this process."""
        def restart():
            if self.student_override is None and self.session is not None:
                self.session.restart()
        return restart

    @pytest.fixture
    def figures(self, request):
        """Named series for plots on the student's feedback page (e.g. training curves)."""
        from .feedback import recorded_figures

        return recorded_figures(request.node.nodeid)

    @pytest.fixture
    def known_mistakes(self):
        """``known_mistakes(function, outcome, observed, match)``: the diagnoses of the known
        mistakes in ``function`` that explain what the test observed (see
        ``Diagnoser.explain_outcome``); none when grading without diagnoses or without
        mutants.py (a release build). A hint never costs a grade: failures give none."""
        diagnoser = self.diagnoser

        def explain(function, outcome, observed, match) -> list[str]:
            if diagnoser is None:
                return []
            try:
                return diagnoser.explain_outcome(function, outcome, observed, match)
            except Exception:  # noqa: BLE001
                return []
        return explain

    @pytest.fixture
    def digits(self):
        return self.digits_loader()

    # ---- running ----------------------------------------------------------------------------
    def pytest_runtest_setup(self, item):
        seed = _seed_of(item.nodeid) + self.seed_offset
        seed_everything(seed)
        torch = sys.modules.get("torch")  # only if a test module uses it: importing costs ~1 s
        if torch is not None:
            torch.set_num_threads(1)
        item._dlgrade_start = time.monotonic()
        measures = self.measures.setdefault(item.nodeid, [])
        item._dlgrade_unobserve = observe(measures.append)
        if self.session is not None:
            self.session.recorder = CallLog() if self.diagnoser is not None else None
        if time.monotonic() - self.started > self.total_time_limit:
            raise BudgetExceeded(f"not run: the whole submission used up its "
                                 f"{self.total_time_limit:g} s grading budget")
        if self.session is not None:
            limit = float(_marker_arg(item, "time_limit", self.default_time_limit))
            if self.time_limit_cap is not None:
                limit = min(limit, self.time_limit_cap)
            self.session.begin_test(seed, limit)

    def pytest_runtest_teardown(self, item):
        unobserve = getattr(item, "_dlgrade_unobserve", None)
        if unobserve is not None:
            unobserve()
            item._dlgrade_unobserve = None
        if self.session is not None:
            self.session.end_test()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" or (report.when == "setup" and report.failed):
            self._record(item, call, report)

    def _record(self, item, call, report):
        points = float(_marker_arg(item, "points", 1))
        visibility = next((m for m in VISIBILITY_MARKERS if item.get_closest_marker(m)),
                          self.default_visibility)
        covers = item.get_closest_marker("covers")
        tags = list(covers.args) if covers else []
        doc = (item.function.__doc__ or "").strip().splitlines()
        name = doc[0] if doc else item.name.removeprefix("test_").replace("_", " ")
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            name = f"{name} [{callspec.id}]"
        partial = getattr(item, "_dlgrade_partial", None)
        fraction, messages, grader_error = 1.0, [], False
        if partial is not None:
            fraction = partial.fraction
            messages += partial.messages
        if report.failed and call.excinfo is not None:
            exc = call.excinfo.value
            text = describe_exception(exc)
            if not text:
                # An exception in the test body: almost always a result of an unexpected type.
                text = (f"checking your result failed with {type(exc).__name__}: {exc}. "
                        "Check the types and structure your function returns.")
                grader_error = not isinstance(exc, (TypeError, ValueError, IndexError,
                                                    KeyError, AttributeError))
                if grader_error:
                    text = f"internal grader error ({type(exc).__name__}: {exc}); not your fault"
            messages.append(text)
            fraction = partial.fraction if partial is not None else 0.0
        elif report.skipped:
            fraction = 0.0
            messages.append("skipped: " + str(call.excinfo.value if call.excinfo else ""))
        if fraction < 1.0 and item.config.option.maxfail == 1:
            # Quick kill (-x) stops at the first lost point, also one lost by partial credit.
            item.session.shouldstop = f"{name} lost points"
        if fraction < 1.0 and not grader_error and not report.skipped:
            messages += self._diagnose()
        seconds = time.monotonic() - getattr(item, "_dlgrade_start", time.monotonic())
        self.outcomes[item.nodeid] = Outcome(item.nodeid, name, points, fraction,
                                             "\n".join(messages), visibility, tags, seconds,
                                             grader_error, self.measures.get(item.nodeid, []),
                                             item.get_closest_marker("integration") is not None)

    def _diagnose(self) -> list[str]:
        records = self.session.recorder if self.session is not None else None
        if self.diagnoser is None or not records:
            return []
        try:
            diagnoses = self.diagnoser.explain(records, seed=self.session.seed)
        except Exception:  # noqa: BLE001 - a hint must never cost a grade
            return []
        return [mistake_message(d) for d in diagnoses]


def _seed_of(nodeid: str) -> int:
    """Stable per test: the same submission sees the same random inputs on every run."""
    return zlib.crc32(nodeid.split("::", 1)[-1].encode())
