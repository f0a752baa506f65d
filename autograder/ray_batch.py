"""``dlgrade batch --ray ADDRESS``: the batch's submissions graded as Ray tasks on a cluster.

The driver (this process) does what the local batch's parent does: discovers the submissions,
skips those whose ``status.json`` is current (same notebook sha256, same assignment
fingerprint), writes every file under ``--out`` and then ``grades.csv`` and
``grades-diff.csv``. It is the only writer of ``--out``: a task never sees that folder.

Each submission is one Ray task (``num_cpus``, ``memory`` from the assignment's limits,
``num_gpus=1`` under ``--device cuda``; ``max_retries`` when a node or its worker dies). The
task receives the notebook's bytes and a reference to the assignment (its folder and master as
data, put once in the object store), and on its node:

- stages them under ``$TMPDIR/dlgrade-ray-UID/BATCH/NODE/``: every level mode 0700, owned by
  the grading user, checked not to be a link; the assignment once per node (under a lock),
  each notebook in a folder of its own;
- once per node, before grading anyone there, proves the sandbox: the node's engine must be
  the driver's (same source digest), user namespaces must work (without them student code
  could reach the cluster's own sockets and ports), and a worker started with no student
  code must not read the staging folder or the canary placed in it (as ``check_confinement``);
- grades with the local batch's own grader: a warm grader (``python -m autograder.graders
  serve``) that the Ray worker process keeps for the job's next tasks, or under ``--docker``
  ``python -m autograder.graders one`` and its container; the staging folder is marked
  confidential; each submission gets a fresh confined worker, the same wall-clock limit,
  and a grader over it is killed with its worker;
- returns the files that command wrote (results.json, feedback.html, figures.json, its log,
  operator notes) and its exit code as data, and removes the submission's folder.

A node's refusal stops the batch (as the local batch refuses before grading anyone). The
driver does not import ray unless this module's ``run_ray_batch`` runs; the local batch never
imports this module.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import tempfile
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from .batch import BatchBooks, BatchSummary, _console_text, progress_columns
from .graders import MAX_SERVED, OneShot, WarmGrader, one_command, serve_command
from .confinement import place_canary, preflight
from .results import read_results
from .student_state import OPERATOR_NOTES, assignment_fingerprint
from .submissions import BatchError, Submission

GRADER_OVERHEAD_MB = 512      # the grading process beside its worker, for Ray's `memory`
MAX_LOG_BYTES = 4 << 20       # a log longer than this comes back as its two ends
STALE_S = 3 * 24 * 3600       # a node's staging folder untouched this long is removed
POLL_S = 0.05


# ---- the assignment, as data ---------------------------------------------------------------

def _skip(rel: Path) -> bool:
    return "__pycache__" in rel.parts or rel.suffix in (".pyc", ".pyo")


def pack_assignment(assignment) -> dict:
    """The assignment folder (hidden tests, config, mutants, data files) and its master, as
    plain data: {"config": the parsed assignment.toml, "files": [(relative path, bytes,
    mode)], "master": bytes or None}. Links are read through; bytecode is left out."""
    directory = Path(assignment.directory)
    files = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if _skip(rel) or not path.is_file():
            continue
        files.append((rel.as_posix(), path.read_bytes(), stat.S_IMODE(path.stat().st_mode)))
    master = assignment.master
    config = tomllib.loads((directory / "assignment.toml").read_text())
    return {"name": assignment.name, "config": config, "files": files,
            "master": master.read_bytes() if master is not None and master.is_file() else None,
            "master_name": master.name if master is not None else f"{assignment.name}.ipynb"}


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's (\uXXXX, \n, \"), but for DEL, which TOML wants escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise BatchError(f"assignment.toml holds a value Ray staging cannot write: {value!r}")


def write_toml(config: dict) -> str:
    """TOML for a parsed assignment.toml (scalars, lists and tables), checked by reading it
    back."""
    lines, tables = [], []
    for key, value in config.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        lines.append(f"\n[{_toml_key(key)}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    text = "\n".join(lines) + "\n"
    if tomllib.loads(text) != config:
        raise BatchError("assignment.toml could not be written back for the Ray nodes")
    return text


def staged_config(bundle: dict, master: Path) -> dict:
    """The assignment's config with its name fixed and its master at ``master`` (the staged
    copy): the folder is staged under another name and path than the driver's."""
    config = dict(bundle["config"])
    config["name"] = bundle["name"]
    config["master"] = str(master)
    return config


