"""Writing the assignment folder of an otter import (``dlgrade import-otter``): assignment.toml,
the master, the student notebook, the generated tests and public checks, the data files, and
the report with the self-check's scores."""
from __future__ import annotations

import ast
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .convert import convert
from .parse import Case, Conversion, OtterImportError, Question, _ident
from .runtime import _indent

# ---- writing the assignment folder ------------------------------------------------------------

def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _case_literal(case: Case, function: str | None = None) -> str:
    extra = ""
    if case.success_message:
        extra += f",\n                success_message={str(case.success_message)!r}"
    if case.failure_message:
        extra += f",\n                failure_message={str(case.failure_message)!r}"
    if case.kind == "doctest":
        return (f"    DoctestCase({case.name!r}, {case.source!r},\n"
                f"                want={case.want!r}, points={_number(case.points)}{extra}),")
    return (f"    FunctionCase({case.name!r}, {function}, "
            f"points={_number(case.points)}{extra}),")


def _function_source(case: Case, new_name: str) -> str:
    """The test function as written in the master, renamed so pytest does not collect it."""
    lines = case.source.splitlines()
    tree = ast.parse(case.source)
    func = tree.body[0]
    row = func.lineno - 1
    lines[row] = re.sub(rf"\bdef\s+{re.escape(func.name)}\b", f"def {new_name}", lines[row],
                        count=1)
    return "\n".join(lines)


def _idents(questions: list[Question]) -> dict[str, str]:
    """A distinct Python name for every question (``q1.a`` and ``q1_a`` both exist in the wild)."""
    out: dict[str, str] = {}
    for q in questions:
        ident, n = _ident(q.name), 2
        while ident in out.values():
            ident, n = f"{_ident(q.name)}_{n}", n + 1
        out[q.name] = ident
    return out


def _imports(conv: Conversion, cases, runner: str) -> str:
    kinds = sorted({"DoctestCase" if c.kind == "doctest" else "FunctionCase" for c in cases})
    return f"from autograder.otter.runtime import {', '.join(kinds + [runner])}"


def _functions(ident: str, q: Question, cases) -> tuple[list[str], dict[str, str]]:
    """The exception-style test functions as written, renamed so pytest does not collect them."""
    blocks, names = [], {}
    for n, case in enumerate(q.cases, start=1):
        if case.kind == "function" and case in cases:
            names[case.name] = f"_{ident}_case_{n}"
            blocks.append(f"# master notebook cell {case.cell}\n"
                          + _function_source(case, names[case.name]))
    return blocks, names


def _case_list(var: str, cases, names) -> str:
    return "\n".join([f"{var} = ["] + [_case_literal(c, names.get(c.name)) for c in cases]
                     + ["]"])


def render_tests(conv: Conversion, master_name: str, case_time_limit: float,
                 files: list[str] = ()) -> str:
    cases = [c for q in conv.questions for c in q.cases]
    sections = ["\n".join([
        f'"""Tests of {conv.name}, converted from the otter master notebook {master_name} by',
        "`dlgrade import-otter`: each otter test case is a part of a test and earns its points.",
        "",
        "Both kinds of case run here, in the grader, on the notebook's values: doctest-style",
        "cells with the master's imports below as their modules, exception-style test functions",
        "as written (see autograder.otter.runtime). Re-importing overwrites this file.",
        '"""',
        *(["from pathlib import Path", ""] if files or conv.student_files else []),
        "import pytest",
        "",
        _imports(conv, cases, "run_question"),
        "",
        f"MODULES = {json.dumps(conv.modules, sort_keys=True)}",
        *([
            "# The working directory the cases run in: the assignment's files (from this",
            "# folder) and the files the notebook wrote (otter's student_files, read back).",
            "FOLDER = Path(__file__).resolve().parents[1]",
            f"DATA_FILES = {json.dumps(list(files))}",
            f"STUDENT_FILES = {json.dumps(conv.student_files)}"]
          if files or conv.student_files else [])])]
    idents = _idents(conv.questions)
    for q in conv.questions:
        if not q.cases:
            continue
        ident = idents[q.name]
        sections.append(f"# ---- {q.name} (master notebook cell {q.cell}) ".ljust(99, "-"))
        blocks, names = _functions(ident, q, q.cases)
        sections += blocks
        groups = ([("", q.cases)] if q.all_or_nothing else
                  [("public", [c for c in q.cases if not c.hidden]),
                   ("hidden", [c for c in q.cases if c.hidden])])
        for label, group in groups:
            if not group:
                continue
            var = f"{ident}_{label}_cases".replace("__", "_").upper()
            marks = [f"@pytest.mark.points({_number(round(sum(c.points for c in group), 10))})"]
            if any(c.hidden for c in group):
                marks.append(f"@pytest.mark.{conv.hidden_visibility}")
            marks.append(f"@pytest.mark.time_limit({case_time_limit * len(group):g})")
            marks.append(f"@pytest.mark.covers({json.dumps(q.name)})")
            title = f"{q.name}: {label} tests" if label else f"{q.name} (all or nothing)"
            aon = ", all_or_nothing=True" if q.all_or_nothing else ""
            sections.append(_case_list(var, group, names))
            sections.append("\n".join(marks + [
                f"def test_{ident}_{label}".rstrip("_") + "(student, partial):",
                f'    """{title}"""',
                f"    run_question(student, partial, {var}{aon}, modules=MODULES"
                + (", files=(FOLDER, DATA_FILES, STUDENT_FILES))"
                   if files or conv.student_files else ")")]))
    return "\n\n\n".join(sections) + "\n"


