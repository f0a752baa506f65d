"""Grading in containers (autograder.containers, docker/).

The first tests need no Docker daemon: they check the container's confinement options, the
build context, and every way ``grade_in_container`` can fail (always a valid results.json)
against a stand-in for the Docker client. The integration tests at the end build the CPU
image and grade in it; they run wherever a daemon answers (``make docker-test`` starts a
private one on a machine without) and skip, saying why, elsewhere.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, requires_root

from autograder import containers
from autograder.assignment import load_assignment
from autograder.results import Results

docker = pytest.importorskip("docker", reason="the docker package is not installed "
                             "(pip install 'dlgrade[docker]')")

ASSIGNMENT = "hw1_backprop"


def good_results(score=3.0) -> Results:
    return Results.model_validate({
        "score": score, "execution_time": 1.0, "output": "Graded notebook: x.ipynb",
        "tests": [{"name": "t", "number": "1", "score": score, "max_score": 3.0,
                   "status": "passed" if score == 3.0 else "failed"}]})


# ---- confinement options -------------------------------------------------------------------

def options(tmp_path, **kw):
    return containers.container_options(
        "img", assignment=ASSIGNMENT, submission_dir=tmp_path / "s",
        results_dir=tmp_path / "r", slots_dir=tmp_path / "l", **kw)


def test_container_options_confine_everything(tmp_path):
    opts = options(tmp_path, timeout_s=120, memory_mb=1024, cpus=0.5, pids=100)
    assert opts["network_mode"] == "none"
    assert opts["read_only"] is True
    assert opts["cap_drop"] == ["ALL"]
    assert sorted(opts["cap_add"]) == ["CHOWN", "DAC_OVERRIDE", "KILL", "SETGID", "SETUID"]
    assert opts["security_opt"] == ["no-new-privileges"]
    assert opts["mem_limit"] == opts["memswap_limit"] == "1024m"  # no swap beyond the limit
    assert opts["nano_cpus"] == 500_000_000 and opts["pids_limit"] == 100
    assert opts["init"] is True and opts["ipc_mode"] == "private"
    assert opts["command"][:4] == ["timeout", "-s", "KILL", "120"]  # ends even if we die
    assert opts["environment"]["DLGRADE_ASSIGNMENT"] == ASSIGNMENT
    assert opts["environment"]["DLGRADE_DEVICE"] == "cpu"
    assert "/tmp" in opts["tmpfs"] and "size=" in opts["tmpfs"]["/tmp"]
    mounts = {m["Target"]: m for m in opts["mounts"]}
    assert set(mounts) == {"/autograder/submission", "/autograder/results", "/tmp/dlgrade-slots"}
    assert mounts["/autograder/submission"]["ReadOnly"] is True
    assert mounts["/autograder/results"]["ReadOnly"] is False
    assert mounts["/autograder/submission"]["Source"] == str(tmp_path / "s")
    assert "device_requests" not in opts


def test_cuda_asks_docker_for_the_gpus(tmp_path):
    opts = options(tmp_path, device="cuda")
    assert opts["environment"]["DLGRADE_DEVICE"] == "cuda"
    (request,) = opts["device_requests"]
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]


# ---- build context ---------------------------------------------------------------------------

def test_build_context_holds_what_the_image_needs_and_nothing_else(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-0.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    ctx = containers.stage_context(tmp_path / "ctx", wheels, ca)
    for rel in ("pyproject.toml", "constraints.txt", "autograder/grade.py",
                "autograder/worker.py", "docker/Dockerfile", "docker/Dockerfile.gpu",
                "docker/run_autograder", f"assignments/{ASSIGNMENT}/assignment.toml",
                f"solutions/{ASSIGNMENT}.ipynb", "docker/wheels/torch-0.0-py3-none-any.whl",
                "docker/certs/ca-bundle.crt"):
        assert (ctx / rel).is_file(), rel
    hidden = next((ROOT / "assignments" / ASSIGNMENT / "tests").glob("test_*.py"))
    assert (ctx / hidden.relative_to(ROOT)).read_bytes() == hidden.read_bytes()
    names = {p.name for p in ctx.rglob("*")}
    assert "__pycache__" not in names and ".venv" not in names and ".git" not in names
    assert not list((ctx / "solutions").glob("*.py"))  # the master builders stay out
    assert os.access(ctx / "docker" / "run_autograder", os.X_OK)


def test_build_network_follows_the_daemon():
    """The host's network for builds, except under a user-remapping daemon, which refuses it:
    then its bridge, or no network at all (and wheels downloaded here)."""
    class Networks:
        def __init__(self, names):
            self.names = names

        def list(self, names):
            return [n for n in names if n in self.names]

    client = FakeClient()
    client.networks = Networks([])
    assert containers.remapped_root(client) is None
    assert containers.build_network(client) == "host"
    client.remap = 100000
    assert containers.remapped_root(client) == (100000, 100000)
    assert containers.build_network(client) == "none"
    client.networks = Networks(["bridge"])
    assert containers.build_network(client) is None
    client.info = lambda: {"SecurityOptions": ["name=userns"], "DockerRootDir": "/srv/docker"}
    with pytest.raises(containers.ContainerError, match="does not say to which uid"):
        containers.remapped_root(client)


# ---- grade_in_container against a stand-in client --------------------------------------------

class FakeContainer:
    def __init__(self, client, opts):
        self.client, self.opts = client, opts
        self.attrs = {"State": {"OOMKilled": client.oom}}
        self.removed = self.killed = False

    def mount(self, target) -> Path:
        return Path(next(m["Source"] for m in self.opts["mounts"] if m["Target"] == target))

    def start(self):
        """Plays the image's run_autograder: reads the submission, writes results."""
        submission = list(self.mount("/autograder/submission").iterdir())
        self.client.seen_submission = {p.name: p.read_bytes() for p in submission}
        self.client.owners = {target: (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) for
                              target in ("/autograder/submission", "/autograder/results",
                                         "/tmp/dlgrade-slots")
                              for st in [os.stat(self.mount(target))]}
        if self.client.results is not None:
            (self.mount("/autograder/results") / "results.json").write_text(self.client.results)

    def wait(self, timeout):
        self.client.wait_timeout = timeout
        if self.client.hang:
            import requests
            raise requests.exceptions.ReadTimeout("read timed out")
        return {"StatusCode": self.client.code}

    def kill(self):
        self.killed = True

    def reload(self):
        pass

    def logs(self, **kw):
        return b"dlgrade: grading submission\nTraceback: something broke\n"

    def remove(self, force=False):
        self.removed = True


