"""The student worker: runs a notebook's code and answers the grader's calls.

This file runs as a standalone script in an unprivileged process (``python -I worker.py``),
beside the modules it needs (``codec``: the channel's framing; ``definitions``: what
definitions mode runs; ``calling``: seeding and calls with backpropagation, as the grader's
replays make them), and imports nothing else from the ``autograder`` package. Everything the
worker sends is re-validated by ``autograder.wire``.
"""
from __future__ import annotations

import ast
import builtins
import io
import json
import linecache
import os
import stat
import sys
import traceback
import types

try:  # imported as autograder.worker (the grader), or run as a script beside them (the worker)
    from .calling import grad_call, seed_everything
    from .codec import (MAX_DEPTH, Unencodable, decode_tree, encode_tree, frame, read_exact,
                        read_request)
    from .definitions import _assigned_names, _keep_definition, _scope_names, plan_definitions
except ImportError:  # `python -I worker.py`: its folder is not on the path; only for these
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from calling import grad_call, seed_everything
    from codec import (MAX_DEPTH, Unencodable, decode_tree, encode_tree, frame, read_exact,
                       read_request)
    from definitions import _assigned_names, _keep_definition, _scope_names, plan_definitions
    del sys.path[0]

# The modules the worker script imports from its own folder (the sandbox copies them there).
WORKER_MODULES = ("worker.py", "calling.py", "codec.py", "definitions.py")


class _IPythonStub:
    """Stands in for IPython so neutralised magics (already rewritten to calls) do nothing."""

    def run_line_magic(self, *args, **kwargs):
        return None

    def run_cell_magic(self, *args, **kwargs):
        return None

    def system(self, *args, **kwargs):
        return None

    def getoutput(self, *args, **kwargs):
        return ""


class _ForbiddenImports:
    """A meta-path finder refusing modules the assignment does not allow."""

    def __init__(self, names, assignment, reason=""):
        self.names = set(names)
        self.assignment = assignment
        self.reason = reason  # the assignment's forbidden_message

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            why = f": {self.reason}" if self.reason else ""
            raise ImportError(
                f"importing {fullname!r} is not allowed in {self.assignment}{why} "
                f"(refused: {', '.join(sorted(self.names))})"
            )
        return None


def _stub_modules():
    """Grader and otter imports inside a notebook are for the student's own machine."""
    ag = types.ModuleType("autograder")
    ag.check = lambda *args, **kwargs: None
    ag.__dlgrade_stub__ = True
    sys.modules["autograder"] = ag

    otter = types.ModuleType("otter")

    class Notebook:
        def __init__(self, *args, **kwargs):
            pass

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    otter.Notebook = Notebook
    sys.modules["otter"] = otter


MAX_CELL_TEXT = 200_000
MAX_READ_FILE = 32 << 20  # a student file the grader reads back (op_read_file)


def run_cell(source: str, namespace: dict, filename: str = "<test cell>"):
    """Run a cell of test code in ``namespace`` as Jupyter runs a cell: every statement in order,
    the value of a trailing expression (not ending in ``;``) kept instead of displayed.

    Returns ``(printed text, has_value, value)``. Used for converted otter test cells: the
    grader formats and compares the value itself.
    """
    import contextlib

    tree = compile(source, filename, "exec", ast.PyCF_ONLY_AST)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        stmt = tree.body[-1]
        rest = source.splitlines()[stmt.end_lineno - 1][stmt.end_col_offset:]
        if not rest.lstrip().startswith(";"):
            last = ast.Expression(tree.body.pop().value)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(tree, filename, "exec"), namespace)
        value = eval(compile(last, filename, "eval"), namespace) if last is not None else None
    return printed.getvalue(), last is not None and value is not None, value


def _shown_by_worker(value, depth: int = 0) -> bool:
    """Values whose display text only the worker can produce: not plain data, or torch tensors
    whose repr carries what the wire drops (``grad_fn``, the device)."""
    try:
        encode_tree(value, [])
    except Unencodable:
        return True
    torch = sys.modules.get("torch")
    if torch is None or depth > MAX_DEPTH:
        return False
    if type(value) in (torch.Tensor, torch.nn.Parameter):
        return value.requires_grad or value.device.type != "cpu"
    if type(value) in (list, tuple):
        return any(_shown_by_worker(v, depth + 1) for v in value)
    if type(value) is dict:
        return any(_shown_by_worker(v, depth + 1) for v in value.values())
    return False


