"""The worker sandbox: confinement, limits, crashes and restarts."""
import os
import sys
import time

import numpy as np
import pytest

from autograder.sandbox import Limits, Sandbox, SandboxConfig, WorkerError
from conftest import ROOT, requires_root


def load(sb, code, forbidden=(), reason=""):
    return sb.request("load", {"cells": [(1, code)], "mode": "all", "forbidden": list(forbidden),
                               "assignment": "test", "forbidden_reason": reason}, 20)["value"]


def call(sb, name, *args, timeout=5.0):
    return sb.request("call", {"target": {"name": name}, "args": list(args), "kwargs": {}},
                      timeout)


@pytest.fixture(params=["separate-uid", "same-uid"])
def sandbox(request):
    """Both modes: a dedicated uid (the norm as root) and the grader's own uid (the fallback
    where the interpreter is not reachable by another uid, or the grader is not root)."""
    sb = Sandbox(SandboxConfig(hide=[str(ROOT / "solutions")],
                               limits=Limits(memory_mb=1024, file_mb=4),
                               isolate_user=request.param == "separate-uid"))
    sb.start()
    yield sb
    sb.close()


def test_round_trip_keeps_types(sandbox):
    load(sandbox, "def f(*a):\n    return a\n")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    reply = call(sandbox, "f", x, 3, 2.5, None, "s", [1, (2, 3)], {"k": np.int64(4)})
    value = reply["value"]
    assert type(value) is tuple and value[0].dtype == np.float32
    np.testing.assert_array_equal(value[0], x)
    assert value[1:5] == (3, 2.5, None, "s")
    assert value[5] == [1, (2, 3)]
    assert value[6]["k"].dtype == np.int64 and int(value[6]["k"]) == 4


def test_objects_stay_in_the_worker(sandbox):
    load(sandbox, "class Net:\n    def __init__(self):\n        self.p = {'W': [1.0]}\n")
    ref = call(sandbox, "Net")["value"]
    assert ref.type_name == "Net"
    got = sandbox.request("get", {"target": {"handle": ref.handle, "path": ["p"]}}, 5)
    assert got["value"] == {"W": [1.0]}


def test_object_dtype_is_never_sent(sandbox):
    load(sandbox, "import numpy as np\ndef f():\n    return np.array([object()])\n")
    reply = call(sandbox, "f")
    assert not reply["ok"] and reply["error"]["type"] == "UnsupportedReturnType"


@requires_root
def test_worker_is_confined(sandbox):
    separate = sandbox.mode == "separate-uid"
    paths = [str(ROOT / "solutions")] + (["/etc/shadow"] if separate else [])
    probe = sandbox.request("probe", {"paths": paths}, 5)
    assert (probe["value"]["uid"] != 0) == separate
    assert probe["value"]["readable"] == []
    assert probe["value"]["network"] is False


@requires_root
def test_same_uid_worker_cannot_unmount_the_covers(sandbox):
    load(sandbox, "import ctypes, os\ndef f(path):\n    libc = ctypes.CDLL(None, use_errno=True)\n"
                  "    rc = libc.umount2(path.encode(), 2)\n"
                  "    return rc, os.listdir(path) if rc == 0 else []\n")
    reply = call(sandbox, "f", str(ROOT / "solutions"))
    assert reply["value"][0] != 0 and reply["value"][1] == []


def test_exceptions_come_back_with_student_traceback(sandbox):
    load(sandbox, "def f(x):\n    return 1 / x\n")
    reply = call(sandbox, "f", 0)
    assert reply["error"]["type"] == "ZeroDivisionError"
    traceback = reply["error"]["traceback"]
    assert "cell[1]" in traceback and "return 1 / x" in traceback


@pytest.mark.parametrize("body, kind, text", [
    ("import os\n    os._exit(0)", "crash", "exited with code 0"),
    ("import ctypes\n    ctypes.string_at(0)", "crash", "SIGSEGV"),
    ("while True:\n        pass", "timeout", "timed out"),
    ("import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True: pass",
     "timeout", "timed out"),
])
def test_crashes_and_hangs_are_contained(sandbox, body, kind, text):
    load(sandbox, f"def f():\n    {body}\n")
    start = time.monotonic()
    with pytest.raises(WorkerError) as info:
        call(sandbox, "f", timeout=1.0)
    assert info.value.kind == kind and text in str(info.value)
    assert time.monotonic() - start < 8
    assert not sandbox.alive
    sandbox.start()  # a fresh worker serves the next test
    load(sandbox, "def g():\n    return 7\n")
    assert call(sandbox, "g")["value"] == 7


def test_memory_bomb_is_a_memory_error(sandbox):
    load(sandbox, "def f():\n    return bytearray(4 << 30)\n")
    reply = call(sandbox, "f")
    assert reply["error"]["type"] == "MemoryError"


def test_file_size_is_capped(sandbox):
    load(sandbox, "def f():\n    with open('big', 'wb') as fh:\n"
                  "        fh.write(b'x' * (8 << 20))\n")
    reply = call(sandbox, "f")
    assert not reply["ok"] and reply["error"]["type"] == "OSError"


