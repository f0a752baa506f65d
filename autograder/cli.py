"""The ``dlgrade`` command."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .assignment import AssignmentError, load_assignment
from .results import Results, error_results, write_results


def print_table(results: Results, console: Console, title: str) -> None:
    table = Table(title=title, show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("test")
    table.add_column("score", justify="right")
    table.add_column("why it failed", overflow="fold", max_width=90)
    for t in results.tests:
        style = "green" if t.status == "passed" else "red"
        first = t.output.strip().splitlines()[0] if t.output.strip() else ""
        table.add_row(t.number, escape(t.name), f"[{style}]{t.score:g}/{t.max_score:g}[/]",
                      "" if t.status == "passed" else escape(first))
    console.print(table)
    console.print(f"[bold]Total: {results.score:g} / {results.max_score:g}[/]  "
                  f"({results.execution_time:.1f} s)")
    if results.output.strip():
        console.print(results.output.strip()[:3000], markup=False, highlight=False)


def cmd_grade(args) -> int:
    console = Console(stderr=False)
    results_path = Path(args.results)
    try:
        assignment = load_assignment(args.assignment)
    except AssignmentError as exc:
        write_results(error_results(f"GRADER ERROR: {exc}"), results_path)
        console.print(f"[red]error:[/] {exc}")
        return 2
    from .grade import grade_notebook

    run = grade_notebook(Path(args.submission), assignment, device=args.device)
    write_results(run.results, results_path)
    if not args.quiet:
        print_table(run.results, console, f"{assignment.name}: {Path(args.submission).name}")
        console.print(f"results written to {results_path}")
    # Exit 3 marks a grader failure (retry it), distinct from a low score (exit 0).
    return 3 if run.grader_error else 0


def cmd_release(args) -> int:
    from .release import write_skeleton

    assignment = load_assignment(args.assignment)
    out = Path(args.out) if args.out else assignment.skeleton
    if out.suffix != ".ipynb":
        out = out / f"{assignment.name}.ipynb"
    write_skeleton(assignment.master, out)
    print(f"student notebook written to {out}")
    return 0


def cmd_audit(args) -> int:
    from .audit import audit, render

    console = Console()
    assignment = load_assignment(args.assignment)
    with console.status("auditing") as status:
        report = audit(assignment, reruns=args.reruns,
                       progress=lambda msg: status.update(f"{assignment.name}: {msg}"))
    render(report, console)
    return 0 if report.ok else 1


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
    r = sub.add_parser("release", help="build the student notebook from the master")
    r.add_argument("assignment")
    r.add_argument("--out", help="output notebook or folder (default: the assignment folder)")
    r.set_defaults(func=cmd_release)
    a = sub.add_parser("audit", help="prove the hidden suite: reference, skeleton, mutants, reruns")
    a.add_argument("assignment")
    a.add_argument("--reruns", type=int, default=3)
    a.set_defaults(func=cmd_audit)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
