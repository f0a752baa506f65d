"""``dlgrade audit``: prove that an assignment's hidden suite can be trusted.

The reference must earn full marks, the skeleton zero without a crash, every known mistake
must lose points, and reruns must give identical scores.
"""
from __future__ import annotations

import json
import resource
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .assignment import Assignment
from .grade import GradeRun, grade_notebook
from .mutants import apply_to_notebook, load_mutants
from .rules import rule_table


@dataclass
class MutantResult:
    name: str
    function: str
    score: float
    killed: bool
    failed_tests: list[str]
    diagnosed: bool = False
    # Points lost in tests about other functions, not marked integration: the same mistake
    # charged again (test name -> points). Full audits only.
    cascade: dict[str, float] = field(default_factory=dict)


@dataclass
class ToleranceMargin:
    test: str
    what: str
    error: float
    limit: float

    @property
    def margin(self) -> float:
        """How many times the reference's own error fits under the tolerance."""
        return self.limit / self.error if self.error > 0 else float("inf")


@dataclass
class MetricMargin:
    test: str
    what: str
    threshold: float
    higher_is_better: bool
    values: dict[int, float] = field(default_factory=dict)  # seed -> the reference's metric

    @property
    def worst(self) -> float:
        return min(self.values.values()) if self.higher_is_better else max(self.values.values())

    @property
    def passes_every_seed(self) -> bool:
        return all((v >= self.threshold) if self.higher_is_better else (v <= self.threshold)
                   for v in self.values.values())


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
    tolerances: list[ToleranceMargin] = field(default_factory=list)
    metrics: list[MetricMargin] = field(default_factory=list)
    quick: bool = False
    nulls: list = field(default_factory=list)  # nulls.NullResult
    rules: list = field(default_factory=list)  # rules.RuleRow
    problems: list[str] = field(default_factory=list)

    @property
    def kill_rate(self) -> float:
        return sum(m.killed for m in self.mutants) / len(self.mutants) if self.mutants else 1.0

    @property
    def diagnosis_rate(self) -> float:
        killed = [m for m in self.mutants if m.killed]
        return sum(m.diagnosed for m in killed) / len(killed) if killed else 1.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "kill_rate": self.kill_rate,
                           "diagnosis_rate": self.diagnosis_rate, "ok": self.ok},
                          indent=1, default=str)


MIN_DIAGNOSIS_RATE = 0.8
MAX_INTEGRATION_SHARE = 0.2


def cascade_of(function: str, run: GradeRun) -> dict[str, float]:
    """Points a mistake in ``function`` loses outside its own tests and integration tests."""
    lost = {}
    for test, outcome in zip(run.results.tests, run.outcomes, strict=False):
        if test.score < test.max_score and function not in outcome.tags \
                and not outcome.integration:
            lost[test.name] = round(test.max_score - test.score, 4)
    return lost


def _scores(run: GradeRun) -> list[tuple[str, float]]:
    return [(t.name, t.score) for t in run.results.tests]


def _margins(report: AuditReport, run: GradeRun) -> None:
    for o in run.outcomes:
        for m in o.measures:
            if m["kind"] == "tolerance":
                report.tolerances.append(ToleranceMargin(o.name, m["what"], m["error"],
                                                         m["limit"]))
            elif m["kind"] == "metric":
                found = next((x for x in report.metrics
                              if x.test == o.name and x.what == m["what"]), None)
                if found is None:
                    found = MetricMargin(o.name, m["what"], m["limit"], m["higher_is_better"])
                    report.metrics.append(found)
                found.values[0] = m["value"]


def _metric_seeds(assignment: Assignment, report: AuditReport, run: GradeRun, seeds: int,
                  progress) -> None:
    """Rerun the reference's trained checks with other seeds, in-process (trusted code)."""
    from .data import load_digits_split
    from .grade import run_tests
    from .plugin import GradingPlugin
    from .in_process import in_process_session

    trained = [o for o in run.outcomes if any(m["kind"] == "metric" for m in o.measures)]
    for offset in range(1, seeds):
        progress(f"trained checks of the reference, seed {offset}")
        plugin = GradingPlugin(in_process_session(assignment.reference,
                                                  worker_objects=assignment.worker_objects),
                               assignment.reference, assignment_dir=assignment.directory,
                               default_time_limit=assignment.time_limit,
                               total_time_limit=assignment.total_time_limit,
                               digits_loader=load_digits_split, seed_offset=offset)
        outcomes = run_tests(assignment, plugin, only=[o.nodeid for o in trained])
        for o in outcomes:
            for m in o.measures:
                if m["kind"] != "metric":
                    continue
                for x in report.metrics:
                    if x.test == o.name and x.what == m["what"]:
                        x.values[offset] = m["value"]