WORKER_OBJECTS_MODULE = "dlgrade_worker_objects"


def load_worker_objects(source: str, filename: str) -> dict:
    """An assignment's ``worker_objects.py`` (trusted, the instructor's): its public functions
    and classes by name (or those its ``__all__`` lists), for ``make``. Run in the worker
    before any student cell; the student's code can read it, so it holds no answer."""
    namespace = {"__name__": WORKER_OBJECTS_MODULE, "__builtins__": builtins}
    exec(compile(source, filename, "exec"), namespace)
    names = namespace.get("__all__") or [
        name for name, value in namespace.items() if not name.startswith("_")
        and callable(value) and getattr(value, "__module__", None) == WORKER_OBJECTS_MODULE]
    return {name: namespace[name] for name in names}
TORCH_FACTORIES = ("torch.optim.Adam", "torch.optim.SGD", "torch.Generator", "torch.nn.Linear",
                   "torch.nn.LeakyReLU", "torch.nn.Sequential")


def trusted_factory(name: str, objects: dict | None = None):
    """Grader-side code may build these in the worker (optimizers, copies, and the objects of
    the assignment's worker_objects.py): objects a hidden test needs next to the student's,
    which no student name may provide. The engine's names come first."""
    import copy

    if name == "copy.deepcopy":
        return copy.deepcopy
    if name in ("numpy.random.default_rng", "numpy.random.seed"):
        import numpy

        # A generator (or the global seed) in the student's process, made by numpy itself,
        # whatever the notebook binds to `np`.
        return getattr(numpy.random, name.rsplit(".", 1)[1])
    if name in TORCH_FACTORIES:
        import torch

        # Plain torch layers let a test build a network of its own beside the student's (a
        # composite is then judged without the student's builders).
        return {"torch.optim.Adam": torch.optim.Adam, "torch.optim.SGD": torch.optim.SGD,
                "torch.Generator": torch.Generator, "torch.nn.Linear": torch.nn.Linear,
                "torch.nn.LeakyReLU": torch.nn.LeakyReLU,
                "torch.nn.Sequential": torch.nn.Sequential}[name]
    if objects and name in objects:
        return objects[name]
    raise LookupError(f"no trusted factory named {name!r}")