class FakeClient:
    def __init__(self, *, results=None, code=0, oom=False, hang=False, image=True, remap=None):
        self.results, self.code, self.oom, self.hang, self.image = results, code, oom, hang, image
        self.remap = remap
        self.created: list[FakeContainer] = []
        self.seen_submission = None
        self.images = self
        self.containers = self

    def info(self):
        if self.remap is None:
            return {"SecurityOptions": ["name=seccomp,profile=default"],
                    "DockerRootDir": "/var/lib/docker"}
        return {"SecurityOptions": ["name=seccomp,profile=default", "name=userns"],
                "DockerRootDir": f"/var/lib/docker/{self.remap}.{self.remap}"}

    def get(self, name):  # images.get
        if not self.image:
            raise docker.errors.ImageNotFound(f"no such image: {name}")

    def create(self, **opts):  # containers.create
        self.created.append(FakeContainer(self, opts))
        return self.created[-1]

    def prune(self, filters=None):
        self.pruned = filters

    def close(self):
        self.closed = True


@pytest.fixture
def notebook(tmp_path):
    path = tmp_path / "in" / "My HW (final).ipynb"
    path.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), path)
    return path


def run_fake(monkeypatch, tmp_path, notebook, client, **kw):
    monkeypatch.setattr(containers, "connect", lambda *a, **k: client)
    out = tmp_path / "out"
    path = containers.grade_in_container("dlgrade:test", notebook, ASSIGNMENT, out, **kw)
    assert path == out / "results.json"
    results = Results.model_validate_json(path.read_bytes())  # valid, whatever happened
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers  # the per-run mounts are gone
    return results, out


def test_results_of_the_container_are_returned(monkeypatch, tmp_path, notebook):
    client = FakeClient(results=good_results().model_dump_json())
    results, out = run_fake(monkeypatch, tmp_path, notebook, client, timeout_s=50)
    assert results.score == 3.0 and results.tests[0].status == "passed"
    (container,) = client.created
    assert container.removed and not container.killed
    assert client.wait_timeout > 50  # the container's own limit fires first
    assert client.seen_submission == {notebook.name: notebook.read_bytes()}
    assert b"grading submission" in (out / "container.log").read_bytes()
    assert client.pruned == {"label": containers.LABEL, "until": "1h"}


