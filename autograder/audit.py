"""``dlgrade audit``: prove that an assignment's hidden suite can be trusted.

The reference must earn full marks, the skeleton zero without a crash, every known mistake
must lose points, and reruns must give identical scores.
"""
from __future__ import annotations

import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .assignment import Assignment
from .grade import GradeRun, grade_notebook
from .mutants import apply_to_notebook, load_mutants


@dataclass
class MutantResult:
    name: str
    function: str
    score: float
    killed: bool
    failed_tests: list[str]


@dataclass
class AuditReport:
    assignment: str
    max_score: float = 0.0
    reference_score: float = 0.0
    reference_seconds: float = 0.0
    reference_peak_mb: float = 0.0
    skeleton_score: float | None = None
    skeleton_crashed: bool = False
    reruns_identical: bool = True
    mutants: list[MutantResult] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)
    test_seconds: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def kill_rate(self) -> float:
        return sum(m.killed for m in self.mutants) / len(self.mutants) if self.mutants else 1.0

    @property
    def ok(self) -> bool:
        return not self.problems


def _scores(run: GradeRun) -> list[tuple[str, float]]:
    return [(t.name, t.score) for t in run.results.tests]


def audit(assignment: Assignment, *, reruns: int = 3, progress=lambda msg: None) -> AuditReport:
    report = AuditReport(assignment.name)
    progress("grading the reference")
    start = time.monotonic()
    runs = [grade_notebook(assignment.master, assignment)]
    report.reference_seconds = time.monotonic() - start
    # ru_maxrss of this process covers the grader; the worker is a child: report both.
    report.reference_peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    reference = runs[0].results
    report.max_score, report.reference_score = reference.max_score, reference.score
    report.test_seconds = {o.name: o.seconds for o in runs[0].outcomes}
    if runs[0].grader_error:
        report.problems.append(f"grader error on the reference: {reference.output[:500]}")
        return report
    if reference.score != reference.max_score:
        failed = [t.name for t in reference.tests if t.status != "passed"]
        report.problems.append(f"reference scores {reference.score:g}/{reference.max_score:g}; "
                               f"failing: {failed}")
    for i in range(1, reruns):
        progress(f"rerun {i + 1} of {reruns}")
        runs.append(grade_notebook(assignment.master, assignment))
    if any(_scores(r) != _scores(runs[0]) for r in runs[1:]):
        report.reruns_identical = False
        report.problems.append("reruns of the reference gave different scores")

    progress("grading the skeleton")
    skeleton = grade_notebook(assignment.skeleton, assignment)
    report.skeleton_score = skeleton.results.score
    report.skeleton_crashed = skeleton.grader_error or not skeleton.results.tests
    if report.skeleton_crashed:
        report.problems.append(f"the skeleton crashed the grader: {skeleton.results.output[:500]}")
    elif skeleton.results.score != 0:
        report.problems.append(f"the skeleton scores {skeleton.results.score:g}, not 0")

    master = nbformat.read(assignment.master, as_version=4)
    with tempfile.TemporaryDirectory(prefix="dlgrade-audit-") as tmp:
        for mutant in load_mutants(assignment.mutants_file):
            if mutant.equivalent:
                report.equivalent.append(mutant.name)
                continue
            progress(f"mutant {mutant.name}")
            path = Path(tmp) / f"{mutant.name}.ipynb"
            nbformat.write(apply_to_notebook(master, mutant), path)
            run = grade_notebook(path, assignment)
            report.mutants.append(MutantResult(
                mutant.name, mutant.function, run.results.score,
                killed=run.results.score < reference.score and not run.grader_error,
                failed_tests=[t.number for t in run.results.tests if t.status != "passed"]))
    survivors = [m.name for m in report.mutants if not m.killed]
    if survivors:
        report.problems.append(f"mutants that lose no points: {survivors}")
    return report


def render(report: AuditReport, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    ok = "[green]ok[/]"
    console.print(f"[bold]Audit of {report.assignment}[/]")
    console.print(f"reference: {report.reference_score:g}/{report.max_score:g} in "
                  f"{report.reference_seconds:.1f} s, peak memory {report.reference_peak_mb:.0f} MB "
                  + (ok if report.reference_score == report.max_score else "[red]FAIL[/]"))
    console.print(f"skeleton: {report.skeleton_score} "
                  + (ok if report.skeleton_score == 0 and not report.skeleton_crashed
                     else "[red]FAIL[/]"))
    console.print("reruns identical: " + (ok if report.reruns_identical else "[red]FAIL[/]"))
    table = Table(title=f"mutants: kill rate {report.kill_rate:.0%}")
    for col in ("mutant", "breaks", "score", "caught by tests"):
        table.add_column(col)
    for m in report.mutants:
        table.add_row(m.name, m.function,
                      f"{m.score:g}" if m.killed else f"[red]{m.score:g} SURVIVED[/]",
                      " ".join(f"#{n}" for n in m.failed_tests))
    console.print(table)
    if report.equivalent:
        console.print("equivalent (not graded): " + ", ".join(report.equivalent))
    console.print("tests: " + "; ".join(f"#{i} {escape(name)}" for i, name in
                                       enumerate(report.test_seconds, start=1)))
    slowest = sorted(report.test_seconds.items(), key=lambda kv: -kv[1])[:5]
    console.print("slowest tests on the reference: "
                  + ", ".join(f"{escape(name)} {sec:.2f} s" for name, sec in slowest))
    for problem in report.problems:
        console.print(f"[red]PROBLEM:[/] {escape(problem)}")
    console.print("[bold green]AUDIT PASSED[/]" if report.ok else "[bold red]AUDIT FAILED[/]")