class Worker:
    def __init__(self, fd_in: int, fd_out: int, device: str = "cpu"):
        self.fd_in = fd_in
        self.fd_out = fd_out
        self.device = device
        self.pid = os.getpid()
        self.namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
        self.handles: dict[int, object] = {}
        self.next_handle = 1
        self.objects: dict = {}  # the assignment's worker_objects.py, for op_make

    # ---- handles -------------------------------------------------------------------
    def make_handle(self, obj):
        hid = self.next_handle
        self.next_handle += 1
        self.handles[hid] = obj
        return {"$handle": hid, "type": type(obj).__name__, "callable": callable(obj)}

    def resolve_handle(self, hid):
        try:
            return self.handles[hid]
        except KeyError:
            raise LookupError(f"stale object handle {hid}") from None

    def encode(self, value, buffers):
        return encode_tree(value, buffers, self.make_handle)

    # ---- operations ----------------------------------------------------------------
    def op_plan(self, cells):
        """The statements ``definitions`` mode runs, decided over the whole notebook (a
        statement in one cell may be needed by a function in another): pairs of cell number
        and statement positions."""
        return [[index, positions] for index, positions in plan_definitions(cells).items()]

    def op_load(self, cells, mode, forbidden, assignment, prefix="", keep=None,
                forbidden_reason=""):
        """``prefix``: the assignment's code run before every cell (e.g. otter's intercell
        seeding), whatever the mode. ``keep``: in ``definitions`` mode, the positions of the
        statements to run in this (single) cell, from ``op_plan``; without it, definitions
        only."""
        import numpy  # noqa: F401  (warm the import so student time is theirs)

        builtins.get_ipython = lambda: _IPythonStub()
        _stub_modules()
        if forbidden:
            for name in list(sys.modules):
                if name.split(".")[0] in forbidden:
                    del sys.modules[name]
            sys.meta_path.insert(0, _ForbiddenImports(forbidden, assignment, forbidden_reason))
        problems, skipped, defined = [], [], []
        for index, source in cells:
            filename = f"cell[{index}]"
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            try:
                tree = compile(source, filename, "exec", ast.PyCF_ONLY_AST)
            except (SyntaxError, ValueError, RecursionError, MemoryError, UnicodeError) as exc:
                problems.append({"cell": index, "kind": type(exc).__name__,
                                 "message": _one_line(exc), "line": getattr(exc, "lineno", None)})
                continue
            if prefix:
                try:
                    exec(compile(prefix, "<cell prefix>", "exec"), self.namespace)
                except Exception as exc:  # noqa: BLE001 - the student may have broken its imports
                    problems.append({"cell": index, "kind": type(exc).__name__,
                                     "message": f"the assignment's cell prefix failed: "
                                                f"{_one_line(exc)}", "line": None})
            wanted = set(keep) if keep is not None else None
            for position, stmt in enumerate(tree.body):
                run = _keep_definition(stmt) if wanted is None else position in wanted
                if mode == "definitions" and not run:
                    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For,
                                         ast.With)):
                        skipped.append({"cell": index, "line": stmt.lineno,
                                        "names": _assigned_names(stmt)})
                    continue
                try:
                    code = compile(ast.Module(body=[stmt], type_ignores=[]), filename, "exec")
                    exec(code, self.namespace)
                except BaseException as exc:  # noqa: BLE001 - student code may raise anything
                    if isinstance(exc, (KeyboardInterrupt,)):
                        raise
                    problems.append({"cell": index, "kind": type(exc).__name__,
                                     "message": _one_line(exc), "line": stmt.lineno,
                                     "traceback": _student_traceback(exc),
                                     "names": sorted(_scope_names(stmt)[0])[:50]})
        if "torch" in sys.modules and "torch" not in forbidden:
            # torch's optimizers import torch._dynamo on first use (seconds): pay it while
            # loading, not inside the first test that builds an optimizer.
            try:
                import torch._dynamo  # noqa: F401
            except Exception:  # noqa: BLE001 - a broken torch shows up in the tests instead
                pass
        for name, value in self.namespace.items():
            if not name.startswith("__") and (callable(value) or isinstance(value, type)):
                defined.append(name)
        return {"problems": problems, "skipped": skipped, "defined": sorted(defined)}

    def _target(self, target):
        if "handle" in target:
            obj = self.resolve_handle(target["handle"])
        else:
            name = target["name"]
            if name not in self.namespace:
                raise NameError(f"name {name!r} is not defined")
            obj = self.namespace[name]
        for attr in target.get("path", []):
            obj = getattr(obj, attr)
        return obj

    def op_call(self, target, args, kwargs, return_args=False, capture=False):
        """``capture``: also return what the call printed (a converted otter case shows it,
        in order with its own output): ``(result, printed)``."""
        fn = self._target(target)
        if capture:
            import contextlib

            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                result = fn(*args, **kwargs)
            return (result, printed.getvalue()[-MAX_CELL_TEXT:])
        result = fn(*args, **kwargs)
        if return_args:
            return (result, list(args), kwargs)
        return result

    def op_grad_call(self, target, args, kwargs, upstream=None, output_index=None):
        """``calling.grad_call`` on a torch function of the notebook: (out, grads), compared by
        the grader itself."""
        return grad_call(self._target(target), args, kwargs, upstream, output_index)

    def op_get(self, target):
        return self._target(target)

    def op_make(self, factory, args, kwargs):
        return trusted_factory(factory, self.objects)(*args, **kwargs)

    def op_read_file(self, name):
        """A file the notebook wrote in its working directory (otter's ``student_files``), as
        bytes in a uint8 array; None where there is no such regular file. Relative names
        only; the reply is the grader's to check like any other."""
        import numpy as np

        if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            return None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return None
            data = fh.read(MAX_READ_FILE + 1)
        return None if len(data) > MAX_READ_FILE else np.frombuffer(data, dtype=np.uint8)

    def op_objects(self, source, filename):
        self.objects = load_worker_objects(source, filename)
        return sorted(self.objects)

    def op_set(self, target, attr, value):
        setattr(self._target(target), attr, value)

    def op_setitem(self, target, key, value):
        self._target(target)[key] = value

    def op_seed(self, seed):
        seed_everything(seed, self.device)

    def op_exec_cell(self, source, filename="<test cell>"):
        """Run a converted otter test cell (instructor code) here, in the student's namespace.

        Plain results travel as data and the grader formats them itself; numpy scalars are
        flagged so the grader rebuilds the scalar, not a 0-d array. Only values that cannot
        travel are shown with their own repr here. The expected output never comes here.
        """
        printed, has_value, value = run_cell(source, self.namespace, filename)
        reply = {"printed": printed[-MAX_CELL_TEXT:], "kind": "none"}
        if not has_value:
            return reply
        if _shown_by_worker(value):
            try:
                text = repr(value)
            except Exception as exc:  # noqa: BLE001 - a student __repr__ may raise anything
                text = f"<repr failed: {type(exc).__name__}: {_one_line(exc)}>"
            if type(text) is not str:
                text = "<repr did not return a str>"
            reply.update(kind="text", text=text[:MAX_CELL_TEXT])
            return reply
        numpy = sys.modules.get("numpy")
        scalar = numpy is not None and isinstance(value, numpy.generic)
        reply.update(kind="scalar" if scalar else "plain", value=value)
        return reply

    def op_release(self, handles):
        for hid in handles:
            self.handles.pop(hid, None)

    def op_probe(self, paths):
        """Self-test before any student code: which of these paths can we read?"""
        readable = []
        for path in paths:
            try:
                if os.path.isdir(path):
                    os.listdir(path)
                else:
                    with open(path, "rb") as fh:
                        fh.read(1)
                readable.append(path)
            except OSError:
                pass
        import socket

        network = False
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(0.2)
                s.connect(("1.1.1.1", 53))
                network = True
        except OSError:
            pass
        return {"uid": os.getuid(), "readable": readable, "network": network}

    # ---- loop ------------------------------------------------------------------------
    def handle(self, header: dict, arrays: list) -> tuple[dict, list]:
        """Run one request; the reply and its buffers, never an exception."""
        msg = header["msg"]
        buffers: list = []
        try:
            params = decode_tree(msg["params"], arrays, self.resolve_handle)
            value = getattr(self, "op_" + msg["op"])(**params)
            try:
                reply = {"ok": True, "value": self.encode(value, buffers)}
            except Unencodable as exc:
                buffers = []
                reply = {"ok": False, "error": {"type": "UnsupportedReturnType",
                                                "message": str(exc), "traceback": ""}}
        except BaseException as exc:  # noqa: BLE001
            buffers = []
            reply = {"ok": False, "error": {"type": type(exc).__name__,
                                            "message": _one_line(exc),
                                            "traceback": _student_traceback(exc)}}
        return reply, buffers

    def serve(self):
        while True:
            try:
                header, arrays = read_request(lambda n: read_exact(self.fd_in, n))
            except EOFError:
                return
            reply, buffers = self.handle(header, arrays)
            if os.getpid() != self.pid:
                # A process forked by student code got back here: only the worker answers, so
                # forks cannot answer the grader twice or read the next request.
                os._exit(0)
            sys.stdout.flush()
            sys.stderr.flush()
            os.write(self.fd_out, b"")  # raises if the grader went away
            data = frame(reply, buffers)
            view = memoryview(data)
            while view:
                written = os.write(self.fd_out, view)
                view = view[written:]


