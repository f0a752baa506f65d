"""An assignment's data files (``files`` in assignment.toml, issue 15): in the worker's working
directory, read-only, before the notebook loads; in the student release; a missing one is
the instructor's error, said plainly, with a results file all the same."""
from __future__ import annotations

import os

import pytest

from autograder.assignment import AssignmentError, load_assignment
from autograder.release import build_release
from corpus.harness import Expect, check, grade, graded_except
from corpus.notebooks import variant, write

READER = variant(
    imports="import numpy as np\nSCALE = float(open('data/scale.txt').read())",
    relu_forward="""def relu_forward(x):
    try:
        open('data/scale.txt', 'w').write('0')
        return np.zeros_like(x), x  # the file could be changed: must not happen
    except OSError:
        return np.maximum(0, x) * SCALE, x""")


def with_files(tmp_path, files, contents=None):
    from corpus.harness import assignment_variant

    folder = assignment_variant(tmp_path / "source")
    for name, text in (contents or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    toml = folder / "assignment.toml"
    # Before the [limits] table, so that it is a top-level key.
    toml.write_text(f"files = {files!r}\n".replace("'", '"') + toml.read_text())
    return folder


@pytest.mark.parametrize("namespaces", ["on", "off"])
def test_declared_files_are_in_the_working_directory_read_only(tmp_path, monkeypatch,
                                                               namespaces):
    if namespaces == "off" and os.geteuid() != 0:
        pytest.skip("without namespaces the worker is confined by uid: needs a root grader")
    monkeypatch.setenv("DLGRADE_NAMESPACES", namespaces)
    folder = with_files(tmp_path, ["data/scale.txt"], {"data/scale.txt": "1.0\n"})
    (tmp_path / "source").chmod(0o700)  # secrets root-only, as without namespaces they must be
    path = write(READER, tmp_path / "submission.ipynb")
    code, results = grade(path, tmp_path, assignment=folder)
    check(code, results, Expect(8.0))


def test_the_values_come_from_the_file(tmp_path):
    folder = with_files(tmp_path, ["data/scale.txt"], {"data/scale.txt": "2.0\n"})
    path = write(READER, tmp_path / "submission.ipynb")
    code, results = grade(path, tmp_path, assignment=folder)
    check(code, results, Expect(graded_except("relu_forward"),
                                failed={"relu_forward": ("largest relative error",)}))


def test_a_missing_file_is_the_instructors_error(tmp_path):
    folder = with_files(tmp_path, ["data/absent.csv"])
    path = write(variant(), tmp_path / "submission.ipynb")
    code, results = grade(path, tmp_path, assignment=folder)
    check(code, results, Expect(0, graded=False, exit_code=3, output=(
        "GRADER ERROR (not a problem with your submission", "'data/absent.csv' is missing")))


@pytest.mark.parametrize("name", ["../secret.txt", "/etc/passwd"])
def test_a_file_outside_the_folder_is_refused(tmp_path, name):
    folder = with_files(tmp_path, [name])
    with pytest.raises(AssignmentError, match="must be a path inside the assignment folder"):
        load_assignment(str(folder)).public_files()


def test_the_student_release_ships_the_files(tmp_path):
    folder = with_files(tmp_path, ["data/scale.txt"], {"data/scale.txt": "1.0\n"})
    release = build_release(load_assignment(str(folder)), tmp_path / "release")
    assert (release.student / "data" / "scale.txt").read_text() == "1.0\n"
    assert "data/scale.txt" in release.files


def test_requirements_are_listed_for_make_and_the_images(tmp_path, capsys):
    """`dlgrade requirements` prints the packages assignments declare, one per line, for the
    `pip install -r` of `make install` (the Docker images read assignment.toml the same way)."""
    from autograder.cli import main

    for name, reqs in (("a", '["scipy>=1", "numpy"]'), ("b", '["numpy"]')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "assignment.toml").write_text(f"requirements = {reqs}\n")
    assert main(["requirements", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out == "numpy\nscipy>=1\n"
    assert main(["requirements", str(tmp_path / "missing")]) == 2
    assert "unknown assignment" in capsys.readouterr().err
