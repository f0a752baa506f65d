"""An otter master notebook into a dlgrade master, its questions and the notes of the report."""
from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path

from .parse import (ASSIGNMENT_CONFIG, ASSIGNMENT_KEYS, BLOCK, _choose_mode, Conversion,
                    _convert_solution_cell, GRADER_NAME, _ident, IGNORE_CELL, _key_lines,
                    _merge_config_file, Note, _otter_line_pattern, OTTER_ONLY_KEYS,
                    OtterImportError, Question, QUESTION_KEYS, _read_test, _resolve_points,
                    _seed_prefix, _source_lines, _split_fenced, _yaml)

def convert(nb, name: str, *, mode: str = "auto", base_dir: Path | None = None) -> Conversion:
    """Parse an otter master notebook into a dlgrade master, questions and report notes.
    ``base_dir``: the master's folder, where a ``config_file`` is read from."""
    import nbformat

    notes: list[Note] = []
    config: dict = {}
    config_lines: list[str] = []
    config_cell = 0
    cells_out = []
    questions: list[Question] = []
    blocks: list[str] = []
    question: Question | None = None
    question_end: dict[str, int] = {}  # question name -> index of its last cell in cells_out
    deferred_tests: list[tuple[object, int, Question]] = []
    grader_names = {m.group(1) for cell in nb.cells if cell.get("cell_type") == "code"
                    for m in GRADER_NAME.finditer("\n".join(_source_lines(cell)))}
    otter_line = _otter_line_pattern(grader_names)

    for number, cell in _split_fenced(nb.cells):
        lines = _source_lines(cell)
        first = lines[0] if lines else ""
        where = f"cell {number}"
        if IGNORE_CELL.match(first):
            notes.append(Note(where, first, "otter ignore cell: left out", converted=True))
            continue
        if cell.get("cell_type") == "raw" and ASSIGNMENT_CONFIG.match(first):
            config_lines, config_cell = lines, number
            config.update(_yaml("\n".join(lines), where) or {})
            continue
        boundary = BLOCK.match(first) if cell.get("cell_type") == "raw" else None
        if boundary:
            kind = boundary.group(2).lower()
            if boundary.group(1).lower() == "end":
                if not blocks or blocks[-1] != kind:
                    raise OtterImportError(f"{where}: END {kind.upper()} does not close "
                                           f"{'a ' + blocks[-1].upper() if blocks else 'any'} "
                                           "block")
                blocks.pop()
                if kind == "question":
                    question_end[question.name] = len(cells_out) - 1
                    question = None
                continue
            if kind == "question":
                if blocks:
                    raise OtterImportError(f"{where}: BEGIN QUESTION inside a {blocks[-1]} block")
                qconfig = _yaml("\n".join(lines), where) or {}
                if not isinstance(qconfig, dict) or "name" not in qconfig:
                    raise OtterImportError(f"{where}: a question needs a `name`")
                question = Question(name=str(qconfig["name"]), cell=number,
                                    points=qconfig.get("points"),
                                    all_or_nothing=bool(qconfig.get("all_or_nothing", False)),
                                    manual=bool(qconfig.get("manual", False)))
                if any(q.name == question.name for q in questions):
                    raise OtterImportError(f"{where}: question {question.name} appears twice")
                for key in qconfig:
                    if key not in QUESTION_KEYS:
                        line_no, line = _key_lines(lines, key)
                        if key == "manual" and not qconfig[key]:
                            continue  # `manual: false` is the default: autograded
                        what = ("manually graded question: not autograded, left to the "
                                "instructor" if key == "manual" else
                                f"question key `{key}` is not supported: ignored")
                        notes.append(Note(f"{where}, line {line_no}", line, what))
                questions.append(question)
            elif not blocks:
                raise OtterImportError(f"{where}: BEGIN {kind.upper()} outside a question")
            elif len(blocks) > 1:
                raise OtterImportError(f"{where}: BEGIN {kind.upper()} inside a "
                                       f"{blocks[-1]} block")
            blocks.append(kind)
            continue
        inner = blocks[-1] if blocks else None
        if inner == "tests":
            if cell.get("cell_type") != "code":
                raise OtterImportError(f"{where}: a tests block holds code cells only")
            deferred_tests.append((cell, number, question))
            continue
        new = copy.deepcopy(cell)
        for key in ("outputs",):
            if key in new:
                new[key] = []
        if "execution_count" in new:
            new["execution_count"] = None
        if cell.get("cell_type") == "code":
            strip = inner == "solution" or config.get("strip_solutions_from_all_cells", False)
            new["source"] = "\n".join(_convert_solution_cell(lines, number, notes, strip,
                                                              otter_line))
            if not new["source"].strip():
                continue
            if inner == "solution" and new["source"] == "\n".join(lines) and not any(
                    "# BEGIN SOLUTION" in line for line in lines):
                notes.append(Note(where, first, "solution cell without solution markers: "
                                                "students see it in full (as in otter)"))
        elif inner == "solution" and cell.get("cell_type") == "markdown":
            notes.append(Note(where, first, "written (Markdown) solution: manual grading is not "
                                            "converted; left out so students do not see it"))
            continue
        cells_out.append(new)

    if blocks:
        raise OtterImportError(f"the {blocks[-1].upper()} block opened last is never closed")

    _merge_config_file(config, config_lines, config_cell, base_dir, notes)
    for key in config:
        line_no, line = _key_lines(config_lines, key)
        at = f"cell {config_cell}, line {line_no}"
        if key in OTTER_ONLY_KEYS:
            notes.append(Note(at, line, f"`{key}` is about otter's own output: not needed"))
        elif key not in ASSIGNMENT_KEYS | {"strip_solutions_from_all_cells"}:
            notes.append(Note(at, line, f"ASSIGNMENT CONFIG key `{key}` is not converted "
                                        "(dlgrade has no equivalent here): ignored"))
    tests_config = config.get("tests") or {}
    ok_format = bool(tests_config.get("ok_format", True)) if isinstance(tests_config,
                                                                        dict) else True
    if isinstance(tests_config, dict):
        for key in tests_config:
            if key not in ("ok_format", "files"):
                line_no, line = _key_lines(config_lines, key)
                notes.append(Note(f"cell {config_cell}, line {line_no}", line,
                                  f"tests key `{key}` is not converted: ignored"))
    generate = config.get("generate")
    hidden_visibility, points_possible = "hidden", None
    if isinstance(generate, dict):
        if generate.get("show_hidden"):
            hidden_visibility = "after_published"
        for key in generate:
            line_no, line = _key_lines(config_lines, key)
            at = f"cell {config_cell}, line {line_no}"
            if key == "zips" and generate[key]:
                notes.append(Note(at, line, "zips: a submission that is a zip holding the "
                                            "notebook is graded from the notebook inside it "
                                            "(dlgrade does so for every assignment)",
                                  converted=True))
            elif key not in ("show_hidden", "seed", "points_possible", "zips"):
                notes.append(Note(at, line, f"generate key `{key}` is not converted: ignored"))
        points_possible = generate.get("points_possible")
        if points_possible is not None:
            line_no, line = _key_lines(config_lines, "points_possible")
            if isinstance(points_possible, bool) or not isinstance(points_possible,
                                                                   (int, float)) \
                    or points_possible <= 0:
                notes.append(Note(f"cell {config_cell}, line {line_no}", line,
                                  "`points_possible` is not a positive number: ignored"))
                points_possible = None
    for cell, number, q in deferred_tests:
        _read_test(cell, number, q, ok_format, notes)
    for q in questions:
        if q.cases:
            _resolve_points(q, notes)
        elif not q.manual:
            notes.append(Note(f"cell {q.cell}", f"name: {q.name}",
                              "question without test cases: nothing to grade"))

    seed = config.get("seed")
    if isinstance(seed, dict) and not seed.get("variable"):
        # otter 7 passes a top-level seed to grading only with its seed variable
        # (otter/assign/__init__.py); without one, grading is not seeded by it.
        line_no, line = _key_lines(config_lines, "seed")
        notes.append(Note(f"cell {config_cell}, line {line_no}", line,
                          "seed without a `variable`: otter 7 does not seed grading with it, "
                          "so neither does dlgrade (use `generate: seed:` for intercell "
                          "seeding)"))
        seed = None
    if seed is None and isinstance(generate, dict):
        seed = generate.get("seed")  # otter's intercell seed
    prefix, seed_variable = _seed_prefix(seed, notes, config_lines, config_cell)
    if seed_variable.get("student_value") is not None:
        pattern = re.compile(rf"^(\s*){re.escape(seed_variable['variable'])}\s*=\s*.*$")
        for cell in cells_out:
            if cell.get("cell_type") == "code":
                cell["source"] = "\n".join(
                    pattern.sub(rf"\g<1>{seed_variable['variable']} = "
                                f"{int(seed_variable['student_value'])}", line)
                    for line in _source_lines(cell))

    # dlgrade's own check() cell after each question with public cases.
    check_after = {question_end[q.name]: q.name for q in questions
                   if q.name in question_end and any(not c.hidden for c in q.cases)}
    final_cells = []
    for index, cell in enumerate(cells_out):
        final_cells.append(cell)
        if index in check_after:
            qname = check_after[index]
            check = nbformat.v4.new_code_cell(f"check({json.dumps(qname)}, {json.dumps(name)})")
            check.id = f"dlgrade-check-{_ident(qname)}"[:64]
            final_cells.append(check)
    if check_after:
        first_code = next((i for i, c in enumerate(final_cells) if c.cell_type == "code"),
                          len(final_cells))
        setup = nbformat.v4.new_code_cell("from autograder import check")
        setup.id = "dlgrade-import-check"
        final_cells.insert(first_code, setup)
    master = copy.deepcopy(nb)
    master.cells = final_cells
    master.nbformat, master.nbformat_minor = 4, max(master.get("nbformat_minor", 0), 5)
    seen: set[str] = set()
    for index, cell in enumerate(master.cells):
        if not cell.get("id") or cell["id"] in seen:
            cell["id"] = f"otter-{index:03d}"
        seen.add(cell["id"])
    master = nbformat.from_dict(master)
    files, student_files = [], []
    for key, into in (("files", files), ("student_files", student_files)):
        listed = config.get(key) or []
        if not isinstance(listed, list) or not all(isinstance(f, str) for f in listed):
            line_no, line = _key_lines(config_lines, key)
            notes.append(Note(f"cell {config_cell}, line {line_no}", line,
                              f"`{key}` is not a list of paths: ignored"))
            continue
        into += [f for f in listed if f not in into]
    if student_files:
        line_no, line = _key_lines(config_lines, "student_files")
        notes.append(Note(f"cell {config_cell}, line {line_no}", line,
                          "student_files are the student's: written by the notebook as it runs "
                          "in the worker, and read back from there for the tests (not copied "
                          "from beside the master)", converted=True))
    conv = Conversion(name=name, master=master, questions=questions, notes=notes,
                      cell_prefix=prefix, hidden_visibility=hidden_visibility,
                      title=str(config.get("name") or name), files=files,
                      points_possible=points_possible, student_files=student_files)
    conv.modules = master_imports(master)
    files += _helper_modules(conv.modules, base_dir, files, notes)
    requirements = config.get("requirements")
    if isinstance(requirements, str):
        conv.requirements_file = requirements
    elif isinstance(requirements, list) and all(isinstance(r, str) for r in requirements):
        conv.requirements = list(requirements)
    elif requirements is not None:
        line_no, line = _key_lines(config_lines, "requirements")
        notes.append(Note(f"cell {config_cell}, line {line_no}", line,
                          "`requirements` is neither a file nor a list of packages: ignored"))
    if mode == "auto":
        conv.mode, conv.mode_reason = _choose_mode(master, questions)
    else:
        conv.mode, conv.mode_reason = mode, "chosen on the command line"
    return conv


