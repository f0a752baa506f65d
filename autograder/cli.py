"""The ``dlgrade`` command."""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .assignment import AssignmentError, load_assignment
from .results import Results, error_results, grader_error_results, write_results
from .textsafe import escape_control


def _shown(text: str) -> str:
    """Text that student code chose (a test message, a file name) as rich markup: shown as
    written, with no markup and no terminal escape sequences acting on the console."""
    return escape(escape_control(text))


def print_table(results: Results, console: Console, title: str) -> None:
    table = Table(title=_shown(title), show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("test")
    table.add_column("score", justify="right")
    table.add_column("why it failed", overflow="fold", max_width=90)
    for t in results.tests:
        style = "green" if t.status == "passed" else "red"
        first = t.output.strip().splitlines()[0] if t.output.strip() else ""
        table.add_row(_shown(t.number), _shown(t.name),
                      f"[{style}]{t.score:g}/{t.max_score:g}[/]",
                      "" if t.status == "passed" else _shown(first))
    console.print(table)
    console.print(f"[bold]Total: {results.score:g} / {results.max_score:g}[/]  "
                  f"({results.execution_time:.1f} s)")
    if results.output.strip():
        console.print(escape_control(results.output.strip()[:3000]), markup=False,
                      highlight=False)


def cmd_grade(args) -> int:
    console = Console(stderr=False)
    results_path = Path(args.results)
    try:
        assignment = load_assignment(args.assignment)
    except AssignmentError as exc:
        write_results(grader_error_results(str(exc)), results_path)
        console.print(f"[red]error:[/] {_shown(str(exc))}")
        return 2
    from .grade import grade_notebook

    submission, scratch = Path(args.submission), None
    if submission.suffix.lower() == ".zip" and submission.is_file():
        from .gradescope import SubmissionError, notebook_in_zip

        scratch = Path(tempfile.mkdtemp(prefix="dlgrade-grade-"))
        try:
            submission = notebook_in_zip(submission, scratch)
        except (SubmissionError, OSError) as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            write_results(error_results(str(exc)), results_path)
            console.print(f"[red]error:[/] {_shown(str(exc))}")
            return 0
    try:
        # The results folder is hidden from the student's code too (earlier results live
        # there).
        run = grade_notebook(submission, assignment, device=args.device,
                             private=[results_path.resolve().parent])
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    write_results(run.results, results_path)
    if not args.quiet:
        # For the instructor running this, not the student: never in results.json.
        # getattr: a GradeRun from before operator_notes existed has none.
        for note in getattr(run, "operator_notes", None) or []:
            for line in escape_control(str(note)).splitlines() or [""]:
                print(f"operator: {line}", file=sys.stderr)
        print_table(run.results, console, f"{assignment.name}: {Path(args.submission).name}")
        console.print(f"results written to {_shown(str(results_path))}")
    # Exit 3 marks a grader failure (retry it), distinct from a low score (exit 0).
    return 3 if run.grader_error else 0


def cmd_release(args) -> int:
    from .release import ReleaseError, build_release, normalize_master_file, write_skeleton

    assignment = load_assignment(args.assignment)
    if assignment.master is not None and assignment.master.exists() \
            and normalize_master_file(assignment.master):
        # Outputs, execution counts and Jupyter's run-time metadata out of the committed master.
        print(f"master normalised: {assignment.master}")
    if args.out is None or Path(args.out).suffix == ".ipynb":
        # Only the student notebook: in place, or at the given path.
        out = Path(args.out) if args.out else assignment.skeleton
        write_skeleton(assignment.master, out)
        print(f"student notebook written to {out}")
        return 0
    try:
        release = build_release(assignment, Path(args.out))
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"student folder:  {release.student}  ({len(release.files)} files)")
    print(f"Gradescope zip:  {release.autograder_zip}")
    return 0


def cmd_batch(args) -> int:
    from .batch import BatchError, run_batch

    console = Console(stderr=True)
    try:
        if args.ray:
            # Only here: the local batch never imports Ray.
            from .ray_batch import run_ray_batch

            summary = run_ray_batch(Path(args.submissions), args.assignment, Path(args.out),
                                    address=args.ray, docker=args.docker, device=args.device,
                                    timeout=args.timeout, progress=not args.quiet,
                                    console=console, regrade=args.regrade)
        else:
            summary = run_batch(Path(args.submissions), args.assignment, Path(args.out),
                                jobs=args.jobs, docker=args.docker, device=args.device,
                                timeout=args.timeout, progress=not args.quiet, console=console,
                                regrade=args.regrade)
    except (BatchError, AssignmentError) as exc:
        console.print(f"[red]error:[/] {_shown(str(exc))}")
        return 2
    console.print(f"{summary.total} submissions: {summary.graded} graded now, "
                  f"{summary.skipped} already graded, {summary.grader_errors} grader errors "
                  f"({summary.seconds:.1f} s)", highlight=False)
    # soft_wrap: a path broken over two lines cannot be copied
    console.print(f"grades written to {_shown(str(summary.csv))}", highlight=False,
                  soft_wrap=True)
    if summary.changes_line():
        console.print(_shown(summary.changes_line()), highlight=False, soft_wrap=True)
    # Exit 3: some submissions hit a grader error; running the batch again retries them.
    return 3 if summary.grader_errors else 0


