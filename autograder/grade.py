"""Grade one notebook: read it, load it into a confined worker, run the hidden tests."""
from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pytest

from .assignment import Assignment, AssignmentError
from .data import load_digits_split
from .notebook import NotebookError, extract_code, read_notebook
from .plugin import GradingPlugin, Outcome
from .results import Results, TestResult, error_results, grader_error_results, scaled_total
from .confinement import probe_targets
from .sandbox import (InfrastructureError, Sandbox, SandboxConfig, package_paths,
                      private_paths)
from .session import StudentSession


@dataclass
class GradeRun:
    results: Results
    outcomes: list[Outcome]
    timings: dict[str, float]
    # True when the grader, not the submission, failed: callers should retry, not record a 0.
    grader_error: bool = False
    # For the instructor's log, never the student's page: sandbox mode and warnings, the
    # paths a failed self-test could read, a grader error's traceback.
    operator_notes: list[str] = field(default_factory=list)


def run_tests(assignment: Assignment, plugin: GradingPlugin, quiet: bool = True,
              stop_at_first_loss: bool = False, only: list[str] | None = None
              ) -> list[Outcome]:
    """``only``: node ids (relative to the assignment folder) to run instead of every test."""
    args = ["-x"] if stop_at_first_loss else []
    targets = [str(assignment.directory / n) for n in only] if only else [str(assignment.tests_dir)]
    args += [*targets, "-p", "no:cacheprovider", "-p", "no:randomly",
            "--import-mode=importlib", "-c", os.devnull, "--rootdir", str(assignment.directory),
            # Only the assignment's own conftest files: none from the folders around it.
            "--confcutdir", str(assignment.directory)]
    args += ["-p", "no:terminal"] if quiet else ["-q", "--no-header", "--tb=no", "-rN"]
    forget_other_hidden_tests(assignment.directory)
    code = pytest.main(args, plugins=[plugin])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not plugin.outcomes:
        raise InfrastructureError(f"the hidden tests of {assignment.name} could not run "
                                  f"(pytest exit code {int(code)})")
    return [plugin.outcomes[n] for n in plugin.order if n in plugin.outcomes]


def forget_other_hidden_tests(directory: Path) -> None:
    """pytest imports an assignment's tests/conftest.py as ``tests.conftest`` (importlib mode,
    rooted at the assignment folder), the same name for every assignment, and reuses what
    sys.modules holds under it: a process grading two assignments would hand the second the
    first one's helpers. Forget the modules under that package that are not this folder's."""
    root = Path(directory).resolve()
    for name, module in list(sys.modules.items()):
        if name != "tests" and not name.startswith("tests."):
            continue
        file = getattr(module, "__file__", None)
        if file is None or not Path(file).resolve().is_relative_to(root):
            del sys.modules[name]


def upstream_failures(outcome: Outcome, outcomes: list[Outcome]) -> str:
    """For an end-to-end (integration) test that lost points: the functions it depends on that
    already fail their own visible tests, so the student fixes those first instead of
    suspecting the training loop. "" when there are none."""
    if not outcome.integration or outcome.fraction >= 1.0:
        return ""
    failing = []
    for function in outcome.tags:
        numbers = [str(number) for number, other in enumerate(outcomes, start=1)
                   if other is not outcome and not other.integration and function in other.tags
                   and other.fraction < 1.0 and other.visibility == "visible"]
        if numbers:
            failing.append(f"{function} (test{'s' if len(numbers) > 1 else ''} "
                           f"{', '.join(numbers)})")
    if not failing:
        return ""
    return ("\nThis end-to-end check uses everything before it, and these fail their own "
            f"tests: {'; '.join(failing)}. Fix them first: this check may then pass as it is.")


def to_results(outcomes: list[Outcome], *, execution_time: float, output: str,
               points_possible: float | None = None) -> Results:
    tests = []
    for number, o in enumerate(outcomes, start=1):
        # Full marks are the points exactly (2/3 of a point shows as its max, not 0.6667);
        # otherwise 10 digits hide float noise and nothing else.
        score = o.points if o.fraction >= 1.0 else round(o.points * o.fraction, 10)
        tests.append(TestResult(
            name=o.name, number=str(number), score=score, max_score=o.points,
            status="passed" if o.fraction >= 1.0 else "failed",
            output=o.message + upstream_failures(o, outcomes), visibility=o.visibility,
            tags=o.tags))
    total = round(sum(t.score for t in tests), 10)
    possible = sum(t.max_score for t in tests)
    return Results(score=scaled_total(total, possible, points_possible),
                   execution_time=execution_time, output=output, tests=tests,
                   extra_data={} if points_possible is None
                   else {"points_possible": points_possible})


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def grade_notebook(path: Path, assignment: Assignment, **options) -> GradeRun:
    """Never raises for a bad submission, nor for a grader bug: a results file must exist
    whatever happened (see ``_grade_notebook`` for the options)."""
    if options.get("device", "cpu") not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', not {options['device']!r}")
    start = time.monotonic()
    try:
        return _grade_notebook(path, assignment, **options)
    except Exception:  # noqa: BLE001 - e.g. a report the worker forged into something odd
        return GradeRun(grader_error_results("the grader failed unexpectedly (details in the "
                                             "instructor's log)", time.monotonic() - start),
                        [], {}, True, [traceback.format_exc()[-6000:]])


