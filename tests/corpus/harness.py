"""Grading a corpus case end to end, through the CLI, and checking what it wrote."""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from autograder.cli import main as dlgrade
from autograder.results import Results

from .notebooks import FULL_MARKS, POINTS, TEST_NAMES, TINY


@dataclass
class Expect:
    """What grading a case must give: the exact total, which tests fail with which message
    text (every other test must pass), and text the top-level output must contain."""

    score: float
    failed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    output: tuple[str, ...] = ()
    graded: bool = True  # False: the file was refused, so there are no tests at all
    exit_code: int = 0


def graded_except(*failing: str) -> float:
    """The full score minus the points of the tests of ``failing`` functions."""
    return FULL_MARKS - sum(POINTS[name] for name in failing)


def grade(path: Path, out_dir: Path, *, assignment: Path = TINY, extra=()) -> tuple[int, dict]:
    """``dlgrade grade``: its exit code and the results.json it wrote (schema-checked)."""
    results_path = out_dir / "results" / "results.json"
    code = dlgrade(["grade", str(path), "-a", str(assignment), "--results", str(results_path),
                    "-q", *extra])
    text = results_path.read_text()
    Results.model_validate_json(text)  # Gradescope's schema: types, statuses, visibility
    return code, json.loads(text)


def check(code: int, results: dict, expect: Expect) -> None:
    summary = json.dumps(results, indent=1)[:6000]
    assert code == expect.exit_code, summary
    assert results["score"] == expect.score, summary
    for text in expect.output:
        assert text in results["output"], (text, summary)
    if not expect.graded:
        assert results["tests"] == [], summary
        return
    by_name = {t["name"]: t for t in results["tests"]}
    assert sorted(by_name) == sorted(TEST_NAMES.values()), summary
    for function, name in TEST_NAMES.items():
        test = by_name[name]
        if function in expect.failed:
            assert test["status"] == "failed" and test["score"] == 0, (name, summary)
            for text in expect.failed[function]:
                assert text in test["output"], (name, text, test["output"])
        else:
            assert test["status"] == "passed", (name, test["output"])


def assignment_variant(tmp_path: Path, **settings) -> Path:
    """A copy of the target with top-level settings of assignment.toml replaced."""
    folder = tmp_path / "corpus_tiny"
    shutil.copytree(TINY, folder)
    toml = (folder / "assignment.toml").read_text()
    for key, value in settings.items():
        toml, count = re.subn(rf"^{key} = .*$", f"{key} = {json.dumps(value)}", toml, flags=re.M)
        assert count == 1, key
    (folder / "assignment.toml").write_text(toml)
    return folder
