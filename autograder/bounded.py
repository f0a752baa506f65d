"""Run grader code on data a student chose, with a wall-clock and a memory bound.

The diagnoser replays recorded calls, whose inputs and results the student's code chose, on
the reference and on mutants inside the grader. Trusted code on hostile data can still hang
(``beta1 ** t`` with ``t = 10**9``) or allocate without bound (broadcasting 48 KB of arrays
to gigabytes), and a grader killed by the kernel loses the whole grade. So such work runs in
a forked child: it inherits everything already loaded (no re-import, no pickling of the
inputs), is capped by ``RLIMIT_AS`` and marked first in line for the OOM killer, and the
parent kills it at a deadline. Only the result, pickled by the child (trusted code), comes
back; anything else (a timeout, a crash, an exception) gives the caller's default.
"""
from __future__ import annotations

import os
import pickle
import resource
import selectors
import signal
import sys
import time
import warnings

# Address space a bounded child may add to what it inherits: far above what replaying a
# test's small inputs needs, far below what would endanger the grader's machine.
DEFAULT_MEMORY_BYTES = 1 << 30
# The child's answer is a few strings; anything longer is not read.
MAX_RESULT_BYTES = 16 << 20


def inherited_address_space() -> int | None:
    """This process's virtual size in bytes (VmSize), or None where /proc does not say."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _confine(memory_bytes: int) -> None:
    """In the child: let the kernel kill it, not the grader, when memory runs out (a shared
    cgroup), and refuse allocations past the budget (MemoryError, caught like any failure)."""
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass
    size = inherited_address_space()
    if size is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = size + memory_bytes
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    torch = sys.modules.get("torch")
    if torch is not None:
        # The parent's intra-op thread pool does not survive fork: stay on this thread.
        torch.set_num_threads(1)


def run_bounded(fn, *, seconds: float, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                default=None):
    """``fn()`` computed in a forked child within ``seconds`` of wall clock and
    ``memory_bytes`` of new address space; ``default`` when it does not finish in time, runs
    out of memory, raises, or dies. ``fn`` must only compute: it must not touch the student's
    worker (its pipes are shared with this process) nor expect its side effects to persist.
    Where fork is unavailable, ``fn()`` runs here, unbounded."""
    if not hasattr(os, "fork"):
        try:
            return fn()
        except Exception:  # noqa: BLE001 - the bound's contract: failures give the default
            return default
    deadline = time.monotonic() + seconds
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns on fork in a threaded process (the grader drains the worker's
        # output in a thread): the child only computes, writes to a pipe and _exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its coverage is not collected
        status = 1
        try:
            os.close(read_fd)
            _confine(memory_bytes)
            try:
                data = pickle.dumps(("ok", fn()))
            except BaseException:  # noqa: BLE001 - MemoryError, RecursionError, anything
                data = pickle.dumps(("error", None))
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view):]
            status = 0
        finally:
            os._exit(status)  # never back into the grader's own code (pytest, atexit, buffers)
    os.close(write_fd)
    try:
        data = _read_until(read_fd, deadline)
    finally:
        os.close(read_fd)
        # Done or not, the child goes: SIGKILL reaches it even in a long C call.
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    if data is None:
        return default
    try:
        status, value = pickle.loads(data)
    except Exception:  # noqa: BLE001 - cut short: killed while writing
        return default
    return value if status == "ok" else default


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything the child writes until it closes the pipe; None past the deadline."""
    chunks, size = [], 0
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_RESULT_BYTES:
                return None
            chunks.append(chunk)
