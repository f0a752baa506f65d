"""An assignment's hidden tests keep their helpers in tests/conftest.py (reached through a
fixture); pytest gives every assignment's conftest the same module name (and a test file the
same name as another assignment's), so a process grading several assignments (the meta-tests,
an audit after a grading) must still give each its own."""
from __future__ import annotations

import shutil

from autograder.assignment import load_assignment
from autograder.grade import grade_notebook
from corpus.notebooks import MASTER_PATH, TINY

OWN_CONFTEST_TEST = '''import pytest


@pytest.mark.points(1)
@pytest.mark.covers("relu_forward")
def test_own_helpers(probes):
    """relu_forward: the helpers of {label}"""
    assert probes.LABEL == {label!r}, probes.LABEL
'''

CONFTEST = '''from autograder.testing import probes_fixture

LABEL = {label!r}

probes = probes_fixture(__name__)
'''


def copy_with_conftest(tmp_path, label: str):
    folder = tmp_path / f"tiny_{label}"
    shutil.copytree(TINY, folder)
    (folder / "tests" / "conftest.py").write_text(CONFTEST.format(label=label))
    (folder / "tests" / "test_own.py").write_text(OWN_CONFTEST_TEST.format(label=label))
    return load_assignment(str(folder))


def test_each_assignment_gets_its_own_conftest_in_one_process(tmp_path):
    first, second = copy_with_conftest(tmp_path, "first"), copy_with_conftest(tmp_path, "second")
    for assignment, label in ((first, "first"), (second, "second"), (first, "first")):
        run = grade_notebook(MASTER_PATH, assignment)
        own = [t for t in run.results.tests if "the helpers of" in t.name]
        assert [(t.name, t.status) for t in own] == \
            [(f"relu_forward: the helpers of {label}", "passed")], [t.output for t in own]
        assert run.results.score == run.results.max_score == 9
