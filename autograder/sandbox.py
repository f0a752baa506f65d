"""Start, talk to and kill the confined student worker."""
from __future__ import annotations

import ctypes
import fcntl
import functools
import importlib.util
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import wire
from .worker import WORKER_MODULES

HERE = Path(__file__).resolve().parent
SANDBOX_UID_BASE = 61000  # one uid per concurrent slot: RLIMIT_NPROC and kill(-1) are per uid
SLOT_COUNT = 64
OUTPUT_CAP = 64 << 10


class WorkerError(Exception):
    """The worker could not answer: it died, hung, or broke the protocol."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # "timeout" | "crash" | "protocol"


class InfrastructureError(Exception):
    """The sandbox itself failed (not the student's fault): never scored as a student error."""


@dataclass
class Limits:
    memory_mb: int = 2048
    cpu_s: int = 600
    file_mb: int = 16
    disk_mb: int = 64
    nproc: int = 64


@dataclass
class SandboxConfig:
    hide: list[str] = field(default_factory=list)
    # Extra paths the worker may read (an assignment's public data files), besides what
    # worker_view() lists; everything else is absent from its file system view.
    allow: list[str] = field(default_factory=list)
    # (name relative to the worker's home, source path): written read-only into the home
    # (by the launcher, which reads them before confinement) at every start.
    files: list[tuple[str, str]] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    isolate_user: bool = True
    # DLGRADE_NAMESPACES=off grades as inside Docker's default profile (Gradescope), where
    # only the uid and file modes confine the worker: for testing that path on a laptop.
    namespaces: bool = field(default_factory=lambda: os.environ.get(
        "DLGRADE_NAMESPACES", "").lower() not in ("off", "0", "no"))
    python: str = sys.executable
    # "cuda": the worker may use the GPU. CUDA reserves huge virtual ranges, so memory is
    # capped with RLIMIT_DATA instead of RLIMIT_AS there (see memory_rlimit).
    device: str = "cpu"

    def memory_rlimit(self) -> str:
        """Which rlimit caps the worker's memory: "as" (address space, the tighter) where it
        can, "data" (heap and private mappings) where address space says nothing about
        memory: CUDA reserves huge ranges, and a CUDA build of torch maps over 3 GB of
        libraries at import, on the CPU too (PyPI's default torch on Linux)."""
        return "data" if self.device == "cuda" or cuda_torch_installed() else "as"


@functools.cache
def cuda_torch_installed() -> bool:
    """Whether the installed torch is a CUDA build, found without importing it."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return False
    locations = (spec.submodule_search_locations or []) if spec else []
    return any(next((Path(loc) / "lib").glob("libtorch_cuda*"), None) is not None
               for loc in locations)


def worker_needs() -> list[Path]:
    """What the worker must still reach once paths are hidden: its interpreter and libraries,
    the system's, and the temporary folder that holds its script and home."""
    import sysconfig

    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.realpath(sys.executable),
             tempfile.gettempdir(), "/bin", "/lib", "/lib64", "/usr", "/etc", "/dev", "/proc"]
    paths += [sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    return [Path(os.path.realpath(p)) for p in paths if p]


# System trees any program needs: no student's or instructor's files live in them.
SYSTEM_VIEW = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")


def worker_view(python: str, extra=()) -> list[str]:
    """The allow-list of the worker's file system view (namespace mode): the system trees,
    the interpreter with its prefixes and library folders, and ``extra``. Nested entries
    collapse into their outermost folder; paths are kept as written (a venv is found from
    the path of its interpreter) and resolved (where its links point)."""
    import sysconfig

    paths = list(SYSTEM_VIEW) + [sys.prefix, sys.base_prefix, sys.exec_prefix,
                                 os.path.dirname(os.path.dirname(os.path.abspath(python))),
                                 *extra]
    paths += [sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    wanted = set()
    for path in filter(None, paths):
        wanted.add(os.path.abspath(path))
        wanted.add(os.path.realpath(path))
    wanted.discard("/")
    kept: list[str] = []
    for path in sorted(wanted):
        if not any(path.startswith(k + os.sep) for k in kept) and os.path.lexists(path):
            kept.append(path)
    return kept


def private_paths(paths, *, fallback_files=()) -> list[str]:
    """Folders to hide from the worker (other submissions, results), where hiding them leaves
    the worker able to run: a folder that holds the interpreter or the sandbox's temporary
    folder cannot be covered, and then only the files in ``fallback_files`` are."""
    needs = worker_needs()
    hidden = []
    for path in paths:
        real = Path(os.path.realpath(path))
        if real.is_dir() and not any(n == real or real in n.parents for n in needs):
            hidden.append(str(real))
    for path in fallback_files:
        real = Path(os.path.realpath(path))
        if real.is_file() and not any(str(real).startswith(h + os.sep) for h in hidden):
            hidden.append(str(real))
    return hidden


def package_paths(names) -> list[str]:
    """Where forbidden packages are installed: hidden from the worker, so removing the import
    hook does not make them importable (numpy, which the worker itself needs, never is)."""
    import importlib.util

    found = []
    for name in names:
        if name == "numpy":
            continue
        try:
            spec = importlib.util.find_spec(name)  # locates without importing
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            found += [os.path.realpath(p) for p in spec.submodule_search_locations]
        elif spec.origin and os.path.isfile(spec.origin):
            found.append(os.path.realpath(spec.origin))
    return found


def _other_can_execute(path: str) -> bool:
    """Whether a non-owner uid can traverse to and execute ``path`` (root's home often forbids)."""
    real = Path(os.path.realpath(path))
    for parent in list(real.parents)[::-1]:
        if not os.stat(parent).st_mode & 0o001:
            return False
    return bool(os.stat(real).st_mode & 0o001)


class _Slot:
    """An exclusive sandbox uid for this grader, held by an flock for the grader's lifetime."""

    def __init__(self):
        lock_dir = Path(tempfile.gettempdir()) / "dlgrade-slots"
        lock_dir.mkdir(mode=0o700, exist_ok=True)
        for i in range(SLOT_COUNT):
            fh = open(lock_dir / f"{i}.lock", "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                continue
            self._fh, self.uid = fh, SANDBOX_UID_BASE + i
            return
        raise InfrastructureError("all sandbox slots are busy")

    def release(self):
        self._fh.close()


def clean_slot(uid: int) -> None:
    """Remove everything a sandbox uid may have left: its processes, its SysV IPC objects and
    its files in shared temporary folders (``_launch.sweep``, run as root)."""
    subprocess.run([sys.executable, "-I", str(HERE / "_launch.py"), "--sweep", str(uid)],
                   check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


def become_subreaper():
    """Orphans of student code re-parent to us, so we can reap them instead of leaking zombies."""
    try:
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except OSError:
        pass


class Sandbox:
    """One student worker process; restartable after a crash or timeout."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.notes: list[str] = []
        self.output_head = bytearray()
        self.output_tail = bytearray()
        self.output_bytes = 0
        self._output_lock = threading.Lock()
        self._slot = None
        self.uid = None
        self.mode = "same-uid"
        if config.isolate_user and os.geteuid() == 0:
            if _other_can_execute(config.python):
                self._slot = _Slot()
                self.uid = self._slot.uid
                self.mode = "separate-uid"
                # A grader killed before its own sweep (a batch's timeout) leaves its worker's
                # processes, IPC objects and files under this uid: none reaches this student.
                clean_slot(self.uid)
            else:
                self.notes.append(
                    f"WARNING: the interpreter {config.python} is not executable by an "
                    "unprivileged uid (it lives under a private home directory); student code "
                    "runs as root, confined only by namespaces and rlimits. Install into a venv "
                    "made from a system Python (see README) to restore uid isolation.")
        become_subreaper()
        # The worker's pipes belong to this process: a forked diagnosis must never use them.
        self._owner_pid = os.getpid()
        self.workdir = Path(tempfile.mkdtemp(prefix="dlgrade-"))
        self.workdir.chmod(0o755)
        for name in WORKER_MODULES:
            shutil.copy(HERE / name, self.workdir / name)
            (self.workdir / name).chmod(0o644)
        self.home = self.workdir / "home"
        self.root = self.workdir / "root"  # mount point of the worker's allow-list root
        self.root.mkdir(mode=0o700)

    @property
    def device(self) -> str:
        return self.config.device

    def _check_owner(self):
        if os.getpid() != self._owner_pid:
            raise RuntimeError("the student's worker is reachable only from the grader process "
                               "that started it (not from a bounded diagnosis)")

    # ---- lifecycle -------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> dict:
        self._check_owner()
        self.kill()
        if self.home.exists():
            shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(mode=0o700)
        req_r, self._req_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        out_r, out_w = os.pipe()
        cfg = {
            "python": self.config.python, "worker": str(self.workdir / "worker.py"),
            "worker_files": [str(self.workdir / name) for name in WORKER_MODULES],
            "home": str(self.home), "hide": self.config.hide, "root": str(self.root),
            "grader_pid": os.getpid(), "files": [[n, str(p)] for n, p in self.config.files],
            "allow": worker_view(self.config.python, self.config.allow),
            "fd_in": req_r, "fd_out": resp_w, "namespaces": self.config.namespaces,
            "uid": self.uid, "gid": self.uid, "device": self.config.device,
            "memory_rlimit": self.config.memory_rlimit(),
            **vars(self.config.limits),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(HERE / "_launch.py"), json.dumps(cfg)],
            stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w,
            pass_fds=(req_r, resp_w), start_new_session=True, close_fds=True,
        )
        for fd in (req_r, resp_w, out_w):
            os.close(fd)
        self._reader = threading.Thread(target=self._drain, args=(out_r,), daemon=True)
        self._reader.start()
        try:
            hello = self._read_reply(time.monotonic() + timeout)
        except WorkerError as exc:
            output = self.output_text()
            self.kill()
            raise InfrastructureError(
                f"the student worker failed to start ({exc}); output: {output[-2000:]}") from None
        self.launch_notes = list(hello["value"].get("notes", []))
        return hello

    def _drain(self, fd: int):
        """Keep the first and last 64 KiB of whatever the student prints; discard the rest."""
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(1 << 16)
                if not chunk:
                    return
                with self._output_lock:
                    self.output_bytes += len(chunk)
                    room = OUTPUT_CAP - len(self.output_head)
                    if room > 0:
                        self.output_head += chunk[:room]
                        chunk = chunk[room:]
                    if chunk:
                        self.output_tail = (self.output_tail + chunk)[-OUTPUT_CAP:]

    def output_text(self, limit: int = OUTPUT_CAP) -> str:
        """The first and last ``limit`` bytes of the student's output, with a gap marker."""
        with self._output_lock:
            head = bytes(self.output_head)
            held = bytes(self.output_head + self.output_tail)
            total = self.output_bytes
        if total == len(held) and len(held) <= 2 * limit:
            return held.decode("utf-8", "replace")
        first, last = head[:limit], held[-limit:]  # tail is >= limit whenever bytes were dropped
        dropped = total - len(first) - len(last)
        return (f"{first.decode('utf-8', 'replace')}\n... [{dropped} bytes of output omitted] ...\n"
                f"{last.decode('utf-8', 'replace')}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is None:
            return
        self._check_owner()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._sweep()
        for fd in (self._req_w, self._resp_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc = None
        self._reader.join(timeout=2)

    def _sweep(self):
        """Kill whatever student code left behind (setsid daemons escape killpg), then reap."""
        if self.uid is not None:
            clean_slot(self.uid)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break

    def close(self):
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    # ---- requests --------------------------------------------------------------------
    def request(self, op: str, params: dict, timeout: float):
        self._check_owner()
        if not self.alive:
            raise WorkerError("crash", "the worker is not running")
        deadline = time.monotonic() + timeout
        data = wire.encode_request(op, params)
        try:
            self._write_all(data, deadline)
        except (BrokenPipeError, OSError):
            raise self._death("while receiving its inputs") from None
        return self._read_reply(deadline)

    def _write_all(self, data: bytes, deadline: float):
        view = memoryview(data)
        os.set_blocking(self._req_w, False)
        with selectors.DefaultSelector() as sel:
            sel.register(self._req_w, selectors.EVENT_WRITE)
            while view:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    self.kill()
                    raise WorkerError("timeout", "timed out")
                try:
                    view = view[os.write(self._req_w, view):]
                except BlockingIOError:
                    continue

    def _read_reply(self, deadline: float):
        sel = selectors.DefaultSelector()
        sel.register(self._resp_r, selectors.EVENT_READ)

        def read_exact(n: int) -> bytes:
            buf = bytearray()
            while len(buf) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    self.kill()
                    raise WorkerError("timeout", "timed out")
                chunk = os.read(self._resp_r, min(n - len(buf), 1 << 22))
                if not chunk:
                    raise self._death("")
                buf += chunk
            return bytes(buf)

        try:
            return wire.read_message(read_exact)
        except wire.ProtocolError as exc:
            self.kill()
            raise WorkerError("protocol", f"the worker sent an invalid reply ({exc})") from None
        finally:
            sel.close()

    def _death(self, when: str) -> WorkerError:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self.kill()
        return WorkerError("crash", describe_exit(code) + (f" {when}" if when else ""))


def describe_exit(code) -> str:
    if code is None:
        return "the worker stopped answering"
    if code < 0 or code > 128:
        sig = -code if code < 0 else code - 128
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = {"SIGSEGV": " (segmentation fault)",
                "SIGKILL": " (killed: out of memory or CPU time?)",
                "SIGXCPU": " (CPU time limit)", "SIGABRT": " (aborted)"}.get(name, "")
        return f"the worker process was killed by {name}{hint}"
    return f"the worker process exited with code {code}"