def engine_digest() -> str:
    """The engine's part of the assignment fingerprint (the grader's own source): a node must
    grade with the very code the driver fingerprints, or status.json would lie."""
    none = Path("/nonexistent/dlgrade")
    stub = SimpleNamespace(tests_dir=none, directory=none, mutants_file=None, master=None,
                           public_files=list)
    return assignment_fingerprint(stub)


# ---- on a node -----------------------------------------------------------------------------

def _private_dir(path: Path) -> Path:
    """``path`` as a folder of mode 0700 owned by this user (made so when new); refuses a
    link, or a folder someone else made (another uid could have left it for us to fill)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise BatchError(f"{path} is not a folder of this user (uid {os.geteuid()}): "
                         "refusing to stage hidden tests there")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def staging_base(staging: str | None) -> Path:
    return Path(staging) if staging else Path(tempfile.gettempdir()) / f"dlgrade-ray-{os.geteuid()}"


def _remove_stale(base: Path, keep: str) -> None:
    now = time.time()
    for entry in base.iterdir():
        try:
            if entry.name != keep and now - entry.lstat().st_mtime > STALE_S:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


@contextmanager
def _locked(path: Path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _stage_assignment(root: Path, bundle: dict) -> Path:
    """Writes the assignment under ``root/assignment`` and its master under ``root/master``
    (inside the 0700 root: readable by this user only); returns the assignment folder."""
    folder, masters = root / "assignment" / bundle["name"], root / "master"
    shutil.rmtree(root / "assignment", ignore_errors=True)  # half-written by a dead task
    shutil.rmtree(masters, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    masters.mkdir(mode=0o700)
    for rel, data, mode in bundle["files"]:
        parts = Path(rel).parts
        if not parts or Path(rel).is_absolute() or ".." in parts:
            raise BatchError(f"refusing an assignment file named {rel!r}")
        (folder / Path(rel)).parent.mkdir(parents=True, exist_ok=True)
        _write_new(folder / Path(rel), data, 0o700 if mode & 0o111 else 0o600)
    master = masters / Path(bundle["master_name"]).name
    if bundle["master"] is not None:
        _write_new(master, bundle["master"])
    (folder / "assignment.toml").unlink(missing_ok=True)
    _write_new(folder / "assignment.toml",
               write_toml(staged_config(bundle, master)).encode(), 0o600)
    return folder


def _node_ready(root: Path, bundle: dict, job: dict) -> tuple[Path | None, str]:
    """Stages the assignment and proves the sandbox, once per node and batch; returns (the
    staged assignment folder, '') or (None, why this node refuses to grade)."""
    ready, refused = root / "ready", root / "refused"
    with _locked(root / ".lock"):
        if refused.is_file():
            return None, refused.read_text()
        folder = root / "assignment" / bundle["name"]
        if ready.is_file():
            return folder, ""
        why = ""
        if engine_digest() != job["engine"]:
            why = (f"the dlgrade on node {socket.gethostname()} differs from the driver's "
                   f"({Path(__file__).resolve().parent}): install the same version on every "
                   "node (the same image or venv)")
        else:
            folder = _stage_assignment(root, bundle)
            if not job["docker"]:
                # The local batch's proof (check_confinement), with one more condition.
                place_canary(root)
                probe = preflight([root])
                leaks = probe.get("readable", [])
                if leaks:
                    why = (f"on node {socket.gethostname()} a student's code could read "
                           f"{', '.join(map(str, leaks[:4]))} (sandbox: {probe.get('mode')})")
                elif not probe.get("namespaces"):
                    why = (f"node {socket.gethostname()} cannot grade with user namespaces "
                           f"(sandbox: {probe.get('mode')}): without them a student's code "
                           "could reach the Ray cluster's sockets and ports and run code as "
                           "the grader. Grade on nodes where namespaces work, or with --docker")
        if why:
            refused.write_text(why)
            return None, why
        ready.write_text(job["token"])
        return folder, ""


def _read(path: Path, limit: int | None = None) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            if limit is None:
                return fh.read()
            data = fh.read(limit + 1)
            if len(data) <= limit:
                return data
            fh.seek(-limit // 2, os.SEEK_END)
            tail = fh.read()
        return data[:limit // 2] + b"\n[... log cut in the middle ...]\n" + tail
    except OSError:
        return None


# The warm grader of this Ray worker process: Ray hands a worker the job's next tasks, so, as a
# job of the local batch, it grades submission after submission (a fresh confined worker for
# each), and is replaced as the local batch replaces its own (dead, over the limit, after
# MAX_SERVED submissions, or another batch).
_warm: dict = {"key": None, "grader": None}


def _take_grader(key, make):
    grader = _warm["grader"]
    _warm["grader"] = None
    if grader is not None and (_warm["key"] != key or not grader.alive
                               or grader.served >= MAX_SERVED):
        grader.stop()
        grader = None
    return grader if grader is not None else make()


def _grader_env() -> dict:
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def grade_on_node(bundle: dict, job: dict) -> dict:
    """One submission, graded on the node this runs on (the body of the Ray task)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    base = _private_dir(staging_base(job["staging"]))
    batch_dir = _private_dir(base / job["token"])
    root = _private_dir(batch_dir / node)
    os.utime(batch_dir)
    _remove_stale(base, job["token"])
    folder, why = _node_ready(root, bundle, job)
    if folder is None:
        return {"refused": why, "node": node, "host": socket.gethostname()}
    from .assignment import load_assignment

    assignment = load_assignment(str(folder))
    work = _private_dir(_private_dir(root / "work") / f"{job['id']}-{secrets.token_hex(4)}")
    started = time.monotonic()
    try:
        (work / "in").mkdir(mode=0o700)
        student_dir = work / "out"
        student_dir.mkdir(mode=0o700)
        notebook = work / "in" / job["notebook_name"]
        _write_new(notebook, job["notebook"])
        env, key = _grader_env(), (job["token"], str(root))
        if job["docker"]:  # a process and container per submission, as locally
            grader = OneShot(one_command(
                assignment, Submission(job["id"], notebook), student_dir, device=job["device"],
                title=job["title"], subtitle=job["subtitle"], limit=job["limit"],
                confidential=[root], docker=job["docker"]), env, student_dir)
        else:
            grader = _take_grader(key, lambda: WarmGrader(
                serve_command(assignment, root, device=job["device"], limit=job["limit"],
                              confidential=[root]), env, root, root / "graders.log"))
            grader.begin({"notebook": str(notebook), "out": str(student_dir),
                          "title": job["title"], "subtitle": job["subtitle"]})
        timed_out, answered = False, False
        try:
            while (code := grader.outcome()) is None:
                if time.monotonic() - started > job["limit"]:
                    timed_out, code = True, -signal.SIGKILL
                    break
                time.sleep(POLL_S)
            answered = not timed_out
        finally:  # over the limit, dead, or this task cancelled: it goes with its worker
            if answered and grader.alive:
                _warm["key"], _warm["grader"] = key, grader
            else:
                grader.stop()
        return {"exit_code": code, "timed_out": timed_out, "node": node,
                "host": socket.gethostname(), "grader_pid": grader.proc.pid,
                "seconds": round(time.monotonic() - started, 3),
                "files": {name: _read(student_dir / name) for name in
                          ("results.json", "feedback.html", "figures.json", OPERATOR_NOTES)},
                "log": _read(student_dir / "log.txt", MAX_LOG_BYTES) or b""}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def remove_staging(staging: str | None, token: str) -> str:
    """At the end of a batch, on one node: its staged assignment and anything left."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    batch_dir = staging_base(staging) / token
    shutil.rmtree(batch_dir / node, ignore_errors=True)
    try:
        batch_dir.rmdir()  # empty once every node on this host is done
    except OSError:
        pass
    return node


# ---- the driver ----------------------------------------------------------------------------

def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:300]


def _cleanup(ray, staging: str | None, token: str) -> None:
    """A task pinned to each live node removes that node's staging folder."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(remove_staging)
    refs = [task.options(num_cpus=0, max_retries=0, scheduling_strategy=
                         NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
            .remote(staging, token) for node in ray.nodes() if node.get("Alive")]
    if refs:
        ray.wait(refs, num_returns=len(refs), timeout=30)


def _warn_if_no_node_fits(ray, options: dict, console) -> None:
    """Ray waits for a node that can take a task (an autoscaler may add one): say so at once
    when no node of the cluster can now."""
    wanted = {"CPU": options["num_cpus"], "memory": options["memory"],
              "GPU": options.get("num_gpus", 0)}
    for node in ray.nodes():
        have = node.get("Resources", {}) if node.get("Alive") else {}
        if all(have.get(name, 0) >= amount for name, amount in wanted.items() if amount):
            return
    console.print(f"[yellow]no node of the Ray cluster can take a submission now[/] (each "
                  f"needs {wanted['CPU']:g} CPU, {wanted['memory'] >> 20} MB of memory"
                  f"{', a GPU' if wanted['GPU'] else ''}): the batch waits for one",
                  highlight=False)


def run_ray_batch(source: Path, assignment_name: str, out: Path, *, address: str | None = "auto",
                  docker: str | None = None, device: str = "cpu", timeout: float | None = None,
                  progress: bool = True, console=None, regrade: bool = False,
                  num_cpus: float = 1.0, max_retries: int = 3, staging: str | None = None,
                  window: int | None = None) -> BatchSummary:
    """Grade what is not graded yet (``regrade``: everything) as Ray tasks; same inputs and
    outputs as ``batch.run_batch`` (see this module's docstring).

    ``address``: the cluster, as ``ray.init`` takes it (``"auto"``: the one this machine
    belongs to, started by ``ray start``); when Ray is initialised already, that one.
    ``num_cpus``: Ray CPUs per submission.
    ``max_retries``: how often a submission whose node died is started again elsewhere.
    ``staging``: the nodes' staging folder (default ``$TMPDIR/dlgrade-ray-UID``).
    ``window``: submissions in flight at once (default four per CPU of the cluster)."""
    try:
        import ray
        from ray.exceptions import RayError
    except ImportError as exc:
        raise BatchError(f"--ray needs Ray on the driver and on every node: pip install "
                         f"'dlgrade[ray]' ({exc})") from None
    from rich.console import Console
    from rich.progress import Progress

    from .assignment import load_assignment

    started = time.monotonic()
    console = console or Console(stderr=True)
    assignment = load_assignment(assignment_name)
    books = BatchBooks(assignment, source, out, regrade=regrade, timeout=timeout,
                       console=console)
    out, todo, limit, title = books.out, books.todo, books.limit, books.title
    bundle = pack_assignment(assignment)
    if assignment_fingerprint(assignment) != books.fingerprint:
        raise BatchError(f"{assignment.directory} changed while the batch read it: run again")

    owned = False
    token = secrets.token_hex(8)
    common = {"token": token, "engine": engine_digest(), "staging": staging, "device": device,
              "docker": docker, "title": title, "limit": limit}
    options = {"num_cpus": num_cpus, "max_retries": max_retries, "retry_exceptions": False,
               "memory": (assignment.limits.memory_mb + GRADER_OVERHEAD_MB) << 20}
    if device == "cuda":
        options["num_gpus"] = 1
    refusal = ""
    pending: dict = {}
    token_used = bool(todo)

    def submit(task, bundle_ref, sub, student_dir, digest, subtitle, previous) -> str:
        """Starts the submission's task; '' or, when its notebook cannot be read now, the
        grader error's line."""
        books.prepare(student_dir, digest, previous)
        item = (sub, student_dir, digest, previous, time.monotonic())
        try:
            data = sub.notebook.read_bytes()
        except OSError as exc:
            return finish(item, exc)
        job = {**common, "id": sub.id, "notebook_name": sub.notebook.name, "notebook": data,
               "subtitle": subtitle}
        pending[task.options(**options).remote(bundle_ref, job)] = item
        return ""

    def finish(item, result) -> str:
        """Writes what the task returned (or why it failed) as the local batch's ``finish``
        writes what its grading process left."""
        sub, student_dir, digest, previous, submitted = item
        files, code, timed_out = {}, None, False
        if isinstance(result, BaseException):
            log = f"the Ray task failed: {result}\n".encode(errors="replace")
            message = (f"grading on the Ray cluster failed ({_first_line(result)}); it will be "
                       "retried when the batch runs again")
            where = {}
        else:
            files, code, timed_out = result["files"], result["exit_code"], result["timed_out"]
            log = result["log"]
            where = {"grader_pid": result["grader_pid"], "node": result["node"],
                     "host": result["host"]}
            message = ""
        (student_dir / "log.txt").write_bytes(log)
        for name in ("results.json", "figures.json", "feedback.html"):
            if files.get(name) is not None:
                tmp = student_dir / f".{name}.tmp"
                tmp.write_bytes(files[name])
                os.replace(tmp, student_dir / name)
        # What the node wrote, as the model (None if it wrote nothing valid); stale ones
        # were removed before grading.
        results = read_results(student_dir / "results.json")
        try:
            notes = json.loads(files.get(OPERATOR_NOTES) or b"null")
        except ValueError:
            notes = None
        seconds = result.get("seconds") if isinstance(result, dict) else None
        return books.record(sub, student_dir, digest, previous, code=code, results=results,
                            timed_out=timed_out, notes=notes, failure=message, where=where,
                            seconds=seconds if seconds is not None
                            else round(time.monotonic() - submitted, 3))

    try:
        if todo and not ray.is_initialized():
            try:
                ray.init(address=address, log_to_driver=False, logging_level="error")
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise BatchError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
            owned = True
        if todo:
            _warn_if_no_node_fits(ray, options, console)
            task = ray.remote(grade_on_node)
            bundle_ref = ray.put(bundle)
            cpus = ray.cluster_resources().get("CPU", 1)
            window = window or max(4, int(4 * cpus / max(num_cpus, 0.01)))
            with Progress(*progress_columns(), console=console, disable=not progress) as bar:
                shown = bar.add_task(f"grading {_console_text(assignment.name)} on Ray",
                                     total=len(todo))
                while todo or pending:
                    while todo and len(pending) < window:
                        line = submit(task, bundle_ref, *todo.popleft())
                        if line:
                            bar.update(shown, advance=1, description=line)
                    if not pending:
                        continue
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                    for ref in ready:
                        item = pending.pop(ref)
                        try:
                            result = ray.get(ref)
                        except RayError as exc:
                            result = exc
                        if isinstance(result, dict) and "refused" in result:
                            # As the local batch: grade no more; what is not written stays
                            # pending for the next run.
                            refusal = result["refused"]
                            break
                        bar.update(shown, advance=1, description=finish(item, result))
                    if refusal:
                        break
    finally:
        for ref in pending:  # interrupted: those submissions stay pending
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        if token_used:
            try:
                if ray.is_initialized():
                    _cleanup(ray, staging, token)
            except Exception:  # noqa: BLE001 - a node's leftovers go after STALE_S
                pass
        if owned:
            ray.shutdown()
        summary = books.close(started)
    if refusal:
        raise BatchError(f"refusing to grade on the Ray cluster: {refusal}")
    return summary
