"""Reading otter's master-notebook format: the ASSIGNMENT CONFIG, question, solution, prompt
and tests blocks, in-cell markers, test configs and points; the report's notes."""
from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field
from pathlib import Path



# =============================================================================================
# Conversion
# =============================================================================================

QUESTION_KEYS = {"name", "points", "all_or_nothing"}
TEST_KEYS = {"hidden", "points", "success_message", "failure_message"}
ASSIGNMENT_KEYS = {"name", "seed", "tests", "generate", "files", "student_files",
                   "requirements"}
# Assignment keys about otter's own packaging: nothing to convert, but still listed.
OTTER_ONLY_KEYS = {"init_cell", "check_all_cell", "export_cell", "run_tests", "solutions_pdf",
                   "template_pdf", "show_question_points", "runs_on", "python_version",
                   "channel_priority_strict", "save_environment", "suppress_no_tests_warning",
                   "overwrite_requirements", "ignore_modules", "config_file"}

BLOCK = re.compile(r"#\s+(begin|end)\s+(question|prompt|solution|tests)\b", re.IGNORECASE)
ASSIGNMENT_CONFIG = re.compile(r"#\s+assignment\s+config\s*", re.IGNORECASE)
IGNORE_CELL = re.compile(r"(##\s*ignore\s*##\s*|#\s*ignore\s*)", re.IGNORECASE)
BEGIN_TEST_CONFIG = re.compile(r'(?:.\s*=\s*)?""?"?\s*#\s*BEGIN\s*TEST\s*CONFIG', re.IGNORECASE)
END_TEST_CONFIG = re.compile(r'""?"?\s*#\s*END\s*TEST\s*CONFIG', re.IGNORECASE)
BEGIN_SOLUTION = re.compile(r"^(\s*)# BEGIN SOLUTION( NO PROMPT)?\s*$")
SOLUTION_LINE = re.compile(r"^(\s*)(.*?)\s*# ?SOLUTION( NO PROMPT)?\s*$")
BEGIN_IGNORE = re.compile(r"\s*#\s*BEGIN\s*IGNORE\s*", re.IGNORECASE)
GRADER_NAME = re.compile(r"^\s*(\w+)\s*=\s*(?:otter\.)?Notebook\(", re.MULTILINE)


def _otter_line_pattern(grader_names) -> re.Pattern:
    """Lines that use otter's client (``import otter``, ``grader.check("q1")``)."""
    calls = "|".join(re.escape(n) for n in sorted(grader_names))
    calls = rf"|(?:{calls})\s*\." if calls else ""
    return re.compile(rf"^\s*(?:import otter\b|from otter\b{calls})")


class OtterImportError(Exception):
    """The master notebook cannot be imported at all (the message says where and why)."""


@dataclass
class Note:
    """One line of the import report."""

    where: str
    text: str
    what: str
    converted: bool = False  # True: converted, with a difference worth knowing

    def render(self) -> str:
        text = f" `{self.text.strip()[:100]}`" if self.text.strip() else ""
        return f"- {self.where}:{text} {self.what}"


@dataclass
class Case:
    name: str
    kind: str  # "doctest" | "function"
    source: str
    want: str = ""
    hidden: bool = False
    points: float | None = None
    success_message: str | None = None
    failure_message: str | None = None
    cell: int = 0
    function_name: str = ""


@dataclass
class Question:
    name: str
    cell: int
    points: object = None
    all_or_nothing: bool = False
    manual: bool = False
    cases: list[Case] = field(default_factory=list)


@dataclass
class Conversion:
    name: str
    master: object  # nbformat.NotebookNode: the dlgrade master
    questions: list[Question]
    notes: list[Note]
    mode: str = "definitions"
    mode_reason: str = ""
    cell_prefix: str = ""
    hidden_visibility: str = "hidden"
    title: str = ""
    # otter's `files` and `student_files`: paths beside the master the notebook reads
    files: list[str] = field(default_factory=list)
    # The master's imports, {"np": "numpy", "sqrt": "math:sqrt"}: doctest cases see these
    # names as the grader's own modules, whatever the notebook binds to them.
    modules: dict = field(default_factory=dict)
    # otter's `requirements`: a list, or a file beside the master (read by import_otter)
    requirements: list[str] = field(default_factory=list)
    requirements_file: str = ""
    # otter's `generate: points_possible`: the Gradescope total scaled to it
    points_possible: float | None = None
    # otter's `student_files`: files the notebook writes; tests read the worker's copies
    student_files: list[str] = field(default_factory=list)

    @property
    def total_points(self) -> float:
        return sum(c.points or 0.0 for q in self.questions for c in q.cases)


