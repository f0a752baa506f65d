"""Issue 14: one student never reaches another, nor the answers, nor what a grading leaves.

Each case is a hostile notebook graded end to end, in the sandbox modes that apply: with
namespaces the worker sees an allow-list view of the file system (interpreter, libraries,
system trees) and nothing else exists for it; without them (Docker's default profile,
Gradescope) only the uid and file modes protect, and the start-up probe refuses to grade
when a place it must not read is readable.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import autograder.grade
from autograder import _launch
from autograder.assignment import load_assignment
from autograder.batch import BatchError, run_batch
from autograder.confinement import CANARY_NAME, place_canary, released_artifacts
from autograder.release import build_release
from autograder.sandbox import Sandbox, SandboxConfig, worker_view
from corpus.harness import Expect, assignment_variant, check, grade
from corpus.notebooks import FULL_MARKS, MASTER_PATH, POINTS, TINY, variant, write
from test_corpus_exploits import (BLOCKED, graded, readable_copy, relu_cheat,  # noqa: F401
                                  without_namespaces)

ROOT = Path(__file__).resolve().parent.parent
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="uid separation needs a root grader")


@pytest.fixture(params=["namespaces", "no-namespaces"])
def confinement(request, monkeypatch, tmp_path):
    """The two ways a root grader confines a separate-uid worker. Without namespaces the
    assignment must sit in a root-only folder (as Gradescope's setup leaves it), else the
    probe refuses to grade: the returned assignment folder is such a copy."""
    if os.geteuid() != 0:
        pytest.skip("uid separation needs a root grader")
    if request.param == "no-namespaces":
        without_namespaces(monkeypatch)
        source = tmp_path / "source"
        folder = assignment_variant(source)
        source.chmod(0o700)
        return folder
    return TINY


# ---- the worker's view of the file system -------------------------------------------------

def test_the_worker_view_is_an_allow_list():
    view = worker_view(sys.executable)
    assert "/usr" in view and "/etc" in view
    assert any(Path(sys.prefix) == Path(p) or Path(p) in Path(sys.prefix).parents for p in view)
    for secret in (ROOT / "solutions", ROOT / "assignments", ROOT / "tests", Path("/tmp"),
                   Path("/root"), Path("/home")):
        assert not any(secret == Path(p) or Path(p) in secret.parents for p in view), secret


@root_only
def test_nothing_outside_the_view_exists_for_the_worker(tmp_path):
    """With namespaces, a world-readable file outside the allow-list (a classmate's notebook in
    a folder nobody named as private) is simply absent, as is the repository's source."""
    folder = Path("/var/tmp") / f"dlgrade-stray-{os.getpid()}"
    folder.mkdir(mode=0o755)
    try:
        readable_copy(MASTER_PATH, folder / "alice.ipynb")
        sandbox = Sandbox(SandboxConfig())
        sandbox.start()
        try:
            paths = [str(folder), str(folder / "alice.ipynb"), str(ROOT / "README.md"),
                     str(ROOT / "autograder"), str(ROOT / "solutions")]
            probe = sandbox.request("probe", {"paths": paths}, 10)["value"]
            assert probe["readable"] == []
        finally:
            sandbox.close()
    finally:
        (folder / "alice.ipynb").unlink()
        folder.rmdir()


@root_only
def test_a_classmate_in_a_world_readable_folder_is_out_of_reach(world_dir, tmp_path):
    """A folder nobody named private, readable by every uid: with namespaces it does not
    exist for the worker. (Without them nothing can hide it: the batch names its folders and
    refuses unless they are unreadable, see test_corpus_batch_hardening.)"""
    classmate = world_dir / "alice.ipynb"
    readable_copy(MASTER_PATH, classmate)
    graded(tmp_path, relu_cheat(f"open({str(classmate)!r}).read()"))


# ---- released answers ------------------------------------------------------------------------

@pytest.fixture
def released(world_dir):
    """`dlgrade release` into a world-readable folder, as the README's command does."""
    release = build_release(load_assignment(str(TINY)), world_dir / "release")
    assert (release.autograder_zip.stat().st_mode & 0o777) == 0o600
    assert str(release.autograder_zip.resolve()) in released_artifacts()
    return release.autograder_zip


def test_a_released_zip_cannot_be_read(released, tmp_path, confinement):
    graded(tmp_path, relu_cheat(f"open({str(released)!r}, 'rb').read(4)"),
           assignment=confinement)


@root_only
def test_a_readable_released_zip_stops_grading_without_namespaces(released, tmp_path,
                                                                   monkeypatch):
    """Someone made the zip world-readable: without namespaces the grader refuses rather than
    grade next to the answers; with them the zip does not exist for the worker."""
    released.chmod(0o644)
    folder = assignment_variant(tmp_path / "source")
    (tmp_path / "source").chmod(0o700)
    path = write(variant(), tmp_path / "submission.ipynb")
    code, results = grade(path, tmp_path, assignment=folder)
    check(code, results, Expect(8.0))
    without_namespaces(monkeypatch)
    code, results = grade(path, tmp_path, assignment=folder)
    check(code, results, Expect(0, graded=False, exit_code=3, output=(
        "sandbox self-test failed", "instructor's log")))
    assert str(released) not in results["output"]  # operator details stay with the operator


@root_only
def test_a_canary_in_a_confidential_folder_is_probed(tmp_path, monkeypatch):
    """A confidential folder of mode 0711 cannot be listed, but its files can be opened by
    name: the canary catches that without namespaces."""
    without_namespaces(monkeypatch)
    folder = assignment_variant(tmp_path / "source")
    (tmp_path / "source").chmod(0o700)
    classmates = Path("/var/tmp") / f"dlgrade-classmates-{os.getpid()}"
    classmates.mkdir(mode=0o711)
    try:
        canary = place_canary(classmates)
        assert canary is not None and canary.name == CANARY_NAME
        canary.chmod(0o644)
        path = write(variant(), tmp_path / "submission.ipynb")
        run = autograder.grade.grade_notebook(path, load_assignment(str(folder)),
                                              confidential=[classmates])
        assert run.grader_error and run.results.tests == []
        assert any(str(canary) in note for note in run.operator_notes), run.operator_notes
        canary.chmod(0o600)
        run = autograder.grade.grade_notebook(path, load_assignment(str(folder)),
                                              confidential=[classmates])
        assert not run.grader_error and run.results.score == 8.0
    finally:
        for p in classmates.iterdir():
            p.unlink()
        classmates.rmdir()


# ---- what a grading leaves behind ------------------------------------------------------------

def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(pid))
    return found


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.parametrize("namespaces", ["on", "off"])
def test_a_killed_grader_takes_every_process_of_its_worker(tmp_path, namespaces):
    """The batch kills a grader that runs past its limit: its worker, and a daemon the
    student started in a new session, must not live on into the next grading."""
    if os.geteuid() != 0:
        pytest.skip("uid separation needs a root grader")
    seconds = f"{random.randint(5000, 9000)}.{os.getpid()}"
    nb = variant(relu_forward=f'''import os, time
def relu_forward(x):
    if os.fork() == 0:
        os.setsid()
        os.execv("/bin/sleep", ["sleep", "{seconds}"])
    time.sleep(600)''')
    path = write(nb, tmp_path / "submission.ipynb")
    folder = TINY
    if namespaces == "off":  # the assignment root-only, or grading is refused before any code
        folder = assignment_variant(tmp_path / "source")
        (tmp_path / "source").chmod(0o700)
    env = {**os.environ, "DLGRADE_NAMESPACES": namespaces, "PYTHONPATH": str(ROOT)}
    grader = subprocess.Popen(
        [sys.executable, "-m", "autograder.cli", "grade", str(path), "-a", str(folder),
         "--results", str(tmp_path / "results.json"), "-q"], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert _wait_for(lambda: _processes_with(seconds), 30), "the daemon never started"
        os.kill(grader.pid, signal.SIGKILL)
        grader.wait()
        assert _wait_for(lambda: not _processes_with(seconds), 10), _processes_with(seconds)
    finally:
        grader.kill()
        for pid in _processes_with(seconds):
            os.kill(pid, signal.SIGKILL)


def _shm_keys() -> set[int]:
    with open("/proc/sysvipc/shm") as fh:
        header, *rows = [line.split() for line in fh]
    return {int(row[header.index("key")]) for row in rows}


SHM_WRITER = '''import ctypes
def relu_forward(x):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    ident = libc.shmget({key}, 1 << 20, 0o1666)
    address = libc.shmat(ident, None, 0) if ident >= 0 else None
    if address in (None, ctypes.c_void_p(-1).value):
        return np.zeros_like(x), x  # the segment must exist, or the case proves nothing
    ctypes.memmove(address, b"answers of a classmate", 22)
    return np.maximum(0, x), x'''


@root_only
@pytest.mark.parametrize("namespaces", [True, False])
def test_shared_memory_does_not_outlive_the_grading(tmp_path, monkeypatch, namespaces):
    """A segment left by one submission would be read by the next under the same uid: with
    namespaces it lives in the worker's own IPC namespace, without them the sweep removes it."""
    key = random.randint(1 << 20, 1 << 30)
    folder = TINY
    if not namespaces:
        without_namespaces(monkeypatch)
        folder = assignment_variant(tmp_path / "source")
        (tmp_path / "source").chmod(0o700)
    path = write(variant(relu_forward=SHM_WRITER.format(key=key)), tmp_path / "sub.ipynb")
    code, results = grade(path, tmp_path, assignment=folder)
    check(code, results, Expect(8.0))
    assert key not in _shm_keys()


@root_only
def test_the_sweep_removes_a_uid_s_ipc_objects_and_temporary_files():
    """The sweep a new grader runs for its slot (and a dying grader's supervisor runs)."""
    uid = 61000 + 63  # the last slot: tests of other workers take the first ones
    key = random.randint(1 << 20, 1 << 30)
    leftover = Path("/tmp") / f"dlgrade-leftover-{key}"
    script = (f"import ctypes, os\nlibc = ctypes.CDLL(None)\n"
              f"assert libc.shmget({key}, 4096, 0o1600) >= 0\n"
              f"open({str(leftover)!r}, 'w').write('x')\n")
    subprocess.run([sys.executable, "-I", "-c", script], user=uid, group=uid, extra_groups=[],
                   check=True)
    assert key in _shm_keys() and leftover.exists()
    assert _launch.sysv_ipc_objects(uid)
    subprocess.run([sys.executable, "-I", _launch.__file__, "--sweep", str(uid)], check=True)
    assert key not in _shm_keys() and not leftover.exists()
    assert _launch.sysv_ipc_objects(uid) == []


# ---- a batch of three students ----------------------------------------------------------------

EXPORT_METADATA = "".join(
    f"submission_{n}:\n  :submitters:\n  - :name: {name}\n    :sid: '{n}'\n"
    for n, name in ((1, "alice"), (2, "bob"), (3, "mallory")))


def classmates_cheat(paths) -> str:
    """mallory's relu_forward: it earns its points only by reading a classmate's notebook
    or results, so a full score would mean one student reached another."""
    return relu_cheat(f"""
found = []
for path in {[str(p) for p in paths]!r}:
    try:
        with open(path) as fh:
            fh.read(1)
        found.append(path)
    except OSError:
        pass
assert found, "no classmate's file could be read"
""")


def three_students(layout: str, world: Path, out: Path) -> tuple[Path, list[Path]]:
    """alice and bob submit the master, mallory the cheat; every input file world-readable.
    Returns what to grade and the classmates' files mallory goes for."""
    if layout == "folders":
        source = world / "submissions"
        notebooks = {name: source / name / "hw.ipynb" for name in ("alice", "bob", "mallory")}
        inputs = [notebooks["alice"], notebooks["bob"]]
        ids = {"alice": "alice", "bob": "bob"}
    else:
        source = world / "export.zip"
        notebooks = {name: world / "export" / f"submission_{n}" / "hw.ipynb"
                     for n, name in ((1, "alice"), (2, "bob"), (3, "mallory"))}
        inputs = [out / "input" / f"submission_{n}" / "hw.ipynb" for n in (1, 2)]
        ids = {"alice": "submission_1", "bob": "submission_2"}
    leaks = inputs + [out / "students" / ids[name] / "results.json" for name in ("alice", "bob")]
    leaks.append(out / "grades.csv")
    for name, path in notebooks.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write(classmates_cheat(leaks) if name == "mallory" else variant(), path)
    if layout == "export zip":
        (world / "export" / "submission_metadata.yml").write_text(EXPORT_METADATA)
        with zipfile.ZipFile(source, "w") as zf:
            for path in sorted((world / "export").rglob("*")):
                zf.write(path, path.relative_to(world / "export"))
    for path in [world, *world.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return source, leaks


@root_only
@pytest.mark.parametrize("layout", ["folders", "export zip"])
@pytest.mark.parametrize("namespaces", ["on", "off"])
def test_a_batch_of_three_cannot_read_one_another(world_dir, tmp_path, monkeypatch, layout,
                                                 namespaces):
    monkeypatch.setenv("DLGRADE_NAMESPACES", namespaces)
    assignment = TINY
    if namespaces == "off":
        assignment = assignment_variant(tmp_path / "source")
        (tmp_path / "source").chmod(0o700)
    out = tmp_path / "out"
    source, leaks = three_students(layout, world_dir, out)
    if namespaces == "off" and layout == "folders":
        # World-readable classmates and nothing to hide them: refused before any code runs.
        with pytest.raises(BatchError, match="chmod 700"):
            run_batch(source, str(assignment), out, progress=False)
        assert not (out / "students").exists()
        assert not list(source.rglob(CANARY_NAME))
        source.chmod(0o700)
    summary = run_batch(source, str(assignment), out, progress=False)
    assert (summary.graded, summary.grader_errors) == (3, 0)
    assert all(path.exists() for path in leaks)  # what mallory went for was there
    scores = {}
    for student in (out / "students").iterdir():
        results = json.loads((student / "results.json").read_text())
        scores[student.name] = results["score"]
        assert "EXPLOIT WORKED" not in results["output"]
    mallory = "mallory" if layout == "folders" else "submission_3"
    assert scores.pop(mallory) == FULL_MARKS - POINTS["relu_forward"]
    assert set(scores.values()) == {FULL_MARKS}
    mallory_results = json.loads((out / "students" / mallory / "results.json").read_text())
    assert "no classmate's file could be read" in mallory_results["output"]
    assert not list(out.rglob(CANARY_NAME)) and not list(world_dir.rglob(CANARY_NAME))


UNPRIVILEGED_GRADER = """
import json
from autograder.sandbox import Sandbox, SandboxConfig
sandbox = Sandbox(SandboxConfig())
sandbox.start()
probe = sandbox.request("probe", {"paths": %r}, 10)["value"]
print(json.dumps({"mode": sandbox.mode, "notes": sandbox.launch_notes, **probe}))
sandbox.close()
"""


@root_only
def test_an_unprivileged_grader_gets_the_same_view(tmp_path):
    """An instructor's laptop: the grader is an ordinary user, namespaces come from a user
    namespace, and the allow-list view must be built all the same (proc included)."""
    from autograder.sandbox import _other_can_execute

    if not _other_can_execute(sys.executable) or not os.access(ROOT, os.R_OK):
        pytest.skip(f"{sys.executable} is not executable by other uids (private home)")
    if not all(os.stat(p).st_mode & 0o005 for p in (ROOT, *ROOT.parents)):
        pytest.skip(f"{ROOT} is not readable by other uids")
    script = UNPRIVILEGED_GRADER % ([str(ROOT / "README.md"), str(ROOT / "solutions")],)
    proc = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
         sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
        cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["mode"] == "same-uid" and result["uid"] == 65534
    assert result["notes"] == ["namespaces: mount, network, pid, ipc"], result["notes"]
    assert result["readable"] == [] and result["network"] is False
