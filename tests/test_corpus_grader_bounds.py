"""What the grader spends on a submission is bounded, whatever the submission does (issue 14).

- Naming known mistakes replays the student's own data (an optimizer's returned config) in the
  grader: a replay that would run for tens of minutes or allocate gigabytes gives up, with no
  diagnosis, and the grade is the same.
- The worker's replies are the student's: a cell can write its own reply to the grader's pipe.
  Anything malformed is a protocol error that costs the cell or the test, never the grading.
- Loading has a total budget: past it, the cells not reached are skipped with a message.

Each case is graded end to end through ``dlgrade grade``: exact score, message text, a valid
results.json, exit code 0, and no process or sandbox folder left behind.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

import autograder.diagnose as diagnose
from autograder import wire
from autograder.assignment import load_assignment
from autograder.bounded import run_bounded
from autograder.diagnose import CallLog, CallRecord, Diagnoser, Lineage
from autograder.results import Results
from autograder.sandbox import Sandbox, SandboxConfig
from autograder.proxies import StudentNamespace
from autograder.session import LoadReport, StudentSession
from autograder.student_errors import StudentCodeError
from corpus.harness import Expect, assignment_variant, check, grade, graded_except
from corpus.notebooks import MASTER, replace_function, variant, write

ROOT = Path(__file__).resolve().parent.parent
HW1 = load_assignment("hw1_backprop")
INVALID = "the worker sent an invalid reply"


def children_of(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (zombies included: a child not reaped is left too)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


@pytest.fixture
def nothing_left_behind(monkeypatch):
    """Every sandbox folder made during the test is gone after it, and the test leaves no new
    child process of this one (worker, sweeper or diagnosis), running or unreaped."""
    made = []
    real_init = Sandbox.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(self.workdir)

    monkeypatch.setattr(Sandbox, "__init__", init)
    before = children_of(os.getpid())
    yield
    assert made, "no sandbox was made"
    assert [p for p in made if p.exists()] == []
    assert children_of(os.getpid()) - before == set()


def graded(tmp_path, nb, expect: Expect, **kwargs) -> dict:
    path = write(nb, tmp_path / "submission.ipynb")
    code, results = grade(path, tmp_path, **kwargs)
    check(code, results, expect)
    return results


# ---- item 3: the diagnoser on the student's data ------------------------------------------------

# hw1's adam, right but for 1e-3 on every step (so the optimizer tests fail and are diagnosed),
# whose returned config carries HOSTILE; its real state rides along under "_real".
HOSTILE_ADAM = '''import numpy as np

def adam(w, dw, config=None):
    config = {} if config is None else config
    s = dict(config.get("_real") or config)
    for key, value in (("learning_rate", 1e-3), ("beta1", 0.9), ("beta2", 0.999),
                       ("epsilon", 1e-8), ("t", 0)):
        s.setdefault(key, value)
    s.setdefault("m", np.zeros_like(w))
    s.setdefault("v", np.zeros_like(w))
    s["t"] += 1
    s["m"] = s["beta1"] * s["m"] + (1 - s["beta1"]) * dw
    s["v"] = s["beta2"] * s["v"] + (1 - s["beta2"]) * dw ** 2
    m_hat = s["m"] / (1 - s["beta1"] ** s["t"])
    v_hat = s["v"] / (1 - s["beta2"] ** s["t"])
    next_w = w - s["learning_rate"] * m_hat / (np.sqrt(v_hat) + s["epsilon"])
    return next_w + 1e-3, {**s, HOSTILE, "_real": s}
'''
HOSTILE_CONFIGS = {
    # The reference's replay computes 3 ** (10**9 + 1): tens of minutes.
    "hang": '"t": 10**9, "beta1": 3',
    # 48 KB each, broadcast by the reference's update to (6000, 6000, 4, 3): 3.5 GB a temporary.
    "broadcast": '"m": np.zeros((6000, 1, 1, 1)), "v": np.zeros((6000, 1, 1))',
}
ADAM_FAILS = {
    "optimizer: three steps against the reference (non-default hyperparameters) [adam]":
        "[step 2] adam next_w after step 2",
    "optimizer: two steps with tiny gradients, where epsilon's placement matters [adam]":
        "adam next_w after two steps",
    "optimizer: config=None fills in the documented defaults [adam]": "adam",
}

# Grades in a separate process, to measure the grader's own peak memory and to survive a
# grader that hangs; reports what the grader left behind.
GRADE_AND_MEASURE = r"""
import json, os, resource, sys
from pathlib import Path
from autograder import sandbox
from autograder.cli import main