def _source_lines(cell) -> list[str]:
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(source)
    return re.split(r"\r?\n", source)


def _yaml(text: str, where: str):
    try:
        import yaml
    except ImportError:
        raise OtterImportError("reading otter's YAML config needs PyYAML: pip install pyyaml") \
            from None

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OtterImportError(f"{where}: invalid YAML ({str(exc).splitlines()[0]})") from None


def _key_lines(lines: list[str], key: str) -> tuple[int, str]:
    for number, line in enumerate(lines, start=1):
        if re.match(rf"\s*{re.escape(str(key))}\s*:", line):
            return number, line
    return 1, ""


def _split_fenced(cells) -> list[tuple[int, object]]:
    """Otter also accepts config in Markdown cells fenced as ```otter: make them raw cells."""
    import nbformat

    out = []
    for number, cell in enumerate(cells, start=1):
        lines = _source_lines(cell)
        if cell.get("cell_type") != "markdown" or not any(
                line.strip() == "```otter" for line in lines):
            out.append((number, cell))
            continue
        chunk, kind = [], "markdown"
        for line in lines:
            if kind == "markdown" and line.strip() == "```otter":
                if any(s.strip() for s in chunk):
                    out.append((number, nbformat.v4.new_markdown_cell("\n".join(chunk))))
                chunk, kind = [], "raw"
            elif kind == "raw" and line.strip() == "```":
                out.append((number, nbformat.v4.new_raw_cell("\n".join(chunk))))
                chunk, kind = [], "markdown"
            else:
                chunk.append(line)
        if kind == "raw":
            raise OtterImportError(f"cell {number}: unclosed ```otter block")
        if any(s.strip() for s in chunk):
            out.append((number, nbformat.v4.new_markdown_cell("\n".join(chunk))))
    return out