def _one_line(exc) -> str:
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 - a student exception's __str__ may itself raise
        text = "<unprintable>"
    return text[:2000]


def _student_traceback(exc) -> str:
    """Only the frames from the student's cells: the worker's own frames are noise."""
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if f.filename.startswith("cell[")]
        lines = traceback.format_list(frames[-8:])
        lines += traceback.format_exception_only(type(exc), exc)
        return "".join(lines)[-6000:]
    except BaseException:  # noqa: BLE001
        return ""


def main():
    config = json.loads(sys.argv[1])
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    # Student prints go to fd 1/2, which the grader drains and caps; keep Python's buffers small.
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", 0), write_through=True, errors="replace")
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", 0), write_through=True, errors="replace")
    sys.stdin = io.StringIO("")
    sys.setrecursionlimit(min(sys.getrecursionlimit(), 3000))
    # As in Jupyter, the working directory (the home, with the assignment's files) is the
    # first import path: a helper module shipped beside the notebook imports.
    sys.path.insert(0, os.getcwd())
    worker = Worker(config["fd_in"], config["fd_out"], config.get("device", "cpu"))
    hello = encode_tree({"ready": True, "pid": os.getpid(), "notes": config.get("notes", [])}, [])
    os.write(config["fd_out"], frame({"ok": True, "value": hello}, []))
    worker.serve()


if __name__ == "__main__":
    main()