def render_public_checks(conv: Conversion) -> str:
    public = [c for q in conv.questions for c in q.cases if not c.hidden]
    sections = ["\n".join([
        f'"""Public checks of {conv.name}: the public otter test cases of each question, run in',
        'your notebook with `check("question")`."""',
        _imports(conv, public, "run_public_cases"),
        "from autograder.public import public_check"])]
    idents = _idents(conv.questions)
    for q in conv.questions:
        cases = [c for c in q.cases if not c.hidden]
        if not cases:
            continue
        ident = idents[q.name]
        blocks, names = _functions(ident, q, cases)
        var = f"{ident}_cases".upper()
        sections += blocks + [_case_list(var, cases, names), "\n".join([
            f"@public_check({json.dumps(q.name)})", f"def check_{ident}(impl):",
            f'    """{q.name}: public tests"""', f"    run_public_cases(impl, {var})"])]
    return "\n\n\n".join(sections) + "\n"


MUTANTS_TEMPLATE = '''"""Known mistakes in {name}, for `dlgrade audit`: otter has none to convert.

Add some (see autograder/mutants.py) to prove that the converted tests catch them.
"""
from autograder.mutants import Mutant  # noqa: F401

MUTANTS: list = []
'''


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def render_toml(conv: Conversion, master_rel: str, case_time_limit: float,
                files: list[str] = ()) -> str:
    lines = ["# Converted from an otter master notebook by `dlgrade import-otter`.",
             f"name = {_toml_str(conv.name)}",
             f"title = {_toml_str(conv.title)}",
             f"master = {_toml_str(master_rel)}",
             f"# {conv.mode_reason}",
             f"mode = {_toml_str(conv.mode)}",
             f"time_limit = {case_time_limit:g}",
             "total_time_limit = 600",
             f"load_time_limit = {60 if conv.mode == 'all' else 30}",
             "# No known-mistake mutants come from otter; add mutants.py to audit the tests.",
             "min_mutants = 0"]
    if conv.cell_prefix:
        lines += ["# otter's intercell seeding: run before every notebook cell",
                  f"cell_prefix = {_toml_str(conv.cell_prefix)}"]
    if files:
        lines += ["# otter's files and student_files: in the worker's working directory",
                  f"files = [{', '.join(_toml_str(f) for f in files)}]"]
    if conv.points_possible is not None:
        lines += ["# otter's points_possible: the total is scaled to it",
                  f"points_possible = {_number(conv.points_possible)}"]
    if conv.requirements:
        lines += ["# otter's requirements: installed by the Gradescope setup, checked when grading",
                  f"requirements = [{', '.join(_toml_str(r) for r in conv.requirements)}]"]
    return "\n".join(lines) + "\n"


def read_requirements(path: Path) -> list[str]:
    """The package lines of a requirements file (comments, blank lines and pip options are
    not packages)."""
    if not path.is_file():
        raise OtterImportError(f"requirements file {path} does not exist (copy it beside the "
                               "master notebook)")
    found = []
    for line in path.read_text().splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith(("#", "-")):
            found.append(line)
    return found


def copy_files(conv: Conversion, source: Path, out: Path) -> list[str]:
    """Copy otter's ``files`` (files or folders beside the master) into the assignment folder;
    returns every file, relative, for assignment.toml."""
    copied = []
    for entry in conv.files:
        rel = Path(entry)
        path = source / rel
        if rel.is_absolute() or ".." in rel.parts:
            raise OtterImportError(f"files entry {entry!r}: only paths beside the master "
                                   "notebook can be converted")
        if not path.exists():
            raise OtterImportError(f"files entry {entry!r}: {path} does not exist (copy it "
                                   "beside the master notebook)")
        found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in found:
            name = file.relative_to(source)
            if any(part.startswith(".") or part == "__pycache__" for part in name.parts):
                continue
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, out / name)
            copied.append(name.as_posix())
    return copied