def _convert_solution_cell(lines: list[str], number: int, notes: list[Note],
                           strip_markers: bool, otter_line: re.Pattern) -> list[str]:
    """Otter's in-cell markers as dlgrade's: ``# BEGIN/END SOLUTION`` blocks, one line each.

    ``x = 5  # SOLUTION`` becomes a one-line block (the student sees a NotImplementedError
    instead of otter's ``x = ...``); ``# SEED`` lines and ``# IGNORE`` lines leave the master,
    as they leave otter's student notebook; ``import otter`` / ``grader.check`` lines go too.
    """
    out: list[str] = []
    indent = ""
    inside_solution = inside_ignore = inside_prompt = False
    pending: list[str] = []  # consecutive one-line solutions, merged into one block
    pending_indent = ""

    def flush():
        nonlocal pending
        if pending:
            out.append(f"{pending_indent}# BEGIN SOLUTION")
            out.extend(pending)
            out.append(f"{pending_indent}# END SOLUTION")
            pending = []

    for line_no, line in enumerate(lines, start=1):
        where = f"cell {number}, line {line_no}"
        stripped = line.rstrip()
        if inside_ignore:
            if stripped.endswith("# END IGNORE"):
                inside_ignore = False
            continue
        if BEGIN_IGNORE.match(line):
            flush()
            inside_ignore = True
            notes.append(Note(where, line, "otter IGNORE block: left out of the master",
                              converted=True))
            continue
        if stripped.endswith("# IGNORE"):
            notes.append(Note(where, line, "otter IGNORE line: left out of the master",
                              converted=True))
            continue
        if strip_markers and stripped.endswith("# SEED"):
            flush()
            notes.append(Note(where, line, "SEED line: left out, as from otter's student "
                                           "notebook (only the `seed` config seeds graded "
                                           "notebooks)", converted=True))
            continue
        if inside_prompt:
            if stripped.endswith("# END PROMPT"):
                inside_prompt = False
            else:
                text = line.replace('"""', "").rstrip()
                prompt_indent = text[:len(text) - len(text.lstrip())]
                out.append(f"{prompt_indent}# {text.strip()}".rstrip())
            continue
        if strip_markers and stripped.endswith("# BEGIN PROMPT"):
            # otter shows the prompt to students in place of the solution; as comments it
            # stays visible in both notebooks without becoming a dead string in the master.
            flush()
            inside_prompt = True
            notes.append(Note(where, line, "in-cell PROMPT block: kept as comments",
                              converted=True))
            continue
        if otter_line.match(line) and not inside_solution:
            flush()
            notes.append(Note(where, line, "otter client call: left out (dlgrade's check() "
                                           "cells replace it; graded notebooks may keep it)",
                              converted=True))
            continue
        if not strip_markers:
            out.append(line)
            continue
        if inside_solution:
            if stripped.endswith("# END SOLUTION"):
                code = stripped[: -len("# END SOLUTION")].rstrip()
                if code.strip():
                    out.append(code)
                out.append(f"{indent}# END SOLUTION")
                inside_solution = False
            else:
                out.append(line)
            continue
        begin = BEGIN_SOLUTION.match(line)
        if begin:
            flush()
            indent = begin.group(1)
            inside_solution = True
            out.append(f"{indent}# BEGIN SOLUTION")
            if begin.group(2):
                notes.append(Note(where, line, "BEGIN SOLUTION NO PROMPT: the student notebook "
                                               "shows a NotImplementedError line here",
                                  converted=True))
            continue
        if stripped.endswith("# END SOLUTION"):
            raise OtterImportError(f"{where}: END SOLUTION without BEGIN SOLUTION")
        one = SOLUTION_LINE.match(line)
        if one and one.group(2).strip() and not one.group(2).lstrip().startswith("#"):
            if pending and one.group(1) != pending_indent:
                flush()
            if not pending:
                notes.append(Note(where, line, "one-line SOLUTION: a BEGIN/END SOLUTION block "
                                               "(students see a NotImplementedError line, not "
                                               "otter's `...`)", converted=True))
            pending_indent = one.group(1)
            pending.append(one.group(1) + one.group(2))
            continue
        flush()
        out.append(line)
    flush()
    if inside_solution:
        raise OtterImportError(f"cell {number}: BEGIN SOLUTION is never closed")
    return out


def _cell_output(cell, number: int, notes: list[Note]) -> str:
    """The output the master showed for a test cell: what otter takes as the expected output
    (printed text, then the value shown). stderr (warnings) is not compared."""
    text = ""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            chunk = output.get("text", "")
            chunk = "".join(chunk) if isinstance(chunk, list) else chunk
            if output.get("name") == "stderr":
                notes.append(Note(f"cell {number}", chunk.splitlines()[0] if chunk else "",
                                  "stderr output of the test cell is not compared",
                                  converted=True))
                continue
            text += chunk
        elif output.get("output_type") in ("execute_result", "display_data"):
            data = output.get("data", {}).get("text/plain")
            if data:
                text += "".join(data) if isinstance(data, list) else data
    return text