def _helper_modules(modules: dict, base_dir: Path | None, files: list[str],
                    notes: list[Note]) -> list[str]:
    """Modules the master imports that live beside it (``utils.py``, a package folder) and that
    ``files`` does not list: the notebook cannot load without them, so they are copied too."""
    if base_dir is None:
        return []
    listed = {Path(f).parts[0] for f in files if Path(f).parts}
    found = []
    for target in dict.fromkeys(m.split(":")[0].split(".")[0] for m in modules.values()):
        for candidate in (f"{target}.py", target):
            path = base_dir / candidate
            is_module = path.is_file() if candidate.endswith(".py") else \
                (path / "__init__.py").is_file()
            if is_module and candidate not in listed and candidate not in found:
                found.append(candidate)
                notes.append(Note("imports", f"import {target}",
                                  f"helper module {candidate} beside the master is not in "
                                  "otter's files: copied with the assignment all the same",
                                  converted=True))
    return found


def master_imports(master) -> dict:
    """Names the master's top-level imports bind, and what they are: ``import numpy as np``
    gives ``{"np": "numpy"}``, ``from math import sqrt`` gives ``{"sqrt": "math:sqrt"}``.
    Only whole-package names: ``import a.b`` binds ``a``."""
    from ..notebook import extract_code

    found = {}
    for _number, code in extract_code(master).cells:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for stmt in tree.body:
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.asname:
                        found[alias.asname] = alias.name
                    else:
                        found[alias.name.split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
                for alias in stmt.names:
                    if alias.name != "*":
                        found[alias.asname or alias.name] = f"{stmt.module}:{alias.name}"
    return found