def render_report(conv: Conversion, master_path: Path, checks: list[str]) -> str:
    total = conv.total_points
    cases = sum(len(q.cases) for q in conv.questions)
    hidden = sum(c.hidden for q in conv.questions for c in q.cases)
    lines = [f"# otter import: {conv.name}", "",
             f"From `{master_path.name}`: {len(conv.questions)} questions, {cases} test cases "
             f"({hidden} hidden), {total:g} points. Mode `{conv.mode}`: {conv.mode_reason}.", ""]
    for q in conv.questions:
        pts = sum(c.points for c in q.cases)
        lines.append(f"- {q.name}: {len(q.cases)} case{'s' * (len(q.cases) != 1)}, "
                     f"{pts:g} point{'s' * (pts != 1)}"
                     + (" (all or nothing)" if q.all_or_nothing else ""))
    skipped = [n for n in conv.notes if not n.converted]
    changed = [n for n in conv.notes if n.converted]
    lines += ["", "## Not converted", ""]
    lines += [n.render() for n in skipped] or ["Nothing: every line was converted."]
    lines += ["", "## Converted with a difference", ""]
    lines += [n.render() for n in changed] or ["None."]
    if checks:
        lines += ["", "## Self-check", ""] + checks
    return "\n".join(lines) + "\n"


@dataclass
class ImportResult:
    directory: Path
    conversion: Conversion
    report: str
    ok: bool
    master_score: tuple[float, float] | None = None
    skeleton_score: tuple[float, float] | None = None


def import_otter(master_path: Path, out: Path, *, name: str | None = None, mode: str = "auto",
                 case_time_limit: float = 10.0, self_check: bool = True,
                 force: bool = False) -> ImportResult:
    """Write the assignment folder; with ``self_check``, grade the master (every case must
    pass) and the student notebook with dlgrade and add the scores to the report."""
    import nbformat

    from ..release import write_skeleton

    master_path = Path(master_path)
    out = Path(out)
    name = name or out.name
    if not re.fullmatch(r"[A-Za-z_][\w-]*", name):
        raise OtterImportError(f"assignment name {name!r}: use letters, digits, _ and -")
    if out.exists() and any(out.iterdir()) and not force:
        raise OtterImportError(f"{out} exists and is not empty (pass --force to overwrite)")
    try:
        nb = nbformat.read(master_path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds
        raise OtterImportError(f"cannot read {master_path}: {exc}") from None
    conv = convert(nb, name, mode=mode, base_dir=master_path.parent)
    if not any(q.cases for q in conv.questions):
        raise OtterImportError(f"{master_path.name} has no otter test cases to convert")
    (out / "master").mkdir(parents=True, exist_ok=True)
    (out / "tests").mkdir(exist_ok=True)
    master_rel = f"master/{name}.ipynb"
    nbformat.write(conv.master, out / master_rel)
    write_skeleton(out / master_rel, out / f"{name}.ipynb")
    files = copy_files(conv, master_path.parent, out)
    (out / "tests" / f"test_{_ident(name)}.py").write_text(
        render_tests(conv, master_path.name, case_time_limit, files))
    (out / "public_checks.py").write_text(render_public_checks(conv))
    if conv.requirements_file:
        conv.requirements += read_requirements(master_path.parent / conv.requirements_file)
    (out / "assignment.toml").write_text(render_toml(conv, master_rel, case_time_limit, files))
    mutants = out / "mutants.py"
    if not mutants.exists():  # the instructor's own, kept across re-imports
        mutants.write_text(MUTANTS_TEMPLATE.format(name=name))
    checks, ok = [], True
    result = ImportResult(out, conv, "", True)
    if self_check:
        from ..assignment import load_assignment
        from ..grade import grade_notebook

        assignment = load_assignment(str(out))
        run = grade_notebook(assignment.master, assignment)
        res = run.results
        result.master_score = (res.score, res.max_score)
        failed = [t for t in res.tests if t.status != "passed"]
        ok = not failed and not run.grader_error and bool(res.tests)
        checks.append(f"- master notebook: {res.score:g} / {res.max_score:g}"
                      + ("" if ok else " (every converted case should pass on the master)"))
        for t in failed:
            first = "\n".join(t.output.strip().splitlines()[:6])
            checks.append(f"  - {t.name}: {_indent(first, 600).strip()}")
        if run.grader_error or not res.tests:
            checks.append(f"  - grader error: {res.output.strip()[:600]}")
        skeleton = grade_notebook(assignment.skeleton, assignment)
        result.skeleton_score = (skeleton.results.score, skeleton.results.max_score)
        checks.append(f"- student notebook (no work done): {skeleton.results.score:g} / "
                      f"{skeleton.results.max_score:g}")
    result.ok = ok
    result.report = render_report(conv, master_path, checks)
    (out / "otter-import-report.md").write_text(result.report)
    return result