@requires_root
def test_mounts_are_private_to_the_containers_root(monkeypatch, tmp_path, notebook):
    """The worker's uid must not enter the mounts; under a user-remapping daemon they belong
    to the uid the container's root is on this host, and so does a slot-lock folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    client = FakeClient(results=good_results().model_dump_json())
    run_fake(monkeypatch, tmp_path, notebook, client)
    assert client.owners["/autograder/submission"] == (0, 0, 0o700)
    assert client.owners["/autograder/results"] == (0, 0, 0o700)
    assert client.owners["/tmp/dlgrade-slots"] == (0, 0, 0o700)
    client = FakeClient(results=good_results().model_dump_json(), remap=231072)
    results, _ = run_fake(monkeypatch, tmp_path, notebook, client)
    assert results.score == 3.0
    assert set(client.owners.values()) == {(231072, 231072, 0o700)}
    assert client.created[0].mount("/tmp/dlgrade-slots") == tmp_path / "dlgrade-slots-231072"


def test_a_container_that_writes_no_results_is_a_grader_error(monkeypatch, tmp_path, notebook):
    results, _ = run_fake(monkeypatch, tmp_path, notebook, FakeClient(code=2))
    assert results.score == 0 and results.tests == []
    assert "GRADER ERROR" in results.output and "exited with code 2" in results.output
    assert "something broke" in results.output  # the container's last words


def test_a_hung_container_is_killed(monkeypatch, tmp_path, notebook):
    client = FakeClient(hang=True)
    results, _ = run_fake(monkeypatch, tmp_path, notebook, client, timeout_s=7)
    assert client.created[0].killed and client.created[0].removed
    assert "GRADER ERROR" in results.output and "within 7 s" in results.output


def test_out_of_memory(monkeypatch, tmp_path, notebook):
    results, _ = run_fake(monkeypatch, tmp_path, notebook, FakeClient(code=137, oom=True),
                          memory_mb=700)
    assert "GRADER ERROR" in results.output and "700 MB" in results.output
    # A worker killed by the OOM killer while the grader survived: the grade stands, noted.
    client = FakeClient(results=good_results(1.0).model_dump_json(), oom=True)
    results, _ = run_fake(monkeypatch, tmp_path, notebook, client, memory_mb=700)
    assert results.score == 1.0 and "GRADER ERROR" not in results.output
    assert "memory limit (700 MB)" in results.output


def test_invalid_results_from_the_container(monkeypatch, tmp_path, notebook):
    results, _ = run_fake(monkeypatch, tmp_path, notebook, FakeClient(results='{"score": "x"'))
    assert "GRADER ERROR" in results.output and "invalid results.json" in results.output


def test_missing_image_says_how_to_build_it(monkeypatch, tmp_path, notebook):
    client = FakeClient(image=False)
    results, _ = run_fake(monkeypatch, tmp_path, notebook, client)
    assert client.created == []
    assert "GRADER ERROR" in results.output and "containers build" in results.output


def test_bad_arguments_never_reach_docker(monkeypatch, tmp_path, notebook):
    client = FakeClient(results=good_results().model_dump_json())
    monkeypatch.setattr(containers, "connect", lambda *a, **k: client)
    for name in ("../hw1_backprop", "hw1 backprop", ".hidden", ""):
        path = containers.grade_in_container("img", notebook, name, tmp_path / "o")
        assert "invalid assignment name" in json.loads(path.read_text())["output"]
    path = containers.grade_in_container("img", tmp_path / "none.ipynb", ASSIGNMENT,
                                         tmp_path / "o")
    assert "is not a file" in json.loads(path.read_text())["output"]
    assert client.created == []


def test_no_daemon(monkeypatch, tmp_path, notebook):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    path = containers.grade_in_container("img", notebook, ASSIGNMENT, tmp_path / "o")
    results = json.loads(path.read_text())
    assert results["score"] == 0
    assert "GRADER ERROR" in results["output"] and "no Docker daemon" in results["output"]
    assert containers.daemon_problem() is not None


def test_daemon_script_is_valid_shell(tmp_path):
    script = ROOT / "scripts" / "docker-daemon.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    proc = subprocess.run([str(script), "status"], capture_output=True, text=True,
                          env={**os.environ, "DLGRADE_DOCKER_STATE": str(tmp_path)}, check=True)
    assert "dockerd: stopped" in proc.stdout and f"unix://{tmp_path}/docker.sock" in proc.stdout


# ---- integration: build the image, grade in it -----------------------------------------------

PROBE = r'''
def _dlgrade_probe():
    """What student code can reach inside the container: everything here must be denied."""
    import json, os, socket
    def can(action):
        try:
            action()
            return True
        except Exception:
            return False
    def connect():
        with socket.socket() as s:
            s.settimeout(2)
            s.connect(("1.1.1.1", 53))
    src = "/autograder/source"
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    found = {
        "uid": os.getuid(), "euid": os.geteuid(), "groups": os.getgroups(),
        "cap_eff": status["CapEff"].strip(), "cap_prm": status["CapPrm"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
        "list_source": can(lambda: os.listdir(src)),
        "read_tests": can(lambda: open(f"{src}/assignments/hw1_backprop/tests/"
                                       "test_hw1_backprop.py").read(1)),
        "read_master": can(lambda: open(f"{src}/solutions/hw1_backprop.ipynb").read(1)),
        "read_submission": can(lambda: os.listdir("/autograder/submission")),
        "write_results": can(lambda: open("/autograder/results/forged.json", "w").write("{}")),
        "write_root": can(lambda: open("/opt/dlgrade/forged", "w").write("x")),
        "grader_environ": can(lambda: open(f"/proc/{os.getppid()}/environ").read(1)),
        "network": can(connect),
        "interfaces": sorted(os.listdir("/sys/class/net")),
    }
    print("DLGRADE-PROBE " + json.dumps(found), flush=True)


def affine_forward(x, w, b):
    if not getattr(affine_forward, "probed", False):
        affine_forward.probed = True
        _dlgrade_probe()
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)
'''


@pytest.fixture(scope="module")
def image():
    """The CPU image, built from this tree (from the layer cache after the first time)."""
    problem = containers.daemon_problem()
    if problem:
        pytest.skip(f"container integration tests need a Docker daemon: {problem}")
    client = containers.connect(timeout=1800)
    base = os.environ.get("DLGRADE_DOCKER_BASE")
    if base is None:
        # No registry here? scripts/docker-daemon.sh base-image makes this one offline.
        try:
            client.images.get("dlgrade-base:bookworm")
            base = "dlgrade-base:bookworm"
        except docker.errors.ImageNotFound:
            pass
    tag = os.environ.get("DLGRADE_DOCKER_TEST_IMAGE", "dlgrade:test")
    containers.build_image(tag, base=base, wheels=containers.default_wheels(), client=client)
    return tag


def grade(image, notebook, out, **kw) -> dict:
    path = containers.grade_in_container(image, notebook, ASSIGNMENT, out, **kw)
    return json.loads(path.read_text())


def test_solution_earns_full_marks_in_the_container(image, tmp_path):
    assignment = load_assignment(ASSIGNMENT)
    results = grade(image, assignment.master, tmp_path)
    assert "GRADER ERROR" not in results["output"], results["output"]
    assert len(results["tests"]) >= 15
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) > 0
    # Inside Docker's seccomp profile the worker has no namespaces: uid isolation does it.
    # That is the instructor's business (the container's log), not the student's page.
    assert "relying on uid and rlimits" in (tmp_path / "container.log").read_text()
    assert "relying on uid and rlimits" not in results["output"]


def test_skeleton_earns_zero_in_the_container(image, tmp_path):
    results = grade(image, load_assignment(ASSIGNMENT).skeleton, tmp_path)
    assert "GRADER ERROR" not in results["output"], results["output"]
    assert results["score"] == 0 and len(results["tests"]) >= 15
    for test in results["tests"]:
        assert "not implemented yet" in test["output"], (test["name"], test["output"])


def test_student_code_in_the_container_is_confined(image, tmp_path):
    master = nbformat.read(load_assignment(ASSIGNMENT).master, as_version=4)
    master.cells.append(nbformat.v4.new_code_cell(PROBE))
    notebook = tmp_path / "probe.ipynb"
    nbformat.write(master, notebook)
    results = grade(image, notebook, tmp_path / "out")
    assert "GRADER ERROR" not in results["output"], results["output"]
    line = next(x for x in results["output"].splitlines() if x.startswith("DLGRADE-PROBE "))
    found = json.loads(line.removeprefix("DLGRADE-PROBE "))
    assert found["uid"] == found["euid"] >= 61000 and found["groups"] in ([], [found["uid"]])
    assert found["cap_eff"] == found["cap_prm"] == "0000000000000000"
    assert found["no_new_privs"] == "1"
    denied = ("list_source", "read_tests", "read_master", "read_submission", "write_results",
              "write_root", "grader_environ", "network")
    assert {k: found[k] for k in denied} == dict.fromkeys(denied, False)
    assert found["interfaces"] == ["lo"]
    assert results["score"] == sum(t["max_score"] for t in results["tests"])  # still graded


CRASH_AFTER_WRITING = r'''
def affine_forward(x, w, b):
    import os
    os.makedirs(os.path.join(os.environ["HOME"], "left", "behind"))  # a fresh home each time
    open(os.path.join(os.environ["HOME"], "left", "file"), "w").write("x")
    os._exit(1)
'''


def test_a_crashed_worker_restarts_in_the_container(image, tmp_path):
    """Each restart clears what the dead worker left in its 0700 home: root in the container
    needs DAC_OVERRIDE for that, or every later test is an internal grader error."""
    master = nbformat.read(load_assignment(ASSIGNMENT).master, as_version=4)
    master.cells.append(nbformat.v4.new_code_cell(CRASH_AFTER_WRITING))
    notebook = tmp_path / "crash.ipynb"
    nbformat.write(master, notebook)
    results = grade(image, notebook, tmp_path / "out")
    assert "GRADER ERROR" not in results["output"], results["output"]
    crashed = [t for t in results["tests"] if "exited with code 1" in t["output"]]
    assert len(crashed) >= 5  # every test that calls affine_forward, each in a new worker
    assert not [t["output"] for t in results["tests"] if "internal grader error" in t["output"]]
    assert 0 < results["score"] < sum(t["max_score"] for t in results["tests"])


def test_a_container_past_its_time_limit_is_a_grader_error(image, tmp_path):
    """The notebook hangs while loading (a default argument is evaluated with its `def`), so
    the container's 3 s limit is what stops it on a machine of any speed."""
    master = nbformat.read(load_assignment(ASSIGNMENT).master, as_version=4)
    master.cells.append(nbformat.v4.new_code_cell(
        "import time\ndef hang(_=time.sleep(3600)):\n    pass"))
    notebook = tmp_path / "hang.ipynb"
    nbformat.write(master, notebook)
    results = grade(image, notebook, tmp_path / "out", timeout_s=3)
    assert results["score"] == 0 and results["tests"] == []
    assert "GRADER ERROR" in results["output"] and "within 3 s" in results["output"]