made = []
real_init = sandbox.Sandbox.__init__
def init(self, *args, **kwargs):
    real_init(self, *args, **kwargs)
    made.append(str(self.workdir))
sandbox.Sandbox.__init__ = init
code = main(["grade", sys.argv[1], "-a", sys.argv[2], "--results", sys.argv[3], "-q"])
me = os.getpid()
children = []
for entry in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = Path(f"/proc/{entry}/stat").read_text()
    except OSError:
        continue
    if int(stat.rsplit(")", 1)[1].split()[1]) == me:
        children.append(stat[:80])
print(json.dumps({"code": code, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children": children, "left": [p for p in made if os.path.exists(p)]}))
"""


@pytest.mark.parametrize("hostile", sorted(HOSTILE_CONFIGS))
def test_replaying_a_hostile_optimizer_config_is_bounded(tmp_path, hostile):
    """The adam tests fail on their values, name no mistake, and the grading ends in seconds
    with the grader's memory near its usual peak (unbounded: tens of minutes; 6.7 GB)."""
    nb = nbformat.read(HW1.master, as_version=4)
    source = HOSTILE_ADAM.replace("HOSTILE", HOSTILE_CONFIGS[hostile])
    nb.cells.append(nbformat.v4.new_code_cell(source))
    path = tmp_path / "submission.ipynb"
    nbformat.write(nb, path)
    results_path = tmp_path / "results" / "results.json"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", GRADE_AND_MEASURE, str(path),
                           str(HW1.directory), str(results_path)],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(proc.stdout.splitlines()[-1])
    results = Results.model_validate_json(results_path.read_text())
    summary = results.model_dump_json(indent=1)[:4000]
    assert run["code"] == 0, summary
    assert results.score == results.max_score - 6 == 76, summary
    failed = {t.name: t for t in results.tests if t.status == "failed"}
    assert sorted(failed) == sorted(ADAM_FAILS), summary
    for name, text in ADAM_FAILS.items():
        assert failed[name].score == 0 and text in failed[name].output, failed[name].output
        assert "known mistake" not in failed[name].output, failed[name].output
    # Three diagnoses killed at their 5 s deadline, on top of a 3-4 s grading.
    assert seconds < 60, seconds
    assert run["peak_kb"] < 1 << 20, run  # about 220 MB when bounded
    assert run["children"] == [] and run["left"] == [], run


def outcome_of(module):
    rng = np.random.default_rng(0)
    x, w, b, dout = (rng.standard_normal(s) for s in ((4, 3), (3, 5), (5,), (4, 5)))
    _, cache = module.affine_forward(x, w, b)
    return {"db": module.affine_backward(dout, cache)[2]}


def test_explain_outcome_gives_up_past_its_time(monkeypatch):
    """An outcome that cannot finish (student data in its closure) names nothing, at the
    deadline: the budget, then a grace for the replay running."""
    monkeypatch.setattr(diagnose, "OUTCOME_BUDGET_S", 0.5)
    monkeypatch.setattr(diagnose, "HARD_GRACE_S", 1.0)
    exponent = 10**9  # as an optimizer's "t" returned by the student

    def endless(module):
        return {"db": np.array([float(3 ** exponent % 7)])}

    start = time.monotonic()
    assert Diagnoser(HW1).explain_outcome("affine_backward", endless, {"db": np.ones(1)},
                                          diagnose.dicts_close(1e-9)) == []
    assert 1.4 < time.monotonic() - start < 5


def test_explain_outcome_gives_up_past_its_memory():
    """An outcome that would take 5 GB fails at once in its child (MemoryError): nothing
    named, and this process never held the memory."""
    def huge(module):
        return {"db": np.ones((25_000, 25_000)).sum(axis=0)}

    start = time.monotonic()
    assert Diagnoser(HW1).explain_outcome("affine_backward", huge, {"db": np.ones(1)},
                                          diagnose.dicts_close(1e-9)) == []
    assert time.monotonic() - start < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 4 << 20  # kB: under 4 GB


def test_explain_still_names_a_mistake_and_gives_up_on_a_hang():
    """Through the bounded child, a recorded call that a mutant explains is named; a recorded
    call whose replay hangs names nothing, at budget + grace."""
    diagnoser = Diagnoser(HW1, budget_s=0.5)
    averaged = "db looks like it was averaged over the batch instead of summed"
    module = next(m for mutant, m in diagnoser.mutant_modules() if mutant.diagnosis == averaged)
    rng = np.random.default_rng(1)
    x, w, b, dout = (rng.standard_normal(s) for s in ((4, 3), (3, 5), (5,), (4, 5)))
    cache = (x, w, b)
    record = CallRecord("affine_backward", "call", [dout, cache], {},
                        module.affine_backward(dout, cache), 0.01)
    assert diagnoser.explain([record])[:1] == [averaged]

    config = {"learning_rate": 1e-3, "beta1": 3, "beta2": 0.999, "epsilon": 1e-8,
              "m": np.zeros_like(w), "v": np.zeros_like(w), "t": 10**9}
    hanging = CallRecord("adam", "call", [w, w, config], {}, (w, config), 0.01)
    start = time.monotonic()
    assert diagnoser.explain([hanging]) == []
    assert 2.4 < time.monotonic() - start < 6  # killed at 0.5 s + HARD_GRACE_S


def test_a_bounded_child_cannot_reach_the_worker(nothing_left_behind):
    """The diagnosis child shares the worker's pipes: using them would desynchronise the
    grader, so a session refuses any request from another process."""
    session = StudentSession([(1, "def f():\n    return 1\n")], mode="definitions",
                             forbidden=[], assignment="bounds",
                             transport=Sandbox(SandboxConfig()))
    try:
        session.start()

        def from_child():
            try:
                StudentNamespace(session).f()
            except RuntimeError as exc:
                return str(exc)
            return "reached the worker"

        assert "reachable only from the grader process" in run_bounded(from_child, seconds=10)
        assert StudentNamespace(session).f() == 1  # and the grader's own channel still works
    finally:
        session.close()


def test_recorded_calls_are_capped_newest_kept():
    log = CallLog(max_bytes=1 << 20)
    for i in range(40):  # 40 calls of ~64 KB each: only the newest ~16 fit
        log.append(CallRecord("f", "call", [np.zeros(4096)], {}, np.full(4096, i), 0.0))
    kept = [int(r.result[0]) for r in log]
    assert log.nbytes <= 1 << 20 and 10 < len(kept) < 20 and kept == list(range(40 - len(kept), 40))
    assert [int(r.result[0]) for r in reversed(log)] == kept[::-1]
    # A call whose inputs alone exceed the cap is not even copied, nor kept.
    big = np.zeros(1 << 18)  # 2 MB
    assert not log.fits([big], {}, None)
    log.append(CallRecord("f", "call", [big], {}, 0, 0.0))
    assert int(list(log)[-1].result[0]) == 39
    # An object's history past the cap stops being replayable (and is dropped).
    lineage = Lineage("Net", [], {})
    lineage.append(("set", (), "params", np.zeros(diagnose.MAX_RECORDED_BYTES // 8 + 1)))
    assert not lineage.replayable and lineage.log == []


def test_a_reply_is_capped_at_64_mib():
    ok = {"dtype": "<f8", "shape": [wire.MAX_PAYLOAD_BYTES // 8]}
    header = json.dumps({"msg": {"ok": True}, "buffers": [ok]}).encode()
    assert wire.parse_header(header)[1][0][2] == 64 << 20
    too_big = {"dtype": "<f8", "shape": [wire.MAX_PAYLOAD_BYTES // 8 + 1]}
    with pytest.raises(wire.ProtocolError, match="too large"):
        wire.parse_header(json.dumps({"msg": {"ok": True}, "buffers": [too_big]}).encode())


# ---- item 4: forged replies ----------------------------------------------------------------------

def forged(msg: dict, then: str = "os._exit(0)") -> str:
    """A cell that answers the grader's pending request itself: a well-framed reply carrying
    ``msg``, written to the worker's reply pipe (its number is in the worker's argv). A class
    body, so that it runs in definitions mode."""
    return f'''class Forger:
    import json, os, struct, sys
    fd = json.loads(sys.argv[1])["fd_out"]
    header = json.dumps({{"msg": {msg!r}, "buffers": []}}).encode()
    os.write(fd, struct.pack("<I", len(header)) + header)
    {then}
'''


def load_value(problems=(), skipped=(), defined=(), **extra) -> dict:
    """A load reply as the worker encodes it (dicts are ``$dict`` pair lists)."""
    pairs = [["problems", list(problems)], ["skipped", list(skipped)],
             ["defined", list(defined)]] + [[k, v] for k, v in extra.items()]
    return {"ok": True, "value": {"$dict": pairs}}


def entry(**fields) -> dict:
    return {"$dict": [[k, v] for k, v in fields.items()]}


# The forging cell is cell 6 (after the markdown and the master's four code cells).
FORGED_LOADS = {
    "bigint_not_a_number": ({"ok": True, "value": {"$bigint": "not a number"}}, "bad $bigint"),
    "bigint_with_underscores": ({"ok": True, "value": {"$bigint": "1_000"}}, "bad $bigint"),
    "problem_without_fields": (load_value(problems=[entry()]), "bad problem entry"),
    "problem_about_another_cell": (load_value(problems=[entry(
        cell=2, kind="SyntaxError", message="fake", line=1)]), "about another cell"),
    "skipped_names_not_a_list": (load_value(skipped=[entry(cell=6, line=1, names="x")]),
                                 "bad skipped entry"),
    "defined_not_text": (load_value(defined=[1, 2]), "a name is not text"),
    "extra_field": (load_value(secret="x"), "not the expected record"),
    "value_not_a_record": ({"ok": True, "value": [1, 2, 3]}, "not the expected record"),
    "error_details_not_text": ({"ok": False, "error": {"type": ["x"], "message": "m"}},
                               "error details are not text"),
    "tensor_device_not_text": ({"ok": True, "value": {"$tensor": 0, "device": {"$nd": 0}}},
                               "bad tensor metadata"),
}


@pytest.mark.parametrize("case", sorted(FORGED_LOADS))
def test_a_forged_load_reply_costs_only_its_cell(tmp_path, case, nothing_left_behind):
    """The cell is skipped with one clear message and everything else is graded."""
    msg, why = FORGED_LOADS[case]
    graded(tmp_path, variant(extra=(forged(msg),)), Expect(8.0, output=(
        f"cell 6: LoadFailure: {INVALID} (", why, "); the cell was skipped")))


def test_a_forged_reply_that_keeps_the_worker_busy(tmp_path, nothing_left_behind):
    """The forger keeps running instead of exiting: the grader does not wait for it."""
    start = time.monotonic()
    graded(tmp_path, variant(extra=(forged(load_value(problems=[entry()]),
                                           then="import time; time.sleep(60)"),)),
           Expect(8.0, output=(f"cell 6: LoadFailure: {INVALID} (load reply: bad problem "
                               "entry); the cell was skipped",)))
    assert time.monotonic() - start < 20


def test_a_forged_reply_during_a_test_fails_that_test(tmp_path, nothing_left_behind):
    body = forged({"ok": True, "value": {"$bigint": "12 34"}}).split("\n", 1)[1]
    graded(tmp_path, replace_function("relu_forward", body),
           Expect(graded_except("relu_forward"), failed={"relu_forward": (
               f"{INVALID} (bad $bigint) while running relu_forward: the process running your "
               "code answered with something that is not a valid reply",)}))


def test_keyboard_interrupt_while_loading_is_a_load_problem(tmp_path, nothing_left_behind):
    """op_load lets KeyboardInterrupt through, so the worker answers with an error reply."""
    graded(tmp_path, variant(extra=("class Stop:\n    raise KeyboardInterrupt('stop')\n",)),
           Expect(8.0, output=("cell 6: KeyboardInterrupt: stop",)))


@pytest.mark.parametrize("node, why", [
    ({"$bigint": "zz"}, "bad \\$bigint"),
    ({"$bigint": " 12"}, "bad \\$bigint"),
    ({"$bigint": "\u0661\u0662"}, "bad \\$bigint"),  # Arabic-Indic digits: int() takes them
    ({"$bigint": "9" * 4301}, "bad \\$bigint"),  # past what int() parses
    ({"$bigint": 12}, "bad \\$bigint"),
    ({"$bigint": "-"}, "bad \\$bigint"),
    ({"$tensor": 0, "requires_grad": "yes"}, "tensor metadata"),
    ({"$handle": 1, "type": ["x"] * 1000}, "bad object handle"),
    ({"$handle": 1, "callable": 1}, "bad object handle"),
    ({"$dict": [[1.5, 1]]}, "bad dict entry"),
])
def test_every_node_field_is_checked(node, why):
    header = {"msg": {"ok": True, "value": node}, "buffers": [{"dtype": "<f8", "shape": [1]}]}
    body = json.dumps(header).encode()
    data = len(body).to_bytes(4, "little") + body + np.zeros(1).tobytes()
    view = memoryview(data)
    offset = [0]

    def read_exact(n):
        offset[0] += n
        return bytes(view[offset[0] - n:offset[0]])

    with pytest.raises(wire.ProtocolError, match=why):
        wire.read_message(read_exact)


def test_a_big_int_within_the_limit_is_decoded():
    assert wire.decode_value({"$bigint": "-" + "9" * 4300}, []) == -int("9" * 4300)


def test_the_load_report_never_fails_the_grading():
    """Entries are checked on arrival; the report written after the tests holds up anyway."""
    report = LoadReport(problems=[{}], skipped=[{}])
    assert report.summary() == "cell None: None: None"
    assert "failed to load" in report.hint_for_missing("f")


# ---- item 5: the total load budget -------------------------------------------------------------

def slow_cell(number: int, seconds: float) -> str:
    return f"class Slow{number}:\n    import time\n    time.sleep({seconds})\n"


def test_loading_stops_at_the_total_budget(tmp_path, nothing_left_behind):
    """20 cells of 1.6 s under a 2 s per-cell limit: the default budget (3 x 2 s) stops the
    load after four of them, started at about 0.1, 1.7, 3.3 and 4.9 s (unbounded: 32 s);
    relu_forward, defined after them, is not loaded."""
    folder = assignment_variant(tmp_path, load_time_limit=2)
    cells = [slow_cell(i, 1.6) for i in range(20)] + [MASTER["relu_forward"]]
    start = time.monotonic()
    stopped = ("loading stopped: the notebook's cells took more than 6 s in all; later cells "
               "were not run")
    results = graded(tmp_path, variant(relu_forward=None, extra=tuple(cells)), Expect(
        graded_except("relu_forward"), failed={"relu_forward": ("failed to load", stopped)},
        output=(f"cell 9: LoadStopped: {stopped} (cells 9, 10, 11, 12, 13, 14, 15, 16, 17, "
                "18, ...)",)), assignment=folder)
    assert results["output"].count("LoadStopped") == 1
    # A load ends within 4 x load_time_limit (8 s); then about a second of grading.
    assert time.monotonic() - start < 8 + 4


def test_a_restart_gets_a_fresh_budget_and_the_same_cells(nothing_left_behind):
    """After a crash the worker reloads what the first load loaded, under a budget of its own
    (not what the first load left of it), and not the cells the budget stopped."""
    cells = [(1, "import os"), *[(n, slow_cell(n, 0.9) + f"\ndef g{n}():\n    return {n}\n")
                                 for n in (2, 3, 4)],
             (5, "def late():\n    return 5\n")]
    # The slow cells start at about 0.1, 1.0 and 1.9 s, the last one 2.7 s in at the earliest.
    session = StudentSession(cells, mode="definitions", forbidden=[], assignment="bounds",
                             transport=Sandbox(SandboxConfig()), load_time_limit=1.5,
                             total_load_time_limit=2.5)
    student = StudentNamespace(session)
    try:
        session.start()
        assert [(p["cell"], p["kind"]) for p in session.report.problems] == [(5, "LoadStopped")]
        session.transport.kill()  # as a crash during a test would
        start = time.monotonic()
        assert student.g4() == 4  # the restart reloaded all three slow cells
        assert time.monotonic() - start > 2.7
        with pytest.raises(StudentCodeError, match="NameError"):
            student.late()
        assert len(session.report.problems) == 1
    finally:
        session.close()


def test_a_reload_reports_each_cell_once(tmp_path, nothing_left_behind):
    """A hanging cell makes the worker restart and reload the cells before it: their problems
    are reported once, not once per load."""
    folder = assignment_variant(tmp_path, load_time_limit=1)
    results = graded(tmp_path, variant(extra=("def f(x=undefined_name):\n    pass\n",
                                              "class Hang:\n    while True:\n        pass\n")),
                     Expect(8.0, output=(
                         "cell 6, line 1: NameError: name 'undefined_name' is not defined",
                         "cell 7: LoadFailure: did not finish loading within 1 s; the cell was "
                         "skipped")), assignment=folder)
    assert results["output"].count("undefined_name") == 1