def _read_test(cell, number: int, question: Question, ok_format: bool, notes: list[Note]):
    lines = _source_lines(cell)
    where = f"cell {number}"
    hidden = bool(lines and lines[0].lstrip().startswith("#")
                  and re.search(r"\bhidden\b", lines[0], re.IGNORECASE))
    start = 1 if hidden else 0
    config: dict = {}
    if lines and BEGIN_TEST_CONFIG.match(lines[0]):
        end = next((i for i, line in enumerate(lines) if END_TEST_CONFIG.match(line)), None)
        if end is None:
            raise OtterImportError(f"{where}: BEGIN TEST CONFIG without END TEST CONFIG")
        config = _yaml("\n".join(lines[1:end]), where) or {}
        if not isinstance(config, dict):
            raise OtterImportError(f"{where}: TEST CONFIG is not a mapping")
        for key in config:
            if key not in TEST_KEYS:
                line_no, line = _key_lines(lines, key)
                notes.append(Note(f"{where}, line {line_no}", line,
                                  f"TEST CONFIG key `{key}` is not supported: ignored"))
        start = end + 1
    hidden = bool(config.get("hidden", hidden))
    points = config.get("points")
    if points is not None and not isinstance(points, (int, float)):
        notes.append(Note(where, f"points: {points}", "test points must be a number: ignored"))
        points = None
    source = "\n".join(lines[start:]).strip("\n")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        bad = lines[start + (exc.lineno or 1) - 1] if exc.lineno else ""
        notes.append(Note(f"{where}, line {start + (exc.lineno or 1)}", bad,
                          f"test cell is not valid Python ({exc.msg}): test case not converted"))
        return
    if not tree.body:
        notes.append(Note(where, "", "test cell without code: nothing to convert"))
        return
    case = Case(name=f"{question.name} - {len(question.cases) + 1}", kind="doctest",
                source=source, hidden=hidden, points=points,
                success_message=config.get("success_message"),
                failure_message=config.get("failure_message"), cell=number)
    if ok_format:
        case.want = _cell_output(cell, number, notes)
        if not case.want.strip() and tree.body and isinstance(tree.body[-1], ast.Expr):
            notes.append(Note(where, source.splitlines()[-1],
                              "this test cell showed no output in the master (was it run?): "
                              "the case expects no output", converted=True))
    else:
        funcs = tree.body[:1]
        if len(tree.body) > 2 or not funcs or not isinstance(funcs[0], ast.FunctionDef):
            notes.append(Note(where, lines[start] if start < len(lines) else "",
                              "an exception-style test cell must hold one function definition "
                              "(and at most a call to it): test case not converted"))
            return
        if len(tree.body) == 2:
            notes.append(Note(f"{where}, line {start + tree.body[1].lineno}",
                              lines[start + tree.body[1].lineno - 1],
                              "call of the test function: not needed, dropped", converted=True))
        func = funcs[0]
        for deco in func.decorator_list:
            notes.append(Note(f"{where}, line {start + deco.lineno}",
                              lines[start + deco.lineno - 1],
                              "decorator of a test function: dropped (use TEST CONFIG)"))
        case.kind = "function"
        case.function_name = func.name
        case.source = "\n".join(source.splitlines()[func.lineno - 1:func.end_lineno])
    question.cases.append(case)


def _resolve_points(question: Question, notes: list[Note]) -> None:
    """Otter's rules: per-case points first; a question total is shared by the other cases;
    no points at all means one point for the question."""
    cases, total = question.cases, question.points
    where = f"cell {question.cell}"
    if isinstance(total, dict):
        total = float(total.get("each", 1)) * len(cases)
    if isinstance(total, list):
        if len(total) != len(cases):
            raise OtterImportError(f"{where}: question {question.name} lists {len(total)} "
                                   f"points for {len(cases)} test cases")
        for case, p in zip(cases, total, strict=True):
            case.points = p
        total = None
    if total is not None and not isinstance(total, (int, float)):
        raise OtterImportError(f"{where}: question {question.name}: invalid points {total!r}")
    fixed = sum(c.points for c in cases if c.points is not None)
    free = [c for c in cases if c.points is None]
    if total is not None:
        if fixed > total:
            raise OtterImportError(f"{where}: question {question.name}: its test cases have "
                                   f"more points ({fixed:g}) than the question ({total:g})")
        share = (total - fixed) / len(free) if free else 0.0
    elif fixed == 0:
        share = 1.0 / len(free) if free else 0.0
    else:
        share = 0.0
    for case in free:
        case.points = share
    for case in cases:
        case.points = float(case.points)