def cmd_audit(args) -> int:
    from .audit import audit, render

    console = Console()
    assignment = load_assignment(args.assignment)
    with console.status("auditing") as status:
        report = audit(assignment, reruns=args.reruns, seeds=args.seeds, quick=args.quick,
                       progress=lambda msg: status.update(f"{assignment.name}: {msg}"),
                       nulls=not args.no_null, only_nulls=args.null_only)
    render(report, console)
    if args.json:
        args.json.write_text(report.to_json())
    return 0 if report.ok else 1


def cmd_import_otter(args) -> int:
    from .otter.parse import OtterImportError
    from .otter.report import import_otter

    console = Console()
    try:
        with console.status("importing (the self-check grades the master and the student "
                            "notebook)" if not args.no_check else "importing"):
            result = import_otter(Path(args.master), Path(args.out), name=args.name,
                                  mode=args.mode, case_time_limit=args.time_limit,
                                  self_check=not args.no_check, force=args.force)
    except OtterImportError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    console.print(result.report, markup=False, highlight=False, soft_wrap=True)
    console.print(f"assignment written to {result.directory} (report: "
                  f"{result.directory / 'otter-import-report.md'})")
    # Non-zero when the master fails its own converted tests: the conversion needs a look.
    return 0 if result.ok else 1


def cmd_requirements(args) -> int:
    """One PEP 508 line per package the assignments need besides dlgrade (for pip -r)."""
    from .assignment import ASSIGNMENTS_DIR

    names = args.assignments or sorted(p.name for p in ASSIGNMENTS_DIR.iterdir()
                                       if (p / "assignment.toml").exists())
    try:
        wanted = {r for name in names for r in load_assignment(name).requirements}
    except AssignmentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("".join(f"{r}\n" for r in sorted(wanted)), end="")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dlgrade", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="grade one submitted notebook")
    g.add_argument("submission")
    g.add_argument("--assignment", "-a", required=True, help="bundled name or folder path")
    g.add_argument("--results", default="results.json")
    g.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    g.add_argument("--quiet", "-q", action="store_true")
    g.set_defaults(func=cmd_grade)
    r = sub.add_parser("release", help="build the student release and Gradescope's zip "
                       "from the master")
    r.add_argument("assignment")
    r.add_argument("--out", help="a folder: write FOLDER/student/ and FOLDER/autograder.zip; "
                   "a path ending in .ipynb: only the student notebook (default: rewrite the "
                   "notebook in the assignment folder)")
    r.set_defaults(func=cmd_release)
    b = sub.add_parser("batch", help="grade a folder of notebooks or a Gradescope export zip")
    b.add_argument("submissions", help="folder of notebooks (or of one folder per student), "
                   "or Gradescope's 'export submissions' zip")
    b.add_argument("--assignment", "-a", required=True, help="bundled name or folder path")
    b.add_argument("--out", required=True, help="output folder (reuse it to resume)")
    b.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded at once")
    b.add_argument("--docker", metavar="IMAGE", help="grade each submission in this image")
    b.add_argument("--ray", metavar="ADDRESS", help="grade each submission as a task on this "
                   "Ray cluster ('auto': the one `ray start` joined this machine to); needs "
                   "pip install 'dlgrade[ray]' here and on the nodes; Ray's CPUs replace --jobs")
    b.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    b.add_argument("--timeout", type=float, help="wall-clock seconds per submission "
                   "(default: the assignment's budget plus a margin)")
    b.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    b.add_argument("--regrade", action="store_true", help="grade every submission again, "
                   "even those already graded from the same notebook and assignment (the "
                   "changed grades go to grades-diff.csv)")
    b.set_defaults(func=cmd_batch)
    a = sub.add_parser("audit", help="prove the hidden suite: reference, skeleton, mutants, reruns")
    a.add_argument("assignment")
    a.add_argument("--reruns", type=int, default=3)
    a.add_argument("--seeds", type=int, default=5,
                   help="seeds over which the reference's trained checks must pass")
    a.add_argument("--quick", action="store_true",
                   help="grade each mutant only up to the first test that catches it")
    a.add_argument("--null-only", action="store_true",
                   help="only the null audit: trivial implementations must earn 0")
    a.add_argument("--no-null", action="store_true", help="skip the null audit")
    a.add_argument("--json", type=Path, metavar="FILE",
                   help="also write the report as JSON (every mutant's score, failed tests and "
                        "diagnosis; compare two audits to prove a refactor changed no score)")
    a.set_defaults(func=cmd_audit)
    o = sub.add_parser("import-otter", help="convert an otter-grader master notebook into an "
                       "assignment folder")
    o.add_argument("master", help="the otter master notebook")
    o.add_argument("--out", required=True, help="the assignment folder to write")
    o.add_argument("--name", help="assignment name (default: the folder's name)")
    o.add_argument("--mode", choices=["auto", "all", "definitions"], default="auto",
                   help="which notebook code grading runs (auto: 'definitions' unless the "
                   "tests use values computed at the top level)")
    o.add_argument("--time-limit", type=float, default=10.0,
                   help="seconds of student code per test case")
    o.add_argument("--no-check", action="store_true",
                   help="skip grading the master and the student notebook after converting")
    o.add_argument("--force", action="store_true", help="overwrite a non-empty folder")
    o.set_defaults(func=cmd_import_otter)
    q = sub.add_parser("requirements", help="the packages the assignments need besides "
                       "dlgrade's own, one per line (for pip install -r)")
    q.add_argument("assignments", nargs="*", help="names or folders (default: every bundled "
                   "assignment)")
    q.set_defaults(func=cmd_requirements)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