def undefined_covers(assignment: Assignment, run: GradeRun) -> list[str]:
    """``covers(...)`` names that the student notebook does not define at its top level: a
    test about a function the student cannot see is a test of nothing they wrote. (Assignments
    imported from otter cover questions, not functions: there only names the master defines
    and the student notebook lacks count.)"""
    covered = {tag for outcome in run.outcomes for tag in outcome.tags}
    missing = covered - _top_level_names(assignment.skeleton)
    if (assignment.directory / "otter-import-report.md").exists():
        missing &= _top_level_names(assignment.master)
    return sorted(missing)


def _top_level_names(path: Path) -> set[str]:
    import ast

    from .notebook import top_level_statements

    return {s.name for s in top_level_statements(nbformat.read(path, as_version=4))
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def check_nulls(assignment: Assignment, report: AuditReport, progress) -> None:
    from .nulls import null_audit

    report.nulls = null_audit(assignment, progress)
    for null in report.nulls:
        if null.paid:
            tests = ", ".join(f"{name!r} ({points:g})" for name, points in null.paid)
            report.problems.append(f"a trivial {null.function} ({null.kind}) earns points in "
                                   f"{tests}")


def audit(assignment: Assignment, *, reruns: int = 3, seeds: int = 5, quick: bool = False,
          progress=lambda msg: None, nulls: bool = False, only_nulls: bool = False
          ) -> AuditReport:
    """``quick``: grade each mutant only up to its first lost point, running the tests of the
    mistake's own function first (enough to prove it is caught and diagnosed; the full list of
    tests that catch it, and the cascade check, need the slow run).
    ``nulls``: run the null audit too (nulls.py; `dlgrade audit` does unless --no-null);
    ``only_nulls``: nothing else."""
    report = AuditReport(assignment.name, quick=quick)
    if only_nulls:
        check_nulls(assignment, report, progress)
        return report
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
    _margins(report, runs[0])
    for t in report.tolerances:
        if t.error > t.limit:
            report.problems.append(f"{t.test}: the reference's own error {t.error:.2e} on "
                                   f"{t.what} exceeds the tolerance {t.limit:.0e}")
    if seeds > 1 and report.metrics:
        _metric_seeds(assignment, report, runs[0], seeds, progress)
    for m in report.metrics:
        if not m.passes_every_seed:
            report.problems.append(f"{m.test}: the reference misses the threshold "
                                   f"{m.threshold:g} on some seed: {m.values}")
    for i in range(1, reruns):
        progress(f"rerun {i + 1} of {reruns}")
        runs.append(grade_notebook(assignment.master, assignment))
    if any(_scores(r) != _scores(runs[0]) for r in runs[1:]):
        report.reruns_identical = False
        report.problems.append("reruns of the reference gave different scores")

    undefined = undefined_covers(assignment, runs[0])
    if undefined:
        report.problems.append(f"tests cover names the student notebook does not define: "
                               f"{undefined} (fix the covers(...) marker or the notebook)")
    report.rules = rule_table(assignment.skeleton, runs[0].outcomes)
    for row in report.rules:
        if not row.sentence:
            report.problems.append(f"{row.test!r} enforces '{row.rule}' for {row.function}, "
                                   "but the student notebook states it nowhere near that "
                                   "function: say it in its docstring or the text before it")

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
            run = None
            own = [o.nodeid for o in runs[0].outcomes
                   if mutant.function in o.tags and not o.integration]
            if quick and own:
                # The mistake's own function's tests first: where they catch it (as they
                # should), the rest of the suite need not run for a yes.
                run = grade_notebook(path, assignment, stop_at_first_loss=True, only=own)
                if not any(t.status != "passed" for t in run.results.tests) or run.grader_error:
                    run = None
            if run is None:
                run = grade_notebook(path, assignment, stop_at_first_loss=quick)
            failed = [t for t in run.results.tests if t.status != "passed"]
            report.mutants.append(MutantResult(
                mutant.name, mutant.function, run.results.score,
                killed=bool(failed) and not run.grader_error,
                failed_tests=[t.number for t in failed],
                diagnosed=any(mutant.diagnosis in t.output for t in failed),
                cascade={} if quick else cascade_of(mutant.function, run)))
    if nulls:
        check_nulls(assignment, report, progress)
    for m in report.mutants:
        if m.cascade:
            lost = ", ".join(f"{name!r} ({points:g})" for name, points in m.cascade.items())
            report.problems.append(f"mutant {m.name} (a mistake in {m.function}) also loses "
                                   f"points in tests of other functions: {lost}; make them "
                                   "independent of it, or mark an end-to-end test integration")
    integration = sum(o.points for o in runs[0].outcomes if o.integration)
    if report.max_score and integration > MAX_INTEGRATION_SHARE * report.max_score:
        report.problems.append(f"integration tests hold {integration:g} of {report.max_score:g} "
                               f"points (at most {MAX_INTEGRATION_SHARE:.0%})")
    survivors = [m.name for m in report.mutants if not m.killed]
    if survivors:
        report.problems.append(f"mutants that lose no points: {survivors}")
    if report.mutants and report.diagnosis_rate < MIN_DIAGNOSIS_RATE:
        report.problems.append(f"only {report.diagnosis_rate:.0%} of the caught mutants are "
                               f"diagnosed by name (at least {MIN_DIAGNOSIS_RATE:.0%} needed)")
    return report


def render(report: AuditReport, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    ok = "[green]ok[/]"
    console.print(f"[bold]Audit of {report.assignment}[/]")
    if report.nulls:
        paying = [n for n in report.nulls if n.paid]
        console.print(f"null audit: {len(report.nulls)} trivial submissions, "
                      + (ok if not paying else f"[red]{len(paying)} earn points[/]"))
        for null in paying:
            console.print(f"  {escape(null.function)} ({null.kind}): "
                          + ", ".join(f"{escape(t)} {p:g}" for t, p in null.paid))
        if not report.mutants and report.skeleton_score is None:  # --null-only
            for problem in report.problems:
                console.print(f"[red]PROBLEM:[/] {escape(problem)}")
            console.print("[bold green]NULL AUDIT PASSED[/]" if report.ok
                          else "[bold red]NULL AUDIT FAILED[/]")
            return
    console.print(f"reference: {report.reference_score:g}/{report.max_score:g} in "
                  f"{report.reference_seconds:.1f} s, peak memory "
                  f"{report.reference_peak_mb:.0f} MB "
                  + (ok if report.reference_score == report.max_score else "[red]FAIL[/]"))
    console.print(f"skeleton: {report.skeleton_score} "
                  + (ok if report.skeleton_score == 0 and not report.skeleton_crashed
                     else "[red]FAIL[/]"))
    console.print("reruns identical: " + (ok if report.reruns_identical else "[red]FAIL[/]"))
    if report.tolerances:
        tight = sorted(report.tolerances, key=lambda t: t.margin)[:8]
        table = Table(title=f"tolerance margins: the {len(tight)} tightest of "
                            f"{len(report.tolerances)} checks (tolerance / reference's own error)")
        for col in ("compared", "reference error", "tolerance", "margin"):
            table.add_column(col)
        for t in tight:
            table.add_row(escape(t.what), f"{t.error:.1e}", f"{t.limit:.0e}",
                          "exact" if t.margin == float("inf") else f"{t.margin:.0f}x")
        console.print(table)
    if report.metrics:
        table = Table(title="trained thresholds: the reference over seeds")
        for col in ("test", "metric", "threshold", "per seed", "worst margin"):
            table.add_column(col)
        for m in report.metrics:
            per_seed = " ".join(f"{v:.3f}" for _, v in sorted(m.values.items()))
            margin = (m.worst - m.threshold) if m.higher_is_better else (m.threshold - m.worst)
            table.add_row(escape(m.test), escape(m.what), f"{m.threshold:g}", per_seed,
                          f"{margin:+.3f}" if m.passes_every_seed else f"[red]{margin:+.3f}[/]")
        console.print(table)
    caught = "first test that catches it" if report.quick else "caught by tests"
    table = Table(title=f"mutants: kill rate {report.kill_rate:.0%}, diagnosed by name "
                        f"{report.diagnosis_rate:.0%}")
    for col in ("mutant", "breaks", "score", caught, "diagnosed", "cascade"):
        table.add_column(col)
    for m in report.mutants:
        cascade = "-" if report.quick else (f"[red]{sum(m.cascade.values()):g}[/]"
                                            if m.cascade else "0")
        table.add_row(m.name, m.function,
                      f"{m.score:g}" if m.killed else f"[red]{m.score:g} SURVIVED[/]",
                      " ".join(f"#{n}" for n in m.failed_tests),
                      "yes" if m.diagnosed else "[yellow]no[/]", cascade)
    console.print(table)
    if report.rules:
        table = Table(title="contract rules the tests enforce, and where the notebook says so")
        for col in ("function", "rule", "notebook sentence"):
            table.add_column(col)
        for row in report.rules:
            table.add_row(row.function, row.rule,
                          escape(row.sentence) if row.sentence else "[red]none[/]")
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