def _grade_notebook(path: Path, assignment: Assignment, *, device: str = "cpu",
                   private: Sequence[Path] = (), confidential: Sequence[Path] = (),
                   quiet: bool = True, stop_at_first_loss: bool = False,
                   diagnose: bool = True, only: Sequence[str] | None = None) -> GradeRun:
    """Never raises for a bad submission: a broken notebook still gets a valid Results.

    ``stop_at_first_loss`` ends the run at the first test that loses points (a quick yes/no for
    audits of known mistakes); the results then hold only the tests that ran, as with ``only``
    (node ids relative to the assignment folder: run just those tests). ``private``:
    folders the student's code must not see besides the assignment's secrets (other students'
    submissions, results); the submission's own folder always is, where it can be hidden.
    ``confidential``: folders holding other students' work (a batch's input and output):
    hidden like ``private``, and grading is refused unless the start-up probe finds them, and
    the canary each holds, unreadable to the worker.
    """
    start = time.monotonic()
    timings: dict[str, float] = {}
    device_notes = []
    operator_notes: list[str] = []
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', not {device!r}")
    if device == "cuda" and not cuda_available():
        device = "cpu"
        device_notes.append("--device cuda was asked for, but this machine has no usable CUDA "
                            "GPU: graded on the CPU instead")
    try:
        nb = read_notebook(Path(path))
        code = extract_code(nb)
    except NotebookError as exc:
        return GradeRun(error_results(f"Could not grade this submission: {exc}",
                                      time.monotonic() - start), [], timings)
    timings["notebook"] = time.monotonic() - start
    try:
        reference = assignment.reference
    except AssignmentError as exc:  # the master fails to load: nothing can be compared
        return GradeRun(grader_error_results(str(exc), time.monotonic() - start), [], timings,
                        True,
                        [traceback.format_exc()[-6000:]])
    hide = [str(p) for p in assignment.secret_paths]
    hide += private_paths([Path(path).parent, *private, *confidential], fallback_files=[path])
    hide += package_paths(assignment.forbidden_imports)
    try:
        files = assignment.public_files()
        missing = assignment.missing_requirements()
        if missing:
            raise AssignmentError(
                f"{assignment.name} needs packages this grader does not have: "
                f"{', '.join(missing)}. Install them into the grader's environment "
                f"(pip install {' '.join(repr(m.split(' (')[0]) for m in missing)}); a "
                "Gradescope zip from `dlgrade release` installs them itself.")
    except AssignmentError as exc:
        return GradeRun(grader_error_results(str(exc), time.monotonic() - start), [], timings,
                        True)
    config = SandboxConfig(hide=hide, limits=assignment.limits, device=device,
                           files=[(name, str(path)) for name, path in files])
    sandbox = Sandbox(config)
    session = StudentSession(code.cells, transport=sandbox, mode=assignment.mode,
                             forbidden=assignment.forbidden_imports, assignment=assignment.name,
                             load_time_limit=assignment.load_time_limit,
                             total_load_time_limit=assignment.total_load_time_limit,
                             notes=code.notes, cell_prefix=assignment.cell_prefix,
                             worker_objects=assignment.worker_objects,
                             forbidden_reason=assignment.forbidden_message)
    try:
        t0 = time.monotonic()
        session.start(probe_paths=probe_targets(assignment.secret_paths, confidential))
        timings["worker_start"] = time.monotonic() - t0
        leaks = session.probe.get("readable", [])
        if leaks:
            operator_notes.append(f"the worker could read: {', '.join(map(str, leaks))}")
            raise InfrastructureError(
                f"sandbox self-test failed: student code could read {len(leaks)} place(s) it "
                "must not (listed in the instructor's log); refusing to grade")
        plugin = GradingPlugin(session, reference, default_time_limit=assignment.time_limit,
                               assignment_dir=assignment.directory,
                               total_time_limit=assignment.total_time_limit,
                               digits_loader=load_digits_split,
                               time_limit_cap=assignment.time_limit_cap, device=device,
                               diagnoser=assignment.diagnoser if diagnose else None)
        t0 = time.monotonic()
        outcomes = run_tests(assignment, plugin, quiet, stop_at_first_loss,
                             list(only) if only else None)
        timings["tests"] = time.monotonic() - t0
    except InfrastructureError as exc:
        session.close()
        operator_notes += sandbox_notes(sandbox)
        return GradeRun(grader_error_results(str(exc), time.monotonic() - start), [], timings,
                        True,
                        operator_notes)
    except Exception:  # noqa: BLE001 - a results file must exist whatever happened
        session.close()
        operator_notes += sandbox_notes(sandbox)
        operator_notes.append(traceback.format_exc()[-6000:])
        return GradeRun(grader_error_results("the grader failed unexpectedly (details in the "
                                             "instructor's log)", time.monotonic() - start),
                        [], timings, True,
                        operator_notes)
    stdout = sandbox.output_text(limit=2000)
    session.close()
    sections = list(device_notes)
    load_summary = session.report.summary()
    if load_summary:
        sections.append("Problems while loading your notebook:\n" + load_summary)
    if session.report.skipped:
        sections.append(f"{len(session.report.skipped)} top-level statement(s) were not run: "
                        "grading runs your imports, functions, classes and constants, and other "
                        "top-level statements only when your code reads a name they assign "
                        "(training loops, plots and prints are skipped).")
    operator_notes += sandbox_notes(sandbox)
    if stdout.strip():
        sections.append("Output printed by your code:\n" + stdout)
    elapsed = time.monotonic() - start
    results = to_results(outcomes, execution_time=round(elapsed, 3),
                         output="\n\n".join(sections),
                         points_possible=assignment.points_possible)
    return GradeRun(results, outcomes, timings, operator_notes=operator_notes)


def sandbox_notes(sandbox: Sandbox) -> list[str]:
    """How the worker was confined, for the instructor: its mode, and every warning."""
    return [f"sandbox: {sandbox.mode}", *sandbox.notes, *getattr(sandbox, "launch_notes", [])]