def test_fork_bomb_is_contained(sandbox):
    if sandbox.mode == "same-uid" and os.geteuid() == 0:
        pytest.skip("root is exempt from RLIMIT_NPROC: the same-uid fallback as root relies on "
                    "the time limit and the pid namespace, and a real fork bomb would load CI")
    load(sandbox, "import os\ndef f():\n    n = 0\n    try:\n        while True:\n"
                  "            if os.fork() == 0:\n                import time; time.sleep(30)\n"
                  "            n += 1\n    except OSError:\n        return n\n")
    reply = call(sandbox, "f", timeout=10)
    if os.geteuid() == 0:
        assert reply["ok"] and reply["value"] < 200  # RLIMIT_NPROC for the sandbox uid
    sandbox.kill()
    sandbox.start()
    load(sandbox, "def g():\n    return 1\n")
    assert call(sandbox, "g")["value"] == 1


def test_output_is_capped_and_kept(sandbox):
    load(sandbox, "import sys\ndef f():\n    print('start')\n"
                  "    sys.stdout.write('x' * (20 << 20))\n"
                  "    print('end')\n    return 1\n")
    assert call(sandbox, "f", timeout=20)["value"] == 1
    time.sleep(0.2)
    text = sandbox.output_text()
    assert text.startswith("start") and text.rstrip().endswith("end")
    assert "bytes of output omitted" in text and len(text) < 200_000


def test_forbidden_import_is_refused(sandbox):
    report = load(sandbox, "import numpy as np\nimport torch\n", forbidden=["torch"],
                  reason="this assignment is numpy only")
    assert report["problems"][0]["kind"] == "ImportError"
    assert "not allowed in test: this assignment is numpy only" in \
        report["problems"][0]["message"]
    load(sandbox, "def f():\n    import importlib\n    return importlib.import_module('torch')\n")
    assert call(sandbox, "f")["error"]["type"] == "ImportError"


def test_torch_tensors_and_autograd_cross_the_channel(sandbox):
    torch = pytest.importorskip("torch", reason="torch is needed for the torch assignments")
    sandbox.request("load", {"cells": [(1, "import torch\ndef f(a, b):\n    return a * b.exp()\n")],
                             "mode": "definitions", "forbidden": [], "assignment": "t"}, 60)
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    upstream = np.array([1.0, -1.0])
    reply = sandbox.request("grad_call", {"target": {"name": "f"}, "args": [a, b], "kwargs": {},
                                          "upstream": upstream, "output_index": None}, 60)
    out, (da, db) = reply["value"]
    np.testing.assert_allclose(out.array, [1.0, 2 * np.e])
    np.testing.assert_allclose(da.array, upstream * np.exp([0.0, 1.0]))
    np.testing.assert_allclose(db.array, upstream * np.array([1.0, 2 * np.e]))


def test_the_worker_is_the_first_to_go_when_memory_runs_out(sandbox):
    """Grader and worker share one memory cgroup on Gradescope: the kernel's OOM killer must
    pick the worker, whatever the two hold at that moment."""
    load(sandbox, "def score():\n    with open('/proc/self/oom_score_adj') as fh:\n"
                  "        return int(fh.read())\n")
    assert call(sandbox, "score")["value"] == 1000
    with open("/proc/self/oom_score_adj") as fh:
        assert int(fh.read()) < 1000  # the grader keeps its own


def test_a_cuda_build_of_torch_is_recognised_without_importing_it(tmp_path, monkeypatch):
    """PyPI's default torch on Linux is the CUDA build: its libraries map over 3 GB of address
    space at import, on the CPU too, so RLIMIT_AS cannot cap the worker's memory there."""
    from autograder import sandbox as sb

    package = tmp_path / "torch"
    (package / "lib").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('torch must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert not sb.cuda_torch_installed.__wrapped__()
    (package / "lib" / "libtorch_cuda.so").write_bytes(b"")
    assert sb.cuda_torch_installed.__wrapped__()
    assert "torch" not in sys.modules


@pytest.mark.parametrize("device, cuda_build, expected", [
    ("cpu", False, "as"), ("cpu", True, "data"), ("cuda", False, "data"), ("cuda", True, "data")])
def test_memory_rlimit_follows_device_and_torch_build(monkeypatch, device, cuda_build, expected):
    from autograder import sandbox as sb

    monkeypatch.setattr(sb, "cuda_torch_installed", lambda: cuda_build)
    assert SandboxConfig(device=device).memory_rlimit() == expected


LIMITS_OF_WORKER = """
def limits():
    with open('/proc/self/limits') as fh:
        rows = [line.split() for line in fh]
    pick = lambda name: next(r[len(name.split())] for r in rows if ' '.join(r).startswith(name))
    return pick('Max address space'), pick('Max data size')
"""


@pytest.mark.parametrize("cuda_build", [False, True])
def test_the_worker_gets_the_memory_rlimit_chosen(monkeypatch, cuda_build):
    from autograder import sandbox as sb

    monkeypatch.setattr(sb, "cuda_torch_installed", lambda: cuda_build)
    box = Sandbox(SandboxConfig(limits=Limits(memory_mb=1024)))
    box.start()
    try:
        load(box, LIMITS_OF_WORKER)
        address_space, data = call(box, "limits")["value"]
    finally:
        box.close()
    capped = str(1024 << 20)
    assert (address_space, data) == (("unlimited", capped) if cuda_build else
                                     (capped, "unlimited"))
