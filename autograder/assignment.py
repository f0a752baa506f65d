"""Assignments: where their parts live and how they are graded."""
from __future__ import annotations

import ast
import os
import sys
import tomllib
import traceback
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import nbformat

from .notebook import extract_code
from .sandbox import Limits

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS_DIR = PROJECT_ROOT / "assignments"
SOLUTIONS_DIR = PROJECT_ROOT / "solutions"


class AssignmentError(Exception):
    pass


@dataclass
class MasterRun:
    """What running the master notebook top to bottom must show, besides every public check
    passing (dlgrade's own tests run it): text it ``prints``, and expressions that then
    ``hold`` in its namespace (``hidden``: the hidden tests' helpers and constants)."""
    prints: list[str] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)


@dataclass
class Assignment:
    name: str
    directory: Path
    title: str = ""
    mode: str = "definitions"
    forbidden_imports: list[str] = field(default_factory=list)
    # Said after "importing 'torch' is not allowed in NAME": why, in the course's words.
    forbidden_message: str = ""
    time_limit: float = 10.0
    # Caps every test's limit, markers included: for quick smoke runs of hanging notebooks.
    time_limit_cap: float | None = None
    total_time_limit: float = 600.0
    load_time_limit: float = 30.0
    # All cells together, restarts after bad cells included; None: 3 x load_time_limit. No
    # cell starts past it, and the cells not reached are not loaded (a load problem says so).
    total_load_time_limit: float | None = None
    limits: Limits = field(default_factory=Limits)
    master_run: MasterRun = field(default_factory=MasterRun)
    master: Path | None = None
    min_mutants: int = 15
    # Code run in the worker before every notebook cell (otter's intercell seeding).
    cell_prefix: str = ""
    # Data files the notebook reads (paths relative to the assignment folder): copied, read-only,
    # into the worker's working directory before the notebook loads, and shipped in the student
    # release and the Gradescope zip.
    files: list[str] = field(default_factory=list)
    # Packages the notebook needs besides dlgrade's own (PEP 508, "pandas>=2"): installed by
    # the Gradescope setup, checked before grading.
    requirements: list[str] = field(default_factory=list)
    # The Gradescope total is scaled to this many points (otter's ``points_possible``): the
    # earned fraction of the tests' points times it. None: the tests' points as they are.
    points_possible: float | None = None

    @property
    def tests_dir(self) -> Path:
        return self.directory / "tests"

    @property
    def skeleton(self) -> Path:
        return self.directory / f"{self.name}.ipynb"

    @property
    def mutants_file(self) -> Path:
        return self.directory / "mutants.py"

    @property
    def worker_objects(self) -> tuple[str, str] | None:
        """(file name, source) of the folder's ``worker_objects.py``: trusted objects the
        hidden tests build in the student's worker with ``make(name, ...)``; None without."""
        return worker_objects_of(self.directory)

    def public_files(self) -> list[tuple[str, Path]]:
        """(relative name, path) of each declared file; AssignmentError for a name that
        leaves the folder or a file that is missing."""
        found = []
        for name in self.files:
            rel = Path(name)
            path = (self.directory / rel).resolve()
            if rel.is_absolute() or ".." in rel.parts or self.directory not in path.parents:
                raise AssignmentError(f"{self.name}: files entry {name!r} must be a path inside "
                                      "the assignment folder")
            if not path.is_file():
                raise AssignmentError(f"{self.name}: the declared file {name!r} is missing from "
                                      f"{self.directory}; add it or remove it from files in "
                                      "assignment.toml")
            found.append((rel.as_posix(), path))
        return found

    def missing_requirements(self) -> list[str]:
        """The requirements this environment does not satisfy (not installed, or another
        version), as written in assignment.toml."""
        from importlib.metadata import PackageNotFoundError, version

        from packaging.requirements import InvalidRequirement, Requirement

        missing = []
        for text in self.requirements:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                raise AssignmentError(f"{self.name}: requirements entry {text!r} is not a "
                                      "package requirement (e.g. \"pandas>=2\")") from None
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue
            try:
                installed = version(requirement.name)
            except PackageNotFoundError:
                missing.append(text)
                continue
            if requirement.specifier and not requirement.specifier.contains(installed, True):
                missing.append(f"{text} (installed: {installed})")
        return missing

    @property
    def secret_paths(self) -> list[Path]:
        """Everything the worker must not read: the whole assignment folder (hidden tests,
        mutants) and the folder of the master solution."""
        paths = [self.directory]
        if self.master is not None:
            paths.append(self.master.parent)
        return [p for p in paths if p.exists()]

    @cached_property
    def reference(self) -> types.ModuleType:
        if self.master is None or not self.master.exists():
            raise AssignmentError(f"{self.name}: no master solution notebook found")
        with self.beside_files():
            return load_reference(self.master, f"dlgrade_reference_{self.name}", mode=self.mode)

    @contextmanager
    def beside_files(self):
        """While the master's definitions load in the grader: the working directory and the
        first import path are the assignment folder, where its data files and helper modules
        are (as the worker has them in its home). Nothing changes without ``files``."""
        if not self.files:
            yield
            return
        previous = os.getcwd()
        os.chdir(self.directory)
        sys.path.insert(0, str(self.directory))
        try:
            yield
        finally:
            os.chdir(previous)
            if str(self.directory) in sys.path:
                sys.path.remove(str(self.directory))

    @cached_property
    def diagnoser(self):
        """Names known mistakes in failing results; built lazily, kept for later gradings."""
        from .diagnose import Diagnoser

        return Diagnoser(self)


