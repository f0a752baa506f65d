"""`dlgrade batch --ray`: a batch graded as Ray tasks on a real two-node cluster on this
machine (``ray.cluster_utils.Cluster``), a node killed mid-batch, and the same grades.csv as
the local batch; plus the checks a node makes before it grades anyone (these need no Ray).

Without Ray installed (``pip install 'dlgrade[ray]'``) the cluster tests are skipped.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import autograder.ray_batch as ray_batch
from autograder.assignment import load_assignment
from autograder.batch import run_batch
from autograder.cli import main as dlgrade
from autograder.submissions import BatchError
from corpus.notebooks import TINY, master_notebook, variant, write

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed (pip install "
                               "'dlgrade[ray]'): the Ray backend's cluster tests need it")

RELU_WRONG = "def relu_forward(x):\n    return np.zeros_like(x), x"
AFFINE_NO_BIAS = "def affine_forward(x, w, b):\n    return x.reshape(x.shape[0], -1) @ w, (x, w, b)"
SOFTMAX_CRASH = "def softmax_loss(x, y):\n    import os\n    os._exit(1)"
NOTEBOOKS = {"ada": master_notebook(), "alan": master_notebook(),
             "relu-wrong": variant(relu_forward=RELU_WRONG),
             "affine-no-bias": variant(affine_forward=AFFINE_NO_BIAS),
             "softmax-crash": variant(softmax_loss=SOFTMAX_CRASH)}
TOTALS = {"ada": "8", "alan": "8", "relu-wrong": "6", "affine-no-bias": "5",
          "softmax-crash": "5", "nothing": "0"}


def submissions(folder: Path) -> Path:
    folder.mkdir()
    for name, nb in NOTEBOOKS.items():
        write(nb, folder / f"{name}.ipynb")
    (folder / "nothing").mkdir()  # no notebook: graded 0 by the driver, as locally
    (folder / "nothing" / "notes.txt").write_text("forgot it")
    return folder


# ---- without Ray ---------------------------------------------------------------------------

def test_the_local_batch_never_imports_ray():
    code = ("import sys, autograder.cli, autograder.batch, autograder.ray_batch\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ray_missing_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import fails
    subs = submissions(tmp_path / "subs")
    assert dlgrade(["batch", str(subs), "-a", str(TINY), "--out", str(tmp_path / "out"),
                    "--ray", "auto", "-q"]) == 2
    assert "--ray needs Ray" in capsys.readouterr().err


def test_staged_assignment_is_the_same_assignment(tmp_path):
    for name in ("hw1_backprop", "hw6_regularization", str(TINY)):
        original = load_assignment(name)
        bundle = ray_batch.pack_assignment(original)
        root = ray_batch._private_dir(tmp_path / original.name)
        staged = load_assignment(str(ray_batch._stage_assignment(root, bundle)))
        for field in ("name", "title", "mode", "time_limit", "total_time_limit", "limits",
                      "load_time_limit", "files", "forbidden_imports", "points_possible"):
            assert getattr(staged, field) == getattr(original, field), (name, field)
        assert staged.master.read_bytes() == original.master.read_bytes()
        assert staged.master.parent != staged.directory.parent  # both hidden by the root
        assert root in staged.directory.parents and root in staged.master.parents
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in root.rglob("*")
                   if p.is_file()), name


def test_staging_refuses_a_folder_it_did_not_make(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    with pytest.raises(BatchError, match="not a folder of this user"):
        ray_batch._private_dir(tmp_path / "link")
    if os.geteuid() != 0:
        return  # only root can give a folder away
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 61999, 61999)  # as a sandbox uid could have made it in /tmp
    with pytest.raises(BatchError, match="not a folder of this user"):
        ray_batch._private_dir(foreign)


def _job(engine: str) -> dict:
    return {"token": "t", "engine": engine, "docker": None}


def test_a_node_without_namespaces_or_with_another_engine_refuses(tmp_path, monkeypatch):
    bundle = ray_batch.pack_assignment(load_assignment(str(TINY)))
    root = ray_batch._private_dir(tmp_path / "other-engine")
    folder, why = ray_batch._node_ready(root, bundle, _job("0" * 64))
    assert folder is None and "differs from the driver's" in why
    assert not (root / "assignment").exists()  # nothing staged for a refused node
    # Refused once, refused for every later task of the batch on that node.
    assert ray_batch._node_ready(root, bundle, _job(ray_batch.engine_digest()))[1] == why

    monkeypatch.setattr(ray_batch, "preflight",
                        lambda paths: {"readable": [], "namespaces": False, "mode": "uid"})
    root = ray_batch._private_dir(tmp_path / "no-namespaces")
    folder, why = ray_batch._node_ready(root, bundle, _job(ray_batch.engine_digest()))
    assert folder is None and "cannot grade with user namespaces" in why

    monkeypatch.setattr(ray_batch, "preflight",
                        lambda paths: {"readable": [str(paths[0])], "namespaces": True})
    root = ray_batch._private_dir(tmp_path / "leaky")
    assert "a student's code could read" in ray_batch._node_ready(
        root, bundle, _job(ray_batch.engine_digest()))[1]


def test_toml_written_back_reads_the_same():
    config = {"title": "Q\"uote\\ é \x7f\n", "mode": "all", "n": 3, "x": 1e-5, "flag": True,
              "list": ["a", "b"], "cell_prefix": "import numpy as np\nnp.random.seed(0)\n",
              "weird key": 1, "limits": {"memory_mb": 1024}}
    import tomllib

    assert tomllib.loads(ray_batch.write_toml(config)) == config


# ---- a real two-node cluster ---------------------------------------------------------------

# Node death is noticed within a few seconds, not Ray's default half minute.
FAST_FAILURE = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                "health_check_failure_threshold": 4}
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": this machine's loopback only
NODE = {"node_ip_address": "127.0.0.1", "object_store_memory": 96 << 20,
        "include_dashboard": False}


@pytest.fixture(scope="module")
def cluster():
    if not HAVE_RAY:
        pytest.skip("Ray is not installed (pip install 'dlgrade[ray]')")
    # Every node at 127.0.0.1, and the driver too: Ray otherwise rewrites a loopback address
    # into this machine's network address (ray.init) and cannot reach nodes bound to loopback.
    saved = os.environ.get(LOOPBACK_ONLY)
    os.environ[LOOPBACK_ONLY] = "0"
    import ray
    import ray._private.ray_constants as constants
    from ray.cluster_utils import Cluster

    enabled, constants.ENABLE_RAY_CLUSTER = constants.ENABLE_RAY_CLUSTER, False
    # Ray keeps each cluster's session under /tmp/ray: ours are removed after, others' kept.
    sessions = Path("/tmp/ray")
    before = set(sessions.glob("session_*"))
    started = Cluster(initialize_head=True, connect=False,
                      head_node_args={**NODE, "num_cpus": 1, "_system_config": FAST_FAILURE})
    try:
        ray.init(address=started.address, log_to_driver=False, logging_level="error")
        yield started
    finally:
        ray.shutdown()
        started.shutdown()
        for session in set(sessions.glob("session_*")) - before:
            if not session.is_symlink():
                shutil.rmtree(session, ignore_errors=True)
        constants.ENABLE_RAY_CLUSTER = enabled
        if saved is None:
            os.environ.pop(LOOPBACK_ONLY, None)
        else:
            os.environ[LOOPBACK_ONLY] = saved


def read_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@needs_ray
def test_ray_batch_survives_a_dead_node_and_matches_the_local_batch(cluster, tmp_path):
    subs = submissions(tmp_path / "subs")
    local = run_batch(subs, str(TINY), tmp_path / "local", jobs=2, progress=False)
    assert (local.graded, local.grader_errors) == (6, 0)
    expected = (tmp_path / "local" / "grades.csv").read_bytes()
    assert {r["submission"]: r["total"] for r in read_rows(tmp_path / "local" / "grades.csv")} \
        == TOTALS

    worker = cluster.add_node(**NODE, num_cpus=2)
    cluster.wait_for_nodes()
    head_id = cluster.head_node.node_id
    staging, out = tmp_path / "staging", tmp_path / "ray-out"
    outcome: dict = {}

    def batch():
        try:
            outcome["summary"] = ray_batch.run_ray_batch(
                subs, str(TINY), out, staging=str(staging), progress=False, max_retries=3)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=batch, daemon=True)
    thread.start()
    # Kill the worker node while a submission is being graded on it.
    deadline, in_flight = time.monotonic() + 60, []
    while time.monotonic() < deadline and thread.is_alive() and not in_flight:
        in_flight = [p for p in staging.glob(f"*/{worker.node_id}/work/*")
                     if (p / "out" / "log.txt").exists()]
        time.sleep(0.05)
    assert in_flight, "no submission was seen grading on the worker node"
    killed = {p.name.rsplit("-", 1)[0] for p in in_flight}
    cluster.remove_node(worker, allow_graceful=False)
    thread.join(timeout=150)
    assert not thread.is_alive(), "the Ray batch did not finish"
    if "error" in outcome:
        raise outcome["error"]
    summary = outcome["summary"]
    assert (summary.total, summary.graded, summary.grader_errors) == (6, 6, 0)
    # Same grades.csv, byte for byte; each submission written once, by the driver.
    assert (out / "grades.csv").read_bytes() == expected
    for name in NOTEBOOKS:
        status = json.loads((out / "students" / name / "status.json").read_text())
        assert status["state"] == "done" and status["exit_code"] == 0
        if name in killed:  # regraded on the node that lives
            assert status["node"] == head_id, (name, status)
    local_page = (tmp_path / "local" / "students" / "ada" / "feedback.html").read_text()
    assert (out / "students" / "ada" / "feedback.html").read_text() == local_page
    assert "operator: sandbox:" in (out / "students" / "ada" / "log.txt").read_text()
    # The live node's staging folder (hidden tests included) is gone.
    assert not list(staging.glob(f"*/{head_id}"))

    # Resumable: a second run grades nothing and starts no task.
    again = ray_batch.run_ray_batch(subs, str(TINY), out, staging=str(staging), progress=False)
    assert (again.skipped, again.graded, again.grader_errors) == (6, 0, 0)
    assert (out / "grades.csv").read_bytes() == expected


@needs_ray
def test_ray_batch_regrades_a_changed_notebook_only(cluster, tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    write(master_notebook(), subs / "ada.ipynb")
    write(variant(relu_forward=RELU_WRONG), subs / "bob.ipynb")
    out, staging = tmp_path / "out", tmp_path / "staging"
    args = ["batch", str(subs), "-a", str(TINY), "--out", str(out), "--ray", "auto", "-q"]
    first = ray_batch.run_ray_batch(subs, str(TINY), out, staging=str(staging), progress=False)
    assert (first.graded, first.grader_errors) == (2, 0)
    assert [r["total"] for r in read_rows(out / "grades.csv")] == ["8", "6"]
    write(master_notebook(), subs / "bob.ipynb")
    # Through the command line; Ray is initialised already, so --ray's address is not used.
    assert dlgrade(args) == 0
    printed = capsys.readouterr().err
    assert "2 submissions: 1 graded now, 1 already graded, 0 grader errors" in printed
    assert "1 grade changed" in printed
    assert (out / "grades-diff.csv").read_text().splitlines()[1] == \
        "bob,,6,8,8,8,notebook changed"


@needs_ray
def test_student_code_on_a_node_reaches_neither_the_staging_nor_ray(cluster, tmp_path):
    """The staged hidden tests and master, classmates' notebooks on the node, Ray's session
    folder (its sockets) and the cluster's port: nothing exists or answers for the worker."""
    staging = tmp_path / "staging"
    host, port = cluster.address.rsplit(":", 1)
    places = [str(staging), "/tmp/ray", str(TINY), str(tmp_path)]
    spy = f'''def relu_forward(x):
    import glob, os, socket
    seen = []
    for path in {places!r} + glob.glob({str(staging)!r} + "/*/*/*/*/*"):
        if os.path.exists(path):
            seen.append("EXISTS " + path)
    for address in [({host!r}, {int(port)})]:
        s = socket.socket()
        s.settimeout(1)
        try:
            s.connect(address)
            seen.append("CONNECTED %s:%d" % address)
        except OSError:
            pass
        finally:
            s.close()
    print("SPY", seen)
    return np.maximum(0, x), x'''
    # The spy works: run here, outside any sandbox, it sees them and reaches Ray.
    import contextlib
    import io

    import numpy as np

    here, printed = {"np": np}, io.StringIO()
    exec(spy, here)  # noqa: S102 - our own test code
    with contextlib.redirect_stdout(printed):
        here["relu_forward"](np.zeros(2))
    assert f"EXISTS {TINY}" in printed.getvalue()
    assert f"CONNECTED {cluster.address}" in printed.getvalue()
    subs = tmp_path / "subs"
    subs.mkdir()
    write(variant(relu_forward=spy), subs / "spy.ipynb")
    write(master_notebook(), subs / "victim.ipynb")
    out = tmp_path / "out"
    summary = ray_batch.run_ray_batch(subs, str(TINY), out, staging=str(staging),
                                      progress=False)
    assert (summary.graded, summary.grader_errors) == (2, 0)
    results = json.loads((out / "students" / "spy" / "results.json").read_text())
    assert results["score"] == 8 and "SPY []" in results["output"], results["output"]
    assert "SPY [" + "'" not in results["output"]
