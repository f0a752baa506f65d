"""The batch's tables: ``grades.csv`` (one row per student, one column per test) and
``grades-diff.csv`` (the grades a re-run changed, and why)."""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from .results import read_results
from .student_state import _read_json
from .submissions import Submission
from .textsafe import csv_cell, escape_control


def _people(sub: Submission) -> str:
    return ", ".join(p.get("name") or p.get("email") or p.get("sid") for p in sub.submitters)


@dataclass
class _Change:
    sub: Submission
    previous: dict
    new: tuple[float, float]
    reason: str

    @property
    def changed(self) -> bool:
        old = (float(self.previous["score"]), float(self.previous["max_score"]))
        return any(abs(a - b) > 1e-9 for a, b in zip(old, self.new, strict=True))


# ---- grades.csv ----------------------------------------------------------------------------

def _fmt(value: float) -> str:
    return f"{round(float(value), 4):g}"


def _cell(text) -> str:
    """A text cell from the input (a name, a file name): one line, no terminal escapes, never
    a spreadsheet formula. Numbers we format ourselves do not go through this."""
    return csv_cell(escape_control(str(text), single_line=True))


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_grades_csv(out: Path, subs: list[Submission]) -> Path:
    """One row per student (per submitter of a group), one column per test, then the total."""
    loaded = []
    columns: list[str] = []
    suite_max = 0.0
    for sub in subs:
        student_dir = out / "students" / sub.id
        status = _read_json(student_dir / "status.json") or {}
        results = read_results(student_dir / "results.json") if status else None
        by_name: dict[str, float] = {}
        for test in results.tests if results is not None else []:
            key, n = test.name, 1
            while key in by_name:  # two tests with one name: keep both columns
                n += 1
                key = f"{test.name} ({n})"
            by_name[key] = test.score
            if key not in columns:
                columns.append(key)
        if results is not None and results.tests:
            suite_max = max(suite_max, results.max_score)
        loaded.append((sub, status, results, by_name))
    rows = [["submission", "name", "email", "sid", "notebook", *map(_cell, columns), "total",
             "max_score", "status"]]
    for sub, status, results, by_name in loaded:
        state = status.get("state")
        if state == "done":
            label = "graded" if sub.notebook is not None else sub.problem_kind
            scores = [_fmt(by_name.get(c, 0.0)) for c in columns]
            total = _fmt(results.score if results is not None else 0.0)
        else:
            label = "grader error" if state == "grader_error" else "not graded"
            scores = [_fmt(by_name[c]) if c in by_name else "" for c in columns]
            total = ""
        notebook = sub.notebook.name if sub.notebook is not None else ""
        for person in sub.submitters or [{}]:
            rows.append([_cell(sub.id), _cell(person.get("name", "")),
                         _cell(person.get("email", "")), _cell(person.get("sid", "")),
                         _cell(notebook), *scores, total, _fmt(suite_max), label])
    return _write_csv(out / "grades.csv", rows)


def write_diff_csv(out: Path, changes: list[_Change]) -> Path:
    """grades-diff.csv: the submissions this run regraded whose total or maximum changed."""
    rows = [["submission", "names", "old_total", "new_total", "old_max", "new_max", "reason"]]
    for change in changes:
        if change.changed:
            rows.append([_cell(change.sub.id), _cell(_people(change.sub)),
                         _fmt(change.previous["score"]), _fmt(change.new[0]),
                         _fmt(change.previous["max_score"]), _fmt(change.new[1]),
                         change.reason])
    return _write_csv(out / "grades-diff.csv", rows)