WORKER_OBJECTS_FILE = "worker_objects.py"


def worker_objects_of(directory: Path) -> tuple[str, str] | None:
    path = Path(directory) / WORKER_OBJECTS_FILE
    return (WORKER_OBJECTS_FILE, path.read_text()) if path.is_file() else None


def load_assignment(name_or_path: str) -> Assignment:
    path = Path(name_or_path)
    directory = path if (path / "assignment.toml").exists() else ASSIGNMENTS_DIR / name_or_path
    config_file = directory / "assignment.toml"
    if not config_file.exists():
        known = sorted(p.name for p in ASSIGNMENTS_DIR.iterdir()
                       if (p / "assignment.toml").exists())
        raise AssignmentError(f"unknown assignment {name_or_path!r}; known: {', '.join(known)} "
                              "(or pass the path of an assignment folder)")
    config = tomllib.loads(config_file.read_text())
    limits = Limits(**config.pop("limits", {}))
    master_run = MasterRun(**config.pop("master_run", {}))
    master = config.pop("master", None)
    name = config.pop("name", directory.name)
    master_path = (directory / master).resolve() if master else SOLUTIONS_DIR / f"{name}.ipynb"
    scaled = config.get("points_possible")
    if scaled is not None and (isinstance(scaled, bool) or not isinstance(scaled, (int, float))
                               or scaled <= 0):
        raise AssignmentError(f"{config_file}: points_possible must be a positive number "
                              f"(got {scaled!r}); remove it to use the tests' points as they are")
    return Assignment(name=name, directory=directory.resolve(), limits=limits,
                      master_run=master_run, master=master_path, **config)


def definitions_only(source: str, filename: str, keep=None):
    """The reference's statements that ``definitions`` mode runs, by the same rule the worker
    applies to students (``keep``: positions from ``definitions.plan_definitions``)."""
    from .definitions import _keep_definition

    tree = ast.parse(source, filename)
    tree.body = [stmt for position, stmt in enumerate(tree.body)
                 if (position in keep if keep is not None else _keep_definition(stmt))]
    return compile(tree, filename, "exec")


class MasterLoadError(AssignmentError):
    """The master notebook itself fails to load: the instructor's to fix."""


def load_reference(master: Path, module_name: str, nb=None, mode: str = "definitions"
                   ) -> types.ModuleType:
    """Execute the master notebook in-process (trusted code) the way its assignment says:
    ``definitions`` keeps what definitions need, as for students; ``all`` runs every cell in
    order. A cell that fails raises MasterLoadError naming the cell."""
    from .definitions import plan_definitions
    from .public import checks_off

    nb = nb if nb is not None else nbformat.read(master, as_version=4)
    module = types.ModuleType(module_name)
    module.__file__ = str(master)
    module.__dlgrade_code__ = []  # what ran, for with_parts
    cells = extract_code(nb).cells
    plan = plan_definitions(cells) if mode == "definitions" else None
    for number, code in cells:
        filename = f"{master.name}[{number}]"
        try:
            if plan is None:
                compiled = compile(code, filename, "exec")
            else:
                compiled = definitions_only(code, filename, set(plan.get(number, [])))
            module.__dlgrade_code__.append(compiled)
            with checks_off():
                exec(compiled, module.__dict__)
        except Exception as exc:  # noqa: BLE001 - any failure of the master is reported
            line = next((f.lineno for f in reversed(traceback.extract_tb(exc.__traceback__))
                         if f.filename == filename), None)
            where = f"cell {number}" + (f", line {line}" if line else "")
            raise MasterLoadError(f"the master notebook {master.name} fails to load ({where}: "
                                  f"{type(exc).__name__}: {exc})") from exc
    return module


def with_parts(reference: types.ModuleType, **parts) -> types.ModuleType:
    """A fresh copy of the reference module in which the named functions are ``parts`` (the
    student's, called through the worker): its composites then run the contract's code around
    the student's own parts, so a test of a composite can accept a result that is right given
    those parts, whose mistakes cost in their own tests. Trusted code, run in the grader."""
    from .public import checks_off

    code = getattr(reference, "__dlgrade_code__", None)
    if code is None:
        raise ValueError("with_parts needs a module made by load_reference")
    copy = types.ModuleType(f"{reference.__name__}_with_parts")
    copy.__file__ = reference.__file__
    with checks_off():
        for compiled in code:
            exec(compiled, copy.__dict__)
    for name, part in parts.items():
        setattr(copy, name, part)  # the copy's functions look their globals up at call time
    return copy