def test_the_graders_process_holds_only_its_five_capabilities(image, tmp_path):
    """The container's root, as this machine's kernel sees it: CHOWN, DAC_OVERRIDE, KILL,
    SETGID, SETUID and nothing else, no-new-privileges, and (with a user-remapping daemon)
    not this machine's root."""
    client = containers.connect()
    for name in ("s", "r", "l"):
        (tmp_path / name).mkdir(mode=0o700)
    opts = containers.container_options(image, assignment=ASSIGNMENT,
                                        submission_dir=tmp_path / "s", results_dir=tmp_path / "r",
                                        slots_dir=tmp_path / "l", timeout_s=60)
    opts["command"] = ["sleep", "60"]
    container = client.containers.create(**opts)
    try:
        container.start()
        container.reload()
        pid = container.attrs["State"]["Pid"]
        status_file = Path(f"/proc/{pid}/status")
        if not status_file.exists():
            pytest.skip("the Docker daemon runs on another machine: its processes are not here")
        status = dict(line.split(":", 1) for line in status_file.read_text().splitlines())
    finally:
        container.remove(force=True)
    bits = {"CHOWN": 0, "DAC_OVERRIDE": 1, "KILL": 5, "SETGID": 6, "SETUID": 7}
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == sum(1 << b for b in
                                                                          bits.values())
    assert status["NoNewPrivs"].strip() == "1"
    host_uid = int(status["Uid"].split()[0])
    if containers.remapped_root(client) is not None:
        assert host_uid != 0
    else:
        assert host_uid == 0  # root in the container is root here: see README, Containers