def _seed_prefix(seed, notes: list[Note], lines: list[str], number: int) -> tuple[str, dict]:
    """Otter's intercell seeding as code run before every cell; returns (prefix, variable info)."""
    where = f"cell {number}, line {_key_lines(lines, 'seed')[0]}"
    if seed is None:
        return "", {}
    if isinstance(seed, int) and not isinstance(seed, bool):
        seed = {"autograder_value": seed}
    if not isinstance(seed, dict) or seed.get("autograder_value") is None:
        notes.append(Note(where, "seed", "seed config without an autograder_value: ignored"))
        return "", {}
    value = seed["autograder_value"]
    if not isinstance(value, int):
        raise OtterImportError(f"{where}: seed autograder_value must be an integer")
    variable = seed.get("variable")
    if variable:
        if not str(variable).isidentifier():
            raise OtterImportError(f"{where}: seed variable {variable!r} is not a Python name")
        return f"{variable} = {value}", {"variable": variable,
                                          "student_value": seed.get("student_value")}
    return (f'__import__("numpy").random.seed({value}); __import__("random").seed({value})',
            {})


def _names_loaded(tree) -> set[str]:
    """Names a test cell reads that it does not bind itself (assignments, imports, defs)."""
    stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
              and isinstance(n.ctx, ast.Store)}
    for n in ast.walk(tree):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            stored.update((a.asname or a.name).split(".")[0] for a in n.names)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stored.add(n.name)
        elif isinstance(n, ast.arg):
            stored.add(n.arg)
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
              and isinstance(n.ctx, ast.Load)}
    return loaded - stored - set(dir(builtins))


def _merge_config_file(config: dict, config_lines: list[str], config_cell: int,
                       base_dir: Path | None, notes: list[Note]) -> None:
    """otter's ``config_file``: a YAML file of assignment settings beside the master; the
    notebook's own settings win where both give one (as in otter)."""
    name = config.get("config_file")
    if not name:
        return
    line_no, line = _key_lines(config_lines, "config_file")
    where = f"cell {config_cell}, line {line_no}"
    if not isinstance(name, str):
        raise OtterImportError(f"{where}: config_file must be a file name")
    if base_dir is None:
        notes.append(Note(where, line, "config_file: the master's folder is unknown here, so "
                                       "its settings are not read"))
        return
    path = Path(base_dir) / name
    if not path.is_file():
        raise OtterImportError(f"{where}: config_file {name} does not exist beside the master "
                               f"(looked for {path})")
    extra = _yaml(path.read_text(), f"config_file {name}") or {}
    if not isinstance(extra, dict):
        raise OtterImportError(f"config_file {name}: expected a mapping of settings")
    used = sorted(key for key in extra if key not in config and key != "config_file")
    for key in used:
        config[key] = extra[key]
        config_lines.append(f"{key}: (from {name})")
    notes.append(Note(where, line, f"config_file {name} read: "
                                   f"{', '.join(used) if used else 'nothing the notebook lacks'}",
                      converted=True))


def _choose_mode(master, questions: list[Question]) -> tuple[str, str]:
    """"definitions" when every notebook name the tests use is a function, class, import or
    constant (dlgrade's default: top-level training code is not run); else "all", as otter."""
    from ..notebook import top_level_statements
    from ..definitions import _keep_definition

    defined: set[str] = set()
    for stmt in top_level_statements(master):
        if not _keep_definition(stmt):
            continue
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        else:
            defined.update(n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)
                           and isinstance(n.ctx, ast.Store))
    needed: dict[str, str] = {}
    for question in questions:
        for case in question.cases:
            tree = ast.parse(case.source)
            if case.kind == "function":
                func = tree.body[0]
                names = [a.arg for a in func.args.args + func.args.kwonlyargs]
                if "env" in names:
                    return "all", f"{case.name} takes `env`, the whole notebook namespace"
            else:
                names = sorted(_names_loaded(tree))
            for name in names:
                if name not in defined:
                    needed.setdefault(name, case.name)
    if needed:
        listed = ", ".join(f"`{n}` ({c})" for n, c in sorted(needed.items())[:8])
        return "all", f"the tests use values computed by top-level code: {listed}"
    return "definitions", "the tests use only functions, classes, imports and constants"


def _ident(name: str) -> str:
    ident = re.sub(r"\W+", "_", name).strip("_").lower() or "question"
    return ident if not ident[0].isdigit() else f"q_{ident}"
