"""The Gradescope results.json schema, and writing it so that a file always exists.

Test messages and the top-level output carry text the student's code printed or raised; every
result escapes control characters in them as it is built or changed (a validator), so no writer
of results.json, console or page can pass on a terminal escape sequence.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .textsafe import escape_control

Visibility = Literal["visible", "hidden", "after_due_date", "after_published"]


class TestResult(BaseModel):
    model_config = ConfigDict(validate_assignment=True)

    name: str
    number: str
    score: float
    max_score: float
    status: Literal["passed", "failed"]
    output: str = ""
    output_format: Literal["text", "md", "html", "simple_format", "ansi"] = "text"
    visibility: Visibility = "visible"
    tags: list[str] = Field(default_factory=list)

    @field_validator("name", "output")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        return escape_control(value)


class Results(BaseModel):
    model_config = ConfigDict(validate_assignment=True)

    score: float
    execution_time: float
    output: str = ""
    output_format: Literal["text", "md", "html", "simple_format", "ansi"] = "text"
    visibility: Visibility = "visible"
    stdout_visibility: Visibility = "hidden"
    tests: list[TestResult] = Field(default_factory=list)
    # Gradescope keeps it unread; {"points_possible": N} when the total is scaled to N points.
    extra_data: dict = Field(default_factory=dict)

    @field_validator("output")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        return escape_control(value)

    @property
    def max_score(self) -> float:
        """The most this submission can score: the assignment's ``points_possible`` where the
        total is scaled to it (as otter does), else the sum of the tests' maxima."""
        scaled = self.extra_data.get("points_possible")
        if isinstance(scaled, (int, float)) and not isinstance(scaled, bool):
            return float(scaled)
        return sum(t.max_score for t in self.tests)

    @property
    def grader_error(self) -> bool:
        """The grader, not the submission, failed (``grader_error_results``). The text is the
        fallback for the one writer that cannot set extra_data: run_autograder's shell when
        Python cannot start."""
        return self.extra_data.get("grader_error") is True or self.output.startswith(GRADER_ERROR)


def read_results(path: Path) -> Results | None:
    """A results.json as the model; None where there is none, or it is not a valid one (a
    grading process that died half way, a file written by something else)."""
    try:
        return Results.model_validate_json(Path(path).read_bytes())
    except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


def scaled_total(score: float, possible: float, points_possible: float | None) -> float:
    """otter's rule for ``points_possible``: the earned fraction of the tests' maxima, times
    ``points_possible`` (0 when there is nothing to earn)."""
    if points_possible is None:
        return score
    return round(score / possible * points_possible, 10) if possible else 0.0


def write_results(results: Results, path: Path) -> None:
    """Atomic: a reader never sees a half-written file, and a crash leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(results.model_dump_json(indent=2))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def error_results(message: str, execution_time: float = 0.0, tests=()) -> Results:
    """A valid results file for a submission that could not be graded at all."""
    return Results(score=0.0, execution_time=execution_time, output=message, tests=list(tests))


GRADER_ERROR = "GRADER ERROR"
GRADER_ERROR_LEAD = (f"{GRADER_ERROR} (not a problem with your submission; please tell the "
                     "instructor): ")


def grader_error_results(detail: str, execution_time: float = 0.0) -> Results:
    """The grader (not the submission) failed: the student is told so, and results.json says
    it in ``extra_data`` (``"grader_error": true``) for the batch's retries and exit codes."""
    results = error_results(GRADER_ERROR_LEAD + detail, execution_time)
    results.extra_data = {"grader_error": True}
    return results


